/**
 * InferenceEngine port: turns model bytes into sessions, runs them and releases them, in domain tensor terms.
 * The onnxruntime-node adapter (functions/adapters/ort-engine.ts) implements it. Caching sessions (memory
 * budget, one load per artifact, integrity check of the bytes) is the app's session cache
 * (functions/app/session-cache.ts), the same for every engine.
 */
import type { Tensor } from '../domain/tensor';

/** An opaque handle to a model loaded by an engine. */
export interface ModelSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
}

/** Artifact bytes with the sha256 their fetcher computed while they arrived (see `ArtifactStore.getObjectHashed`). */
export interface HashedArtifact {
  readonly bytes: Uint8Array;
  /** Lower-case hex sha256 of `bytes`. */
  readonly sha256: string;
}

export interface InferenceEngine {
  /**
   * Loads what the engine needs once per process (a native runtime, say) without creating a session; resolves
   * when it is loaded. Optional. Called before an artifact is fetched so that both overlap; `createSession`
   * waits for the same load by itself.
   */
  init?(): Promise<void>;
  /** Creates a session of a model from its bytes (verified by the caller). */
  createSession(bytes: Uint8Array): Promise<ModelSession>;
  /**
   * Runs the model. Errors the engine raises because of the input (shapes that do not fit together, values
   * an operator rejects) surface as `BadRequestError` with code `INFERENCE_FAILED`.
   */
  run(
    session: ModelSession,
    feeds: Readonly<Record<string, Tensor>>,
    outputNames: readonly string[],
  ): Promise<Record<string, Tensor>>;
  /**
   * Frees a session. Runs in progress finish first: the session is then freed when the last of them ends
   * (and the promise resolves at once).
   */
  release(session: ModelSession): Promise<void>;
}

/**
 * InferenceEngine port: loads ONNX artifacts into sessions and runs them, in domain tensor terms. The
 * onnxruntime-node adapter (functions/adapters/ort-engine.ts) implements it.
 */
import type { Tensor } from '../domain/tensor-codec';

/** An opaque handle to a loaded model, keyed by the artifact's sha256. */
export interface ModelSession {
  readonly sha256: string;
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
   * Returns the session of artifact `sha256`, loading it on first use: `fetch` is called only when the session
   * is not cached, its bytes are verified against `sha256` before a session is created (mismatch:
   * `ArtifactIntegrityError`, nothing cached), and concurrent calls for one sha256 share one load. A fetch that
   * hashed the bytes while they arrived returns them with their digest, which is then compared instead.
   */
  loadSession(sha256: string, fetch: () => Promise<Uint8Array | HashedArtifact>): Promise<ModelSession>;
  /**
   * Runs the model. Errors onnxruntime raises because of the input (shapes that do not fit together, values
   * an operator rejects) surface as `BadRequestError` with code `INFERENCE_FAILED`.
   */
  run(
    session: ModelSession,
    feeds: Readonly<Record<string, Tensor>>,
    outputNames: readonly string[],
  ): Promise<Record<string, Tensor>>;
  /** True when a session for `sha256` is cached (loaded and not evicted). */
  has(sha256: string): boolean;
  /** The cached session of `sha256` without loading (marks it recently used); undefined when not cached. */
  cachedSession(sha256: string): ModelSession | undefined;
}

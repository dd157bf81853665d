/**
 * The predict use case, composed of its parts: version resolution (version-resolver.ts), single inference
 * (inference.ts) and batch inference (batch-inference.ts) over the session cache (session-cache.ts).
 *
 * Besides the HTTP handler, batch scoring and async inference reuse it (`infer`, `inferBatch`).
 */

import type { CaptureConfig } from '../domain/capture';
import { ArtifactIntegrityError, ConflictError } from '../domain/errors';
import { servedOutputSpecs } from '../domain/postprocess';
import type { TensorSpec } from '../domain/types';
import type { ArtifactStore } from '../ports/index';
import { type BatchItem, createBatchInference } from './batch-inference';
import { createInference, type Inference } from './inference';
import type { SessionCache } from './session-cache';
import {
  createVersionResolver,
  type ServedVersion,
  type Split,
  type VersionResolverDeps,
} from './version-resolver';

export interface PredictorDeps extends VersionResolverDeps {
  readonly store: Pick<ArtifactStore, 'getObject' | 'getObjectHashed'>;
  /** Sessions of the served artifacts, over the inference engine they run on. */
  readonly sessions: SessionCache;
  /** Largest number of rows `inferBatch` puts into one run. @default 256 */
  readonly maxBatchRows?: number;
}

/** OIP model metadata. */
export interface ModelMetadata {
  readonly name: string;
  /**
   * The version `ref` resolves to, alone: the one `inputs` and `outputs` describe. Listing every READY version
   * would take a registry query per metadata request (the predict function reads items by key only) and name
   * versions whose signatures these `inputs` and `outputs` do not describe; the registry lists them.
   */
  readonly versions: string[];
  readonly platform: 'onnxruntime_onnx';
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/**
 * The predict use case. `infer`, `inferJson`, `inferEncoded` and `inferBinary` are single inference's (inference.ts): each answer carries its
 * inference id (the request's `id`, else a generated one), and `obs` receives what the request reports.
 */
export interface Predictor extends Pick<Inference, 'infer' | 'inferJson' | 'inferEncoded' | 'inferBinary'> {
  /** Resolves `ref` (version number, alias, or none = `prod`) to a READY version. */
  resolve(name: string, ref?: string): Promise<ServedVersion>;
  /** OIP model metadata of `name@ref`. */
  metadata(name: string, ref?: string): Promise<ModelMetadata>;
  /** Loads the session of `name@ref` (used for `MAAS_PRELOAD`). */
  preload(name: string, ref?: string): Promise<ServedVersion>;
  /**
   * Whether `name@ref` can serve (`GET …/ready`): resolves it and finds its session, and that of the alias's
   * canary, in the session cache or loads it (no I/O when version and sessions are cached). A version whose
   * artifact cannot be loaded (missing, or failing its integrity check) is a 409 `VERSION_NOT_READY`; a load
   * that does not finish within the dependency deadline a 503, as for an inference.
   */
  ready(name: string, ref?: string): Promise<ServedVersion>;
  /**
   * The capture declaration that applies to requests for `name@ref` as last resolved: the alias's own, else the
   * served version's (undefined: nothing is captured). No I/O.
   */
  capture(name: string, ref: string | undefined, served: ServedVersion): CaptureConfig | undefined;
  /** The traffic split of alias `ref` of `name` as last resolved (see `VersionResolver.split`). No I/O. */
  split(name: string, ref: string | undefined): Split | undefined;
  /**
   * Runs many OIP requests against one version. Compatible requests (same inputs, datatypes, trailing dims and
   * output selection) are concatenated along dimension 0 into one run when the model's first input and output
   * dimensions are dynamic; answers come back in request order, one per request.
   */
  inferBatch(name: string, ref: string | undefined, requests: readonly unknown[]): Promise<BatchItem[]>;
}

/** Creates the predict use case over its ports. */
export function createPredictor(deps: PredictorDeps): Predictor {
  const resolver = createVersionResolver(deps);
  const inference = createInference({ resolver, sessions: deps.sessions, store: deps.store });

  /** Finds or loads a served version's session; an artifact that cannot be loaded makes the version not ready. */
  async function loadable(served: ServedVersion): Promise<void> {
    if (deps.sessions.cached(served.version.sha256)) return;
    try {
      await inference.session(served);
    } catch (e) {
      if (!(e instanceof ArtifactIntegrityError)) throw e;
      const v = served.version;
      throw new ConflictError(
        `model '${v.name}' version ${v.version} is not ready: ${e.message}`,
        'VERSION_NOT_READY',
        { cause: e },
      );
    }
  }
  return {
    resolve: resolver.resolve,
    capture: resolver.capture,
    split: resolver.split,
    async metadata(name, ref) {
      const v = (await resolver.resolve(name, ref)).version;
      return {
        name,
        versions: [String(v.version)],
        platform: 'onnxruntime_onnx',
        inputs: v.signature.inputs,
        outputs: servedOutputSpecs(v.postprocess, v.labels, v.signature),
      };
    },
    async preload(name, ref) {
      const served = await resolver.resolve(name, ref);
      await inference.session(served);
      return served;
    },
    async ready(name, ref) {
      const served = await resolver.resolve(name, ref);
      const canary = resolver.split(name, ref)?.canary;
      await Promise.all([loadable(served), ...(canary ? [loadable(canary)] : [])]);
      return served;
    },
    infer: inference.infer,
    inferJson: inference.inferJson,
    inferEncoded: inference.inferEncoded,
    inferBinary: inference.inferBinary,
    inferBatch: createBatchInference({
      resolver,
      inference,
      engine: deps.sessions.engine,
      maxBatchRows: deps.maxBatchRows,
    }),
  };
}

/**
 * Derived versions (`POST /models/{name}/versions/{v}/derive`): a new version made from a READY one by transforms
 * (int8 quantisation, graph optimisation, pre-processing), served only once it passes its accuracy gate against
 * its parent (domain rules in functions/domain/derive.ts).
 *
 * - `startDerive` checks the request, writes the next version PENDING with its lineage (`derivedFrom`,
 *   `transforms`; the parent's labels and post-processing, whose outputs the transforms keep) and queues a
 *   `derive` message; the caller gets the PENDING version at once (202).
 * - `runDerive` (the worker, on that message) reads the parent's artifact, applies the transforms, runs the gate
 *   and completes the version READY (its own content-addressed artifact, sha256, size, signature and
 *   `evaluation`) or FAILED (`failureReason` with the figures, `evaluation` recorded); either way its `transforms`
 *   become those applied, with the options the transformer defaulted written out (int8's range). A version no
 *   longer PENDING is left as it is (a redelivered message); transient failures are thrown so the message is
 *   retried.
 */
import { S3_KEYS } from '../contract/env';
import { LIMITS } from '../contract/limits';
import {
  assertGeneratable,
  assertPreprocessInputsExist,
  batchable,
  checkTransforms,
  DERIVE_LIMITS,
  type DeriveBody,
  type DeriveMessage,
  decisionOutput,
  describeTransform,
  type Evaluation,
  GateTally,
  type GateThresholds,
  gateFailure,
  gateThresholds,
  generateFeeds,
  parseSample,
  rowsAboveMargin,
  type SampleRow,
  seededNormal,
  splitTransforms,
  type TransformSpec,
  takeRows,
} from '../domain/derive';
import {
  ArtifactIntegrityError,
  BadRequestError,
  ConflictError,
  isMaasError,
  PayloadTooLargeError,
  UnprocessableModelError,
} from '../domain/errors';
import { validateModelName } from '../domain/names';
import {
  assertStackedPreprocessFits,
  type PreprocessSpec,
  parsePreprocessSpec,
} from '../domain/preprocess-spec';
import { assertObjectKey, assertPostprocessFits } from '../domain/registry';
import type { Tensor } from '../domain/tensor';
import type { ModelSignature, ModelVersion } from '../domain/types';
import type { DeriveQueue, DeriveTransformer } from '../ports/derive';
import type { TimeBudget } from '../ports/events';
import type { InferenceEngine, ModelSession } from '../ports/inference';
import { type CompletionOutcome, failPendingVersion, withinTime } from './registration';
import { ensureArtifact, getVersion, publish, type RegistryDeps } from './registry';
import { sha256Hex } from './session-cache';

/** What a derivation needs besides the registry: the transformer, and an engine to run the gate. */
export interface DeriveDeps extends RegistryDeps {
  readonly transformer: DeriveTransformer;
  /** Runs the parent and the derived model on the gate's rows. */
  readonly engine: InferenceEngine;
}

/** A derive request: the parent version and the request's body (see `deriveBodySchema`). */
export interface DeriveInput {
  readonly name: string;
  /** The parent version. */
  readonly version: number;
  readonly body: DeriveBody;
  readonly actor?: string;
}

/**
 * Starts a derivation: 404 for an unknown model or version, 409 `VERSION_NOT_READY` unless the parent is READY,
 * 400 for transforms given twice or a preprocess that is not last (`INVALID_TRANSFORMS`), a preprocess that is no
 * declaration or names an input the parent does not have (`INVALID_PREPROCESS`), a sample that is not uploaded
 * (`SAMPLE_NOT_FOUND`) or none where the gate cannot generate rows (`SAMPLE_REQUIRED`), 413 for a sample over
 * `DERIVE_LIMITS.maxSampleBytes`; nothing is written then. Writes the next version PENDING and queues its `derive`
 * message; when the message cannot be queued the version is completed FAILED at once and the error thrown.
 */
export async function startDerive(
  deps: RegistryDeps,
  input: DeriveInput,
  queue: DeriveQueue,
): Promise<ModelVersion> {
  const name = validateModelName(input.name);
  const body = input.body;
  checkTransforms(body.transforms);
  const parent = await getVersion(deps, name, input.version);
  if (parent.status !== 'READY') {
    throw new ConflictError(
      `version ${parent.version} of model '${name}' is ${parent.status}: only a READY version can be derived from`,
      'VERSION_NOT_READY',
    );
  }
  // The new version keeps the parent's labels and post-processing: checked now, not after the transform and gate
  // (a version registered before a check existed could carry a declaration that no longer passes it).
  assertPostprocessFits(parent.postprocess, parent.labels, parent.signature);
  // A preprocess naming an input the parent does not have could only end the version FAILED: refused now.
  assertPreprocessInputsExist(
    body.transforms,
    parent.signature,
    `version ${parent.version} of model '${name}'`,
  );
  for (const t of body.transforms) {
    if ('preprocess' in t) assertStackedPreprocessFits(parent.signature, t.preprocess);
  }
  let sampleKey: string | undefined;
  if (body.sample) {
    sampleKey = S3_KEYS.upload(name, body.sample.uploadId);
    assertObjectKey(sampleKey);
    const head = await deps.store.headObject(sampleKey);
    if (!head) {
      throw new BadRequestError(
        `no sample at upload '${body.sample.uploadId}': upload it first`,
        'SAMPLE_NOT_FOUND',
      );
    }
    if (head.sizeBytes > DERIVE_LIMITS.maxSampleBytes) {
      throw new PayloadTooLargeError(
        `the sample is ${head.sizeBytes} bytes; the limit is ${DERIVE_LIMITS.maxSampleBytes} bytes`,
      );
    }
  } else {
    assertGeneratable(parent.signature);
  }
  const pending = await deps.repo.createVersion({
    name,
    sha256: '',
    sizeBytes: 0,
    // Until it completes, the version names its parent's artifact (as a PENDING registration names its source).
    s3Key: parent.s3Key,
    signature: { inputs: [], outputs: [] },
    status: 'PENDING',
    description:
      body.description ??
      `derived from version ${parent.version}: ${body.transforms.map(describeTransform).join(', ')}`,
    ...(body.tags !== undefined ? { tags: body.tags } : {}),
    ...(parent.labels !== undefined ? { labels: [...parent.labels] } : {}),
    ...(parent.postprocess !== undefined ? { postprocess: parent.postprocess } : {}),
    ...(input.actor !== undefined ? { createdBy: input.actor } : {}),
    derivedFrom: parent.version,
    transforms: body.transforms,
  });
  try {
    await queue.send({
      type: 'derive',
      name,
      version: pending.version,
      gate: gateThresholds(body.gate),
      ...(sampleKey !== undefined ? { sampleKey } : {}),
    });
  } catch (e) {
    await failPendingVersion(deps, name, pending.version, 'the derivation could not be queued');
    throw e;
  }
  return pending;
}

/** What deriving found: the derived model, verified and past its gate, or why not. */
type Derived =
  | {
      readonly ok: true;
      readonly bytes: Uint8Array;
      readonly sha256: string;
      readonly signature: ModelSignature;
      readonly evaluation: Evaluation;
    }
  | {
      readonly ok: false;
      readonly reason: string;
      readonly evaluation?: Evaluation;
      readonly sha256?: string;
      readonly sizeBytes?: number;
    };

/**
 * Completes PENDING derived version `message.version` of `message.name` (the work queue's `derive`): READY
 * (`ModelVersionRegistered`; the model's first READY version takes `prod` as any would) or FAILED with the reason
 * (`ModelVersionFailed`). A deterministic failure (the parent gone, a transform that does not apply, a sample that
 * does not fit, a derived model that does not load, a failed gate) is an outcome; any other error is thrown, and so
 * is running out of `time` (the invocation's, less `reserveMs`), so that the message is retried and its last
 * attempt recorded as failed (`failDerivation`) rather than cut off with the version PENDING.
 */
export async function runDerive(
  deps: DeriveDeps,
  message: DeriveMessage,
  time?: { readonly budget: TimeBudget; readonly reserveMs: number },
): Promise<CompletionOutcome> {
  const { name, version } = message;
  const v = await deps.repo.getVersion(name, version);
  if (!v) return 'GONE';
  if (v.status !== 'PENDING') return v.status;
  // The transforms as applied: what the version records once completed, whatever the outcome.
  const transforms = v.transforms?.length ? deps.transformer.resolve(v.transforms) : undefined;
  const applied = transforms ? { transforms } : {};
  let derived: Derived;
  try {
    derived = await withinTime(
      derive(deps, v, transforms ?? [], message),
      time,
      `deriving version ${version} of '${name}'`,
    );
  } catch (e) {
    if (!isMaasError(e) || e.status >= 500) throw e;
    derived = { ok: false, reason: e.message };
  }
  if (!derived.ok) {
    const done = await completeOrSettled(deps, name, version, {
      status: 'FAILED',
      failureReason: derived.reason,
      ...(derived.sha256 !== undefined && derived.sizeBytes !== undefined
        ? { sha256: derived.sha256, sizeBytes: derived.sizeBytes }
        : {}),
      ...(derived.evaluation ? { evaluation: derived.evaluation } : {}),
      ...applied,
    });
    if (done !== 'FAILED') return done;
    await publish(deps, { type: 'ModelVersionFailed', detail: { name, version, reason: derived.reason } });
    return 'FAILED';
  }
  const s3Key = S3_KEYS.model(name, derived.sha256);
  // The artifact before the READY version, as for registrations: a READY version always has its artifact.
  await ensureArtifact(deps.store, s3Key, derived.bytes);
  const done = await completeOrSettled(deps, name, version, {
    status: 'READY',
    sha256: derived.sha256,
    sizeBytes: derived.bytes.byteLength,
    s3Key,
    signature: derived.signature,
    evaluation: derived.evaluation,
    ...applied,
  });
  if (done !== 'READY') return done;
  await publish(deps, {
    type: 'ModelVersionRegistered',
    detail: { name, version, sha256: derived.sha256 },
  });
  return 'READY';
}

/** Completes the version; when another writer completed or deleted it first, its state now. */
async function completeOrSettled(
  deps: DeriveDeps,
  name: string,
  version: number,
  completion: Parameters<DeriveDeps['repo']['completeVersion']>[2],
): Promise<CompletionOutcome> {
  try {
    await deps.repo.completeVersion(name, version, completion);
    return completion.status;
  } catch (e) {
    const code = isMaasError(e) ? e.code : undefined;
    if (
      code !== 'VERSION_NOT_PENDING' &&
      code !== 'VERSION_NOT_FOUND' &&
      !(isMaasError(e) && e.status === 404)
    ) {
      throw e;
    }
    return (await deps.repo.getVersion(name, version))?.status ?? 'GONE';
  }
}

/** Derives version `v` from its parent by `transforms` (its own, resolved) and runs the gate. */
async function derive(
  deps: DeriveDeps,
  v: ModelVersion,
  transforms: readonly TransformSpec[],
  message: DeriveMessage,
): Promise<Derived> {
  if (v.derivedFrom === undefined || transforms.length === 0) {
    return { ok: false, reason: `version ${v.version} of '${v.name}' is not a derived version` };
  }
  const parent = await deps.repo.getVersion(v.name, v.derivedFrom);
  if (!parent || (parent.status !== 'READY' && parent.status !== 'ARCHIVED')) {
    return {
      ok: false,
      reason: `version ${v.derivedFrom} of '${v.name}', the parent, is ${parent ? parent.status : 'deleted'}`,
    };
  }
  const parentBytes = await deps.store.getObject(parent.s3Key);
  if (sha256Hex(parentBytes) !== parent.sha256) {
    throw new ArtifactIntegrityError(
      `the artifact of version ${parent.version} of '${v.name}' does not match its sha256`,
    );
  }
  const sample = message.sampleKey
    ? parseSample(
        new TextDecoder().decode(await deps.store.getObject(message.sampleKey)),
        parent.signature,
        `model '${v.name}' version ${parent.version}`,
      )
    : undefined;
  const { gated, preprocess } = splitTransforms(transforms);
  // The gate compares the parent with the model before its preprocessing (which changes the inputs).
  const gatedBytes = gated.length > 0 ? await deps.transformer.apply(parentBytes, gated) : parentBytes;
  const evaluation = await runGate(
    deps.engine,
    parentBytes,
    gatedBytes,
    parent.signature,
    message.gate,
    sample,
  );
  const bytes = preprocess ? await deps.transformer.apply(gatedBytes, [preprocess]) : gatedBytes;
  const maxBytes = deps.maxModelBytes ?? LIMITS.maxModelBytes;
  if (bytes.byteLength > maxBytes) {
    return {
      ok: false,
      reason: `the derived model is ${bytes.byteLength} bytes; the limit is ${maxBytes}`,
      evaluation,
    };
  }
  const sha256 = sha256Hex(bytes);
  let signature: ModelSignature;
  try {
    signature = await deps.inspector.inspect(bytes);
  } catch (e) {
    if (!(e instanceof UnprocessableModelError)) throw e;
    return {
      ok: false,
      reason: `the derived model: ${e.message}`,
      evaluation,
      sha256,
      sizeBytes: bytes.byteLength,
    };
  }
  // The raw inputs say what is applied to them (model metadata lists it).
  signature = withInputsPreprocess(
    signature,
    parent.signature,
    preprocess ? parsePreprocessSpec(preprocess.preprocess) : undefined,
  );
  assertPostprocessFits(v.postprocess, v.labels, signature);
  if (!evaluation.passed) {
    return { ok: false, reason: gateFailure(evaluation), evaluation, sha256, sizeBytes: bytes.byteLength };
  }
  return { ok: true, bytes, sha256, signature, evaluation };
}

/**
 * The derived model's inputs with what is applied to them (`parameters.preprocess`). The transforms other than
 * `preprocess` leave the inputs as they are, so each input keeps the parent's steps (by name); a `preprocess`
 * transform's steps come first on the inputs it declares, ahead of the parent's own, as its nodes sit in front of
 * them.
 */
export function withInputsPreprocess(
  signature: ModelSignature,
  parent: ModelSignature,
  spec?: PreprocessSpec,
): ModelSignature {
  return {
    ...signature,
    inputs: signature.inputs.map((i) => {
      const p = parent.inputs.find((x) => x.name === i.name);
      const steps = [...(spec?.[i.name] ?? []), ...(p?.parameters?.preprocess ?? [])];
      return steps.length > 0 ? { ...i, parameters: { ...i.parameters, preprocess: steps } } : i;
    }),
  };
}

/**
 * Runs the accuracy gate: the parent and the derived model on the sample's requests as given, or on generated
 * rows that are not near-ties (see functions/domain/derive.ts), and their figures against `gate`. A derived model
 * the engine cannot load is a 422.
 */
export async function runGate(
  engine: InferenceEngine,
  parentBytes: Uint8Array,
  childBytes: Uint8Array,
  signature: ModelSignature,
  gate: GateThresholds,
  sample?: readonly SampleRow[],
): Promise<Evaluation> {
  const parent = await engine.createSession(parentBytes);
  let child: ModelSession;
  try {
    child = await engine.createSession(childBytes);
  } catch (e) {
    await engine.release(parent);
    if (isMaasError(e) && e.status < 500) throw e;
    throw new UnprocessableModelError(
      `onnxruntime cannot load the derived model: ${((e as Error)?.message ?? String(e)).split('\n')[0]}`,
    );
  }
  const outputs = signature.outputs.map((o) => o.name);
  const tally = new GateTally(sample ? 'sample' : 'generated');
  try {
    if (sample) {
      for (const { line, feeds } of sample) {
        try {
          const p = await engine.run(parent, feeds, outputs);
          tally.add(p, await engine.run(child, feeds, outputs));
        } catch (e) {
          // A request the model refuses (a category its pre-processing does not know, …): named by its line.
          if (isMaasError(e) && e.status < 500)
            throw new BadRequestError(`sample line ${line}: ${e.message}`, e.code);
          throw e;
        }
      }
      return tally.evaluate(gate);
    }
    const normal = seededNormal(gate.seed);
    const batched = batchable(signature);
    const maxCandidates = gate.rows * DERIVE_LIMITS.candidatesPerRow;
    let generated = 0;
    while (tally.rows < gate.rows && generated < maxCandidates) {
      const want = batched ? Math.min(DERIVE_LIMITS.batchRows, gate.rows - tally.rows) : 1;
      const feeds = generateFeeds(signature, want, normal);
      generated += want;
      const p = await engine.run(parent, feeds, outputs);
      const decision = decisionOutput(p);
      if (!decision) {
        tally.add(p, await engine.run(child, feeds, outputs));
        continue;
      }
      const decided = p[decision] as Tensor;
      const rows = decided.shape[0] ?? 1;
      const keep = rowsAboveMargin(decided, gate.nearTieMargin);
      if (keep.length < rows) tally.exclude(rows - keep.length);
      if (keep.length === 0 || (!batched && keep.length < rows)) continue;
      const all = keep.length === rows;
      const keptFeeds = all ? feeds : mapTensors(feeds, (t) => takeRows(t, keep));
      const keptParent = all ? p : mapTensors(p, (t) => takeRows(t, keep));
      tally.add(keptParent, await engine.run(child, keptFeeds, outputs));
    }
    return tally.evaluate(gate);
  } finally {
    await Promise.all([engine.release(parent), engine.release(child)]);
  }
}

function mapTensors(
  tensors: Readonly<Record<string, Tensor>>,
  f: (t: Tensor) => Tensor,
): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, f(t)]));
}

/**
 * Ends a derived version FAILED after the work queue's last attempt (the worker calls it, as it does for a
 * registration), unless it is no longer PENDING. Returns whether it did.
 */
export function failDerivation(
  deps: RegistryDeps,
  message: Pick<DeriveMessage, 'name' | 'version'>,
  attempts: number,
  error: unknown,
): Promise<boolean> {
  const reason = `the derivation could not be completed after ${attempts} attempts: ${(error as Error)?.message ?? String(error)}`;
  return failPendingVersion(deps, message.name, message.version, reason);
}

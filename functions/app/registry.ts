/**
 * Registry use cases: register a version from an artifact in the bucket, move / roll back / remove
 * aliases, archive and delete versions, listings, and presigned uploads. Shared by the HTTP handler,
 * the event-driven registration and the CLI.
 */
import { createHash, randomUUID } from 'node:crypto';
import { S3_KEYS } from '../contract/env';
import { LIMITS } from '../contract/limits';
import type { CaptureConfig } from '../domain/capture';
import {
  BadRequestError,
  ConflictError,
  isMaasError,
  NotFoundError,
  PayloadTooLargeError,
  UnprocessableModelError,
} from '../domain/errors';
import { validateAliasName, validateModelName } from '../domain/names';
import {
  type PreprocessSpec,
  parsePreprocessSpec,
  withPreprocessParameters,
} from '../domain/preprocess-spec';
import { assertObjectKey, assertPostprocessFits, assertStatusChange } from '../domain/registry';
import {
  aliasNotFound,
  findLatestMove,
  modelNotFound,
  planRollback,
  ROLLBACK_HISTORY_PAGES,
  type RollbackInput,
  rollbackTargetDeleted,
  versionNotFound,
} from '../domain/registry-plans';
import { sameRouting } from '../domain/rollout';
import type {
  AliasMove,
  AliasMoveResult,
  AliasRouting,
  AliasState,
  HistoryEntry,
  Model,
  ModelSignature,
  ModelVersion,
  Page,
  PostprocessSpec,
} from '../domain/types';
import {
  type ArtifactStore,
  type Clock,
  type EventPublisher,
  type ModelInspector,
  type RegistryEvent,
  type RegistryRepository,
  systemClock,
} from '../ports';
import type { ModelTransformer } from '../ports/derive';
import type { Logger } from '../ports/logger';

export interface RegistryDeps {
  readonly repo: RegistryRepository;
  readonly store: ArtifactStore;
  readonly inspector: ModelInspector;
  readonly events?: EventPublisher;
  readonly clock?: Clock;
  /** @default LIMITS.maxModelBytes */
  readonly maxModelBytes?: number;
  /** Where a registry event that could not be published is reported. @default none */
  readonly logger?: Pick<Logger, 'warn'>;
  /**
   * Compiles a registration's `preprocess` into its model. @default the ONNX transforms of functions/transforms,
   * loaded when a registration first declares pre-processing
   */
  readonly transformer?: ModelTransformer;
}

export interface RegisterVersionInput {
  readonly name: string;
  /** Key of the artifact in the service bucket (`uploads/…`, `incoming/…`). */
  readonly sourceKey: string;
  readonly description?: string;
  readonly tags?: Record<string, string>;
  readonly labels?: string[];
  readonly postprocess?: PostprocessSpec;
  /**
   * Pre-processing compiled into the registered model (`parsePreprocessSpec`'s result): the version takes the
   * raw inputs and records it as `transforms: [{ preprocess }]`.
   */
  readonly preprocess?: PreprocessSpec;
  readonly actor?: string;
  /** The idempotency key's sha-256, recorded on the version (`ModelVersion.registrationKey`). */
  readonly registrationKey?: string;
}

/** A registration request checked up to its artifact's bytes (name, key, existence and size by HEAD). */
export interface PreparedRegistration extends RegisterVersionInput {
  /** The artifact's size as the HEAD reported it. */
  readonly sizeBytes: number;
}

/** Checks the request and HEADs its artifact: 400 when it is missing, 413 when too large. Writes nothing. */
export async function prepareRegistration(
  deps: Pick<RegistryDeps, 'store' | 'maxModelBytes'>,
  input: RegisterVersionInput,
): Promise<PreparedRegistration> {
  const name = validateModelName(input.name);
  // Every source (uploadId, s3Uri, drop folder) must name one literal key: no dot segments, controls, > 1024 bytes.
  assertObjectKey(input.sourceKey);
  const head = await deps.store.headObject(input.sourceKey);
  if (!head) {
    throw new BadRequestError(`no artifact at '${input.sourceKey}': upload it first`, 'ARTIFACT_NOT_FOUND');
  }
  const maxBytes = deps.maxModelBytes ?? LIMITS.maxModelBytes;
  if (head.sizeBytes > maxBytes) {
    throw new PayloadTooLargeError(`the artifact is ${head.sizeBytes} bytes; the limit is ${maxBytes} bytes`);
  }
  return { ...input, name, sizeBytes: head.sizeBytes };
}

/**
 * Registers the artifact at `sourceKey` as the next version of `name`.
 *
 * Size is checked with a HEAD first (PayloadTooLargeError, nothing recorded). The bytes are hashed
 * and inspected; the inspected bytes of a loadable model are written to `models/{name}/{sha256}.onnx` *before* its READY
 * version is written, so a READY version always has its artifact (a crash in between leaves only an
 * unreferenced object). An artifact that is not a loadable model is recorded as a FAILED version
 * with `failureReason` — the version number is consumed, which keeps the numbering gap-free and
 * leaves a trace of the attempt — and UnprocessableModelError (422) is thrown.
 */
export async function registerVersion(
  deps: RegistryDeps,
  input: RegisterVersionInput,
): Promise<ModelVersion> {
  const prepared = await prepareRegistration(deps, input);
  return recordRegistration(deps, prepared, await verifyArtifact(deps, prepared));
}

/** What verifying an artifact found: a loadable model, written to its content-addressed key, or why not. */
export type VerifiedArtifact =
  | {
      readonly ok: true;
      readonly sha256: string;
      readonly sizeBytes: number;
      /** The content-addressed key the verified bytes were written to. */
      readonly s3Key: string;
      readonly signature: ModelSignature;
    }
  | { readonly ok: false; readonly sha256: string; readonly sizeBytes: number; readonly reason: string };

/**
 * Reads, hashes and inspects the artifact at `sourceKey`, compiles its pre-processing into it when one is declared
 * (the stored model is then the preprocessed one: its hash, size and signature, the raw inputs saying what is
 * applied), checks the post-processing against its signature and writes the bytes to `models/{name}/{sha256}.onnx`.
 * Writes nothing to the registry. An artifact that is not a loadable model is an outcome (`ok: false`); a too large
 * one, pre-processing that does not fit the model (400 `INVALID_PREPROCESS`) or post-processing that does not fit
 * is thrown.
 */
export async function verifyArtifact(
  deps: Pick<RegistryDeps, 'store' | 'inspector' | 'maxModelBytes' | 'transformer'>,
  source: Pick<RegisterVersionInput, 'name' | 'sourceKey' | 'labels' | 'postprocess' | 'preprocess'>,
): Promise<VerifiedArtifact> {
  const maxBytes = deps.maxModelBytes ?? LIMITS.maxModelBytes;
  const tooLarge = (n: number) =>
    new PayloadTooLargeError(`the artifact is ${n} bytes; the limit is ${maxBytes} bytes`);
  let bytes = await deps.store.getObject(source.sourceKey);
  if (bytes.byteLength > maxBytes) throw tooLarge(bytes.byteLength);
  let sha256 = createHash('sha256').update(bytes).digest('hex');
  let signature: ModelSignature;
  try {
    signature = await deps.inspector.inspect(bytes);
  } catch (e) {
    if (!(e instanceof UnprocessableModelError)) throw e;
    return { ok: false, sha256, sizeBytes: bytes.byteLength, reason: e.message };
  }
  if (source.preprocess !== undefined) {
    const transformer = deps.transformer ?? (await defaultTransformer());
    bytes = await transformer.apply(bytes, [{ preprocess: source.preprocess }]);
    if (bytes.byteLength > maxBytes) throw tooLarge(bytes.byteLength);
    sha256 = createHash('sha256').update(bytes).digest('hex');
    try {
      signature = withPreprocessParameters(await deps.inspector.inspect(bytes), source.preprocess);
    } catch (e) {
      if (!(e instanceof UnprocessableModelError)) throw e;
      return {
        ok: false,
        sha256,
        sizeBytes: bytes.byteLength,
        reason: `the model with its pre-processing: ${e.message}`,
      };
    }
  }
  assertPostprocessFits(source.postprocess, source.labels, signature);
  const s3Key = S3_KEYS.model(source.name, sha256);
  if (s3Key !== source.sourceKey) await ensureArtifact(deps.store, s3Key, bytes);
  return { ok: true, sha256, sizeBytes: bytes.byteLength, s3Key, signature };
}

/** The ONNX pre-processing compiler, loaded once and only by a registration that declares pre-processing. */
let preprocessCompiler: Promise<ModelTransformer> | undefined;
function defaultTransformer(): Promise<ModelTransformer> {
  preprocessCompiler ??= import('../transforms/preprocess').then(({ applyPreprocess }) => ({
    apply: async (model, transforms) => {
      let bytes = model;
      for (const t of transforms) {
        if (!('preprocess' in t)) throw new Error(`only preprocess is compiled at registration`);
        bytes = applyPreprocess(bytes, parsePreprocessSpec(t.preprocess));
      }
      return bytes;
    },
  }));
  return preprocessCompiler;
}

/**
 * The pre-processing a version records in its `transforms` (a registration's own), parsed; undefined without one.
 */
export function registeredPreprocess(
  v: Pick<ModelVersion, 'transforms' | 'derivedFrom'>,
): PreprocessSpec | undefined {
  if (v.derivedFrom !== undefined) return undefined;
  const t = v.transforms?.find((x) => 'preprocess' in x);
  return t && 'preprocess' in t ? parsePreprocessSpec(t.preprocess) : undefined;
}

/** The fields a registration request gives its version (description, tags, labels, post-processing, creator). */
export function requestedFields(input: RegisterVersionInput) {
  return {
    ...(input.description !== undefined ? { description: input.description } : {}),
    ...(input.tags !== undefined ? { tags: input.tags } : {}),
    ...(input.labels !== undefined ? { labels: input.labels } : {}),
    ...(input.postprocess !== undefined ? { postprocess: input.postprocess } : {}),
    ...(input.preprocess !== undefined ? { transforms: [{ preprocess: input.preprocess }] } : {}),
    ...(input.actor !== undefined ? { createdBy: input.actor } : {}),
    ...(input.registrationKey !== undefined ? { registrationKey: input.registrationKey } : {}),
  };
}

/**
 * Records a verified artifact as the next version: READY (ModelVersionRegistered), or FAILED with the reason
 * (ModelVersionFailed) and UnprocessableModelError (422) thrown.
 */
export async function recordRegistration(
  deps: RegistryDeps,
  prepared: PreparedRegistration,
  verified: VerifiedArtifact,
): Promise<ModelVersion> {
  const version = await recordVerified(deps, prepared, verified);
  if (version.status === 'FAILED') throw failedRegistration(version);
  return version;
}

/** The 422 of a registration whose artifact was recorded as FAILED version `v`. */
export function failedRegistration(
  v: Pick<ModelVersion, 'name' | 'version' | 'failureReason'>,
): UnprocessableModelError {
  return new UnprocessableModelError(
    `version ${v.version} of '${v.name}' is FAILED: ${v.failureReason ?? ''}`,
  );
}

/** Records a verified artifact as the next version, READY or FAILED (not thrown), and announces it. */
export async function recordVerified(
  deps: RegistryDeps,
  prepared: PreparedRegistration,
  verified: VerifiedArtifact,
): Promise<ModelVersion> {
  const name = prepared.name;
  const common = {
    name,
    sha256: verified.sha256,
    sizeBytes: verified.sizeBytes,
    ...requestedFields(prepared),
  };
  if (!verified.ok) {
    const failed = await deps.repo.createVersion({
      ...common,
      s3Key: prepared.sourceKey,
      signature: { inputs: [], outputs: [] },
      status: 'FAILED',
      failureReason: verified.reason,
    });
    await publish(deps, {
      type: 'ModelVersionFailed',
      detail: { name, version: failed.version, reason: verified.reason },
    });
    return failed;
  }
  const version = await deps.repo.createVersion({
    ...common,
    s3Key: verified.s3Key,
    signature: verified.signature,
    status: 'READY',
  });
  await publish(deps, {
    type: 'ModelVersionRegistered',
    detail: { name, version: version.version, sha256: verified.sha256 },
  });
  return version;
}

/**
 * Writes the verified bytes to their content-addressed key unless they are already there. Only the registry
 * writes under `models/`, always the bytes it hashed, so an existing object of the same size is the same
 * artifact. The bytes written are the ones hashed and inspected — never a server-side copy of the source key,
 * which may have been overwritten since it was read. Concurrent registrations of the same bytes write the
 * same key at once, which object stores may answer with a transient 5xx: such failures are retried with
 * jittered backoff before giving up.
 */
export async function ensureArtifact(store: ArtifactStore, toKey: string, bytes: Uint8Array) {
  const attempts = 5;
  for (let attempt = 1; ; attempt++) {
    try {
      if ((await store.headObject(toKey))?.sizeBytes === bytes.byteLength) return;
      await store.putObject(toKey, bytes);
      return;
    } catch (e) {
      if (isMaasError(e) || attempt >= attempts) throw e;
      await new Promise((r) => setTimeout(r, 25 * 2 ** attempt * (0.5 + Math.random())));
    }
  }
}

/** A presigned PUT for a new upload slot `uploads/{name}/{uploadId}.onnx`. */
export async function createUpload(
  deps: Pick<RegistryDeps, 'store' | 'clock'>,
  name: string,
  sizeBytes: number,
  ttlSeconds: number = LIMITS.uploadUrlTtlSeconds,
): Promise<{ uploadId: string; url: string; expiresAt: string }> {
  validateModelName(name);
  if (sizeBytes > LIMITS.maxModelBytes) {
    throw new PayloadTooLargeError(
      `an artifact of ${sizeBytes} bytes is over the limit of ${LIMITS.maxModelBytes} bytes`,
    );
  }
  const uploadId = randomUUID();
  const url = await deps.store.presignPut(S3_KEYS.upload(name, uploadId), ttlSeconds, sizeBytes);
  const expiresAt = new Date((deps.clock ?? systemClock).now().getTime() + ttlSeconds * 1000).toISOString();
  return { uploadId, url, expiresAt };
}

export async function getModel(deps: Pick<RegistryDeps, 'repo'>, name: string): Promise<Model> {
  const model = await deps.repo.getModel(validateModelName(name));
  if (!model) throw modelNotFound(name);
  return model;
}

export function listModels(
  deps: Pick<RegistryDeps, 'repo'>,
  limit: number,
  nextToken?: string,
): Promise<Page<Model>> {
  return deps.repo.listModels(limit, nextToken);
}

export async function getVersion(
  deps: Pick<RegistryDeps, 'repo'>,
  name: string,
  version: number,
): Promise<ModelVersion> {
  const v = await deps.repo.getVersion(validateModelName(name), version);
  if (!v) {
    await getModel(deps, name);
    throw versionNotFound(name, version);
  }
  return v;
}

/** Newest first; 404 for an unknown model. */
export async function listVersions(
  deps: Pick<RegistryDeps, 'repo'>,
  name: string,
  limit: number,
  nextToken?: string,
): Promise<Page<ModelVersion>> {
  await getModel(deps, name);
  return deps.repo.listVersions(name, limit, nextToken);
}

/**
 * Description, tags, capture (null removes it), and READY -> ARCHIVED (409 otherwise, or while an alias points
 * at the version).
 */
export async function updateVersion(
  deps: Pick<RegistryDeps, 'repo'>,
  name: string,
  version: number,
  patch: {
    description?: string;
    tags?: Record<string, string>;
    status?: 'ARCHIVED';
    capture?: CaptureConfig | null;
  },
): Promise<ModelVersion> {
  const current = await getVersion(deps, name, version);
  if (patch.status !== undefined) assertStatusChange(current, patch.status);
  return deps.repo.updateVersion(name, version, patch);
}

/** 409 while an alias points at the version. The artifact stays in the bucket. */
export async function deleteVersion(
  deps: Pick<RegistryDeps, 'repo'>,
  name: string,
  version: number,
): Promise<void> {
  await getVersion(deps, name, version);
  await deps.repo.deleteVersion(name, version);
}

export interface MoveAliasInput {
  readonly name: string;
  readonly alias: string;
  readonly version: number;
  /** The version the alias must point at now (0 = it must not exist); 412 otherwise. */
  readonly expectedVersion?: number;
  /** The alias's revision observed by the caller; 412 otherwise. */
  readonly expectedRevision?: number;
  readonly reason?: string;
  readonly actor: string;
}

/** Points `alias` at a READY version (409 otherwise), conditionally on `expectedVersion`. */
export async function moveAlias(
  deps: Pick<RegistryDeps, 'repo' | 'events' | 'logger'>,
  input: MoveAliasInput,
): Promise<AliasMoveResult> {
  validateModelName(input.name);
  validateAliasName(input.alias);
  return applyMove(deps, {
    name: input.name,
    alias: input.alias,
    version: input.version,
    ...(input.expectedVersion !== undefined ? { expectedVersion: input.expectedVersion } : {}),
    ...(input.expectedRevision !== undefined ? { expectedRevision: input.expectedRevision } : {}),
    ...(input.reason !== undefined ? { reason: input.reason } : {}),
    actor: input.actor,
  });
}

/**
 * Moves the alias back to the version it pointed at before its latest move (409 `NO_ROLLBACK_TARGET` when there is
 * none, or when that version was deleted since; 409 `VERSION_NOT_READY` when it was archived since, as for any move;
 * see `planRollback`; split changes, which are not moves, are passed over, `findLatestMove`). The move is conditional
 * on the alias still pointing where that history entry says, so a concurrent move makes the rollback fail with 412
 * instead of undoing the wrong change; and on the caller's `expectedVersion` / `expectedRevision` when given, so
 * that a caller rolls back only the alias it saw (412 otherwise).
 */
export async function rollbackAlias(
  deps: Pick<RegistryDeps, 'repo' | 'events' | 'logger'>,
  input: RollbackInput,
): Promise<AliasMoveResult> {
  validateModelName(input.name);
  validateAliasName(input.alias);
  await getModel(deps, input.name);
  const read = (token?: string) => deps.repo.aliasHistory(input.name, input.alias, LIMITS.maxPageSize, token);
  const { latest, empty } = await findLatestMove(await read(), read);
  if (empty) return applyMove(deps, planRollback(input, undefined));
  if (!latest) {
    // Only split changes within reach: rolling back would move the alias onto its own version.
    throw new ConflictError(
      `alias '${input.alias}' of model '${input.name}' has no move among its last ${LIMITS.maxPageSize * ROLLBACK_HISTORY_PAGES} history entries to roll back`,
      'NO_ROLLBACK_TARGET',
    );
  }
  const move = planRollback(input, latest);
  try {
    return await applyMove(deps, move);
  } catch (e) {
    // The move's target is the version the alias pointed at before: deleted since, there is nothing to go back to
    // (the request's path is right; the model was found first).
    if (e instanceof NotFoundError && e.code === 'VERSION_NOT_FOUND' && move.version !== null) {
      throw rollbackTargetDeleted(input.name, input.alias, move.version);
    }
    throw e;
  }
}

/** Removes the alias (history kept, with a `version: null` entry). */
export async function deleteAlias(
  deps: Pick<RegistryDeps, 'repo' | 'events' | 'logger'>,
  input: { name: string; alias: string; actor: string; reason?: string },
): Promise<AliasMoveResult> {
  validateModelName(input.name);
  validateAliasName(input.alias);
  return applyMove(deps, {
    name: input.name,
    alias: input.alias,
    version: null,
    actor: input.actor,
    ...(input.reason !== undefined ? { reason: input.reason } : {}),
  });
}

export interface UpdateAliasInput {
  readonly name: string;
  readonly alias: string;
  /** The alias's own capture declaration; null removes it; undefined leaves it. */
  readonly capture?: CaptureConfig | null;
  /** The alias's traffic split; null removes it; undefined leaves it. */
  readonly routing?: AliasRouting | null;
  /** With `routing`: the alias's revision observed by the caller (412 otherwise). */
  readonly expectedRevision?: number;
  /** With `routing`: recorded in the history (default: what the split became, e.g. `canary v3 at 10%`). */
  readonly reason?: string;
  readonly actor: string;
}

/**
 * Changes the alias's own capture declaration (which wins over the version's for requests through the alias; not a
 * move: the revision stays) and/or its traffic split (a change of the alias: revision + 1 and a history entry; see
 * `planAliasRouting` for its 404 / 409 / 412). The split is changed first, so a refused split leaves the capture
 * as it was. 404 `MODEL_NOT_FOUND` / `ALIAS_NOT_FOUND`. The alias as it now is (without the serving copies). A
 * change of the split is announced (`AliasRoutingChanged`, with the split before and after) when it changed. A split
 * that is the alias's already (clearing one it does not have, say) is no change: nothing is written (no revision, no
 * history entry, no event), though a stale `expectedRevision` is still a 412.
 */
export async function updateAlias(
  deps: Pick<RegistryDeps, 'repo' | 'events' | 'logger'>,
  input: UpdateAliasInput,
): Promise<Omit<AliasState, 'target' | 'canaryTarget'>> {
  validateModelName(input.name);
  validateAliasName(input.alias);
  let state: AliasState | undefined;
  if (input.routing !== undefined) {
    // The split before, for the event (read only when events are published).
    const before = deps.events ? await deps.repo.getAlias(input.name, input.alias) : undefined;
    state = await deps.repo.setAliasRouting({
      name: input.name,
      alias: input.alias,
      routing: input.routing,
      ...(input.expectedRevision !== undefined ? { expectedRevision: input.expectedRevision } : {}),
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
      actor: input.actor,
    });
    const previousRouting = before?.routing ?? null;
    const routing = state.routing ?? null;
    if (deps.events && !sameRouting(previousRouting, routing)) {
      await publish(deps, {
        type: 'AliasRoutingChanged',
        detail: {
          name: input.name,
          alias: input.alias,
          version: state.version,
          revision: state.revision,
          routing,
          previousRouting,
        },
      });
    }
  }
  if (input.capture !== undefined) {
    state = await deps.repo.setAliasCapture(input.name, input.alias, input.capture);
  }
  if (!state) {
    const current = await deps.repo.getAlias(input.name, input.alias);
    if (!current) {
      await getModel(deps, input.name);
      throw aliasNotFound(input.name, input.alias);
    }
    state = current;
  }
  const { target: _target, canaryTarget: _canary, ...alias } = state;
  return alias;
}

/** Newest first; 404 for an unknown model or an alias that never existed. */
export async function aliasHistory(
  deps: Pick<RegistryDeps, 'repo'>,
  name: string,
  alias: string,
  limit: number,
  nextToken?: string,
): Promise<Page<HistoryEntry>> {
  validateAliasName(alias);
  await getModel(deps, name);
  const page = await deps.repo.aliasHistory(name, alias, limit, nextToken);
  if (nextToken === undefined && page.items.length === 0) throw aliasNotFound(name, alias);
  return page;
}

// ---------------------------------------------------------------------------------------------

/** Moves (or removes) an alias in the registry, then announces the committed move. */
async function applyMove(
  deps: Pick<RegistryDeps, 'repo' | 'events' | 'logger'>,
  move: AliasMove,
): Promise<AliasMoveResult> {
  const r = await deps.repo.moveAlias(move);
  await publish(deps, {
    type: 'AliasMoved',
    detail: { name: move.name, alias: r.alias, version: r.version, previousVersion: r.previousVersion },
  });
  return r;
}

/**
 * Events are notifications of a change already committed: a failure to publish is logged and does
 * not fail the request (a retry by the caller would register a second version).
 */
export async function publish(
  deps: Pick<RegistryDeps, 'events' | 'logger'>,
  event: RegistryEvent,
): Promise<void> {
  if (!deps.events) return;
  try {
    await deps.events.publish(event);
  } catch (e) {
    deps.logger?.warn('event not published', { event: event.type, error: (e as Error).message });
  }
}

/**
 * Registry planners (pure). Each takes the registry state a repository has just read and a request, and either
 * returns a plan — what to write, and the conditions under which the write may happen — or throws the domain
 * error. A repository (DynamoDB, in memory) only reads the state, writes a plan atomically with its
 * conditions, and re-reads and plans again when a condition no longer held, so every rule of version
 * allocation, alias moves, history, rollback, archive and delete lives here once, whatever the storage.
 *
 * Free of the request schemas (zod), like ./registry-rules.
 */
import { DEFAULT_ALIAS, LIMITS } from '../contract/limits';
import { storedSizeBytes } from '../contract/table';
import { ConflictError, type MaasError, NotFoundError, PreconditionFailedError } from './errors';
import { postprocessOutputNames, servedOutputSpecs } from './postprocess';
import { assertAliasable } from './registry-rules';
import {
  type AliasMove,
  type AliasMoveResult,
  type AliasRouting,
  type AliasState,
  type HistoryEntry,
  type HistoryRecord,
  type ModelVersion,
  type NewVersion,
  OPTIONAL_VERSION_FIELDS,
  type TensorSpec,
  type VersionCompletion,
  type VersionPatch,
  type VersionStatus,
} from './types';

// ---------------------------------------------------------------------------------------------
// Not found

/** 404 `MODEL_NOT_FOUND`. */
export function modelNotFound(name: string): NotFoundError {
  return new NotFoundError(`model '${name}' not found`, 'MODEL_NOT_FOUND');
}

/** 404 `VERSION_NOT_FOUND`. */
export function versionNotFound(name: string, version: number): NotFoundError {
  return new NotFoundError(`version ${version} of model '${name}' not found`, 'VERSION_NOT_FOUND');
}

/** 404 `ALIAS_NOT_FOUND`. */
export function aliasNotFound(name: string, alias: string): NotFoundError {
  return new NotFoundError(`alias '${alias}' of model '${name}' not found`, 'ALIAS_NOT_FOUND');
}

// ---------------------------------------------------------------------------------------------
// Alias targets

/**
 * Fields of a version that the predict path serves from: they never change while an alias points at it
 * (description and tags may), but `capture`, whose changes are copied to the aliases' targets.
 */
const SERVING_FIELDS = [
  'name',
  'version',
  'status',
  'sha256',
  'sizeBytes',
  's3Key',
  'signature',
  'labels',
  'postprocess',
  'createdAt',
  'capture',
] as const;

/** The serving fields of a version: what an alias carries of its target (see `AliasState.target`). */
export function servingSnapshot(v: ModelVersion): ModelVersion {
  const snapshot: Record<string, unknown> = {};
  for (const k of SERVING_FIELDS) {
    if (v[k] !== undefined && v[k] !== null) snapshot[k] = v[k];
  }
  return snapshot as unknown as ModelVersion;
}

/**
 * 409 `ALIAS_TOO_LARGE` when the serving copies alias `alias` would carry, of its version (`target`) and of its
 * canary (`canary`), come to more than `LIMITS.maxAliasCopiesBytes` together: DynamoDB could not store the alias.
 * `fix` tells the caller what to change instead.
 */
function assertCopiesFit(
  name: string,
  alias: string,
  target: ModelVersion | undefined,
  canary: ModelVersion,
  fix: string,
): void {
  const targetBytes = storedSizeBytes(target);
  const canaryBytes = storedSizeBytes(canary);
  const total = targetBytes + canaryBytes;
  if (total <= LIMITS.maxAliasCopiesBytes) return;
  const describe = (v: ModelVersion, bytes: number) =>
    `version ${v.version} (${bytes} bytes, ${storedSizeBytes(v.labels ?? [])} of them labels)`;
  throw new ConflictError(
    `alias '${alias}' of model '${name}' cannot carry the serving fields of ${target ? describe(target, targetBytes) : 'its version'} and of its canary ${describe(canary, canaryBytes)} together: ${total} bytes, more than the ${LIMITS.maxAliasCopiesBytes} an alias holds. ${fix}`,
    'ALIAS_TOO_LARGE',
  );
}

/** An alias written by a plan, with the history entry of the move that writes it. */
export interface AliasWrite {
  readonly state: AliasState;
  readonly history: HistoryRecord;
}

// ---------------------------------------------------------------------------------------------
// Version allocation

/** The version counter of a model. */
export interface VersionCounter {
  /** The highest version number allocated (0 before the first). */
  readonly latestVersion: number;
  /** The first version registered READY, once there is one. */
  readonly firstReadyVersion?: number;
}

/** What registering a version reads. */
export interface VersionCreationState {
  /** The model's counter; undefined when the model does not exist yet. */
  readonly counter: VersionCounter | undefined;
  /**
   * The default alias exists although the model never had a READY version (only possible with data written by
   * other means): the first READY version then does not take it, so registration does not fail on it forever.
   */
  readonly defaultAliasTaken: boolean;
}

/**
 * One registration: the counter goes from `expectedLatestVersion` to `version.version` and the version is
 * written, in one atomic write, or nothing is. A number is therefore only ever consumed by a written version:
 * no duplicates and no gaps.
 */
export interface VersionCreationPlan {
  readonly name: string;
  /** The time of the write (the version's `createdAt`, the model's `updatedAt`). */
  readonly at: string;
  /**
   * Condition: the model's counter still reads this. Undefined: the model must not exist yet, and the write
   * creates it.
   */
  readonly expectedLatestVersion: number | undefined;
  /** The version to write; its number is the counter's new value. Condition: its slot is free. */
  readonly version: ModelVersion;
  /** The version is the model's first READY one: the model records it as `firstReadyVersion`. */
  readonly firstReady: boolean;
  /**
   * The alias the version gets in the same write: the first READY version becomes the default alias (`prod`),
   * at revision 1 with its first history entry. Condition: the alias does not exist.
   */
  readonly alias?: AliasWrite;
}

/** Plans the registration of `request` as the next version of its model. */
export function planVersionCreation(
  request: NewVersion,
  state: VersionCreationState,
  now: string,
): VersionCreationPlan {
  const number = (state.counter?.latestVersion ?? 0) + 1;
  const firstReady = request.status === 'READY' && state.counter?.firstReadyVersion === undefined;
  const version = versionRecord(request, number, now);
  const plan = {
    name: request.name,
    at: now,
    expectedLatestVersion: state.counter?.latestVersion,
    version,
    firstReady,
  };
  if (!firstReady || state.defaultAliasTaken) return plan;
  return { ...plan, alias: defaultAliasWrite(version, now) };
}

/** The default alias (`prod`) created on the model's first READY version, at revision 1. */
function defaultAliasWrite(version: ModelVersion, now: string): AliasWrite {
  return {
    state: {
      alias: DEFAULT_ALIAS,
      version: version.version,
      revision: 1,
      updatedAt: now,
      target: servingSnapshot(version),
    },
    history: {
      alias: DEFAULT_ALIAS,
      version: version.version,
      previousVersion: null,
      at: now,
      actor: version.createdBy ?? 'system',
      reason: 'first READY version',
      revision: 1,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Completion of a PENDING version

/** What completing a PENDING version reads. */
export interface VersionCompletionState {
  /** The version as stored; undefined when it does not exist (deleted meanwhile). */
  readonly stored: ModelVersion | undefined;
  /** The model's counter (`firstReadyVersion` decides whether the version takes the default alias). */
  readonly counter: VersionCounter | undefined;
  /** As in {@link VersionCreationState}: the default alias exists although no version was READY. */
  readonly defaultAliasTaken: boolean;
}

/**
 * The fields of a stored version that a change of it (`updateVersion`) may write besides its status: those of a
 * PENDING version a completion must not overwrite with what it read before them.
 */
const PATCHABLE: Readonly<Record<Exclude<keyof VersionPatch, 'status'>, true>> = {
  description: true,
  tags: true,
  capture: true,
};
export const PATCHABLE_VERSION_FIELDS = Object.keys(PATCHABLE) as readonly (keyof typeof PATCHABLE)[];

/**
 * One completion: the version goes from PENDING to READY or FAILED, in one atomic write, or nothing happens.
 * A READY version that is the model's first READY one also records `firstReadyVersion` and takes the default
 * alias, exactly as a version registered READY at once would.
 */
export interface VersionCompletionPlan {
  readonly name: string;
  /** The time of the write (alias and history time, the model's `updatedAt`). */
  readonly at: string;
  /**
   * The completed version: the stored one as read, with the completion's fields. Condition: the stored one is
   * still PENDING, and its {@link PATCHABLE_VERSION_FIELDS} are still as read (a change made after the read, which
   * was answered, is not lost: the completion reads and plans again).
   */
  readonly version: ModelVersion;
  /** Condition: the model still has no `firstReadyVersion`; the write records this version as it. */
  readonly firstReady: boolean;
  /** The default alias the version takes in the same write (condition: the alias does not exist). */
  readonly alias?: AliasWrite;
}

/** 409 `VERSION_NOT_PENDING`: the version was completed already (or never was PENDING). */
export function versionNotPending(name: string, version: number, status: VersionStatus): ConflictError {
  return new ConflictError(
    `version ${version} of model '${name}' is ${status}, not PENDING: it cannot be completed`,
    'VERSION_NOT_PENDING',
  );
}

/**
 * Plans the completion of PENDING version `version` of `name`. 404 when it no longer exists, 409
 * `VERSION_NOT_PENDING` when it is not PENDING (completed already).
 */
export function planVersionCompletion(
  name: string,
  version: number,
  completion: VersionCompletion,
  state: VersionCompletionState,
  now: string,
): VersionCompletionPlan {
  const stored = state.stored;
  if (!stored) throw versionNotFound(name, version);
  if (stored.status !== 'PENDING') throw versionNotPending(name, version, stored.status);
  const { failureReason: _previous, ...rest } = stored;
  const completed: ModelVersion =
    completion.status === 'READY'
      ? {
          ...rest,
          status: 'READY',
          sha256: completion.sha256,
          sizeBytes: completion.sizeBytes,
          s3Key: completion.s3Key,
          signature: completion.signature,
          ...(completion.evaluation !== undefined ? { evaluation: completion.evaluation } : {}),
          ...(completion.transforms !== undefined ? { transforms: completion.transforms } : {}),
        }
      : {
          ...rest,
          status: 'FAILED',
          failureReason: completion.failureReason,
          ...(completion.sha256 !== undefined ? { sha256: completion.sha256 } : {}),
          ...(completion.sizeBytes !== undefined ? { sizeBytes: completion.sizeBytes } : {}),
          ...(completion.evaluation !== undefined ? { evaluation: completion.evaluation } : {}),
          ...(completion.transforms !== undefined ? { transforms: completion.transforms } : {}),
        };
  const firstReady = completion.status === 'READY' && state.counter?.firstReadyVersion === undefined;
  const plan = { name, at: now, version: completed, firstReady };
  if (!firstReady || state.defaultAliasTaken) return plan;
  return { ...plan, alias: defaultAliasWrite(completed, now) };
}

function versionRecord(v: NewVersion, version: number, createdAt: string): ModelVersion {
  const record: Record<string, unknown> = {
    name: v.name,
    version,
    status: v.status,
    sha256: v.sha256,
    sizeBytes: v.sizeBytes,
    s3Key: v.s3Key,
    signature: v.signature,
    createdAt,
  };
  for (const k of OPTIONAL_VERSION_FIELDS) {
    if (v[k] !== undefined && v[k] !== null) record[k] = v[k];
  }
  return record as unknown as ModelVersion;
}

// ---------------------------------------------------------------------------------------------
// Alias moves

/** What moving an alias reads. */
export interface AliasMoveState {
  readonly modelExists: boolean;
  /** How many aliases the model has (a move that creates one checks `LIMITS.maxAliasesPerModel`). @default 0 */
  readonly aliasCount?: number;
  /** The alias now; undefined when it does not exist. */
  readonly alias: AliasState | undefined;
  /** The version the move points the alias at; undefined when it does not exist (or the move removes the alias). */
  readonly target: ModelVersion | undefined;
  /**
   * The version the alias's shadow names, when it has one and the move keeps it (read by the repository so that a
   * move never leaves a shadow that cannot answer like the new stable version); undefined otherwise.
   */
  readonly shadow?: ModelVersion;
  /**
   * When the alias does not exist: the time and revision of its latest history entry (it was removed), if any. A
   * re-created alias continues from that revision — a revision read of the removed alias never matches the new
   * one — and its first entry is dated after that one, which it must follow.
   */
  readonly lastHistory?: { readonly at: string; readonly revision: number };
}

/**
 * One alias move: the alias (its own capture declaration kept, its target's copied with the target), its history entry, the alias sets of the versions it leaves and reaches, and the
 * model's alias map, written in one atomic write under the conditions below, or nothing is.
 */
export interface AliasMovePlan {
  readonly name: string;
  readonly alias: string;
  /** The time of the move (history `at`, alias and model `updatedAt`). */
  readonly at: string;
  /** Condition: the alias is still at this revision (0: it still does not exist), so no move is lost. */
  readonly expectedRevision: number;
  /**
   * The alias after the move (undefined: the move removes it). Condition: its version is still READY (and
   * exists) when written.
   */
  readonly next: AliasState | undefined;
  /** The entry appended to the alias's history (append-only). */
  readonly history: HistoryRecord;
  /** The version that gains the alias (undefined when the alias stays on its version or is removed). */
  readonly gains: number | undefined;
  /** The version that loses the alias (undefined when there was none or the alias stays on it). */
  readonly releases: number | undefined;
  /**
   * The canary version that loses the alias: the alias is removed while it has a canary. (A promotion — the alias
   * moved to its canary — keeps the version's alias set as it is: the canary becomes the stable version.)
   */
  readonly releasesCanary: number | undefined;
  /**
   * The split the move leaves (the model's `splits` map follows): `undefined` when it does not change it, `null`
   * when it removes it (the alias is removed, or a promotion leaves no shadow and no key parameter), else the split
   * without its canary (a promotion) and/or without its shadow (a move to the shadow version). `next.canaryTarget`
   * says whether the canary copy stays.
   */
  readonly routingChange: AliasRouting | null | undefined;
  readonly result: AliasMoveResult;
}

/**
 * Plans an alias move (or removal, `version: null`). Preconditions, in order: the model exists (404);
 * `expectedVersion`, when given, is where the alias points now (0 = it must not exist; 412 otherwise);
 * `expectedRevision`, when given, is its revision (412); a removed alias exists (404); the target exists (404)
 * and is READY (409); a created alias is not one too many (409 `TOO_MANY_ALIASES`); a kept split still answers like the target (409 `CANARY_INCOMPATIBLE` /
 * `SHADOW_INCOMPATIBLE`) and a kept canary's copy fits the alias with the target's (409 `ALIAS_TOO_LARGE`).
 * History chains: `previousVersion` is the version the alias had, the revision goes up by one (a re-created alias's
 * from its removed past's last entry), and the time is never earlier than the previous move's, even when this
 * writer's clock lags.
 */
export function planAliasMove(move: AliasMove, state: AliasMoveState, clockNow: string): AliasMovePlan {
  if (!state.modelExists) throw modelNotFound(move.name);
  const current = state.alias?.version ?? null;
  const revision = state.alias?.revision ?? 0;
  if (move.expectedVersion !== undefined && (current ?? 0) !== move.expectedVersion) {
    throw new PreconditionFailedError(
      current === null
        ? `alias '${move.alias}' of model '${move.name}' does not exist; expectedVersion ${move.expectedVersion} does not hold`
        : `alias '${move.alias}' of model '${move.name}' points at version ${current}, not ${move.expectedVersion}`,
    );
  }
  if (move.expectedRevision !== undefined && revision !== move.expectedRevision) {
    throw new PreconditionFailedError(
      `alias '${move.alias}' of model '${move.name}' is at revision ${revision}, not ${move.expectedRevision}`,
    );
  }
  if (move.version === null && !state.alias) throw aliasNotFound(move.name, move.alias);
  let target: ModelVersion | undefined;
  if (move.version !== null) {
    target = state.target?.version === move.version ? state.target : undefined;
    if (!target) throw versionNotFound(move.name, move.version);
    assertAliasable(target);
    if (!state.alias && (state.aliasCount ?? 0) >= LIMITS.maxAliasesPerModel) {
      throw new ConflictError(
        `model '${move.name}' has ${state.aliasCount} aliases, the most a model may have (${LIMITS.maxAliasesPerModel}): remove one before creating '${move.alias}'`,
        'TOO_MANY_ALIASES',
      );
    }
  }

  const prevAt = state.alias?.updatedAt;
  let at = prevAt !== undefined && prevAt > clockNow ? prevAt : clockNow;
  const removed = state.alias ? undefined : state.lastHistory;
  if (removed && at <= removed.at) at = new Date(Date.parse(removed.at) + 1).toISOString();
  const nextRevision = (removed?.revision ?? revision) + 1;
  // The split: a move to the canary version promotes it (the canary is cleared, the shadow and the key parameter
  // stay); a move to the shadow version clears the shadow (a version never shadows itself); any other move keeps
  // the split as it is; a removal removes it.
  const routing = state.alias?.routing;
  const canary = routing?.canary?.version;
  const promoted = canary !== undefined && move.version === canary;
  const unshadowed = routing?.shadow !== undefined && move.version === routing.shadow.version;
  let nextRouting: AliasRouting | undefined = routing;
  let routingChange: AliasRouting | null | undefined;
  if (move.version === null) {
    nextRouting = undefined;
    routingChange = routing ? null : undefined;
  } else if (promoted || unshadowed) {
    const { canary: c, shadow: sh, ...rest } = routing!;
    nextRouting = normalRouting({
      ...rest,
      ...(c && !promoted ? { canary: c } : {}),
      ...(sh && !unshadowed ? { shadow: sh } : {}),
    });
    routingChange = nextRouting ?? null;
  }
  const keepCanaryTarget = !promoted && state.alias?.canaryTarget !== undefined;
  // A split the move keeps must still answer like the new stable version, as a split change is checked
  // (`planAliasRouting`): else the canary's share of the callers would get errors, or no mirror could be compared.
  if (target && nextRouting) assertSplitFits(move, target, nextRouting, state);
  // The alias carries the copies of its new version and of the canary it keeps: together they must fit its item.
  if (target && keepCanaryTarget) {
    assertCopiesFit(
      move.name,
      move.alias,
      servingSnapshot(target),
      state.alias!.canaryTarget!,
      `End the canary first — maas canary ${move.name} --off --alias ${move.alias}, or maas rollout abort ${move.name} --alias ${move.alias} when a rollout runs it — or promote it, or register the version with shorter labels`,
    );
  }
  return {
    name: move.name,
    alias: move.alias,
    at,
    expectedRevision: revision,
    next:
      move.version === null || !target
        ? undefined
        : {
            alias: move.alias,
            version: move.version,
            revision: nextRevision,
            updatedAt: at,
            target: servingSnapshot(target),
            ...(nextRouting ? { routing: nextRouting } : {}),
            ...(keepCanaryTarget ? { canaryTarget: state.alias!.canaryTarget! } : {}),
            // The alias's own declaration stays with it, whatever it points at.
            ...(state.alias?.capture !== undefined ? { capture: state.alias.capture } : {}),
          },
    history: {
      alias: move.alias,
      version: move.version,
      previousVersion: current,
      at,
      actor: move.actor,
      ...(move.reason !== undefined ? { reason: move.reason } : {}),
      ...(nextRouting ? { routing: nextRouting } : {}),
      revision: nextRevision,
    },
    gains: move.version !== null && move.version !== current ? move.version : undefined,
    releases: current !== null && current !== move.version ? current : undefined,
    releasesCanary: move.version === null ? canary : undefined,
    routingChange,
    result: { alias: move.alias, version: move.version, previousVersion: current, revision: nextRevision },
  };
}

/** 409 `CANARY_INCOMPATIBLE` / `SHADOW_INCOMPATIBLE` when the split kept by a move cannot serve its new target. */
function assertSplitFits(
  move: AliasMove,
  target: ModelVersion,
  routing: AliasRouting,
  state: AliasMoveState,
): void {
  const canary = routing.canary ? state.alias?.canaryTarget : undefined;
  const canaryMismatch = canary && signatureMismatch(target, canary);
  if (canaryMismatch) {
    throw new ConflictError(
      `version ${target.version} of model '${move.name}' cannot be the stable version of alias '${move.alias}' while version ${canary.version} is its canary: ${canaryMismatch}. End the canary first — maas canary ${move.name} --off --alias ${move.alias}, or maas rollout abort ${move.name} --alias ${move.alias} when a rollout runs it — or promote it`,
      'CANARY_INCOMPATIBLE',
    );
  }
  const shadow =
    routing.shadow && state.shadow?.version === routing.shadow.version ? state.shadow : undefined;
  const shadowMismatch = shadow && signatureMismatch(target, shadow);
  if (shadowMismatch) {
    throw new ConflictError(
      `version ${target.version} of model '${move.name}' cannot be the stable version of alias '${move.alias}' while version ${shadow.version} shadows it: ${shadowMismatch}. End the shadow first — maas shadow ${move.name} --off --alias ${move.alias}, or maas rollout abort ${move.name} --alias ${move.alias} when a rollout runs it`,
      'SHADOW_INCOMPATIBLE',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Traffic splits

/** A change of an alias's traffic split (`PATCH /models/{name}/aliases/{alias}` with `routing`). */
export interface AliasRoutingChange {
  readonly name: string;
  readonly alias: string;
  /** The new split; null (or a split with neither canary nor key parameter) removes it. */
  readonly routing: AliasRouting | null;
  /** Current revision observed by the caller; the change is conditional on it (412 otherwise). */
  readonly expectedRevision?: number;
  readonly actor: string;
  readonly reason?: string;
}

/** What changing an alias's split reads. */
export interface AliasRoutingState {
  readonly modelExists: boolean;
  readonly alias: AliasState | undefined;
  /** The version the new split names as canary; undefined when it names none or it does not exist. */
  readonly canary: ModelVersion | undefined;
  /** The version the new split names as shadow (read for validation only); undefined when none or absent. */
  readonly shadow?: ModelVersion | undefined;
}

/**
 * One change of an alias's split: the alias (revision + 1, its `routing` and `canaryTarget`), its history entry,
 * the alias sets of the canary versions it reaches and leaves, and the model's `splits` map, written in one
 * atomic write under the conditions below, or nothing is. A split that is the alias's already (`unchanged`) is
 * no change: nothing is written.
 */
export interface AliasRoutingPlan {
  readonly name: string;
  readonly alias: string;
  readonly at: string;
  /** Condition: the alias is still at this revision. */
  readonly expectedRevision: number;
  /**
   * The split asked is the one the alias has (with its canary's copy): nothing is to be written (no revision, no
   * history entry), and `next` is the alias as it was read, the answer.
   */
  readonly unchanged: boolean;
  /**
   * The alias after the change. Condition: its canary (`canaryTarget`) is still READY with the capture copied.
   */
  readonly next: AliasState;
  /** The entry appended to the alias's history (not written when `unchanged`: the alias's revision stays). */
  readonly history: HistoryRecord;
  /** The canary version that gains the alias (undefined when the canary stays or there is none). */
  readonly gains: number | undefined;
  /** The canary version that loses the alias (undefined when there was none or it stays). */
  readonly releases: number | undefined;
}

/** 409 `CANARY_IS_STABLE`: the canary named is the version the alias points at. */
export function canaryIsStable(name: string, alias: string, version: number): ConflictError {
  return new ConflictError(
    `version ${version} is the version alias '${alias}' of model '${name}' points at; a canary must be another version`,
    'CANARY_IS_STABLE',
  );
}

/** 409 `SHADOW_IS_STABLE`: the shadow named is the version the alias points at. */
export function shadowIsStable(name: string, alias: string, version: number): ConflictError {
  return new ConflictError(
    `version ${version} is the version alias '${alias}' of model '${name}' points at; a shadow must be another version`,
    'SHADOW_IS_STABLE',
  );
}

/** A split as stored: undefined when it has neither canary, shadow nor key parameter. */
export function normalRouting(routing: AliasRouting | null | undefined): AliasRouting | undefined {
  if (
    !routing ||
    (routing.canary === undefined && routing.shadow === undefined && routing.keyParameter === undefined)
  ) {
    return undefined;
  }
  return routing;
}

/**
 * Whether two splits are the same (each as stored, {@link normalRouting}): the same canary and weight, the same
 * shadow and percent, the same key parameter.
 */
export function sameSplit(a: AliasRouting | null | undefined, b: AliasRouting | null | undefined): boolean {
  const x = normalRouting(a);
  const y = normalRouting(b);
  return (
    x?.canary?.version === y?.canary?.version &&
    x?.canary?.weight === y?.canary?.weight &&
    x?.shadow?.version === y?.shadow?.version &&
    x?.shadow?.percent === y?.shadow?.percent &&
    x?.keyParameter === y?.keyParameter
  );
}

/**
 * How a history entry describes a split change (`canary v3 at 10%`, `canary v3 at 10%, shadow v4 at 20%`,
 * `shadow v4 at 20%`, `split cleared`).
 */
export function routingReason(routing: AliasRouting | undefined): string {
  if (!routing) return 'split cleared';
  const key = routing.keyParameter !== undefined ? ` (key parameter '${routing.keyParameter}')` : '';
  const shadow = routing.shadow ? `shadow v${routing.shadow.version} at ${routing.shadow.percent}%` : '';
  if (!routing.canary) return `${shadow || 'no canary'}${key}`;
  const canary = `canary v${routing.canary.version} at ${routing.canary.weight}%`;
  return `${canary}${shadow ? `, ${shadow}` : ''}${key}`;
}

/**
 * Plans a change of an alias's split. Preconditions, in order: the model exists (404), the alias exists (404
 * `ALIAS_NOT_FOUND`), `expectedRevision` when given is its revision (412), the canary, when named, is not the
 * alias's own version (409 `CANARY_IS_STABLE`), exists (404) and is READY (409 `VERSION_NOT_READY`) and answers
 * like the stable version (409 `CANARY_INCOMPATIBLE`) and its serving copy fits the alias with the stable version's
 * (409 `ALIAS_TOO_LARGE`); the shadow, when named, likewise (409 `SHADOW_IS_STABLE`,
 * 404, 409 `VERSION_NOT_READY`, 409 `SHADOW_INCOMPATIBLE`; it may be the canary). Weight 0 keeps the canary
 * declared (and its version held) with no traffic. The shadow version is not held (no serving copy either).
 *
 * A split that is the alias's already (`sameSplit`, its canary's copy in place) is no change: the plan is
 * `unchanged`, nothing is written and the alias is answered as it is — after the same checks, so that a caller's
 * stale `expectedRevision` is a 412 as for any change (as a move to the version the alias points at is).
 */
export function planAliasRouting(
  change: AliasRoutingChange,
  state: AliasRoutingState,
  clockNow: string,
): AliasRoutingPlan {
  if (!state.modelExists) throw modelNotFound(change.name);
  const current = state.alias;
  if (!current) throw aliasNotFound(change.name, change.alias);
  if (change.expectedRevision !== undefined && current.revision !== change.expectedRevision) {
    throw new PreconditionFailedError(
      `alias '${change.alias}' of model '${change.name}' is at revision ${current.revision}, not ${change.expectedRevision}`,
    );
  }
  const routing = normalRouting(change.routing);
  const canaryVersion = routing?.canary?.version;
  let canary: ModelVersion | undefined;
  if (canaryVersion !== undefined) {
    if (canaryVersion === current.version) throw canaryIsStable(change.name, change.alias, canaryVersion);
    canary = state.canary?.version === canaryVersion ? state.canary : undefined;
    if (!canary) throw versionNotFound(change.name, canaryVersion);
    assertAliasable(canary);
    const stable = current.target?.version === current.version ? current.target : undefined;
    const mismatch = stable && signatureMismatch(stable, canary);
    if (mismatch) {
      throw new ConflictError(
        `version ${canaryVersion} of model '${change.name}' cannot be the canary of alias '${change.alias}' (version ${current.version}): ${mismatch}; the alias's callers would get errors on the canary's share`,
        'CANARY_INCOMPATIBLE',
      );
    }
    assertCopiesFit(
      change.name,
      change.alias,
      stable,
      servingSnapshot(canary),
      `Register the canary or the stable version with shorter labels so that both fit, or move the alias to version ${canaryVersion} without a canary`,
    );
  }
  const shadowVersion = routing?.shadow?.version;
  if (shadowVersion !== undefined) {
    if (shadowVersion === current.version) throw shadowIsStable(change.name, change.alias, shadowVersion);
    const shadow =
      state.shadow?.version === shadowVersion
        ? state.shadow
        : canary?.version === shadowVersion
          ? canary
          : undefined;
    if (!shadow) throw versionNotFound(change.name, shadowVersion);
    assertAliasable(shadow);
    const stable = current.target?.version === current.version ? current.target : undefined;
    const mismatch = stable && signatureMismatch(stable, shadow);
    if (mismatch) {
      throw new ConflictError(
        `version ${shadowVersion} of model '${change.name}' cannot shadow alias '${change.alias}' (version ${current.version}): ${mismatch}; its answers could not be compared with the alias's`,
        'SHADOW_INCOMPATIBLE',
      );
    }
  }
  const unchanged =
    sameSplit(current.routing, routing) &&
    (canaryVersion === undefined || current.canaryTarget?.version === canaryVersion);
  const at = current.updatedAt > clockNow ? current.updatedAt : clockNow;
  const revision = current.revision + 1;
  const { routing: _r, canaryTarget: _c, ...rest } = current;
  const before = current.routing?.canary?.version;
  if (unchanged) {
    return {
      name: change.name,
      alias: change.alias,
      at: current.updatedAt,
      expectedRevision: current.revision,
      unchanged: true,
      next: current,
      history: {
        alias: change.alias,
        version: current.version,
        previousVersion: current.version,
        at: current.updatedAt,
        actor: change.actor,
        reason: change.reason ?? routingReason(routing),
        ...(routing ? { routing } : {}),
        revision: current.revision,
      },
      gains: undefined,
      releases: undefined,
    };
  }
  return {
    name: change.name,
    alias: change.alias,
    at,
    expectedRevision: current.revision,
    unchanged: false,
    next: {
      ...rest,
      revision,
      updatedAt: at,
      ...(routing ? { routing } : {}),
      ...(canary ? { canaryTarget: servingSnapshot(canary) } : {}),
    },
    history: {
      alias: change.alias,
      version: current.version,
      previousVersion: current.version,
      at,
      actor: change.actor,
      reason: change.reason ?? routingReason(routing),
      ...(routing ? { routing } : {}),
      revision,
    },
    gains: canaryVersion !== undefined && canaryVersion !== before ? canaryVersion : undefined,
    releases: before !== undefined && before !== canaryVersion ? before : undefined,
  };
}

/** What of a version decides what its callers can send and receive: its signature and post-processing. */
export type ServedInterface = Pick<ModelVersion, 'signature' | 'labels' | 'postprocess'>;

/**
 * Why `canary` could not answer the requests of the alias's stable version `stable` (undefined when it can); the
 * canary, the shadow and the split an alias keeps when it moves are all checked with it. What the alias's callers
 * can receive is what is compared: the model outputs AND the post-processing outputs (`servedOutputSpecs`: e.g.
 * `argmax`, `label` BYTES, `topk_*`), so that a caller cannot tell which version answered but by its values:
 *
 * - the same inputs (names, datatypes, shapes, exactly);
 * - every output the stable version serves, with its datatype and a compatible shape (same rank, and the same
 *   size in every dimension that both fix; -1 matches any size, `[]` any rank). Missing ones are all named.
 *
 * The canary may serve MORE outputs than the stable version: a request without `outputs` gets them too (extra
 * names are harmless to a caller reading the ones it knows), and a request naming one of them is already refused
 * by the stable version, so no caller can come to depend on them. Label names and the post-processing source may
 * differ (they change values, not what is served).
 */
export function signatureMismatch(stable: ServedInterface, canary: ServedInterface): string | undefined {
  const key = (t: TensorSpec) => `${t.datatype}[${t.shape.join(',')}]`;
  const canaryInputs = new Map(canary.signature.inputs.map((t) => [t.name, key(t)]));
  if (canary.signature.inputs.length !== stable.signature.inputs.length) {
    return `it takes ${canary.signature.inputs.length} input(s), the stable version ${stable.signature.inputs.length}`;
  }
  for (const t of stable.signature.inputs) {
    const c = canaryInputs.get(t.name);
    if (c === undefined) return `it has no input '${t.name}'`;
    if (c !== key(t)) return `its input '${t.name}' is ${c}, the stable version's ${key(t)}`;
  }
  const served = (v: ServedInterface) => servedOutputSpecs(v.postprocess, v.labels, v.signature);
  const canaryOutputs = new Map(served(canary).map((t) => [t.name, t]));
  const stableExtras = new Set(postprocessOutputNames(stable.postprocess, stable.labels));
  const missing: string[] = [];
  const differing: string[] = [];
  const fmt = (shape: readonly number[]) => `[${shape.join(',')}]`;
  for (const t of served(stable)) {
    const c = canaryOutputs.get(t.name);
    if (c === undefined) missing.push(t.name);
    else if (c.datatype !== t.datatype) {
      differing.push(`its output '${t.name}' is ${c.datatype}, the stable version's ${t.datatype}`);
    } else if (!shapesAgree(t.shape, c.shape)) {
      differing.push(
        `its output '${t.name}' has shape ${fmt(c.shape)}, the stable version's ${fmt(t.shape)}`,
      );
    }
  }
  const problems: string[] = [];
  if (missing.length > 0) {
    const names = missing.map((n) => `'${n}'`).join(', ');
    const post = missing.every((n) => stableExtras.has(n))
      ? ' (post-processing of the stable version: declare the same postprocess and labels on this version)'
      : '';
    problems.push(`it has no output${missing.length > 1 ? 's' : ''} ${names}${post}`);
  }
  problems.push(...differing);
  return problems.length > 0 ? problems.join('; ') : undefined;
}

/**
 * Whether two output shapes can describe the same answers: same rank, same size wherever both fix it. A shape `[]`
 * (an output declared with no shape: any rank) agrees with any.
 */
function shapesAgree(a: readonly number[], b: readonly number[]): boolean {
  if (a.length === 0 || b.length === 0) return true;
  return a.length === b.length && a.every((d, i) => d < 0 || b[i]! < 0 || d === b[i]);
}

/**
 * Where a rollback takes an alias: the version it pointed at before its latest move. `undefined`
 * when there is nothing to go back to (no history, or the latest move created the alias).
 */
export function rollbackTarget(latest: HistoryEntry | undefined): number | undefined {
  if (!latest || latest.previousVersion === null) return undefined;
  return latest.previousVersion;
}

/**
 * The newest entry of a history page (newest first) that moved the alias: a split change (an entry whose version
 * is its previous version) is not one, and neither is a move to the version the alias already pointed at, since
 * rolling back to it would change nothing. Undefined when the page holds none.
 */
export function latestMove(entries: readonly HistoryEntry[]): HistoryEntry | undefined {
  return entries.find((h) => h.version === null || h.version !== h.previousVersion);
}

/** History pages (newest first, `LIMITS.maxPageSize` entries each) a rollback reads at most for the latest move. */
export const ROLLBACK_HISTORY_PAGES = 10;

/** One page of an alias's history, newest first (the registry's `aliasHistory`). */
export interface HistoryPage {
  readonly items: readonly HistoryEntry[];
  readonly nextToken?: string;
}

/**
 * The latest move of an alias past the split changes after it (`latestMove`), reading its history page by page from
 * `first` through `next`, at most {@link ROLLBACK_HISTORY_PAGES} pages. No `latest` when those pages hold no move;
 * `empty` when the history holds no entry at all. The API's rollback and the console's preview of it both read
 * this way, so the console names the version the API will move to.
 */
export async function findLatestMove(
  first: HistoryPage,
  next: (token: string) => Promise<HistoryPage>,
): Promise<{ readonly latest?: HistoryEntry; readonly empty: boolean }> {
  let page = first;
  let latest = latestMove(page.items);
  for (let n = 1; !latest && page.nextToken && n < ROLLBACK_HISTORY_PAGES; n++) {
    page = await next(page.nextToken);
    latest = latestMove(page.items);
  }
  return { ...(latest ? { latest } : {}), empty: first.items.length === 0 };
}

/** What a rollback is asked: the alias, and the caller's preconditions (what it saw of the alias). */
export interface RollbackInput {
  readonly name: string;
  readonly alias: string;
  readonly actor: string;
  readonly reason?: string;
  /** The version the alias must point at now (0 = it must not exist); 412 otherwise. */
  readonly expectedVersion?: number;
  /** The alias's revision the caller saw; 412 otherwise. */
  readonly expectedRevision?: number;
}

/**
 * 409 `NO_ROLLBACK_TARGET`: the version a rollback would take the alias back to (where it pointed before its latest
 * move) was deleted. (One archived since is refused as any move to it: 409 `VERSION_NOT_READY`.)
 */
export function rollbackTargetDeleted(name: string, alias: string, version: number): ConflictError {
  return new ConflictError(
    `alias '${alias}' of model '${name}' has no version to roll back to: version ${version}, where it pointed before its latest move, was deleted; move the alias to another version instead`,
    'NO_ROLLBACK_TARGET',
  );
}

/**
 * Plans a rollback: the move that takes the alias back to the version it pointed at before its latest move
 * (`latest`, the newest history entry), conditional on the alias still pointing where that entry says, so a
 * concurrent move makes the rollback fail with 412 instead of undoing the wrong change. 404 when the alias never
 * existed, 409 `NO_ROLLBACK_TARGET` when its latest move created it. The caller's `expectedVersion` must be where
 * that entry says the alias points (412 otherwise: the move, conditional on the entry's version, could not
 * satisfy both); its `expectedRevision` goes with the move, checked by the same conditional write.
 */
export function planRollback(input: RollbackInput, latest: HistoryEntry | undefined): AliasMove {
  if (!latest) throw aliasNotFound(input.name, input.alias);
  const current = latest.version ?? 0;
  if (input.expectedVersion !== undefined && input.expectedVersion !== current) {
    throw new PreconditionFailedError(
      latest.version === null
        ? `alias '${input.alias}' of model '${input.name}' does not exist (its latest move removed it); expectedVersion ${input.expectedVersion} does not hold`
        : `alias '${input.alias}' of model '${input.name}' points at version ${latest.version} (its latest move), not ${input.expectedVersion}`,
    );
  }
  const target = rollbackTarget(latest);
  if (target === undefined) {
    throw new ConflictError(
      `alias '${input.alias}' of model '${input.name}' has no earlier version to roll back to`,
      'NO_ROLLBACK_TARGET',
    );
  }
  return {
    name: input.name,
    alias: input.alias,
    version: target,
    expectedVersion: current,
    ...(input.expectedRevision !== undefined ? { expectedRevision: input.expectedRevision } : {}),
    reason: input.reason ?? `rollback from ${latest.version ?? 'none'} to ${target}`,
    actor: input.actor,
  };
}

// ---------------------------------------------------------------------------------------------
// Archive and delete

/** What the archive and delete rules read of a stored version. */
export interface VersionState {
  readonly status: VersionStatus;
  /** The aliases pointing at the version, sorted. */
  readonly aliases: readonly string[];
}

/** A change to a version, written as one conditional write. */
export interface VersionUpdatePlan {
  /**
   * The fields to set (those the patch gives; `capture: null` removes the declaration). Empty: nothing to write;
   * the stored version is the answer.
   */
  readonly set: VersionPatch;
  /**
   * Condition beyond "the version exists": the version becomes ARCHIVED, which it may only from READY (or
   * ARCHIVED, a no-op) and only while no alias points at it, since aliases serve READY versions only.
   */
  readonly archive: boolean;
}

/** Plans a change of description, tags and/or status. */
export function planVersionUpdate(patch: VersionPatch): VersionUpdatePlan {
  return {
    set: {
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.tags !== undefined ? { tags: patch.tags } : {}),
      ...(patch.status !== undefined ? { status: patch.status } : {}),
      ...(patch.capture !== undefined ? { capture: patch.capture } : {}),
    },
    archive: patch.status === 'ARCHIVED',
  };
}

/** The version after `plan` (a `capture: null` removes the version's declaration). */
export function patchedVersion(stored: ModelVersion, plan: VersionUpdatePlan): ModelVersion {
  const { capture, ...rest } = plan.set;
  const { capture: _old, ...base } = stored;
  const next = capture === undefined ? stored.capture : (capture ?? undefined);
  return { ...base, ...rest, ...(next !== undefined ? { capture: next } : {}) };
}

/**
 * The aliases whose copy of the version's capture (`target.capture`) a capture change rewrites, in the same
 * atomic write: those pointing at the version and carrying its target. The write is conditional on each of
 * them not having moved since it was read (its revision), and on the version's alias set being the one read,
 * so that an alias moving to or away from the version meanwhile makes the change plan again.
 */
export function retargetedAliases(version: number, aliases: readonly AliasState[]): AliasState[] {
  return aliases.filter((a) => a.version === version && a.target?.version === version);
}

/**
 * The aliases whose copy of the version's capture in `canaryTarget` a capture change rewrites, under the same
 * conditions as {@link retargetedAliases}: those whose canary the version is.
 */
export function recanariedAliases(version: number, aliases: readonly AliasState[]): AliasState[] {
  return aliases.filter((a) => a.routing?.canary?.version === version && a.canaryTarget?.version === version);
}

/** Why a change of an alias's capture is refused: the model or the alias does not exist (404). */
export function aliasCaptureRefusal(name: string, alias: string, modelExists: boolean): NotFoundError {
  return modelExists ? aliasNotFound(name, alias) : modelNotFound(name);
}

/** Whether a stored version meets the plan's conditions. */
export function allowsVersionUpdate(plan: VersionUpdatePlan, stored: VersionState | undefined): boolean {
  if (!stored) return false;
  if (!plan.archive) return true;
  return (stored.status === 'READY' || stored.status === 'ARCHIVED') && stored.aliases.length === 0;
}

/** Why the update of a version that does not meet the plan's conditions is refused: 404, or 409. */
export function versionUpdateRefusal(
  name: string,
  version: number,
  stored: VersionState | undefined,
): MaasError {
  if (!stored) return versionNotFound(name, version);
  if (stored.aliases.length > 0) {
    return new ConflictError(
      `version ${version} of model '${name}' is aliased (${stored.aliases.join(', ')}); move the alias first`,
      'VERSION_ALIASED',
    );
  }
  return new ConflictError(
    `version ${version} of model '${name}' is ${String(stored.status)}; only READY versions can be archived`,
    'INVALID_STATUS_CHANGE',
  );
}

/** Throws the refusal when the stored version does not meet the plan's conditions. */
export function assertVersionUpdate(
  plan: VersionUpdatePlan,
  name: string,
  version: number,
  stored: VersionState | undefined,
): void {
  if (!allowsVersionUpdate(plan, stored)) throw versionUpdateRefusal(name, version, stored);
}

/**
 * Whether a version may be deleted: it exists and no alias points at it. Its number is never reused, and its
 * artifact stays where it is (content-addressed, possibly shared).
 */
export function allowsVersionDeletion(stored: VersionState | undefined): boolean {
  return stored !== undefined && stored.aliases.length === 0;
}

/** Why the deletion of a version is refused: 404, or 409 while an alias points at it. */
export function versionDeletionRefusal(
  name: string,
  version: number,
  stored: VersionState | undefined,
): MaasError {
  if (!stored) return versionNotFound(name, version);
  return new ConflictError(
    `version ${version} of model '${name}' is aliased (${stored.aliases.join(', ')}); move or delete the alias first`,
    'VERSION_ALIASED',
  );
}

/** Throws the refusal when the version may not be deleted. */
export function assertVersionDeletion(name: string, version: number, stored: VersionState | undefined): void {
  if (!allowsVersionDeletion(stored)) throw versionDeletionRefusal(name, version, stored);
}

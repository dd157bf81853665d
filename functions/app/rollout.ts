/**
 * Staged rollouts (docs/ARCHITECTURE.md, "Progressive delivery"): start, read, pause, resume and abort a rollout,
 * and the controller's work — `tick` (advance baked steps, promote, roll back on alarms and divergence, bring each
 * alias to the split its rollout wants), `onAlarm` (an alarm went to ALARM: roll back its rollouts now) and
 * `recordComparison` (count a shadow comparison into its rollout).
 *
 * Every transition writes the rollout item first, conditional on its revision (so concurrent controller runs never
 * apply one twice: the losers skip it), then the alias, conditional on the alias revision read before the rollout
 * was read (a change of the alias in between makes the write fail with 412, and the next tick reconciles). A
 * rollout that ends keeps `aliasPending` until its alias change (promotion or clearing the split) is written, so a
 * transition that stopped half way is finished by the next tick.
 */
import { randomUUID } from 'node:crypto';
import type { ShadowComparison } from '../domain/divergence';
import { ConflictError, isMaasError, PreconditionFailedError, UnavailableError } from '../domain/errors';
import { validateAliasName, validateModelName } from '../domain/names';
import { aliasNotFound, planAliasRouting } from '../domain/registry-plans';
import {
  addCounters,
  checkRolloutVersion,
  clearedRouting,
  decide,
  desiredRouting,
  divergenceBreach,
  divergenceDelta,
  isActive,
  isListed,
  keptShadowConflict,
  type Rollout,
  type RolloutSpec,
  type RolloutStatus,
  rolloutInProgress,
  rolloutNotFound,
  rolloutView,
  routingHasRollout,
  sameRouting,
  stepReason,
  ZERO_DIVERGENCE,
} from '../domain/rollout';
import type { AliasState } from '../domain/types';
import { type Clock, type EventPublisher, type RegistryRepository, systemClock } from '../ports';
import type { Logger } from '../ports/logger';
import type { AlarmStates, RolloutRepository } from '../ports/rollouts';
import { getModel, moveAlias, publish, updateAlias } from './registry';

export interface RolloutDeps {
  readonly repo: RegistryRepository;
  readonly rollouts: RolloutRepository;
  readonly alarms: AlarmStates;
  readonly events?: EventPublisher;
  /** @default systemClock */
  readonly clock?: Clock;
  /** Where the controller reports what failed (a rollout's failure does not stop the others). @default none */
  readonly logger?: Pick<Logger, 'warn'>;
}

/** The actor of the controller's own changes in the alias history. */
export const CONTROLLER_ACTOR = 'maas-rollout-controller';

/** A rollout as the API shows it. */
export type RolloutView = ReturnType<typeof rolloutView>;

/** What one controller run did. */
export interface TickSummary {
  /** Active rollouts (and pending ends) looked at. */
  readonly rollouts: number;
  readonly advanced: string[];
  readonly promoted: string[];
  readonly rolledBack: string[];
  readonly aborted: string[];
  /** Aliases whose split was brought back to their rollout's. */
  readonly reconciled: string[];
  /** Rollouts another run moved first (their transition left to it). */
  readonly skipped: string[];
  readonly failed: string[];
}

const now = (deps: Pick<RolloutDeps, 'clock'>) => (deps.clock ?? systemClock).now();
const label = (r: Pick<Rollout, 'name' | 'alias'>) => `${r.name}@${r.alias}`;

function validate(name: string, alias: string) {
  validateModelName(name);
  validateAliasName(alias);
}

/** 409 `ROLLOUT_NOT_ACTIVE`: the rollout cannot take the action in its status. */
function notApplicable(r: Rollout, action: string): ConflictError {
  return new ConflictError(
    `the rollout of alias '${r.alias}' of model '${r.name}' is ${r.status}: it cannot be ${action}`,
    'ROLLOUT_NOT_ACTIVE',
  );
}

/** The alias, or 404 (`MODEL_NOT_FOUND` / `ALIAS_NOT_FOUND`). */
async function aliasOf(deps: Pick<RolloutDeps, 'repo'>, name: string, alias: string): Promise<AliasState> {
  const a = await deps.repo.getAlias(name, alias);
  if (a) return a;
  await getModel(deps, name);
  throw aliasNotFound(name, alias);
}

export interface StartRolloutInput {
  readonly name: string;
  readonly alias: string;
  readonly spec: RolloutSpec;
  /** The alias's revision observed by the caller (412 otherwise). */
  readonly expectedRevision?: number;
  readonly actor: string;
}

/**
 * Starts a rollout of `spec.version` on the alias: 404 / 409 / 412 as for a canary (`planAliasRouting`), 409
 * `ROLLOUT_IN_PROGRESS` when the alias has an active rollout, 400 `INVALID_ROLLOUT` for bounds the version cannot
 * be judged by (`checkRolloutVersion`). The alias's own shadow, which a rollout without `maxDivergence` keeps
 * (`desiredRouting`), is checked as the split's (404 / 409 `VERSION_NOT_READY` / 409 `SHADOW_INCOMPATIBLE`) and as
 * the shadow of the version once promoted (409 `SHADOW_INCOMPATIBLE`, `keptShadowConflict`). Writes the rollout
 * (step 1, running), then the alias's split (`rollout <id8>: step 1/N, canary vX at W%`). When the split cannot be
 * written the rollout ends `aborted` (`start failed: <code>`) and the error is thrown — unless the write lost (412)
 * to the controller writing the same split for the new rollout, which is a start like any other.
 */
export async function startRollout(deps: RolloutDeps, input: StartRolloutInput): Promise<RolloutView> {
  validate(input.name, input.alias);
  const alias = await aliasOf(deps, input.name, input.alias);
  const existing = await deps.rollouts.get(input.name, input.alias);
  // An ended rollout whose alias change is still pending (the controller finishes it) is in progress too.
  if (existing && isListed(existing)) throw rolloutInProgress(existing);
  const at = now(deps).toISOString();
  const rollout: Rollout = {
    ...input.spec,
    name: input.name,
    alias: input.alias,
    id: randomUUID(),
    fromVersion: alias.version,
    status: 'running',
    step: 0,
    stepStartedAt: at,
    startedAt: at,
    updatedAt: at,
    actor: input.actor,
    revision: 1,
    divergence: ZERO_DIVERGENCE,
  };
  const routing = desiredRouting(rollout, alias.routing) ?? null;
  // The split is checked as the registry will check it (404 / 409 / 412) before anything is written: with the
  // alias's own shadow when the rollout keeps it.
  const version = await deps.repo.getVersion(input.name, input.spec.version);
  const keptShadow =
    routing?.shadow && routing.shadow.version !== input.spec.version
      ? await deps.repo.getVersion(input.name, routing.shadow.version)
      : undefined;
  planAliasRouting(
    {
      name: input.name,
      alias: input.alias,
      routing,
      ...(input.expectedRevision !== undefined ? { expectedRevision: input.expectedRevision } : {}),
      actor: input.actor,
    },
    { modelExists: true, alias, canary: version, ...(keptShadow ? { shadow: keptShadow } : {}) },
    at,
  );
  if (version) {
    checkRolloutVersion(input.spec, version);
    const conflict = keptShadow && keptShadowConflict(rollout, version, keptShadow);
    if (conflict) throw conflict;
  }
  const created = await deps.rollouts.create(rollout);
  try {
    await updateAlias(deps, {
      name: input.name,
      alias: input.alias,
      routing,
      expectedRevision: input.expectedRevision ?? alias.revision,
      reason: stepReason(created),
      actor: input.actor,
    });
  } catch (e) {
    if (e instanceof PreconditionFailedError) {
      // The controller may have written this very split first (it reconciles a new rollout too): then the start
      // succeeded. The alias first, then the rollout (as the controller reads them).
      const after = await deps.repo.getAlias(input.name, input.alias);
      const fresh = await deps.rollouts.get(input.name, input.alias);
      if (
        after &&
        fresh?.id === created.id &&
        isActive(fresh) &&
        sameRouting(after.routing, desiredRouting(fresh, after.routing))
      ) {
        return rolloutView(fresh);
      }
    }
    const code = isMaasError(e) ? e.code : 'ERROR';
    await endRollout(deps, created, 'aborted', `start failed: ${code}`, input.actor).catch(() => {});
    throw e;
  }
  return rolloutView(created);
}

/** The alias's current or last rollout; 404 `ROLLOUT_NOT_FOUND` when it never had one. */
export async function getRollout(
  deps: Pick<RolloutDeps, 'rollouts'>,
  name: string,
  alias: string,
): Promise<RolloutView> {
  validate(name, alias);
  const r = await deps.rollouts.get(name, alias);
  if (!r) throw rolloutNotFound(name, alias);
  return rolloutView(r);
}

async function current(deps: Pick<RolloutDeps, 'rollouts'>, name: string, alias: string): Promise<Rollout> {
  validate(name, alias);
  const r = await deps.rollouts.get(name, alias);
  if (!r) throw rolloutNotFound(name, alias);
  return r;
}

/** Reads of the rollout an action (pause, resume, abort) makes at most when the rollout keeps changing under it. */
const ACTION_ATTEMPTS = 5;

/** What a pause, resume or abort is asked. */
export interface RolloutActionInput {
  readonly name: string;
  readonly alias: string;
  readonly actor: string;
  /** The rollout the caller acts on: another one as the alias's rollout is a 409 `ROLLOUT_NOT_ACTIVE`. */
  readonly id?: string;
}

/** 409 `ROLLOUT_NOT_ACTIVE`: the alias's rollout `r` is not rollout `id`, the one the caller acted on. */
function notTheRollout(id: string, r: Rollout, action: string): ConflictError {
  return new ConflictError(
    `rollout ${id} is not the rollout of alias '${r.alias}' of model '${r.name}' (rollout ${r.id} is, ${r.status}): it cannot be ${action}`,
    'ROLLOUT_NOT_ACTIVE',
  );
}

/**
 * Runs an action on the rollout as it is now: the caller's rollout (`input.id`) when it names one, else the one first
 * read. A rollout that changed between the action's read and its conditional write (the controller's tick, another
 * caller) is read and judged again — then the action applies, or is refused for the state the rollout is in —
 * rather than answered 412; another rollout in its place is a 409 `ROLLOUT_NOT_ACTIVE`. 503 `UNAVAILABLE` (retry)
 * when it kept changing.
 */
async function onCurrentRollout<T>(
  deps: Pick<RolloutDeps, 'rollouts'>,
  input: { name: string; alias: string; id?: string },
  action: string,
  act: (r: Rollout) => Promise<T>,
): Promise<T> {
  let id = input.id;
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await current(deps, input.name, input.alias);
      id ??= r.id;
      // The rollout the caller acted on ended and another one started: that one is not the caller's. The write is
      // conditional on the revision of the rollout read, so one replacing it after this check makes it fail.
      if (r.id !== id) throw notTheRollout(id, r, action);
      return await act(r);
    } catch (e) {
      if (!(e instanceof PreconditionFailedError)) throw e;
      if (attempt >= ACTION_ATTEMPTS) {
        throw new UnavailableError(
          `the rollout of alias '${input.alias}' of model '${input.name}' kept changing: retry`,
          1,
          { cause: e },
        );
      }
    }
  }
}

/**
 * Pauses a running rollout: its step holds (alarms and divergence still roll it back). 409 `ROLLOUT_NOT_ACTIVE`
 * unless it is running, or when it is not rollout `input.id`.
 */
export function pauseRollout(deps: RolloutDeps, input: RolloutActionInput): Promise<RolloutView> {
  return onCurrentRollout(deps, input, 'paused', async (r) => {
    if (r.status !== 'running') throw notApplicable(r, 'paused');
    const at = now(deps).toISOString();
    return rolloutView(
      await deps.rollouts.update({ ...r, status: 'paused', pausedAt: at, updatedAt: at }, r.revision),
    );
  });
}

/**
 * Resumes a paused rollout; its step's bake goes on where it stopped (`stepStartedAt` moves on by the pause).
 * 409 `ROLLOUT_NOT_ACTIVE` unless it is paused, or when it is not rollout `input.id`.
 */
export function resumeRollout(deps: RolloutDeps, input: RolloutActionInput): Promise<RolloutView> {
  return onCurrentRollout(deps, input, 'resumed', async (r) => {
    if (r.status !== 'paused') throw notApplicable(r, 'resumed');
    const t = now(deps);
    const paused = r.pausedAt ? Math.max(0, t.getTime() - Date.parse(r.pausedAt)) : 0;
    const { pausedAt: _p, ...rest } = r;
    return rolloutView(
      await deps.rollouts.update(
        {
          ...rest,
          status: 'running',
          stepStartedAt: new Date(Date.parse(r.stepStartedAt) + paused).toISOString(),
          updatedAt: t.toISOString(),
        },
        r.revision,
      ),
    );
  });
}

/**
 * Aborts an active rollout: it ends `aborted` and the alias's split loses its canary and shadow (the key parameter
 * stays), history reason `rollout aborted`. 409 `ROLLOUT_NOT_ACTIVE` when it is over, or when it is not rollout
 * `input.id`.
 *
 * A rollout that ended but whose alias change is still pending (which holds the alias: no new rollout starts) is
 * not aborted — it ended already — but that change is tried again now, as the controller would (`settle`): the
 * rollout as settled, or the failure (503 `UNAVAILABLE` when the alias changed meanwhile: retry).
 */
export async function abortRollout(deps: RolloutDeps, input: RolloutActionInput): Promise<RolloutView> {
  const r = await current(deps, input.name, input.alias);
  if (input.id !== undefined && r.id !== input.id) throw notTheRollout(input.id, r, 'aborted');
  if (isActive(r)) {
    // Changed meanwhile: judged again as it is now (ended by another abort: 409; still active: aborted).
    return onCurrentRollout(deps, { ...input, id: r.id }, 'aborted', async (active) => {
      if (!isActive(active)) throw notApplicable(active, 'aborted');
      return rolloutView(await endRollout(deps, active, 'aborted', 'aborted', input.actor));
    });
  }
  if (!r.aliasPending) throw notApplicable(r, 'aborted');
  const alias = await deps.repo.getAlias(r.name, r.alias);
  const settled = await settle(deps, r, alias, input.actor);
  if (!settled.aliasPending) return rolloutView(settled);
  // Settled meanwhile by the controller, or not yet.
  const fresh = await deps.rollouts.get(r.name, r.alias);
  if (fresh && fresh.id === r.id && !fresh.aliasPending) return rolloutView(fresh);
  throw new UnavailableError(
    `the ${r.status} rollout of alias '${r.alias}' of model '${r.name}' could not finish its alias change yet: retry`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// The controller

/**
 * One controller run at `at` (@default now): for every listed rollout, in turn — finish a pending end; end
 * `aborted` (`superseded`) a rollout whose alias is gone or no longer at its `fromVersion`; roll back as `decide`
 * says (the alarms of all rollouts are read once); bring the alias's split to `desiredRouting` when it differs
 * (restarting the step's bake when that write put it in place); else advance or promote as `decide` says — so a
 * step is held for its whole bake with its own split in place. A rollout's failure is logged and the run goes on;
 * so does a failed read of the alarm states (the rollouts naming alarms then only roll back on divergence, reconcile
 * and settle, and count as failed).
 */
export async function tick(deps: RolloutDeps, at?: Date): Promise<TickSummary> {
  const t = at ?? now(deps);
  const listed = await deps.rollouts.listActive();
  const names = [...new Set(listed.flatMap((r) => (isActive(r) ? r.alarms : [])))];
  let firing: string[] = [];
  // Unknown alarm states (the read failed): rollouts naming alarms are judged on their divergence only and do not
  // advance or promote this run (an alarm may be firing); they count as failed. The others go on as usual.
  let alarmsUnknown = false;
  if (names.length > 0) {
    try {
      firing = await deps.alarms.inAlarm(names);
    } catch (e) {
      alarmsUnknown = true;
      deps.logger?.warn('alarm states unavailable: rollouts naming alarms do not advance this run', {
        alarms: names,
        error: (e as Error)?.message ?? String(e),
      });
    }
  }
  const summary: TickSummary = {
    rollouts: listed.length,
    advanced: [],
    promoted: [],
    rolledBack: [],
    aborted: [],
    reconciled: [],
    skipped: [],
    failed: [],
  };
  for (const l of listed) {
    try {
      await work(deps, l, t, alarmsUnknown ? undefined : firing, summary);
    } catch (e) {
      if (e instanceof PreconditionFailedError) {
        summary.skipped.push(label(l));
        continue;
      }
      if (!summary.failed.includes(label(l))) summary.failed.push(label(l));
      deps.logger?.warn('rollout step failed', {
        model: l.name,
        alias: l.alias,
        rollout: l.id,
        error: (e as Error)?.message ?? String(e),
      });
    }
  }
  return summary;
}

/** One rollout's work in a run; `firing` undefined: the alarm states are unknown. */
async function work(
  deps: RolloutDeps,
  listed: Rollout,
  at: Date,
  firing: readonly string[] | undefined,
  summary: TickSummary,
): Promise<void> {
  // The alias first, then the rollout: an alias write conditional on the revision read here cannot undo a
  // transition the rollout read below already shows.
  const alias = await deps.repo.getAlias(listed.name, listed.alias);
  const r = await deps.rollouts.get(listed.name, listed.alias);
  if (!r || !isListed(r)) return;
  const id = label(r);
  if (!isActive(r)) {
    const settled = await settle(deps, r, alias, CONTROLLER_ACTOR);
    // A promotion superseded by another move of the alias ends aborted.
    if (settled.status !== r.status) summary.aborted.push(id);
    return;
  }
  if (!alias || alias.version !== r.fromVersion) {
    await endRollout(deps, r, 'aborted', 'superseded', CONTROLLER_ACTOR, alias ?? null);
    summary.aborted.push(id);
    return;
  }
  const decided = decide(r, at, firing ?? []);
  let action = decided;
  if (firing === undefined && r.alarms.length > 0 && decided.type !== 'rollback') {
    // Its alarms could not be read: no step forward, and the run counts it as failed.
    summary.failed.push(id);
    action = { type: 'none' };
  }
  if (action.type === 'rollback') {
    await endRollout(deps, r, 'rolled_back', action.reason, CONTROLLER_ACTOR, alias);
    summary.rolledBack.push(id);
    return;
  }
  // A step advances (the last one promotes) only once its own split is in place: the alias is brought to it
  // first, and when that write is the one that put it in place, the step's bake starts over from now.
  if (!sameRouting(alias.routing, desiredRouting(r, alias.routing))) {
    const applied = await applyRouting(deps, r, alias, CONTROLLER_ACTOR);
    if (applied === 'ended') summary.aborted.push(id);
    if (applied === 'written') {
      summary.reconciled.push(id);
      await restartBake(deps, r, at);
    }
    return;
  }
  switch (action.type) {
    case 'promote':
      await endRollout(deps, r, 'completed', 'completed', CONTROLLER_ACTOR, alias);
      summary.promoted.push(id);
      return;
    case 'advance': {
      const next = await deps.rollouts.update(
        { ...r, step: action.step, stepStartedAt: at.toISOString(), updatedAt: at.toISOString() },
        r.revision,
      );
      summary.advanced.push(id);
      if ((await applyRouting(deps, next, alias, CONTROLLER_ACTOR)) === 'ended') summary.aborted.push(id);
      return;
    }
    case 'none':
      return;
  }
}

/**
 * Starts the current step's bake over at `at` (the step's split was only now put in place). A paused rollout's
 * pause moves too, so the bake runs from its resumption. Another run's transition meanwhile (412) wins.
 */
async function restartBake(deps: RolloutDeps, r: Rollout, at: Date): Promise<void> {
  const t = at.toISOString();
  try {
    await deps.rollouts.update(
      { ...r, stepStartedAt: t, updatedAt: t, ...(r.status === 'paused' ? { pausedAt: t } : {}) },
      r.revision,
    );
  } catch (e) {
    if (!(e instanceof PreconditionFailedError)) throw e;
  }
}

/**
 * Brings the alias's split to the rollout's (conditional on the alias revision read): `written` when it wrote one,
 * `unchanged` when it did not (a lost race, 412, is left to the next tick). A split the registry refuses (a 4xx)
 * will not be accepted by retrying:
 * - when the rollout's version can no longer be served (archived or deleted: possible once a split change by hand
 *   released it), the rollout ends `aborted` (`version <v> not servable: <status>`, its abort's alias change and
 *   log): `ended`;
 * - else, when the split keeps the alias's own shadow of another version (archived or deleted meanwhile: it is not
 *   held), it is written without that shadow, whose mirrors could only fail;
 * - else the refusal is thrown (logged by the run; the next one tries again).
 */
async function applyRouting(
  deps: RolloutDeps,
  r: Rollout,
  alias: AliasState,
  actor: string,
): Promise<'written' | 'unchanged' | 'ended'> {
  const desired = desiredRouting(r, alias.routing);
  if (!desired || sameRouting(alias.routing, desired)) return 'unchanged';
  const write = async (routing: typeof desired) => {
    try {
      await updateAlias(deps, {
        name: r.name,
        alias: r.alias,
        routing,
        expectedRevision: alias.revision,
        reason: stepReason(r),
        actor,
      });
      return 'written' as const;
    } catch (e) {
      if (e instanceof PreconditionFailedError) return 'unchanged' as const;
      throw e;
    }
  };
  try {
    return await write(desired);
  } catch (e) {
    if (!isMaasError(e) || e.status >= 500) throw e;
    const version = await deps.repo.getVersion(r.name, r.version);
    if (version?.status !== 'READY') {
      const reason = `version ${r.version} not servable: ${version ? version.status : 'deleted'}`;
      deps.logger?.warn('rollout aborted: its version can no longer be served', {
        model: r.name,
        alias: r.alias,
        rollout: r.id,
        version: r.version,
        error: e.message,
      });
      await endRollout(deps, r, 'aborted', reason, CONTROLLER_ACTOR, alias);
      return 'ended';
    }
    if (!desired.shadow || desired.shadow.version === r.version) throw e;
    const { shadow, ...withoutShadow } = desired;
    deps.logger?.warn("rollout split written without the alias's shadow, which was refused", {
      model: r.name,
      alias: r.alias,
      rollout: r.id,
      shadow: shadow.version,
      error: e.message,
    });
    return write(withoutShadow);
  }
}

/**
 * Ends a rollout (`completed`, `rolled_back` or `aborted`, with `reason`), conditional on its revision, with its
 * alias change pending; then writes that change (see `settle`). Answers the rollout as it ended.
 */
async function endRollout(
  deps: RolloutDeps,
  r: Rollout,
  status: Exclude<RolloutStatus, 'running' | 'paused'>,
  reason: string,
  actor: string,
  alias?: AliasState | null,
): Promise<Rollout> {
  const at = now(deps).toISOString();
  const { pausedAt: _p, ...rest } = r;
  const ended = await deps.rollouts.update(
    { ...rest, status, endedReason: reason, endedAt: at, updatedAt: at, aliasPending: true },
    r.revision,
  );
  const current = alias === undefined ? await deps.repo.getAlias(r.name, r.alias) : (alias ?? undefined);
  return settle(deps, ended, current, actor);
}

/**
 * Writes the alias change of a rollout that ended, unless it is already there, then clears `aliasPending`:
 * `completed` moves the alias to the version (conditional on it still pointing at `fromVersion`; history reason
 * `rollout completed`), `rolled_back` and `aborted` clear the split's canary and shadow when they still name the
 * version (history reason: the rollback's, or `rollout aborted`; a rollback that clears it publishes `AliasMoved`
 * to the stable version). A promotion whose alias was meanwhile moved to another version (or removed) ends
 * `aborted` (`superseded`) instead, its split cleared as an abort's. A lost race on the alias (412) leaves it
 * pending. `RolloutRolledBack` / `RolloutCompleted` (the latter only with the alias on the version) are published
 * once, after the conditional write that clears `aliasPending`, whether or not this run wrote the alias change.
 */
async function settle(
  deps: RolloutDeps,
  r: Rollout,
  alias: AliasState | undefined,
  actor: string,
): Promise<Rollout> {
  const base = {
    name: r.name,
    alias: r.alias,
    rolloutId: r.id,
    version: r.version,
    fromVersion: r.fromVersion,
  };
  const superseded =
    r.status === 'completed' && (!alias || (alias.version !== r.fromVersion && alias.version !== r.version));
  const end: Rollout = superseded ? { ...r, status: 'aborted', endedReason: 'superseded' } : r;
  // Whether the alias is on the version (a completion is announced only then).
  let promoted = end.status === 'completed' && alias?.version === r.version;
  try {
    if (end.status === 'completed') {
      if (alias && alias.version === r.fromVersion) {
        await moveAlias(deps, {
          name: r.name,
          alias: r.alias,
          version: r.version,
          expectedVersion: r.fromVersion,
          expectedRevision: alias.revision,
          reason: 'rollout completed',
          actor,
        });
        promoted = true;
      }
    } else if (alias && routingHasRollout(alias.routing, r.version)) {
      const rolledBack = end.status === 'rolled_back';
      const reason = rolledBack
        ? (end.endedReason ?? 'rolled back')
        : end.endedReason === 'aborted'
          ? 'rollout aborted'
          : `rollout aborted: ${end.endedReason ?? ''}`.trim();
      await updateAlias(deps, {
        name: r.name,
        alias: r.alias,
        routing: clearedRouting(alias.routing, r.version),
        expectedRevision: alias.revision,
        reason,
        actor,
      });
      // The alias is back on its stable version only now (and only by this write).
      if (rolledBack) {
        await publish(deps, {
          type: 'AliasMoved',
          detail: { name: r.name, alias: r.alias, version: alias.version, previousVersion: alias.version },
        });
      }
    }
  } catch (e) {
    if (e instanceof PreconditionFailedError) return r;
    // Anything else that refuses the change (the version archived, the alias removed…) will not change by
    // retrying: the rollout settles as it is, and the refusal is reported.
    if (!isMaasError(e) || e.status >= 500) throw e;
    deps.logger?.warn('rollout ended without its alias change', {
      model: r.name,
      alias: r.alias,
      rollout: r.id,
      error: e.message,
    });
  }
  const at = now(deps).toISOString();
  const { aliasPending: _a, ...rest } = end;
  let settled: Rollout;
  try {
    settled = await deps.rollouts.update({ ...rest, updatedAt: at }, r.revision);
  } catch (e) {
    if (e instanceof PreconditionFailedError) return r;
    throw e;
  }
  // The end is announced by the one write that settled it (whoever wrote the alias change, or found it written).
  if (settled.status === 'rolled_back') {
    await publish(deps, {
      type: 'RolloutRolledBack',
      detail: { ...base, reason: settled.endedReason ?? '' },
    });
  } else if (settled.status === 'completed' && promoted) {
    await publish(deps, { type: 'RolloutCompleted', detail: base });
  }
  return settled;
}

/**
 * An alarm changed state (CloudWatch's alarm event, or `POST /local/alarms/{name}` locally). In ALARM, every active
 * rollout that names it is rolled back now (reason `alarm:<name>`); answers them.
 */
export async function onAlarm(deps: RolloutDeps, alarmName: string, state: string): Promise<Rollout[]> {
  if (state !== 'ALARM') return [];
  const rolledBack: Rollout[] = [];
  for (const l of await deps.rollouts.listActive()) {
    if (!isActive(l) || !l.alarms.includes(alarmName)) continue;
    try {
      const alias = await deps.repo.getAlias(l.name, l.alias);
      const r = await deps.rollouts.get(l.name, l.alias);
      if (!r || r.id !== l.id || !isActive(r)) continue;
      rolledBack.push(
        await endRollout(deps, r, 'rolled_back', `alarm:${alarmName}`, CONTROLLER_ACTOR, alias ?? null),
      );
    } catch (e) {
      if (e instanceof PreconditionFailedError) continue;
      deps.logger?.warn('rollout not rolled back', {
        model: l.name,
        alias: l.alias,
        rollout: l.id,
        alarm: alarmName,
        error: (e as Error)?.message ?? String(e),
      });
    }
  }
  return rolledBack;
}

/**
 * Counts a shadow comparison into the active rollout of its alias when it compares that rollout's version against
 * its stable one (`servedVersion` = `fromVersion`) and, when the comparison tells when the request was answered
 * (`at`, ISO 8601), that was not before the rollout started — a comparison of an earlier rollout of the same
 * version, delivered late, counts into none. When the counts then break the rollout's bounds, the rollout is rolled
 * back at once (`divergence:<metric>`). Answers whether it was counted.
 */
export async function recordComparison(deps: RolloutDeps, c: ShadowComparison): Promise<boolean> {
  const r = await deps.rollouts.get(c.model, c.alias);
  if (!r || !isActive(r) || r.version !== c.shadowVersion || r.fromVersion !== c.servedVersion) return false;
  if (c.at !== undefined && Date.parse(c.at) < Date.parse(r.startedAt)) return false;
  const delta = divergenceDelta(c, r.maxDivergence);
  if (!(await deps.rollouts.recordDivergence(r.name, r.alias, r.id, delta))) return false;
  if (divergenceBreach(r.maxDivergence, addCounters(r.divergence, delta))) {
    // Judged again on the rollout as stored now (other comparisons counted meanwhile).
    const alias = await deps.repo.getAlias(r.name, r.alias);
    const fresh = await deps.rollouts.get(r.name, r.alias);
    const reason =
      fresh && fresh.id === r.id ? divergenceBreach(fresh.maxDivergence, fresh.divergence) : undefined;
    if (fresh && isActive(fresh) && reason) {
      await endRollout(deps, fresh, 'rolled_back', reason, CONTROLLER_ACTOR, alias ?? null).catch((e) => {
        if (!(e instanceof PreconditionFailedError)) throw e;
      });
    }
  }
  return true;
}

/**
 * Staged rollouts (docs/ARCHITECTURE.md, "Progressive delivery"): the pure rules of a rollout that walks a new
 * version of a model through canary weights, step by step, each held for its bake time, and promotes it at the
 * end — or rolls it back as soon as one of its CloudWatch alarms fires or its shadow comparisons diverge.
 *
 * A rollout is a state machine over one alias: `running` (its steps advance after their bakes), `paused` (its step
 * holds, alarms and divergence still roll it back), and the ends `completed` (the alias moved to the version),
 * `rolled_back` (an alarm or divergence cleared the split) and `aborted` (by hand, or `superseded`: the alias was
 * moved by other means). The controller (functions/app/rollout.ts) asks `decide` what to do next and brings the
 * alias to `desiredRouting`.
 */
import { isPercent } from './capture';
import type { ShadowComparison } from './divergence';
import { BadRequestError, ConflictError, NotFoundError, PreconditionFailedError } from './errors';
import { hasLoneSurrogate } from './names';
import { signatureMismatch } from './registry-plans';
import { PARAMETER_NAME } from './routing';
import { isStorableNumber, STORABLE_NUMBER } from './stored-numbers';
import type { AliasRouting, ModelVersion } from './types';

/** One step of a rollout: the canary's share of the alias's traffic, held for `bakeSeconds`. */
export interface RolloutStep {
  /** 0.1-100, in steps of 0.1; strictly increasing from step to step. */
  readonly weight: number;
  /** How long the step is held before the next one (or the promotion): an integer >= 0. */
  readonly bakeSeconds: number;
}

/** How far the new version's answers may stray from the stable version's (shadow comparisons) before it is rolled back. */
export interface DivergenceBounds {
  /**
   * Least share (0-1) of compared rows whose argmax agrees; judged once `minSamples` rows were compared (by
   * the running total over the rollout). Needs a model output of class scores (`hasClassScores`).
   */
  readonly minArgmaxAgreement?: number;
  /**
   * Largest absolute difference of any element of the model's own outputs tolerated (post-processing outputs are
   * derived from them, and not judged): one comparison over it rolls back.
   */
  readonly maxAbsDiff?: number;
  /** Largest mean KL divergence (stable ‖ new) of one comparison's probability outputs: one over it rolls back. */
  readonly maxKlDivergence?: number;
  /**
   * Largest share (0-1) of mirrored requests whose shadow run failed (the new version could not answer them);
   * judged once `ROLLOUT_LIMITS.minShadowRequests` requests were mirrored. @default 0.05
   */
  readonly maxShadowErrorRate?: number;
  /**
   * Rows compared (`DivergenceCounters.rows`) before the argmax agreement is judged, and before the rollout may be
   * promoted: a rollout that bounds divergence is not promoted on comparisons it never got. @default 100
   */
  readonly minSamples?: number;
  /** Share (percent) of the stable traffic mirrored to the new version for the comparisons. @default 10 */
  readonly shadowPercent?: number;
}

/** What a caller asks of a rollout. */
export interface RolloutSpec {
  /** The version rolled out (becomes the alias's version at the end). */
  readonly version: number;
  /** 1-20 steps. */
  readonly steps: readonly RolloutStep[];
  /** CloudWatch alarm names (0-10): any in ALARM rolls the rollout back. */
  readonly alarms: readonly string[];
  /** Bounds of the shadow comparisons; with it the stable traffic is mirrored to the version. */
  readonly maxDivergence?: DivergenceBounds;
  /** The split's key parameter (sticky routing); absent: the alias's own is kept. */
  readonly keyParameter?: string;
}

export type RolloutStatus = 'running' | 'paused' | 'completed' | 'rolled_back' | 'aborted';

/** The statuses of a rollout that is not over. */
export const ACTIVE_ROLLOUT_STATUSES: readonly RolloutStatus[] = ['running', 'paused'];

/** The shadow comparisons counted into a rollout. */
export interface DivergenceCounters {
  /** Comparisons counted (failed ones included). */
  readonly requests: number;
  /**
   * Rows compared, of the model's own outputs: those of its class-score outputs (whose argmax was compared) when it
   * has any, else those of its other outputs (a regression's `[N, 1]`, a rank-1 output) — what `minSamples` counts.
   * A version's outputs are the same in every answer, so a rollout's rows are all of one kind.
   */
  readonly rows: number;
  /** Of `rows`, those whose argmax agreed. */
  readonly agreeingRows: number;
  /** Comparisons with an output over `maxAbsDiff`. */
  readonly overMaxAbs: number;
  /** Comparisons with an output over `maxKlDivergence`. */
  readonly overKl: number;
  /** Comparisons whose shadow run failed. */
  readonly shadowErrors: number;
}

export const ZERO_DIVERGENCE: DivergenceCounters = {
  requests: 0,
  rows: 0,
  agreeingRows: 0,
  overMaxAbs: 0,
  overKl: 0,
  shadowErrors: 0,
};

/** Counters `a` with `b` added, field by field. */
export function addCounters(a: DivergenceCounters, b: DivergenceCounters): DivergenceCounters {
  return {
    requests: a.requests + b.requests,
    rows: a.rows + b.rows,
    agreeingRows: a.agreeingRows + b.agreeingRows,
    overMaxAbs: a.overMaxAbs + b.overMaxAbs,
    overKl: a.overKl + b.overKl,
    shadowErrors: a.shadowErrors + b.shadowErrors,
  };
}

/** A rollout as stored: one per alias, its current or last one. */
export interface Rollout extends RolloutSpec {
  readonly name: string;
  readonly alias: string;
  /** A UUID. */
  readonly id: string;
  /** The alias's version when the rollout started (the stable version it rolls back to). */
  readonly fromVersion: number;
  readonly status: RolloutStatus;
  /** 0-based index of the current step. */
  readonly step: number;
  readonly stepStartedAt: string;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly actor: string;
  /** +1 per transition; every transition is conditional on it. */
  readonly revision: number;
  /** Why it ended: `completed`, `alarm:<name>`, `divergence:<metric>`, `aborted`, `superseded`… */
  readonly endedReason?: string;
  readonly endedAt?: string;
  /** When a paused rollout was paused (resuming moves `stepStartedAt` on by the pause, so a bake keeps what it had). */
  readonly pausedAt?: string;
  /**
   * Set when the rollout ended and the alias change that goes with its end (promotion, or clearing the split) is
   * not yet known to be written; the controller finishes it and clears the flag. While set (and while the rollout
   * is active) the rollout is listed for the controller.
   */
  readonly aliasPending?: boolean;
  readonly divergence: DivergenceCounters;
}

/** A shadow route of a split (as `AliasRouting.shadow`). */
export interface ShadowRouting {
  readonly version: number;
  readonly percent: number;
}

/** A split with its shadow (`AliasRouting` carries `shadow` once shadow traffic exists). */
export type RolloutRouting = AliasRouting & { readonly shadow?: ShadowRouting };

/** The next action of a rollout (see `decide`). */
export type RolloutAction =
  | { readonly type: 'none' }
  | { readonly type: 'advance'; readonly step: number }
  | { readonly type: 'promote' }
  | { readonly type: 'rollback'; readonly reason: RollbackReason };

export type RollbackReason =
  | `alarm:${string}`
  | 'divergence:argmaxAgreement'
  | 'divergence:maxAbsDiff'
  | 'divergence:klDivergence'
  | 'divergence:shadowErrors';

/** Rollout limits. */
export const ROLLOUT_LIMITS = {
  maxSteps: 20,
  maxAlarms: 10,
  maxAlarmNameLength: 255,
  /** A step's bake: at most 7 days. */
  maxBakeSeconds: 7 * 24 * 3600,
  defaultMinSamples: 100,
  defaultShadowPercent: 10,
  defaultMaxShadowErrorRate: 0.05,
  /** Mirrored requests before the share of failed shadow runs is judged. */
  minShadowRequests: 20,
} as const;

const invalid = (why: string) => new BadRequestError(`rollout ${why}`, 'INVALID_ROLLOUT');

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

function unknownFields(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  const extra = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (extra.length > 0) throw invalid(`${where} has unknown field(s): ${extra.join(', ')}`);
}

/**
 * Parses a rollout request body: `{version, steps: [{weight, bakeSeconds}…], alarms?: [name…], maxDivergence?:
 * {minArgmaxAgreement?, maxAbsDiff?, maxKlDivergence?, minSamples?, shadowPercent?}, keyParameter?}`. 400
 * `INVALID_ROLLOUT` naming what to change otherwise. (That the version exists, is READY and fits the alias is the
 * registry's to check.)
 */
export function parseRolloutSpec(body: unknown): RolloutSpec {
  if (!isObject(body)) {
    throw invalid(
      'must be an object {version, steps: [{weight, bakeSeconds}], alarms?, maxDivergence?, keyParameter?}',
    );
  }
  unknownFields(body, ['version', 'steps', 'alarms', 'maxDivergence', 'keyParameter'], 'body');
  const { version, steps, alarms, maxDivergence, keyParameter } = body;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw invalid('version must be a version number (a positive integer)');
  }
  const parsedSteps = checkSteps(steps);
  let parsedAlarms: string[] = [];
  if (alarms !== undefined) {
    if (!Array.isArray(alarms)) throw invalid('alarms must be an array of CloudWatch alarm names');
    if (alarms.length > ROLLOUT_LIMITS.maxAlarms) {
      throw invalid(`alarms names ${alarms.length} alarms; at most ${ROLLOUT_LIMITS.maxAlarms} are allowed`);
    }
    for (const a of alarms) {
      if (
        typeof a !== 'string' ||
        a.length < 1 ||
        a.length > ROLLOUT_LIMITS.maxAlarmNameLength ||
        hasLoneSurrogate(a)
      ) {
        throw invalid(
          `alarms must be CloudWatch alarm names of 1-${ROLLOUT_LIMITS.maxAlarmNameLength} characters of well-formed text`,
        );
      }
    }
    parsedAlarms = [...new Set(alarms as string[])];
  }
  if (
    keyParameter !== undefined &&
    (typeof keyParameter !== 'string' || !PARAMETER_NAME.test(keyParameter))
  ) {
    throw invalid('keyParameter must be a parameter name (letters, digits, _ . -; at most 64)');
  }
  const bounds = maxDivergence === undefined ? undefined : checkBounds(maxDivergence);
  if (bounds && parsedSteps[0]!.weight >= 100) {
    throw invalid(
      'a rollout that bounds divergence needs a first step below 100: at 100 the stable version answers nothing, so no request is mirrored and compared',
    );
  }
  return {
    version,
    steps: parsedSteps,
    alarms: parsedAlarms,
    ...(bounds ? { maxDivergence: bounds } : {}),
    ...(typeof keyParameter === 'string' ? { keyParameter } : {}),
  };
}

function checkSteps(steps: unknown): RolloutStep[] {
  if (!Array.isArray(steps) || steps.length < 1 || steps.length > ROLLOUT_LIMITS.maxSteps) {
    throw invalid(`steps must be an array of 1-${ROLLOUT_LIMITS.maxSteps} steps {weight, bakeSeconds}`);
  }
  const out: RolloutStep[] = [];
  steps.forEach((s: unknown, i) => {
    const where = `steps[${i}]`;
    if (!isObject(s)) throw invalid(`${where} must be an object {weight, bakeSeconds}`);
    unknownFields(s, ['weight', 'bakeSeconds'], where);
    const { weight, bakeSeconds } = s;
    if (!isPercent(weight, 0.1) || weight <= 0) {
      throw invalid(`${where}.weight must be a number from 0.1 to 100 in steps of 0.1 (0.1, 0.2 … 100)`);
    }
    const previous = out.at(-1);
    if (previous && weight <= previous.weight) {
      throw invalid(
        `${where}.weight must be more than the step before (${previous.weight}): weights increase`,
      );
    }
    // Absent: no bake. `null` is no number: refused like any other.
    const bake = bakeSeconds === undefined ? 0 : bakeSeconds;
    if (
      typeof bake !== 'number' ||
      !Number.isInteger(bake) ||
      bake < 0 ||
      bake > ROLLOUT_LIMITS.maxBakeSeconds
    ) {
      throw invalid(`${where}.bakeSeconds must be an integer from 0 to ${ROLLOUT_LIMITS.maxBakeSeconds}`);
    }
    out.push({ weight, bakeSeconds: bake });
  });
  return out;
}

function checkBounds(value: unknown): DivergenceBounds {
  if (!isObject(value)) {
    throw invalid(
      'maxDivergence must be an object {minArgmaxAgreement?, maxAbsDiff?, maxKlDivergence?, maxShadowErrorRate?, minSamples?, shadowPercent?}',
    );
  }
  unknownFields(
    value,
    [
      'minArgmaxAgreement',
      'maxAbsDiff',
      'maxKlDivergence',
      'maxShadowErrorRate',
      'minSamples',
      'shadowPercent',
    ],
    'maxDivergence',
  );
  const { minArgmaxAgreement, maxAbsDiff, maxKlDivergence, maxShadowErrorRate, minSamples, shadowPercent } =
    value;
  checkBound(minArgmaxAgreement, 'minArgmaxAgreement', 'from 0 to 1', (v) => v >= 0 && v <= 1);
  checkBound(maxAbsDiff, 'maxAbsDiff', '>= 0', (v) => v >= 0);
  checkBound(maxKlDivergence, 'maxKlDivergence', '>= 0', (v) => v >= 0);
  checkBound(maxShadowErrorRate, 'maxShadowErrorRate', 'from 0 to 1', (v) => v >= 0 && v <= 1);
  if (minArgmaxAgreement === undefined && maxAbsDiff === undefined && maxKlDivergence === undefined) {
    throw invalid('maxDivergence names no bound: give minArgmaxAgreement, maxAbsDiff and/or maxKlDivergence');
  }
  if (
    minSamples !== undefined &&
    (typeof minSamples !== 'number' || !Number.isSafeInteger(minSamples) || minSamples < 1)
  ) {
    throw invalid('maxDivergence.minSamples must be a positive integer');
  }
  if (shadowPercent !== undefined && (!isPercent(shadowPercent, 0.1) || shadowPercent <= 0)) {
    throw invalid(
      'maxDivergence.shadowPercent must be a number from 0.1 to 100 in steps of 0.1 (0.1, 0.2 … 100)',
    );
  }
  return {
    ...(minArgmaxAgreement !== undefined ? { minArgmaxAgreement } : {}),
    ...(maxAbsDiff !== undefined ? { maxAbsDiff } : {}),
    ...(maxKlDivergence !== undefined ? { maxKlDivergence } : {}),
    ...(maxShadowErrorRate !== undefined ? { maxShadowErrorRate } : {}),
    ...(minSamples !== undefined ? { minSamples } : {}),
    ...(shadowPercent !== undefined ? { shadowPercent } : {}),
  } as DivergenceBounds;
}

/**
 * One free-form bound of `maxDivergence` (absent, or a number in `range`): stored with the rollout, so it must also
 * be a number the registry can store — the rule of the derive gate's thresholds (1e-300 or 1e300 would fail the
 * write after the request was accepted).
 */
function checkBound(value: unknown, name: string, range: string, inRange: (v: number) => boolean): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !isStorableNumber(value) || !inRange(value)) {
    const got = typeof value === 'number' ? ` (got ${value})` : '';
    throw invalid(
      `maxDivergence.${name} must be a number ${range}${got}; every bound must be ${STORABLE_NUMBER}`,
    );
  }
}

/** The actions of `POST /models/{name}/aliases/{alias}/rollout/{action}`. */
export const ROLLOUT_ACTIONS = ['pause', 'resume', 'abort'] as const;
export type RolloutActionName = (typeof ROLLOUT_ACTIONS)[number];

/**
 * The body of `PUT /models/{name}/aliases/{alias}/rollout`: a rollout spec (`parseRolloutSpec`) and, optionally,
 * `expectedRevision`, the alias's revision the caller saw (an integer >= 0). 400 `INVALID_ROLLOUT` otherwise.
 */
export function parseRolloutRequest(body: unknown): { spec: RolloutSpec; expectedRevision?: number } {
  if (!isObject(body)) return { spec: parseRolloutSpec(body) };
  const { expectedRevision, ...rest } = body;
  if (
    expectedRevision !== undefined &&
    (typeof expectedRevision !== 'number' || !Number.isSafeInteger(expectedRevision) || expectedRevision < 0)
  ) {
    throw invalid('expectedRevision must be an integer >= 0 (the alias revision you read)');
  }
  return {
    spec: parseRolloutSpec(rest),
    ...(expectedRevision !== undefined ? { expectedRevision: expectedRevision as number } : {}),
  };
}

/** A step's weight as the CLI writes it: plain decimal (no sign, exponent, hex, padding or leading zeros). */
const DECIMAL = /^(?:0|[1-9]\d*)(?:\.\d+)?$/;
/** A bake: a plain integer (no padding or leading zeros) and an optional unit. */
const DURATION = /^(0|[1-9]\d*)(s|m|h)?$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/**
 * Parses the CLI's steps: `10:5m,50:10m,100` — comma-separated `weight[:bake]` (spaces around the commas are
 * allowed, none within a step), the weight a plain decimal number (`10`, `0.5`; not `1e1`, `0x10` or `010`), the
 * bake in seconds (`30`, `30s`), minutes (`5m`) or hours (`1h`); a step without a bake has 0 s. 400
 * `INVALID_ROLLOUT` otherwise (the same rules as `parseRolloutSpec`).
 */
export function parseSteps(text: string): RolloutStep[] {
  const parts = text.split(',').map((p) => p.trim());
  const steps = parts.map((part, i) => {
    const [w, bake, ...rest] = part.split(':');
    if (w === undefined || rest.length > 0 || !DECIMAL.test(w)) {
      throw invalid(
        `step ${i + 1} '${part}' must be weight[:bake], e.g. 10:5m (the weight a decimal number)`,
      );
    }
    const weight = Number(w);
    let bakeSeconds = 0;
    if (bake !== undefined) {
      const m = DURATION.exec(bake);
      if (!m) throw invalid(`step ${i + 1} '${part}': the bake must be a duration like 30s, 5m or 1h`);
      bakeSeconds = Number(m[1]) * UNIT_SECONDS[(m[2] ?? 's') as keyof typeof UNIT_SECONDS];
    }
    return { weight, bakeSeconds };
  });
  return checkSteps(steps);
}

/** Whether a rollout is not over (running or paused). */
export const isActive = (r: Pick<Rollout, 'status'>): boolean => ACTIVE_ROLLOUT_STATUSES.includes(r.status);

/** Whether the controller works on the rollout: active, or ended with its alias change pending. */
export const isListed = (r: Pick<Rollout, 'status' | 'aliasPending'>): boolean =>
  isActive(r) || r.aliasPending === true;

/** When the current step's bake ends (ms since the epoch). */
export function stepEndsAt(r: Pick<Rollout, 'steps' | 'step' | 'stepStartedAt'>): number {
  const step = r.steps[r.step];
  return Date.parse(r.stepStartedAt) + (step?.bakeSeconds ?? 0) * 1000;
}

/**
 * The divergence bound the counters break, if any: the share of failed shadow runs once
 * `ROLLOUT_LIMITS.minShadowRequests` requests were mirrored (a version that cannot answer has no divergence to
 * measure, and must not pass for one that agrees), the argmax agreement once `minSamples` rows were compared, then
 * any comparison over `maxAbsDiff`, then any over `maxKlDivergence`.
 */
export function divergenceBreach(
  bounds: DivergenceBounds | undefined,
  c: DivergenceCounters,
): RollbackReason | undefined {
  if (!bounds) return undefined;
  const minSamples = bounds.minSamples ?? ROLLOUT_LIMITS.defaultMinSamples;
  const maxErrorRate = bounds.maxShadowErrorRate ?? ROLLOUT_LIMITS.defaultMaxShadowErrorRate;
  if (c.requests >= ROLLOUT_LIMITS.minShadowRequests && c.shadowErrors / c.requests > maxErrorRate) {
    return 'divergence:shadowErrors';
  }
  if (bounds.minArgmaxAgreement !== undefined && c.rows >= minSamples && c.rows > 0) {
    if (c.agreeingRows / c.rows < bounds.minArgmaxAgreement) return 'divergence:argmaxAgreement';
  }
  if (bounds.maxAbsDiff !== undefined && c.overMaxAbs > 0) return 'divergence:maxAbsDiff';
  if (bounds.maxKlDivergence !== undefined && c.overKl > 0) return 'divergence:klDivergence';
  return undefined;
}

/**
 * The next action of a rollout at `now`, given the alarms (of any names) now in ALARM. An active rollout (running
 * or paused) with one of its alarms in ALARM, or whose divergence breaks its bounds, is rolled back; a running one
 * whose step has baked advances to the next step, or, after its last step, is promoted — one that bounds divergence
 * only once `minSamples` rows were compared (`awaitingSamples`). Otherwise nothing.
 */
export function decide(rollout: Rollout, now: Date, alarmsInAlarm: readonly string[]): RolloutAction {
  if (!isActive(rollout)) return { type: 'none' };
  const firing = rollout.alarms.find((a) => alarmsInAlarm.includes(a));
  if (firing !== undefined) return { type: 'rollback', reason: `alarm:${firing}` };
  const breach = divergenceBreach(rollout.maxDivergence, rollout.divergence);
  if (breach) return { type: 'rollback', reason: breach };
  if (rollout.status !== 'running') return { type: 'none' };
  if (now.getTime() < stepEndsAt(rollout)) return { type: 'none' };
  // A rollout that bounds divergence is promoted, and enters a step of 100 % (where the stable version answers
  // nothing, so nothing more is mirrored and compared), only once it has its compared rows.
  if (holdsForSamples(rollout)) return { type: 'none' };
  return rollout.step + 1 < rollout.steps.length
    ? { type: 'advance', step: rollout.step + 1 }
    : { type: 'promote' };
}

/**
 * Whether a rollout waits for compared rows before its next transition: its promotion after the last step, or its
 * advance into a step of 100 %, after which no row can be compared.
 */
function holdsForSamples(r: Pick<Rollout, 'maxDivergence' | 'divergence' | 'step' | 'steps'>): boolean {
  const next = r.steps[r.step + 1];
  return (next === undefined || next.weight >= 100) && awaitingSamples(r);
}

/** Whether a rollout that bounds divergence still lacks the `minSamples` compared rows its promotion needs. */
export function awaitingSamples(r: Pick<Rollout, 'maxDivergence' | 'divergence'>): boolean {
  if (!r.maxDivergence) return false;
  return r.divergence.rows < (r.maxDivergence.minSamples ?? ROLLOUT_LIMITS.defaultMinSamples);
}

/**
 * The split the alias should have while the rollout is active: the version as canary at the current step's weight
 * (it replaces any other canary), the rollout's key parameter (else the alias's own, from `current`), and as shadow:
 * the version at `shadowPercent` when the rollout bounds divergence (its comparisons need it: it replaces the
 * alias's own shadow), else the alias's own shadow as it is in `current` (a shadow experiment running beside the
 * rollout is the alias's, not the rollout's: it is kept, and changed or ended by hand as usual). Undefined for a
 * rollout that is over.
 */
export function desiredRouting(rollout: Rollout, current?: AliasRouting): RolloutRouting | undefined {
  if (!isActive(rollout)) return undefined;
  const weight = rollout.steps[rollout.step]?.weight ?? 0;
  const keyParameter = rollout.keyParameter ?? current?.keyParameter;
  const shadow: ShadowRouting | undefined = rollout.maxDivergence
    ? {
        version: rollout.version,
        percent: rollout.maxDivergence.shadowPercent ?? ROLLOUT_LIMITS.defaultShadowPercent,
      }
    : current?.shadow;
  return {
    canary: { version: rollout.version, weight },
    ...(shadow ? { shadow: { version: shadow.version, percent: shadow.percent } } : {}),
    ...(keyParameter !== undefined ? { keyParameter } : {}),
  };
}

/**
 * A split without what names the rollout's `version` (what a rollback or an abort leaves): its canary, and its
 * shadow when it shadows the version; another version's shadow (the alias's own experiment) and the key parameter
 * stay.
 */
export function clearedRouting(current: AliasRouting | undefined, version: number): RolloutRouting | null {
  const shadow = current?.shadow;
  const kept = shadow && shadow.version !== version ? shadow : undefined;
  if (!kept && current?.keyParameter === undefined) return null;
  return {
    ...(kept ? { shadow: { version: kept.version, percent: kept.percent } } : {}),
    ...(current?.keyParameter !== undefined ? { keyParameter: current.keyParameter } : {}),
  };
}

/**
 * Whether a version's model outputs (its signature's: post-processing outputs are derived from them) include class
 * scores, whose argmax a shadow comparison compares: a non-BYTES output of rank >= 2 whose last dimension (the
 * classes) is >= 2 or dynamic, or of any rank (`[]`, which may be one).
 */
export function hasClassScores(version: Pick<ModelVersion, 'signature'>): boolean {
  return version.signature.outputs.some((o) => {
    if (o.datatype === 'BYTES') return false;
    if (o.shape.length === 0) return true;
    const last = o.shape[o.shape.length - 1] as number;
    return o.shape.length >= 2 && (last < 0 || last >= 2);
  });
}

/**
 * Checks a rollout spec against the version it rolls out (read by the caller): 400 `INVALID_ROLLOUT` for a
 * `minArgmaxAgreement` of a version without class scores (`hasClassScores`) — no row of it has an argmax, so the
 * agreement could never be judged.
 */
export function checkRolloutVersion(spec: RolloutSpec, version: Pick<ModelVersion, 'signature'>): void {
  if (spec.maxDivergence?.minArgmaxAgreement !== undefined && !hasClassScores(version)) {
    throw invalid(
      `maxDivergence.minArgmaxAgreement needs class scores, and no output of version ${spec.version} has them (an output of rank 2 or more whose last dimension, the classes, is 2 or more): bound maxAbsDiff or maxKlDivergence instead`,
    );
  }
}

/**
 * 409 `SHADOW_INCOMPATIBLE` when the alias's own shadow, which a rollout keeps (`desiredRouting`), could not shadow
 * the rolled-out version once it is promoted (the promotion would be refused: the alias keeps its shadow when it
 * moves); undefined when it can.
 */
export function keptShadowConflict(
  r: Pick<Rollout, 'name' | 'alias' | 'version'>,
  version: Pick<ModelVersion, 'signature' | 'labels' | 'postprocess'>,
  shadow: Pick<ModelVersion, 'version' | 'signature' | 'labels' | 'postprocess'>,
): ConflictError | undefined {
  const mismatch = signatureMismatch(version, shadow);
  if (!mismatch) return undefined;
  return new ConflictError(
    `alias '${r.alias}' of model '${r.name}' has a shadow of version ${shadow.version}, which a rollout without maxDivergence keeps, but it could not shadow version ${r.version} once promoted: ${mismatch}. End the shadow first (maas shadow ${r.name} --off --alias ${r.alias}), or give the rollout maxDivergence (its own shadow replaces it)`,
    'SHADOW_INCOMPATIBLE',
  );
}

/** Whether two splits route the same way (canary, shadow and key parameter). */
export function sameRouting(
  a: RolloutRouting | null | undefined,
  b: RolloutRouting | null | undefined,
): boolean {
  const norm = (r: RolloutRouting | null | undefined) => ({
    canary: r?.canary ? `${r.canary.version}@${r.canary.weight}` : '',
    shadow: r?.shadow ? `${r.shadow.version}@${r.shadow.percent}` : '',
    key: r?.keyParameter ?? '',
  });
  const x = norm(a);
  const y = norm(b);
  return x.canary === y.canary && x.shadow === y.shadow && x.key === y.key;
}

/** Whether the split still carries something of the rollout (its version as canary or shadow). */
export function routingHasRollout(r: RolloutRouting | undefined, version: number): boolean {
  return r?.canary?.version === version || r?.shadow?.version === version;
}

/**
 * What one shadow comparison adds to a rollout's counters, judged by its bounds: its rows (those of the outputs of
 * class scores, with their argmax agreement, when it has any; else those of its other outputs), whether an output
 * went over `maxAbsDiff` / `maxKlDivergence`, or a failed shadow run.
 *
 * The model's own outputs are judged; post-processing outputs (`postprocess`) add nothing but their KL (a softmax of
 * the model's scores, the only probabilities of a model answering logits). They are derived from the model's
 * outputs: a class index differs by up to the class count - 1 on a near-tie, a label by 1, scores sorted best first
 * always agree at the top — their figures would overstate or hide what the scores tell, and count rows twice.
 */
export function divergenceDelta(
  c: ShadowComparison,
  bounds: DivergenceBounds | undefined,
): DivergenceCounters {
  if (c.failed) return { ...ZERO_DIVERGENCE, requests: 1, shadowErrors: 1 };
  let scored = false;
  let scoreRows = 0;
  let otherRows = 0;
  let agreeingRows = 0;
  let overAbs = false;
  let overKl = false;
  for (const o of c.outputs) {
    if (!o.postprocess) {
      if (o.agreeingRows !== undefined) {
        scored = true;
        scoreRows += o.rows;
        agreeingRows += o.agreeingRows;
      } else {
        otherRows += o.rows;
      }
      if (bounds?.maxAbsDiff !== undefined && o.maxAbsDiff > bounds.maxAbsDiff) overAbs = true;
    }
    if (
      bounds?.maxKlDivergence !== undefined &&
      o.klDivergence !== undefined &&
      o.klDivergence > bounds.maxKlDivergence
    ) {
      overKl = true;
    }
  }
  return {
    requests: 1,
    rows: scored ? scoreRows : otherRows,
    agreeingRows,
    overMaxAbs: overAbs ? 1 : 0,
    overKl: overKl ? 1 : 0,
    shadowErrors: 0,
  };
}

/** The short id of a rollout used in history reasons (its id's first 8 characters). */
export const shortId = (r: Pick<Rollout, 'id'>): string => r.id.slice(0, 8);

/** The history reason of a rollout's step: `rollout 1a2b3c4d: step 2/3, canary v4 at 50%`. */
export function stepReason(r: Pick<Rollout, 'id' | 'step' | 'steps' | 'version'>): string {
  const weight = r.steps[r.step]?.weight ?? 0;
  return `rollout ${shortId(r)}: step ${r.step + 1}/${r.steps.length}, canary v${r.version} at ${weight}%`;
}

/** The rollout as the API shows it: with the current step's `weight` and, while running, `nextStepAt`. */
export function rolloutView(r: Rollout): Rollout & {
  readonly weight: number;
  readonly nextStepAt?: string;
  readonly awaitingSamples?: true;
} {
  const weight = r.steps[r.step]?.weight ?? 0;
  const { aliasPending: _p, ...rest } = r;
  return {
    ...rest,
    weight,
    ...(r.status === 'running' ? { nextStepAt: new Date(stepEndsAt(r)).toISOString() } : {}),
    ...(isActive(r) && holdsForSamples(r) ? { awaitingSamples: true as const } : {}),
  };
}

/** 409 `ROLLOUT_IN_PROGRESS`: the alias has an active rollout. */
export function rolloutInProgress(r: Pick<Rollout, 'name' | 'alias' | 'id' | 'status'>): ConflictError {
  return new ConflictError(
    `alias '${r.alias}' of model '${r.name}' has a ${r.status} rollout (${r.id}): abort it first`,
    'ROLLOUT_IN_PROGRESS',
  );
}

/** 404 `ROLLOUT_NOT_FOUND`. */
export function rolloutNotFound(name: string, alias: string): NotFoundError {
  return new NotFoundError(`alias '${alias}' of model '${name}' has no rollout`, 'ROLLOUT_NOT_FOUND');
}

/** 412: the rollout changed since it was read. */
export function staleRollout(
  r: Pick<Rollout, 'name' | 'alias' | 'id'>,
  expectedRevision: number,
): PreconditionFailedError {
  return new PreconditionFailedError(
    `rollout ${r.id} of alias '${r.alias}' of model '${r.name}' is no longer at revision ${expectedRevision}`,
  );
}

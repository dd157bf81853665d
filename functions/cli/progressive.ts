/**
 * What the progressive delivery commands (`maas shadow`, `maas rollout`) read from their options: rollout steps,
 * divergence bounds, and the split an alias keeps when one of its parts changes. Every mistake is a UsageError
 * (exit code 2); the ranges of the bounds are the service's to check (400 INVALID_ROLLOUT / INVALID_ROUTING).
 */
import { BadRequestError } from '../domain/errors';
import { type DivergenceBounds, parseSteps as parseRolloutSteps, type RolloutStep } from '../domain/rollout';
import { UsageError } from './context';
import { decimalNumber } from './input';

/** A split as the registry API answers it (`Model.splits[alias]`, the `routing` of an alias). */
export interface SplitJson {
  readonly canary?: { readonly version: number; readonly weight: number };
  readonly shadow?: { readonly version: number; readonly percent: number };
  readonly keyParameter?: string;
}

/** The divergence bounds of a rollout as the API takes them (`maxDivergence`): the service's own. */
export type DivergenceJson = DivergenceBounds;

/**
 * Parses `--steps 10:5m,50:10m,100` with the service's own parser (`parseSteps` of functions/domain/rollout.ts):
 * each step a canary weight (percent, 0.1-100, increasing) and, after `:`, how long it bakes before the next one
 * (`30s`, `5m`, `1h`; a bare number is seconds); a step without a bake time has none (0 s). A refusal is a usage
 * error naming the option.
 */
export function parseSteps(text: string): RolloutStep[] {
  try {
    return parseRolloutSteps(text);
  } catch (e) {
    if (e instanceof BadRequestError) throw new UsageError(`--steps: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The keys of `--max-divergence` and the fields of `maxDivergence` they set. */
const DIVERGENCE_KEYS = {
  agreement: 'minArgmaxAgreement',
  maxAbs: 'maxAbsDiff',
  kl: 'maxKlDivergence',
  errors: 'maxShadowErrorRate',
  minSamples: 'minSamples',
  shadow: 'shadowPercent',
} as const satisfies Record<string, keyof DivergenceJson>;

/**
 * Parses `--max-divergence agreement=0.99,maxAbs=0.5,kl=0.1,errors=0.05,minSamples=100,shadow=10`: the least share
 * of rows whose argmax agrees, the largest absolute difference, the largest KL divergence, the largest share of
 * failed shadow runs, the rows compared before agreement is judged (and before promotion), and the share (percent)
 * of the stable traffic mirrored to the new version. Any subset; each key once.
 */
export function parseDivergence(text: string): DivergenceJson {
  const out: Record<string, number> = {};
  const keys = Object.keys(DIVERGENCE_KEYS).join(', ');
  for (const part of text.split(',').map((p) => p.trim())) {
    const m = /^([A-Za-z]+)=(.+)$/.exec(part);
    const key = m?.[1] as keyof typeof DIVERGENCE_KEYS | undefined;
    if (!m || key === undefined || !Object.hasOwn(DIVERGENCE_KEYS, key)) {
      throw new UsageError(
        `--max-divergence: '${part}' is not <key>=<number> with a key among ${keys} (e.g. agreement=0.99,maxAbs=0.5)`,
      );
    }
    const field = DIVERGENCE_KEYS[key];
    const value = decimalNumber(m[2] as string);
    if (value === undefined) {
      throw new UsageError(`--max-divergence: ${key} must be a decimal number (e.g. 0.5), got '${m[2]}'`);
    }
    if (field in out) throw new UsageError(`--max-divergence: ${key} is given twice`);
    out[field] = value;
  }
  return out;
}

/** A change of one or more parts of a split: a part set to `null` is removed, one left `undefined` is kept. */
export interface SplitChange {
  readonly canary?: SplitJson['canary'] | null;
  readonly shadow?: SplitJson['shadow'] | null;
  readonly keyParameter?: string | null;
}

/**
 * The split to write when one part of it changes (a split is written whole): `current` with `change` applied, a
 * part set to `null` removed, a part left `undefined` kept; `null` (no split) when neither a canary nor a shadow is
 * left.
 */
export function nextSplit(current: SplitJson | undefined, change: SplitChange): SplitJson | null {
  const pick = <K extends keyof SplitJson>(k: K): SplitJson[K] | undefined => {
    const v = change[k];
    return v === null ? undefined : v === undefined ? current?.[k] : (v as SplitJson[K]);
  };
  const canary = pick('canary');
  const shadow = pick('shadow');
  const keyParameter = pick('keyParameter');
  // A key parameter alone routes nothing: without a canary and a shadow there is no split.
  if (!canary && !shadow) return null;
  return {
    ...(canary ? { canary } : {}),
    ...(shadow ? { shadow } : {}),
    ...(keyParameter !== undefined ? { keyParameter } : {}),
  };
}

/**
 * Progressive delivery's pure rules (docs/ARCHITECTURE.md, "Progressive delivery"): what a traffic split may be,
 * and which route a request takes within a split alias.
 *
 * A request with a routing key is routed by a hash of key and model into 10 000 buckets: the buckets below
 * `weight × 100` go to the canary, so one key always lands on the same version, and raising the weight only
 * moves keys from stable to canary, never back. A request without a key is routed at random.
 *
 * A shadow mirrors `percent` of the requests its alias answers (those not answered by the shadow version itself)
 * to a version whose answers are only compared, never returned: a keyed request by its key's shadow bucket (a hash
 * of `shadow`, key and model, so one key is always or never mirrored, independently of its canary bucket), one
 * without a key by its inference id's sampling hash (as capture samples).
 */
import { isPercent, isSampled, sampleHash } from './capture';
import { BadRequestError } from './errors';
import type { AliasRouting } from './types';

/** The buckets of the routing hash: weights are honoured in steps of 0.01 %, declared in steps of 0.1 %. */
export const ROUTING_BUCKETS = 10_000;

/** The route of one request within its alias. */
export type SplitRoute = 'stable' | 'canary';

/**
 * Whether a request goes to the canary at `weight` percent: by its key's bucket when it has a key (`random` is then
 * not used), else by `random()` (0 ≤ x < 1).
 */
export function routeOf(
  weight: number,
  key: string | undefined,
  model: string,
  random: () => number = Math.random,
): SplitRoute {
  if (weight <= 0) return 'stable';
  if (weight >= 100) return 'canary';
  const threshold = Math.round(weight * (ROUTING_BUCKETS / 100));
  const bucket = key === undefined ? Math.floor(random() * ROUTING_BUCKETS) : keyBucket(key, model);
  return bucket < threshold ? 'canary' : 'stable';
}

/** The bucket (0 … 9 999) of a routing key for a model. */
export function keyBucket(key: string, model: string): number {
  return sampleHash(`${model}\u0000${key}`) % ROUTING_BUCKETS;
}

/**
 * Whether a request is mirrored to its alias's shadow at `percent`: by the shadow bucket of its key when it has
 * one, else by its inference id's sampling hash. No allocation without a key.
 */
export function isShadowed(
  percent: number,
  key: string | undefined,
  inferenceId: string,
  model: string,
): boolean {
  if (percent <= 0) return false;
  if (percent >= 100) return true;
  if (key === undefined) return isSampled(inferenceId, percent);
  return shadowBucket(key, model) < Math.round(percent * (ROUTING_BUCKETS / 100));
}

/**
 * The shadow bucket (0 … 9 999) of a routing key for a model: `keyBucket('shadow\0' + key, model)`, hashed piece by
 * piece (no string is built).
 */
export function shadowBucket(key: string, model: string): number {
  let h = fnvStep(0x811c9dc5, model);
  h = fnvStep(h, '\u0000shadow\u0000');
  h = fnvStep(h, key) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % ROUTING_BUCKETS;
}

/** FNV-1a (32 bit) continued over `text` (as `fnv1a` of a concatenation, one piece at a time). */
function fnvStep(state: number, text: string): number {
  let h = state;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/** A key parameter's name (the request parameter whose value routes a request): letters, digits, _ . -; at most 64. */
export const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/**
 * Parses a traffic split from a request body: `{canary?: {version, weight}, shadow?: {version, percent},
 * keyParameter?}`; `weight` and `percent` 0-100 in steps of 0.1, `version` a positive integer. 400
 * `INVALID_ROUTING` otherwise. (That the canary and shadow versions exist, are READY, are not the alias's own
 * version and answer like it is the registry's to check.)
 */
export function parseRouting(value: unknown): AliasRouting {
  const bad = (why: string) => new BadRequestError(`routing ${why}`, 'INVALID_ROUTING');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bad('must be an object {canary?: {version, weight}, shadow?: {version, percent}, keyParameter?}');
  }
  const { canary, shadow, keyParameter, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw bad(`has unknown field(s): ${unknown.join(', ')}`);
  if (
    keyParameter !== undefined &&
    (typeof keyParameter !== 'string' || !PARAMETER_NAME.test(keyParameter))
  ) {
    throw bad('keyParameter must be a parameter name (letters, digits, _ . -; at most 64)');
  }
  const parsedCanary = canary === undefined ? undefined : versionShare(canary, 'canary', 'weight', bad);
  const parsedShadow = shadow === undefined ? undefined : versionShare(shadow, 'shadow', 'percent', bad);
  return {
    ...(parsedCanary ? { canary: parsedCanary } : {}),
    ...(parsedShadow ? { shadow: parsedShadow } : {}),
    ...(typeof keyParameter === 'string' ? { keyParameter } : {}),
  };
}

/**
 * One part of a split, `{version, <share>}`: a version number and a percentage from 0 to 100 in steps of 0.1 under
 * the name `share` (`weight` of a canary, `percent` of a shadow).
 */
function versionShare<S extends 'weight' | 'percent'>(
  value: unknown,
  part: 'canary' | 'shadow',
  share: S,
  bad: (why: string) => BadRequestError,
): { version: number } & Record<S, number> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bad(`${part} must be an object {version, ${share}}`);
  }
  const { version, [share]: amount, ...extra } = value as Record<string, unknown>;
  if (Object.keys(extra).length > 0)
    throw bad(`${part} has unknown field(s): ${Object.keys(extra).join(', ')}`);
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw bad(`${part}.version must be a version number`);
  }
  if (!isPercent(amount, 0.1)) {
    throw bad(`${part}.${share} must be a number from 0 to 100 in steps of 0.1 (0, 0.1, 0.2 … 100)`);
  }
  return { version, [share]: amount } as { version: number } & Record<S, number>;
}

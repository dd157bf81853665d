/**
 * The one validator of the names a caller puts in a path or an event: model names, alias names, version
 * numbers, and the version-or-alias `ref` of the inference routes. Used by predict, the registry, async
 * inference and register-on-upload alike, so that a name one path accepts is accepted by every other.
 */
import { DEFAULT_ALIAS, LIMITS } from '../contract/limits';
import { BadRequestError } from './errors';

const VERSION_NUMBER = /^[1-9][0-9]{0,8}$/;
const ALL_DIGITS = /^[0-9]+$/;

/**
 * A value a caller sent, as an error message shows it: a string as JSON text (shortened by `quoted`), a number or
 * another scalar as its text, an array or an object by its kind alone (its text could be huge, and a deeply nested
 * one overflows the stack of `JSON.stringify` or `String`).
 */
export function shownValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(quoted(v));
  if (Array.isArray(v)) return 'an array';
  return v !== null && typeof v === 'object' ? 'an object' : String(v);
}

/** Shortens what a caller sent before it is quoted in an error message. */
export function quoted(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether `text` holds a lone surrogate: text that is not well-formed UTF-16 has no UTF-8 form. */
export const hasLoneSurrogate = (text: string): boolean => LONE_SURROGATE.test(text);

/** True for a valid model name (`^[a-z0-9][a-z0-9-_.]{0,63}$`). */
export const isModelName = (name: string): boolean => LIMITS.namePattern.test(name);

/** True for a valid alias name: the model-name pattern, but not all digits (those are version numbers). */
export const isAliasName = (alias: string): boolean =>
  LIMITS.namePattern.test(alias) && !ALL_DIGITS.test(alias);

/** True for a version number as written in a path: a positive integer without sign or leading zeros. */
export const isVersionNumber = (raw: string): boolean => VERSION_NUMBER.test(raw);

/** Validates a model name; 400 `INVALID_NAME` otherwise. */
export function validateModelName(name: string): string {
  if (!isModelName(name)) {
    throw new BadRequestError(
      `invalid model name '${quoted(name)}': use 1-64 characters a-z 0-9 - _ . starting with a letter or digit`,
      'INVALID_NAME',
    );
  }
  return name;
}

/** Validates an alias name; 400 `INVALID_ALIAS` otherwise. */
export function validateAliasName(alias: string): string {
  if (!isAliasName(alias)) {
    throw new BadRequestError(
      `invalid alias name '${quoted(alias)}': use 1-64 characters a-z 0-9 - _ . starting with a letter or digit, not only digits`,
      'INVALID_ALIAS',
    );
  }
  return alias;
}

/** Parses a version number from a path segment; 400 `INVALID_VERSION` otherwise. */
export function parseVersionNumber(raw: string): number {
  if (!isVersionNumber(raw)) {
    throw new BadRequestError(
      `invalid version '${quoted(raw)}': a positive integer is required`,
      'INVALID_VERSION',
    );
  }
  return Number(raw);
}

/** What a `{ref}` of an inference route names: a version by number, or an alias. */
export type VersionRef = { readonly version: number } | { readonly alias: string };

/**
 * Parses the `{ref}` of `/v2/models/{name}/versions/{ref}`: a version number (`3`) or an alias name (`prod`);
 * no ref is the default alias. All digits that are no version number (`0`, `01`) are 400 `INVALID_VERSION`,
 * anything else that is no alias name 400 `INVALID_ALIAS`.
 */
export function parseVersionRef(ref: string | undefined): VersionRef {
  if (ref === undefined) return { alias: DEFAULT_ALIAS };
  if (isVersionNumber(ref)) return { version: Number(ref) };
  if (ALL_DIGITS.test(ref)) return { version: parseVersionNumber(ref) };
  if (!LIMITS.namePattern.test(ref)) {
    throw new BadRequestError(
      `invalid version or alias '${quoted(ref)}': use a version number or an alias name`,
      'INVALID_ALIAS',
    );
  }
  return { alias: ref };
}

/** One entry of a preload list: a model and, optionally, its version or alias. */
export interface PreloadEntry {
  readonly name: string;
  readonly ref?: string;
}

/**
 * Parses a preload list (`MAAS_PRELOAD`, the stack's `preload`): comma-separated `name` or `name@ref` entries,
 * surrounding whitespace and empty entries ignored; each name a model name, each ref a version number or an
 * alias name. A bad entry is 400 with the code of what is wrong in it, its message naming the entry.
 */
export function parsePreload(raw: string | undefined): PreloadEntry[] {
  if (!raw) return [];
  const entries = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return entries.map((entry) => {
    const prefix = entries.length > 1 || entry !== raw ? `entry '${quoted(entry)}': ` : '';
    const [name = '', ref, ...rest] = entry.split('@');
    if (rest.length > 0) throw new BadRequestError(`${prefix}more than one '@'`, 'INVALID_PRELOAD');
    try {
      validateModelName(name);
      if (ref !== undefined) parseVersionRef(ref);
    } catch (e) {
      const code = e instanceof BadRequestError ? e.code : 'INVALID_PRELOAD';
      throw new BadRequestError(`${prefix}${(e as Error).message}`, code, { cause: e });
    }
    return ref !== undefined ? { name, ref } : { name };
  });
}

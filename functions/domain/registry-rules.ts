/**
 * Registry rules the planners (./registry-plans) and the repositories need at run time — opaque pagination
 * tokens and "only READY versions can be aliased" — kept free of the request schemas (zod) so that bundles
 * which only read the registry (the predict function) stay small and start fast. Re-exported by ./registry.
 */
import { BadRequestError, ConflictError } from './errors';
import { hasLoneSurrogate } from './names';
import type { ModelVersion } from './types';

/** A storage key the pagination token carries (DynamoDB's LastEvaluatedKey, strings and numbers only). */
export type PageKey = Record<string, string | number>;

/** Encodes a pagination key as an opaque base64url token. */
export function encodePageToken(key: PageKey): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/**
 * Decodes a token made by {@link encodePageToken}. `accept` checks that the key belongs to the listing
 * it is used with (a token of another model or another list is rejected). Garbage is a 400.
 */
export function decodePageToken(token: string, accept: (key: PageKey) => boolean): PageKey {
  const bad = () => new BadRequestError('invalid nextToken', 'INVALID_TOKEN');
  if (!/^[A-Za-z0-9_-]{1,2048}$/.test(token)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw bad();
  const entries = Object.entries(parsed as Record<string, unknown>);
  if (entries.length === 0 || entries.some(([, v]) => typeof v !== 'string' && typeof v !== 'number')) {
    throw bad();
  }
  const key = parsed as PageKey;
  if (!accept(key)) throw bad();
  return key;
}

/** DynamoDB's limit on a sort key's value (a partition key's is 2048): every key maas writes is far shorter. */
const MAX_KEY_BYTES = 1024;

/**
 * True when `key` has exactly the attributes `names`, all strings DynamoDB could hold as keys (well-formed text of
 * 1 to 1024 UTF-8 bytes: a key attribute is never empty): a page key of a table query is `{pk, sk}`, of an index
 * query also the index's keys. Anything else would be refused by DynamoDB itself (a 500, not a 400).
 */
export function isPageKeyOf(key: PageKey, names: readonly string[]): boolean {
  const attrs = Object.keys(key);
  return (
    attrs.length === names.length &&
    names.every((n) => {
      const v = key[n];
      return (
        typeof v === 'string' &&
        v.length > 0 &&
        Buffer.byteLength(v, 'utf8') <= MAX_KEY_BYTES &&
        !hasLoneSurrogate(v)
      );
    })
  );
}

/** An alias may only point at a READY version (409 otherwise). */
export function assertAliasable(v: Pick<ModelVersion, 'name' | 'version' | 'status'>): void {
  if (v.status !== 'READY') {
    throw new ConflictError(
      `version ${v.version} of model '${v.name}' is ${v.status}; only READY versions can be aliased`,
      'VERSION_NOT_READY',
    );
  }
}

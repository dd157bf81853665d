import { expect } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';

/**
 * The bytes behind an async result's `download` link: checks that the link expires within
 * `LIMITS.resultUrlTtlSeconds` (and not a minute sooner), that a plain GET of it answers 200 with `contentType`,
 * and returns the body.
 */
export async function fetchResultLink(
  download: { readonly url: string; readonly expiresAt: string },
  contentType: string,
): Promise<Buffer> {
  const ttl = Date.parse(download.expiresAt) - Date.now();
  expect(ttl).toBeGreaterThan((LIMITS.resultUrlTtlSeconds - 60) * 1000);
  expect(ttl).toBeLessThanOrEqual(LIMITS.resultUrlTtlSeconds * 1000);
  const got = await fetch(download.url);
  expect(got.status).toBe(200);
  expect(got.headers.get('content-type')).toBe(contentType);
  return Buffer.from(await got.arrayBuffer());
}

import { describe, expect, it } from 'vitest';
import { keyBucket, parseRouting, ROUTING_BUCKETS, routeOf } from '../../functions/domain/routing';
import { codeOf } from '../helpers/errors';

const keys = (n: number) => Array.from({ length: n }, (_, i) => `user-${i}`);

describe('routeOf', () => {
  it.each([1, 10, 33.3, 50, 90])(
    'sends ~%d %% of 10 000 keys to the canary, within a binomial bound',
    (weight) => {
      const n = 10_000;
      const p = weight / 100;
      const canary = keys(n).filter((k) => routeOf(weight, k, 'iris') === 'canary').length;
      expect(Math.abs(canary - n * p)).toBeLessThan(4.5 * Math.sqrt(n * p * (1 - p)));
    },
  );

  it('is sticky: a key keeps its route, and raising the weight only moves keys from stable to canary', () => {
    const weights = [0, 5, 10, 25, 50, 75, 100];
    for (const k of keys(3000)) {
      const routes = weights.map((w) => routeOf(w, k, 'iris'));
      const firstCanary = routes.indexOf('canary');
      // Once canary, canary at every higher weight.
      expect(routes.slice(firstCanary).every((r) => r === 'canary')).toBe(true);
    }
  });

  it('hashes key and model together: one key lands differently across models', () => {
    const differ = keys(2000).filter((k) => keyBucket(k, 'a') !== keyBucket(k, 'b')).length;
    expect(differ).toBeGreaterThan(1900);
    for (const k of keys(100)) expect(keyBucket(k, 'a')).toBeLessThan(ROUTING_BUCKETS);
  });

  it('routes at random without a key, and never at weight 0 or always at 100', () => {
    const draws = [0, 0.0999, 0.1, 0.5, 0.9999];
    expect(draws.map((x) => routeOf(10, undefined, 'm', () => x))).toEqual([
      'canary',
      'canary',
      'stable',
      'stable',
      'stable',
    ]);
    expect(routeOf(0, undefined, 'm', () => 0)).toBe('stable');
    expect(routeOf(100, 'k', 'm')).toBe('canary');
  });
});

describe('parseRouting', () => {
  it('accepts a canary and a key parameter', () => {
    expect(parseRouting({ canary: { version: 3, weight: 12.5 }, keyParameter: 'user_id' })).toEqual({
      canary: { version: 3, weight: 12.5 },
      keyParameter: 'user_id',
    });
    expect(parseRouting({})).toEqual({});
  });

  it.each([
    null,
    [],
    { canary: null },
    { canary: { version: 0, weight: 1 } },
    { canary: { version: 2, weight: 101 } },
    { canary: { version: 2, weight: 0.05 } },
    { canary: { version: 2, weight: '5' } },
    { canary: { version: 2 } },
    { canary: { version: 2, weight: 5, extra: 1 } },
    { keyParameter: '' },
    { keyParameter: 'a b' },
    { other: 1 },
  ])('refuses %j with 400 INVALID_ROUTING', (value) => {
    expect(codeOf(() => parseRouting(value))).toBe('INVALID_ROUTING');
  });
});

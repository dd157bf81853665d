import { describe, expect, it } from 'vitest';
import { toRouting } from '../../functions/adapters/dynamodb-items';
import {
  isShadowed,
  keyBucket,
  parseRouting,
  ROUTING_BUCKETS,
  routeOf,
  shadowBucket,
} from '../../functions/domain/routing';
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

  it('accepts a shadow, alone or with a canary (the same version too)', () => {
    expect(parseRouting({ shadow: { version: 4, percent: 20 } })).toEqual({
      shadow: { version: 4, percent: 20 },
    });
    expect(
      parseRouting({
        canary: { version: 4, weight: 10 },
        shadow: { version: 4, percent: 0.1 },
        keyParameter: 'u',
      }),
    ).toEqual({
      canary: { version: 4, weight: 10 },
      shadow: { version: 4, percent: 0.1 },
      keyParameter: 'u',
    });
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
    { shadow: null },
    { shadow: 3 },
    { shadow: { version: 0, percent: 1 } },
    { shadow: { version: 1.5, percent: 1 } },
    { shadow: { version: 2, percent: 100.1 } },
    { shadow: { version: 2, percent: 0.05 } },
    { shadow: { version: 2 } },
    { shadow: { version: 2, percent: 5, weight: 5 } },
  ])('refuses %j with 400 INVALID_ROUTING', (value) => {
    expect(codeOf(() => parseRouting(value))).toBe('INVALID_ROUTING');
  });

  it('accepts every step of 0.1 as a weight and a percent', () => {
    for (let n = 0; n <= 1000; n++) {
      const share = Number((n / 10).toFixed(1));
      expect(
        parseRouting({ canary: { version: 2, weight: share }, shadow: { version: 3, percent: share } }),
      ).toEqual({ canary: { version: 2, weight: share }, shadow: { version: 3, percent: share } });
    }
  });

  // Only 0 and multiples of 0.1: a number near 0 is refused (1e-300 is one DynamoDB cannot even store).
  it.each([
    ['canary', 'weight', 1e-300],
    ['canary', 'weight', 1e-11],
    ['canary', 'weight', 0.1 + 0.2],
    ['canary', 'weight', 99.95],
    ['shadow', 'percent', 1e-200],
    ['shadow', 'percent', 1e-11],
  ])('refuses %s.%s %d with 400 INVALID_ROUTING, saying what is allowed', (part, share, amount) => {
    const value = { [part]: { version: 2, [share]: amount } };
    expect(codeOf(() => parseRouting(value))).toBe('INVALID_ROUTING');
    expect(() => parseRouting(value)).toThrow(
      `${part}.${share} must be a number from 0 to 100 in steps of 0.1 (0, 0.1, 0.2 … 100)`,
    );
  });
});

describe('isShadowed', () => {
  it.each([1, 10, 33.3, 80])('mirrors ~%d %% of 10 000 keys, within a binomial bound', (percent) => {
    const n = 10_000;
    const p = percent / 100;
    const mirrored = keys(n).filter((k) => isShadowed(percent, k, 'unused-id', 'iris')).length;
    expect(Math.abs(mirrored - n * p)).toBeLessThan(4.5 * Math.sqrt(n * p * (1 - p)));
  });

  it.each([5, 50])('mirrors ~%d %% of 10 000 requests without a key, by inference id', (percent) => {
    const n = 10_000;
    const p = percent / 100;
    const ids = Array.from({ length: n }, (_, i) => `req-${i}`);
    const mirrored = ids.filter((id) => isShadowed(percent, undefined, id, 'iris')).length;
    expect(Math.abs(mirrored - n * p)).toBeLessThan(4.5 * Math.sqrt(n * p * (1 - p)));
  });

  it('is sticky by key (whatever the inference id), independent of the canary bucket, never at 0, always at 100', () => {
    for (const k of keys(500)) {
      const first = isShadowed(20, k, 'a', 'iris');
      expect(isShadowed(20, k, 'b', 'iris')).toBe(first);
      expect(isShadowed(0, k, 'a', 'iris')).toBe(false);
      expect(isShadowed(100, k, 'a', 'iris')).toBe(true);
    }
    // Keys routed to the canary at 50 % are mirrored at about 50 % too (not all or none of them).
    const canaryKeys = keys(4000).filter((k) => routeOf(50, k, 'iris') === 'canary');
    const mirrored = canaryKeys.filter((k) => isShadowed(50, k, 'x', 'iris')).length;
    expect(mirrored / canaryKeys.length).toBeGreaterThan(0.4);
    expect(mirrored / canaryKeys.length).toBeLessThan(0.6);
  });
});

describe('shadowBucket', () => {
  it("is keyBucket('shadow\\0' + key, model), without building the string", () => {
    for (const k of [...keys(200), '', 'é-ü-日本', '\u0000']) {
      expect(shadowBucket(k, 'iris')).toBe(keyBucket(`shadow\u0000${k}`, 'iris'));
    }
  });
});

describe('stored splits (dynamodb-items toRouting)', () => {
  it('reads a stored split with its shadow, and nothing from junk', () => {
    expect(toRouting({ shadow: { version: 2, percent: 5 }, keyParameter: 'k' })).toEqual({
      shadow: { version: 2, percent: 5 },
      keyParameter: 'k',
    });
    expect(toRouting({ canary: { version: 2 } })).toEqual({ canary: { version: 2, weight: 0 } });
    expect(toRouting({})).toBeUndefined();
    expect(toRouting(null)).toBeUndefined();
    expect(toRouting({ shadow: { percent: 5 } })).toBeUndefined();
  });
});

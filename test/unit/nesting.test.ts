import { describe, expect, it } from 'vitest';
import { nestsDeeperThan } from '../../functions/domain/nesting';

const nested = (n: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = i % 2 === 0 ? [v] : { k: v };
  return v;
};

describe('nestsDeeperThan', () => {
  it('counts arrays and plain objects as levels and scalars as none', () => {
    expect(nestsDeeperThan(1, 0)).toBe(false);
    expect(nestsDeeperThan([], 0)).toBe(true);
    expect(nestsDeeperThan({}, 1)).toBe(false);
    expect(nestsDeeperThan({ a: 1, b: 'x', c: null }, 1)).toBe(false);
    expect(nestsDeeperThan({ a: 1, b: 'x', c: null }, 0)).toBe(true);
    expect(nestsDeeperThan({ a: 1, b: [] }, 1)).toBe(true);
    for (const n of [1, 2, 31, 32, 33]) {
      expect(nestsDeeperThan(nested(n), 32), `${n} levels`).toBe(n > 32);
    }
  });

  it('finds the deep branch among shallow ones', () => {
    expect(nestsDeeperThan({ a: 1, b: [1, 2, { c: nested(5) }], d: 'x' }, 7)).toBe(true);
    expect(nestsDeeperThan({ a: 1, b: [1, 2, { c: nested(5) }], d: 'x' }, 8)).toBe(false);
  });

  it('measures a hundred thousand levels without overflowing the stack', () => {
    expect(nestsDeeperThan(nested(100_000), 32)).toBe(true);
    expect(nestsDeeperThan(JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`), 100_000)).toBe(false);
  });

  it('takes typed arrays as leaves', () => {
    expect(nestsDeeperThan({ data: new Float64Array(1_000_000) }, 1)).toBe(false);
  });
});

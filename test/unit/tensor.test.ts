import { describe, expect, it } from 'vitest';
import { fromHalfBits, toHalfBits } from '../../functions/domain/tensor';

describe('FP16 bits', () => {
  it('converts exactly representable values both ways', () => {
    for (const v of [0, 1, -2, 0.5, 65504, 2 ** -24, 2 ** -14, 1.0009765625]) {
      expect(fromHalfBits(toHalfBits(v))).toBe(v);
    }
    expect(toHalfBits(1)).toBe(0x3c00);
    expect(toHalfBits(-0)).toBe(0x8000);
  });
  it('rounds to nearest even and overflows to infinity', () => {
    expect(fromHalfBits(toHalfBits(1 + 2 ** -11))).toBe(1);
    expect(fromHalfBits(toHalfBits(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
    expect(fromHalfBits(toHalfBits(1e6))).toBe(Number.POSITIVE_INFINITY);
    expect(Number.isNaN(fromHalfBits(toHalfBits(Number.NaN)))).toBe(true);
  });
});

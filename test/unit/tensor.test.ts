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

  it('rounds once, from the double: no double rounding through FP32', () => {
    // Just above the tie between 1 and 1 + 2^-10: FP32 would first round it onto the tie, then to even (1).
    expect(fromHalfBits(toHalfBits(1 + 2 ** -11 + 2 ** -40))).toBe(1 + 2 ** -10);
    expect(fromHalfBits(toHalfBits(-(1 + 2 ** -11 + 2 ** -40)))).toBe(-(1 + 2 ** -10));
    // Subnormals: units of 2^-24, half a unit rounds to even, just above it rounds up.
    expect(toHalfBits(2 ** -25)).toBe(0);
    expect(toHalfBits(2 ** -25 + 2 ** -60)).toBe(1);
    expect(toHalfBits(3 * 2 ** -25)).toBe(2);
    expect(toHalfBits(2 ** -14 - 2 ** -26)).toBe(0x400);
  });

  it('the largest finite half is 65504; everything below 65520 rounds to a finite half, 65520 and above overflow', () => {
    expect(fromHalfBits(0x7bff)).toBe(65504);
    for (const v of [65504, 65505, 65519, 65519.99, 65520 - 2 ** -37]) {
      expect(fromHalfBits(toHalfBits(v)), String(v)).toBe(65504);
      expect(fromHalfBits(toHalfBits(-v)), String(-v)).toBe(-65504);
    }
    for (const v of [65520, 65520.0001, 65536, 1e300, Number.POSITIVE_INFINITY]) {
      expect(fromHalfBits(toHalfBits(v)), String(v)).toBe(Number.POSITIVE_INFINITY);
      expect(fromHalfBits(toHalfBits(-v)), String(-v)).toBe(Number.NEGATIVE_INFINITY);
    }
  });
});

/** storedSizeBytes (functions/contract/table.ts): the size DynamoDB counts for a stored value. */
import { describe, expect, it } from 'vitest';
import { storedSizeBytes } from '../../functions/contract/table';

describe('storedSizeBytes', () => {
  it('counts strings in UTF-8 bytes, booleans and null as 1', () => {
    expect(storedSizeBytes('abc')).toBe(3);
    expect(storedSizeBytes('é€😀')).toBe(2 + 3 + 4);
    expect(storedSizeBytes(true)).toBe(1);
    expect(storedSizeBytes(null)).toBe(1);
    expect(storedSizeBytes(undefined)).toBe(0);
  });

  it('counts a number as 1 byte plus 1 per two significant digits, zeros trimmed', () => {
    expect(storedSizeBytes(0)).toBe(2);
    expect(storedSizeBytes(7)).toBe(2);
    expect(storedSizeBytes(12)).toBe(2);
    expect(storedSizeBytes(123)).toBe(3);
    expect(storedSizeBytes(1_000_000)).toBe(2);
    expect(storedSizeBytes(-0.000125)).toBe(3);
    expect(storedSizeBytes(0.1 + 0.2)).toBe(10);
  });

  it('counts lists and maps as 3 bytes plus 1 byte, the key and the value of each element', () => {
    expect(storedSizeBytes([])).toBe(3);
    expect(storedSizeBytes({})).toBe(3);
    expect(storedSizeBytes(['ab', 'c'])).toBe(3 + (1 + 2) + (1 + 1));
    expect(storedSizeBytes({ ab: 'xyz', n: 5, gone: undefined })).toBe(3 + (1 + 2 + 3) + (1 + 1 + 2));
    expect(storedSizeBytes({ l: [{ k: true }] })).toBe(3 + 1 + 1 + (3 + 1 + (3 + 1 + 1 + 1)));
  });

  it('counts a list of short strings far below its JSON', () => {
    const labels = Array.from({ length: 1000 }, (_, i) => i.toString(36).padStart(4, '0'));
    expect(storedSizeBytes(labels)).toBe(3 + 1000 * 5);
    expect(Buffer.byteLength(JSON.stringify(labels))).toBe(2 + 1000 * 7 - 1);
  });
});

import { describe, expect, it } from 'vitest';
import { dataToJsonText, outputToJsonText } from '../../functions/domain/oip-encode';
import type { Tensor } from '../../functions/domain/tensor';

describe('output encoding', () => {
  it('writes 64-bit integers as numbers up to 2^53-1 and as decimal strings beyond', () => {
    const t: Tensor = {
      datatype: 'INT64',
      shape: [3],
      data: BigInt64Array.from([9007199254740991n, 9007199254740992n, -9223372036854775808n]),
    };
    expect(dataToJsonText(t)).toBe('[9007199254740991,"9007199254740992","-9223372036854775808"]');
  });
  it('writes non-finite floats as null', () => {
    const t: Tensor = { datatype: 'FP32', shape: [3], data: Float32Array.from([1, Number.NaN, -Infinity]) };
    expect(dataToJsonText(t)).toBe('[1,null,null]');
  });
  it('builds the same JSON as JSON.stringify of the object form', () => {
    const t: Tensor = { datatype: 'FP32', shape: [1, 3], data: Float32Array.from([0.1, 2, -3.5]) };
    const text = outputToJsonText('y', t);
    expect(JSON.parse(text)).toEqual({
      name: 'y',
      datatype: 'FP32',
      shape: [1, 3],
      data: Array.from(t.data as Float32Array),
    });
  });
});

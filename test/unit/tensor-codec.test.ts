import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../functions/domain/errors';
import {
  dataToJsonText,
  dataToJsonValues,
  decodeTensor,
  flattenData,
  fromHalfBits,
  outputToJsonText,
  parseInferenceBody,
  readNumericData,
  type Tensor,
  toHalfBits,
} from '../../functions/domain/tensor-codec';
import type { Datatype } from '../../functions/domain/types';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BadRequestError);
    return (e as BadRequestError).code;
  }
  return undefined;
};

describe('decodeTensor', () => {
  const cases: [Datatype, unknown[], unknown[]][] = [
    ['BOOL', [true, false], [true, false]],
    ['UINT8', [0, 255], [0, 255]],
    ['UINT16', [0, 65535], [0, 65535]],
    ['UINT32', [0, 4294967295], [0, 4294967295]],
    ['UINT64', [0, '18446744073709551615'], [0, '18446744073709551615']],
    ['INT8', [-128, 127], [-128, 127]],
    ['INT16', [-32768, 32767], [-32768, 32767]],
    ['INT32', [-2147483648, 2147483647], [-2147483648, 2147483647]],
    ['INT64', ['-9223372036854775808', 9007199254740991], ['-9223372036854775808', 9007199254740991]],
    ['FP16', [1.5, -65504], [1.5, -65504]],
    ['FP32', [0.5, -2], [0.5, -2]],
    ['FP64', [0.1, 1e300], [0.1, 1e300]],
    ['BYTES', ['a', 'héllo'], ['a', 'héllo']],
  ];
  it.each(cases)('round-trips %s', (datatype, input, expected) => {
    const t = decodeTensor('x', datatype, [2], input);
    expect(dataToJsonValues(t)).toEqual(expected);
    expect(JSON.parse(dataToJsonText(t))).toEqual(expected);
  });

  it('accepts nested data in row-major order', () => {
    const t = decodeTensor(
      'x',
      'INT32',
      [2, 3],
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
    );
    expect(Array.from(t.data as Int32Array)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('rejects nested data that does not follow the shape', () => {
    expect(
      codeOf(() =>
        flattenData(
          'x',
          [2, 3],
          [
            [1, 2],
            [3, 4],
            [5, 6],
          ],
        ),
      ),
    ).toBe('DATA_LENGTH_MISMATCH');
    expect(
      codeOf(() =>
        flattenData(
          'x',
          [2, 2],
          [
            [1, [2]],
            [3, 4],
          ],
        ),
      ),
    ).toBe('DATA_LENGTH_MISMATCH');
  });

  it('rejects a data length that is not the product of the shape', () => {
    expect(codeOf(() => decodeTensor('x', 'FP32', [2, 2], [1, 2, 3]))).toBe('DATA_LENGTH_MISMATCH');
  });

  it.each([
    ['INT8', 128, 'OUT_OF_RANGE'],
    ['UINT8', -1, 'OUT_OF_RANGE'],
    ['INT32', 1.5, 'INVALID_DATA'],
    ['INT64', '1e3', 'INVALID_DATA'],
    ['INT64', '9223372036854775808', 'OUT_OF_RANGE'],
    ['INT64', 2 ** 60, 'OUT_OF_RANGE'],
    ['UINT64', '-1', 'INVALID_DATA'],
    ['FP32', 'NaN', 'INVALID_DATA'],
    ['FP32', null, 'INVALID_DATA'],
    ['FP32', 1e39, 'NON_FINITE'],
    ['FP16', 70000, 'NON_FINITE'],
    ['FP64', Number.POSITIVE_INFINITY, 'NON_FINITE'],
    ['BOOL', 1, 'INVALID_DATA'],
    ['BYTES', 3, 'INVALID_DATA'],
  ] as [Datatype, unknown, string][])('rejects %s value %s with %s', (datatype, value, code) => {
    expect(codeOf(() => decodeTensor('x', datatype, [1], [value]))).toBe(code);
  });

  it('names the input and the element in its message', () => {
    expect(() => decodeTensor('pixels', 'UINT8', [2], [1, 300])).toThrow(/input 'pixels': data\[1\] is 300/);
  });
});

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

describe('parseInferenceBody', () => {
  it('keeps INT64 literals beyond 2^53 exact', () => {
    const body = parseInferenceBody(
      '{"inputs":[{"name":"x","datatype":"INT64","shape":[3],"data":[9223372036854775807,-9007199254740993,1]}],"id":"12345678901234567890"}',
    ) as { inputs: { data: unknown[] }[]; id: string };
    expect(body.inputs[0]!.data).toEqual(['9223372036854775807', '-9007199254740993', 1]);
    expect(body.id).toBe('12345678901234567890');
    const t = decodeTensor('x', 'INT64', [3], body.inputs[0]!.data);
    expect(Array.from(t.data as BigInt64Array)).toEqual([9223372036854775807n, -9007199254740993n, 1n]);
  });
  it('re-reads only the 64-bit integer inputs: other inputs and parameters keep their numbers', () => {
    const body = parseInferenceBody(
      '{"inputs":[{"name":"f","datatype":"FP64","shape":[1],"data":[12345678901234567]},' +
        '{"name":"i","datatype":"INT64","shape":[1],"data":[9223372036854775807]}],"parameters":{"seed":12345678901234567}}',
    ) as { inputs: { data: unknown[] }[]; parameters: { seed: unknown } };
    expect(body.inputs[0]!.data).toEqual([Number('12345678901234567')]);
    expect(body.inputs[1]!.data).toEqual(['9223372036854775807']);
    expect(body.parameters.seed).toBe(Number('12345678901234567'));
  });
  it('leaves other bodies untouched', () => {
    const text = '{"inputs":[{"name":"x","datatype":"FP64","shape":[1],"data":[0.12345678901234567]}]}';
    expect(parseInferenceBody(text)).toEqual(JSON.parse(text));
  });
  it('answers malformed JSON with MALFORMED_JSON', () => {
    expect(codeOf(() => parseInferenceBody('{"inputs": ['))).toBe('MALFORMED_JSON');
  });
});

describe('numeric data read straight from the body', () => {
  it('reads flat number arrays into Float64Array with the values JSON.parse gives', () => {
    const values = Array.from({ length: 4000 }, (_, i) =>
      i % 3 === 0
        ? Math.fround(Math.sin(i) * 100)
        : i % 3 === 1
          ? Math.cos(i) * 10 ** ((i % 30) - 20)
          : -(i % 997) / 7,
    );
    const text = JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP64', shape: [values.length], data: values }],
    });
    const body = parseInferenceBody(text) as { inputs: { data: unknown }[] };
    expect(body.inputs[0]!.data).toBeInstanceOf(Float64Array);
    expect(Array.from(body.inputs[0]!.data as Float64Array)).toEqual(JSON.parse(text).inputs[0].data);
  });

  it.each([
    ['[1, 2 ,3 ]', [1, 2, 3]],
    ['[ ]', []],
    ['[1E+2,-0.5e-1,0]', [100, -0.05, 0]],
  ])('accepts %s', (text, expected) => {
    expect(Array.from(readNumericData(text, 0)!.values)).toEqual(expected);
  });

  it.each([
    '[01]',
    '[1.]',
    '[-]',
    '[1e]',
    '[.5]',
    '[1,]',
    '[1 2]',
    '[[1]]',
    '[null]',
    '[true]',
    '["1"]',
    '[12345678901234567890]',
  ])('leaves %s to JSON.parse', (text) => {
    expect(readNumericData(text, 0)).toBeUndefined();
  });

  it('keeps everything else as JSON.parse does, including look-alike strings and nested data', () => {
    const filler = 'x'.repeat(17_000);
    const text = JSON.stringify({
      id: `"data":[1,2] ${filler}`,
      parameters: { data: [1, 2, 3] },
      inputs: [
        {
          name: 'a',
          datatype: 'FP32',
          shape: [2, 2],
          data: [
            [1, 2],
            [3, 4],
          ],
        },
        { name: 'b', datatype: 'BYTES', shape: [1], data: ['data'] },
      ],
    });
    expect(parseInferenceBody(text)).toEqual(JSON.parse(text));
  });

  it('decodes Float64Array data like arrays, with the same checks', () => {
    const t = decodeTensor('x', 'INT8', [3], Float64Array.from([1, -2, 3]));
    expect(Array.from(t.data as Int8Array)).toEqual([1, -2, 3]);
    expect(codeOf(() => decodeTensor('x', 'INT8', [1], Float64Array.from([300])))).toBe('OUT_OF_RANGE');
    expect(codeOf(() => decodeTensor('x', 'BOOL', [1], Float64Array.from([1])))).toBe('INVALID_DATA');
  });
});

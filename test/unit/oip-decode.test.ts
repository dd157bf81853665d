import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../functions/domain/errors';
import { decodeTensor, flattenData } from '../../functions/domain/oip-decode';
import { dataToJsonText, dataToJsonValues } from '../../functions/domain/oip-encode';
import type { Datatype } from '../../functions/domain/types';
import { codeOf as anyCodeOf } from '../helpers/errors';

const codeOf = (fn: () => unknown) => anyCodeOf(fn, BadRequestError);

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

  it.each([
    ['a rank-1 shape', [2], [[1], [1]]],
    ['a rank-0 shape', [], [[1]]],
    ['one level too many', [1, 4], [[[1, 2, 3, 4]]]],
    ['arrays among the last values', [1, 2], [[1, [2]]]],
  ])('names nested data deeper than the shape as such (%s)', (_what, shape, data) => {
    expect(() => flattenData('x', shape, data)).toThrow(
      expect.objectContaining({
        code: 'DATA_LENGTH_MISMATCH',
        message: `input 'x': nested data is deeper than shape [${shape.join(',')}]`,
      }),
    );
  });

  it('names the level whose length differs from the shape', () => {
    expect(() =>
      flattenData(
        'x',
        [2, 3],
        [
          [1, 2, 3],
          [4, 5],
        ],
      ),
    ).toThrow("input 'x': nested data[1] has 2 elements; shape [2,3] expects 3");
    expect(() => flattenData('x', [3, 1], [[1], [2]])).toThrow(
      "input 'x': nested data has 2 elements; shape [3,1] expects 3",
    );
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

  it('refuses a BYTES element holding a lone surrogate (it has no UTF-8 form), naming the element', () => {
    for (const v of ['\ud800', 'a\udfffb', 'x\ud83d']) {
      expect(
        codeOf(() => decodeTensor('s', 'BYTES', [2], ['ok', v])),
        JSON.stringify(v),
      ).toBe('INVALID_DATA');
    }
    expect(() => decodeTensor('s', 'BYTES', [1], ['\ud800'])).toThrow(
      /input 's': data\[0\] holds a lone surrogate/,
    );
    // A pair is one character, carried as it is.
    expect(decodeTensor('s', 'BYTES', [1], ['\ud83d\ude42']).data).toEqual(['\u{1f642}']);
  });

  it('refuses a BYTES element containing U+0000 (the model would see it cut at the NUL), naming the element', () => {
    for (const v of ['a\u0000b', '\u0000', 'end\u0000']) {
      expect(
        codeOf(() => decodeTensor('s', 'BYTES', [2], ['ok', v])),
        JSON.stringify(v),
      ).toBe('NUL_IN_BYTES');
    }
    expect(() => decodeTensor('s', 'BYTES', [1], ['a\u0000b'])).toThrow(
      /input 's': data\[0\] contains U\+0000 \(NUL\).*cannot be passed intact/,
    );
    // Other control characters and escapes are carried as they are.
    expect(decodeTensor('s', 'BYTES', [2], ['a\u0001b', 'tab\there']).data).toEqual([
      'a\u0001b',
      'tab\there',
    ]);
  });

  it('FP16 accepts exactly the numbers that round to a finite half: |v| < 65520, and 65504 up to it become 65504', () => {
    const accepted = [65504, 65505, 65519, 65519.999, 65520 - 2 ** -37];
    const t = decodeTensor('h', 'FP16', [accepted.length * 2], [...accepted, ...accepted.map((v) => -v)]);
    expect(dataToJsonValues(t)).toEqual([...accepted.map(() => 65504), ...accepted.map(() => -65504)]);
    for (const v of [65520, -65520, 65520.5, 70000, 1e300]) {
      expect(
        codeOf(() => decodeTensor('h', 'FP16', [1], [v])),
        String(v),
      ).toBe('NON_FINITE');
      expect(
        codeOf(() => decodeTensor('h', 'FP16', [1], Float64Array.of(v))),
        String(v),
      ).toBe('NON_FINITE');
    }
    expect(() => decodeTensor('h', 'FP16', [1], [65520])).toThrow(/\|v\| < 65520/);
  });

  it('FP32 accepts exactly the numbers that round to a finite float, in short and long bodies alike', () => {
    // numpy prints the FP32 maximum as 3.4028235e38: above FLT_MAX as a double, FLT_MAX once rounded.
    const bound = 2 ** 128 - 2 ** 103;
    const accepted = [3.4028235e38, 3.4028234663852886e38, bound - 2 ** 75];
    for (const data of [
      [...accepted, ...accepted.map((v) => -v)],
      Float64Array.from([...accepted, ...accepted.map((v) => -v)]),
    ]) {
      const t = decodeTensor('f', 'FP32', [data.length], data);
      expect(Array.from(t.data as Float32Array)).toEqual([
        ...accepted.map(() => 3.4028234663852886e38),
        ...accepted.map(() => -3.4028234663852886e38),
      ]);
    }
    for (const v of [bound, -bound, 3.4028236e38, 1e39]) {
      expect(
        codeOf(() => decodeTensor('f', 'FP32', [1], [v])),
        String(v),
      ).toBe('NON_FINITE');
      expect(
        codeOf(() => decodeTensor('f', 'FP32', [1], Float64Array.of(v))),
        String(v),
      ).toBe('NON_FINITE');
    }
  });

  it('names the input and the element in its message', () => {
    expect(() => decodeTensor('pixels', 'UINT8', [2], [1, 300])).toThrow(/input 'pixels': data\[1\] is 300/);
  });
});

describe('numeric data read straight from the body', () => {
  it('decodes Float64Array data like arrays, with the same checks', () => {
    const t = decodeTensor('x', 'INT8', [3], Float64Array.from([1, -2, 3]));
    expect(Array.from(t.data as Int8Array)).toEqual([1, -2, 3]);
    expect(codeOf(() => decodeTensor('x', 'INT8', [1], Float64Array.from([300])))).toBe('OUT_OF_RANGE');
    expect(codeOf(() => decodeTensor('x', 'BOOL', [1], Float64Array.from([1])))).toBe('INVALID_DATA');
  });
});

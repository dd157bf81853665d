import { describe, expect, it } from 'vitest';
import {
  asksBinaryOutput,
  binaryAnswerAsJson,
  binaryRequestAsJson,
  encodeBinaryResponse,
  parseBinaryRequest,
  responseOutputs,
  wantsBinaryOutput,
} from '../../functions/domain/binary-tensors';
import { BadRequestError } from '../../functions/domain/errors';
import { compileSignature, validateInferenceRequest } from '../../functions/domain/inference-validation';
import { decodeTensor, type OipRequest } from '../../functions/domain/oip-decode';
import type { Tensor } from '../../functions/domain/tensor';
import type { Datatype } from '../../functions/domain/types';
import { binaryBody as body } from '../helpers/binary-body';
import { codeOf as anyCodeOf } from '../helpers/errors';

const codeOf = (fn: () => unknown) => anyCodeOf(fn, BadRequestError);
const utf8 = new TextEncoder();

/**
 * Element bytes written one by one with DataView setters (little-endian), independently of the codec's use of
 * typed-array memory.
 */
function elementBytes(
  datatype: Datatype,
  values: readonly (number | bigint | boolean | string)[],
): Uint8Array {
  if (datatype === 'BYTES') {
    const parts: number[] = [];
    for (const v of values) {
      const b = utf8.encode(v as string);
      const n = b.length;
      parts.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff, ...b);
    }
    return Uint8Array.from(parts);
  }
  const size = { BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, UINT32: 4, INT32: 4, FP32: 4 }[
    datatype as string
  ] as number | undefined;
  const out = new Uint8Array(values.length * (size ?? 8));
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => {
    const at = i * (size ?? 8);
    switch (datatype) {
      case 'BOOL':
        dv.setUint8(at, v ? 1 : 0);
        break;
      case 'UINT8':
        dv.setUint8(at, v as number);
        break;
      case 'INT8':
        dv.setInt8(at, v as number);
        break;
      case 'UINT16':
      case 'FP16':
        dv.setUint16(at, v as number, true);
        break;
      case 'INT16':
        dv.setInt16(at, v as number, true);
        break;
      case 'UINT32':
        dv.setUint32(at, v as number, true);
        break;
      case 'INT32':
        dv.setInt32(at, v as number, true);
        break;
      case 'FP32':
        dv.setFloat32(at, v as number, true);
        break;
      case 'UINT64':
        dv.setBigUint64(at, v as bigint, true);
        break;
      case 'INT64':
        dv.setBigInt64(at, v as bigint, true);
        break;
      case 'FP64':
        dv.setFloat64(at, v as number, true);
        break;
    }
  });
  return out;
}

const binaryInput = (name: string, datatype: string, shape: number[], size: number, extra = {}) => ({
  name,
  datatype,
  shape,
  parameters: { binary_data_size: size },
  ...extra,
});

/** Splits an encoded response with the test's own reading of the layout. */
function splitResponse(b: Uint8Array, headerLength: number) {
  const header = JSON.parse(new TextDecoder().decode(b.subarray(0, headerLength))) as {
    outputs: {
      name: string;
      datatype: string;
      shape: number[];
      data?: unknown;
      parameters?: { binary_data_size: number };
    }[];
  };
  let at = headerLength;
  const raw: Record<string, Uint8Array> = {};
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    raw[o.name] = b.slice(at, at + size);
    at += size;
  }
  expect(at).toBe(b.length);
  return { header, raw };
}

// Every datatype: its elements as sent, and the decoded Tensor.data expected.
const CASES: [Datatype, (number | bigint | boolean | string)[], Tensor['data']][] = [
  ['BOOL', [true, false, true, true], Uint8Array.from([1, 0, 1, 1])],
  ['UINT8', [0, 7, 200, 255], Uint8Array.from([0, 7, 200, 255])],
  ['UINT16', [0, 1, 65535, 4660], Uint16Array.from([0, 1, 65535, 4660])],
  ['UINT32', [0, 1, 4294967295, 305419896], Uint32Array.from([0, 1, 4294967295, 305419896])],
  [
    'UINT64',
    [0n, 1n, 2n ** 64n - 1n, 2n ** 53n + 1n],
    BigUint64Array.from([0n, 1n, 2n ** 64n - 1n, 2n ** 53n + 1n]),
  ],
  ['INT8', [-128, -1, 0, 127], Int8Array.from([-128, -1, 0, 127])],
  ['INT16', [-32768, -2, 3, 32767], Int16Array.from([-32768, -2, 3, 32767])],
  ['INT32', [-2147483648, -5, 6, 2147483647], Int32Array.from([-2147483648, -5, 6, 2147483647])],
  [
    'INT64',
    [-(2n ** 63n), -1n, 2n ** 63n - 1n, 9007199254740993n],
    BigInt64Array.from([-(2n ** 63n), -1n, 2n ** 63n - 1n, 9007199254740993n]),
  ],
  // FP16 as half bits: 1.0, -2.0, 65504, the smallest subnormal.
  ['FP16', [0x3c00, 0xc000, 0x7bff, 0x0001], Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001])],
  [
    'FP32',
    [1.5, -0.25, 3.4028234663852886e38, 1e-45],
    Float32Array.from([1.5, -0.25, 3.4028234663852886e38, 1e-45]),
  ],
  [
    'FP64',
    [Math.PI, -0, Number.MAX_VALUE, 5e-324],
    Float64Array.from([Math.PI, -0, Number.MAX_VALUE, 5e-324]),
  ],
  ['BYTES', ['', 'héllo', '日本語', '🙂x'], ['', 'héllo', '日本語', '🙂x']],
];

describe('parseBinaryRequest: every datatype', () => {
  for (const [datatype, values, expected] of CASES) {
    it(`${datatype}: binary input decodes to its tensor, and the same tensor encodes back to the same bytes`, () => {
      const bytes = elementBytes(datatype, values);
      const [b, hl] = body({ inputs: [binaryInput('x', datatype, [2, 2], bytes.length)] }, [bytes]);
      const { request, binaryInputs } = parseBinaryRequest(b, hl);
      const t = binaryInputs[0]!;
      expect(t.datatype).toBe(datatype);
      expect(t.shape).toEqual([2, 2]);
      expect(t.data).toEqual(expected);
      expect(t.data.constructor).toBe(expected.constructor);
      expect(request.inputs[0]!.data).toBe(t.data);

      const encoded = encodeBinaryResponse({ model_name: 'm', model_version: '1' }, [
        { name: 'y', tensor: t, binary: true },
      ]);
      expect(encoded.headerLength).toBeGreaterThan(0);
      const { header, raw } = splitResponse(encoded.body, encoded.headerLength!);
      expect(header.outputs[0]).toEqual({
        name: 'y',
        datatype,
        shape: [2, 2],
        parameters: { binary_data_size: bytes.length },
      });
      expect(raw.y).toEqual(bytes);
    });
  }
});

describe('parseBinaryRequest', () => {
  it('mixes binary and JSON inputs: JSON inputs keep their data and have no decoded tensor', () => {
    const a = elementBytes('FP32', [1, 2, 3]);
    const c = elementBytes('BYTES', ['a', '']);
    const inputs = [
      binaryInput('a', 'FP32', [3], a.length),
      { name: 'b', datatype: 'INT64', shape: [2], data: '@' },
      binaryInput('c', 'BYTES', [2], c.length),
    ];
    // The INT64 literal is written as text: JSON.stringify of a number would already have lost it.
    const header = JSON.stringify({ id: 'r1', inputs }).replace('"@"', '[1,9223372036854775807]');
    const [b, hl] = body(header, [a, c]);
    const { request, binaryInputs } = parseBinaryRequest(b, hl);
    expect(request.id).toBe('r1');
    expect(binaryInputs[0]!.data).toEqual(Float32Array.from([1, 2, 3]));
    expect(binaryInputs[1]).toBeUndefined();
    // The header goes through the JSON body parser: a 64-bit literal beyond 2^53 stays exact.
    expect(request.inputs[1]!.data).toEqual([1, '9223372036854775807']);
    expect(binaryInputs[2]!.data).toEqual(['a', '']);
    expect(request.inputs[2]!.parameters).toEqual({ binary_data_size: c.length });
  });

  it('an aligned input is a view over the body (no copy)', () => {
    const x = elementBytes('FP32', [1, 2, 3, 4]);
    // Pad the header to a multiple of 4 so the data starts aligned.
    let header = JSON.stringify({ inputs: [binaryInput('x', 'FP32', [4], 16)] });
    while (header.length % 4 !== 0) header += ' ';
    const [b, hl] = body(header, [x], 8);
    const t = parseBinaryRequest(b, hl).binaryInputs[0]!;
    const data = t.data as Float32Array;
    expect(data.buffer).toBe(b.buffer);
    expect(data.byteOffset).toBe(b.byteOffset + hl);
    b[hl] = 0;
    b[hl + 1] = 0;
    b[hl + 2] = 0x40;
    b[hl + 3] = 0x40; // 3.0
    expect(data[0]).toBe(3);
  });

  it('an unaligned input is a correct copy', () => {
    const x = elementBytes('FP64', [1.25, -7]);
    let header = JSON.stringify({ inputs: [binaryInput('x', 'FP64', [2], 16)] });
    while (header.length % 8 !== 3) header += ' ';
    const [b, hl] = body(header, [x]);
    const data = parseBinaryRequest(b, hl).binaryInputs[0]!.data as Float64Array;
    expect(data).toEqual(Float64Array.from([1.25, -7]));
    expect(data.buffer).not.toBe(b.buffer);
  });

  it('takes a Node Buffer at any offset of a shared pool', () => {
    const x = elementBytes('INT16', [-3, 4]);
    const [b, hl] = body({ inputs: [binaryInput('x', 'INT16', [2], 4)] }, [x]);
    const buf = Buffer.concat([Buffer.from([1]), Buffer.from(b)]).subarray(1);
    expect(parseBinaryRequest(buf, hl).binaryInputs[0]!.data).toEqual(Int16Array.from([-3, 4]));
  });

  it('takes zero-element tensors and BYTES elements of any length', () => {
    const long = 'é'.repeat(300);
    const s = elementBytes('BYTES', [long, '']);
    const [b, hl] = body(
      { inputs: [binaryInput('e', 'FP32', [0, 3], 0), binaryInput('s', 'BYTES', [2], s.length)] },
      [s],
    );
    const { binaryInputs } = parseBinaryRequest(b, hl);
    expect(binaryInputs[0]!.data).toEqual(new Float32Array(0));
    expect(binaryInputs[1]!.data).toEqual([long, '']);
  });

  it('a header without binary inputs and no data after it is a plain request', () => {
    const [b, hl] = body({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] });
    expect(parseBinaryRequest(b, hl).binaryInputs).toEqual([undefined]);
  });

  describe('raw form (header length 0)', () => {
    it('the whole body is the one input of the given spec', () => {
      const x = elementBytes('INT32', [1, -2, 3, -4, 5, -6]);
      const { request, binaryInputs } = parseBinaryRequest(x, 0, {
        name: 'x',
        datatype: 'INT32',
        shape: [2, 3],
      });
      expect(binaryInputs[0]!.data).toEqual(Int32Array.from([1, -2, 3, -4, 5, -6]));
      expect(request.inputs[0]).toMatchObject({ name: 'x', datatype: 'INT32', shape: [2, 3] });
    });

    it('asks every output as binary data (binary_data_output), as the extension answers the raw form', () => {
      const x = elementBytes('FP32', [1, 2]);
      const { request } = parseBinaryRequest(x, 0, { name: 'x', datatype: 'FP32', shape: [-1, 2] });
      expect(request.parameters).toEqual({ binary_data_output: true });
      expect(request.outputs).toBeUndefined();
      for (const output of ['y', 'label', 'softmax']) expect(wantsBinaryOutput(request, output)).toBe(true);
    });

    it('a request with a header does not ask binary output unless the header does', () => {
      const x = elementBytes('FP32', [1, 2]);
      const [b, hl] = body({ inputs: [binaryInput('x', 'FP32', [1, 2], 8)] }, [x]);
      const { request } = parseBinaryRequest(b, hl);
      expect(request.parameters).toBeUndefined();
      expect(wantsBinaryOutput(request, 'y')).toBe(false);
    });

    it('a dynamic dimension is taken from the data', () => {
      const x = elementBytes('FP32', [1, 2, 3, 4, 5, 6]);
      expect(
        parseBinaryRequest(x, 0, { name: 'x', datatype: 'FP32', shape: [-1, 2] }).binaryInputs[0]!.shape,
      ).toEqual([3, 2]);
      expect(
        parseBinaryRequest(x, 0, { name: 'x', datatype: 'FP32', shape: [2, -1] }).binaryInputs[0]!.shape,
      ).toEqual([2, 3]);
    });

    it('with two dynamic dimensions, a dynamic first one is the batch: 1, the other from the data', () => {
      const x = elementBytes('INT64', [1n, 2n, 3n, 4n, 5n]);
      const t = parseBinaryRequest(x, 0, { name: 'x', datatype: 'INT64', shape: [-1, -1] }).binaryInputs[0]!;
      expect(t.shape).toEqual([1, 5]);
      expect(t.data).toEqual(BigInt64Array.from([1n, 2n, 3n, 4n, 5n]));
      expect(
        parseBinaryRequest(x, 0, { name: 'x', datatype: 'INT64', shape: [-1, 5, -1] }).binaryInputs[0]!.shape,
      ).toEqual([1, 5, 1]);
    });

    it('is refused without a spec, with data not a whole number of rows, or two dynamic dimensions', () => {
      const x = elementBytes('FP32', [1, 2, 3]);
      expect(codeOf(() => parseBinaryRequest(x, 0))).toBe('INVALID_BINARY_DATA');
      expect(codeOf(() => parseBinaryRequest(x, 0, { name: 'x', datatype: 'FP32', shape: [-1, 2] }))).toBe(
        'INVALID_BINARY_DATA',
      );
      // Two dynamic dimensions besides the batch (or none of them first) cannot be told apart.
      for (const shape of [
        [2, -1, -1],
        [-1, -1, -1],
      ]) {
        expect(codeOf(() => parseBinaryRequest(x, 0, { name: 'x', datatype: 'FP32', shape }))).toBe(
          'INVALID_BINARY_DATA',
        );
      }
      expect(codeOf(() => parseBinaryRequest(x, 0, { name: 'x', datatype: 'FP32', shape: [2] }))).toBe(
        'INVALID_BINARY_DATA',
      );
    });

    it.each([
      ['FP32', [-1, 2]],
      ['BYTES', [-1]],
    ] as const)('refuses an empty raw body (%s): it holds no data for the input', (datatype, shape) => {
      expect(
        codeOf(() => parseBinaryRequest(new Uint8Array(0), 0, { name: 'x', datatype, shape: [...shape] })),
      ).toBe('INVALID_BINARY_DATA');
    });

    it.each([[[-1]], [[1]], [[-1, 1]]])(
      'takes a raw BYTES body as one element, its bytes as sent, for shape %j',
      (shape) => {
        const text = new TextEncoder().encode('h\u00e9llo \u{1f642}');
        const t = parseBinaryRequest(text, 0, { name: 's', datatype: 'BYTES', shape }).binaryInputs[0]!;
        expect(t.shape).toEqual(shape.map(() => 1));
        expect(t.data).toEqual(['h\u00e9llo \u{1f642}']);
      },
    );

    it('refuses a raw BYTES body for a shape of more than one element, or not UTF-8, or with a NUL', () => {
      const spec = (shape: number[]) => ({ name: 's', datatype: 'BYTES' as const, shape });
      const text = new TextEncoder().encode('ab');
      expect(codeOf(() => parseBinaryRequest(text, 0, spec([2])))).toBe('INVALID_BINARY_DATA');
      expect(codeOf(() => parseBinaryRequest(text, 0, spec([-1, 2])))).toBe('INVALID_BINARY_DATA');
      expect(codeOf(() => parseBinaryRequest(Uint8Array.of(0xff, 0xfe), 0, spec([-1])))).toBe(
        'INVALID_BINARY_DATA',
      );
      expect(codeOf(() => parseBinaryRequest(Uint8Array.of(0x61, 0, 0x62), 0, spec([-1])))).toBe(
        'NUL_IN_BYTES',
      );
    });

    it('refuses a raw BOOL body with a byte other than 0 or 1', () => {
      expect(
        codeOf(() =>
          parseBinaryRequest(Uint8Array.from([0, 1, 2]), 0, { name: 'b', datatype: 'BOOL', shape: [-1] }),
        ),
      ).toBe('INVALID_BINARY_DATA');
    });
  });
});

describe('parseBinaryRequest refuses malformed bodies', () => {
  const f4 = elementBytes('FP32', [1, 2, 3, 4]);
  const one = (input: Record<string, unknown>, chunks: Uint8Array[] = [f4], extra = {}) =>
    body({ inputs: [input], ...extra }, chunks);
  const x = (size: unknown, extra = {}) => ({
    name: 'x',
    datatype: 'FP32',
    shape: [4],
    parameters: { binary_data_size: size },
    ...extra,
  });
  const bytesInput = (chunk: Uint8Array, shape = [2]) =>
    body({ inputs: [binaryInput('s', 'BYTES', shape, chunk.length)] }, [chunk]);
  const cat = (...parts: (number[] | Uint8Array)[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

  const cases: [string, () => [Uint8Array, number], string][] = [
    ['sizes add up to less than the body', () => one(x(12)), 'INVALID_BINARY_DATA'],
    ['sizes add up to more than the body', () => one(x(20)), 'INVALID_BINARY_DATA'],
    [
      'binary data after a header without binary inputs',
      () => one({ name: 'x', datatype: 'FP32', shape: [1], data: [1] }),
      'INVALID_BINARY_DATA',
    ],
    [
      'two inputs whose sizes exceed the body',
      () => body({ inputs: [x(16), { ...x(16), name: 'y' }] }, [f4]),
      'INVALID_BINARY_DATA',
    ],
    ['negative binary_data_size', () => one(x(-16)), 'INVALID_BINARY_DATA'],
    ['fractional binary_data_size', () => one(x(15.5)), 'INVALID_BINARY_DATA'],
    ['huge binary_data_size', () => one(x(2 ** 60)), 'INVALID_BINARY_DATA'],
    ['largest safe binary_data_size', () => one(x(Number.MAX_SAFE_INTEGER)), 'INVALID_BINARY_DATA'],
    [
      'binary_data_size beyond 2^53 as a literal',
      () =>
        body(
          `{"inputs":[{"name":"x","datatype":"FP32","shape":[4],"parameters":{"binary_data_size":18446744073709551616}}]}`,
          [f4],
        ),
      'INVALID_BINARY_DATA',
    ],
    ['string binary_data_size', () => one(x('16')), 'INVALID_BINARY_DATA'],
    ['null binary_data_size', () => one(x(null)), 'INVALID_BINARY_DATA'],
    ['boolean binary_data_size', () => one(x(true)), 'INVALID_BINARY_DATA'],
    [
      'header length beyond the body',
      () => {
        const [b] = one(x(16));
        return [b, b.length + 1];
      },
      'INVALID_BINARY_DATA',
    ],
    [
      'negative header length',
      () => {
        const [b] = one(x(16));
        return [b, -1];
      },
      'INVALID_BINARY_DATA',
    ],
    [
      'fractional header length',
      () => {
        const [b, hl] = one(x(16));
        return [b, hl + 0.5];
      },
      'INVALID_BINARY_DATA',
    ],
    [
      'NaN header length',
      () => {
        const [b] = one(x(16));
        return [b, Number.NaN];
      },
      'INVALID_BINARY_DATA',
    ],
    [
      'header length cutting the JSON short',
      () => {
        const [b, hl] = one(x(16));
        return [b, hl - 1];
      },
      'MALFORMED_JSON',
    ],
    ['header not JSON', () => body('not json', [f4]), 'MALFORMED_JSON'],
    ['header not UTF-8', () => [Uint8Array.from([0x7b, 0xff, 0x7d]), 3], 'MALFORMED_JSON'],
    ['header an array', () => body([x(16)], [f4]), 'INVALID_REQUEST'],
    ['header a number', () => body('42', [f4]), 'INVALID_REQUEST'],
    ['inputs not an array', () => body({ inputs: { x: 1 } }, [f4]), 'INVALID_REQUEST'],
    ['both data and binary_data_size', () => one(x(16, { data: [1, 2, 3, 4] })), 'INVALID_BINARY_DATA'],
    [
      'fixed-size input whose size is not shape × element size',
      () => one(x(16, { shape: [3] })),
      'INVALID_BINARY_DATA',
    ],
    [
      'fixed-size input with a size not a multiple of the element size',
      () => one(x(3), [f4.subarray(0, 3)]),
      'INVALID_BINARY_DATA',
    ],
    ['unknown datatype', () => one(x(16, { datatype: 'FP8' })), 'INVALID_DATATYPE'],
    [
      'BF16 (not a datatype maas serves)',
      () => one(x(16, { datatype: 'BF16', shape: [8] })),
      'INVALID_DATATYPE',
    ],
    ['shape not an array', () => one(x(16, { shape: 4 })), 'INVALID_SHAPE'],
    ['negative dimension', () => one(x(16, { shape: [-4] })), 'INVALID_SHAPE'],
    [
      'BOOL byte other than 0 or 1',
      () => body({ inputs: [binaryInput('b', 'BOOL', [2], 2)] }, [Uint8Array.from([1, 2])]),
      'INVALID_BINARY_DATA',
    ],
    ['truncated BYTES length prefix', () => bytesInput(cat([1, 0, 0, 0, 97], [2, 0])), 'INVALID_BINARY_DATA'],
    [
      'BYTES length beyond the data',
      () => bytesInput(cat([1, 0, 0, 0, 97], [5, 0, 0, 0, 98])),
      'INVALID_BINARY_DATA',
    ],
    ['BYTES length 2^32-1', () => bytesInput(cat([0xff, 0xff, 0xff, 0xff, 97])), 'INVALID_BINARY_DATA'],
    [
      'fewer BYTES elements than the shape',
      () => bytesInput(elementBytes('BYTES', ['a']), [2]),
      'INVALID_BINARY_DATA',
    ],
    [
      'more BYTES elements than the shape',
      () => bytesInput(elementBytes('BYTES', ['a', 'b', 'c']), [2]),
      'INVALID_BINARY_DATA',
    ],
    [
      'BYTES element not UTF-8',
      () => bytesInput(cat([1, 0, 0, 0, 0xff], [0, 0, 0, 0])),
      'INVALID_BINARY_DATA',
    ],
    ['BYTES element with NUL', () => bytesInput(elementBytes('BYTES', ['a\u0000b', ''])), 'NUL_IN_BYTES'],
    [
      'binary_data_output not a boolean',
      () => one(x(16), [f4], { parameters: { binary_data_output: 'yes' } }),
      'INVALID_PARAMETERS',
    ],
    [
      'header length cutting a UTF-8 character',
      () => {
        const [b] = one(x(16), [f4], { id: 'caf\u00e9' });
        const cut = b.lastIndexOf(0xc3) + 1;
        return [b, cut];
      },
      'MALFORMED_JSON',
    ],
    [
      'shape whose element count passes 2^53',
      () => one(x(16, { shape: [2 ** 30, 2 ** 30, 2 ** 30] })),
      'INVALID_BINARY_DATA',
    ],
    [
      'BYTES shape whose element count passes 2^53',
      () => bytesInput(elementBytes('BYTES', ['a']), [2 ** 40, 2 ** 40]),
      'INVALID_BINARY_DATA',
    ],
  ];

  it('has at least 25 cases', () => expect(cases.length).toBeGreaterThanOrEqual(25));
  for (const [what, make, code] of cases) {
    it(`${what}: 400 ${code}`, () => {
      const [b, hl] = make();
      expect(codeOf(() => parseBinaryRequest(b, hl))).toBe(code);
    });
  }

  it('messages name the input and the sizes', () => {
    const [b, hl] = one(x(16, { shape: [3] }));
    expect(() => parseBinaryRequest(b, hl)).toThrow(/input 'x'.*16 bytes.*\[3\].*FP32.*12/);
  });
});

describe('a parsed binary request through JSON validation', () => {
  const sig = compileSignature(
    {
      inputs: [
        { name: 'x', datatype: 'FP32', shape: [-1, 2] },
        { name: 'n', datatype: 'INT64', shape: [1] },
      ],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
    },
    "model 'm' version 1",
  );
  const x = elementBytes('FP32', [1, 2, 3, 4]);

  it('feeds are the binary inputs themselves (no copy) and JSON inputs decoded as usual', () => {
    const [b, hl] = body(
      {
        inputs: [
          binaryInput('x', 'FP32', [2, 2], 16),
          { name: 'n', datatype: 'INT64', shape: [1], data: [7] },
        ],
      },
      [x],
    );
    const { request, binaryInputs } = parseBinaryRequest(b, hl);
    const v = validateInferenceRequest(request, sig);
    expect(v.feeds.x!.data).toBe(binaryInputs[0]!.data);
    expect(v.feeds.x!.shape).toEqual([2, 2]);
    expect(v.feeds.n!.data).toEqual(BigInt64Array.from([7n]));
  });

  it('binary inputs are still checked against the signature', () => {
    const [b, hl] = body(
      {
        inputs: [binaryInput('x', 'FP32', [4], 16), { name: 'n', datatype: 'INT64', shape: [1], data: [7] }],
      },
      [x],
    );
    expect(codeOf(() => validateInferenceRequest(parseBinaryRequest(b, hl).request, sig))).toBe(
      'SHAPE_MISMATCH',
    );
    const [b2, hl2] = body({ inputs: [binaryInput('x', 'INT32', [2, 2], 16)] }, [x]);
    expect(codeOf(() => validateInferenceRequest(parseBinaryRequest(b2, hl2).request, sig))).toBe(
      'DATATYPE_MISMATCH',
    );
  });

  it('takes FP16 JSON data in a binary request like a JSON request: each value rounded to the nearest half', () => {
    const hsig = compileSignature(
      {
        inputs: [
          { name: 'x', datatype: 'FP32', shape: [-1, 2] },
          { name: 'h', datatype: 'FP16', shape: [6] },
        ],
        outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
      },
      "model 'm' version 1",
    );
    const values = [0.1, 1 / 3, -2.5, 65519, 3e-8, 1e-8];
    // Nearest halves, worked out by hand: 0.1 -> 0x2e66, 1/3 -> 0x3555, -2.5 -> 0xc100 (exact), 65519 -> 65504
    // (0x7bff), 3e-8 -> the smallest subnormal 2^-24 (0x0001), 1e-8 (below 2^-25) -> 0.
    const halves = Uint16Array.from([0x2e66, 0x3555, 0xc100, 0x7bff, 0x0001, 0x0000]);
    const h = { name: 'h', datatype: 'FP16', shape: [6], data: values };
    const [b, hl] = body({ inputs: [binaryInput('x', 'FP32', [2, 2], 16), h] }, [x]);
    const { request, binaryInputs } = parseBinaryRequest(b, hl);
    expect(binaryInputs[1]).toBeUndefined();
    expect(request.inputs[1]!.data).toEqual(values);
    const fromBinary = validateInferenceRequest(request, hsig).feeds.h!;
    expect(fromBinary.datatype).toBe('FP16');
    expect(fromBinary.data).toEqual(halves);
    const fromJson = validateInferenceRequest(
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3, 4] }, h] },
      hsig,
    ).feeds.h!;
    expect(fromJson.data).toEqual(fromBinary.data);
  });

  it('refuses FP16 JSON data in a binary request as a JSON request does: beyond the largest half', () => {
    const hsig = compileSignature(
      {
        inputs: [{ name: 'h', datatype: 'FP16', shape: [1] }],
        outputs: [{ name: 'y', datatype: 'FP16', shape: [1] }],
      },
      "model 'm' version 1",
    );
    const h = { name: 'h', datatype: 'FP16', shape: [1], data: [65520] };
    const [b, hl] = body({ inputs: [h] });
    const fromBinary = codeOf(() => validateInferenceRequest(parseBinaryRequest(b, hl).request, hsig));
    expect(fromBinary).toBe('NON_FINITE');
    expect(codeOf(() => validateInferenceRequest({ inputs: [h] }, hsig))).toBe(fromBinary);
  });

  it('a typed array that the binary parser did not produce is still not JSON data', () => {
    expect(codeOf(() => decodeTensor('x', 'FP32', [1], Float32Array.from([1])))).toBe('INVALID_DATA');
  });
});

describe('wantsBinaryOutput', () => {
  const req = (extra: Partial<OipRequest>): OipRequest => ({ inputs: [], ...extra });

  it('is false by default, the request-level flag otherwise, and an output’s own flag overrides it', () => {
    expect(wantsBinaryOutput(req({}), 'y')).toBe(false);
    expect(wantsBinaryOutput(req({ parameters: { binary_data_output: true } }), 'y')).toBe(true);
    const r = req({
      parameters: { binary_data_output: true },
      outputs: [
        { name: 'a', parameters: { binary_data: false } },
        { name: 'b' },
        { name: 'c', parameters: { binary_data: true } },
      ],
    });
    expect(wantsBinaryOutput(r, 'a')).toBe(false);
    expect(wantsBinaryOutput(r, 'b')).toBe(true);
    expect(wantsBinaryOutput(req({ outputs: [{ name: 'c', parameters: { binary_data: true } }] }), 'c')).toBe(
      true,
    );
    expect(wantsBinaryOutput(req({ outputs: [{ name: 'c', parameters: { binary_data: true } }] }), 'd')).toBe(
      false,
    );
  });

  it('refuses flags that are not booleans', () => {
    expect(
      codeOf(() => wantsBinaryOutput(req({ outputs: [{ name: 'a', parameters: { binary_data: 1 } }] }), 'a')),
    ).toBe('INVALID_PARAMETERS');
    expect(codeOf(() => wantsBinaryOutput(req({ parameters: { binary_data_output: 'true' } }), 'a'))).toBe(
      'INVALID_PARAMETERS',
    );
  });
});

describe('asksBinaryOutput', () => {
  it('is true when a request-level or an output flag is given, whatever its value (the encoder checks it)', () => {
    expect(asksBinaryOutput({ inputs: [] })).toBe(false);
    expect(asksBinaryOutput({ parameters: { binary_data_output: false } })).toBe(true);
    expect(asksBinaryOutput({ parameters: { binary_data_output: 'yes' } })).toBe(true);
    expect(
      asksBinaryOutput({ outputs: [{ name: 'a' }, { name: 'b', parameters: { binary_data: true } }] }),
    ).toBe(true);
    expect(asksBinaryOutput({ outputs: [{ name: 'a', parameters: { other: 1 } }] })).toBe(false);
  });

  it('reads odd requests without throwing: the validator refuses them', () => {
    for (const r of [null, undefined, 5, 'x', { outputs: 5 }, { outputs: [null, 3] }, { parameters: null }]) {
      expect(asksBinaryOutput(r)).toBe(false);
    }
  });
});

describe('the JSON form of binary exchanges (what captures and shadow replays hold)', () => {
  // Each datatype's elements as CASES sends them, and their JSON values as a JSON request writes them.
  const JSON_VALUES: Record<Datatype, unknown[]> = {
    BOOL: [true, false, true, true],
    UINT8: [0, 7, 200, 255],
    UINT16: [0, 1, 65535, 4660],
    UINT32: [0, 1, 4294967295, 305419896],
    // 64-bit integers beyond 2^53 - 1 as decimal strings, as JSON answers write them.
    UINT64: [0, 1, '18446744073709551615', '9007199254740993'],
    INT8: [-128, -1, 0, 127],
    INT16: [-32768, -2, 3, 32767],
    INT32: [-2147483648, -5, 6, 2147483647],
    INT64: ['-9223372036854775808', -1, '9223372036854775807', '9007199254740993'],
    FP16: [1, -2, 65504, 2 ** -24],
    FP32: [1.5, -0.25, 3.4028234663852886e38, Math.fround(1e-45)],
    FP64: [Math.PI, 0, Number.MAX_VALUE, 5e-324],
    BYTES: ['', 'héllo', '日本語', '🙂x'],
  };

  it('binaryRequestAsJson: every datatype as `data`, JSON inputs and other parameters kept, binary flags dropped', () => {
    for (const [datatype, values] of CASES) {
      const raw = elementBytes(datatype, values);
      const [b, h] = body(
        {
          id: 'r1',
          inputs: [
            binaryInput('a', datatype, [2, 2], raw.length, {}),
            { name: 'j', datatype: 'INT32', shape: [1], data: [7], parameters: { note: 'x' } },
          ],
          outputs: [{ name: 'y', parameters: { binary_data: true, classification: 2 } }, { name: 'z' }],
          parameters: { binary_data_output: true, trace: 'yes' },
        },
        [raw],
      );
      expect(JSON.parse(binaryRequestAsJson(b, h)), datatype).toEqual({
        id: 'r1',
        inputs: [
          { name: 'a', datatype, shape: [2, 2], data: JSON_VALUES[datatype] },
          { name: 'j', datatype: 'INT32', shape: [1], data: [7], parameters: { note: 'x' } },
        ],
        outputs: [{ name: 'y', parameters: { classification: 2 } }, { name: 'z' }],
        parameters: { trace: 'yes' },
      });
    }
  });

  it('binaryRequestAsJson: a raw body is the request of the one input it is the data of', () => {
    const raw = elementBytes('FP32', [1.5, -2]);
    expect(JSON.parse(binaryRequestAsJson(raw, 0, { name: 'x', datatype: 'FP32', shape: [-1, 2] }))).toEqual({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1.5, -2] }],
    });
    expect(() => binaryRequestAsJson(raw, 0)).toThrow(BadRequestError);
  });

  it('binaryAnswerAsJson: the JSON answer of the same outputs, whichever of them were binary', () => {
    const head = { model_name: 'm', model_version: '3', id: 'r2', parameters: { a: 1 } };
    const tensors: [string, Tensor][] = CASES.map(([datatype, , data]) => [
      datatype.toLowerCase(),
      { datatype, shape: [4], data } as Tensor,
    ]);
    const plain = encodeBinaryResponse(
      head,
      tensors.map(([name, tensor]) => ({ name, tensor, binary: false })),
    );
    expect(plain.headerLength).toBeUndefined();
    const json = JSON.parse(new TextDecoder().decode(plain.body));
    expect(json.outputs.map((o: { data: unknown[] }) => o.data)).toEqual(
      CASES.map(([datatype]) => JSON_VALUES[datatype]),
    );
    for (const binary of [() => true, (i: number) => i % 2 === 0]) {
      const encoded = encodeBinaryResponse(
        head,
        tensors.map(([name, tensor], i) => ({ name, tensor, binary: binary(i) })),
      );
      expect(encoded.headerLength).toBeDefined();
      expect(JSON.parse(binaryAnswerAsJson(encoded.body, encoded.headerLength as number))).toEqual(json);
    }
  });
});

describe('encodeBinaryResponse', () => {
  const head = { model_name: 'm', model_version: '2', id: 'r' };

  it('matches hand-computed bytes', () => {
    const out = encodeBinaryResponse(head, [
      { name: 'p', tensor: { datatype: 'FP32', shape: [2], data: Float32Array.from([1, -2]) }, binary: true },
      { name: 'l', tensor: { datatype: 'BYTES', shape: [2], data: ['ab', 'é'] }, binary: true },
      { name: 'k', tensor: { datatype: 'INT16', shape: [1], data: Int16Array.from([-2]) }, binary: false },
    ]);
    const header =
      '{"model_name":"m","model_version":"2","id":"r","outputs":[' +
      '{"name":"p","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},' +
      '{"name":"l","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":12}},' +
      '{"name":"k","datatype":"INT16","shape":[1],"data":[-2]}]}';
    expect(out.headerLength).toBe(header.length);
    expect(Buffer.from(out.body.subarray(0, out.headerLength)).toString('latin1')).toBe(header);
    expect([...out.body.subarray(out.headerLength)]).toEqual([
      // 1.0f, -2.0f
      0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0,
      // "ab", "é" (c3 a9)
      2, 0, 0, 0, 0x61, 0x62, 2, 0, 0, 0, 0xc3, 0xa9,
    ]);
  });

  it('is plain JSON (no header length) when no output is binary', () => {
    const out = encodeBinaryResponse({ ...head, parameters: { a: 1 } }, [
      { name: 'k', tensor: { datatype: 'BOOL', shape: [2], data: Uint8Array.from([1, 0]) }, binary: false },
    ]);
    expect(out.headerLength).toBeUndefined();
    expect(JSON.parse(new TextDecoder().decode(out.body))).toEqual({
      model_name: 'm',
      model_version: '2',
      id: 'r',
      parameters: { a: 1 },
      outputs: [{ name: 'k', datatype: 'BOOL', shape: [2], data: [true, false] }],
    });
  });

  it('a binary output of zero bytes still makes a binary response', () => {
    const out = encodeBinaryResponse(head, [
      { name: 'e', tensor: { datatype: 'FP32', shape: [0], data: new Float32Array(0) }, binary: true },
    ]);
    expect(out.headerLength).toBe(out.body.length);
    expect(JSON.parse(new TextDecoder().decode(out.body)).outputs[0].parameters).toEqual({
      binary_data_size: 0,
    });
  });

  it('writes a view with an offset (a subarray) from its own bytes only', () => {
    const whole = Float64Array.from([9, 1.5, 9]);
    const out = encodeBinaryResponse(head, [
      { name: 'v', tensor: { datatype: 'FP64', shape: [1], data: whole.subarray(1, 2) }, binary: true },
    ]);
    const { raw } = splitResponse(out.body, out.headerLength!);
    expect(raw.v).toEqual(elementBytes('FP64', [1.5]));
  });

  it('responseOutputs marks outputs binary as the request asks', () => {
    const t: Tensor = { datatype: 'UINT8', shape: [1], data: Uint8Array.from([5]) };
    const r: OipRequest = {
      inputs: [],
      outputs: [{ name: 'a', parameters: { binary_data: true } }, { name: 'b' }],
    };
    expect(
      responseOutputs(r, [
        ['a', t],
        ['b', t],
      ]).map((o) => o.binary),
    ).toEqual([true, false]);
  });
});

describe('parseBinaryRequest: header values nested too deep to quote', () => {
  /** JSON text of an array nested 100 000 levels (too deep for a recursive stringify). */
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  it.each([
    [
      'binary_data_output',
      `{"parameters":{"binary_data_output":${deep}},"inputs":[]}`,
      'INVALID_PARAMETERS',
      /got an array/,
    ],
    [
      'binary_data_size',
      `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":${deep}}}]}`,
      'INVALID_BINARY_DATA',
      /got an array/,
    ],
    [
      'datatype',
      `{"inputs":[{"name":"x","datatype":${deep},"shape":[1],"parameters":{"binary_data_size":4}}]}`,
      'INVALID_DATATYPE',
      /datatype an array is not one of/,
    ],
  ])('%s is refused as a 400 naming its kind', (_field, header, code, message) => {
    const [b, hl] = body(header, [new Uint8Array(4)]);
    let caught: unknown;
    try {
      parseBinaryRequest(b, hl);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(BadRequestError);
    expect(caught).toMatchObject({ code, message: expect.stringMatching(message) });
  });
});

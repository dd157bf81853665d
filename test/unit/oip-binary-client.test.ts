/**
 * The TypeScript client helper of the binary tensor data extension (functions/client/oip-binary.ts), written apart
 * from the server codec, checked against it both ways for every datatype: client requests parsed by the server's
 * `parseBinaryRequest`, server answers (`encodeBinaryResponse`) read by the client, so that a disagreement between
 * the two readings of the spec shows.
 */
import { describe, expect, it } from 'vitest';
import {
  bf16ToNumber,
  decodeInferResponse,
  encodeInferRequest,
  halfToNumber,
  INFERENCE_HEADER_CONTENT_LENGTH,
  type InferInput,
  numberToBf16,
  numberToHalf,
  type OipDatatype,
  toJsonData,
} from '../../functions/client/oip-binary';
import {
  encodeBinaryResponse,
  parseBinaryRequest,
  type ResponseOutput,
  wantsBinaryOutput,
} from '../../functions/domain/binary-tensors';
import { BadRequestError } from '../../functions/domain/errors';
import { dataToJsonValues } from '../../functions/domain/oip-encode';
import { fromHalfBits, type Tensor, toHalfBits } from '../../functions/domain/tensor';
import type { Datatype } from '../../functions/domain/types';

/** Per datatype: plain values (edges included), and the typed array the server decodes them to. */
const CASES: Record<Datatype, { values: unknown[]; typed: () => Tensor['data'] }> = {
  BOOL: { values: [true, false, true, true], typed: () => new Uint8Array([1, 0, 1, 1]) },
  UINT8: { values: [0, 1, 254, 255], typed: () => new Uint8Array([0, 1, 254, 255]) },
  UINT16: { values: [0, 1, 65534, 65535], typed: () => new Uint16Array([0, 1, 65534, 65535]) },
  UINT32: {
    values: [0, 7, 2 ** 32 - 2, 2 ** 32 - 1],
    typed: () => new Uint32Array([0, 7, 2 ** 32 - 2, 2 ** 32 - 1]),
  },
  UINT64: {
    values: [0, 2 ** 53 - 1, '18446744073709551615', 12345678901234567890n],
    typed: () => new BigUint64Array([0n, 2n ** 53n - 1n, 2n ** 64n - 1n, 12345678901234567890n]),
  },
  INT8: { values: [-128, -1, 0, 127], typed: () => new Int8Array([-128, -1, 0, 127]) },
  INT16: { values: [-32768, -2, 3, 32767], typed: () => new Int16Array([-32768, -2, 3, 32767]) },
  INT32: {
    values: [-(2 ** 31), -5, 6, 2 ** 31 - 1],
    typed: () => new Int32Array([-(2 ** 31), -5, 6, 2 ** 31 - 1]),
  },
  INT64: {
    values: ['-9223372036854775808', -(2 ** 53) + 1, 42n, '9223372036854775807'],
    typed: () => new BigInt64Array([-(2n ** 63n), -(2n ** 53n) + 1n, 42n, 2n ** 63n - 1n]),
  },
  FP16: {
    values: [0, -1.5, 65504, 6e-8],
    typed: () => new Uint16Array([0, 0xbe00, 0x7bff, 0x0001]),
  },
  FP32: {
    values: [0.1, -2.5, 3.4028234663852886e38, 1e-45],
    typed: () => new Float32Array([0.1, -2.5, 3.4028234663852886e38, 1e-45]),
  },
  FP64: {
    values: [0.1, -2.5, Number.MAX_VALUE, 5e-324],
    typed: () => new Float64Array([0.1, -2.5, Number.MAX_VALUE, 5e-324]),
  },
  // A leading byte order mark is part of an element's text: decoders drop it unless told not to.
  BYTES: {
    values: ['', '\uFEFFa', 'héllo wörld', '日本語 🌍'],
    typed: () => ['', '\uFEFFa', 'héllo wörld', '日本語 🌍'],
  },
};
const DATATYPES = Object.keys(CASES) as Datatype[];
const SHAPE = [2, 2];

const plain = (d: Tensor['data']): unknown[] => Array.from(d as ArrayLike<unknown>);

describe('client requests, read by the server codec', () => {
  it.each(DATATYPES)('%s from plain values: same datatype, shape and elements on the server', (datatype) => {
    const c = CASES[datatype];
    const { body, headerLength, headers } = encodeInferRequest({
      inputs: [{ name: 'x', datatype, shape: SHAPE, data: c.values as InferInput['data'] }],
    });
    expect(headers[INFERENCE_HEADER_CONTENT_LENGTH]).toBe(String(headerLength));
    const parsed = parseBinaryRequest(body, headerLength);
    const input = parsed.request.inputs[0]!;
    expect(input).toMatchObject({ name: 'x', datatype, shape: SHAPE });
    expect(parsed.binaryInputs[0]?.datatype).toBe(datatype);
    expect(plain(parsed.binaryInputs[0]!.data)).toEqual(plain(c.typed()));
  });

  it.each(DATATYPES.filter((d) => d !== 'BYTES'))('%s from its typed array: the same bytes', (datatype) => {
    const typed = CASES[datatype].typed() as Exclude<Tensor['data'], string[]>;
    const fromTyped = encodeInferRequest({
      inputs: [{ name: 'x', datatype, shape: SHAPE, data: typed as InferInput['data'] }],
    });
    const fromPlain = encodeInferRequest({
      inputs: [{ name: 'x', datatype, shape: SHAPE, data: CASES[datatype].values as InferInput['data'] }],
    });
    expect(Buffer.from(fromTyped.body)).toEqual(Buffer.from(fromPlain.body));
    expect(fromTyped.body.length - fromTyped.headerLength).toBe(typed.byteLength);
    expect(plain(parseBinaryRequest(fromTyped.body, fromTyped.headerLength).binaryInputs[0]!.data)).toEqual(
      plain(typed),
    );
  });

  it('BYTES elements given as bytes: sent as they are in binary, as their UTF-8 text in JSON', () => {
    const bytes = [new TextEncoder().encode('\uFEFFé'), new Uint8Array([])];
    for (const binary of [true, false]) {
      const { body, headerLength } = encodeInferRequest({
        inputs: [{ name: 'x', datatype: 'BYTES', shape: [2], data: bytes, binary }],
      });
      const parsed = parseBinaryRequest(body, headerLength);
      const data = binary ? parsed.binaryInputs[0]!.data : parsed.request.inputs[0]!.data;
      expect(plain(data as Tensor['data'])).toEqual(['\uFEFFé', '']);
    }
    expect(() =>
      encodeInferRequest({
        inputs: [{ name: 'x', datatype: 'BYTES', shape: [1], data: [new Uint8Array([0xff])], binary: false }],
      }),
    ).toThrow(/BYTES element 0 is not UTF-8 text.*send it as binary/);
  });

  it('every datatype in one request, mixed with JSON inputs, in order', () => {
    const inputs: InferInput[] = DATATYPES.map((datatype) => ({
      name: `in_${datatype}`,
      datatype,
      shape: SHAPE,
      data: CASES[datatype].values as InferInput['data'],
    }));
    inputs.splice(3, 0, { name: 'json_i32', datatype: 'INT32', shape: [3], data: [1, 2, 3], binary: false });
    inputs.push({ name: 'json_bytes', datatype: 'BYTES', shape: [1], data: ['ä'], binary: false });
    const { body, headerLength } = encodeInferRequest({ id: 'r-1', inputs, parameters: { tag: 'x' } });
    const parsed = parseBinaryRequest(body, headerLength);
    expect(parsed.request.id).toBe('r-1');
    expect(parsed.request.parameters).toEqual({ tag: 'x' });
    expect(parsed.request.inputs.map((i) => i.name)).toEqual(inputs.map((i) => i.name));
    for (const [i, input] of inputs.entries()) {
      if (input.binary === false) {
        expect(parsed.binaryInputs[i]).toBeUndefined();
        expect(parsed.request.inputs[i]!.data).toEqual(input.data);
      } else {
        expect(plain(parsed.binaryInputs[i]!.data), input.name).toEqual(
          plain(CASES[input.datatype as Datatype].typed()),
        );
      }
    }
  });

  it('asks outputs as binary the way the server reads it: request-wide, overridden per output', () => {
    const { body, headerLength } = encodeInferRequest({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }],
      binaryOutputs: true,
      outputs: [{ name: 'a', binary: false }, { name: 'b' }, { name: 'c', binary: true }],
    });
    const { request } = parseBinaryRequest(body, headerLength);
    expect(['a', 'b', 'c', 'd'].map((o) => wantsBinaryOutput(request, o))).toEqual([false, true, true, true]);
    const none = encodeInferRequest({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }],
      outputs: [{ name: 'c', binary: true }],
    });
    const r2 = parseBinaryRequest(none.body, none.headerLength).request;
    expect([wantsBinaryOutput(r2, 'c'), wantsBinaryOutput(r2, 'd')]).toEqual([true, false]);
  });

  it('refuses data that does not fit: element count, integer range, BOOL values, FP16 as JSON', () => {
    const enc = (input: Partial<InferInput>) => () =>
      encodeInferRequest({
        inputs: [{ name: 'x', datatype: 'INT8', shape: [2], data: [1, 2], ...input } as InferInput],
      });
    expect(enc({ data: [1, 2, 3] })).toThrow(RangeError);
    expect(enc({ data: [1, 128] })).toThrow(/INT8/);
    expect(enc({ data: [1, 1.5] })).toThrow(RangeError);
    expect(enc({ datatype: 'UINT8', data: [0, -1] })).toThrow(RangeError);
    expect(enc({ datatype: 'UINT64', data: [0, '18446744073709551616'] })).toThrow(RangeError);
    // A minus sign is no unsigned integer, not even on zero (the server refuses '-0' for UINT64 in JSON too).
    expect(enc({ datatype: 'UINT64', data: [0, '-0'] })).toThrow(RangeError);
    expect(enc({ datatype: 'INT64', data: [0, '-0'] })).not.toThrow();
    expect(enc({ datatype: 'INT64', data: [0, 2 ** 53] })).toThrow(RangeError);
    expect(enc({ datatype: 'BOOL', data: [true, 2] as unknown as boolean[] })).toThrow(RangeError);
    expect(enc({ datatype: 'BOOL', data: new Uint8Array([1, 2]) })).toThrow(RangeError);
    expect(enc({ datatype: 'FP32', data: [1, 'a'] as unknown as number[] })).toThrow(TypeError);
    expect(enc({ datatype: 'BYTES', data: ['a'] })).toThrow(RangeError);
    expect(enc({ shape: [-1, 2] })).toThrow(RangeError);
    expect(enc({ datatype: 'FP16', data: [1, 2], binary: false })).toThrow(/no JSON form/);
  });

  it('BF16: raw halves or numbers rounded to nearest even; the server does not take BF16', () => {
    const values = [1, -2.5, 3.140625, 1e-3];
    const { body, headerLength } = encodeInferRequest({
      inputs: [{ name: 'x', datatype: 'BF16', shape: [4], data: values }],
    });
    const data = body.subarray(headerLength);
    const halves = Array.from({ length: 4 }, (_, i) => data[2 * i]! | (data[2 * i + 1]! << 8));
    expect(halves).toEqual(values.map(numberToBf16));
    expect(halves.slice(0, 3).map(bf16ToNumber)).toEqual([1, -2.5, 3.140625]);
    expect(bf16ToNumber(numberToBf16(1e-3))).toBeCloseTo(1e-3, 5);
    expect(numberToBf16(1 + 2 ** -8)).toBe(0x3f80); // a tie rounds to even
    expect(() => parseBinaryRequest(body, headerLength)).toThrow(BadRequestError);
  });

  /**
   * Whether `bits` is the 16-bit float nearest to `v` (ties to the even bits), judged from its neighbours' values:
   * no rule of the encoder's own.
   */
  function nearest(v: number, bits: number, value: (b: number) => number): boolean {
    const x = value(bits);
    if (Number.isNaN(v)) return Number.isNaN(x);
    if (v === 0) return x === 0 && Object.is(v, -0) === Object.is(x, -0);
    const magnitude = bits & 0x7fff;
    const sign = bits & 0x8000;
    const d = Math.abs(v - x);
    for (const m of [magnitude - 1, magnitude + 1]) {
      if (m < 0 || (m > magnitude && !Number.isFinite(x))) continue;
      const other = Math.abs(v - value(sign | m));
      if (!Number.isFinite(x) && Number.isFinite(value(sign | m))) {
        // Infinity is the answer past the largest finite value and the tie above it.
        const largest = value(sign | m);
        const step = largest - value(sign | (m - 1));
        if (Math.abs(v) < Math.abs(largest) + step / 2) return false;
        continue;
      }
      if (other < d || (other === d && (m & 1) === 0)) return false;
    }
    return true;
  }

  it('rounds numbers to FP16 and BF16 once, from the double: nearest, ties to even', () => {
    // Each halfway between two 16-bit values only once it is rounded to FP32: rounding twice goes the wrong way.
    expect(numberToHalf(65519.99999)).toBe(0x7bff);
    expect(numberToHalf(1.0004882813)).toBe(0x3c01);
    expect(numberToHalf(1 + 2 ** -11 + 2 ** -40)).toBe(0x3c01);
    expect(numberToBf16(1 + 2 ** -8 + 2 ** -30)).toBe(0x3f81);
    expect(numberToBf16(-(1 + 2 ** -8 + 2 ** -30))).toBe(0xbf81);
    expect(numberToHalf(65520)).toBe(0x7c00);
    expect(numberToBf16(3.4e38)).toBe(0x7f80);
    expect(numberToBf16(Number.POSITIVE_INFINITY)).toBe(0x7f80);
    expect(numberToBf16(Number.NEGATIVE_INFINITY)).toBe(0xff80);
    expect(Number.isNaN(bf16ToNumber(numberToBf16(Number.NaN)))).toBe(true);
    expect(numberToBf16(-0)).toBe(0x8000);
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 5000; i++) {
      const v = (rnd() - 0.5) * 2 ** Math.floor(rnd() * 80 - 40);
      expect(nearest(v, numberToHalf(v), halfToNumber), `FP16 ${v}`).toBe(true);
      const w = (rnd() - 0.5) * 2 ** Math.floor(rnd() * 300 - 150);
      expect(nearest(w, numberToBf16(w), bf16ToNumber), `BF16 ${w}`).toBe(true);
      // Exactly halfway between two BF16 values, and a hair above it.
      const b = numberToBf16(w) & 0x7fff;
      const mid = (bf16ToNumber(b) + bf16ToNumber(b + 1)) / 2;
      if (Number.isFinite(mid) && b + 1 < 0x7f80) {
        expect(numberToBf16(mid), `BF16 tie ${mid}`).toBe(b & 1 ? b + 1 : b);
        expect(numberToBf16(mid * (1 + 2 ** -40)), `BF16 above ${mid}`).toBe(b + 1);
      }
    }
  });
});

describe('server answers, read by the client', () => {
  const tensorOf = (datatype: Datatype): Tensor => ({
    datatype,
    shape: SHAPE,
    data: CASES[datatype].typed(),
  });

  it.each(DATATYPES)(
    '%s binary: the same elements, and the same JSON values as the JSON path gives',
    (datatype) => {
      const t = tensorOf(datatype);
      const { body, headerLength } = encodeBinaryResponse({ model_name: 'm', model_version: '3' }, [
        { name: 'y', tensor: t, binary: true },
      ]);
      expect(headerLength).toBeDefined();
      const answer = decodeInferResponse(body, headerLength);
      expect(answer).toMatchObject({ model_name: 'm', model_version: '3' });
      const [o] = answer.outputs;
      expect(o).toMatchObject({ name: 'y', datatype, shape: SHAPE, binary: true });
      expect(toJsonData(o!)).toEqual(dataToJsonValues(t));
      if (datatype === 'BOOL') expect(o!.data).toEqual([true, false, true, true]);
      else expect(plain(o!.data as Tensor['data'])).toEqual(plain(t.data));
    },
  );

  it('every datatype in one answer, binary and JSON outputs mixed, header offsets aligned or not', () => {
    for (const name of ['m', 'mo', 'mod', 'mode', 'model-5', 'model-six', 'model-seven']) {
      const outputs: ResponseOutput[] = DATATYPES.flatMap((datatype, i) => [
        { name: `b_${datatype}`, tensor: tensorOf(datatype), binary: true },
        ...(i % 3 === 0 && datatype !== 'FP16'
          ? [{ name: `j_${datatype}`, tensor: tensorOf(datatype), binary: false }]
          : []),
      ]);
      const { body, headerLength } = encodeBinaryResponse(
        { model_name: name, model_version: '1', id: 'q' },
        outputs,
      );
      const answer = decodeInferResponse(body, headerLength);
      expect(answer.id).toBe('q');
      expect(answer.outputs.map((o) => [o.name, o.binary])).toEqual(outputs.map((o) => [o.name, o.binary]));
      for (const [i, o] of answer.outputs.entries()) {
        expect(toJsonData(o), `${name} ${o.name}`).toEqual(dataToJsonValues(outputs[i]!.tensor));
      }
    }
  });

  it('binary outputs are views over the body when aligned, copies when not', () => {
    const seen = { view: 0, copy: 0 };
    for (let pad = 0; pad < 8; pad++) {
      const { body, headerLength } = encodeBinaryResponse(
        { model_name: 'm'.repeat(pad + 1), model_version: '1' },
        [
          {
            name: 'y',
            tensor: { datatype: 'FP64', shape: [2], data: new Float64Array([1.25, -3]) },
            binary: true,
          },
        ],
      );
      const [o] = decodeInferResponse(body, headerLength).outputs;
      const data = o!.data as Float64Array;
      expect(Array.from(data)).toEqual([1.25, -3]);
      if ((body.byteOffset + headerLength!) % 8 === 0) {
        expect(data.buffer).toBe(body.buffer);
        seen.view++;
      } else {
        expect(data.buffer).not.toBe(body.buffer);
        seen.copy++;
      }
    }
    expect(seen.view).toBeGreaterThan(0);
    expect(seen.copy).toBeGreaterThan(0);
  });

  it('a plain JSON answer (no header length) is read as JSON', () => {
    const t: Tensor = { datatype: 'INT64', shape: [2], data: new BigInt64Array([1n, 2n ** 60n]) };
    const { body, headerLength } = encodeBinaryResponse({ model_name: 'm', model_version: '1' }, [
      { name: 'y', tensor: t, binary: false },
    ]);
    expect(headerLength).toBeUndefined();
    const [o] = decodeInferResponse(body, headerLength).outputs;
    expect(o).toMatchObject({ binary: false, data: [1, '1152921504606846976'] });
    expect(toJsonData(o!)).toEqual(dataToJsonValues(t));
  });

  it('non-finite floats come back as in the JSON path (null), FP16 included', () => {
    for (const datatype of ['FP16', 'FP32', 'FP64'] as const) {
      const data =
        datatype === 'FP16'
          ? new Uint16Array([0x7c00, 0xfc00, 0x7e00])
          : new (datatype === 'FP32' ? Float32Array : Float64Array)([Infinity, -Infinity, Number.NaN]);
      const t: Tensor = { datatype, shape: [3], data };
      const { body, headerLength } = encodeBinaryResponse({ model_name: 'm', model_version: '1' }, [
        { name: 'y', tensor: t, binary: true },
      ]);
      expect(toJsonData(decodeInferResponse(body, headerLength).outputs[0]!)).toEqual([null, null, null]);
    }
  });

  it('refuses an answer whose sizes do not add up', () => {
    const { body, headerLength } = encodeBinaryResponse({ model_name: 'm', model_version: '1' }, [
      { name: 'y', tensor: tensorOf('INT32'), binary: true },
    ]);
    const h = headerLength!;
    expect(() => decodeInferResponse(body.subarray(0, body.length - 1), h)).toThrow(RangeError);
    expect(() => decodeInferResponse(Buffer.concat([body, Buffer.from([0])]), h)).toThrow(RangeError);
    expect(() => decodeInferResponse(body, body.length + 1)).toThrow(RangeError);
    const bytes = encodeBinaryResponse({ model_name: 'm', model_version: '1' }, [
      { name: 'y', tensor: { datatype: 'BYTES', shape: [1], data: ['abc'] }, binary: true },
    ]);
    expect(() =>
      decodeInferResponse(bytes.body.subarray(0, bytes.body.length - 1), bytes.headerLength),
    ).toThrow(RangeError);
  });
});

describe('malformed answers, refused with what is wrong', () => {
  /** An answer of `header` (JSON text) followed by `tail`, with the header's length. */
  const answer = (header: string, tail: number[] = []) => {
    const head = new TextEncoder().encode(header);
    const body = new Uint8Array(head.length + tail.length);
    body.set(head);
    body.set(tail, head.length);
    return { body, headerLength: head.length };
  };
  const out = (o: Record<string, unknown>) =>
    JSON.stringify({ model_name: 'm', model_version: '1', outputs: [o] });

  it.each([
    ['a header that is null', 'null', TypeError, /not a JSON object/],
    ['a header that is an array', '[1]', TypeError, /not a JSON object/],
    ['outputs that are no array', '{"model_name":"m","outputs":{}}', TypeError, /outputs are not an array/],
    ['an output that is null', '{"model_name":"m","outputs":[null]}', TypeError, /output 0 is not an object/],
    [
      'parameters that are no object',
      '{"model_name":"m","parameters":"x","outputs":[]}',
      TypeError,
      /parameters/,
    ],
    ['an output without a name', out({ datatype: 'FP32', shape: [1], data: [1] }), TypeError, /has no name/],
    [
      'an output without a datatype',
      out({ name: 'y', shape: [1], data: [1] }),
      TypeError,
      /'y' has no datatype/,
    ],
    [
      'an output whose shape is a string',
      out({ name: 'y', datatype: 'FP32', shape: '1', data: [1] }),
      TypeError,
      /'y' has no shape/,
    ],
    [
      'JSON data that is no array',
      out({ name: 'y', datatype: 'FP32', shape: [1], data: 1 }),
      TypeError,
      /data is not an array/,
    ],
    [
      'output parameters that are no object',
      out({ name: 'y', datatype: 'FP32', shape: [1], parameters: [4] }),
      TypeError,
      /parameters are not an object/,
    ],
    [
      'a header cut short',
      '{"model_name":"m","outp',
      SyntaxError,
      /header \(its first 23 bytes.*is not JSON/,
    ],
  ])('%s', (_what, header, type, message) => {
    const { body, headerLength } = answer(header);
    expect(() => decodeInferResponse(body, headerLength)).toThrow(type);
    expect(() => decodeInferResponse(body, headerLength)).toThrow(message);
  });

  it('refuses an output with both data and binary data, a datatype it does not know, BOOL bytes other than 0 or 1', () => {
    const both = answer(
      out({ name: 'y', datatype: 'INT8', shape: [1], data: [1], parameters: { binary_data_size: 1 } }),
      [1],
    );
    expect(() => decodeInferResponse(both.body, both.headerLength)).toThrow(
      /'y' has both data and binary_data_size/,
    );
    for (const datatype of ['toString', 'constructor', 'FP8']) {
      const a = answer(out({ name: 'y', datatype, shape: [1], parameters: { binary_data_size: 1 } }), [1]);
      expect(() => decodeInferResponse(a.body, a.headerLength)).toThrow(
        `output 'y': unknown datatype ${datatype}`,
      );
    }
    const bool = answer(
      out({ name: 'b', datatype: 'BOOL', shape: [3], parameters: { binary_data_size: 3 } }),
      [1, 0, 2],
    );
    expect(() => decodeInferResponse(bool.body, bool.headerLength)).toThrow(
      /BOOL element 2 is byte 2, not 0 or 1/,
    );
    const fine = answer(
      out({ name: 'b', datatype: 'BOOL', shape: [3], parameters: { binary_data_size: 3 } }),
      [1, 0, 1],
    );
    expect(decodeInferResponse(fine.body, fine.headerLength).outputs[0]!.data).toEqual([true, false, true]);
  });

  it('a binary answer read without its header length says where the length should have come from', () => {
    const { body } = answer(
      out({ name: 'y', datatype: 'INT8', shape: [1], parameters: { binary_data_size: 1 } }),
      [7],
    );
    expect(() => decodeInferResponse(body, undefined)).toThrow(
      /the response is not JSON .*a binary response gives its header's length in Inference-Header-Content-Length/,
    );
  });
});

describe('FP16 conversions agree with the server', () => {
  it('every half pattern reads as the same number', () => {
    const differ: string[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const mine = halfToNumber(h);
      const theirs = fromHalfBits(h);
      if (!Object.is(mine, theirs) && !(Number.isNaN(mine) && Number.isNaN(theirs)))
        differ.push(h.toString(16));
    }
    expect(differ).toEqual([]);
  });

  it('numbers round to the same halves (nearest even, subnormals, overflow)', () => {
    const values = [
      0,
      -0,
      1,
      -1,
      0.1,
      1 / 3,
      65504,
      65519.99,
      65519.99999,
      1.0004882813,
      2 ** -24,
      2 ** -25,
      3 * 2 ** -26,
      1e-8,
      2 ** -14,
    ];
    for (let i = 0; i < 2000; i++) values.push((i - 1000) * 0.0123456, 2 ** ((i % 60) - 30) * (1 + i / 2048));
    for (const v of values) expect(numberToHalf(v), String(v)).toBe(toHalfBits(v));
    expect(numberToHalf(70000)).toBe(0x7c00);
  });
});

describe('the usage example', () => {
  it('is a request the server parses and an answer the client reads', () => {
    const datatype: OipDatatype = 'FP32';
    const { body, headers } = encodeInferRequest({
      inputs: [{ name: 'features', datatype, shape: [1, 4], data: new Float32Array([5.1, 3.5, 1.4, 0.2]) }],
      binaryOutputs: true,
    });
    const headerLength = Number(headers[INFERENCE_HEADER_CONTENT_LENGTH]);
    const { request } = parseBinaryRequest(body, headerLength);
    expect(wantsBinaryOutput(request, 'probabilities')).toBe(true);
    expect(headers['Content-Type']).toBe('application/octet-stream');
  });
});

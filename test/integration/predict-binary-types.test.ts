/**
 * Every datatype through the predict handler in the binary tensor data extension: binary inputs and binary
 * outputs byte for byte, binary and JSON mixed in one request (inputs and outputs), BYTES with empty and
 * multi-byte UTF-8 elements, 64-bit integers beyond 2^53 exact, the raw form, data at every alignment, and
 * compressed bodies (gzip, deflate zlib and raw; a gzip JSON body).
 *
 * Expected bytes are written element by element with Buffer's little-endian writers, not taken from the codec.
 */
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import { buildModel } from '../../functions/local/onnx-builder';
import { apiEvent, parseResult } from '../helpers/apigw';
import { createPredictTestEnv, ELEM_OF, identityAllTypes, type PredictTestEnv } from '../helpers/predict-env';

type Datatype = keyof typeof ELEM_OF;
const DATATYPES = Object.keys(ELEM_OF) as Datatype[];

type Out = {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: { binary_data_size?: number };
};
type InferBody = { model_name: string; model_version: string; outputs: Out[] };

let env: PredictTestEnv;

beforeAll(async () => {
  env = await createPredictTestEnv();
  await env.register('ids', identityAllTypes());
  // One single-input identity model per datatype, for the raw form.
  for (const dt of DATATYPES) {
    await env.register(
      `id-${dt.toLowerCase()}`,
      buildModel({
        name: `id-${dt}`,
        inputs: [{ name: 'x', elemType: ELEM_OF[dt], shape: ['batch', 2] }],
        outputs: [{ name: 'y', elemType: ELEM_OF[dt], shape: ['batch', 2] }],
        nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
      }),
    );
  }
  // Raw-form shapes: one BYTES element per row, and a [batch, length] sequence.
  for (const [name, dt, shape] of [
    ['text', 'BYTES', ['batch']],
    ['sequence', 'INT64', ['batch', 'length']],
  ] as const) {
    await env.register(
      name,
      buildModel({
        name,
        inputs: [{ name: 'x', elemType: ELEM_OF[dt], shape: [...shape] }],
        outputs: [{ name: 'y', elemType: ELEM_OF[dt], shape: [...shape] }],
        nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
      }),
    );
  }
}, 120_000);
afterAll(async () => {
  await env?.dispose();
});

/** 2^-24, the smallest FP16 subnormal. */
const HALF_MIN = 2 ** -24;

/** Four values `[2, 2]` per datatype, the extremes of each range included. */
const VALUES: Record<Datatype, readonly (number | bigint | boolean | string)[]> = {
  BOOL: [true, false, false, true],
  UINT8: [0, 255, 7, 128],
  UINT16: [0, 65535, 1, 300],
  UINT32: [0, 4294967295, 1, 123456789],
  UINT64: [0n, 18446744073709551615n, 9007199254740993n, 12345678901234567890n],
  INT8: [-128, 127, 0, -1],
  INT16: [-32768, 32767, 0, -2],
  INT32: [-2147483648, 2147483647, 0, -3],
  INT64: [-9223372036854775808n, 9223372036854775807n, 9007199254740993n, -9007199254740993n],
  // Half bit patterns: 1, -2, 65504 (the largest finite half), 2^-24 (the smallest subnormal).
  FP16: [0x3c00, 0xc000, 0x7bff, 0x0001],
  FP32: [1.5, -2.75, Math.fround(1e-40), Math.fround(3.4e38)],
  FP64: [Math.PI, -1e308, 5e-324, 2 ** 60],
  BYTES: ['', 'h\u00e9llo', '\u65e5\u672c\u8a9e', '\u{1f642}'],
};

const SIZE: Record<Exclude<Datatype, 'BYTES'>, number> = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  FP16: 2,
  UINT32: 4,
  INT32: 4,
  FP32: 4,
  UINT64: 8,
  INT64: 8,
  FP64: 8,
};

/** The binary data of `values` of `dt`, written element by element (little-endian). */
function binaryOf(dt: Datatype, values: readonly (number | bigint | boolean | string)[]): Buffer {
  if (dt === 'BYTES') {
    return Buffer.concat(
      values.map((v) => {
        const b = Buffer.from(v as string, 'utf8');
        const n = Buffer.alloc(4);
        n.writeUInt32LE(b.length);
        return Buffer.concat([n, b]);
      }),
    );
  }
  const size = SIZE[dt];
  const out = Buffer.alloc(values.length * size);
  values.forEach((v, i) => {
    const at = i * size;
    switch (dt) {
      case 'BOOL':
        out.writeUInt8(v ? 1 : 0, at);
        break;
      case 'UINT8':
        out.writeUInt8(v as number, at);
        break;
      case 'INT8':
        out.writeInt8(v as number, at);
        break;
      case 'UINT16':
      case 'FP16':
        out.writeUInt16LE(v as number, at);
        break;
      case 'INT16':
        out.writeInt16LE(v as number, at);
        break;
      case 'UINT32':
        out.writeUInt32LE(v as number, at);
        break;
      case 'INT32':
        out.writeInt32LE(v as number, at);
        break;
      case 'UINT64':
        out.writeBigUInt64LE(v as bigint, at);
        break;
      case 'INT64':
        out.writeBigInt64LE(v as bigint, at);
        break;
      case 'FP32':
        out.writeFloatLE(v as number, at);
        break;
      case 'FP64':
        out.writeDoubleLE(v as number, at);
        break;
    }
  });
  return out;
}

/** A half's value from its bits (sign, 5-bit exponent, 10-bit fraction). */
function halfValue(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * HALF_MIN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The JSON literals of `values` (64-bit integers as exact decimal literals); FP16 has no JSON input form. */
function jsonLiterals(values: readonly (number | bigint | boolean | string)[]): string {
  return `[${values.map((v) => (typeof v === 'bigint' ? v.toString() : JSON.stringify(v))).join(',')}]`;
}

/** The values a JSON answer carries: 64-bit integers beyond 2^53 as decimal strings, FP16 as numbers. */
function jsonAnswerOf(dt: Datatype): unknown[] {
  return VALUES[dt].map((v) => {
    if (typeof v === 'bigint')
      return v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n ? Number(v) : v.toString();
    if (dt === 'FP16') return halfValue(v as number);
    return v;
  });
}

/** One input of the identity model, `[2, 2]`, as JSON header text: binary (with its size) or JSON data. */
function inputText(dt: Datatype, binary: boolean): string {
  const head = `{"name":"x_${dt}","datatype":"${dt}","shape":[2,2]`;
  if (binary) return `${head},"parameters":{"binary_data_size":${binaryOf(dt, VALUES[dt]).length}}}`;
  return `${head},"data":${jsonLiterals(VALUES[dt])}}`;
}

/** A binary request to the identity model: every input, binary where `binaryIn(dt)`; `rest` JSON members. */
function identityRequest(
  binaryIn: (dt: Datatype) => boolean,
  rest = '',
  pad = 0,
): { body: Buffer; headerLength: number } {
  const inputs = DATATYPES.map((dt) => inputText(dt, binaryIn(dt))).join(',');
  const head = Buffer.from(`{"inputs":[${inputs}]${rest}}${' '.repeat(pad)}`, 'utf8');
  const data = DATATYPES.filter(binaryIn).map((dt) => binaryOf(dt, VALUES[dt]));
  return { body: Buffer.concat([head, ...data]), headerLength: head.length };
}

/** An API Gateway event carrying `body` base64-encoded, with `Inference-Header-Content-Length`. */
function binaryEvent(
  path: string,
  body: Buffer,
  headerLength: number,
  headers: Record<string, string> = {},
): HttpEvent {
  const event = apiEvent('POST', path, {
    headers: { 'Inference-Header-Content-Length': String(headerLength), ...headers },
  }) as HttpEvent & { body?: string; isBase64Encoded: boolean };
  event.body = body.toString('base64');
  event.isBase64Encoded = true;
  return event;
}

/** A binary answer, decoded by hand from the spec: the JSON header, then each binary output's bytes. */
function binaryAnswer(r: HttpResult): { header: InferBody; data: Map<string, Buffer> } {
  expect(r.statusCode, r.isBase64Encoded ? '' : String(r.body)).toBe(200);
  const headers = r.headers as Record<string, string>;
  expect(headers['content-type']).toBe('application/octet-stream');
  expect(r.isBase64Encoded).toBe(true);
  const body = Buffer.from(r.body as string, 'base64');
  const headerLength = Number(headers['inference-header-content-length']);
  const header = JSON.parse(body.subarray(0, headerLength).toString('utf8')) as InferBody;
  const data = new Map<string, Buffer>();
  let at = headerLength;
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    data.set(o.name, body.subarray(at, at + size));
    at += size;
  }
  expect(at).toBe(body.length);
  return { header, data };
}

/** Checks that every identity output came back binary, its bytes those sent. */
function expectAllBinaryEqual(a: { header: InferBody; data: Map<string, Buffer> }): void {
  expect(a.header.outputs.map((o) => o.name).sort()).toEqual(DATATYPES.map((dt) => `y_${dt}`).sort());
  for (const dt of DATATYPES) {
    const sent = binaryOf(dt, VALUES[dt]);
    const o = a.header.outputs.find((x) => x.name === `y_${dt}`);
    expect(o, dt).toEqual({
      name: `y_${dt}`,
      datatype: dt,
      shape: [2, 2],
      parameters: { binary_data_size: sent.length },
    });
    expect(a.data.get(`y_${dt}`)?.equals(sent), dt).toBe(true);
  }
}

describe('every datatype in binary, both ways', () => {
  it.each(DATATYPES)('round-trips %s as binary input and binary output, byte for byte', async (dt) => {
    const { body, headerLength } = identityRequest(
      () => true,
      `,"outputs":[{"name":"y_${dt}","parameters":{"binary_data":true}}]`,
    );
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength)));
    const sent = binaryOf(dt, VALUES[dt]);
    expect(a.header.outputs).toEqual([
      { name: `y_${dt}`, datatype: dt, shape: [2, 2], parameters: { binary_data_size: sent.length } },
    ]);
    expect(a.data.get(`y_${dt}`)?.equals(sent)).toBe(true);
  });

  it('round-trips every datatype in one request (binary_data_output)', async () => {
    const { body, headerLength } = identityRequest(() => true, ',"parameters":{"binary_data_output":true}');
    expectAllBinaryEqual(
      binaryAnswer(await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength))),
    );
  });

  it.each([1, 2, 3, 4, 5, 6, 7])(
    'round-trips every datatype with its data %i bytes off the header alignment (views and copies)',
    async (pad) => {
      const { body, headerLength } = identityRequest(
        () => true,
        ',"parameters":{"binary_data_output":true}',
        pad,
      );
      expectAllBinaryEqual(
        binaryAnswer(await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength))),
      );
    },
  );

  it('answers each datatype in JSON from binary inputs, 64-bit integers beyond 2^53 as exact strings', async () => {
    const { body, headerLength } = identityRequest(() => true);
    const p = parseResult<InferBody>(
      await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength)),
    );
    expect(p.status).toBe(200);
    expect(p.headers['content-type']).toBe('application/json');
    for (const dt of DATATYPES) {
      const o = p.body.outputs.find((x) => x.name === `y_${dt}`);
      expect(o, dt).toEqual({ name: `y_${dt}`, datatype: dt, shape: [2, 2], data: jsonAnswerOf(dt) });
    }
    const int64 = p.body.outputs.find((x) => x.name === 'y_INT64')?.data;
    expect(int64?.slice(0, 3)).toEqual(['-9223372036854775808', '9223372036854775807', '9007199254740993']);
  });

  it('answers 64-bit integer JSON inputs beyond 2^53 in binary, exact', async () => {
    const { body, headerLength } = identityRequest(
      (dt) => dt !== 'INT64' && dt !== 'UINT64',
      ',"parameters":{"binary_data_output":true}',
    );
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength)));
    const int64 = a.data.get('y_INT64') as Buffer;
    const uint64 = a.data.get('y_UINT64') as Buffer;
    expect([0, 1, 2, 3].map((i) => int64.readBigInt64LE(i * 8))).toEqual(VALUES.INT64);
    expect([0, 1, 2, 3].map((i) => uint64.readBigUInt64LE(i * 8))).toEqual(VALUES.UINT64);
  });
});

describe('binary and JSON mixed in one request', () => {
  // FP16 is always binary here: its VALUES are half bit patterns, not the numbers a JSON input carries.
  const binaryIn = (dt: Datatype) => dt === 'FP16' || DATATYPES.indexOf(dt) % 2 === 0;
  // Pairs of outputs alternate, so that each of the four combinations (binary or JSON in, binary or JSON out) occurs.
  const binaryOut = (dt: Datatype) => Math.floor(DATATYPES.indexOf(dt) / 2) % 2 === 0;

  it('takes half the inputs binary and half JSON, and answers half the outputs binary and half JSON', async () => {
    const outputs = DATATYPES.map(
      (dt) => `{"name":"y_${dt}"${binaryOut(dt) ? ',"parameters":{"binary_data":true}' : ''}}`,
    ).join(',');
    const { body, headerLength } = identityRequest(binaryIn, `,"outputs":[${outputs}]`);
    const combos = new Set(DATATYPES.map((dt) => `${binaryIn(dt)}/${binaryOut(dt)}`));
    expect(combos.size).toBe(4);
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength)));
    expect(a.header.outputs.map((o) => o.name)).toEqual(DATATYPES.map((dt) => `y_${dt}`));
    for (const dt of DATATYPES) {
      const o = a.header.outputs.find((x) => x.name === `y_${dt}`);
      if (binaryOut(dt)) {
        const sent = binaryOf(dt, VALUES[dt]);
        expect(o?.parameters, dt).toEqual({ binary_data_size: sent.length });
        expect(o?.data, dt).toBeUndefined();
        expect(a.data.get(`y_${dt}`)?.equals(sent), dt).toBe(true);
      } else {
        expect(o, dt).toEqual({ name: `y_${dt}`, datatype: dt, shape: [2, 2], data: jsonAnswerOf(dt) });
      }
    }
  });

  it('answers binary outputs by binary_data_output except those an output turns off', async () => {
    const { body, headerLength } = identityRequest(
      binaryIn,
      ',"outputs":[{"name":"y_BYTES","parameters":{"binary_data":false}},{"name":"y_INT64"}],"parameters":{"binary_data_output":true}',
    );
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength)));
    expect(a.header.outputs[0]).toEqual({
      name: 'y_BYTES',
      datatype: 'BYTES',
      shape: [2, 2],
      data: VALUES.BYTES,
    });
    expect(a.data.get('y_INT64')?.equals(binaryOf('INT64', VALUES.INT64))).toBe(true);
  });
});

describe('FP16 given as JSON data in a binary request', () => {
  // Numbers and their nearest halves (ties to even), worked out by hand as bit patterns.
  const numbers = [0.1, 1 / 3, -2.5, 65519];
  const halves = [0x2e66, 0x3555, 0xc100, 0x7bff];
  const fp16Json = `{"name":"x_FP16","datatype":"FP16","shape":[2,2],"data":${JSON.stringify(numbers)}}`;
  /** Every input binary but FP16, which is JSON `data`. */
  function request(rest: string): { body: Buffer; headerLength: number } {
    const inputs = DATATYPES.map((dt) => (dt === 'FP16' ? fp16Json : inputText(dt, true))).join(',');
    const head = Buffer.from(`{"inputs":[${inputs}]${rest}}`, 'utf8');
    const data = DATATYPES.filter((dt) => dt !== 'FP16').map((dt) => binaryOf(dt, VALUES[dt]));
    return { body: Buffer.concat([head, ...data]), headerLength: head.length };
  }

  it('is accepted and rounded to the nearest halves, as in a JSON request', async () => {
    const { body, headerLength } = request(
      ',"outputs":[{"name":"y_FP16","parameters":{"binary_data":true}}]',
    );
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength)));
    expect(a.header.outputs).toEqual([
      { name: 'y_FP16', datatype: 'FP16', shape: [2, 2], parameters: { binary_data_size: 8 } },
    ]);
    const y = a.data.get('y_FP16') as Buffer;
    expect([0, 1, 2, 3].map((i) => y.readUInt16LE(i * 2))).toEqual(halves);
  });

  it('answers the same values in JSON as a JSON request with the same FP16 data', async () => {
    const { body, headerLength } = request(',"outputs":[{"name":"y_FP16"}]');
    const p = parseResult<InferBody>(
      await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength)),
    );
    expect(p.status).toBe(200);
    expect(p.body.outputs).toEqual([
      { name: 'y_FP16', datatype: 'FP16', shape: [2, 2], data: halves.map(halfValue) },
    ]);
    const json = Buffer.from(
      `{"inputs":[${DATATYPES.map((dt) => (dt === 'FP16' ? fp16Json : inputText(dt, false))).join(',')}],"outputs":[{"name":"y_FP16"}]}`,
    );
    const asJson = await env.handler(
      apiEvent('POST', '/v2/models/ids/infer', { body: json.toString('utf8') }),
    );
    const j = parseResult<InferBody>(asJson);
    expect(j.status).toBe(200);
    expect(j.body.outputs).toEqual(p.body.outputs);
  });
});

describe('BYTES elements', () => {
  it.each([
    ['only empty elements', ['', '', '', '']],
    ['4-byte, 3-byte and 2-byte UTF-8 characters', ['\u{1f600}\u{1f601}', '\u20ac', '\u00ff\u00e9', 'a']],
    ['a long element', ['x'.repeat(70_000), '', '\u00e9'.repeat(1000), 'end']],
  ])('round-trips %s in binary', async (_what, strings) => {
    const bytes = binaryOf('BYTES', strings);
    const inputs = DATATYPES.map((dt) =>
      dt === 'BYTES'
        ? `{"name":"x_BYTES","datatype":"BYTES","shape":[2,2],"parameters":{"binary_data_size":${bytes.length}}}`
        : inputText(dt, true),
    ).join(',');
    const head = Buffer.from(
      `{"inputs":[${inputs}],"outputs":[{"name":"y_BYTES","parameters":{"binary_data":true}},{"name":"y_FP32"}]}`,
    );
    const data = DATATYPES.map((dt) => (dt === 'BYTES' ? bytes : binaryOf(dt, VALUES[dt])));
    const a = binaryAnswer(
      await env.handler(binaryEvent('/v2/models/ids/infer', Buffer.concat([head, ...data]), head.length)),
    );
    expect(a.data.get('y_BYTES')?.equals(bytes)).toBe(true);
    expect(a.header.outputs[1]?.data).toEqual(VALUES.FP32);
  });
});

describe('the raw form (Inference-Header-Content-Length: 0)', () => {
  const fixedSize = DATATYPES.filter((dt) => dt !== 'BYTES');
  it.each(fixedSize)('takes a raw %s body as the only input, its batch from the data', async (dt) => {
    const sent = binaryOf(dt, VALUES[dt]);
    // The raw form is answered in binary: the identity's output is the bytes sent.
    const a = binaryAnswer(
      await env.handler(binaryEvent(`/v2/models/id-${dt.toLowerCase()}/infer`, sent, 0)),
    );
    expect(a.header.outputs).toEqual([
      { name: 'y', datatype: dt, shape: [2, 2], parameters: { binary_data_size: sent.length } },
    ]);
    expect(a.data.get('y')?.equals(sent)).toBe(true);
  });

  it('takes a raw body of one row', async () => {
    const a = binaryAnswer(
      await env.handler(binaryEvent('/v2/models/id-int64/infer', binaryOf('INT64', [1n, -(2n ** 62n)]), 0)),
    );
    expect(a.header.outputs).toEqual([
      { name: 'y', datatype: 'INT64', shape: [1, 2], parameters: { binary_data_size: 16 } },
    ]);
    const y = a.data.get('y') as Buffer;
    expect([y.readBigInt64LE(0), y.readBigInt64LE(8)]).toEqual([1n, -(2n ** 62n)]);
  });

  it('takes a raw BYTES body as one element, its bytes as sent (no length prefix)', async () => {
    const text = Buffer.from('h\u00e9llo w\u00f6rld \u{1f642}', 'utf8');
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/text/infer', text, 0)));
    // The answer's BYTES output is binary data: the element's 4-byte length, then its bytes.
    expect(a.header.outputs).toEqual([
      { name: 'y', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 4 + text.length } },
    ]);
    expect(a.data.get('y')?.equals(binaryOf('BYTES', [text.toString('utf8')]))).toBe(true);
  });

  it('refuses a raw BYTES body for an input of more than one element', async () => {
    const r = await env.handler(binaryEvent('/v2/models/id-bytes/infer', binaryOf('BYTES', VALUES.BYTES), 0));
    expect(r.statusCode).toBe(400);
    expect(JSON.parse(r.body as string)).toMatchObject({ code: 'INVALID_BINARY_DATA' });
    expect(r.body).toContain('one element');
  });

  it('takes a raw body for a [batch, length] input as one row (batch 1), its length from the data', async () => {
    const ids = [101n, 2023n, 2003n, 1037n, 102n];
    const a = binaryAnswer(
      await env.handler(binaryEvent('/v2/models/sequence/infer', binaryOf('INT64', ids), 0)),
    );
    expect(a.header.outputs).toEqual([
      { name: 'y', datatype: 'INT64', shape: [1, 5], parameters: { binary_data_size: 40 } },
    ]);
    expect(a.data.get('y')?.equals(binaryOf('INT64', ids))).toBe(true);
  });
});

describe('compressed bodies', () => {
  const all = () => identityRequest(() => true, ',"parameters":{"binary_data_output":true}', 3);

  it.each([
    ['gzip', gzipSync],
    ['x-gzip', gzipSync],
    ['deflate', deflateSync],
    ['deflate', deflateRawSync],
    ['gzip, identity', gzipSync],
    ['GZIP', gzipSync],
  ] as const)('takes a binary body with Content-Encoding %s (%o)', async (coding, compress) => {
    const { body, headerLength } = all();
    const sent = compress(body);
    expect(sent.equals(body)).toBe(false);
    const a = binaryAnswer(
      await env.handler(
        binaryEvent('/v2/models/ids/infer', sent, headerLength, { 'content-encoding': coding }),
      ),
    );
    expectAllBinaryEqual(a);
  });

  it('takes a raw-form body compressed with gzip', async () => {
    const a = binaryAnswer(
      await env.handler(
        binaryEvent('/v2/models/id-fp64/infer', gzipSync(binaryOf('FP64', VALUES.FP64)), 0, {
          'content-encoding': 'gzip',
        }),
      ),
    );
    expect(a.header.outputs).toEqual([
      { name: 'y', datatype: 'FP64', shape: [2, 2], parameters: { binary_data_size: 32 } },
    ]);
    const y = a.data.get('y') as Buffer;
    expect([0, 1, 2, 3].map((i) => y.readDoubleLE(i * 8))).toEqual(VALUES.FP64);
  });

  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
  ] as const)('takes a JSON body with Content-Encoding %s', async (coding, compress) => {
    const json = Buffer.from(
      `{"inputs":[${DATATYPES.map((dt) => (dt === 'FP16' ? inputText(dt, false).replace(/"data":\[[^\]]*\]/, '"data":[1,-2,65504,0]') : inputText(dt, false))).join(',')}],"outputs":[{"name":"y_INT64"},{"name":"y_BYTES"},{"name":"y_FP16"}]}`,
    );
    const event = apiEvent('POST', '/v2/models/ids/infer', {
      headers: { 'content-encoding': coding, 'content-type': 'application/json' },
    }) as HttpEvent & { body?: string; isBase64Encoded: boolean };
    event.body = compress(json).toString('base64');
    event.isBase64Encoded = true;
    const p = parseResult<InferBody>(await env.handler(event));
    expect(p.status).toBe(200);
    expect(p.headers['content-type']).toBe('application/json');
    expect(p.body.outputs).toEqual([
      { name: 'y_INT64', datatype: 'INT64', shape: [2, 2], data: jsonAnswerOf('INT64') },
      { name: 'y_BYTES', datatype: 'BYTES', shape: [2, 2], data: VALUES.BYTES },
      { name: 'y_FP16', datatype: 'FP16', shape: [2, 2], data: [1, -2, 65504, 0] },
    ]);
  });
});

/**
 * Malformed requests of the binary tensor data extension through the predict handler (API Gateway payload 2.0,
 * base64 bodies) and once over real HTTP through the local server: each is answered 400 (413 when the size limit
 * is the reason, 415 for a content coding the server does not decode) with a JSON `{"error","code"}` and no stack
 * trace, and the model still answers a good request afterwards.
 */
import { request as httpRequest } from 'node:http';
import { deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { apiEvent, parseResult } from '../helpers/apigw';
import {
  addConstant,
  addTwoInputs,
  createPredictTestEnv,
  identityAllTypes,
  type PredictTestEnv,
} from '../helpers/predict-env';

let env: PredictTestEnv;

beforeAll(async () => {
  env = await createPredictTestEnv();
  await env.register('add', addConstant(1));
  await env.register('add-two', addTwoInputs());
  await env.register('ids', identityAllTypes());
});
afterAll(async () => {
  await env?.dispose();
});

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A binary body: `header` (an object, JSON-encoded, or JSON text as is), then `data` in order. */
function binaryBody(header: unknown, ...data: (ArrayBufferView | Buffer)[]): Body {
  const head = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  return { body: Buffer.concat([head, ...data.map((d) => bytesOf(d))]), headerLength: head.length };
}

interface Body {
  readonly body: Buffer;
  readonly headerLength: number | string;
  readonly headers?: Record<string, string>;
}

/** An API Gateway event carrying `body` base64-encoded, with `Inference-Header-Content-Length`. */
function binaryEvent(path: string, { body, headerLength, headers = {} }: Body): HttpEvent {
  const event = apiEvent('POST', path, {
    headers: { 'Inference-Header-Content-Length': String(headerLength), ...headers },
  }) as HttpEvent & { body?: string; isBase64Encoded: boolean };
  event.body = body.toString('base64');
  event.isBase64Encoded = true;
  return event;
}

/** BYTES elements: each a 4-byte little-endian length, then its bytes. */
function bytesElements(...elements: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    elements.map((e) => {
      const b = typeof e === 'string' ? Buffer.from(e, 'utf8') : e;
      const n = Buffer.alloc(4);
      n.writeUInt32LE(b.length);
      return Buffer.concat([n, b]);
    }),
  );
}

const X = new Float32Array([1.5, -2, 0.25, 4]);
const fp32Input = (size: unknown, shape: unknown = [2, 2], extra: Record<string, unknown> = {}) => ({
  inputs: [{ name: 'x', datatype: 'FP32', shape, parameters: { binary_data_size: size }, ...extra }],
});

/** One input `x_{dt}` of the identity model, binary, `[1, 2]`. */
const idInput = (dt: string, size: number, shape: unknown = [1, 2]) => ({
  inputs: [{ name: `x_${dt}`, datatype: dt, shape, parameters: { binary_data_size: size } }],
});

/** A header whose JSON ends with a string holding `é`, cut inside that character's two UTF-8 bytes. */
function headerCutInUtf8(): Body {
  const head = Buffer.from(JSON.stringify({ ...fp32Input(16), id: 'caf\u00e9' }), 'utf8');
  const cut = head.lastIndexOf(0xc3) + 1;
  return { body: Buffer.concat([head, bytesOf(X)]), headerLength: cut };
}

/** A gzip body of `n` zero bytes (a few kilobytes that inflate beyond the limit). */
const zeros = (n: number) => gzipSync(Buffer.alloc(n), { level: 9 });

type Case = readonly [what: string, model: string, body: () => Body, status: number, code: string];

const I = 'INVALID_BINARY_DATA';
const cases: readonly Case[] = [
  // Sizes that do not add up.
  ['binary_data_size shorter than the data sent', 'add', () => binaryBody(fp32Input(8, [1, 2]), X), 400, I],
  ['binary_data_size longer than the data sent', 'add', () => binaryBody(fp32Input(32, [4, 2]), X), 400, I],
  [
    'trailing bytes after the last input',
    'add',
    () => binaryBody(fp32Input(16), X, Buffer.from([1, 2, 3])),
    400,
    I,
  ],
  [
    'bytes after a header whose inputs are all JSON',
    'add',
    () =>
      binaryBody(
        { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] },
        Buffer.from([0]),
      ),
    400,
    I,
  ],
  ['an empty body after a header that declares data', 'add', () => binaryBody(fp32Input(16)), 400, I],
  // binary_data_size that is not a size.
  ['a negative binary_data_size', 'add', () => binaryBody(fp32Input(-16), X), 400, I],
  ['a fractional binary_data_size', 'add', () => binaryBody(fp32Input(15.5), X), 400, I],
  ['a string binary_data_size', 'add', () => binaryBody(fp32Input('16'), X), 400, I],
  ['a boolean binary_data_size', 'add', () => binaryBody(fp32Input(true), X), 400, I],
  ['a null binary_data_size', 'add', () => binaryBody(fp32Input(null), X), 400, I],
  [
    'a binary_data_size of 2^53 + 1 (not exact as a double)',
    'add',
    () =>
      binaryBody(
        JSON.stringify(fp32Input(16)).replace('"binary_data_size":16', '"binary_data_size":9007199254740993'),
        X,
      ),
    400,
    I,
  ],
  [
    'a binary_data_size of 2^64',
    'add',
    () =>
      binaryBody(
        JSON.stringify(fp32Input(16)).replace(
          '"binary_data_size":16',
          '"binary_data_size":18446744073709551616',
        ),
        X,
      ),
    400,
    I,
  ],
  ['a binary_data_size beyond the body', 'add', () => binaryBody(fp32Input(1_000_000), X), 400, I],
  // Inference-Header-Content-Length.
  ['a header length beyond the body', 'add', () => ({ body: bytesOf(X), headerLength: 17 }), 400, I],
  [
    'a header length of 0 for a model of several inputs',
    'add-two',
    () => ({ body: bytesOf(X), headerLength: 0 }),
    400,
    I,
  ],
  ['a header length that is not a number', 'add', () => ({ body: bytesOf(X), headerLength: 'abc' }), 400, I],
  ['a negative header length', 'add', () => ({ body: bytesOf(X), headerLength: '-1' }), 400, I],
  [
    'a header length with trailing junk',
    'add',
    () => ({ ...binaryBody(fp32Input(16), X), headerLength: '62abc' }),
    400,
    I,
  ],
  ['a header length in exponent form', 'add', () => ({ body: bytesOf(X), headerLength: '1e1' }), 400, I],
  ['a header length in hexadecimal', 'add', () => ({ body: bytesOf(X), headerLength: '0x10' }), 400, I],
  ['an empty header length', 'add', () => ({ body: bytesOf(X), headerLength: '' }), 400, I],
  ['two header lengths joined by a comma', 'add', () => ({ body: bytesOf(X), headerLength: '4,4' }), 400, I],
  [
    'a header length of 20 digits',
    'add',
    () => ({ body: bytesOf(X), headerLength: '99999999999999999999' }),
    400,
    I,
  ],
  // The header itself.
  ['a header that is not JSON', 'add', () => binaryBody('{"inputs": [', X), 400, 'MALFORMED_JSON'],
  ['a header that is a JSON array', 'add', () => binaryBody('[1,2]'), 400, 'INVALID_REQUEST'],
  ['a header that is a JSON string', 'add', () => binaryBody('"inputs"'), 400, 'INVALID_REQUEST'],
  ['a header that is JSON null', 'add', () => binaryBody('null'), 400, 'INVALID_REQUEST'],
  ['a header cut inside a UTF-8 character', 'add', headerCutInUtf8, 400, 'MALFORMED_JSON'],
  [
    'a header whose inputs is not an array',
    'add',
    () => binaryBody({ inputs: { x: 1 } }),
    400,
    'INVALID_REQUEST',
  ],
  [
    'a header whose binary_data_output is not a boolean',
    'add',
    () => binaryBody({ ...fp32Input(16), parameters: { binary_data_output: 'yes' } }, X),
    400,
    'INVALID_PARAMETERS',
  ],
  [
    'an output whose binary_data is not a boolean',
    'add',
    () => binaryBody({ ...fp32Input(16), outputs: [{ name: 'y', parameters: { binary_data: 1 } }] }, X),
    400,
    'INVALID_PARAMETERS',
  ],
  // BYTES.
  [
    'a truncated BYTES length prefix',
    'ids',
    () => {
      const data = Buffer.concat([bytesElements('a'), Buffer.from([1, 0])]);
      return binaryBody(idInput('BYTES', data.length), data);
    },
    400,
    I,
  ],
  [
    'a BYTES length beyond the data',
    'ids',
    () => {
      const data = Buffer.concat([bytesElements('a'), Buffer.from([200, 0, 0, 0]), Buffer.from('bc')]);
      return binaryBody(idInput('BYTES', data.length), data);
    },
    400,
    I,
  ],
  [
    'a BYTES length of 2^32 - 1',
    'ids',
    () => {
      const data = Buffer.concat([bytesElements('a'), Buffer.from([255, 255, 255, 255])]);
      return binaryBody(idInput('BYTES', data.length), data);
    },
    400,
    I,
  ],
  [
    'fewer BYTES elements than the shape gives',
    'ids',
    () => {
      const data = bytesElements('only one');
      return binaryBody(idInput('BYTES', data.length), data);
    },
    400,
    I,
  ],
  [
    'more BYTES elements than the shape gives',
    'ids',
    () => {
      const data = bytesElements('a', 'b', '');
      return binaryBody(idInput('BYTES', data.length), data);
    },
    400,
    I,
  ],
  [
    'a BYTES element that is not UTF-8',
    'ids',
    () => {
      const data = bytesElements('a', Buffer.from([0xff, 0xfe]));
      return binaryBody(idInput('BYTES', data.length), data);
    },
    400,
    I,
  ],
  [
    'a BYTES element holding U+0000',
    'ids',
    () => {
      const data = bytesElements('a', 'b\u0000c');
      return binaryBody(idInput('BYTES', data.length), data);
    },
    400,
    'NUL_IN_BYTES',
  ],
  // Sizes against shapes.
  [
    'a binary_data_size not matching shape × element size',
    'add',
    () => binaryBody(fp32Input(12, [1, 2]), X.subarray(0, 3)),
    400,
    I,
  ],
  [
    'INT64 data not a whole number of elements',
    'ids',
    () => binaryBody(idInput('INT64', 12), Buffer.alloc(12)),
    400,
    I,
  ],
  [
    'a shape whose element count overflows',
    'add',
    () => binaryBody(fp32Input(16, [2 ** 40, 2 ** 40]), X),
    400,
    I,
  ],
  // data and binary_data_size.
  [
    'both data and binary_data_size on one input',
    'add',
    () => binaryBody(fp32Input(16, [2, 2], { data: [1, 2, 3, 4] }), X),
    400,
    I,
  ],
  [
    'an input with neither data nor binary_data_size',
    'add',
    () => binaryBody({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2] }] }),
    400,
    'INVALID_DATA',
  ],
  // Element bytes.
  ['a BOOL byte of 2', 'ids', () => binaryBody(idInput('BOOL', 2), Buffer.from([1, 2])), 400, I],
  ['a BOOL byte of 255', 'ids', () => binaryBody(idInput('BOOL', 2), Buffer.from([255, 0])), 400, I],
  // Datatype and shape of a binary input.
  [
    'an unknown datatype',
    'add',
    () =>
      binaryBody(
        { inputs: [{ name: 'x', datatype: 'FP8', shape: [2, 2], parameters: { binary_data_size: 16 } }] },
        X,
      ),
    400,
    'INVALID_DATATYPE',
  ],
  [
    'a lower-case datatype',
    'add',
    () =>
      binaryBody(
        { inputs: [{ name: 'x', datatype: 'fp32', shape: [2, 2], parameters: { binary_data_size: 16 } }] },
        X,
      ),
    400,
    'INVALID_DATATYPE',
  ],
  [
    'a shape with a negative dimension',
    'add',
    () => binaryBody(fp32Input(16, [-1, 4]), X),
    400,
    'INVALID_SHAPE',
  ],
  [
    'a shape with a fractional dimension',
    'add',
    () => binaryBody(fp32Input(16, [2, 2.0001]), X),
    400,
    'INVALID_SHAPE',
  ],
  ['a shape that is not an array', 'add', () => binaryBody(fp32Input(16, '2,2'), X), 400, 'INVALID_SHAPE'],
  // The raw form.
  [
    'a raw body that is not a whole number of rows',
    'add',
    () => ({ body: bytesOf(X).subarray(0, 12), headerLength: 0 }),
    400,
    I,
  ],
  [
    'a raw body of an odd byte count for FP32',
    'add',
    () => ({ body: Buffer.alloc(7), headerLength: 0 }),
    400,
    I,
  ],
  ['an empty raw body', 'add', () => ({ body: Buffer.alloc(0), headerLength: 0 }), 400, I],
  // Content codings.
  [
    'a corrupt gzip body',
    'add',
    () => {
      const { body, headerLength } = binaryBody(fp32Input(16), X);
      const gz = gzipSync(body);
      gz[gz.length - 6] = (gz[gz.length - 6] ?? 0) ^ 0xff; // the CRC-32 no longer matches
      return { body: gz, headerLength, headers: { 'content-encoding': 'gzip' } };
    },
    400,
    'INVALID_CONTENT_ENCODING',
  ],
  [
    'a truncated gzip body',
    'add',
    () => {
      const { body, headerLength } = binaryBody(fp32Input(16), X);
      const gz = gzipSync(body);
      return { body: gz.subarray(0, gz.length - 10), headerLength, headers: { 'content-encoding': 'gzip' } };
    },
    400,
    'INVALID_CONTENT_ENCODING',
  ],
  [
    'a body that is not gzip at all',
    'add',
    () => ({ ...binaryBody(fp32Input(16), X), headers: { 'content-encoding': 'gzip' } }),
    400,
    'INVALID_CONTENT_ENCODING',
  ],
  [
    'a deflate body that is neither zlib nor raw deflate',
    'add',
    () => ({
      body: Buffer.from([0xff, 0xff, 0xff, 0xff]),
      headerLength: 0,
      headers: { 'content-encoding': 'deflate' },
    }),
    400,
    'INVALID_CONTENT_ENCODING',
  ],
  [
    'a gzip bomb that inflates beyond the limit',
    'add',
    () => ({
      body: zeros(LIMITS.maxBodyBytes + 1),
      headerLength: 0,
      headers: { 'content-encoding': 'gzip' },
    }),
    413,
    'PAYLOAD_TOO_LARGE',
  ],
  [
    'a deflate bomb that inflates beyond the limit',
    'add',
    () => ({
      body: deflateSync(Buffer.alloc(LIMITS.maxBodyBytes * 2), { level: 9 }),
      headerLength: 0,
      headers: { 'content-encoding': 'deflate' },
    }),
    413,
    'PAYLOAD_TOO_LARGE',
  ],
  [
    'a body beyond the limit as sent',
    'add',
    () => ({ body: Buffer.alloc(LIMITS.maxBodyBytes + 8), headerLength: 0 }),
    413,
    'PAYLOAD_TOO_LARGE',
  ],
  [
    'Content-Encoding br',
    'add',
    () => ({ ...binaryBody(fp32Input(16), X), headers: { 'content-encoding': 'br' } }),
    415,
    'UNSUPPORTED_CONTENT_ENCODING',
  ],
  [
    'Content-Encoding compress after gzip',
    'add',
    () => {
      const { body, headerLength } = binaryBody(fp32Input(16), X);
      return { body: gzipSync(body), headerLength, headers: { 'content-encoding': 'gzip, compress' } };
    },
    415,
    'UNSUPPORTED_CONTENT_ENCODING',
  ],
];

/** Every input of the identity model as JSON, `[1, 2]` (FP16 included: a plain JSON request takes it). */
const IDS_JSON = {
  inputs: [
    'BOOL',
    'UINT8',
    'UINT16',
    'UINT32',
    'UINT64',
    'INT8',
    'INT16',
    'INT32',
    'INT64',
    'FP16',
    'FP32',
    'FP64',
    'BYTES',
  ].map((dt) => ({
    name: `x_${dt}`,
    datatype: dt,
    shape: [1, 2],
    data: dt === 'BOOL' ? [true, false] : dt === 'BYTES' ? ['a', '\u00e9'] : [1, 2],
  })),
  outputs: [{ name: 'y_FP32' }, { name: 'y_BYTES' }],
};

/** A good request answered by the model of a case: nothing a malformed request did stays behind. */
async function expectGoodAnswer(model: string): Promise<void> {
  if (model === 'ids') {
    const r = await env.call<{ outputs: { data: unknown[] }[] }>('POST', '/v2/models/ids/infer', IDS_JSON);
    expect(r.status).toBe(200);
    expect(r.body.outputs.map((o) => o.data)).toEqual([
      [1, 2],
      ['a', '\u00e9'],
    ]);
    return;
  }
  const body =
    model === 'add-two'
      ? binaryBody(
          {
            inputs: [
              { name: 'a', datatype: 'FP32', shape: [4], parameters: { binary_data_size: 16 } },
              { name: 'b', datatype: 'FP32', shape: [4], data: [1, 1, 1, 1] },
            ],
          },
          X,
        )
      : binaryBody(fp32Input(16), X);
  const r = parseResult<{ outputs: { data: number[] }[] }>(
    await env.handler(binaryEvent(`/v2/models/${model}/infer`, body)),
  );
  expect(r.status).toBe(200);
  expect(r.body.outputs[0]?.data).toEqual([2.5, -1, 1.25, 5]);
}

function expectJsonError(r: HttpResult, status: number, code: string): void {
  const p = parseResult<Record<string, unknown>>(r);
  expect(p.status).toBe(status);
  expect(r.isBase64Encoded).toBeFalsy();
  expect(p.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(p.body).sort()).toEqual(['code', 'error']);
  expect(p.body.code).toBe(code);
  expect(p.body.error).toEqual(expect.any(String));
  expect(p.body.error as string).not.toMatch(/\n\s+at |\.ts:\d+|node_modules/);
  // Failed inferences carry an inference id like answered ones.
  expect(p.headers['x-maas-inference-id']).toMatch(/\S/);
}

describe('malformed binary requests through the predict handler', () => {
  it('covers at least 30 distinct malformed bodies', () => {
    expect(new Set(cases.map((c) => c[0])).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases)(
    'answers %s (model %s) with a JSON error, then a good request',
    async (_what, model, make, status, code) => {
      const r = await env.handler(binaryEvent(`/v2/models/${model}/infer`, make()));
      expectJsonError(r, status, code);
      await expectGoodAnswer(model);
    },
  );

  it('names a request that fails after its header is read by its own id, as a JSON request', async () => {
    const { body, headerLength } = binaryBody({ ...fp32Input(16, [4, 1]), id: 'bin-fails-1' }, X);
    const r = await env.handler(binaryEvent('/v2/models/add/infer', { body, headerLength }));
    expectJsonError(r, 400, 'SHAPE_MISMATCH');
    expect(parseResult(r).headers['x-maas-inference-id']).toBe('bin-fails-1');
  });

  it('names a request whose binary data is malformed by its own id when its header is JSON', async () => {
    // One byte more than the input's binary_data_size: the framing fails after the header parsed.
    const { body, headerLength } = binaryBody({ ...fp32Input(16), id: 'bin-framing-1' }, X, Uint8Array.of(0));
    const r = await env.handler(binaryEvent('/v2/models/add/infer', { body, headerLength }));
    expectJsonError(r, 400, 'INVALID_BINARY_DATA');
    expect(parseResult(r).headers['x-maas-inference-id']).toBe('bin-framing-1');
    // A header that is not JSON has no id to name it: a generated one.
    const broken = await env.handler(
      binaryEvent('/v2/models/add/infer', { body: Buffer.from('{"id":"bin-framing-2",'), headerLength: 22 }),
    );
    expectJsonError(broken, 400, 'MALFORMED_JSON');
    expect(parseResult(broken).headers['x-maas-inference-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('still answers good requests after every malformed one, in JSON and in binary', async () => {
    const json = await env.call<{ outputs: { data: number[] }[] }>('POST', '/v2/models/add/infer', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }],
    });
    expect(json.status).toBe(200);
    expect(json.body.outputs[0]?.data).toEqual([2, 3]);
    // A raw request is answered in binary: every output as binary data.
    const raw = await env.handler(binaryEvent('/v2/models/add/infer', { body: bytesOf(X), headerLength: 0 }));
    expect(raw.statusCode).toBe(200);
    const headers = raw.headers as Record<string, string>;
    expect(headers['content-type']).toBe('application/octet-stream');
    expect(raw.isBase64Encoded).toBe(true);
    const answer = Buffer.from(raw.body as string, 'base64');
    const headerLength = Number(headers['inference-header-content-length']);
    expect(Number.isInteger(headerLength)).toBe(true);
    const header = JSON.parse(answer.subarray(0, headerLength).toString('utf8')) as {
      outputs: {
        name: string;
        datatype: string;
        shape: number[];
        parameters?: { binary_data_size?: number };
      }[];
    };
    expect(header.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } },
    ]);
    expect(answer.length).toBe(headerLength + 16);
    const y = answer.subarray(headerLength);
    expect([0, 1, 2, 3].map((i) => y.readFloatLE(i * 4))).toEqual([2.5, -1, 1.25, 5]);
    const ready = await env.call('GET', '/v2/models/ids/ready');
    expect(ready.status).toBe(200);
  });
});

describe('compressed JSON requests through the predict handler', () => {
  /** A JSON inference request sent with `Content-Encoding: coding`, its bytes `body` base64-encoded. */
  function jsonEvent(body: Buffer, coding: string): HttpEvent {
    const event = apiEvent('POST', '/v2/models/add/infer', {
      headers: { 'content-type': 'application/json', 'content-encoding': coding },
    }) as HttpEvent & { body?: string; isBase64Encoded: boolean };
    event.body = body.toString('base64');
    event.isBase64Encoded = true;
    return event;
  }
  const request = Buffer.from(
    JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] }),
  );

  it.each([
    ['a gzip bomb', () => jsonEvent(zeros(LIMITS.maxBodyBytes + 1), 'gzip'), 413, 'PAYLOAD_TOO_LARGE'],
    [
      'a corrupt gzip body',
      () => jsonEvent(gzipSync(request).subarray(0, 12), 'gzip'),
      400,
      'INVALID_CONTENT_ENCODING',
    ],
    [
      'an uncompressed body sent as deflate',
      () => jsonEvent(request, 'deflate'),
      400,
      'INVALID_CONTENT_ENCODING',
    ],
    ['Content-Encoding br', () => jsonEvent(request, 'br'), 415, 'UNSUPPORTED_CONTENT_ENCODING'],
  ] as const)('answers %s with a JSON error', async (_what, make, status, code) => {
    expectJsonError(await env.handler(make()), status, code);
    const good = parseResult<{ outputs: { data: number[] }[] }>(
      await env.handler(jsonEvent(gzipSync(request), 'gzip')),
    );
    expect(good.status).toBe(200);
    expect(good.body.outputs[0]?.data).toEqual([2, 3]);
  });
});

describe('over HTTP through the local server', () => {
  let server: RunningLocalServer;
  beforeAll(async () => {
    server = await startLocalServer({ port: 0, handlers: { predict: env.handler }, actor: 'local:tester' });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** POSTs `body` with header names exactly as given (node:http keeps their case on the wire). */
  function post(path: string, headers: Record<string, string>, body: Buffer) {
    return new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>(
      (resolve, reject) => {
        const req = httpRequest(`${server.url}${path}`, { method: 'POST', headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      },
    );
  }

  it('takes Inference-Header-Content-Length in mixed case, and answers a malformed body 400 JSON', async () => {
    const { body, headerLength } = binaryBody(fp32Input(16), X);
    const good = await post(
      '/v2/models/add/infer',
      { 'InFeRence-Header-CONTENT-Length': String(headerLength) },
      body,
    );
    expect(good.status).toBe(200);
    expect(JSON.parse(good.body.toString('utf8')).outputs[0].data).toEqual([2.5, -1, 1.25, 5]);
    const bad = await post(
      '/v2/models/add/infer',
      { 'Inference-Header-Content-Length': String(headerLength) },
      Buffer.concat([body, Buffer.from([0])]),
    );
    expect(bad.status).toBe(400);
    expect(bad.headers['content-type']).toMatch(/^application\/json/);
    const err = JSON.parse(bad.body.toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(err).sort()).toEqual(['code', 'error']);
    expect(err.code).toBe('INVALID_BINARY_DATA');
  });

  it('refuses a binary body of a text Content-Type, which API Gateway would pass altered, and takes a binary one', async () => {
    // A tensor of bytes that are not UTF-8: as text they would arrive as U+FFFD.
    const { body, headerLength } = binaryBody(fp32Input(16), Float32Array.of(Number.NaN, -1, 0.5, 3));
    for (const type of ['application/json', 'text/plain', 'application/x-www-form-urlencoded']) {
      const refused = await post(
        '/v2/models/add/infer',
        { 'Inference-Header-Content-Length': String(headerLength), 'Content-Type': type },
        body,
      );
      expect(refused.status, type).toBe(400);
      const err = JSON.parse(refused.body.toString('utf8')) as Record<string, unknown>;
      expect(err).toEqual({
        error: expect.stringContaining('application/octet-stream'),
        code: 'INVALID_BINARY_DATA',
      });
    }
    const taken = await post(
      '/v2/models/add/infer',
      { 'Inference-Header-Content-Length': String(headerLength), 'Content-Type': 'application/octet-stream' },
      body,
    );
    expect(taken.status).toBe(200);
    expect(JSON.parse(taken.body.toString('utf8')).outputs[0].data).toEqual([null, 0, 1.5, 4]);
  });
});

/**
 * The binary tensor data extension on the sync predict path: binary requests (header + raw tensors, and the raw
 * form) and binary answers through the handler (API Gateway payload 2.0 base64 bodies both ways), and over real
 * HTTP through the local server.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import { buildMlp } from '../../functions/local/onnx-builder';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { apiEvent, parseResult } from '../helpers/apigw';
import { capturedTexts } from '../helpers/captured-texts';
import {
  addConstant,
  addTwoInputs,
  createPredictTestEnv,
  identityAllTypes,
  type PredictTestEnv,
} from '../helpers/predict-env';
import { afterAnswer, until } from '../helpers/until';

type Out = {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: { binary_data_size?: number };
};
type InferBody = { model_name: string; model_version: string; id?: string; outputs: Out[] };

let env: PredictTestEnv;

beforeAll(async () => {
  env = await createPredictTestEnv();
  await env.register('add', addConstant(1));
  await env.register('add-two', addTwoInputs());
  await env.register('classifier', buildMlp({ inFeatures: 4, layers: [8, 3], seed: 7 }), {
    postprocess: { softmax: true, argmax: true },
    labels: ['setosa', 'versicolor', 'virginica'],
  });
});
afterAll(async () => {
  await env?.dispose();
});

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A binary request body: the JSON header, then `data` in order. */
function binaryBody(header: unknown, ...data: ArrayBufferView[]): { body: Buffer; headerLength: number } {
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  return { body: Buffer.concat([head, ...data.map(bytesOf)]), headerLength: head.length };
}

/** An API Gateway event carrying `body` base64-encoded, with `Inference-Header-Content-Length: headerLength`. */
function binaryEvent(path: string, body: Buffer, headerLength: number | string): HttpEvent {
  const event = apiEvent('POST', path, {
    headers: { 'Inference-Header-Content-Length': String(headerLength) },
  }) as HttpEvent & { body?: string; isBase64Encoded: boolean };
  event.body = body.toString('base64');
  event.isBase64Encoded = true;
  return event;
}

/** A binary answer, decoded by hand from the spec: the JSON header, then each binary output's bytes. */
function decodeBinaryAnswer(
  body: Buffer,
  headerLength: number,
): { header: InferBody; data: Map<string, Buffer> } {
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

function binaryAnswer(r: HttpResult) {
  expect(r.statusCode).toBe(200);
  const headers = r.headers as Record<string, string>;
  expect(headers['content-type']).toBe('application/octet-stream');
  expect(r.isBase64Encoded).toBe(true);
  const headerLength = Number(headers['inference-header-content-length']);
  expect(Number.isInteger(headerLength)).toBe(true);
  return { headers, ...decodeBinaryAnswer(Buffer.from(r.body as string, 'base64'), headerLength) };
}

const floats = (b: Buffer): number[] =>
  Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));

/** BYTES elements: 4-byte little-endian length, then UTF-8. */
function bytesElements(b: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at < b.length; ) {
    const n = b.readUInt32LE(at);
    out.push(b.subarray(at + 4, at + 4 + n).toString('utf8'));
    at += 4 + n;
  }
  return out;
}

const X = new Float32Array([1.5, -2, 0.25, 4]);

describe('binary requests', () => {
  it('answers a binary request in JSON when no output is asked as binary', async () => {
    const { body, headerLength } = binaryBody(
      {
        id: 'bin-json-1',
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
      },
      X,
    );
    const r = await env.handler(binaryEvent('/v2/models/add/infer', body, headerLength));
    const p = parseResult<InferBody>(r);
    expect(p.status).toBe(200);
    expect(p.headers['content-type']).toBe('application/json');
    expect(r.isBase64Encoded).toBeFalsy();
    expect(p.headers['x-maas-inference-id']).toBe('bin-json-1');
    expect(p.headers['x-maas-route']).toBe('stable');
    expect(p.body).toEqual({
      model_name: 'add',
      model_version: '1',
      id: 'bin-json-1',
      outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 2], data: [2.5, -1, 1.25, 5] }],
    });
  });

  it('answers raw tensors when the request asks binary_data_output', async () => {
    const { body, headerLength } = binaryBody(
      {
        id: 'bin-bin-1',
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
        parameters: { binary_data_output: true },
      },
      X,
    );
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/add/infer', body, headerLength)));
    expect(a.header).toEqual({
      model_name: 'add',
      model_version: '1',
      id: 'bin-bin-1',
      outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
    });
    expect(floats(a.data.get('y') as Buffer)).toEqual([2.5, -1, 1.25, 5]);
    expect(a.headers['x-maas-inference-id']).toBe('bin-bin-1');
    expect(a.headers['x-maas-route']).toBe('stable');
  });

  it('takes one binary and one JSON input in one request', async () => {
    const { body, headerLength } = binaryBody(
      {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [3], parameters: { binary_data_size: 12 } },
          { name: 'b', datatype: 'FP32', shape: [3], data: [10, 20, 30] },
        ],
        outputs: [{ name: 'y', parameters: { binary_data: true } }],
      },
      new Float32Array([1, 2, 3]),
    );
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/add-two/infer', body, headerLength)));
    expect(a.header.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [3], parameters: { binary_data_size: 12 } },
    ]);
    expect(floats(a.data.get('y') as Buffer)).toEqual([11, 22, 33]);
  });

  it('takes the raw form (header length 0): the body is the only input, its batch from the data', async () => {
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/add/infer', bytesOf(X), 0)));
    expect(a.header.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } },
    ]);
    expect(floats(a.data.get('y') as Buffer)).toEqual([2.5, -1, 1.25, 5]);
  });

  it('answers a raw request to a post-processing model in binary: every output, labels as BYTES', async () => {
    const meta = await env.call<{ inputs: { name: string }[] }>('GET', '/v2/models/classifier');
    const rows = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3];
    const asJson = await env.call<InferBody>('POST', '/v2/models/classifier/infer', {
      inputs: [{ name: meta.body.inputs[0]!.name, datatype: 'FP32', shape: [2, 4], data: rows }],
    });
    expect(asJson.status).toBe(200);
    const raw = bytesOf(new Float32Array(rows));
    const a = binaryAnswer(await env.handler(binaryEvent('/v2/models/classifier/infer', raw, 0)));
    // The same outputs as the JSON answer, in the same order, each one as binary data.
    expect(a.header.outputs.map((o) => o.name)).toEqual(asJson.body.outputs.map((o) => o.name));
    expect(a.header.outputs.map((o) => o.name)).toContain('label');
    for (const [i, o] of a.header.outputs.entries()) {
      const j = asJson.body.outputs[i]!;
      expect(o).toEqual({
        name: j.name,
        datatype: j.datatype,
        shape: j.shape,
        parameters: { binary_data_size: (a.data.get(o.name) as Buffer).length },
      });
      expect(o.data).toBeUndefined();
      const bytes = a.data.get(o.name) as Buffer;
      if (o.datatype === 'BYTES') expect(bytesElements(bytes)).toEqual(j.data);
      else if (o.datatype === 'FP32') expect(floats(bytes)).toEqual(j.data);
      else if (o.datatype === 'INT64')
        expect([0, 1].map((k) => Number(bytes.readBigInt64LE(k * 8)))).toEqual(j.data!.map(Number));
      else if (o.datatype === 'INT32')
        expect([0, 1].map((k) => bytes.readInt32LE(k * 4))).toEqual(j.data!.map(Number));
      else expect.unreachable(`unexpected datatype ${o.datatype}`);
    }
    const label = a.header.outputs.find((o) => o.name === 'label')!;
    expect(label.datatype).toBe('BYTES');
    const labels = bytesElements(a.data.get('label') as Buffer);
    expect(labels).toHaveLength(2);
    expect(labels.every((l) => ['setosa', 'versicolor', 'virginica'].includes(l))).toBe(true);
  });

  it('validates a binary input against the signature like a JSON one', async () => {
    const { body, headerLength } = binaryBody(
      { inputs: [{ name: 'x', datatype: 'FP64', shape: [1, 2], parameters: { binary_data_size: 16 } }] },
      new Float64Array([1, 2]),
    );
    const p = parseResult<{ error: string; code: string }>(
      await env.handler(binaryEvent('/v2/models/add/infer', body, headerLength)),
    );
    expect(p.status).toBe(400);
    expect(p.body.error).toMatch(/FP64|FP32|datatype/);
  });
});

describe('a client sending the same header again', () => {
  it('is answered from each request’s own tensors by the version the alias serves, or refused as that version refuses it', async () => {
    await env.register('moving', addConstant(1));
    const header = {
      id: 'same-header',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } }],
      parameters: { binary_data_output: true },
    };
    const send = (values: number[]) => {
      const { body, headerLength } = binaryBody(header, new Float32Array(values));
      return env.handler(binaryEvent('/v2/models/moving/infer', body, headerLength));
    };
    const answered = async (values: number[]) => {
      const a = binaryAnswer(await send(values));
      return { version: a.header.model_version, id: a.header.id, y: floats(a.data.get('y') as Buffer) };
    };
    expect(await answered([1, 2])).toEqual({ version: '1', id: 'same-header', y: [2, 3] });
    expect(await answered([5, -5])).toEqual({ version: '1', id: 'same-header', y: [6, -4] });
    // Kept after two: the third is decoded from the kept header.
    expect(await answered([0.5, 0])).toEqual({ version: '1', id: 'same-header', y: [1.5, 1] });

    // The alias moves to a version of the same signature: its answers, its version in the answer's header.
    await env.register('moving', addConstant(10));
    await env.moveAlias('moving', 'prod', 2);
    env.now += 6000;
    expect(await answered([1, 2])).toEqual({ version: '2', id: 'same-header', y: [11, 12] });

    // To a version whose input has another name: refused as a first request of that header would be.
    await env.register('moving', identityAllTypes());
    await env.moveAlias('moving', 'prod', 3);
    env.now += 6000;
    for (const values of [
      [1, 2],
      [3, 4],
    ]) {
      const p = parseResult<{ error: string; code: string }>(await send(values));
      expect(p.status).toBe(400);
      expect(p.body.code).toBe('UNKNOWN_INPUT');
    }

    await env.moveAlias('moving', 'prod', 1);
    env.now += 6000;
    expect(await answered([7, 8])).toEqual({ version: '1', id: 'same-header', y: [8, 9] });
  });
});

describe('a client sending a new id with each request (as KServe’s client does)', () => {
  it('is answered from each request’s own tensors, each answer with its own id', async () => {
    await env.register('ids', addConstant(3));
    const send = async (id: string, values: number[]) => {
      const header = {
        id,
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } }],
        parameters: { binary_data_output: true },
      };
      const { body, headerLength } = binaryBody(header, new Float32Array(values));
      const r = await env.handler(binaryEvent('/v2/models/ids/infer', body, headerLength));
      const a = binaryAnswer(r);
      return {
        id: a.header.id,
        header: r.headers?.['x-maas-inference-id'],
        y: floats(a.data.get('y') as Buffer),
      };
    };
    // From the third request on, decoded from the header kept at the second (other ids, the same header).
    for (let i = 0; i < 6; i++) {
      const id = randomUUID();
      expect(await send(id, [i, -i])).toEqual({ id, header: id, y: [i + 3, 3 - i] });
    }
  });
});

describe('binary answers of JSON requests', () => {
  it('answers raw tensors to a JSON request that asks binary_data_output', async () => {
    const r = await env.handler(
      apiEvent('POST', '/v2/models/add/infer', {
        body: {
          inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }],
          parameters: { binary_data_output: true },
        },
      }),
    );
    const a = binaryAnswer(r);
    expect(a.header.outputs[0]).toEqual({
      name: 'y',
      datatype: 'FP32',
      shape: [1, 2],
      parameters: { binary_data_size: 8 },
    });
    expect(floats(a.data.get('y') as Buffer)).toEqual([2, 3]);
  });

  it('answers JSON when every requested output says binary_data false', async () => {
    const p = await env.call<InferBody>('POST', '/v2/models/add/infer', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }],
      outputs: [{ name: 'y', parameters: { binary_data: false } }],
      parameters: { binary_data_output: true },
    });
    expect(p.status).toBe(200);
    expect(p.headers['content-type']).toBe('application/json');
    expect(p.body.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [1, 2], data: [2, 3] }]);
  });

  it('answers post-processing outputs in both forms: label as binary BYTES, softmax as JSON, same values', async () => {
    const inputs = [
      { name: 'input', datatype: 'FP32', shape: [2, 4], data: [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3] },
    ];
    const meta = await env.call<{ inputs: { name: string }[] }>('GET', '/v2/models/classifier');
    inputs[0]!.name = meta.body.inputs[0]!.name;
    const asJson = await env.call<InferBody>('POST', '/v2/models/classifier/infer', {
      inputs,
      outputs: [{ name: 'label' }, { name: 'softmax' }, { name: 'argmax' }],
    });
    expect(asJson.status).toBe(200);
    const r = await env.handler(
      apiEvent('POST', '/v2/models/classifier/infer', {
        body: {
          inputs,
          outputs: [
            { name: 'label', parameters: { binary_data: true } },
            { name: 'softmax' },
            { name: 'argmax', parameters: { binary_data: true } },
          ],
        },
      }),
    );
    const a = binaryAnswer(r);
    const [label, softmax, argmax] = a.header.outputs;
    expect(label).toEqual({ name: 'label', datatype: 'BYTES', shape: [2], parameters: expect.any(Object) });
    const labels = bytesElements(a.data.get('label') as Buffer);
    expect(labels).toEqual(asJson.body.outputs[0]!.data);
    expect(labels.every((l) => ['setosa', 'versicolor', 'virginica'].includes(l))).toBe(true);
    expect(softmax).toEqual(asJson.body.outputs[1]);
    expect(argmax?.datatype).toBe(asJson.body.outputs[2]!.datatype);
    const argBytes = a.data.get('argmax') as Buffer;
    const size = argBytes.length / 2;
    const args = [0, 1].map((i) =>
      Number(size === 8 ? argBytes.readBigInt64LE(i * 8) : argBytes.readInt32LE(i * 4)),
    );
    expect(args).toEqual(asJson.body.outputs[2]!.data!.map(Number));
  });
});

describe('malformed binary requests', () => {
  const cases: [string, Buffer, string | number][] = [
    [
      'sizes that do not add up to the body',
      binaryBody(
        { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } }] },
        X,
      ).body,
      binaryBody(
        { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } }] },
        X,
      ).headerLength,
    ],
    ['a header length that is not a number', bytesOf(X), 'abc'],
    ['a negative header length', bytesOf(X), '-1'],
    ['a fractional header length', bytesOf(X), '1.5'],
    ['a header length beyond the body', bytesOf(X), 1000],
  ];
  it.each(cases)('answers 400 INVALID_BINARY_DATA as JSON for %s', async (_what, body, headerLength) => {
    const r = await env.handler(binaryEvent('/v2/models/add/infer', body, headerLength));
    const p = parseResult<{ error: string; code: string }>(r);
    expect(p.status).toBe(400);
    expect(p.headers['content-type']).toMatch(/application\/json/);
    expect(p.body).toEqual({ error: expect.any(String), code: 'INVALID_BINARY_DATA' });
  });

  it('answers 400 MALFORMED_JSON for a header that is not JSON', async () => {
    const body = Buffer.from('{nope');
    const p = parseResult<{ error: string; code: string }>(
      await env.handler(binaryEvent('/v2/models/add/infer', body, body.length)),
    );
    expect(p.status).toBe(400);
    expect(p.body.code).toBe('MALFORMED_JSON');
  });
});

describe('answers larger than a synchronous answer holds', () => {
  it('refuses (400 RESPONSE_TOO_LARGE) a JSON answer Lambda could not return; the same answer in binary fits', async () => {
    // 200 000 rows of `0.1, 0.1`: a 1.6 MB request whose JSON answer (FP32 1.1 printed as 1.100000023841858) is
    // about 7.6 MB; in binary it is 1.6 MB (2.1 MB of base64).
    const rows = 200_000;
    const data = new Array(rows * 2).fill(0.1);
    const request = { inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 2], data }] };
    const json = parseResult<{ error: string; code: string }>(
      await env.handler(apiEvent('POST', '/v2/models/add/infer', { body: JSON.stringify(request) })),
    );
    expect(json.status).toBe(400);
    expect(json.body.code).toBe('RESPONSE_TOO_LARGE');
    expect(json.body.error).toMatch(/more than the \d+ a synchronous answer can hold.*infer-async/);
    const binary = binaryAnswer(
      await env.handler(
        apiEvent('POST', '/v2/models/add/infer', {
          body: JSON.stringify({ ...request, parameters: { binary_data_output: true } }),
        }),
      ),
    );
    expect(binary.data.get('y')?.length).toBe(rows * 2 * 4);
    expect(floats(binary.data.get('y') as Buffer).slice(0, 2)).toEqual([Math.fround(1.1), Math.fround(1.1)]);
  });

  it('refuses (400 RESPONSE_TOO_LARGE) a binary answer whose base64 would not fit', async () => {
    // 1.2 M floats: a 4.8 MB binary request whose 4.8 MB answer is 6.4 MB of base64.
    const x = new Float32Array(1_200_000).fill(2);
    const { body, headerLength } = binaryBody(
      {
        inputs: [
          {
            name: 'x',
            datatype: 'FP32',
            shape: [600_000, 2],
            parameters: { binary_data_size: x.byteLength },
          },
        ],
        parameters: { binary_data_output: true },
      },
      x,
    );
    const p = parseResult<{ error: string; code: string }>(
      await env.handler(binaryEvent('/v2/models/add/infer', body, headerLength)),
    );
    expect(p.status).toBe(400);
    expect(p.body.code).toBe('RESPONSE_TOO_LARGE');
  });
});

describe('server metadata', () => {
  it('lists binary_tensor_data among the extensions', async () => {
    const r = await env.call<{ extensions: string[] }>('GET', '/v2');
    expect(r.body.extensions).toContain('binary_tensor_data');
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

  it('passes a raw binary body (no content type) to the handler intact and writes a binary answer as bytes', async () => {
    const { body, headerLength } = binaryBody(
      {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
        parameters: { binary_data_output: true },
      },
      // Bytes that are not valid UTF-8: a text body would corrupt them.
      new Float32Array([Number.NaN, -0, 1e-40, 3.4e38]),
    );
    const res = await fetch(`${server.url}/v2/models/add/infer`, {
      method: 'POST',
      headers: { 'inference-header-content-length': String(headerLength) },
      body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const answer = Buffer.from(await res.arrayBuffer());
    const { header, data } = decodeBinaryAnswer(
      answer,
      Number(res.headers.get('inference-header-content-length')),
    );
    expect(header.outputs[0]?.shape).toEqual([2, 2]);
    expect(floats(data.get('y') as Buffer)).toEqual(
      Array.from(new Float32Array([Number.NaN, 1, 1, 3.4e38 + 1])),
    );
  });

  it('passes an application/octet-stream raw request too, and answers it in binary', async () => {
    const res = await fetch(`${server.url}/v2/models/add/infer`, {
      method: 'POST',
      headers: { 'inference-header-content-length': '0', 'content-type': 'application/octet-stream' },
      body: bytesOf(X),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const { header, data } = decodeBinaryAnswer(
      Buffer.from(await res.arrayBuffer()),
      Number(res.headers.get('inference-header-content-length')),
    );
    expect(header.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } },
    ]);
    expect(floats(data.get('y') as Buffer)).toEqual([2.5, -1, 1.25, 5]);
  });

  it('answers a binary request over HTTP in JSON when it asks nothing binary', async () => {
    const { body, headerLength } = binaryBody(
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }] },
      X,
    );
    const res = await fetch(`${server.url}/v2/models/add/infer`, {
      method: 'POST',
      headers: {
        'inference-header-content-length': String(headerLength),
        'content-type': 'application/octet-stream',
      },
      body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(((await res.json()) as InferBody).outputs[0]?.data).toEqual([2.5, -1, 1.25, 5]);
  });
});

describe('capture and reporting of binary exchanges', () => {
  let cenv: PredictTestEnv;
  const lines: string[] = [];
  const reports: { status: number; payloadBytes?: number }[] = [];
  const mirrored: unknown[] = [];
  beforeAll(async () => {
    cenv = await createPredictTestEnv({
      mirror: { mirror: (m) => void mirrored.push(m) },
      capture: { write: (_model: string, _version: number, line: string) => void lines.push(line) },
      metrics: {
        inference: (r: { status: number; payloadBytes?: number }) => void reports.push(r),
        operation: () => {},
      } as unknown as NonNullable<Parameters<typeof createPredictTestEnv>[0]>['metrics'],
    });
    await cenv.register('captured', addConstant(1));
    await cenv.repo.setAliasCapture('captured', 'prod', { samplePercent: 100, input: true, output: true });
    await cenv.register('shadowed', addConstant(1));
    await cenv.register('shadowed', addConstant(2));
    await cenv.repo.setAliasRouting({
      name: 'shadowed',
      alias: 'prod',
      routing: { shadow: { version: 2, percent: 100 } },
      actor: 'test',
    });
    await cenv.register('split', addConstant(1));
    await cenv.register('split', addConstant(2));
    await cenv.repo.setAliasRouting({
      name: 'split',
      alias: 'prod',
      routing: { canary: { version: 2, weight: 100 } },
      actor: 'test',
    });
  });
  afterAll(() => cenv?.dispose());
  /**
   * Waits until `done()` holds (a captured request's record and report, and a mirror, are made after the answer),
   * then one more turn: by then the requests answered so far have made all they would, and what must not be there
   * is not.
   */
  const madeAfterAnswers = async (done: () => boolean) => {
    await until(done);
    await afterAnswer();
  };

  it('reports binary exchanges like any other and captures them in their JSON form; a failed one is not captured', async () => {
    const { body, headerLength } = binaryBody(
      {
        id: 'cap-1',
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
        parameters: { binary_data_output: true },
      },
      X,
    );
    const answer = binaryAnswer(
      await cenv.handler(binaryEvent('/v2/models/captured/infer', body, headerLength)),
    );
    expect(floats(answer.data.get('y') as Buffer)).toEqual([2.5, -1, 1.25, 5]);
    // A JSON request answered in binary: the request as sent, the answer in its JSON form.
    const jsonAsked = {
      id: 'cap-2',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }],
      parameters: { binary_data_output: true },
    };
    binaryAnswer(await cenv.handler(apiEvent('POST', '/v2/models/captured/infer', { body: jsonAsked })));
    // The raw form (no header): its one input, answered binary.
    binaryAnswer(await cenv.handler(binaryEvent('/v2/models/captured/infer', bytesOf(X), 0)));
    // A failed binary request is reported, not captured.
    const bad = await cenv.handler(binaryEvent('/v2/models/captured/infer', bytesOf(X), 'x'));
    expect(bad.statusCode).toBe(400);
    await madeAfterAnswers(() => reports.length >= 4 && lines.length >= 3);
    // (A captured exchange is reported once its record is written: after the failed one.)
    expect(reports.map((r) => r.status).sort()).toEqual([200, 200, 200, 400]);
    const head = { model_name: 'captured', model_version: '1' };
    const texts = capturedTexts(lines);
    expect(texts).toHaveLength(3);
    expect(texts[0]).toEqual({
      request: { id: 'cap-1', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [...X] }] },
      response: {
        ...head,
        id: 'cap-1',
        outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 2], data: [2.5, -1, 1.25, 5] }],
      },
    });
    expect(texts[1]).toEqual({
      request: jsonAsked,
      response: {
        ...head,
        id: 'cap-2',
        outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: [2, 3] }],
      },
    });
    expect(texts[2]?.request).toEqual({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [...X] }],
    });
    expect(texts[2]?.response.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [2, 2], data: [2.5, -1, 1.25, 5] },
    ]);
    // The JSON form is what the same request in JSON gets captured as.
    const plain = await cenv.call('POST', '/v2/models/captured/infer', {
      id: 'cap-1',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [...X] }],
    });
    expect(plain.status).toBe(200);
    await madeAfterAnswers(() => reports.length >= 5 && lines.length >= 4);
    expect(lines).toHaveLength(4);
    expect(capturedTexts(lines)[3]).toEqual(texts[0]);
    expect(reports).toHaveLength(5);
  });

  it('mirrors a binary exchange to the alias shadow in its JSON form, as a JSON one', async () => {
    const { body, headerLength } = binaryBody(
      {
        id: 'mir-1',
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
        outputs: [{ name: 'y', parameters: { binary_data: true } }],
      },
      X,
    );
    const a = binaryAnswer(await cenv.handler(binaryEvent('/v2/models/shadowed/infer', body, headerLength)));
    expect(floats(a.data.get('y') as Buffer)).toEqual([2.5, -1, 1.25, 5]);
    await madeAfterAnswers(() => mirrored.length >= 1);
    expect(mirrored).toHaveLength(1);
    const m = mirrored[0] as {
      requestText: string;
      answerText: string;
      shadowVersion: number;
      inferenceId: string;
    };
    expect(m).toMatchObject({ shadowVersion: 2, inferenceId: 'mir-1' });
    expect(JSON.parse(m.requestText)).toEqual({
      id: 'mir-1',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [...X] }],
      outputs: [{ name: 'y' }],
    });
    expect(JSON.parse(m.answerText)).toEqual({
      model_name: 'shadowed',
      model_version: '1',
      id: 'mir-1',
      outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 2], data: [2.5, -1, 1.25, 5] }],
    });
    const plain = await cenv.call('POST', '/v2/models/shadowed/infer', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }],
    });
    expect(plain.status).toBe(200);
    await madeAfterAnswers(() => mirrored.length >= 2);
    expect(mirrored).toHaveLength(2);
  });

  it('routes binary requests, raw form included, through the split alias like JSON ones', async () => {
    const { body, headerLength } = binaryBody(
      {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
        parameters: { binary_data_output: true },
      },
      X,
    );
    const a = binaryAnswer(await cenv.handler(binaryEvent('/v2/models/split/infer', body, headerLength)));
    expect(a.headers['x-maas-route']).toBe('canary');
    expect(a.header.model_version).toBe('2');
    expect(floats(a.data.get('y') as Buffer)).toEqual([3.5, 0, 2.25, 6]);
    const raw = binaryAnswer(await cenv.handler(binaryEvent('/v2/models/split/infer', bytesOf(X), 0)));
    expect(raw.headers['x-maas-route']).toBe('canary');
    expect(raw.header.model_version).toBe('2');
    expect(floats(raw.data.get('y') as Buffer)).toEqual([3.5, 0, 2.25, 6]);
  });
});

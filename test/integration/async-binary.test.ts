/**
 * Async inference with binary tensor data, against DynamoDB Local + s3rver + onnxruntime-node and the in-process
 * queue: a binary request body is stored as it came (decoded from base64 and gzip), run by the worker on the
 * predictor's binary path, and answered by `GET /async/{id}` in JSON or, when outputs are asked binary, in the
 * binary form (the status document as JSON header, then the raw tensors). A malformed binary body is a 400 at
 * submit, with nothing stored or queued. Binary exchanges are reported, and captured in their JSON form, as JSON ones.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerVersion } from '../../functions/app/registry';
import { ASYNC_KEYS } from '../../functions/contract/events';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import { apiEvent, parseResult } from '../helpers/apigw';
import { capturedTexts } from '../helpers/captured-texts';
import { createEventsTestEnv, type EventsTestEnv } from '../helpers/events-env';
import { addConstant } from '../helpers/predict-env';
import { fetchResultLink } from '../helpers/result-link';

let env: EventsTestEnv;
const docs: object[] = [];
const captured: string[] = [];

beforeAll(async () => {
  env = await createEventsTestEnv(
    {},
    {
      metrics: { inference: (r) => void docs.push({ ...r }), operation: () => {} },
      capture: { write: (_model: string, _version: number, line: string) => void captured.push(line) },
    },
  );
  const registry = env.flows.registry;
  if (!registry) throw new Error('registry deps are not wired');
  await env.put('uploads/plus10/a.onnx', addConstant(10));
  await registerVersion(registry, { name: 'plus10', sourceKey: 'uploads/plus10/a.onnx' });
  await registry.repo.setAliasCapture('plus10', 'prod', { samplePercent: 100, input: true, output: true });
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

/** `POST …/infer-async` as API Gateway passes a body without Content-Type: base64, its headers as given. */
function submitEvent(path: string, body: Buffer, headers: Record<string, string>): HttpEvent {
  const event = apiEvent('POST', path, { headers }) as HttpEvent & {
    body?: string;
    isBase64Encoded: boolean;
  };
  event.body = body.toString('base64');
  event.isBase64Encoded = true;
  return event;
}

async function submit(path: string, body: Buffer, headers: Record<string, string>) {
  return parseResult<{ requestId?: string; code?: string; error?: string }>(
    await env.asyncApi(submitEvent(path, body, headers)),
  );
}

async function status(requestId: string): Promise<HttpResult> {
  return env.asyncApi(apiEvent('GET', `/async/${requestId}`));
}

const floats = (b: Buffer): number[] =>
  Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));

type Out = {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: Record<string, number>;
};

/** A binary `GET /async/{id}` answer, decoded by hand from the spec: the JSON header, then each binary output. */
function binaryStatus(r: HttpResult) {
  expect(r.statusCode).toBe(200);
  const headers = r.headers as Record<string, string>;
  expect(headers['content-type']).toBe('application/octet-stream');
  expect(r.isBase64Encoded).toBe(true);
  const headerLength = Number(headers['inference-header-content-length']);
  const body = Buffer.from(r.body as string, 'base64');
  const header = JSON.parse(body.subarray(0, headerLength).toString('utf8')) as {
    status: string;
    result: { model_name: string; model_version: string; id: string; outputs: Out[] };
  };
  const data = new Map<string, Buffer>();
  let at = headerLength;
  for (const o of header.result.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    data.set(o.name, body.subarray(at, at + size));
    at += size;
  }
  expect(at).toBe(body.length);
  return { header, data };
}

const X = new Float32Array([1.5, -2, 0.25, 4]);
const Y = [11.5, 8, 10.25, 14];
const inputX = { name: 'x', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } };

describe('async inference with binary tensor data', () => {
  it('stores a binary request as it came and answers JSON when no output is asked binary', async () => {
    captured.length = 0;
    docs.length = 0;
    const { body, headerLength } = binaryBody({ id: 'ab-json', inputs: [inputX] }, X);
    const accepted = await submit('/v2/models/plus10/infer-async', body, {
      'Inference-Header-Content-Length': String(headerLength),
    });
    expect(accepted.status).toBe(202);
    const id = accepted.body.requestId as string;
    const stored = await env.flows.asyncApi.blobs.get(ASYNC_KEYS.requestBody(id));
    expect(Buffer.from(stored as Uint8Array).equals(body)).toBe(true);
    const doc = JSON.parse((await env.getText(ASYNC_KEYS.request(id))) ?? '{}');
    expect(doc).toMatchObject({ name: 'plus10', ref: 'prod', binary: { headerLength } });
    expect(doc.request).toBeUndefined();

    await env.queue.drain();
    const done = parseResult(await status(id));
    expect(done).toMatchObject({ status: 200 });
    expect(done.body).toEqual({
      status: 'done',
      result: {
        model_name: 'plus10',
        model_version: '1',
        id: 'ab-json',
        outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 2], data: Y }],
      },
    });
    expect(await env.flows.asyncApi.blobs.head(ASYNC_KEYS.resultBody(id))).toBeUndefined();
    // Reported like any request, and captured in its JSON form (its alias captures every request).
    await new Promise((r) => setImmediate(r));
    expect(docs).toHaveLength(1);
    expect(capturedTexts(captured)).toEqual([
      {
        request: { id: 'ab-json', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [...X] }] },
        response: done.body.result,
      },
    ]);
  });

  it('a JSON request to the same alias is still captured', async () => {
    captured.length = 0;
    const accepted = await env.call<{ requestId: string }>('POST', '/v2/models/plus10/infer-async', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }],
    });
    expect(accepted.status).toBe(202);
    await env.queue.drain();
    await new Promise((r) => setImmediate(r));
    expect(captured).toHaveLength(1);
  });

  it('answers raw tensors in the binary form when binary_data_output is asked', async () => {
    captured.length = 0;
    const { body, headerLength } = binaryBody(
      { id: 'ab-bin', inputs: [inputX], parameters: { binary_data_output: true } },
      X,
    );
    const accepted = await submit('/v2/models/plus10/infer-async', body, {
      'inference-header-content-length': String(headerLength),
    });
    expect(accepted.status).toBe(202);
    const id = accepted.body.requestId as string;
    expect(parseResult(await status(id)).body).toEqual({ status: 'pending' });
    await env.queue.drain();
    const a = binaryStatus(await status(id));
    expect(a.header).toEqual({
      status: 'done',
      result: {
        model_name: 'plus10',
        model_version: '1',
        id: 'ab-bin',
        outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
      },
    });
    expect(floats(a.data.get('y') as Buffer)).toEqual(Y);
    // The stored answer is the predictor's encoding, as it was.
    const stored = Buffer.from((await env.flows.asyncApi.blobs.get(ASYNC_KEYS.resultBody(id))) as Uint8Array);
    expect(floats(stored.subarray(stored.length - 16))).toEqual(Y);
    await new Promise((r) => setImmediate(r));
    expect(capturedTexts(captured)).toEqual([
      {
        request: { id: 'ab-bin', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [...X] }] },
        response: {
          model_name: 'plus10',
          model_version: '1',
          id: 'ab-bin',
          outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 2], data: Y }],
        },
      },
    ]);
  });

  it('a JSON request asking a binary output is answered in the binary form too, and captured in the JSON form', async () => {
    captured.length = 0;
    const accepted = await env.call<{ requestId: string }>('POST', '/v2/models/plus10/infer-async', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }],
      outputs: [{ name: 'y', parameters: { binary_data: true } }],
    });
    expect(accepted.status).toBe(202);
    await env.queue.drain();
    const a = binaryStatus(await status(accepted.body.requestId));
    expect(a.header.result.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } },
    ]);
    expect(floats(a.data.get('y') as Buffer)).toEqual([11, 12]);
    await new Promise((r) => setImmediate(r));
    expect(capturedTexts(captured)).toEqual([
      {
        request: {
          // The JSON request as sent; its answer in the JSON form.
          inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }],
          outputs: [{ name: 'y', parameters: { binary_data: true } }],
        },
        response: expect.objectContaining({
          outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: [11, 12] }],
        }),
      },
    ]);
  });

  it('answers a binary result too large for a Lambda response as a presigned GET of the stored answer', async () => {
    // 1 250 000 FP32 values: 5 MB of tensor, 6.7 MB once base64 as the response would carry it.
    const n = 1_250_000;
    const body = `{"id":"big-bin","inputs":[{"name":"x","datatype":"FP32","shape":[${n / 2},2],"data":[${Array(n).fill('0').join(',')}]}],"parameters":{"binary_data_output":true}}`;
    const accepted = await env.call<{ requestId: string }>('POST', '/v2/models/plus10/infer-async', body);
    expect(accepted.status).toBe(202);
    await env.queue.drain();
    const id = accepted.body.requestId;
    const stored = Buffer.from((await env.flows.asyncApi.blobs.get(ASYNC_KEYS.resultBody(id))) as Uint8Array);

    const answer = await status(id);
    expect(answer.isBase64Encoded).not.toBe(true);
    const done = parseResult<{
      status: string;
      download: { url: string; expiresAt: string; headerLength: number };
    }>(answer);
    expect(done).toMatchObject({ status: 200, headers: { 'content-type': 'application/json' } });
    expect(done.body).toEqual({
      status: 'done',
      download: {
        url: expect.stringMatching(/X-Amz-Signature=/),
        expiresAt: expect.any(String),
        sizeBytes: stored.length,
        contentType: 'application/octet-stream',
        headerLength: expect.any(Number),
      },
    });
    const bytes = await fetchResultLink(done.body.download, 'application/octet-stream');
    expect(bytes.equals(stored)).toBe(true);
    // The object is the answer as /infer encodes it: its JSON header, then the tensor.
    const { headerLength } = done.body.download;
    const header = JSON.parse(bytes.subarray(0, headerLength).toString('utf8')) as {
      id: string;
      outputs: Out[];
    };
    expect(header).toMatchObject({
      id: 'big-bin',
      outputs: [{ name: 'y', datatype: 'FP32', shape: [n / 2, 2], parameters: { binary_data_size: n * 4 } }],
    });
    expect(bytes.length - headerLength).toBe(n * 4);
    expect(floats(bytes.subarray(headerLength)).every((v) => v === 10)).toBe(true);
  });

  it('runs the raw form (Inference-Header-Content-Length 0) on the model’s only input', async () => {
    const accepted = await submit('/v2/models/plus10/infer-async', bytesOf(X), {
      'Inference-Header-Content-Length': '0',
    });
    expect(accepted.status).toBe(202);
    await env.queue.drain();
    // A raw-form request asks for nothing, so its answer is binary, every output as binary data (as /infer).
    const done = binaryStatus(await status(accepted.body.requestId as string));
    expect(done.header.status).toBe('done');
    expect(done.header.result.outputs).toEqual([
      {
        name: 'y',
        datatype: 'FP32',
        shape: [2, 2],
        parameters: { binary_data_size: 16 },
      },
    ]);
    expect(floats(done.data.get('y') ?? Buffer.alloc(0))).toEqual(Y);
  });

  it('stores a gzip body decoded, and runs it', async () => {
    const { body, headerLength } = binaryBody(
      { inputs: [inputX], parameters: { binary_data_output: true } },
      X,
    );
    const accepted = await submit('/v2/models/plus10/infer-async', gzipSync(body), {
      'Inference-Header-Content-Length': String(headerLength),
      'Content-Encoding': 'gzip',
    });
    expect(accepted.status).toBe(202);
    const id = accepted.body.requestId as string;
    const stored = await env.flows.asyncApi.blobs.get(ASYNC_KEYS.requestBody(id));
    expect(Buffer.from(stored as Uint8Array).equals(body)).toBe(true);
    await env.queue.drain();
    expect(floats(binaryStatus(await status(id)).data.get('y') as Buffer)).toEqual(Y);
  });

  it('a binary request the model refuses is answered failed, like a JSON one', async () => {
    const { body, headerLength } = binaryBody({ inputs: [{ ...inputX, shape: [1, 4] }] }, X);
    const accepted = await submit('/v2/models/plus10/infer-async', body, {
      'Inference-Header-Content-Length': String(headerLength),
    });
    expect(accepted.status).toBe(202);
    await env.queue.drain();
    const failed = parseResult<{ status: string; error: string }>(
      await status(accepted.body.requestId as string),
    );
    expect(failed.body.status).toBe('failed');
    expect(failed.body.error).toMatch(/shape/);
  });

  it('refuses a malformed binary body, or JSON inputs of a mixed one whose data does not fit, with a 400 at once; nothing is stored or queued', async () => {
    const header = (h: unknown) => Buffer.from(JSON.stringify(h), 'utf8');
    const oneInput = header({ inputs: [inputX] });
    const outputFlag = header({
      inputs: [inputX],
      outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }],
    });
    const cases: { body: Buffer; headers: Record<string, string>; code: string }[] = [
      // sizes that do not add up to the body
      {
        body: Buffer.concat([oneInput, bytesOf(X).subarray(0, 12)]),
        headers: { 'inference-header-content-length': String(oneInput.length) },
        code: 'INVALID_BINARY_DATA',
      },
      // header length beyond the body
      {
        body: oneInput,
        headers: { 'inference-header-content-length': String(oneInput.length + 100) },
        code: 'INVALID_BINARY_DATA',
      },
      // not a number
      {
        body: oneInput,
        headers: { 'inference-header-content-length': 'twelve' },
        code: 'INVALID_BINARY_DATA',
      },
      // binary_data_size and data both
      {
        body: Buffer.concat([header({ inputs: [{ ...inputX, data: [1, 2, 3, 4] }] }), bytesOf(X)]),
        headers: {
          'inference-header-content-length': String(
            header({ inputs: [{ ...inputX, data: [1, 2, 3, 4] }] }).length,
          ),
        },
        code: 'INVALID_BINARY_DATA',
      },
      // the header is not JSON
      {
        body: Buffer.from('{"inputs": [', 'utf8'),
        headers: { 'inference-header-content-length': '12' },
        code: 'MALFORMED_JSON',
      },
      // gzip that is not
      {
        body: Buffer.concat([oneInput, bytesOf(X)]),
        headers: { 'inference-header-content-length': String(oneInput.length), 'content-encoding': 'gzip' },
        code: 'INVALID_CONTENT_ENCODING',
      },
      // an output's binary_data that is not a boolean: refused before anything runs, as the request's own flag
      {
        body: Buffer.concat([outputFlag, bytesOf(X)]),
        headers: { 'inference-header-content-length': String(outputFlag.length) },
        code: 'INVALID_PARAMETERS',
      },
      // a mixed request: a binary input, and a JSON input whose data does not fit its shape or its datatype
      ...(
        [
          [{ datatype: 'FP32', shape: [1, 3], data: [1, 2] }, 'DATA_LENGTH_MISMATCH'],
          [{ datatype: 'BOOL', shape: [2], data: [1, 0] }, 'INVALID_DATA'],
          [{ datatype: 'UINT8', shape: [1], data: [256] }, 'OUT_OF_RANGE'],
        ] as const
      ).map(([json, code]) => {
        const mixed = header({ inputs: [inputX, { name: 'z', ...json }] });
        return {
          body: Buffer.concat([mixed, bytesOf(X)]),
          headers: { 'inference-header-content-length': String(mixed.length) },
          code,
        };
      }),
      // an empty raw body: no data for the input
      {
        body: Buffer.alloc(0),
        headers: { 'inference-header-content-length': '0' },
        code: 'INVALID_BINARY_DATA',
      },
      // the same in a JSON request
      {
        body: header({
          inputs: [{ ...inputX, parameters: undefined, data: Array.from(X) }],
          outputs: [{ name: 'y', parameters: { binary_data: 1 } }],
        }),
        headers: { 'content-type': 'application/json' },
        code: 'INVALID_PARAMETERS',
      },
    ];
    const before = env.queue.stats.sent;
    const listBefore = await listAsync();
    for (const c of cases) {
      const r = await submit('/v2/models/plus10/infer-async', c.body, c.headers);
      expect(r.status, `${c.code} ${c.body.subarray(0, 200).toString()}`).toBe(400);
      expect(r.body.code).toBe(c.code);
      expect(r.body.requestId).toBeUndefined();
    }
    expect(env.queue.stats.sent).toBe(before);
    expect(await listAsync()).toEqual(listBefore);
  });
});

/** The keys under `async/` in the bucket. */
async function listAsync(): Promise<string[]> {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await env.aws.s3.send(
      new ListObjectsV2Command({ Bucket: env.aws.bucket, Prefix: 'async/', ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.NextContinuationToken;
  } while (token);
  return keys.sort();
}

/**
 * Async inference (issue 6.3) against DynamoDB Local + s3rver + onnxruntime-node with the in-process queue
 * (SQS semantics: visibility timeout, ReportBatchItemFailures, redrive to a DLQ after QUEUE.maxReceiveCount):
 * a request round trip, caller mistakes answered without retries, and a poison message dead-lettered while its
 * batch-mates succeed (successes + DLQ = sent).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerVersion } from '../../functions/app/registry';
import { ASYNC_KEYS, QUEUE } from '../../functions/contract/events';
import { LIMITS } from '../../functions/contract/limits';
import { apiEvent, parseResult } from '../helpers/apigw';
import { createEventsTestEnv, type EventsTestEnv } from '../helpers/events-env';
import { addConstant } from '../helpers/predict-env';
import { fetchResultLink } from '../helpers/result-link';

let env: EventsTestEnv;

const request = (a: number, b: number, id?: string) => ({
  ...(id ? { id } : {}),
  inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [a, b] }],
});

beforeAll(async () => {
  env = await createEventsTestEnv();
  const registry = env.flows.registry;
  if (!registry) throw new Error('registry deps are not wired');
  await env.put('uploads/plus10/a.onnx', addConstant(10));
  await registerVersion(registry, { name: 'plus10', sourceKey: 'uploads/plus10/a.onnx' });
  await env.put('uploads/plus10/b.onnx', addConstant(20));
  await registerVersion(registry, { name: 'plus10', sourceKey: 'uploads/plus10/b.onnx' });
});
afterAll(async () => {
  await env?.dispose();
});

describe('async inference', () => {
  it('accepts with 202 {requestId}, answers pending, then done with the OIP response', async () => {
    env.queue.detach();
    const accepted = await env.call<{ requestId: string }>(
      'POST',
      '/v2/models/plus10/infer-async',
      request(1, 2, 'a1'),
    );
    expect(accepted.status).toBe(202);
    expect(accepted.body.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const path = `/async/${accepted.body.requestId}`;
    expect(await env.call('GET', path)).toEqual({ status: 200, body: { status: 'pending' } });

    env.queue.attach(env.worker);
    await env.queue.drain();
    const done = await env.call('GET', path);
    expect(done).toEqual({
      status: 200,
      body: {
        status: 'done',
        result: {
          model_name: 'plus10',
          model_version: '1',
          id: 'a1',
          outputs: [{ name: 'y', shape: [1, 2], datatype: 'FP32', data: [11, 12] }],
        },
      },
    });
  });

  it('serves /versions/{ref} and keeps the request in S3', async () => {
    const accepted = await env.call<{ requestId: string }>(
      'POST',
      '/v2/models/plus10/versions/2/infer-async',
      request(1, 2),
    );
    await env.queue.drain();
    const done = await env.call<{ result: { model_version: string; outputs: { data: number[] }[] } }>(
      'GET',
      `/async/${accepted.body.requestId}`,
    );
    expect(done.body.result.model_version).toBe('2');
    expect(done.body.result.outputs[0]?.data).toEqual([21, 22]);
    const stored = JSON.parse((await env.getText(ASYNC_KEYS.request(accepted.body.requestId))) ?? '{}');
    expect(stored).toMatchObject({ name: 'plus10', ref: '2', request: request(1, 2) });
  });

  it('round-trips a large body (numbers the codec reads into typed arrays) through the queue', async () => {
    const rows = 5000;
    const data = Array.from({ length: rows * 2 }, (_, i) => i / 4);
    const big = { inputs: [{ name: 'x', shape: [rows, 2], datatype: 'FP32', data }] };
    expect(JSON.stringify(big).length).toBeGreaterThan(16 * 1024);
    const accepted = await env.call<{ requestId: string }>('POST', '/v2/models/plus10/infer-async', big);
    expect(accepted.status).toBe(202);
    await env.queue.drain();
    const done = await env.call<{
      status: string;
      result: { outputs: { shape: number[]; data: number[] }[] };
    }>('GET', `/async/${accepted.body.requestId}`);
    expect(done.body.status).toBe('done');
    expect(done.body.result.outputs[0]?.shape).toEqual([rows, 2]);
    expect(done.body.result.outputs[0]?.data).toEqual(data.map((v) => v + 10));
  });

  it('answers a result too large for a Lambda response as a presigned GET of the stored document', async () => {
    // 400 000 FP32 values: 0.1 is 4 bytes a value in the request, 10.100000381469727 19 in the result.
    const n = 400_000;
    const body = `{"id":"big","inputs":[{"name":"x","shape":[${n / 2},2],"datatype":"FP32","data":[${Array(n).fill('0.1').join(',')}]}]}`;
    const accepted = await env.call<{ requestId: string }>('POST', '/v2/models/plus10/infer-async', body);
    expect(accepted.status).toBe(202);
    await env.queue.drain();
    const id = accepted.body.requestId;
    const stored = (await env.flows.asyncApi.blobs.get(ASYNC_KEYS.result(id))) as Uint8Array;
    expect(stored.byteLength).toBeGreaterThan(LIMITS.maxResponseBytes);

    const answer = await env.asyncApi(apiEvent('GET', `/async/${id}`));
    expect(Buffer.byteLength(answer.body ?? '')).toBeLessThan(1024);
    const done = parseResult<{ status: string; download: { url: string; expiresAt: string } }>(answer);
    expect(done).toMatchObject({ status: 200, headers: { 'content-type': 'application/json' } });
    expect(done.body).toEqual({
      status: 'done',
      download: {
        url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/),
        expiresAt: expect.any(String),
        sizeBytes: stored.byteLength,
        contentType: 'application/json',
      },
    });
    const bytes = await fetchResultLink(done.body.download, 'application/json');
    expect(bytes.equals(stored)).toBe(true);
    const doc = JSON.parse(bytes.toString('utf8')) as {
      status: string;
      result: { id: string; outputs: { shape: number[]; data: number[] }[] };
    };
    expect(doc.status).toBe('done');
    expect(doc.result.id).toBe('big');
    expect(doc.result.outputs[0]?.shape).toEqual([n / 2, 2]);
    expect(doc.result.outputs[0]?.data.every((v) => v === Math.fround(10.1))).toBe(true);
  });

  it('keeps the numbers sent: -0 stays -0 in the stored request, in a small body and in a large one', async () => {
    for (const rows of [1, 5000]) {
      const data = Array.from({ length: rows * 2 }, (_, i) => (i % 2 === 0 ? -0 : i / 4));
      const body = `{"inputs":[{"name":"x","shape":[${rows},2],"datatype":"FP32","data":[${data.map((v) => (Object.is(v, -0) ? '-0' : String(v))).join(',')}]}]}`;
      const accepted = await env.call<{ requestId: string }>('POST', '/v2/models/plus10/infer-async', body);
      expect(accepted.status).toBe(202);
      const stored = JSON.parse((await env.getText(ASYNC_KEYS.request(accepted.body.requestId))) ?? '{}') as {
        request: { inputs: { data: number[] }[] };
      };
      const kept = stored.request.inputs[0]?.data ?? [];
      expect(kept).toHaveLength(data.length);
      expect(kept.every((v, i) => Object.is(v, data[i]))).toBe(true);
    }
    await env.queue.drain();
  });

  it('rejects malformed bodies with 400 and unknown or invalid ids with 404/400', async () => {
    const noInputs = await env.call('POST', '/v2/models/plus10/infer-async', { inputs: [] });
    expect(noInputs).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST' } });
    const notJson = await env.call('POST', '/v2/models/plus10/infer-async', '{"inputs": [');
    expect(notJson).toMatchObject({ status: 400, body: { code: 'MALFORMED_JSON' } });
    const unknown = await env.call('GET', '/async/00000000-0000-4000-8000-000000000000');
    expect(unknown).toMatchObject({ status: 404, body: { code: 'ASYNC_REQUEST_NOT_FOUND' } });
    const invalid = await env.call('GET', '/async/not-an-id');
    expect(invalid).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST_ID' } });
  });

  it('answers a request the model rejects as failed at once, without retries', async () => {
    const before = env.queue.stats;
    const unknownModel = await env.call<{ requestId: string }>(
      'POST',
      '/v2/models/nobody/infer-async',
      request(1, 2),
    );
    const badInput = await env.call<{ requestId: string }>('POST', '/v2/models/plus10/infer-async', {
      inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }],
    });
    await env.queue.drain();
    expect(await env.call('GET', `/async/${unknownModel.body.requestId}`)).toMatchObject({
      status: 200,
      body: { status: 'failed', code: 'MODEL_NOT_FOUND' },
    });
    const failed = await env.call<{ status: string; error: string }>(
      'GET',
      `/async/${badInput.body.requestId}`,
    );
    expect(failed.body.status).toBe('failed');
    expect(failed.body.error).toMatch(/shape/);
    expect(env.queue.stats.receives - before.receives).toBe(2);
    expect(env.queue.deadLetters).toHaveLength(0);
  });

  it('dead-letters a poison message after maxReceiveCount receives while its batch-mates succeed', async () => {
    env.queue.detach();
    const before = env.queue.stats;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await env.call<{ requestId: string }>('POST', '/v2/models/plus10/infer-async', request(i, i));
      ids.push(r.body.requestId);
    }
    // Poison 1: not a work message at all. Poison 2: a request document that cannot be read.
    const garbage = env.queue.sendRaw('{"type":"launch-rockets"}');
    const corrupt = ids[3] as string;
    await env.flows.asyncApi.blobs.put(ASYNC_KEYS.request(corrupt), 'not json');
    const sent = env.queue.stats.sent - before.sent;
    expect(sent).toBe(8);

    env.queue.attach(env.worker);
    await env.queue.drain();

    const after = env.queue.stats;
    const succeeded = after.deleted - before.deleted;
    const deadLettered = after.deadLettered - before.deadLettered;
    expect(succeeded).toBe(6);
    expect(deadLettered).toBe(2);
    expect(succeeded + deadLettered).toBe(sent);
    expect(env.queue.deadLetters.map((m) => m.messageId)).toContain(garbage);
    for (const m of env.queue.deadLetters) expect(m.receiveCount).toBe(QUEUE.maxReceiveCount);
    // First invocation: all 8 (6 succeed); then the 2 poison messages alone until they are dead-lettered.
    expect(after.invocations - before.invocations).toBe(QUEUE.maxReceiveCount);

    for (const [i, id] of ids.entries()) {
      const view = await env.call<{
        status: string;
        code?: string;
        result?: { outputs: { data: number[] }[] };
      }>('GET', `/async/${id}`);
      if (id === corrupt) {
        expect(view.body).toMatchObject({ status: 'failed', code: 'PROCESSING_FAILED' });
      } else {
        expect(view.body.status).toBe('done');
        expect(view.body.result?.outputs[0]?.data).toEqual([i + 10, i + 10]);
      }
    }
  });
});

/**
 * Async requests and batch parts are observed like sync inferences: one EMF document each (model, version, alias
 * dimension sets, BatchRows), and an async request is captured as its alias declares.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EmfMetricsSink } from '../../functions/adapters/emf-metrics';
import { registerVersion } from '../../functions/app/registry';
import { BATCH_KEYS } from '../../functions/contract/events';
import { ROUTING_KEY_HEADER } from '../../functions/contract/observability';
import { routeOf } from '../../functions/domain/routing';
import { apiEvent, parseResult } from '../helpers/apigw';
import { createEventsTestEnv, type EventsTestEnv } from '../helpers/events-env';
import { addConstant } from '../helpers/predict-env';

let env: EventsTestEnv;
const docs: Record<string, unknown>[] = [];
const lines: { model: string; version: number; line: string }[] = [];

beforeAll(async () => {
  env = await createEventsTestEnv(
    {},
    {
      metrics: new EmfMetricsSink({
        serviceName: 'maas-async-worker',
        output: (l) => docs.push(JSON.parse(l)),
      }),
      capture: { write: (model, version, line) => void lines.push({ model, version, line }) },
    },
  );
  const registry = env.flows.registry;
  if (!registry) throw new Error('registry deps are not wired');
  await env.put('uploads/plus10/a.onnx', addConstant(10));
  await registerVersion(registry, { name: 'plus10', sourceKey: 'uploads/plus10/a.onnx' });
  await registry.repo.setAliasCapture('plus10', 'prod', { samplePercent: 100, input: true, output: true });
});
afterAll(() => env?.dispose());

it('an async request is reported and captured, with its inference id', async () => {
  docs.length = 0;
  const accepted = await env.call<{ requestId: string }>('POST', '/v2/models/plus10/infer-async', {
    id: 'async-1',
    inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [1, 2] }],
  });
  expect(accepted.status).toBe(202);
  await env.queue.drain();
  await new Promise((r) => setImmediate(r));
  expect(docs).toHaveLength(1);
  expect(docs[0]).toMatchObject({
    model: 'plus10',
    version: '1',
    alias: 'prod',
    route: 'stable',
    status: '200',
    inferenceId: 'async-1',
    Requests: 1,
    BatchRows: 1,
  });
  expect(lines).toHaveLength(1);
  const record = JSON.parse(lines[0]!.line);
  expect(record).toMatchObject({ model: 'plus10', version: 1, alias: 'prod', status: 200 });
  expect(record.eventMetadata.inferenceId).toBe('async-1');
  expect(JSON.parse(record.captureData.endpointOutput.data)).toMatchObject({
    id: 'async-1',
    model_version: '1',
  });
  expect(JSON.parse(record.captureData.endpointInput.data).inputs[0].data).toEqual([1, 2]);
});

it('a failed async request is reported as a client error, and captured with its own id as a sync one is', async () => {
  docs.length = 0;
  lines.length = 0;
  await env.call('POST', '/v2/models/plus10/infer-async', {
    id: 'async-bad',
    inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }],
  });
  await env.queue.drain();
  await new Promise((r) => setImmediate(r));
  expect(docs).toHaveLength(1);
  expect(docs[0]).toMatchObject({
    model: 'plus10',
    version: '1',
    status: '400',
    ClientErrors: 1,
    inferenceId: 'async-bad',
  });
  expect(lines).toHaveLength(1);
  const record = JSON.parse(lines[0]!.line);
  expect(record).toMatchObject({ model: 'plus10', version: 1, status: 400 });
  expect(record.eventMetadata.inferenceId).toBe('async-bad');
});

it('a batch part is one request of its model version, its rows as BatchRows', async () => {
  docs.length = 0;
  const row = (a: number) =>
    JSON.stringify({ inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [a, a] }] });
  await env.put(BATCH_KEYS.job('obs-1'), JSON.stringify({ model: 'plus10' }));
  const event = await env.put(BATCH_KEYS.input('obs-1'), `${[row(1), row(2), row(3)].join('\n')}\n`);
  await env.s3Events(event);
  // The start queues the part; the worker scores it.
  await env.batchQueue.drain();
  const parts = docs.filter((d) => d.BatchRows !== undefined);
  expect(parts).toHaveLength(1);
  expect(parts[0]).toMatchObject({ model: 'plus10', version: '1', Requests: 1, BatchRows: 3, status: '200' });
  expect(JSON.parse((await env.getText(BATCH_KEYS.status('obs-1'))) ?? 'null')).toMatchObject({
    state: 'done',
    total: 3,
  });
});

it('an async request keeps its routing key: within a split alias, the same key gets the same version', async () => {
  const registry = env.flows.registry!;
  await env.put('uploads/plus10/c.onnx', addConstant(20));
  const v2 = await registerVersion(registry, { name: 'plus10', sourceKey: 'uploads/plus10/c.onnx' });
  await registry.repo.moveAlias({ name: 'plus10', alias: 'split', version: 1, actor: 't' });
  await registry.repo.setAliasRouting({
    name: 'plus10',
    alias: 'split',
    routing: { canary: { version: v2.version, weight: 50 } },
    actor: 't',
  });
  const keys = 'abcdefghijklmnop'.split('');
  const expected = keys.map((k) => (routeOf(50, k, 'plus10') === 'canary' ? String(v2.version) : '1'));
  expect(new Set(expected).size).toBe(2);
  const ids: string[] = [];
  for (const k of keys) {
    const r = parseResult(
      await env.asyncApi(
        apiEvent('POST', '/v2/models/plus10/versions/split/infer-async', {
          body: { inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] },
          headers: { [ROUTING_KEY_HEADER]: k },
        }),
      ),
    );
    expect(r.status).toBe(202);
    ids.push((r.body as { requestId: string }).requestId);
  }
  await env.queue.drain();
  const versions: string[] = [];
  for (const id of ids) {
    const done = await env.call<{ result: { model_version: string } }>('GET', `/async/${id}`);
    versions.push(done.body.result.model_version);
  }
  expect(versions).toEqual(expected);
});

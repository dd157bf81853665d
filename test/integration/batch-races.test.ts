/**
 * Races of batch jobs against DynamoDB Local + s3rver through the real handlers: a cancel while a continued part
 * scores a chunk (its segments must not outlive the job), and a part's status write that lands after the cancel
 * (status.json must end saying how the job ended).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BatchScoreDeps, runOfInput } from '../../functions/app/batch-score';
import { registerVersion } from '../../functions/app/registry';
import { BATCH_KEYS } from '../../functions/contract/events';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import { createS3EventsHandler } from '../../functions/handlers/s3-events';
import { InProcessQueue } from '../../functions/local/in-process-queue';
import { createEventsTestEnv, type EventsTestEnv } from '../helpers/events-env';
import { gate } from '../helpers/gate';
import { addConstant, addConstantRows } from '../helpers/predict-env';
import { silentLogger } from '../helpers/recording-logger';

let env: EventsTestEnv;
beforeAll(async () => {
  env = await createEventsTestEnv();
  await env.put('uploads/adder/a.onnx', addConstant(1));
  await registerVersion(env.flows.registry!, { name: 'adder', sourceKey: 'uploads/adder/a.onnx' });
});
afterAll(() => env?.dispose());
const rows = addConstantRows;

it('a cancel while a continued part scores its chunk leaves no segment behind', async () => {
  const queue = new InProcessQueue({ visibilityTimeoutMs: 5, batchSize: 1, invocationBudgetMs: 0 });
  const real = env.flows.batch.predictor;
  let calls = 0;
  const batch: BatchScoreDeps = {
    ...env.flows.batch,
    batchQueue: queue,
    predictor: {
      resolve: (...a) => real.resolve(...a),
      inferBatch: async (m, r, q) => {
        const out = await real.inferBatch(m, r, q);
        if (++calls === 1) await s3Events(await env.put(BATCH_KEYS.cancel('orphan'), ''));
        return out;
      },
    },
  };
  const flows = { ...env.flows, batch, logger: silentLogger };
  const s3Events = createS3EventsHandler(flows);
  queue.attach(createAsyncWorkerHandler(flows));
  await env.put(BATCH_KEYS.job('orphan'), JSON.stringify({ model: 'adder', maxConcurrency: 1 }));
  await s3Events(await env.put(BATCH_KEYS.input('orphan'), rows(2000)));
  await queue.drain();
  const st = JSON.parse((await env.getText(BATCH_KEYS.status('orphan')))!);
  expect(st.state).toBe('cancelled');
  expect(calls).toBeGreaterThanOrEqual(1);
  // The segment the part wrote before its continuation is removed by the continuation that finds the job ended.
  const left = await env.flows.batch.objects.list(BATCH_KEYS.segments('orphan', runOfInput(st.inputTag)));
  expect(left.map((o) => o.key)).toEqual([]);
});

it('a part’s running status written after the cancel does not stand: status.json says cancelled', async () => {
  const queue = new InProcessQueue({ visibilityTimeoutMs: 5, batchSize: 1 });
  const cancelled = gate();
  // The part's first status write comes after its count: once it waits, the part is counted.
  const counted = gate();
  const blobs = env.flows.batch.blobs;
  let n = 0;
  const batchS3 = { ...env.flows.batch, batchQueue: queue };
  const batchWorker: BatchScoreDeps = {
    ...batchS3,
    blobs: {
      get: (k) => blobs.get(k),
      head: (k) => blobs.head(k),
      delete: (k) => blobs.delete(k),
      put: async (k, b, c) => {
        if (k === BATCH_KEYS.status('regress') && ++n === 1) {
          counted.open();
          await cancelled.opened;
        }
        return blobs.put(k, b, c);
      },
    },
  };
  const s3Events = createS3EventsHandler({ ...env.flows, batch: batchS3, logger: silentLogger });
  const worker = createAsyncWorkerHandler({ ...env.flows, batch: batchWorker, logger: silentLogger });
  // What the cancel answered (an expect in the consumer would be swallowed: the queue redelivers on a throw).
  const cancels: unknown[] = [];
  queue.attach(async (e, c) => {
    const p = worker(e, c);
    // The cancel comes between the first part's count and its status write (held until then).
    await counted.opened;
    const [o] = await s3Events(await env.put(BATCH_KEYS.cancel('regress'), ''));
    cancels.push(o);
    cancelled.open();
    return p;
  });
  await env.put(BATCH_KEYS.job('regress'), JSON.stringify({ model: 'adder', maxConcurrency: 1 }));
  await s3Events(await env.put(BATCH_KEYS.input('regress'), rows(50)));
  await queue.drain();
  const st = JSON.parse((await env.getText(BATCH_KEYS.status('regress')))!);
  const job = await env.flows.batch.jobs.getJob('regress');
  expect(cancels[0]).toMatchObject({ kind: 'batch', state: 'cancelled' });
  // The part's running status, written after the cancel, is followed by the ended one.
  expect(job?.state).toBe('cancelled');
  expect(st.state).toBe('cancelled');
});

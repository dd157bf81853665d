/**
 * The flows of a batch job at scale against DynamoDB Local + s3rver + onnxruntime-node, through the real S3 events
 * handler and worker on in-process queues: several input files closed by `input/_SUCCESS`; parts delivered
 * duplicated and out of order by concurrent workers; a poison part that ends in the dead-letter queue and fails
 * the job; a cancel while parts remain (queued or running); and a job's `maxConcurrency` bounding the parts in
 * flight below what the queue would allow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_PART_FAILED, type BatchScoreDeps, runOfInput } from '../../functions/app/batch-score';
import { registerVersion } from '../../functions/app/registry';
import { BATCH, BATCH_KEYS, QUEUE } from '../../functions/contract/events';
import type { WorkMessage } from '../../functions/domain/async';
import type { BatchStatus } from '../../functions/domain/batch';
import { type BatchPlan, parsePlan } from '../../functions/domain/batch-partition';
import {
  type AsyncWorkerHandlerDeps,
  createAsyncWorkerHandler,
  DEAD_LETTER_REASON,
} from '../../functions/handlers/async-worker';
import { createS3EventsHandler } from '../../functions/handlers/s3-events';
import { InProcessQueue, type InProcessQueueOptions } from '../../functions/local/in-process-queue';
import type { BatchJobRepository, RangedObjects } from '../../functions/ports/batch';
import type { QueuePublisher } from '../../functions/ports/events';
import { createEventsTestEnv, type EventsTestEnv } from '../helpers/events-env';
import { addConstant } from '../helpers/predict-env';
import { type RecordedLine, recordingLogger } from '../helpers/recording-logger';

let env: EventsTestEnv;
const PART_BYTES = BATCH.minPartBytes;

beforeAll(async () => {
  env = await createEventsTestEnv();
  const registry = env.flows.registry;
  if (!registry) throw new Error('registry deps are not wired');
  await env.put('uploads/adder/a.onnx', addConstant(1));
  await registerVersion(registry, { name: 'adder', sourceKey: 'uploads/adder/a.onnx' });
});
afterAll(async () => {
  await env?.dispose();
});

/** `n` JSONL requests of the adder with ids `{tag}{i}`; every 97th row is malformed (an error line of its own). */
function rows(tag: string, n: number): string {
  let text = '';
  for (let i = 0; i < n; i++) {
    text +=
      i % 97 === 96
        ? `{"id": "${tag}${i}", "inputs": [\n`
        : `${JSON.stringify({ id: `${tag}${i}`, inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [i, -i] }] })}\n`;
  }
  return text;
}

/** `real` with some of its methods replaced (the others called on `real`). */
function overriding<T extends object>(real: T, over: Partial<T>): T {
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (prop in over) return over[prop as keyof T];
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A seeded shuffle (the same order on every run). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** A batch queue of its own, with the S3 events handler and the worker of the env's flows over it. */
interface Rig {
  readonly queue: InProcessQueue;
  readonly batch: BatchScoreDeps;
  readonly logs: RecordedLine[];
  readonly s3Events: ReturnType<typeof createS3EventsHandler>;
  readonly worker: ReturnType<typeof createAsyncWorkerHandler>;
}

function rig(
  opts: {
    queue?: InProcessQueueOptions;
    batch?: Partial<BatchScoreDeps>;
    worker?: Pick<AsyncWorkerHandlerDeps, 'deadLetterSources'>;
    attach?: boolean;
  } = {},
): Rig {
  const queue = new InProcessQueue({ visibilityTimeoutMs: 5, batchSize: 1, ...opts.queue });
  const batch: BatchScoreDeps = { ...env.flows.batch, batchQueue: queue, ...opts.batch };
  const logger = recordingLogger();
  const flows = { ...env.flows, batch, logger };
  const worker = createAsyncWorkerHandler({ ...flows, ...opts.worker });
  if (opts.attach !== false) queue.attach(worker);
  return { queue, batch, logs: logger.lines, s3Events: createS3EventsHandler(flows), worker };
}

async function status(jobId: string): Promise<BatchStatus> {
  return JSON.parse((await env.getText(BATCH_KEYS.status(jobId))) ?? 'null') as BatchStatus;
}

async function planOf(jobId: string): Promise<BatchPlan> {
  return parsePlan((await env.getText(BATCH_KEYS.plan(jobId))) ?? 'null');
}

async function segmentsLeft(jobId: string, inputTag: string | undefined): Promise<string[]> {
  const listed = await env.flows.batch.objects.list(BATCH_KEYS.segments(jobId, runOfInput(inputTag ?? '')));
  return listed.map((o) => o.key);
}

function logged(lines: readonly RecordedLine[], message: string, jobId: string): RecordedLine[] {
  return lines.filter((l) => l.message === message && l.extra?.jobId === jobId);
}

/** The output of `input` scored as one `input.jsonl` by the env's own queue and worker. */
async function reference(jobId: string, input: string, spec: Record<string, unknown> = {}): Promise<string> {
  await env.put(BATCH_KEYS.job(jobId), JSON.stringify({ model: 'adder', ...spec }));
  await env.s3Events(await env.put(BATCH_KEYS.input(jobId), input));
  await env.queue.drain();
  expect(await status(jobId)).toMatchObject({ state: 'done' });
  const output = await env.getText(BATCH_KEYS.output(jobId));
  if (output === undefined) throw new Error(`${jobId} wrote no output`);
  return output;
}

describe('batch flows', () => {
  it('scores several input files closed by input/_SUCCESS as their concatenation, in key order', async () => {
    const files: [string, string][] = [
      ['0001-a.jsonl', rows('a', 1500)],
      ['0002-b.jsonl', rows('b', 3)],
      ['0003-c.jsonl', ''],
      ['0004-d.jsonl', rows('d', 800)],
    ];
    const whole = files.map(([, text]) => text).join('');
    const expected = await reference('concat', whole, { partBytes: PART_BYTES });

    await env.put(BATCH_KEYS.job('multi'), JSON.stringify({ model: 'adder', partBytes: PART_BYTES }));
    // Written out of order; `*.jsonl` objects directly under input/ are input, names starting with _ or . are
    // left alone (anything else fails the job: batch-score.test.ts).
    for (const [name, text] of [...files].reverse())
      await env.put(`${BATCH_KEYS.inputPrefix('multi')}${name}`, text);
    await env.put(`${BATCH_KEYS.inputPrefix('multi')}_committed_1`, rows('x', 5));
    await env.put(`${BATCH_KEYS.inputPrefix('multi')}.0001-a.jsonl.crc`, 'crc');
    const [outcome] = await env.s3Events(await env.put(BATCH_KEYS.inputMarker('multi'), ''));
    const plan = await planOf('multi');
    expect(outcome).toMatchObject({
      kind: 'batch',
      jobId: 'multi',
      state: 'running',
      partsTotal: plan.parts.length,
    });
    // Parts never cross files: the large ones are cut, the small one is one part, the empty one has none.
    const partsOf = (name: string) => plan.parts.filter((p) => p.key.endsWith(name)).length;
    expect(partsOf('0001-a.jsonl')).toBeGreaterThanOrEqual(2);
    expect(partsOf('0002-b.jsonl')).toBe(1);
    expect(partsOf('0003-c.jsonl')).toBe(0);
    expect(partsOf('0004-d.jsonl')).toBeGreaterThanOrEqual(1);
    expect(plan.parts.map((p) => p.key)).toEqual([...plan.parts.map((p) => p.key)].sort());
    await env.queue.drain();

    expect(await env.getText(BATCH_KEYS.output('multi'))).toBe(expected);
    const lines = expected.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(2303);
    expect(JSON.parse(lines[1500] ?? '').id).toBe('b0');
    expect(JSON.parse(lines[1503] ?? '').id).toBe('d0');
    const failed = lines.filter((l) => l.startsWith('{"error":')).length;
    expect(failed).toBe(15 + 8);
    const done = await status('multi');
    expect(done).toMatchObject({
      state: 'done',
      total: 2303,
      failed,
      succeeded: 2303 - failed,
      partsDone: plan.parts.length,
      partsTotal: plan.parts.length,
      bytesDone: whole.length,
      bytesTotal: whole.length,
    });
    expect(done.inputTag).toMatch(/^inputs:/);
    expect(await segmentsLeft('multi', done.inputTag)).toEqual([]);
  });

  it('gives the same output and one aggregation when parts are delivered duplicated and out of order', async () => {
    const input = rows('r', 4000);
    const expected = await reference('dup-ref', input, { partBytes: PART_BYTES });

    // The start's messages are held back, then delivered two or three times each, shuffled, to four workers.
    const started: WorkMessage[] = [];
    const hold: QueuePublisher = { send: async (m) => String(started.push(m)) };
    const sent: WorkMessage[] = [];
    const completions: string[] = [];
    const r = rig({ queue: { concurrency: 4 }, attach: false });
    const batch: BatchScoreDeps = {
      ...r.batch,
      batchQueue: {
        send: (m) => {
          sent.push(m);
          return r.queue.send(m);
        },
      },
      objects: overriding(r.batch.objects, {
        completeMultipart: (key, uploadId, parts) => {
          completions.push(key);
          return r.batch.objects.completeMultipart(key, uploadId, parts);
        },
      }),
    };
    const logger = recordingLogger();
    const flows = { ...env.flows, logger };
    const s3Events = createS3EventsHandler({ ...flows, batch: { ...batch, batchQueue: hold } });
    await env.put(
      BATCH_KEYS.job('dup'),
      JSON.stringify({ model: 'adder', partBytes: PART_BYTES, maxConcurrency: 1000 }),
    );
    const [outcome] = await s3Events(await env.put(BATCH_KEYS.input('dup'), input));
    const parts = (await planOf('dup')).parts.length;
    expect(parts).toBeGreaterThanOrEqual(5);
    expect(outcome).toMatchObject({ state: 'running', partsTotal: parts });
    // maxConcurrency covers every part: the start queues them all.
    expect(started.map((m) => (m.type === 'batch-part' ? m.index : -1)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: parts }, (_, i) => i),
    );
    const copies = started.flatMap((m, i) => Array.from({ length: 2 + (i % 2) }, () => m));
    const order = shuffled(copies, 16);
    expect(order.map((m) => JSON.stringify(m))).not.toEqual(copies.map((m) => JSON.stringify(m)));
    for (const m of order) r.queue.sendRaw(JSON.stringify(m));
    r.queue.attach(createAsyncWorkerHandler({ ...flows, batch }));
    await r.queue.drain();

    expect(await env.getText(BATCH_KEYS.output('dup'))).toBe(expected);
    expect(r.queue.stats.peakInFlight).toBeGreaterThan(1);
    expect(r.queue.stats.deadLettered).toBe(0);
    expect(sent.filter((m) => m.type === 'batch-aggregate')).toHaveLength(1);
    expect(logged(logger.lines, 'batch job aggregated', 'dup').map((l) => l.extra?.state)).toEqual(['done']);
    expect(completions).toEqual([BATCH_KEYS.output('dup')]);
    const handled = logged(logger.lines, 'batch part handled', 'dup');
    expect(handled).toHaveLength(copies.length);
    // Each part counted once (the other deliveries are duplicates or late), whatever the order.
    expect(handled.filter((l) => l.extra?.state === 'running')).toHaveLength(parts);
    const done = await status('dup');
    expect(done).toMatchObject({ state: 'done', total: 4000, partsDone: parts, partsTotal: parts });
    expect(done.bytesDone).toBe(input.length);

    // A late copy of the aggregation finds the job done: nothing is assembled again.
    r.queue.sendRaw(JSON.stringify({ type: 'batch-aggregate', jobId: 'dup', inputTag: done.inputTag }));
    await r.queue.drain();
    expect(completions).toHaveLength(1);
    expect(logged(logger.lines, 'batch job aggregated', 'dup').map((l) => l.extra?.state)).toEqual([
      'done',
      'skipped',
    ]);
    expect(await env.getText(BATCH_KEYS.output('dup'))).toBe(expected);
    expect(await segmentsLeft('dup', done.inputTag)).toEqual([]);
  });

  it('sends a poison part to the dead-letter queue after its last receive and fails the job naming it', async () => {
    const POISON = 2;
    const input = rows('p', 3000);
    const attempts: number[] = [];
    const real = env.flows.batch.objects;
    const r = rig({
      batch: {
        objects: overriding<RangedObjects>(real, {
          async *streamRange(key, start, end) {
            const plan = await planOf('poison');
            const index = plan.parts.findIndex((p) => p.key === key && p.start <= start && start < p.end);
            if (index === POISON) {
              attempts.push(index);
              throw new Error('the disk is on fire');
            }
            yield* real.streamRange(key, start, end);
          },
        }),
      },
    });
    await env.put(BATCH_KEYS.job('poison'), JSON.stringify({ model: 'adder', partBytes: PART_BYTES }));
    await r.s3Events(await env.put(BATCH_KEYS.input('poison'), input));
    await r.queue.drain();

    const plan = await planOf('poison');
    expect(plan.parts.length).toBeGreaterThan(POISON + 1);
    expect(attempts).toHaveLength(QUEUE.maxReceiveCount);
    expect(r.queue.deadLetters).toHaveLength(1);
    const dead = r.queue.deadLetters[0];
    expect(JSON.parse(dead?.body ?? '{}')).toMatchObject({
      type: 'batch-part',
      jobId: 'poison',
      index: POISON,
    });
    expect(dead?.receiveCount).toBe(QUEUE.maxReceiveCount);

    const part = plan.parts[POISON];
    const failed = await status('poison');
    expect(failed).toMatchObject({
      state: 'failed',
      code: BATCH_PART_FAILED,
      error: `part ${POISON} (${part?.key} bytes ${part?.start}-${part?.end}) failed after ${QUEUE.maxReceiveCount} attempts: the disk is on fire`,
      partsTotal: plan.parts.length,
    });
    expect(failed.partsDone).toBeLessThan(plan.parts.length);
    expect(await env.flows.batch.jobs.getJob('poison')).toMatchObject({
      state: 'failed',
      code: BATCH_PART_FAILED,
    });
    expect(await env.getText(BATCH_KEYS.output('poison'))).toBeUndefined();
    expect(logged(r.logs, 'batch job aggregated', 'poison')).toEqual([]);
    expect(await segmentsLeft('poison', failed.inputTag)).toEqual([]);
  });

  it('fails the job, naming the part, when its worker is killed on every receive: the dead letter ends it', async () => {
    const KILLED = 1;
    const deadLetterQueue = new InProcessQueue({ queueName: 'maas-dead-letters', visibilityTimeoutMs: 5 });
    const r = rig({
      queue: { deadLetterQueue },
      worker: { deadLetterSources: [deadLetterQueue.arn] },
      attach: false,
    });
    // An invocation killed out of memory runs no code of ours: its record is neither answered nor ended.
    let kills = 0;
    r.queue.attach(async (event, context) => {
      const m = JSON.parse(event.Records[0]?.body ?? '{}') as WorkMessage;
      if (m.type === 'batch-part' && m.jobId === 'killed' && m.index === KILLED) {
        kills++;
        throw new Error('killed');
      }
      return r.worker(event, context);
    });
    deadLetterQueue.attach(r.worker);
    await env.put(BATCH_KEYS.job('killed'), JSON.stringify({ model: 'adder', partBytes: PART_BYTES }));
    await r.s3Events(await env.put(BATCH_KEYS.input('killed'), rows('k', 3000)));
    do {
      await r.queue.drain();
      await deadLetterQueue.drain();
    } while (r.queue.depth > 0 || deadLetterQueue.depth > 0);

    expect(kills).toBe(QUEUE.maxReceiveCount);
    expect(r.queue.deadLetters).toHaveLength(1);
    // The dead letter was ended and left its queue.
    expect(deadLetterQueue.stats).toMatchObject({ sent: 1, deleted: 1, deadLettered: 0 });
    const part = (await planOf('killed')).parts[KILLED];
    const failed = await status('killed');
    expect(failed).toMatchObject({
      state: 'failed',
      code: BATCH_PART_FAILED,
      error: `part ${KILLED} (${part?.key} bytes ${part?.start}-${part?.end}) failed after ${QUEUE.maxReceiveCount} attempts: ${DEAD_LETTER_REASON}`,
    });
    expect(await env.flows.batch.jobs.getJob('killed')).toMatchObject({
      state: 'failed',
      code: BATCH_PART_FAILED,
    });
    expect(await env.getText(BATCH_KEYS.output('killed'))).toBeUndefined();
    expect(await segmentsLeft('killed', failed.inputTag)).toEqual([]);
  });

  it('cancels a job while parts remain: the queued ones are skipped, no output is written', async () => {
    const input = rows('c', 4000);
    // One part in flight at a time; the cancel comes once two parts are done and the third is queued.
    const r = rig({ attach: false });
    let invocations = 0;
    r.queue.attach(async (event, context) => {
      const answer = await r.worker(event, context);
      if (++invocations === 2) {
        const [cancelled] = await r.s3Events(await env.put(BATCH_KEYS.cancel('cancel-q'), 'stop'));
        expect(cancelled).toMatchObject({ kind: 'batch', jobId: 'cancel-q', state: 'cancelled' });
      }
      return answer;
    });
    await env.put(
      BATCH_KEYS.job('cancel-q'),
      JSON.stringify({ model: 'adder', partBytes: PART_BYTES, maxConcurrency: 1 }),
    );
    await r.s3Events(await env.put(BATCH_KEYS.input('cancel-q'), input));
    await r.queue.drain();

    const parts = (await planOf('cancel-q')).parts.length;
    expect(parts).toBeGreaterThan(3);
    const handled = logged(r.logs, 'batch part handled', 'cancel-q').map((l) => [
      l.extra?.part,
      l.extra?.state,
    ]);
    expect(handled).toEqual([
      [0, 'running'],
      [1, 'running'],
      [2, 'skipped'],
    ]);
    const cancelled = await status('cancel-q');
    expect(cancelled).toMatchObject({ state: 'cancelled', partsDone: 2, partsTotal: parts });
    expect(cancelled.bytesDone).toBeLessThan(cancelled.bytesTotal);
    expect(r.queue.stats).toMatchObject({ invocations: 3, deadLettered: 0 });
    expect(await env.getText(BATCH_KEYS.output('cancel-q'))).toBeUndefined();
    expect(await segmentsLeft('cancel-q', cancelled.inputTag)).toEqual([]);

    // A cancel of a job that ended changes nothing.
    const [again] = await r.s3Events(await env.put(BATCH_KEYS.cancel('cancel-q'), 'stop'));
    expect(again).toMatchObject({ state: 'skipped' });
    expect((await status('cancel-q')).updatedAt).toBe(cancelled.updatedAt);
  });

  it('cancels a job while a part runs: the part stops at its next chunk', async () => {
    const input = rows('k', 2000);
    let calls = 0;
    const real = env.flows.batch.predictor;
    const r = rig({
      batch: {
        predictor: overriding(real, {
          inferBatch: async (model, ref, requests) => {
            const answers = await real.inferBatch(model, ref, requests);
            // The first chunk of the job's first part is scored when the cancel comes.
            if (++calls === 1) await r.s3Events(await env.put(BATCH_KEYS.cancel('cancel-r'), ''));
            return answers;
          },
        }),
      },
    });
    await env.put(
      BATCH_KEYS.job('cancel-r'),
      JSON.stringify({ model: 'adder', partBytes: PART_BYTES, maxConcurrency: 1 }),
    );
    await r.s3Events(await env.put(BATCH_KEYS.input('cancel-r'), input));
    await r.queue.drain();

    expect(calls).toBe(1);
    expect(
      logged(r.logs, 'batch part handled', 'cancel-r').map((l) => [l.extra?.part, l.extra?.state]),
    ).toEqual([[0, 'skipped']]);
    const cancelled = await status('cancel-r');
    expect(cancelled).toMatchObject({ state: 'cancelled', partsDone: 0, total: 0 });
    expect(await env.getText(BATCH_KEYS.output('cancel-r'))).toBeUndefined();
    expect(await segmentsLeft('cancel-r', cancelled.inputTag)).toEqual([]);
  });

  it("keeps at most the job's maxConcurrency parts in flight on a queue that allows more", async () => {
    const input = rows('m', 5000);
    const expected = await reference('conc-ref', input, { partBytes: PART_BYTES });
    // A part is in flight from its first read to its count; each chunk takes a little longer than ORT alone.
    let inFlight = 0;
    let peak = 0;
    const realObjects = env.flows.batch.objects;
    const realJobs = env.flows.batch.jobs;
    const realPredictor = env.flows.batch.predictor;
    const r = rig({
      queue: { concurrency: 4 },
      batch: {
        objects: overriding<RangedObjects>(realObjects, {
          streamRange(key, start, end) {
            peak = Math.max(peak, ++inFlight);
            return realObjects.streamRange(key, start, end);
          },
        }),
        jobs: overriding<BatchJobRepository>(realJobs, {
          completePart(jobId, inputTag, outcome, now) {
            inFlight--;
            return realJobs.completePart(jobId, inputTag, outcome, now);
          },
        }),
        predictor: overriding(realPredictor, {
          inferBatch: async (model, ref, requests) => {
            await new Promise((done) => setTimeout(done, 20));
            return realPredictor.inferBatch(model, ref, requests);
          },
        }),
      },
    });
    await env.put(
      BATCH_KEYS.job('conc'),
      JSON.stringify({ model: 'adder', partBytes: PART_BYTES, maxConcurrency: 2 }),
    );
    const [outcome] = await r.s3Events(await env.put(BATCH_KEYS.input('conc'), input));
    const parts = (await planOf('conc')).parts.length;
    expect(parts).toBeGreaterThanOrEqual(6);
    expect(outcome).toMatchObject({ state: 'running', partsTotal: parts });
    await r.queue.drain();

    expect(peak).toBe(2);
    expect(inFlight).toBe(0);
    expect(await env.getText(BATCH_KEYS.output('conc'))).toBe(expected);
    expect(await status('conc')).toMatchObject({
      state: 'done',
      total: 5000,
      partsDone: parts,
      partsTotal: parts,
    });
    expect(r.queue.stats).toMatchObject({ sent: parts + 1, invocations: parts + 1, deadLettered: 0 });
  });
});

/**
 * The local service stopped with work queued or running, then started again over the same data (the same table on
 * the suite's DynamoDB Local, an s3rver of this file's own stopped and started again over the same directory, whose
 * object events reach the S3 events handler): the in-process queues lost their messages at the stop, and
 * `resumeUnfinished` queues again what was accepted and never finished, as SQS would have delivered it again.
 *
 * The work of the run before the stop is that of the local composition itself, or — for batch parts stopped half
 * way — the worker's own use cases over a queue that loses every message they send (what the stop does to them).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, expect, inject, it } from 'vitest';
import { dynamoDocumentClient, s3Client } from '../../functions/adapters/aws-clients';
import { OrtThreadEngine } from '../../functions/adapters/ort-thread-engine';
import { S3BlobStore, S3RangedObjects } from '../../functions/adapters/s3-blob-store';
import { BATCH_NOT_RESUMED, runBatchPart, runOfInput } from '../../functions/app/batch-score';
import { startDerive } from '../../functions/app/derive';
import { registerVersionWithin } from '../../functions/app/registration';
import { registerVersion } from '../../functions/app/registry';
import { SessionCache } from '../../functions/app/session-cache';
import { ASYNC_KEYS, BATCH, BATCH_KEYS } from '../../functions/contract/events';
import type { WorkMessage } from '../../functions/domain/async';
import { createEventFlows, type EventFlows } from '../../functions/handlers/event-deps';
import type { HttpResult } from '../../functions/handlers/http';
import { composeLocal, type LocalServices } from '../../functions/local/compose';
import { localClientOptions, type RunningS3, startS3rver } from '../../functions/local/emulators';
import { ensureBucket, ensureTable } from '../../functions/local/provision';
import { DERIVATION_NOT_RESUMED } from '../../functions/local/resume';
import { apiEvent, parseResult } from '../helpers/apigw';
import { addConstant, addConstantRows } from '../helpers/predict-env';
import { until } from '../helpers/until';

const doc = dynamoDocumentClient(localClientOptions(inject('dynamoEndpoint')));
const homes: Home[] = [];
afterAll(async () => {
  for (const h of homes) {
    await (doc as unknown as DynamoDBClient)
      .send(new DeleteTableCommand({ TableName: h.table }))
      .catch(() => {});
    rmSync(h.dir, { recursive: true, force: true });
  }
});

/** The data a local service keeps across its runs: a table, and the directory of its s3rver. */
interface Home {
  readonly dir: string;
  readonly table: string;
  readonly bucket: string;
}

/** One run of the local service over a home. */
interface Run {
  readonly bucket: string;
  readonly s3: RunningS3;
  readonly client: S3Client;
  readonly services: LocalServices;
  readonly blobs: S3BlobStore;
  /** The lines the services logged. */
  readonly lines: string[];
}

async function newHome(): Promise<Home> {
  const id = randomUUID().slice(0, 8);
  const home = {
    dir: mkdtempSync(join(tmpdir(), 'maas-resume-')),
    table: `resume-${id}`,
    bucket: `resume-${id}`,
  };
  homes.push(home);
  await ensureTable(doc, home.table);
  return home;
}

/** Starts s3rver over the home's directory and composes the local service over it, as `maas dev` does. */
async function up(home: Home, extra: { resumeMaxKeys?: number } = {}): Promise<Run> {
  const s3 = await startS3rver({ directory: join(home.dir, 's3'), buckets: [home.bucket] });
  const client = s3Client(localClientOptions(s3.endpoint));
  await ensureBucket(client, home.bucket);
  const lines: string[] = [];
  const services = composeLocal({
    doc,
    s3: client,
    endpoints: { dynamodb: inject('dynamoEndpoint'), s3: s3.endpoint },
    table: home.table,
    bucket: home.bucket,
    log: (line) => lines.push(line),
    ...extra,
  });
  services.attachObjectStore(s3.server);
  return { bucket: home.bucket, s3, client, services, blobs: new S3BlobStore(client, home.bucket), lines };
}

async function down(run: Run): Promise<void> {
  await run.services.close();
  await run.s3.stop();
}

/** `adder`: y = x + 1, x of shape [-1, 2]. */
async function registerAdder(run: Run): Promise<void> {
  const key = `uploads/adder/${randomUUID()}.onnx`;
  await run.services.registry.store.putObject(key, addConstant(1), 'application/octet-stream');
  await registerVersion(run.services.registry, { name: 'adder', sourceKey: key });
}

async function call(run: Run, method: string, path: string, body?: unknown) {
  const answer = await run.services.handlers.async!(
    apiEvent(method, path, body === undefined ? {} : { body }),
  );
  return parseResult(answer as HttpResult);
}

/** Submits x = `data` as request `id`. */
async function submit(run: Run, id: string, data: number[]): Promise<string> {
  const accepted = await call(run, 'POST', '/v2/models/adder/infer-async', {
    id,
    inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data }],
  });
  expect(accepted.status).toBe(202);
  return accepted.body.requestId as string;
}

/** The answer of request `id`: y = `data`. */
const done = (id: string, data: number[]) => ({
  status: 'done',
  result: {
    model_name: 'adder',
    model_version: '1',
    id,
    outputs: [{ name: 'y', shape: [1, 2], datatype: 'FP32', data }],
  },
});

const text = async (run: Run, key: string) => {
  const bytes = await run.blobs.get(key);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
};

const rows = addConstantRows;

async function put(run: Run, key: string, body: string): Promise<void> {
  await run.client.send(new PutObjectCommand({ Bucket: run.bucket, Key: key, Body: Buffer.from(body) }));
}

/**
 * Starts batch job `jobId` of `n` rows (parts of 64 KiB, `maxConcurrency` in flight) on a run whose batch queue has
 * no worker: the start queues its first parts, which nothing runs. Resolves with the job tag.
 */
async function startStalledJob(run: Run, jobId: string, n: number, maxConcurrency: number): Promise<string> {
  run.services.batchQueue.detach();
  await put(
    run,
    BATCH_KEYS.job(jobId),
    JSON.stringify({ model: 'adder', partBytes: 65_536, maxConcurrency }),
  );
  await put(run, BATCH_KEYS.input(jobId), rows(n));
  await until(() => run.services.batchQueue.depth === maxConcurrency, {
    timeoutMs: 20_000,
    what: 'the first parts queued',
  });
  const status = JSON.parse((await text(run, BATCH_KEYS.status(jobId))) ?? '{}');
  expect(status).toMatchObject({ state: 'running', partsDone: 0 });
  return status.inputTag as string;
}

/**
 * The worker of the run before the stop: the same use cases over the same table and bucket, with a queue that
 * loses every message (`lost`), as the stop loses the in-process queues' messages.
 */
function workerLosingMessages(
  run: Run,
  home: Home,
): { flows: EventFlows; lost: WorkMessage[]; close(): Promise<void> } {
  const lost: WorkMessage[] = [];
  const queue = {
    send: async (m: WorkMessage) => {
      lost.push(m);
      return `lost-${lost.length}`;
    },
  };
  const sessions = new SessionCache({ engine: new OrtThreadEngine() });
  const flows = createEventFlows({
    table: home.table,
    bucket: home.bucket,
    doc,
    s3: run.client,
    queue,
    batchQueue: queue,
    sessions,
  });
  return { flows, lost, close: () => sessions.close() };
}

/** The job's output, checked line by line (line i answers x = [i, i] with [i + 1, i + 1]), and its segments gone. */
async function expectScored(run: Run, jobId: string, n: number): Promise<void> {
  const status = JSON.parse((await text(run, BATCH_KEYS.status(jobId))) ?? '{}');
  expect(status).toMatchObject({ state: 'done', total: n, succeeded: n, failed: 0 });
  const lines = ((await text(run, BATCH_KEYS.output(jobId))) ?? '').split('\n');
  expect(lines.pop()).toBe('');
  expect(lines).toHaveLength(n);
  lines.forEach((line, i) => {
    expect(JSON.parse(line).outputs[0].data, `line ${i}`).toEqual([i + 1, i + 1]);
  });
  const objects = new S3RangedObjects(run.client, run.bucket);
  expect(await objects.list(BATCH_KEYS.segments(jobId, runOfInput(status.inputTag)))).toEqual([]);
}

it('async requests accepted before a stop are run after the next start, and answered', async () => {
  const home = await newHome();
  const first = await up(home);
  await registerAdder(first);
  // The stop comes before the worker takes them.
  first.services.queue.detach();
  const a = await submit(first, 'a', [1, 2]);
  const b = await submit(first, 'b', [5, 6]);
  expect((await call(first, 'GET', `/async/${a}`)).body).toEqual({ status: 'pending' });
  await down(first);

  const second = await up(home);
  try {
    expect(await second.services.resumeUnfinished()).toMatchObject({ asyncRequests: 2, batchJobs: 0 });
    expect(second.lines).toContain('re-queued 2 async requests left unfinished by the last stop');
    await second.services.idle();
    expect((await call(second, 'GET', `/async/${a}`)).body).toEqual(done('a', [2, 3]));
    expect((await call(second, 'GET', `/async/${b}`)).body).toEqual(done('b', [6, 7]));
  } finally {
    await down(second);
  }
});

it('looks at a bounded listing, and says so', async () => {
  const home = await newHome();
  const first = await up(home);
  await registerAdder(first);
  first.services.queue.detach();
  for (const id of ['a', 'b', 'c', 'd', 'e']) await submit(first, id, [1, 1]);
  await down(first);

  const second = await up(home, { resumeMaxKeys: 3 });
  try {
    // Three keys listed (one request.json each); the last one's keys might go on past the listing: left for later.
    expect(await second.services.resumeUnfinished()).toMatchObject({ asyncRequests: 2, truncated: true });
    expect(second.lines).toEqual([
      're-queued 2 async requests left unfinished by the last stop; only the first 3 keys of async/, job folders of batch/ and versions of the registry were looked at',
    ]);
  } finally {
    await down(second);
  }
});

it('an answered request is not run again: neither by the start nor by a message delivered again', async () => {
  const home = await newHome();
  const first = await up(home);
  await registerAdder(first);
  const answered = await submit(first, 'answered', [1, 2]);
  await first.services.idle();
  const result = await text(first, ASYNC_KEYS.result(answered));
  expect(JSON.parse(result ?? '{}')).toMatchObject({ status: 'done' });
  first.services.queue.detach();
  const pending = await submit(first, 'p', [3, 4]);
  await down(first);

  const second = await up(home);
  try {
    // Only the request without an answer is queued again.
    expect(await second.services.resumeUnfinished()).toMatchObject({ asyncRequests: 1 });
    await second.services.idle();
    expect((await call(second, 'GET', `/async/${pending}`)).body).toEqual(done('p', [4, 5]));
    // A duplicate delivery of the answered one (SQS may deliver one, and a start may queue one) writes nothing:
    // its result document is the one the first run wrote, byte for byte (`completedAt` included).
    const runs = second.services.queue.stats.deleted;
    await second.services.queue.send({ type: 'async-infer', requestId: answered });
    await second.services.idle();
    expect(second.services.queue.stats.deleted).toBe(runs + 1);
    expect(await text(second, ASYNC_KEYS.result(answered))).toBe(result);
    // A second call answers the first one's summary: nothing is queued twice.
    expect(await second.services.resumeUnfinished()).toMatchObject({ asyncRequests: 1 });
  } finally {
    await down(second);
  }
});

it('a batch job stopped half way (a part counted, one continued, their messages lost) finishes after the next start', async () => {
  const home = await newHome();
  const first = await up(home);
  await registerAdder(first);
  const n = 3000; // about 225 KB: four parts of about 870 rows
  const tag = await startStalledJob(first, 'halfway', n, 1);
  // The worker before the stop: part 0 scored and counted (it claimed part 1 and queued it: lost), then part 1
  // scored in part and continued from its cursor (lost too).
  const before = workerLosingMessages(first, home);
  try {
    const part0 = await runBatchPart(before.flows.batch, { jobId: 'halfway', inputTag: tag, index: 0 });
    expect(part0).toMatchObject({ state: 'running', partsDone: 1, partsTotal: 4 });
    const part1 = await runBatchPart(
      before.flows.batch,
      { jobId: 'halfway', inputTag: tag, index: 1 },
      { getRemainingTimeInMillis: () => 0 },
    );
    // One chunk, a part's first: BATCH.firstChunkRows lines.
    expect(part1).toMatchObject({ state: 'running', continued: { index: 1, row: BATCH.firstChunkRows } });
    expect(before.lost.map((m) => [m.type, 'index' in m ? m.index : undefined, 'cursor' in m])).toEqual([
      ['batch-part', 1, false],
      ['batch-part', 1, true],
    ]);
  } finally {
    await before.close();
  }
  await down(first);

  const second = await up(home);
  try {
    expect(await second.services.resumeUnfinished()).toMatchObject({ asyncRequests: 0, batchJobs: 1 });
    expect(second.lines).toContain('re-queued 1 batch job left unfinished by the last stop');
    await second.services.idle();
    await expectScored(second, 'halfway', n);
  } finally {
    await down(second);
  }
});

it('a batch job stopped with its parts all counted and its assembly under way is assembled after the next start', async () => {
  const home = await newHome();
  const first = await up(home);
  await registerAdder(first);
  const n = 1500; // two parts
  const tag = await startStalledJob(first, 'assembly', n, 2);
  const before = workerLosingMessages(first, home);
  try {
    await runBatchPart(before.flows.batch, { jobId: 'assembly', inputTag: tag, index: 0 });
    // The last part claims the aggregation and sends its message (lost) ...
    expect(
      await runBatchPart(before.flows.batch, { jobId: 'assembly', inputTag: tag, index: 1 }),
    ).toMatchObject({
      state: 'running',
      partsDone: 2,
      partsTotal: 2,
    });
    expect(before.lost.map((m) => m.type)).toEqual(['batch-aggregate']);
    // ... whose delivery took the assembly's lease, and stopped with the service.
    const jobs = before.flows.batch.jobs;
    expect(
      await jobs.leaseAssembly('assembly', tag, new Date().toISOString(), BATCH.aggregationLeaseMs),
    ).toEqual(expect.any(String));
  } finally {
    await before.close();
  }
  await down(first);

  const second = await up(home);
  try {
    expect(await second.services.resumeUnfinished()).toMatchObject({ batchJobs: 1 });
    await second.services.idle();
    await expectScored(second, 'assembly', n);
  } finally {
    await down(second);
  }
});

it('a running job that cannot be resumed ends failed saying why; an ended job whose status says running is completed', async () => {
  const home = await newHome();
  const first = await up(home);
  await registerAdder(first);
  await startStalledJob(first, 'no-plan', 100, 1);
  await first.blobs.delete(BATCH_KEYS.plan('no-plan'));
  // A job that ended (done) whose status.json still said running: the stop came between its end and its status.
  await put(first, BATCH_KEYS.job('ended'), JSON.stringify({ model: 'adder' }));
  await put(first, BATCH_KEYS.input('ended'), '');
  await until(
    async () => JSON.parse((await text(first, BATCH_KEYS.status('ended'))) ?? '{}').state === 'done',
    { timeoutMs: 20_000, what: 'the empty job done' },
  );
  const ended = JSON.parse((await text(first, BATCH_KEYS.status('ended'))) ?? '{}');
  expect(ended.state).toBe('done');
  await put(first, BATCH_KEYS.status('ended'), JSON.stringify({ ...ended, state: 'running' }));
  await down(first);

  const second = await up(home);
  try {
    expect(await second.services.resumeUnfinished()).toMatchObject({
      batchJobs: 0,
      batchJobsFailed: 1,
      batchJobsEnded: 1,
    });
    expect(second.lines).toEqual([
      '1 batch job could not be resumed and ended failed (BATCH_NOT_RESUMED); 1 batch job ended (status.json completed)',
    ]);
    const failed = JSON.parse((await text(second, BATCH_KEYS.status('no-plan'))) ?? '{}');
    expect(failed).toMatchObject({ state: 'failed', code: BATCH_NOT_RESUMED });
    expect(failed.error).toContain('plan.json is missing');
    expect(JSON.parse((await text(second, BATCH_KEYS.status('ended'))) ?? '{}')).toEqual(ended);
  } finally {
    await down(second);
  }
});

it('a PENDING registration is completed after the next start; a PENDING derived version ends FAILED saying why', async () => {
  const home = await newHome();
  const first = await up(home);
  await registerAdder(first);
  // Both continue on the work queue, whose messages the stop loses.
  const lost = { send: async () => 'lost' };
  const key = `uploads/later/${randomUUID()}.onnx`;
  await first.services.registry.store.putObject(key, addConstant(2), 'application/octet-stream');
  const registration = await registerVersionWithin(
    first.services.registry,
    { name: 'later', sourceKey: key },
    { remainingMs: () => 0, queue: lost },
  );
  expect(registration).toMatchObject({ pending: true, version: { status: 'PENDING', version: 1 } });
  const derived = await startDerive(
    first.services.registry,
    { name: 'adder', version: 1, body: { transforms: [{ optimize: 'basic' }] } },
    lost,
  );
  expect(derived).toMatchObject({ status: 'PENDING', version: 2, derivedFrom: 1 });
  await down(first);

  const second = await up(home);
  try {
    expect(await second.services.resumeUnfinished()).toMatchObject({
      registrations: 1,
      derivationsFailed: 1,
      truncated: false,
      errors: [],
    });
    expect(second.lines).toEqual([
      're-queued 1 PENDING registration left unfinished by the last stop; 1 PENDING derived version ended FAILED (their gate was not kept: derive again)',
    ]);
    await second.services.idle();
    const { repo } = second.services.registry;
    expect(await repo.getVersion('later', 1)).toMatchObject({ status: 'READY' });
    expect(await repo.getVersion('adder', 2)).toMatchObject({
      status: 'FAILED',
      failureReason: DERIVATION_NOT_RESUMED,
    });
  } finally {
    await down(second);
  }
  // Nothing PENDING is left: a start after this one finds nothing to take up.
  const third = await up(home);
  try {
    expect(await third.services.resumeUnfinished()).toMatchObject({ registrations: 0, derivationsFailed: 0 });
    expect(third.lines).toEqual([]);
  } finally {
    await down(third);
  }
});

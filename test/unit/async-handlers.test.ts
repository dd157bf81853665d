/**
 * Event handlers over fakes: the worker reports only failing records (ReportBatchItemFailures) and an async request
 * once (a retried run is not reported) and keeps to its invocation's time, the async API maps its routes and
 * errors, the S3 events handler decodes keys and dispatches, and register-on-upload turns deterministic failures
 * into outcomes and waits for a concurrent delivery.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { MemoryBatchJobs, MemoryRangedObjects } from '../../functions/adapters/memory-batch';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import { recordLastAttemptFailure } from '../../functions/app/async-inference';
import { startBatchJob } from '../../functions/app/batch-score';
import type { InferenceObservation } from '../../functions/app/inference';
import { createInferenceObserver } from '../../functions/app/observe';
import { incomingModelName, registerOnUpload } from '../../functions/app/register-on-upload';
import type { RegistryDeps } from '../../functions/app/registry';
import type { ServedVersion } from '../../functions/app/version-resolver';
import { readConfig } from '../../functions/config/environment';
import { ENV } from '../../functions/contract/env';
import { ASYNC_KEYS, BATCH, BATCH_KEYS, QUEUE } from '../../functions/contract/events';
import { gateThresholds } from '../../functions/domain/derive';
import { UnavailableError, UnprocessableModelError } from '../../functions/domain/errors';
import type { ModelVersion } from '../../functions/domain/types';
import { createAsyncApiHandler } from '../../functions/handlers/async-api';
import {
  createAsyncWorkerHandler,
  DEAD_LETTER_REASON,
  workerSettingsFromConfig,
} from '../../functions/handlers/async-worker';
import {
  createS3EventsHandler,
  decodeS3Key,
  S3EventRecordsFailedError,
} from '../../functions/handlers/s3-events';
import { AlreadyInProgressError, type IdempotencyGuard } from '../../functions/ports/events';
import type { InferenceReport } from '../../functions/ports/telemetry';
import { apiEvent, parseResult } from '../helpers/apigw';
import { MemoryBlobStore, MemoryGuard, RecordingQueue, s3Event } from '../helpers/events-fakes';
import { MemoryArtifactStore } from '../helpers/memory-artifact-store';
import { recordingLogger, silentLogger } from '../helpers/recording-logger';
import { sqsEvent } from '../helpers/sqs-event';

const quiet = silentLogger;
const ID = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const budget = { getRemainingTimeInMillis: () => 60_000 };

/** Batch scoring over the in-memory ports (the batch flows themselves are tested in batch-score.test.ts). */
function memoryBatch() {
  const objects = new MemoryRangedObjects();
  return {
    blobs: objects,
    objects,
    jobs: new MemoryBatchJobs(),
    batchQueue: new RecordingQueue(),
    predictor: {} as never,
  };
}

/** A registry in memory holding a PENDING version 1 of 'm' (a derived one: `derive`). */
async function pendingVersion(derived: boolean): Promise<MemoryRegistryRepository> {
  const repo = new MemoryRegistryRepository();
  await repo.createVersion({
    name: 'm',
    sha256: '',
    sizeBytes: 0,
    s3Key: 'uploads/m/u1.onnx',
    signature: { inputs: [], outputs: [] },
    status: 'PENDING',
    ...(derived ? { derivedFrom: 1, transforms: [{ quantize: 'int8' as const }] } : {}),
  });
  return repo;
}

/**
 * A running one-part job 'j' (ten rows) over the in-memory ports, whose model answers each chunk after `run`: its
 * ports, its batch deps and its part message.
 */
async function onePartJob(run: () => Promise<void>) {
  const batch = memoryBatch();
  const predictor = {
    resolve: async () => ({ version: { version: 7 } }) as never,
    inferBatch: async (_name: string, _ref: string, requests: unknown[]) => {
      await run();
      return requests.map(() => ({ ok: true as const, response: {} as never }));
    },
  };
  const deps = { ...batch, predictor };
  await batch.objects.put(BATCH_KEYS.job('j'), JSON.stringify({ model: 'm' }));
  await batch.objects.put(BATCH_KEYS.input('j'), '{"inputs":[]}\n'.repeat(10));
  await startBatchJob(deps, 'j', { input: 'file' });
  const [part] = batch.batchQueue.sent;
  return { batch, deps, part };
}

describe('async worker handler', () => {
  async function setup(infer: (name: string) => Promise<unknown>) {
    const blobs = new MemoryBlobStore();
    for (const n of [1, 2, 3]) {
      await blobs.put(
        ASYNC_KEYS.request(ID(n)),
        JSON.stringify({ requestId: ID(n), name: `m${n}`, ref: 'prod', request: { inputs: [] } }),
      );
    }
    const handler = createAsyncWorkerHandler({
      worker: { blobs, predictor: { infer: (name) => infer(name) as never } },
      batch: memoryBatch(),
      logger: quiet,
    });
    return { blobs, handler };
  }
  const msg = (n: number) => JSON.stringify({ type: 'async-infer', requestId: ID(n) });

  it('works through the records of a delivery one at a time (a registration completion holds a whole artifact)', async () => {
    // Prepare
    let running = 0;
    let most = 0;
    const { handler } = await setup(async (name) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return { model_name: name };
    });
    // Act
    const response = await handler(
      sqsEvent([
        { id: 'a', body: msg(1) },
        { id: 'b', body: msg(2) },
        { id: 'c', body: msg(3) },
      ]),
      budget,
    );
    // Assess
    expect(response.batchItemFailures).toEqual([]);
    expect(most).toBe(1);
  });

  it('reports only the records that failed for a reason other than the request', async () => {
    const { blobs, handler } = await setup(async (name) => {
      if (name === 'm2') throw new UnavailableError('registry down');
      if (name === 'm3') throw new UnprocessableModelError('bad model');
      return { model_name: name };
    });
    const response = await handler(
      sqsEvent([
        { id: 'a', body: msg(1) },
        { id: 'b', body: msg(2) },
        { id: 'c', body: msg(3) },
        { id: 'd', body: 'garbage' },
      ]),
      budget,
    );
    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(['b', 'd']);
    expect(JSON.parse(blobs.text(ASYNC_KEYS.result(ID(1))) ?? '')).toMatchObject({ status: 'done' });
    expect(JSON.parse(blobs.text(ASYNC_KEYS.result(ID(3))) ?? '')).toMatchObject({
      status: 'failed',
      code: 'INVALID_MODEL',
    });
    expect(blobs.text(ASYNC_KEYS.result(ID(2)))).toBeUndefined();
  });

  it('answers failed on the last receive, before the message is dead-lettered', async () => {
    const { blobs, handler } = await setup(async () => {
      throw new Error('disk on fire');
    });
    await handler(sqsEvent([{ id: 'a', body: msg(1), receiveCount: QUEUE.maxReceiveCount - 1 }]), budget);
    expect(blobs.text(ASYNC_KEYS.result(ID(1)))).toBeUndefined();
    const last = await handler(
      sqsEvent([{ id: 'a', body: msg(1), receiveCount: QUEUE.maxReceiveCount }]),
      budget,
    );
    expect(last.batchItemFailures).toEqual([{ itemIdentifier: 'a' }]);
    const result = JSON.parse(blobs.text(ASYNC_KEYS.result(ID(1))) ?? '');
    expect(result).toMatchObject({ status: 'failed', code: 'PROCESSING_FAILED' });
    expect(result.error).not.toMatch(/disk on fire/);
  });

  /**
   * The worker over one request of m1 (version 1 through `prod`, captured at 100 %), reported and captured through
   * the inference observer; `run(attempt)` answers its runs, the first being attempt 1.
   */
  async function observedSetup(run: (attempt: number) => Promise<unknown>) {
    const blobs = new MemoryBlobStore();
    await blobs.put(
      ASYNC_KEYS.request(ID(1)),
      JSON.stringify({
        requestId: ID(1),
        name: 'm1',
        ref: 'prod',
        request: { id: 'inference-1', inputs: [] },
      }),
    );
    const reports: InferenceReport[] = [];
    const captured: { status: number; captureData: { endpointOutput?: { data?: string } } }[] = [];
    const observer = createInferenceObserver({
      metrics: { inference: (r) => void reports.push(r), operation: () => {} },
      capture: { write: (_model, _version, line) => void captured.push(JSON.parse(line)) },
      captureOf: () => ({ samplePercent: 100, input: true, output: true }),
    });
    let attempts = 0;
    const handler = createAsyncWorkerHandler({
      worker: {
        blobs,
        observer,
        predictor: {
          async infer(_name, _ref, _body, obs) {
            (obs as InferenceObservation).served = { version: { version: 1 } } as ServedVersion;
            return run(++attempts) as never;
          },
        },
      },
      batch: memoryBatch(),
      logger: quiet,
    });
    const receive = async (receiveCount: number) => {
      const response = await handler(sqsEvent([{ id: 'a', body: msg(1), receiveCount }]), budget);
      // A captured request is recorded, and reported, after its answer.
      await new Promise((r) => setImmediate(r));
      return response;
    };
    return { blobs, reports, captured, receive };
  }

  it('reports and captures a request once when a run that failed with a 5xx is retried and succeeds', async () => {
    const { blobs, reports, captured, receive } = await observedSetup(async (attempt) => {
      if (attempt === 1) throw new UnavailableError('registry down');
      return { id: 'inference-1', outputs: [] };
    });
    expect((await receive(1)).batchItemFailures).toEqual([{ itemIdentifier: 'a' }]);
    expect(reports).toEqual([]);
    expect(captured).toEqual([]);
    expect((await receive(2)).batchItemFailures).toEqual([]);
    expect(JSON.parse(blobs.text(ASYNC_KEYS.result(ID(1))) ?? '')).toMatchObject({ status: 'done' });
    expect(reports).toEqual([
      expect.objectContaining({
        model: 'm1',
        version: 1,
        alias: 'prod',
        status: 200,
        inferenceId: 'inference-1',
      }),
    ]);
    expect(captured.map((c) => c.status)).toEqual([200]);
  });

  it('reports and captures a run that keeps failing with a 5xx once, on its last receive, as the answer it gets', async () => {
    const { blobs, reports, captured, receive } = await observedSetup(async () => {
      throw new Error('disk on fire');
    });
    for (let n = 1; n < QUEUE.maxReceiveCount; n++) await receive(n);
    expect(reports).toEqual([]);
    expect(captured).toEqual([]);
    await receive(QUEUE.maxReceiveCount);
    const result = JSON.parse(blobs.text(ASYNC_KEYS.result(ID(1))) ?? '');
    expect(result).toMatchObject({ status: 'failed', code: 'PROCESSING_FAILED' });
    expect(reports).toEqual([
      expect.objectContaining({
        model: 'm1',
        version: 1,
        alias: 'prod',
        status: 500,
        inferenceId: 'inference-1',
      }),
    ]);
    expect(captured.map((c) => c.status)).toEqual([500]);
    expect(JSON.parse(captured[0]?.captureData.endpointOutput?.data ?? '')).toEqual({
      error: result.error,
      code: 'PROCESSING_FAILED',
    });
  });

  it('does not run a request twice once it has a result', async () => {
    let calls = 0;
    const { handler } = await setup(async () => {
      calls++;
      return {};
    });
    await handler(sqsEvent([{ id: 'a', body: msg(1) }]), budget);
    await handler(sqsEvent([{ id: 'a', body: msg(1) }]), budget);
    expect(calls).toBe(1);
  });
});

describe('async worker handler: batch messages on their last receive', () => {
  /**
   * A one-part job whose model answers each chunk once `answered` resolves, its part message, and a worker handler
   * over it that logs to `logger`.
   */
  async function slowJob(answered: () => Promise<unknown>, logger = recordingLogger()) {
    const { batch, deps, part } = await onePartJob(async () => {
      await answered();
    });
    const handler = createAsyncWorkerHandler({
      worker: { blobs: new MemoryBlobStore(), predictor: {} as never },
      batch: deps,
      logger,
    });
    return { batch, part, logger, handler };
  }
  /** An invocation that ends `ms` from now. */
  const endingIn = (ms: number) => {
    const end = Date.now() + ms;
    return { getRemainingTimeInMillis: () => end - Date.now() };
  };

  it('ends the job failed, naming the part, when the part still runs just before the invocation times out', async () => {
    // The model answers only once the guard has ended the job (a chunk slower than the whole invocation), so the
    // part carries on after that end however late the timers fire.
    const logger = recordingLogger();
    const failedAtDeadline = ['ERROR', 'batch job failed at the deadline of its last receive'];
    const { batch, part, handler } = await slowJob(
      () =>
        vi.waitFor(
          () => expect(logger.lines.map((l) => [l.level, l.message])).toContainEqual(failedAtDeadline),
          { timeout: 5_000 },
        ),
      logger,
    );
    // The function is killed at the end of its time (no catch runs): the job ends BATCH.lastReceiveGuardMs before.
    const response = await handler(
      sqsEvent([{ id: 'a', body: JSON.stringify(part), receiveCount: QUEUE.maxReceiveCount }]),
      endingIn(BATCH.lastReceiveGuardMs + 100),
    );
    expect(response.batchItemFailures).toEqual([]);
    const job = await batch.jobs.getJob('j');
    expect(job).toMatchObject({ state: 'failed', code: 'BATCH_PART_FAILED', partsDone: 0 });
    expect(job?.error).toMatch(
      /^part 0 \(batch\/j\/input\.jsonl bytes 0-140\) failed after 3 attempts: the invocation ran out of time/,
    );
    expect(logger.lines.map((l) => [l.level, l.message])).toContainEqual(failedAtDeadline);
  });

  it('leaves the job to the next receive on an earlier one', async () => {
    // The model answers after the time a last receive's guard would have ended the job at.
    const { batch, part, handler } = await slowJob(() => new Promise((r) => setTimeout(r, 400)));
    await handler(
      sqsEvent([{ id: 'a', body: JSON.stringify(part), receiveCount: QUEUE.maxReceiveCount - 1 }]),
      endingIn(BATCH.lastReceiveGuardMs + 100),
    );
    expect(await batch.jobs.getJob('j')).toMatchObject({ state: 'running', partsDone: 1 });
  });
});

describe('async worker handler: dead letters', () => {
  const DLQ = 'arn:aws:sqs:us-east-1:1:dead-letters';
  const body = (m: Record<string, unknown>) => JSON.stringify(m);

  /**
   * A worker consuming the dead-letter queue DLQ, over one async request (ID(1)), a PENDING version 1 of 'm' and a
   * running one-part batch job 'j'; `runs` counts the runs of anything (a dead letter is never run).
   */
  async function setup() {
    const runs: string[] = [];
    const blobs = new MemoryBlobStore();
    await blobs.put(
      ASYNC_KEYS.request(ID(1)),
      JSON.stringify({ requestId: ID(1), name: 'm1', ref: 'prod', request: { inputs: [] } }),
    );
    const repo = await pendingVersion(false);
    const registry: RegistryDeps = { repo, store: new MemoryArtifactStore(), inspector: {} as never };
    const {
      batch,
      deps: batchDeps,
      part,
    } = await onePartJob(async () => {
      runs.push('batch');
    });
    const logger = recordingLogger();
    const handler = createAsyncWorkerHandler({
      worker: {
        blobs,
        predictor: {
          infer: async (name: string) => {
            runs.push(name);
            return { model_name: name } as never;
          },
        },
      },
      batch: batchDeps,
      registry,
      logger,
      deadLetterSources: [DLQ],
    });
    return { runs, blobs, repo, batch, part, logger, handler };
  }

  it('answers failed an async request that no receive answered, without running it', async () => {
    const { runs, blobs, handler } = await setup();
    const response = await handler(
      sqsEvent([{ id: 'a', body: body({ type: 'async-infer', requestId: ID(1) }) }], DLQ),
      budget,
    );
    expect(response).toEqual({ batchItemFailures: [] });
    expect(runs).toEqual([]);
    expect(JSON.parse(blobs.text(ASYNC_KEYS.result(ID(1))) ?? '')).toMatchObject({
      status: 'failed',
      code: 'PROCESSING_FAILED',
      error: `the request could not be processed after ${QUEUE.maxReceiveCount} attempts`,
    });
  });

  it('keeps the answer of an async request its last receive answered', async () => {
    const { runs, blobs, handler } = await setup();
    // The same message from the work queue runs (and answers); from the dead-letter queue it changes nothing.
    await handler(sqsEvent([{ id: 'a', body: body({ type: 'async-infer', requestId: ID(1) }) }]), budget);
    expect(runs).toEqual(['m1']);
    const answered = blobs.text(ASYNC_KEYS.result(ID(1)));
    expect(JSON.parse(answered ?? '')).toMatchObject({ status: 'done' });
    await handler(
      sqsEvent([{ id: 'a', body: body({ type: 'async-infer', requestId: ID(1) }) }], DLQ),
      budget,
    );
    expect(blobs.text(ASYNC_KEYS.result(ID(1)))).toBe(answered);
  });

  it('ends FAILED a PENDING version whose completion was dead-lettered, and leaves a version no longer PENDING', async () => {
    const { repo, handler } = await setup();
    const message = body({ type: 'register-complete', name: 'm', version: 1 });
    await handler(sqsEvent([{ id: 'a', body: message }], DLQ), budget);
    const failed = await repo.getVersion('m', 1);
    expect(failed).toMatchObject({ status: 'FAILED' });
    expect(failed?.failureReason).toBe(
      `the registration could not be completed after ${QUEUE.maxReceiveCount} attempts: ${DEAD_LETTER_REASON}`,
    );
    await handler(sqsEvent([{ id: 'b', body: message }], DLQ), budget);
    expect(await repo.getVersion('m', 1)).toEqual(failed);
  });

  it("ends failed, naming the part, the job of a dead-lettered part; the job's first end stands", async () => {
    const { runs, batch, part, handler } = await setup();
    await handler(sqsEvent([{ id: 'a', body: JSON.stringify(part) }], DLQ), budget);
    expect(runs).toEqual([]);
    const job = await batch.jobs.getJob('j');
    expect(job).toMatchObject({ state: 'failed', code: 'BATCH_PART_FAILED', partsDone: 0 });
    expect(job?.error).toBe(
      `part 0 (batch/j/input.jsonl bytes 0-140) failed after ${QUEUE.maxReceiveCount} attempts: ${DEAD_LETTER_REASON}`,
    );
    // Its aggregation dead-lettered too (a job fails once): the first end stands.
    await handler(
      sqsEvent(
        [{ id: 'b', body: body({ type: 'batch-aggregate', jobId: 'j', inputTag: job?.inputTag }) }],
        DLQ,
      ),
      budget,
    );
    expect(await batch.jobs.getJob('j')).toEqual(job);
  });

  it('gives back the dead letter of an async request whose answer could not be read or written', async () => {
    const { blobs, handler } = await setup();
    const message = body({ type: 'async-infer', requestId: ID(1) });
    const { head, put } = blobs;
    const down = (what: string) => async () => {
      throw new UnavailableError(`${what} down`);
    };
    // A result that cannot be read is never written over (it may be an answer); one that cannot be written is
    // tried again.
    for (const broken of [{ head: down('head') }, { put: down('put') }]) {
      Object.assign(blobs, broken);
      expect(await handler(sqsEvent([{ id: 'a', body: message }], DLQ), budget)).toEqual({
        batchItemFailures: [{ itemIdentifier: 'a' }],
      });
      Object.assign(blobs, { head, put });
      expect(blobs.text(ASYNC_KEYS.result(ID(1)))).toBeUndefined();
    }
    expect(await handler(sqsEvent([{ id: 'a', body: message }], DLQ), budget)).toEqual({
      batchItemFailures: [],
    });
    expect(JSON.parse(blobs.text(ASYNC_KEYS.result(ID(1))) ?? '')).toMatchObject({
      code: 'PROCESSING_FAILED',
    });
  });

  it('gives back a dead letter whose end fails, and drops one that is no work message', async () => {
    const { batch, part, logger, handler } = await setup();
    const getJob = batch.jobs.getJob.bind(batch.jobs);
    let down = true;
    batch.jobs.getJob = async (id: string) => {
      if (down) throw new UnavailableError('table down');
      return getJob(id);
    };
    const event = sqsEvent(
      [
        { id: 'a', body: 'garbage' },
        { id: 'b', body: JSON.stringify(part) },
      ],
      DLQ,
    );
    expect(await handler(event, budget)).toEqual({ batchItemFailures: [{ itemIdentifier: 'b' }] });
    expect(await getJob('j')).toMatchObject({ state: 'running' });
    expect(logger.lines.map((l) => [l.level, l.message])).toEqual(
      expect.arrayContaining([
        ['ERROR', 'dead letter dropped: not a work message'],
        ['ERROR', 'batch job not failed'],
      ]),
    );
    down = false;
    expect(await handler(sqsEvent([{ id: 'b', body: JSON.stringify(part) }], DLQ), budget)).toEqual({
      batchItemFailures: [],
    });
    expect(await getJob('j')).toMatchObject({ state: 'failed', code: 'BATCH_PART_FAILED' });
  });
});

describe("async worker handler: the queues' maxReceiveCount (MAAS_MAX_RECEIVE_COUNT)", () => {
  const DLQ = 'arn:aws:sqs:us-east-1:1:dead-letters';
  const msg = JSON.stringify({ type: 'async-infer', requestId: ID(1) });

  /**
   * The worker of a function whose environment sets MAAS_MAX_RECEIVE_COUNT to `maxReceiveCount` (and names DLQ), as
   * its composition root builds it, over one async request that always fails.
   */
  async function failingRequest(maxReceiveCount: number, onWorker?: number) {
    const settings = workerSettingsFromConfig(
      readConfig({
        [ENV.table]: 't',
        [ENV.bucket]: 'b',
        [ENV.maxReceiveCount]: String(maxReceiveCount),
        [ENV.deadLetterQueueArns]: DLQ,
      }),
    );
    const blobs = new MemoryBlobStore();
    await blobs.put(
      ASYNC_KEYS.request(ID(1)),
      JSON.stringify({ requestId: ID(1), name: 'm1', ref: 'prod', request: { inputs: [] } }),
    );
    const handler = createAsyncWorkerHandler({
      worker: {
        blobs,
        predictor: {
          infer: async () => {
            throw new Error('disk on fire');
          },
        },
        ...(onWorker !== undefined ? { maxReceiveCount: onWorker } : {}),
      },
      batch: memoryBatch(),
      logger: quiet,
      ...settings,
    });
    const result = () => blobs.text(ASYNC_KEYS.result(ID(1)));
    return { handler, result };
  }

  it('ends a failing async request on the configured last receive, not on QUEUE.maxReceiveCount', async () => {
    // Five receives: the third is not the last, SQS delivers it twice more.
    const { handler, result } = await failingRequest(5);
    for (let n = 1; n < 5; n++) {
      await handler(sqsEvent([{ id: 'a', body: msg, receiveCount: n }]), budget);
      expect(result(), `receive ${n}`).toBeUndefined();
    }
    await handler(sqsEvent([{ id: 'a', body: msg, receiveCount: 5 }]), budget);
    expect(JSON.parse(result() ?? '')).toMatchObject({
      status: 'failed',
      code: 'PROCESSING_FAILED',
      error: 'the request could not be processed after 5 attempts',
    });
  });

  it('recognises a last receive below QUEUE.maxReceiveCount', async () => {
    const { handler, result } = await failingRequest(2);
    await handler(sqsEvent([{ id: 'a', body: msg, receiveCount: 1 }]), budget);
    expect(result()).toBeUndefined();
    await handler(sqsEvent([{ id: 'a', body: msg, receiveCount: 2 }]), budget);
    expect(JSON.parse(result() ?? '')).toMatchObject({ status: 'failed', code: 'PROCESSING_FAILED' });
  });

  it("takes the handler's count over the worker deps' own, for every kind of message", async () => {
    const { handler, result } = await failingRequest(2, 5);
    await handler(sqsEvent([{ id: 'a', body: msg, receiveCount: 2 }]), budget);
    expect(JSON.parse(result() ?? '')).toMatchObject({ code: 'PROCESSING_FAILED' });
  });

  it('ends a dead letter as the configured last receive would have', async () => {
    const { handler, result } = await failingRequest(2);
    expect(await handler(sqsEvent([{ id: 'a', body: msg }], DLQ), budget)).toEqual({ batchItemFailures: [] });
    expect(JSON.parse(result() ?? '')).toMatchObject({
      code: 'PROCESSING_FAILED',
      error: 'the request could not be processed after 2 attempts',
    });
  });

  it("ends a batch job on the configured last receive's deadline only", async () => {
    const endingIn = (ms: number) => {
      const end = Date.now() + ms;
      return { getRemainingTimeInMillis: () => end - Date.now() };
    };
    const receive = async (maxReceiveCount: number, receiveCount: number) => {
      const { batch, deps, part } = await onePartJob(() => new Promise((r) => setTimeout(r, 400)));
      const handler = createAsyncWorkerHandler({
        worker: { blobs: new MemoryBlobStore(), predictor: {} as never },
        batch: deps,
        logger: quiet,
        ...workerSettingsFromConfig(
          readConfig({ [ENV.table]: 't', [ENV.bucket]: 'b', [ENV.maxReceiveCount]: String(maxReceiveCount) }),
        ),
      });
      await handler(
        sqsEvent([{ id: 'a', body: JSON.stringify(part), receiveCount }]),
        endingIn(BATCH.lastReceiveGuardMs + 100),
      );
      return (await batch.jobs.getJob('j'))?.state;
    };
    // Receive 3 of 5 is not the last: the part is left to the next receive.
    expect(await receive(5, QUEUE.maxReceiveCount)).toBe('running');
    expect(await receive(5, 5)).toBe('failed');
    expect(await receive(2, 2)).toBe('failed');
  });
});

describe("async worker handler: the invocation's time", () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** An invocation that ends `ms` from now. */
  const endingIn = (ms: number) => {
    const end = Date.now() + ms;
    return { getRemainingTimeInMillis: () => end - Date.now() };
  };
  /** A promise the test resolves: work held until then. */
  const held = () => {
    let release = () => {};
    const promise = new Promise<void>((r) => {
      release = r;
    });
    return { promise, release };
  };
  /** `work`, or 'still waiting' after `ms` (a handler that does not answer its delivery before the deadline). */
  const within = <T>(work: Promise<T>, ms = 1_500) =>
    Promise.race([work, sleep(ms).then(() => 'still waiting' as const)]);
  const msg = (n: number) => JSON.stringify({ type: 'async-infer', requestId: ID(n) });

  /** Async requests 1-3 of models m1-m3 and a worker whose predictor runs `infer`. */
  async function asyncSetup(infer: (name: string) => Promise<unknown>, requeue?: RecordingQueue) {
    const blobs = new MemoryBlobStore();
    for (const n of [1, 2, 3]) {
      await blobs.put(
        ASYNC_KEYS.request(ID(n)),
        JSON.stringify({ requestId: ID(n), name: `m${n}`, ref: 'prod', request: { inputs: [] } }),
      );
    }
    const ran: string[] = [];
    const logger = recordingLogger();
    const handler = createAsyncWorkerHandler({
      worker: {
        blobs,
        predictor: {
          infer: async (name) => {
            ran.push(name);
            return (await infer(name)) as never;
          },
        },
      },
      batch: memoryBatch(),
      ...(requeue ? { requeue } : {}),
      logger,
    });
    const result = (n: number) => {
      const text = blobs.text(ASYNC_KEYS.result(ID(n)));
      return text === undefined ? undefined : JSON.parse(text);
    };
    return { blobs, ran, logger, handler, result };
  }

  it('starts no record after the first with less than QUEUE.startReserveMs left, and gives those back', async () => {
    const { ran, handler, result } = await asyncSetup(async (name) => {
      await sleep(400);
      return { model_name: name };
    });
    // The first request leaves less than the reserve: the other two wait for another invocation.
    const response = await handler(
      sqsEvent([
        { id: 'a', body: msg(1) },
        { id: 'b', body: msg(2) },
        { id: 'c', body: msg(3), receiveCount: QUEUE.maxReceiveCount - 1 },
      ]),
      endingIn(QUEUE.startReserveMs + 300),
    );
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'b' }, { itemIdentifier: 'c' }]);
    expect(ran).toEqual(['m1']);
    expect(result(1)).toMatchObject({ status: 'done' });
    expect(result(2)).toBeUndefined();
    expect(result(3)).toBeUndefined();
  });

  it('sends a record not started on its last receive again as a new message, or else answers it failed', async () => {
    const slowFirst = async (name: string) => {
      if (name === 'm1') await sleep(400);
      return { model_name: name };
    };
    const event = sqsEvent([
      { id: 'a', body: msg(1) },
      { id: 'b', body: msg(2), receiveCount: QUEUE.maxReceiveCount },
    ]);
    // With the work queue: sent again (its record succeeds), not run, not answered.
    const requeue = new RecordingQueue();
    const sent = await asyncSetup(slowFirst, requeue);
    const response = await sent.handler(event, endingIn(QUEUE.startReserveMs + 300));
    expect(response.batchItemFailures).toEqual([]);
    expect(requeue.sent).toEqual([{ type: 'async-infer', requestId: ID(2) }]);
    expect(sent.ran).toEqual(['m1']);
    expect(sent.result(2)).toBeUndefined();
    // Without one: answered failed before the queue dead-letters it.
    const unsent = await asyncSetup(slowFirst);
    const last = await unsent.handler(event, endingIn(QUEUE.startReserveMs + 300));
    expect(last.batchItemFailures).toEqual([{ itemIdentifier: 'b' }]);
    expect(unsent.ran).toEqual(['m1']);
    expect(unsent.result(2)).toMatchObject({ status: 'failed', code: 'PROCESSING_FAILED' });
  });

  it('does not acknowledge a record whose copy is still being sent when the delivery is answered at the deadline', async () => {
    const sending = held();
    class SlowQueue extends RecordingQueue {
      override async send(message: Parameters<RecordingQueue['send']>[0]) {
        await sending.promise;
        return super.send(message);
      }
    }
    const requeue = new SlowQueue();
    const { handler, ran } = await asyncSetup(async (name) => {
      if (name === 'm1') await sleep(300);
      return { model_name: name };
    }, requeue);
    const response = await within(
      handler(
        sqsEvent([
          { id: 'a', body: msg(1) },
          { id: 'b', body: msg(2), receiveCount: QUEUE.maxReceiveCount },
        ]),
        endingIn(QUEUE.deadlineMarginMs + 600),
      ),
    );
    // Its copy not sent yet: given back, never deleted as done (it would be lost were the copy never sent).
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'b' }] });
    expect(ran).toEqual(['m1']);
    sending.release();
    await sleep(10);
    expect(requeue.sent).toEqual([{ type: 'async-infer', requestId: ID(2) }]);
  });

  it('answers failed (PROCESSING_FAILED) a request still running at the deadline of its last receive, and keeps that answer', async () => {
    const run = held();
    const { handler, logger, result } = await asyncSetup(async (name) => {
      await run.promise;
      return { model_name: name };
    });
    const response = await within(
      handler(
        sqsEvent([{ id: 'a', body: msg(1), receiveCount: QUEUE.maxReceiveCount }]),
        endingIn(QUEUE.deadlineMarginMs + 100),
      ),
    );
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'a' }] });
    const failed = result(1);
    expect(failed).toMatchObject({ status: 'failed', code: 'PROCESSING_FAILED' });
    expect(logger.lines.map((l) => l.message)).toContain(
      'work message still running at the deadline of its invocation',
    );
    // The run ends late (Lambda would resume it in a later invocation): the first answer stands.
    run.release();
    await sleep(20);
    expect(result(1)).toEqual(failed);
  });

  it('leaves a request still running at the deadline of an earlier receive to its next receive', async () => {
    const run = held();
    const { handler, result } = await asyncSetup(async (name) => {
      await run.promise;
      return { model_name: name };
    });
    const response = await within(
      handler(
        sqsEvent([{ id: 'a', body: msg(1), receiveCount: QUEUE.maxReceiveCount - 1 }]),
        endingIn(QUEUE.deadlineMarginMs + 100),
      ),
    );
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'a' }] });
    expect(result(1)).toBeUndefined();
    run.release();
    await sleep(20);
    expect(result(1)).toMatchObject({ status: 'done' });
  });

  /**
   * A PENDING version 1 of 'm' (a derived one: `derive`), and a worker over it whose first reads of the version
   * wait for `release` (a registry read still running at the deadline).
   */
  async function pendingSetup(derived: boolean) {
    const repo = await pendingVersion(derived);
    const run = held();
    const gated = Object.assign(Object.create(repo) as MemoryRegistryRepository, {
      getVersion: async (name: string, version: number) => {
        await run.promise;
        return repo.getVersion(name, version);
      },
    });
    const registry: RegistryDeps = { repo: gated, store: new MemoryArtifactStore(), inspector: {} as never };
    const handler = createAsyncWorkerHandler({
      worker: { blobs: new MemoryBlobStore(), predictor: {} as never },
      batch: memoryBatch(),
      registry,
      derive: { ...registry, transformer: {} as never, engine: {} as never },
      logger: quiet,
    });
    const body = JSON.stringify(
      derived
        ? { type: 'derive', name: 'm', version: 1, gate: gateThresholds() }
        : { type: 'register-complete', name: 'm', version: 1 },
    );
    return { repo, run, handler, body };
  }

  for (const derived of [false, true]) {
    const type = derived ? 'derive' : 'register-complete';
    it(`ends FAILED the version of a ${type} still running at the deadline of its last receive`, async () => {
      const { repo, run, handler, body } = await pendingSetup(derived);
      const response = await within(
        handler(
          sqsEvent([{ id: 'a', body, receiveCount: QUEUE.maxReceiveCount }]),
          endingIn(QUEUE.deadlineMarginMs + 100),
        ),
      );
      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'a' }] });
      const failed = await repo.getVersion('m', 1);
      expect(failed).toMatchObject({ status: 'FAILED' });
      expect(failed?.failureReason).toMatch(
        /could not be completed after 3 attempts: the invocation ran out of time/,
      );
      // The late run finds the version no longer PENDING and leaves it.
      run.release();
      await sleep(20);
      expect(await repo.getVersion('m', 1)).toEqual(failed);
    });

    it(`leaves the PENDING version of a ${type} still running at the deadline of an earlier receive`, async () => {
      const { repo, run, handler, body } = await pendingSetup(derived);
      const response = await within(
        handler(
          sqsEvent([{ id: 'a', body, receiveCount: QUEUE.maxReceiveCount - 1 }]),
          endingIn(QUEUE.deadlineMarginMs + 100),
        ),
      );
      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'a' }] });
      expect(await repo.getVersion('m', 1)).toMatchObject({ status: 'PENDING' });
      run.release();
    });
  }
});

describe('recordLastAttemptFailure', () => {
  it('keeps an answer written already', async () => {
    const blobs = new MemoryBlobStore();
    await blobs.put(ASYNC_KEYS.request(ID(1)), JSON.stringify({ requestId: ID(1), name: 'm1', ref: 'prod' }));
    const done = JSON.stringify({ status: 'done', result: {}, completedAt: 't' });
    await blobs.put(ASYNC_KEYS.result(ID(1)), done);
    const deps = { blobs, predictor: {} as never };
    expect(await recordLastAttemptFailure(deps, ID(1), QUEUE.maxReceiveCount, new Error('late'))).toBe(false);
    expect(blobs.text(ASYNC_KEYS.result(ID(1)))).toBe(done);
  });
});

describe('async API handler', () => {
  const setup = () => {
    const blobs = new MemoryBlobStore();
    const queue = new RecordingQueue();
    let n = 0;
    const handler = createAsyncApiHandler({
      blobs,
      links: blobs,
      queue,
      newId: () => ID(++n),
      logger: quiet,
    });
    const call = async (method: string, path: string, body?: unknown) =>
      parseResult(await handler(apiEvent(method, path, body === undefined ? {} : { body })));
    return { blobs, queue, call };
  };
  const body = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] };

  it('stores and queues a request, answers 202, then pending/done/failed', async () => {
    const { blobs, queue, call } = setup();
    expect(await call('POST', '/v2/models/iris/versions/staging/infer-async', body)).toMatchObject({
      status: 202,
      body: { requestId: ID(1) },
    });
    expect(queue.sent).toEqual([{ type: 'async-infer', requestId: ID(1) }]);
    expect(JSON.parse(blobs.text(ASYNC_KEYS.request(ID(1))) ?? '')).toMatchObject({
      name: 'iris',
      ref: 'staging',
      request: body,
      actor: 'anonymous',
    });
    expect((await call('GET', `/async/${ID(1)}`)).body).toEqual({ status: 'pending' });
    await blobs.put(
      ASYNC_KEYS.result(ID(1)),
      JSON.stringify({ status: 'done', result: { ok: 1 }, completedAt: 't' }),
    );
    expect((await call('GET', `/async/${ID(1)}`)).body).toEqual({ status: 'done', result: { ok: 1 } });
  });

  describe('results too large to answer inline', () => {
    const MAX = 2000;
    const large = () => {
      const blobs = new MemoryBlobStore();
      const reads: string[] = [];
      const get = blobs.get.bind(blobs);
      blobs.get = async (key: string) => {
        reads.push(key);
        return get(key);
      };
      const handler = createAsyncApiHandler({
        blobs,
        links: blobs,
        queue: new RecordingQueue(),
        maxResponseBytes: MAX,
        clock: { now: () => new Date('2026-12-01T00:00:00.000Z') },
        logger: quiet,
      });
      return { blobs, reads, status: (id: string) => handler(apiEvent('GET', `/async/${id}`)) };
    };
    const done = (result: unknown) => JSON.stringify({ status: 'done', result, completedAt: 't' });
    /** The answer's body as Lambda counts it: the whole response as JSON, the body a string in it. */
    const carried = (r: { body?: string }) => Buffer.byteLength(JSON.stringify(r.body ?? ''));
    /** The link answer `r` is, with `download`'s fields besides its url; answers that url. */
    const linked = (r: Parameters<typeof parseResult>[0], fields: Record<string, unknown>): string => {
      const { download } = parseResult<{ status: string; download: { url: string } }>(r).body;
      expect(parseResult(r).body).toEqual({
        status: 'done',
        download: { url: download.url, expiresAt: '2026-12-01T00:05:00.000Z', ...fields },
      });
      return download.url;
    };

    it('answers a JSON result inline while it fits, else a link to the stored document, never read when larger', async () => {
      const { blobs, reads, status } = large();
      const small = done({ outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: [1] }] });
      await blobs.put(ASYNC_KEYS.result(ID(1)), small);
      const inline = await status(ID(1));
      expect(parseResult(inline).body).toEqual({ status: 'done', result: JSON.parse(small).result });
      expect(carried(inline)).toBeLessThanOrEqual(MAX);

      // Under the limit as stored, over it once escaped again as the response's body string: a link.
      const quoted = done({
        outputs: [{ name: 'y', datatype: 'BYTES', shape: [1], data: ['"'.repeat(900)] }],
      });
      expect(quoted.length).toBeLessThan(MAX);
      await blobs.put(ASYNC_KEYS.result(ID(2)), quoted);
      // Over the limit as stored: a link, and the document is not read.
      const big = done({
        outputs: [{ name: 'y', datatype: 'FP32', shape: [500], data: Array(500).fill(1.5) }],
      });
      expect(big.length).toBeGreaterThan(MAX);
      await blobs.put(ASYNC_KEYS.result(ID(3)), big);
      reads.length = 0;
      for (const [id, text] of [
        [ID(2), quoted],
        [ID(3), big],
      ] as const) {
        const r = await status(id);
        expect(r.statusCode).toBe(200);
        const url = linked(r, { sizeBytes: Buffer.byteLength(text), contentType: 'application/json' });
        expect(carried(r)).toBeLessThanOrEqual(MAX);
        expect(Buffer.from(blobs.follow(url) as Uint8Array).toString('utf8')).toBe(text);
      }
      expect(reads).toEqual([ASYNC_KEYS.result(ID(2))]);
    });

    it('answers a binary result inline while its base64 fits, else a link to the stored answer, never read', async () => {
      const { blobs, reads, status } = large();
      const header = '{"outputs":[{"name":"y"}]}';
      const stored = (n: number) => Buffer.concat([Buffer.from(header), Buffer.alloc(n - header.length, 7)]);
      // The binary form adds `{"status":"done","result":` and `}` (27 bytes); the response carries it as a string
      // of its base64 (4 bytes of 3, and 2 quotes).
      const fits = Math.floor((MAX - 2) / 4) * 3 - 27;
      for (const [id, n] of [
        [ID(1), fits],
        [ID(2), fits + 1],
      ] as const) {
        await blobs.put(
          ASYNC_KEYS.result(id),
          JSON.stringify({ status: 'done', binary: { headerLength: header.length }, completedAt: 't' }),
        );
        await blobs.put(ASYNC_KEYS.resultBody(id), stored(n));
      }
      const inline = await status(ID(1));
      expect(inline.headers).toMatchObject({ 'content-type': 'application/octet-stream' });
      expect(Buffer.from(inline.body as string, 'base64').subarray(-(fits - header.length))).toEqual(
        stored(fits).subarray(header.length),
      );
      expect(carried(inline)).toBeLessThanOrEqual(MAX);

      reads.length = 0;
      const r = await status(ID(2));
      expect(r.headers).toMatchObject({ 'content-type': 'application/json' });
      const url = linked(r, {
        sizeBytes: fits + 1,
        contentType: 'application/octet-stream',
        headerLength: header.length,
      });
      expect(Buffer.from(blobs.follow(url) as Uint8Array)).toEqual(stored(fits + 1));
      expect(reads).toEqual([ASYNC_KEYS.result(ID(2))]);
    });
  });

  it('answers 400 for bad input, 404 for unknown ids and routes, 413 for large bodies', async () => {
    const { call, queue } = setup();
    expect(await call('POST', '/v2/models/iris/infer-async', { inputs: 'x' })).toMatchObject({ status: 400 });
    expect(await call('POST', '/v2/models/Bad%20Name/infer-async', body)).toMatchObject({
      status: 400,
      body: { code: 'INVALID_NAME' },
    });
    expect(await call('GET', `/async/${ID(9)}`)).toMatchObject({
      status: 404,
      body: { code: 'ASYNC_REQUEST_NOT_FOUND' },
    });
    expect(await call('GET', '/async/nope')).toMatchObject({ status: 400 });
    expect(queue.sent).toEqual([]);
    const big = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }],
      pad: 'x'.repeat(7_000_000),
    };
    expect(await call('POST', '/v2/models/iris/infer-async', big)).toMatchObject({ status: 413 });
  });

  it('stores feedback as one JSONL object (201 {accepted}) and refuses bad items without storing', async () => {
    const { blobs, call } = setup();
    const r = await call('POST', '/v2/models/iris/feedback', [
      { inferenceId: 'a', label: 'setosa' },
      { inferenceId: 'b', value: 2 },
    ]);
    expect(r).toMatchObject({ status: 201, body: { accepted: 2 } });
    const keys = [...blobs.objects.keys()];
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(new RegExp(`^feedback/iris/\\d{4}/\\d{2}/\\d{2}/\\d{2}/${ID(1)}\\.jsonl$`));
    const lines = (blobs.text(keys[0] as string) ?? '')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toMatchObject([
      { inferenceId: 'a', label: 'setosa', model: 'iris', actor: 'anonymous' },
      { inferenceId: 'b', value: 2, model: 'iris', actor: 'anonymous' },
    ]);
    expect(await call('POST', '/v2/models/iris/feedback', { inferenceId: 'c' })).toMatchObject({
      status: 400,
      body: { code: 'INVALID_FEEDBACK' },
    });
    expect(blobs.objects.size).toBe(1);
  });

  it('checks the capture query first, and fails (500, logged) when no object reader is configured', async () => {
    const logger = recordingLogger();
    const blobs = new MemoryBlobStore();
    const handler = createAsyncApiHandler({ blobs, links: blobs, queue: new RecordingQueue(), logger });
    const get = async (path: string) => parseResult(await handler(apiEvent('GET', path)));
    expect(await get('/models/iris/capture?limit=0')).toMatchObject({
      status: 400,
      body: { code: 'INVALID_LIMIT' },
    });
    expect(logger.lines).toEqual([]);
    expect(await get('/models/iris/capture')).toMatchObject({ status: 500, body: { code: 'INTERNAL' } });
    expect(logger.lines.map((l) => l.level)).toEqual(['ERROR']);
  });
});

describe('S3 events handler', () => {
  it('decodes keys as S3 encodes them', () => {
    expect(decodeS3Key('incoming/my+model/a%2Bb.onnx')).toBe('incoming/my model/a+b.onnx');
  });

  it('dispatches incoming models and batch inputs, ignores other keys, and fails after trying every record', async () => {
    const registered: string[] = [];
    const batch = memoryBatch();
    const handler = createS3EventsHandler({
      upload: {
        register: async (input) => {
          registered.push(input.sourceKey);
          if (input.name === 'down') throw new UnavailableError('table unavailable');
          return { version: 1, sha256: 'ab' } as ModelVersion;
        },
        blobs: new MemoryBlobStore(),
        guard: new MemoryGuard(),
      },
      batch,
      logger: quiet,
    });
    const event = {
      Records: [
        ...s3Event('b', 'incoming/iris/v 1.onnx', 'e1').Records,
        ...s3Event('b', 'incoming/down/m.onnx', 'e2').Records,
        ...s3Event('b', 'models/iris/x.onnx', 'e3').Records,
        ...s3Event('b', 'batch/j1/input.jsonl', 'e4').Records,
      ],
    };
    const error = await handler(event, budget).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(S3EventRecordsFailedError);
    expect((error as S3EventRecordsFailedError).failures.map((f) => f.key)).toEqual(['incoming/down/m.onnx']);
    expect(registered).toEqual(['incoming/iris/v 1.onnx', 'incoming/down/m.onnx']);

    const ok = await handler(
      { Records: [event.Records[0], event.Records[2], event.Records[3]] as never },
      budget,
    );
    expect(ok.map((o) => o.kind)).toEqual(['register', 'ignored', 'batch']);
    // The input is not in the store (any more): the start has nothing to do.
    expect(ok[2]).toMatchObject({ kind: 'batch', jobId: 'j1', state: 'skipped' });
    const cancel = await handler(s3Event('b', 'batch/j1/cancel', 'e5'), budget);
    expect(cancel).toEqual([expect.objectContaining({ kind: 'batch', jobId: 'j1' })]);
    // A marker that is not in the store (any more) starts nothing; one that is, with no job.json, fails its job.
    const gone = await handler(s3Event('b', 'batch/j2/input/_SUCCESS', 'e6'), budget);
    expect(gone).toEqual([expect.objectContaining({ kind: 'batch', jobId: 'j2', state: 'skipped' })]);
    await batch.objects.put('batch/j2/input/_SUCCESS', '');
    const eTag = (await batch.objects.head('batch/j2/input/_SUCCESS'))?.eTag as string;
    const marker = await handler(s3Event('b', 'batch/j2/input/_SUCCESS', eTag), budget);
    expect(marker).toEqual([expect.objectContaining({ kind: 'batch', jobId: 'j2', state: 'failed' })]); // no job.json
  });
});

describe('register on upload', () => {
  const obj = { bucket: 'b', key: 'incoming/iris/m.onnx', eTag: 'abc' };

  it('knows which keys register which model', () => {
    expect(incomingModelName('incoming/iris/m.onnx')).toBe('iris');
    expect(incomingModelName('incoming/iris/sub/dir/m.onnx')).toBe('iris');
    expect(incomingModelName('incoming/m.onnx')).toBeUndefined();
    expect(incomingModelName('incoming/Iris/m.onnx')).toBeUndefined();
    expect(incomingModelName('incoming/iris/m.txt')).toBeUndefined();
    expect(incomingModelName('uploads/iris/m.onnx')).toBeUndefined();
  });

  it('records an unloadable model once and answers FAILED, without throwing', async () => {
    let calls = 0;
    const deps = {
      register: async (): Promise<ModelVersion> => {
        calls++;
        throw new UnprocessableModelError('version 1 of iris is FAILED: not an ONNX model');
      },
      blobs: new MemoryBlobStore(),
      guard: new MemoryGuard(),
    };
    for (let i = 0; i < 3; i++) {
      expect(await registerOnUpload(deps, obj)).toMatchObject({ status: 'FAILED', name: 'iris' });
    }
    expect(calls).toBe(1);
  });

  it('waits for a concurrent delivery holding the lock, then returns its outcome', async () => {
    let attempts = 0;
    const guard: IdempotencyGuard = {
      async once<T>(_key: Record<string, string>, work: () => Promise<T>) {
        attempts++;
        if (attempts < 3) throw new AlreadyInProgressError('busy');
        return work();
      },
    };
    const deps = {
      register: async () => ({ version: 4, sha256: 'cd' }) as ModelVersion,
      blobs: new MemoryBlobStore(),
      guard,
      lockRetryDelayMs: 1,
    };
    expect(await registerOnUpload(deps, obj)).toEqual({
      status: 'REGISTERED',
      name: 'iris',
      version: 4,
      sha256: 'cd',
    });
    expect(attempts).toBe(3);
    await expect(
      registerOnUpload(
        {
          ...deps,
          lockRetries: 0,
          guard: {
            once: async () => {
              throw new AlreadyInProgressError('busy');
            },
          },
        },
        obj,
      ),
    ).rejects.toThrow(AlreadyInProgressError);
  });

  it('keys the idempotency on the version id, else the ETag, else the content hash', async () => {
    const keys: Record<string, string>[] = [];
    const guard: IdempotencyGuard = {
      async once<T>(key: Record<string, string>, work: () => Promise<T>) {
        keys.push(key);
        return work();
      },
    };
    const blobs = new MemoryBlobStore();
    const deps = { register: async () => ({ version: 1, sha256: 'x' }) as ModelVersion, blobs, guard };
    await registerOnUpload(deps, { ...obj, versionId: 'v9' });
    await registerOnUpload(deps, obj);
    await blobs.put('incoming/iris/m.onnx', 'bytes');
    const { eTag: _e, ...noTag } = obj;
    await registerOnUpload(deps, noTag);
    // A store that reports no ETag (some S3-compatible servers): the bytes' sha256.
    const bare = Object.assign(new MemoryBlobStore(), { head: async () => ({ sizeBytes: 5 }) });
    await bare.put('incoming/iris/m.onnx', 'bytes');
    await registerOnUpload({ ...deps, blobs: bare }, noTag);
    expect(keys.map((k) => k.tag)).toEqual([
      'version:v9',
      'etag:abc',
      `etag:${(await blobs.head(obj.key))?.eTag}`,
      `sha256:${createHash('sha256').update('bytes').digest('hex')}`,
    ]);
    expect(await registerOnUpload(deps, { bucket: 'b', key: 'incoming/iris/gone.onnx' })).toMatchObject({
      status: 'IGNORED',
    });
  });
});

describe('async API Lambda entry', () => {
  it('answers a JSON 500 (the cause logged, not answered) when its environment is unusable', async () => {
    // Prepare: a table, but no bucket and no queue; the entry is built at import, from the environment.
    vi.resetModules();
    vi.stubEnv('MAAS_TABLE', 'maas-registry');
    vi.stubEnv('MAAS_BUCKET', '');
    vi.stubEnv('MAAS_QUEUE_URL', '');
    const written: string[] = [];
    const capture = (chunk: unknown) => {
      written.push(String(chunk));
      return true;
    };
    vi.spyOn(process.stdout, 'write').mockImplementation(capture);
    vi.spyOn(process.stderr, 'write').mockImplementation(capture);
    try {
      // Act
      const { handler } = await import('../../functions/handlers/async-api');
      const r = parseResult(await handler(apiEvent('GET', '/async/0123456789abcdef0123456789abcdef')));
      // Assess
      expect(r).toMatchObject({ status: 500, body: { error: 'internal error', code: 'INTERNAL' } });
      await vi.waitFor(() => expect(written.join('')).toContain('MAAS_BUCKET is not set'), {
        timeout: 5_000,
      });
    } finally {
      vi.restoreAllMocks();
      vi.unstubAllEnvs();
    }
  });
});

/**
 * DynamoBatchJobRepository on DynamoDB Local: the job record's conditional writes under the concurrency batch
 * scoring puts them through (parts completed at once and redelivered, indexes handed out at once, one
 * aggregation, an end that races another), and what a refused write says (duplicate, stopped and why).
 */
import { randomUUID } from 'node:crypto';
import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoBatchJobRepository } from '../../functions/adapters/dynamodb-batch-jobs';
import { keys } from '../../functions/contract/table';
import { UnavailableError } from '../../functions/domain/errors';
import type { NewBatchJob, PartOutcome } from '../../functions/ports/batch';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';

const T0 = '2026-03-01T00:00:00.000Z';
const T1 = '2026-03-01T00:05:00.000Z';
const DAY = 86_400;
/** The lease of the aggregation's claim and of the assembly in these tests (2 minutes; T1 is 5 after T0). */
const LEASE = 120_000;

function newJob(extra: Partial<NewBatchJob> = {}): NewBatchJob {
  return {
    jobId: `job-${randomUUID().slice(0, 8)}`,
    inputTag: 'etag-1',
    model: 'iris',
    ref: 'prod',
    version: 3,
    partsTotal: 20,
    maxConcurrency: 10,
    partBytes: 16 * 1024 * 1024,
    bytesTotal: 20 * 1000,
    startedAt: T0,
    updatedAt: T0,
    ...extra,
  };
}

function outcome(index: number, extra: Partial<PartOutcome> = {}): PartOutcome {
  return {
    index,
    rows: 10 + index,
    failedRows: index % 3 === 0 ? 1 : 0,
    bytes: 1000,
    segments: [
      { fromRow: 0, toRow: 4, sizeBytes: 400 + index },
      { fromRow: 4, toRow: 10 + index, sizeBytes: 600 },
    ],
    ...extra,
  };
}

/** The indexes 0..n-1 in a shuffled order (each run differs; the outcome must not). */
function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** A document client that lets `before` see (and fail) each command first, then sends it to `doc`. */
function intercepted(doc: DynamoDBDocumentClient, before: (command: object) => void): DynamoDBDocumentClient {
  const send = doc.send.bind(doc) as (command: unknown, options?: unknown) => Promise<unknown>;
  return {
    send: async (command: object, options?: unknown) => {
      before(command);
      return send(command, options);
    },
  } as unknown as DynamoDBDocumentClient;
}

/**
 * A document client whose sends of commands named `name` are applied twice, the caller seeing the second answer:
 * what the SDK does when the answer to an applied write is lost (a timeout, a reset connection) and it retries.
 */
function answerLost(doc: DynamoDBDocumentClient, name: string): DynamoDBDocumentClient {
  const send = doc.send.bind(doc) as (command: unknown, options?: unknown) => Promise<unknown>;
  return {
    send: async (command: object, options?: unknown) => {
      if (command.constructor.name === name) await send(command, options);
      return send(command, options);
    },
  } as unknown as DynamoDBDocumentClient;
}

/** What DynamoDB answers a transaction that collided with another one in flight on its JOB item. */
function transactionConflict(): Error {
  return Object.assign(new Error('Transaction cancelled'), {
    name: 'TransactionCanceledException',
    CancellationReasons: [{ Code: 'None' }, { Code: 'TransactionConflict' }],
  });
}

describe('DynamoBatchJobRepository (DynamoDB Local)', () => {
  let aws: TestAwsEnv;
  let repo: DynamoBatchJobRepository;
  beforeAll(async () => {
    aws = await createTestAwsEnv('batchjobs');
    repo = new DynamoBatchJobRepository({ doc: aws.doc, table: aws.table });
  });
  afterAll(() => aws.dispose());

  const rawItem = async (pk: string, sk: string) =>
    (await aws.doc.send(new GetCommand({ TableName: aws.table, Key: { pk, sk }, ConsistentRead: true })))
      .Item;

  describe('createJob', () => {
    it('creates a running record with its counters at 0, kept BATCH.recordTtlDays (30) days', async () => {
      const job = newJob();
      const created = await repo.createJob(job);
      expect(created).toEqual({
        ...job,
        state: 'running',
        partsDone: 0,
        queued: 0,
        bytesDone: 0,
        rows: 0,
        failedRows: 0,
      });
      expect(await repo.getJob(job.jobId)).toEqual(created);
      const item = await rawItem(keys.batchPk(job.jobId), keys.batchJobSk);
      expect(item?.expiresAt).toBe(Date.parse(T0) / 1000 + 30 * DAY);
      expect(await repo.getJob('job-none')).toBeUndefined();
    });

    it('returns the standing record for the same input (a redelivered start), counters and all', async () => {
      const job = newJob();
      await repo.createJob(job);
      await repo.claimNext(job.jobId, job.inputTag);
      await repo.completePart(job.jobId, job.inputTag, outcome(0), T1);
      const again = await repo.createJob({ ...job, startedAt: T1, updatedAt: T1, partsTotal: 5 });
      expect(again).toMatchObject({ startedAt: T0, partsTotal: 20, partsDone: 1, queued: 1, rows: 10 });
      await repo.finish(job.jobId, job.inputTag, 'done', T1);
      expect(await repo.createJob(job)).toMatchObject({ state: 'done', partsDone: 1 });
    });

    it('leaves a running record of another input, and replaces one that ended', async () => {
      const job = newJob();
      await repo.createJob(job);
      await repo.completePart(job.jobId, job.inputTag, outcome(0), T1);
      const other = { ...job, inputTag: 'etag-2', startedAt: T1, updatedAt: T1 };
      expect(await repo.createJob(other)).toMatchObject({
        inputTag: 'etag-1',
        state: 'running',
        partsDone: 1,
      });
      expect(await repo.getJob(job.jobId)).toMatchObject({ inputTag: 'etag-1', partsDone: 1 });

      for (const end of ['done', 'failed', 'cancelled'] as const) {
        const standing = (await repo.getJob(job.jobId))!;
        expect(await repo.finish(job.jobId, standing.inputTag, end, T1)).toMatchObject({ state: end });
        const next = { ...job, inputTag: `etag-${end}`, startedAt: T1, updatedAt: T1 };
        const replaced = await repo.createJob(next);
        expect(replaced).toEqual({
          ...next,
          state: 'running',
          partsDone: 0,
          queued: 0,
          bytesDone: 0,
          rows: 0,
          failedRows: 0,
        });
        expect(await repo.getJob(job.jobId)).toEqual(replaced);
      }
      // The parts of the replaced input stay apart from the new one's.
      expect(await repo.listParts(job.jobId, 'etag-cancelled')).toEqual([]);
      expect((await repo.listParts(job.jobId, 'etag-1')).map((p) => p.index)).toEqual([0]);
    });

    it('creates one record when the same start runs several times at once', async () => {
      const job = newJob();
      // Each start of its own time: every caller gets the record of the one start that was written.
      const all = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          repo.createJob({ ...job, startedAt: `2026-01-01T00:00:0${i}.000Z` }),
        ),
      );
      expect(new Set(all.map((r) => r.startedAt)).size).toBe(1);
      expect(all[0]).toMatchObject({ jobId: job.jobId, inputTag: job.inputTag, state: 'running' });
      expect(await repo.getJob(job.jobId)).toEqual(all[0]);
    });
  });

  describe('completePart', () => {
    it('counts a part once: its counters, and the record after', async () => {
      const job = newJob({ partsTotal: 3 });
      await repo.createJob(job);
      const first = await repo.completePart(job.jobId, job.inputTag, outcome(1), T1);
      expect(first).toEqual({
        kind: 'counted',
        job: { ...(await repo.getJob(job.jobId))!, partsDone: 1, rows: 11, failedRows: 0, bytesDone: 1000 },
      });
      expect(first.kind === 'counted' && first.job.updatedAt).toBe(T1);
      expect(await repo.completePart(job.jobId, job.inputTag, outcome(1, { rows: 99 }), T1)).toEqual({
        kind: 'duplicate',
      });
      const second = await repo.completePart(job.jobId, job.inputTag, outcome(0), T1);
      expect(second).toMatchObject({ kind: 'counted', job: { partsDone: 2, rows: 21, failedRows: 1 } });
      expect(await repo.getJob(job.jobId)).toMatchObject({ partsDone: 2, rows: 21, bytesDone: 2000 });
      const part = await rawItem(keys.batchPk(job.jobId), keys.batchPartSk(job.inputTag, 1));
      expect(part?.expiresAt).toBe(Date.parse(T1) / 1000 + 30 * DAY);
    });

    it('is stopped by a job that ended, was replaced or is missing; an ended job wins over a duplicate', async () => {
      for (const end of ['cancelled', 'failed', 'done'] as const) {
        const job = newJob();
        await repo.createJob(job);
        await repo.completePart(job.jobId, job.inputTag, outcome(0), T1);
        await repo.finish(job.jobId, job.inputTag, end, T1);
        expect(await repo.completePart(job.jobId, job.inputTag, outcome(1), T1)).toEqual({
          kind: 'stopped',
          state: end,
        });
        expect(await repo.completePart(job.jobId, job.inputTag, outcome(0), T1)).toEqual({
          kind: 'stopped',
          state: end,
        });
        expect(await repo.getJob(job.jobId)).toMatchObject({ state: end, partsDone: 1 });
        expect((await repo.listParts(job.jobId, job.inputTag)).map((p) => p.index)).toEqual([0]);
      }
      const job = newJob();
      await repo.createJob(job);
      expect(await repo.completePart(job.jobId, 'etag-other', outcome(0), T1)).toEqual({
        kind: 'stopped',
        state: 'replaced',
      });
      expect(await repo.completePart('job-none', 'etag-1', outcome(0), T1)).toEqual({
        kind: 'stopped',
        state: 'missing',
      });
      expect(await repo.getJob(job.jobId)).toMatchObject({ partsDone: 0 });
      expect(await repo.listParts(job.jobId, 'etag-other')).toEqual([]);
    });

    it('counts 20 parts completed at once, each twice, exactly once; one of 40 callers aggregates', async () => {
      const job = newJob({ partsTotal: 20 });
      await repo.createJob(job);
      expect(await repo.claimAggregation(job.jobId, job.inputTag, T1, LEASE)).toBeUndefined();
      const results = await Promise.all(
        [...shuffled(20), ...shuffled(20)].map((i) =>
          repo.completePart(job.jobId, job.inputTag, outcome(i), T1),
        ),
      );
      expect(results.filter((r) => r.kind === 'counted')).toHaveLength(20);
      expect(results.filter((r) => r.kind === 'duplicate')).toHaveLength(20);
      // Every count the workers saw is one of 1..20, and one of them saw the last.
      const seen = results.flatMap((r) => (r.kind === 'counted' ? [r.job.partsDone] : []));
      expect(Math.max(...seen)).toBe(20);
      expect(seen.every((n) => n >= 1 && n <= 20)).toBe(true);
      const after = (await repo.getJob(job.jobId))!;
      const rows = Array.from({ length: 20 }, (_, i) => 10 + i).reduce((a, b) => a + b, 0);
      expect(after).toMatchObject({
        partsDone: 20,
        rows,
        failedRows: 7,
        bytesDone: 20_000,
        state: 'running',
      });

      const claims = await Promise.all(
        Array.from({ length: 40 }, () => repo.claimAggregation(job.jobId, job.inputTag, T1, LEASE)),
      );
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await repo.getJob(job.jobId)).toMatchObject({ aggregationClaimedAt: T1, state: 'running' });
      expect(await repo.claimAggregation(job.jobId, job.inputTag, T1, LEASE)).toBeUndefined();
    });

    it('gives one aggregation when each worker claims it right after its own completion', async () => {
      const job = newJob({ partsTotal: 12 });
      await repo.createJob(job);
      const claimed = await Promise.all(
        [...shuffled(12), ...shuffled(12)].map(async (i) => {
          const r = await repo.completePart(job.jobId, job.inputTag, outcome(i), T1);
          if (r.kind !== 'counted' || r.job.partsDone !== r.job.partsTotal) return undefined;
          return repo.claimAggregation(job.jobId, job.inputTag, T1, LEASE);
        }),
      );
      expect(claimed.filter(Boolean)).toHaveLength(1);
    });

    it('refuses the aggregation of a job that ended or is about another input', async () => {
      const job = newJob({ partsTotal: 1 });
      await repo.createJob(job);
      await repo.completePart(job.jobId, job.inputTag, outcome(0), T1);
      expect(await repo.claimAggregation(job.jobId, 'etag-other', T1, LEASE)).toBeUndefined();
      await repo.finish(job.jobId, job.inputTag, 'cancelled', T1);
      expect(await repo.claimAggregation(job.jobId, job.inputTag, T1, LEASE)).toBeUndefined();
      expect(await repo.claimAggregation('job-none', job.inputTag, T1, LEASE)).toBeUndefined();
    });
  });

  describe('the aggregation claim and the assembly lease', () => {
    /** T0 plus `ms`. */
    const at = (ms: number) => new Date(Date.parse(T0) + ms).toISOString();

    /** A job of one part, counted: ready to aggregate. */
    async function readyJob() {
      const job = newJob({ partsTotal: 1 });
      await repo.createJob(job);
      await repo.completePart(job.jobId, job.inputTag, outcome(0), T0);
      return job;
    }

    it('lets exactly one of many callers take over a claim older than the lease, never a fresh one', async () => {
      const job = await readyJob();
      const first = await repo.claimAggregation(job.jobId, job.inputTag, T0, LEASE);
      expect(first).toEqual(expect.any(String));
      // Younger than the lease (by 1 ms at the last): it stands, whoever asks.
      for (const t of [at(1_000), at(LEASE - 1)]) {
        const fresh = await Promise.all(
          Array.from({ length: 10 }, () => repo.claimAggregation(job.jobId, job.inputTag, t, LEASE)),
        );
        expect(fresh.filter(Boolean)).toEqual([]);
      }
      expect(await repo.getJob(job.jobId)).toMatchObject({ aggregationClaimedAt: T0 });
      // As old as the lease: exactly one of the callers at once takes it over.
      const stale = await Promise.all(
        Array.from({ length: 12 }, () => repo.claimAggregation(job.jobId, job.inputTag, at(LEASE), LEASE)),
      );
      const won = stale.filter(Boolean);
      expect(won).toHaveLength(1);
      expect(won[0]).not.toBe(first);
      expect(await repo.getJob(job.jobId)).toMatchObject({
        aggregationClaimedAt: at(LEASE),
        state: 'running',
      });
      expect(await repo.claimAggregation(job.jobId, job.inputTag, at(LEASE + 1_000), LEASE)).toBeUndefined();
      // An ended job is never claimed, however old its claim.
      await repo.finish(job.jobId, job.inputTag, 'done', T1);
      expect(await repo.claimAggregation(job.jobId, job.inputTag, at(10 * LEASE), LEASE)).toBeUndefined();
    });

    it('releases a claim by its id only: another id, or a claim taken over since, stays', async () => {
      const job = await readyJob();
      const claim = (await repo.claimAggregation(job.jobId, job.inputTag, T0, LEASE))!;
      await repo.releaseAggregation(job.jobId, job.inputTag, 'someone-else');
      await repo.releaseAggregation(job.jobId, 'etag-other', claim);
      expect(await repo.getJob(job.jobId)).toMatchObject({ aggregationClaimedAt: T0 });
      expect(await repo.claimAggregation(job.jobId, job.inputTag, at(1_000), LEASE)).toBeUndefined();

      await repo.releaseAggregation(job.jobId, job.inputTag, claim);
      const released = await repo.getJob(job.jobId);
      expect(released?.aggregationClaimedAt).toBeUndefined();
      expect((await rawItem(keys.batchPk(job.jobId), keys.batchJobSk))?.aggregationClaimId).toBeUndefined();
      // Claimed again at once, by one caller.
      const again = await Promise.all(
        Array.from({ length: 6 }, () => repo.claimAggregation(job.jobId, job.inputTag, at(2_000), LEASE)),
      );
      const second = again.find(Boolean)!;
      expect(again.filter(Boolean)).toHaveLength(1);
      // The first claim's late release does not remove the second one; a takeover's release of the taken one
      // neither.
      await repo.releaseAggregation(job.jobId, job.inputTag, claim);
      expect(await repo.getJob(job.jobId)).toMatchObject({ aggregationClaimedAt: at(2_000) });
      const third = await repo.claimAggregation(job.jobId, job.inputTag, at(2_000 + LEASE), LEASE);
      expect(third).toEqual(expect.any(String));
      await repo.releaseAggregation(job.jobId, job.inputTag, second);
      expect(await repo.getJob(job.jobId)).toMatchObject({ aggregationClaimedAt: at(2_000 + LEASE) });
    });

    it('leases the assembly to one caller; it is held until it expires or is released by its id', async () => {
      const job = newJob({ partsTotal: 2 });
      await repo.createJob(job);
      await repo.completePart(job.jobId, job.inputTag, outcome(0), T0);
      // Not every part done: no assembly.
      expect(await repo.leaseAssembly(job.jobId, job.inputTag, T0, LEASE)).toBeUndefined();
      await repo.completePart(job.jobId, job.inputTag, outcome(1), T0);
      expect(await repo.leaseAssembly(job.jobId, 'etag-other', T0, LEASE)).toBeUndefined();
      expect(await repo.leaseAssembly('job-none', job.inputTag, T0, LEASE)).toBeUndefined();

      const leases = await Promise.all(
        Array.from({ length: 10 }, () => repo.leaseAssembly(job.jobId, job.inputTag, T0, LEASE)),
      );
      expect(leases.filter(Boolean)).toHaveLength(1);
      const first = leases.find(Boolean)!;
      expect(await repo.getJob(job.jobId)).toMatchObject({ assemblyLeasedAt: T0 });
      // Held by another: refused until it expires.
      expect(await repo.leaseAssembly(job.jobId, job.inputTag, at(LEASE - 1), LEASE)).toBeUndefined();
      // A release by another id leaves it.
      await repo.releaseAssembly(job.jobId, job.inputTag, 'someone-else');
      expect(await repo.leaseAssembly(job.jobId, job.inputTag, at(1_000), LEASE)).toBeUndefined();
      // Expired: one of the callers at once takes it over.
      const over = await Promise.all(
        Array.from({ length: 10 }, () => repo.leaseAssembly(job.jobId, job.inputTag, at(LEASE), LEASE)),
      );
      expect(over.filter(Boolean)).toHaveLength(1);
      const second = over.find(Boolean)!;
      expect(second).not.toBe(first);
      // The expired holder's release does not end its successor's lease; the holder's own release does.
      await repo.releaseAssembly(job.jobId, job.inputTag, first);
      expect(await repo.leaseAssembly(job.jobId, job.inputTag, at(LEASE + 1_000), LEASE)).toBeUndefined();
      await repo.releaseAssembly(job.jobId, job.inputTag, second);
      expect((await repo.getJob(job.jobId))?.assemblyLeasedAt).toBeUndefined();
      expect(await repo.leaseAssembly(job.jobId, job.inputTag, at(LEASE + 2_000), LEASE)).toEqual(
        expect.any(String),
      );
      // The claim of the aggregation is another thing: the lease neither takes nor blocks it.
      expect(await repo.claimAggregation(job.jobId, job.inputTag, at(LEASE + 2_000), LEASE)).toEqual(
        expect.any(String),
      );
      // An ended job is not assembled.
      await repo.finish(job.jobId, job.inputTag, 'cancelled', T1);
      expect(await repo.leaseAssembly(job.jobId, job.inputTag, at(10 * LEASE), LEASE)).toBeUndefined();
    });
  });

  describe('claimNext', () => {
    it('hands out 0..partsTotal-1 in order, then nothing', async () => {
      const job = newJob({ partsTotal: 3 });
      await repo.createJob(job);
      const got = [];
      for (let i = 0; i < 5; i++) got.push(await repo.claimNext(job.jobId, job.inputTag));
      expect(got).toEqual([0, 1, 2, undefined, undefined]);
      expect(await repo.getJob(job.jobId)).toMatchObject({ queued: 3 });
    });

    it('hands out distinct indexes to callers at once, never past partsTotal, beside completions', async () => {
      const job = newJob({ partsTotal: 25 });
      await repo.createJob(job);
      const [claims] = await Promise.all([
        Promise.all(Array.from({ length: 40 }, () => repo.claimNext(job.jobId, job.inputTag))),
        Promise.all(shuffled(10).map((i) => repo.completePart(job.jobId, job.inputTag, outcome(i), T1))),
      ]);
      const indexes = claims.filter((c): c is number => c !== undefined);
      expect(indexes.sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i));
      expect(claims.filter((c) => c === undefined)).toHaveLength(15);
      expect(await repo.getJob(job.jobId)).toMatchObject({ queued: 25, partsDone: 10 });
    });

    it('hands out nothing for a job that ended, another input, or no job', async () => {
      const job = newJob();
      await repo.createJob(job);
      expect(await repo.claimNext(job.jobId, 'etag-other')).toBeUndefined();
      expect(await repo.claimNext('job-none', job.inputTag)).toBeUndefined();
      await repo.finish(job.jobId, job.inputTag, 'cancelled', T1);
      expect(await repo.claimNext(job.jobId, job.inputTag)).toBeUndefined();
      expect(await repo.getJob(job.jobId)).toMatchObject({ queued: 0 });
    });
  });

  describe('finish', () => {
    it('ends a running job once, with the error of a failure; a later end is refused', async () => {
      const job = newJob();
      await repo.createJob(job);
      const failed = await repo.finish(job.jobId, job.inputTag, 'failed', T1, {
        error: 'part 3 (batch/j/input.jsonl bytes 0-99) failed after 3 attempts: boom',
        code: 'BATCH_PART_FAILED',
      });
      expect(failed).toEqual({
        ...(await repo.getJob(job.jobId)),
        state: 'failed',
        updatedAt: T1,
        error: 'part 3 (batch/j/input.jsonl bytes 0-99) failed after 3 attempts: boom',
        code: 'BATCH_PART_FAILED',
      });
      expect(await repo.finish(job.jobId, job.inputTag, 'cancelled', T1)).toBeUndefined();
      expect(await repo.finish(job.jobId, job.inputTag, 'done', T1)).toBeUndefined();
      expect(await repo.getJob(job.jobId)).toMatchObject({ state: 'failed', code: 'BATCH_PART_FAILED' });
      const item = await rawItem(keys.batchPk(job.jobId), keys.batchJobSk);
      expect(item?.expiresAt).toBe(Date.parse(T1) / 1000 + 30 * DAY);
    });

    it('refuses another input and a missing job', async () => {
      const job = newJob();
      await repo.createJob(job);
      expect(await repo.finish(job.jobId, 'etag-other', 'cancelled', T1)).toBeUndefined();
      expect(await repo.finish('job-none', job.inputTag, 'cancelled', T1)).toBeUndefined();
      expect(await repo.getJob(job.jobId)).toMatchObject({ state: 'running' });
    });

    it('lets exactly one of a cancel and a done racing each other win, and that one stands', async () => {
      const wins = { done: 0, cancelled: 0 };
      for (let round = 0; round < 12; round++) {
        const job = newJob({ partsTotal: 1 });
        await repo.createJob(job);
        await repo.completePart(job.jobId, job.inputTag, outcome(0), T1);
        const order = round % 2 === 0 ? (['cancelled', 'done'] as const) : (['done', 'cancelled'] as const);
        const [a, b] = await Promise.all(order.map((s) => repo.finish(job.jobId, job.inputTag, s, T1)));
        const winners = [a, b].filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        const state = winners[0]!.state as 'done' | 'cancelled';
        wins[state]++;
        expect(await repo.getJob(job.jobId)).toMatchObject({ state });
        // Whatever won, the parts stop: nothing more is counted or handed out.
        expect(await repo.completePart(job.jobId, job.inputTag, outcome(0), T1)).toEqual({
          kind: 'stopped',
          state,
        });
        expect(await repo.claimNext(job.jobId, job.inputTag)).toBeUndefined();
      }
      expect(wins.done + wins.cancelled).toBe(12);
    });

    it('lets a cancel racing completions stop them: every part counted before it, none after', async () => {
      const job = newJob({ partsTotal: 20 });
      await repo.createJob(job);
      const [results, cancelled] = await Promise.all([
        Promise.all(shuffled(20).map((i) => repo.completePart(job.jobId, job.inputTag, outcome(i), T1))),
        repo.finish(job.jobId, job.inputTag, 'cancelled', T1),
      ]);
      const counted = results.filter((r) => r.kind === 'counted').length;
      expect(counted + results.filter((r) => r.kind === 'stopped').length).toBe(20);
      expect(results.filter((r) => r.kind === 'stopped').every((r) => r.state === 'cancelled')).toBe(true);
      expect(cancelled).toMatchObject({ state: 'cancelled', partsDone: counted });
      const after = (await repo.getJob(job.jobId))!;
      expect(after).toMatchObject({ state: 'cancelled', partsDone: counted });
      expect(await repo.listParts(job.jobId, job.inputTag)).toHaveLength(counted);
    });
  });

  describe('listParts', () => {
    it('lists the parts of the input in index order, with their segments, across query pages', async () => {
      const job = newJob({ partsTotal: 24 });
      await repo.createJob(job);
      const segments = (i: number) =>
        Array.from({ length: 3 + (i % 4) }, (_, s) => ({
          fromRow: s * 10,
          toRow: s * 10 + 10,
          sizeBytes: 1000 + i,
        }));
      await Promise.all(
        shuffled(24).map((i) =>
          repo.completePart(job.jobId, job.inputTag, outcome(i, { segments: segments(i) }), T1),
        ),
      );
      for (const queryPageSize of [undefined, 1, 5, 24]) {
        let queries = 0;
        const paged = new DynamoBatchJobRepository({
          doc: intercepted(aws.doc, (c) => {
            if (c.constructor.name === 'QueryCommand') queries++;
          }),
          table: aws.table,
          ...(queryPageSize !== undefined ? { queryPageSize } : {}),
        });
        const parts = await paged.listParts(job.jobId, job.inputTag);
        expect(parts.map((p) => p.index)).toEqual(Array.from({ length: 24 }, (_, i) => i));
        expect(parts[7]).toEqual(outcome(7, { segments: segments(7) }));
        expect(queries).toBe(queryPageSize === undefined ? 1 : Math.floor(24 / queryPageSize) + 1);
      }
      expect(await repo.listParts(job.jobId, 'etag-other')).toEqual([]);
      expect(await repo.listParts('job-none', job.inputTag)).toEqual([]);
    });

    it('keeps an input tag that is the start of another apart, on every page', async () => {
      const job = newJob({ inputTag: 'a' });
      await repo.createJob(job);
      await repo.completePart(job.jobId, 'a', outcome(0), T1);
      await repo.completePart(job.jobId, 'a', outcome(2), T1);
      await repo.finish(job.jobId, 'a', 'done', T1);
      await repo.createJob({ ...job, inputTag: 'a#b' });
      await repo.completePart(job.jobId, 'a#b', outcome(1), T1);
      for (const queryPageSize of [1, 2, 100]) {
        const paged = new DynamoBatchJobRepository({ doc: aws.doc, table: aws.table, queryPageSize });
        expect((await paged.listParts(job.jobId, 'a')).map((p) => p.index)).toEqual([0, 2]);
        expect((await paged.listParts(job.jobId, 'a#b')).map((p) => p.index)).toEqual([1]);
      }
    });
  });

  describe('follows', () => {
    it('keeps the tag of the job a new one came after', async () => {
      const job = newJob({ inputTag: 'c' });
      await repo.createJob(job);
      await repo.finish(job.jobId, 'c', 'done', T1);
      await repo.createJob({ ...job, inputTag: 'c#after:1', follows: 'c' });
      expect(await repo.getJob(job.jobId)).toMatchObject({ inputTag: 'c#after:1', follows: 'c' });
    });
  });

  describe('collisions with transactions in flight', () => {
    // DynamoDB Local runs one write at a time and never answers TransactionConflict; DynamoDB does when writes of
    // one item overlap a transaction on it.
    it('tries a colliding write again, and gives up with a 503 after the attempts allowed', async () => {
      const job = newJob({ partsTotal: 2 });
      await repo.createJob(job);
      let failures = 2;
      const flaky = new DynamoBatchJobRepository({
        doc: intercepted(aws.doc, (c) => {
          const name = c.constructor.name;
          if ((name === 'TransactWriteCommand' || name === 'UpdateCommand') && failures-- > 0) {
            throw transactionConflict();
          }
        }),
        table: aws.table,
      });
      expect(await flaky.completePart(job.jobId, job.inputTag, outcome(0), T1)).toMatchObject({
        kind: 'counted',
        job: { partsDone: 1 },
      });
      failures = 2;
      expect(await flaky.claimNext(job.jobId, job.inputTag)).toBe(0);
      failures = 1;
      expect(await flaky.completePart(job.jobId, job.inputTag, outcome(0), T1)).toEqual({
        kind: 'duplicate',
      });

      const stuck = new DynamoBatchJobRepository({
        doc: intercepted(aws.doc, (c) => {
          if (c.constructor.name === 'TransactWriteCommand') throw transactionConflict();
        }),
        table: aws.table,
        maxConflictAttempts: 3,
      });
      await expect(stuck.completePart(job.jobId, job.inputTag, outcome(1), T1)).rejects.toBeInstanceOf(
        UnavailableError,
      );
      expect(await repo.getJob(job.jobId)).toMatchObject({ partsDone: 1, queued: 1 });
    });
  });

  describe('a write applied whose answer was lost (the SDK sends it again)', () => {
    it('answers each claim, the lease, the end and the count as the first attempt would have', async () => {
      const job = newJob({ partsTotal: 2 });
      await repo.createJob(job);
      const updates = new DynamoBatchJobRepository({
        doc: answerLost(aws.doc, 'UpdateCommand'),
        table: aws.table,
      });
      expect(await updates.claimNext(job.jobId, job.inputTag)).toBe(0);
      expect(await updates.claimNext(job.jobId, job.inputTag)).toBe(1);
      expect(await updates.claimNext(job.jobId, job.inputTag)).toBeUndefined();
      expect(await repo.getJob(job.jobId)).toMatchObject({ queued: 2 });

      // A transaction's retry carries the same ClientRequestToken: DynamoDB applies it once and answers success.
      const transactions = new DynamoBatchJobRepository({
        doc: answerLost(aws.doc, 'TransactWriteCommand'),
        table: aws.table,
      });
      for (const i of [0, 1]) {
        expect(await transactions.completePart(job.jobId, job.inputTag, outcome(i), T1)).toMatchObject({
          kind: 'counted',
          job: { partsDone: i + 1 },
        });
      }
      expect(await updates.claimAggregation(job.jobId, job.inputTag, T1, LEASE)).toEqual(expect.any(String));
      expect(await repo.claimAggregation(job.jobId, job.inputTag, T1, LEASE)).toBeUndefined();
      // The takeover of a stale claim, and its release: the retry of the removal finds nothing to remove.
      const later = new Date(Date.parse(T1) + LEASE).toISOString();
      const taken = await updates.claimAggregation(job.jobId, job.inputTag, later, LEASE);
      expect(taken).toEqual(expect.any(String));
      expect(await repo.getJob(job.jobId)).toMatchObject({ aggregationClaimedAt: later });
      await updates.releaseAggregation(job.jobId, job.inputTag, taken!);
      expect((await repo.getJob(job.jobId))?.aggregationClaimedAt).toBeUndefined();
      // The assembly lease: the retry of the write recognises it as its own, and holds it against others.
      const lease = await updates.leaseAssembly(job.jobId, job.inputTag, T1, LEASE);
      expect(lease).toEqual(expect.any(String));
      expect(await repo.leaseAssembly(job.jobId, job.inputTag, T1, LEASE)).toBeUndefined();
      expect((await rawItem(keys.batchPk(job.jobId), keys.batchJobSk))?.assemblyLeaseId).toBe(lease);
      expect(await updates.finish(job.jobId, job.inputTag, 'done', T1)).toMatchObject({ state: 'done' });
      expect(await repo.finish(job.jobId, job.inputTag, 'cancelled', T1)).toBeUndefined();
      expect(await repo.getJob(job.jobId)).toMatchObject({ state: 'done', partsDone: 2, queued: 2 });
    });
  });
});

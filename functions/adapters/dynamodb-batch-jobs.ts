/**
 * BatchJobRepository on the registry table (docs/ARCHITECTURE.md, "Data: table keys and S3 layout").
 *
 * One JOB item per job, `pk = BATCH#{jobId}`, `sk = JOB`: the fields of `BatchJobRecord` as top-level attributes,
 * its counters (`partsDone`, `queued`, `rows`, `failedRows`, `bytesDone`) changed only by `ADD`. One PART item per
 * counted part, `sk = PART#{inputTag}#{index:06}`: the part's outcome (rows, failed rows, input bytes, segments).
 * Every item expires (`expiresAt`, the table's TTL attribute) `BATCH.recordTtlDays` after it was written: the JOB
 * item after its start, its last counted part or its end.
 *
 * Every write is conditional on the job running and being about the same input (`inputTag`), so concurrent
 * workers, redelivered messages and a cancel agree on one outcome:
 * - createJob: a Put if there is no JOB item, or one of another input that is not running;
 * - completePart: one transaction, the PART item Put if absent + the JOB counters added;
 * - claimNext: `ADD queued 1` while `queued < partsTotal`;
 * - claimAggregation: sets `aggregationClaimedAt` when `partsDone = partsTotal` and there is none, or the one there
 *   is older than the lease (a takeover: the condition is `aggregationClaimedAt <= now − lease` and the winner writes
 *   `now`, so one caller wins);
 *   releaseAggregation removes it while it is still the caller's (`aggregationClaimId`);
 * - leaseAssembly: sets `assemblyLeasedAt` likewise, when there is none or it expired; releaseAssembly removes it
 *   while it is still the caller's (`assemblyLeaseId`);
 * - finish: sets the end state while the job runs.
 * The claims, the lease and the end carry the caller's id (CLAIM_IDS), so that the SDK's retry of one that was
 * applied answers as the first attempt would have.
 * A write that collides with a transaction in flight on the same item (TransactionConflict) is tried again.
 */
import { randomUUID } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { BATCH } from '../contract/events';
import { keys, TABLE } from '../contract/table';
import { UnavailableError } from '../domain/errors';
import {
  type BatchJobRecord,
  type BatchJobRepository,
  type BatchJobState,
  type NewBatchJob,
  type PartCompletion,
  type PartOutcome,
  type PartSegment,
  startedJob,
} from '../ports/batch';
import { failedConditionAt, isConditionFailure } from './dynamodb-contention';
import type { Item } from './dynamodb-items';

export interface DynamoBatchJobRepositoryOptions {
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  /** Days an item is kept after its last write. @default BATCH.recordTtlDays */
  readonly recordTtlDays?: number;
  /** Attempts of a write that collides with a transaction in flight on the same item. @default 12 */
  readonly maxConflictAttempts?: number;
  /** Items a query page of `listParts` reads at most (DynamoDB also ends a page at 1 MB). @default no limit */
  readonly queryPageSize?: number;
}

/** The record's attributes, as stored (the keys and `expiresAt` aside). */
const RECORD_FIELDS = [
  'jobId',
  'inputTag',
  'state',
  'model',
  'ref',
  'version',
  'partsTotal',
  'partsDone',
  'queued',
  'maxConcurrency',
  'partBytes',
  'bytesTotal',
  'bytesDone',
  'rows',
  'failedRows',
  'startedAt',
  'updatedAt',
  'follows',
  'aggregationClaimedAt',
  'assemblyLeasedAt',
  'error',
  'code',
] as const satisfies readonly (keyof BatchJobRecord)[];

/**
 * Attributes naming the caller of the last claim of an index, of the aggregation and of the end (a random id per
 * call). The SDK sends a request again when its answer is lost (a timeout, a reset connection): a write that was
 * applied then fails its condition, and the id tells the caller it was its own. completePart needs none: its transaction
 * carries a ClientRequestToken, which the SDK's retries repeat and DynamoDB applies once.
 */
const CLAIM_IDS = {
  next: 'lastClaimId',
  aggregation: 'aggregationClaimId',
  assembly: 'assemblyLeaseId',
  end: 'endClaimId',
} as const;

/** The time (ISO) at or before which a claim or lease taken `leaseMs` before `now` has expired. */
function expiredBy(now: string, leaseMs: number): string {
  const at = Date.parse(now);
  return new Date((Number.isNaN(at) ? Date.now() : at) - leaseMs).toISOString();
}

/** Cancellation codes of a transaction that another try can overcome (a condition that failed cannot). */
const CONFLICTS = new Set(['TransactionConflict', 'ThrottlingError', 'ProvisionedThroughputExceeded']);

/** True when `e` is a collision with another write in flight, not a failed condition. */
function isConflict(e: unknown): boolean {
  const err = e as { name?: string; CancellationReasons?: { Code?: string }[] };
  if (err?.name === 'TransactionConflictException' || err?.name === 'TransactionInProgressException')
    return true;
  if (err?.name !== 'TransactionCanceledException') return false;
  const codes = (err.CancellationReasons ?? []).map((r) => r.Code ?? 'None');
  return codes.some((c) => CONFLICTS.has(c)) && codes.every((c) => c === 'None' || CONFLICTS.has(c));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The attributes of the aggregation's claim and of the assembly's lease: when it was taken, and by which id. */
const AGGREGATION_CLAIM = { at: 'aggregationClaimedAt', id: CLAIM_IDS.aggregation } as const;
const ASSEMBLY_LEASE = { at: 'assemblyLeasedAt', id: CLAIM_IDS.assembly } as const;

export class DynamoBatchJobRepository implements BatchJobRepository {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly ttlSeconds: number;
  private readonly maxConflictAttempts: number;
  private readonly queryPageSize: number | undefined;

  constructor(opts: DynamoBatchJobRepositoryOptions) {
    this.doc = opts.doc;
    this.table = opts.table;
    this.ttlSeconds = (opts.recordTtlDays ?? BATCH.recordTtlDays) * 86_400;
    this.maxConflictAttempts = opts.maxConflictAttempts ?? 12;
    this.queryPageSize = opts.queryPageSize;
  }

  private jobKey(jobId: string) {
    return { [TABLE.partitionKey]: keys.batchPk(jobId), [TABLE.sortKey]: keys.batchJobSk };
  }

  /** The expiry (epoch seconds) of an item written at `iso`. */
  private expiresAt(iso: string): number {
    const at = Date.parse(iso);
    return Math.floor((Number.isNaN(at) ? Date.now() : at) / 1000) + this.ttlSeconds;
  }

  async createJob(job: NewBatchJob): Promise<BatchJobRecord> {
    const record = startedJob(job);
    // A lost race with an end (the standing record of another input stops running) is tried again.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.conflictRetry('createJob', () =>
          this.doc.send(
            new PutCommand({
              TableName: this.table,
              Item: {
                ...this.jobKey(job.jobId),
                ...toItem(record),
                [TABLE.ttlAttribute]: this.expiresAt(job.startedAt),
              },
              ConditionExpression: 'attribute_not_exists(#pk) OR (#tag <> :tag AND #state <> :running)',
              ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#tag': 'inputTag', '#state': 'state' },
              ExpressionAttributeValues: { ':tag': job.inputTag, ':running': 'running' },
            }),
          ),
        );
        return record;
      } catch (e) {
        if (!isConditionFailure(e)) throw e;
      }
      const standing = await this.getJob(job.jobId);
      if (standing && (standing.inputTag === job.inputTag || standing.state === 'running')) return standing;
      if (attempt >= 3) {
        throw new UnavailableError(
          `the record of batch job ${job.jobId} changed under every attempt; retry`,
          1,
        );
      }
    }
  }

  async getJob(jobId: string): Promise<BatchJobRecord | undefined> {
    const item = await this.getItem(jobId);
    return item ? toRecord(item) : undefined;
  }

  private async getItem(jobId: string): Promise<Item | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: this.jobKey(jobId), ConsistentRead: true }),
    );
    return out.Item;
  }

  async completePart(
    jobId: string,
    inputTag: string,
    outcome: PartOutcome,
    now: string,
  ): Promise<PartCompletion> {
    try {
      await this.conflictRetry('completePart', () =>
        this.doc.send(
          new TransactWriteCommand({
            // One per attempt of this call; the SDK's retries of an attempt carry it, and DynamoDB applies it once.
            ClientRequestToken: randomUUID(),
            TransactItems: [
              {
                Put: {
                  TableName: this.table,
                  Item: {
                    [TABLE.partitionKey]: keys.batchPk(jobId),
                    [TABLE.sortKey]: keys.batchPartSk(inputTag, outcome.index),
                    jobId,
                    inputTag,
                    index: outcome.index,
                    rows: outcome.rows,
                    failedRows: outcome.failedRows,
                    bytes: outcome.bytes,
                    segments: outcome.segments.map((s) => ({
                      fromRow: s.fromRow,
                      toRow: s.toRow,
                      sizeBytes: s.sizeBytes,
                    })),
                    completedAt: now,
                    [TABLE.ttlAttribute]: this.expiresAt(now),
                  },
                  ConditionExpression: 'attribute_not_exists(#pk)',
                  ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
                },
              },
              {
                Update: {
                  TableName: this.table,
                  Key: this.jobKey(jobId),
                  UpdateExpression:
                    'ADD #partsDone :one, #rows :rows, #failedRows :failedRows, #bytesDone :bytes ' +
                    'SET #updatedAt = :now, #ttl = :ttl',
                  ConditionExpression: '#state = :running AND #tag = :tag',
                  ExpressionAttributeNames: {
                    '#partsDone': 'partsDone',
                    '#rows': 'rows',
                    '#failedRows': 'failedRows',
                    '#bytesDone': 'bytesDone',
                    '#updatedAt': 'updatedAt',
                    '#ttl': TABLE.ttlAttribute,
                    '#state': 'state',
                    '#tag': 'inputTag',
                  },
                  ExpressionAttributeValues: {
                    ':one': 1,
                    ':rows': outcome.rows,
                    ':failedRows': outcome.failedRows,
                    ':bytes': outcome.bytes,
                    ':now': now,
                    ':ttl': this.expiresAt(now),
                    ':running': 'running',
                    ':tag': inputTag,
                  },
                },
              },
            ],
          }),
        ),
      );
    } catch (e) {
      const partExists = failedConditionAt(e, 0);
      const jobStopped = failedConditionAt(e, 1);
      if (!partExists && !jobStopped) throw e;
      // A job that no longer runs says so first: its workers stop whether or not they counted this part.
      if (jobStopped) {
        const job = await this.getJob(jobId);
        if (!job) return { kind: 'stopped', state: 'missing' };
        if (job.inputTag !== inputTag) return { kind: 'stopped', state: 'replaced' };
        if (job.state !== 'running') return { kind: 'stopped', state: job.state };
        // Running again under the same input cannot happen (a running record is never replaced): a stale read.
        if (!partExists) throw e;
      }
      return { kind: 'duplicate' };
    }
    const job = await this.getJob(jobId);
    if (!job) return { kind: 'stopped', state: 'missing' };
    return { kind: 'counted', job };
  }

  async claimNext(jobId: string, inputTag: string): Promise<number | undefined> {
    const claim = randomUUID();
    try {
      const out = await this.conflictRetry('claimNext', () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.jobKey(jobId),
            UpdateExpression: 'ADD #queued :one SET #claim = :claim',
            ConditionExpression:
              '#queued < #partsTotal AND #state = :running AND #tag = :tag AND ' +
              '(attribute_not_exists(#claim) OR #claim <> :claim)',
            ExpressionAttributeNames: {
              '#queued': 'queued',
              '#partsTotal': 'partsTotal',
              '#state': 'state',
              '#tag': 'inputTag',
              '#claim': CLAIM_IDS.next,
            },
            ExpressionAttributeValues: {
              ':one': 1,
              ':running': 'running',
              ':tag': inputTag,
              ':claim': claim,
            },
            ReturnValues: 'UPDATED_NEW',
          }),
        ),
      );
      return Number(out.Attributes?.queued) - 1;
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      // The SDK's retry of a claim whose answer was lost: the claim is ours while no other came after it (one that
      // did lets the retry claim again, and the index of the lost answer is never sent unless a part of the job is
      // received again after a failed receive, which sends every claimed index not counted: completePart in
      // functions/app/batch-score.ts; else the job stays running until cancelled — docs/events.md).
      const item = await this.getItem(jobId);
      return item?.[CLAIM_IDS.next] === claim ? Number(item.queued) - 1 : undefined;
    }
  }

  async claimAggregation(
    jobId: string,
    inputTag: string,
    now: string,
    leaseMs: number,
  ): Promise<string | undefined> {
    return this.takeLease('claimAggregation', jobId, inputTag, now, leaseMs, AGGREGATION_CLAIM);
  }

  async releaseAggregation(jobId: string, inputTag: string, claimId: string): Promise<void> {
    await this.dropLease('releaseAggregation', jobId, inputTag, claimId, AGGREGATION_CLAIM);
  }

  async leaseAssembly(
    jobId: string,
    inputTag: string,
    now: string,
    leaseMs: number,
  ): Promise<string | undefined> {
    return this.takeLease('leaseAssembly', jobId, inputTag, now, leaseMs, ASSEMBLY_LEASE);
  }

  async releaseAssembly(jobId: string, inputTag: string, leaseId: string): Promise<void> {
    await this.dropLease('releaseAssembly', jobId, inputTag, leaseId, ASSEMBLY_LEASE);
  }

  /**
   * Sets the time `attrs.at` and the id `attrs.id` of a claim or lease of a job whose parts are all done, while the
   * job runs on the same input and there is none, or the one there was taken at or before `now − leaseMs`. Resolves
   * with the new id, or undefined when the condition fails (unless the item carries this call's id: the SDK's
   * retry of a write that was applied).
   */
  private async takeLease(
    what: string,
    jobId: string,
    inputTag: string,
    now: string,
    leaseMs: number,
    attrs: { readonly at: string; readonly id: string },
  ): Promise<string | undefined> {
    const claim = randomUUID();
    try {
      await this.conflictRetry(what, () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.jobKey(jobId),
            UpdateExpression: 'SET #at = :now, #claim = :claim, #updatedAt = :now',
            ConditionExpression:
              '#partsDone = #partsTotal AND #state = :running AND #tag = :tag AND ' +
              '(attribute_not_exists(#at) OR #at <= :expired)',
            ExpressionAttributeNames: {
              '#at': attrs.at,
              '#claim': attrs.id,
              '#updatedAt': 'updatedAt',
              '#partsDone': 'partsDone',
              '#partsTotal': 'partsTotal',
              '#state': 'state',
              '#tag': 'inputTag',
            },
            ExpressionAttributeValues: {
              ':now': now,
              ':expired': expiredBy(now, leaseMs),
              ':claim': claim,
              ':running': 'running',
              ':tag': inputTag,
            },
          }),
        ),
      );
      return claim;
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      return (await this.getItem(jobId))?.[attrs.id] === claim ? claim : undefined;
    }
  }

  /** Removes the claim or lease `attrs` while its id is `id` (another one, or none, stays as it is). */
  private async dropLease(
    what: string,
    jobId: string,
    inputTag: string,
    id: string,
    attrs: { readonly at: string; readonly id: string },
  ): Promise<void> {
    try {
      await this.conflictRetry(what, () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.jobKey(jobId),
            UpdateExpression: 'REMOVE #at, #claim',
            ConditionExpression: '#tag = :tag AND #claim = :claim',
            ExpressionAttributeNames: { '#at': attrs.at, '#claim': attrs.id, '#tag': 'inputTag' },
            ExpressionAttributeValues: { ':claim': id, ':tag': inputTag },
          }),
        ),
      );
    } catch (e) {
      // Taken over since, or removed already (the SDK's retry of a removal that was applied): nothing to do.
      if (!isConditionFailure(e)) throw e;
    }
  }

  async finish(
    jobId: string,
    inputTag: string,
    state: Exclude<BatchJobState, 'running'>,
    now: string,
    error?: { readonly error: string; readonly code: string },
  ): Promise<BatchJobRecord | undefined> {
    const claim = randomUUID();
    const names: Record<string, string> = {
      '#state': 'state',
      '#updatedAt': 'updatedAt',
      '#ttl': TABLE.ttlAttribute,
      '#tag': 'inputTag',
      '#claim': CLAIM_IDS.end,
    };
    const values: Record<string, unknown> = {
      ':claim': claim,
      ':state': state,
      ':now': now,
      ':ttl': this.expiresAt(now),
      ':running': 'running',
      ':tag': inputTag,
    };
    const sets = ['#state = :state', '#updatedAt = :now', '#ttl = :ttl', '#claim = :claim'];
    if (error) {
      names['#error'] = 'error';
      names['#code'] = 'code';
      values[':error'] = error.error;
      values[':code'] = error.code;
      sets.push('#error = :error', '#code = :code');
    }
    try {
      const out = await this.conflictRetry('finish', () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.jobKey(jobId),
            UpdateExpression: `SET ${sets.join(', ')}`,
            ConditionExpression: '#state = :running AND #tag = :tag',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
            ReturnValues: 'ALL_NEW',
          }),
        ),
      );
      return toRecord(out.Attributes as Item);
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      const item = await this.getItem(jobId);
      return item?.[CLAIM_IDS.end] === claim ? toRecord(item) : undefined;
    }
  }

  async listParts(jobId: string, inputTag: string): Promise<PartOutcome[]> {
    const parts: PartOutcome[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
          FilterExpression: '#tag = :tag',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey, '#tag': 'inputTag' },
          ExpressionAttributeValues: {
            ':pk': keys.batchPk(jobId),
            ':prefix': keys.batchPartSkPrefix(inputTag),
            ':tag': inputTag,
          },
          ConsistentRead: true,
          ...(this.queryPageSize !== undefined ? { Limit: this.queryPageSize } : {}),
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of out.Items ?? []) parts.push(toOutcome(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return parts.sort((a, b) => a.index - b.index);
  }

  /**
   * Runs `attempt` again while it collides with a transaction in flight on the same item (full-jitter backoff,
   * 5 ms doubling up to 200 ms), at most `maxConflictAttempts` times, then fails 503; any other error is thrown.
   */
  private async conflictRetry<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (e) {
        if (!isConflict(e)) throw e;
        if (n >= this.maxConflictAttempts) {
          throw new UnavailableError(`batch ${what} collided with other writes ${n} times; retry`, 1, {
            cause: e,
          });
        }
        await sleep(Math.random() * Math.min(200, 5 * 2 ** n));
      }
    }
  }
}

function toItem(record: BatchJobRecord): Item {
  const item: Item = {};
  for (const field of RECORD_FIELDS) {
    const value = record[field];
    if (value !== undefined) item[field] = value;
  }
  return item;
}

function toRecord(item: Item): BatchJobRecord {
  const record: Record<string, unknown> = {};
  for (const field of RECORD_FIELDS) {
    const value = item[field];
    if (value !== undefined && value !== null) record[field] = value;
  }
  return record as unknown as BatchJobRecord;
}

function toOutcome(item: Item): PartOutcome {
  const segments = ((item.segments as Item[] | undefined) ?? []).map(
    (s): PartSegment => ({
      fromRow: Number(s.fromRow),
      toRow: Number(s.toRow),
      sizeBytes: Number(s.sizeBytes),
    }),
  );
  return {
    index: Number(item.index),
    rows: Number(item.rows),
    failedRows: Number(item.failedRows),
    bytes: Number(item.bytes),
    segments,
  };
}

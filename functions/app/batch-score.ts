/**
 * Batch scoring at scale (docs/ARCHITECTURE.md, "Batch scoring"): `batch/{jobId}/job.json` names the model,
 * `batch/{jobId}/input.jsonl` (or the objects `input/*.jsonl` closed by `input/_SUCCESS`) holds one OIP request
 * per line; the job writes `output.jsonl` (same order, one OIP response or one `{"error", "code"}` per line) and
 * keeps `status.json` current.
 *
 * - start (`startBatchJob`, the S3 event of the input): resolves the version once (an alias moving mid-job does not
 *   mix versions), cuts the input into line-aligned byte ranges with ranged reads (functions/domain/
 *   batch-partition.ts; `plan.json`), records the job and queues its first `maxConcurrency` parts on the batch
 *   queue.
 * - part (`runBatchPart`, a `batch-part` message): streams its range, scores it in chunks of
 *   BATCH.rowsPerChunk lines (the first ones smaller: `chunkRowsAt`) with the predictor's `inferBatch`, writes
 *   its output segments, and when the
 *   invocation's time runs out queues its own continuation from a cursor. Once finished it is counted in the job
 *   record (once, however often it ran) and queues the next part: at most `maxConcurrency` parts of a job are in
 *   flight. The part that completes the job queues the aggregation (claimed by one caller; given back when the
 *   message cannot be sent, taken over by a redelivered part once older than BATCH.aggregationLeaseMs).
 * - aggregate (`aggregateBatchJob`, a `batch-aggregate` message): `output.jsonl` is a multipart upload whose parts
 *   are server-side copies of the segments (small ones merged first); no function reads the whole output. One
 *   delivery at a time assembles, under a lease on the job record.
 * - cancel (`cancelBatchJob`, the S3 event of `cancel`) and a poison part's last receive (`failBatchPart`; also
 *   when that receive is about to be killed by the function's timeout: `BatchDelivery.lastReceive`) end the job;
 *   running parts see it at their next chunk, queued ones skip.
 *
 * A segment's content depends only on its name (part, first and last row): chunks are counted from the part's first
 * line and a part continues between chunks only, so a redelivered or duplicated part writes the same bytes.
 * Memory of a part: its current output segment (at most BATCH.segmentBytes and one chunk) and one chunk of input.
 */
import { createHash } from 'node:crypto';
import { BATCH, BATCH_KEYS } from '../contract/events';
import { LIMITS } from '../contract/limits';
import { STABLE_ROUTE } from '../contract/observability';
import {
  type BatchAggregateMessage,
  type BatchInputForm,
  type BatchPartMessage,
  type BatchStatus,
  batchStatusOf,
  byteLineBlocks,
  chunkRowsAt,
  decodeLines,
  errorFields,
  errorLine,
  hasTimeForAnotherChunk,
  inputObjectKind,
  type JobSpec,
  LineBytes,
  leaseExpired,
  type PartCursor,
  parseJobSpec,
  parseRow,
  planOutputParts,
  type RejectedRow,
  type SizedObject,
  strayInputObjects,
} from '../domain/batch';
import {
  type BatchPlan,
  type InputObject,
  mapConcurrent,
  type PlannedPart,
  parsePlan,
  partitionInputs,
} from '../domain/batch-partition';
import { parseInferenceBody } from '../domain/body-parser';
import { BadRequestError, isMaasError } from '../domain/errors';
import {
  type ByteLines,
  createRowScanner,
  type RowForm,
  type RowScanner,
  rowFormOf,
  type ScannedBlock,
} from '../domain/fast-rows';
import type { Tensor } from '../domain/tensor';
import {
  type BatchJobRecord,
  type BatchJobRepository,
  type BatchJobState,
  type ListedObject,
  ObjectChangedError,
  type PartSegment,
  type RangedObjects,
  S3_MAX_PART_BYTES,
  S3_MIN_PART_BYTES,
  type UploadedPart,
} from '../ports/batch';
import {
  AlreadyInProgressError,
  type BlobStore,
  type IdempotencyGuard,
  type QueuePublisher,
  type TimeBudget,
} from '../ports/events';
import { type Clock, systemClock } from '../ports/index';
import type { MetricsSink } from '../ports/telemetry';
import { PreparedRequest } from './batch-inference';
import type { Predictor } from './predict';
import { noBudget, timerBefore } from './time-budget';
import type { ServedVersion } from './version-resolver';

export interface BatchScoreDeps {
  /** The batch objects: job.json, plan.json, segments, status.json, output.jsonl. */
  readonly blobs: BlobStore;
  /** Ranged reads, listings and multipart copies of the same bucket. */
  readonly objects: RangedObjects;
  /** The job records whose conditional counters coordinate the parts. */
  readonly jobs: BatchJobRepository;
  readonly predictor: Pick<Predictor, 'resolve' | 'inferBatch'>;
  /** Where `batch-part` and `batch-aggregate` messages go (the batch queue; the worker consumes them). */
  readonly batchQueue: QueuePublisher;
  /** Guards job starts (per job and input), so a redelivered event does not start a job twice. */
  readonly startGuard?: IdempotencyGuard;
  readonly clock?: Clock;
  /** Part size of a job whose job.json gives none. @default BATCH.partBytes */
  readonly partBytes?: number;
  /** Parts in flight of a job whose job.json gives none. @default BATCH.maxConcurrency */
  readonly maxConcurrency?: number;
  /** @default BATCH.maxParts */
  readonly maxParts?: number;
  /** @default BATCH.scanBytes */
  readonly scanBytes?: number;
  /** @default BATCH.rowsPerChunk */
  readonly rowsPerChunk?: number;
  /** Lines of a part's first chunk (`chunkRowsAt`; no larger than `rowsPerChunk`). @default BATCH.firstChunkRows */
  readonly firstChunkRows?: number;
  /** Chunks waiting for their answers while the next is read. @default BATCH.chunksInFlight */
  readonly chunksInFlight?: number;
  /** @default BATCH.segmentBytes */
  readonly segmentBytes?: number;
  /** Most parts of one multipart upload (beyond: the output is assembled in two levels). @default BATCH.maxParts */
  readonly maxUploadParts?: number;
  /** @default BATCH.ioConcurrency */
  readonly ioConcurrency?: number;
  /** @default BATCH.copyConcurrency */
  readonly copyConcurrency?: number;
  /** @default BATCH.reserveMs */
  readonly reserveMs?: number;
  /**
   * How long (ms) before the invocation's end the work of a last receive, still running, ends its job (see
   * `BatchDelivery.lastReceive`). @default BATCH.lastReceiveGuardMs
   */
  readonly lastReceiveGuardMs?: number;
  /** How long the aggregation's claim and the assembly's lease stand (ms). @default BATCH.aggregationLeaseMs */
  readonly aggregationLeaseMs?: number;
  /** Where each scored chunk is reported (one request of its model version, its rows as batchRows). @default none */
  readonly metrics?: MetricsSink;
}

/** What a call did with a job. */
export type BatchRunResult =
  | { readonly state: 'done'; readonly total: number; readonly succeeded: number; readonly failed: number }
  /** The job runs on; `continued`: this part carries on in another invocation from that row. */
  | {
      readonly state: 'running';
      readonly partsDone: number;
      readonly partsTotal: number;
      readonly continued?: { readonly index: number; readonly row: number };
    }
  | { readonly state: 'failed'; readonly error: string; readonly code: string }
  | { readonly state: 'cancelled' }
  /** Nothing to do: the job ended, the part was counted already, or the input was replaced by a newer one. */
  | { readonly state: 'skipped'; readonly reason: string };

/** The event that starts a job: which form its input has, and the tag of the created object when the event has one. */
export interface BatchStart {
  readonly input: BatchInputForm;
  /** `version:{id}` or `etag:{etag}` of the created object from the event (`input.jsonl`, or `input/_SUCCESS`). */
  readonly eventTag?: string;
}

/**
 * What the worker knows of the delivery of a `batch-part` or `batch-aggregate` message (SQS).
 */
export interface BatchDelivery {
  /**
   * Receives of the message, this one included (`ApproximateReceiveCount`). A part received again (its earlier
   * receive failed or died) that finds itself counted sends again the claimed parts not counted. @default 1
   */
  readonly receiveCount?: number;
  /**
   * The message's last receive (one more failure dead-letters it). Its work still running `lastReceiveGuardMs`
   * before the invocation's end (a chunk slower than the whole invocation, an assembly too long for it) ends the
   * job failed, naming what failed, as a failure on the last receive does: the function's timeout kills the
   * invocation without running any catch. The model runs in a thread of its own on the worker (OrtThreadEngine),
   * so this thread's timer fires on time.
   */
  readonly lastReceive?: boolean;
  /** Told what the end at the deadline did (or why it failed), for the worker's log. */
  readonly onDeadline?: (outcome: { readonly result: BatchRunResult } | { readonly error: unknown }) => void;
}

/** How far a message's work has gone, for the deadline guard of its last receive. */
interface Progress {
  /**
   * Its outcome is in the job: the part counted (or found counted, or the job ended), its continuation sent, the
   * job done. What remains does not fail the job when the invocation ends.
   */
  handedOff: boolean;
}

/**
 * On a message's last receive (`delivery.lastReceive`), arms the end of its job `lastReceiveGuardMs` before the
 * invocation's end: `fail` runs then unless the work has handed its outcome on (or finished: `settle`, which also
 * waits for an end under way, so the invocation does not return half way through it).
 */
function guardLastReceive(
  deps: BatchScoreDeps,
  budget: TimeBudget,
  delivery: BatchDelivery,
  progress: Progress,
  fail: (err: Error) => Promise<BatchRunResult>,
): { settle(): Promise<void> } {
  if (!delivery.lastReceive) return { settle: async () => undefined };
  const marginMs = deps.lastReceiveGuardMs ?? BATCH.lastReceiveGuardMs;
  let ending: Promise<void> | undefined;
  const cancel = timerBefore(budget, marginMs, () => {
    if (progress.handedOff) return;
    const err = new Error(
      `the invocation ran out of time (still running ${marginMs / 1000} s before the worker's time limit)`,
    );
    ending = fail(err).then(
      (result) => delivery.onDeadline?.({ result }),
      (error: unknown) => delivery.onDeadline?.({ error }),
    );
  });
  return {
    settle: async () => {
      cancel();
      await ending;
    },
  };
}

/** Runs a message's `work` under the deadline guard of its last receive (`guardLastReceive`, ending with `fail`). */
async function guarded(
  deps: BatchScoreDeps,
  budget: TimeBudget,
  delivery: BatchDelivery,
  fail: (err: Error) => Promise<BatchRunResult>,
  work: (progress: Progress) => Promise<BatchRunResult>,
): Promise<BatchRunResult> {
  const progress: Progress = { handedOff: false };
  const guard = guardLastReceive(deps, budget, delivery, progress, fail);
  try {
    return await work(progress);
  } finally {
    await guard.settle();
  }
}

const NDJSON = 'application/x-ndjson';
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The name of an input's segments under `parts/` (a digest of its input tag). */
export function runOfInput(inputTag: string): string {
  return sha256(inputTag).slice(0, 16);
}

/**
 * The tag of the job of an input, which its record, its messages, its part records and its segments (`{run}`) carry:
 * the input's tag for a job that follows no other, else the input's tag and a digest of the tag of the job it
 * follows. The same input again after another one (A, B, then A — an unversioned bucket gives the same bytes the
 * same ETag) is then another job than the first A: late messages and part records of the first are not the new
 * one's, and A, B, A, B gives four jobs.
 */
export function jobTagOf(inputTag: string, follows: string): string {
  return follows === '' ? inputTag : `${inputTag}${afterSuffix(follows)}`;
}

/** What the tag of a job (or failed start) that came right after the job tagged `jobTag` ends with. */
function afterSuffix(jobTag: string): string {
  return `#after:${sha256(jobTag).slice(0, 16)}`;
}

/** Tag of an input object: its version id, else its ETag. */
function inputTagOf(head: { eTag?: string; versionId?: string }): string {
  return head.versionId ? `version:${head.versionId}` : `etag:${head.eTag ?? 'none'}`;
}

const now = (deps: BatchScoreDeps) => (deps.clock ?? systemClock).now();

async function writeStatus(deps: BatchScoreDeps, status: BatchStatus): Promise<void> {
  await deps.blobs.put(BATCH_KEYS.status(status.jobId), JSON.stringify(status));
}

/**
 * Writes `status.json` from a job record. Writers do not wait for one another, so a `running` status written just
 * as another worker ends the job (done, cancelled, failed) could land after the ending one and stay: after a
 * `running` write the record is read again, and the status written again when the job has ended meanwhile. The
 * ending writer writes after its end is recorded, so whichever write comes last says how the job ended.
 */
async function writeJobStatus(deps: BatchScoreDeps, job: BatchJobRecord): Promise<void> {
  // A later start's status (one that failed before it made a record) stands: this job was replaced by it.
  if (job.state === 'running' && (await laterStartShown(deps, job))) return;
  await writeStatus(deps, batchStatusOf(job, now(deps)));
  if (job.state !== 'running') return;
  const after = await deps.jobs.getJob(job.jobId);
  // Ended meanwhile, or replaced by another job (which may have ended before this write landed): the record's
  // status is the last word — unless a later start failed meanwhile.
  if (after && (after.inputTag !== job.inputTag || after.state !== 'running')) {
    if (!(await laterStartShown(deps, after))) await writeStatus(deps, batchStatusOf(after, now(deps)));
  }
}

/**
 * Whether `status.json` is about a start that came after `job` and failed before it made a record (its tag ends
 * with `job`'s digest): that status is the start's to keep. Tags order them, not clocks.
 */
async function laterStartShown(deps: BatchScoreDeps, job: BatchJobRecord): Promise<boolean> {
  const current = await deps.blobs.get(BATCH_KEYS.status(job.jobId));
  const shown = current === undefined ? undefined : statusField(current, 'inputTag');
  return shown?.endsWith(afterSuffix(job.inputTag)) === true;
}

/**
 * What follows a job's end, from its ended record: `status.json` written as the record says, `output.jsonl`
 * removed unless the job is done (a cancelled or failed job has none: one that an assembly of the job it replaced
 * completed late goes), and the job's segments removed (kept after a failed assembly: they are what an operator
 * inspects). Every end runs it right after its `finish`; a redelivered message (or retried S3 event) of the job's
 * input that finds the job ended runs it again, so an end whose status write or clean-up failed half-way is
 * completed by its retry, and `status.json` never stays `running` behind an ended record. The status's clock is
 * the end's time: written again, it says the same.
 */
async function afterEnd(deps: BatchScoreDeps, job: BatchJobRecord): Promise<void> {
  // status.json of a later start that failed is that start's to keep; any other (this job's, an earlier one's late
  // running write) gives way.
  if (!(await laterStartShown(deps, job))) {
    const endedAt = new Date(job.updatedAt);
    await writeStatus(deps, batchStatusOf(job, Number.isNaN(endedAt.getTime()) ? now(deps) : endedAt));
  }
  if (job.state !== 'done') await deps.blobs.delete(BATCH_KEYS.output(job.jobId));
  if (job.code !== BATCH_AGGREGATION_FAILED) {
    await deleteUnder(deps, BATCH_KEYS.segments(job.jobId, runOfInput(job.inputTag)));
  }
}

/**
 * A field of a `status.json` document: its `inputTag` (job tag) or its `state` (undefined when it has none or is not
 * JSON).
 */
function statusField(bytes: Uint8Array, field: 'inputTag' | 'state'): string | undefined {
  try {
    const value = (JSON.parse(dec(bytes)) as Record<string, unknown> | null)?.[field];
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The record when it is of `inputTag`'s job and that job has ended (its end's follow-up is run again). */
function endedOf(job: BatchJobRecord | undefined, inputTag: string): BatchJobRecord | undefined {
  return job && job.inputTag === inputTag && job.state !== 'running' ? job : undefined;
}

/** Runs the end's follow-up again when `job` is the record of `inputTag`'s job and that job has ended. */
async function afterEndAgain(
  deps: BatchScoreDeps,
  job: BatchJobRecord | undefined,
  inputTag: string,
): Promise<void> {
  const ended = endedOf(job, inputTag);
  if (ended) await afterEnd(deps, ended);
}

// ---------------------------------------------------------------------------------------------------------
// Start

/** The input objects of a job and the tag that names this input; undefined when there is none (any more). */
async function inputsOf(
  deps: BatchScoreDeps,
  jobId: string,
  start: BatchStart,
): Promise<{ inputTag: string; inputs: InputObject[]; stray?: string[] } | { skipped: string }> {
  if (start.input === 'file') {
    const head = await deps.blobs.head(BATCH_KEYS.input(jobId));
    if (!head) return { skipped: 'input.jsonl no longer exists' };
    const inputTag = inputTagOf(head);
    if (start.eventTag && start.eventTag !== inputTag) {
      return { skipped: 'input.jsonl was replaced since this event; its own event starts the new job' };
    }
    const input = { key: BATCH_KEYS.input(jobId), sizeBytes: head.sizeBytes };
    return { inputTag, inputs: [head.eTag !== undefined ? { ...input, eTag: head.eTag } : input] };
  }
  // The marker names the start: written again (a new version of it), it starts the same files again.
  const marker = await deps.blobs.head(BATCH_KEYS.inputMarker(jobId));
  if (!marker) return { skipped: 'input/_SUCCESS no longer exists' };
  const markerTag = inputTagOf(marker);
  if (start.eventTag && start.eventTag !== markerTag) {
    return { skipped: 'input/_SUCCESS was written again since this event; its own event starts the job' };
  }
  const prefix = BATCH_KEYS.inputPrefix(jobId);
  const inputs: ListedObject[] = [];
  const stray: string[] = [];
  for (const o of await deps.objects.list(prefix)) {
    const name = o.key.slice(prefix.length);
    const kind = inputObjectKind(name);
    if (kind === 'input') inputs.push(o);
    else if (kind === 'other') stray.push(name);
  }
  // The objects as they are now name the input: a new set of files (or new contents) is another job; so are the
  // same files once the objects refused beside them are gone.
  const listing = [
    markerTag,
    ...inputs.map((o) => `${o.key}\n${o.eTag ?? ''}\n${o.sizeBytes}`),
    ...stray.map((name) => `stray\n${name}`),
  ].join('\n');
  return {
    inputTag: `inputs:${sha256(listing).slice(0, 32)}`,
    inputs: inputs.map((o) => ({
      key: o.key,
      sizeBytes: o.sizeBytes,
      ...(o.eTag !== undefined ? { eTag: o.eTag } : {}),
    })),
    ...(stray.length > 0 ? { stray } : {}),
  };
}

/**
 * Starts the job whose input was created (`input.jsonl`, or `input/_SUCCESS` after the `input/*.jsonl` objects).
 * Resolves once the job is recorded and its first parts are queued (or it ended at once: empty input, bad
 * job.json, unknown model).
 */
export async function startBatchJob(
  deps: BatchScoreDeps,
  jobId: string,
  start: BatchStart,
  budget: TimeBudget = noBudget,
): Promise<BatchRunResult> {
  const found = await inputsOf(deps, jobId, start);
  if ('skipped' in found) return { state: 'skipped', reason: found.skipped };
  // A repeat of the start of the job standing now (its input, after the job it follows) is that job; any other
  // start is a new job, which follows the one standing.
  const standing = await deps.jobs.getJob(jobId);
  const repeat =
    standing !== undefined && standing.inputTag === jobTagOf(found.inputTag, standing.follows ?? '');
  const follows = repeat ? (standing.follows ?? '') : (standing?.inputTag ?? '');
  const jobTag = jobTagOf(found.inputTag, follows);
  const run = () => startUnguarded(deps, jobId, start.input, jobTag, follows, found.inputs, found.stray);
  if (!deps.startGuard) return run();
  try {
    return await deps.startGuard.once({ jobId, inputTag: jobTag }, run, budget);
  } catch (e) {
    // Another delivery starts this very input right now: it owns it.
    if (e instanceof AlreadyInProgressError)
      return { state: 'skipped', reason: 'already starting elsewhere' };
    throw e;
  }
}

/** How a job ends when a new input of its job id replaces it. */
const REPLACED = { error: 'a new input of the job replaced this one', code: 'BATCH_INPUT_REPLACED' } as const;

async function startUnguarded(
  deps: BatchScoreDeps,
  jobId: string,
  form: BatchInputForm,
  inputTag: string,
  follows: string,
  inputs: readonly InputObject[],
  stray: readonly string[] = [],
): Promise<BatchRunResult> {
  const startedAt = now(deps).toISOString();
  const bytesTotal = inputs.reduce((n, o) => n + o.sizeBytes, 0);
  const fail = async (err: unknown, spec?: JobSpec): Promise<BatchRunResult> => {
    const { error, code } = errorFields(err);
    // The job of the input before, still running, is replaced all the same: the job is this input's now. Ended
    // before this status is written, so that none of its own status writes comes after it.
    let replaced: BatchJobRecord | undefined;
    if (standing?.state === 'running' && standing.inputTag !== inputTag) {
      replaced =
        (await deps.jobs.finish(jobId, standing.inputTag, 'cancelled', now(deps).toISOString(), REPLACED)) ??
        (await deps.jobs.getJob(jobId));
    }
    // The output of the job before is not this failed start's (a repeat of the standing job's start keeps it).
    if (standing?.inputTag !== inputTag) await deps.blobs.delete(BATCH_KEYS.output(jobId));
    await writeStatus(deps, {
      jobId,
      inputTag,
      state: 'failed',
      ...(spec ? { model: spec.model, ref: spec.ref } : {}),
      partsDone: 0,
      partsTotal: 0,
      total: 0,
      succeeded: 0,
      failed: 0,
      rowsPerSecond: 0,
      bytesDone: 0,
      bytesTotal,
      startedAt,
      updatedAt: now(deps).toISOString(),
      error,
      code,
    });
    // Its segments go; its status.json gives way to this one (whose tag follows it).
    if (replaced && replaced.inputTag === standing?.inputTag && replaced.state !== 'running') {
      await afterEnd(deps, replaced);
    }
    return { state: 'failed', error, code };
  };

  // A redelivered start of an input whose job ended (its guard record expired, or none): nothing to do.
  const standing = await deps.jobs.getJob(jobId);
  const ended = endedOf(standing, inputTag);
  if (ended) {
    await afterEnd(deps, ended);
    return { state: 'skipped', reason: `the job of this input is already ${ended.state}` };
  }
  const jobBytes = await deps.blobs.get(BATCH_KEYS.job(jobId));
  if (!jobBytes) {
    const trigger = form === 'file' ? 'input.jsonl' : 'input/_SUCCESS';
    return fail(
      new BadRequestError(`batch/${jobId}/job.json is missing: write it before ${trigger}`, 'JOB_NOT_FOUND'),
    );
  }
  let spec: JobSpec;
  try {
    spec = parseJobSpec(dec(jobBytes));
  } catch (e) {
    return fail(e);
  }
  // Objects under input/ that are no input files: their rows would be missing from the output without a word.
  if (stray.length > 0) return fail(strayInputObjects(stray), spec);
  let version: number;
  try {
    version = (await deps.predictor.resolve(spec.model, spec.ref)).version.version;
  } catch (e) {
    if (isMaasError(e) && e.status < 500) return fail(e, spec);
    throw e;
  }
  let cut: { partBytes: number; parts: PlannedPart[] };
  try {
    cut = await partitionInputs(inputs, {
      partBytes: spec.partBytes ?? deps.partBytes ?? BATCH.partBytes,
      readRange: (key, s, e, eTag) => deps.objects.getRange(key, s, e, eTag),
      maxParts: deps.maxParts ?? BATCH.maxParts,
      scanBytes: deps.scanBytes ?? BATCH.scanBytes,
      concurrency: deps.ioConcurrency ?? BATCH.ioConcurrency,
    });
  } catch (e) {
    if (isMaasError(e) && e.status < 500) return fail(e, spec);
    throw e;
  }
  const plan: BatchPlan = { inputTag, partBytes: cut.partBytes, bytesTotal, parts: cut.parts };
  await deps.blobs.put(BATCH_KEYS.plan(jobId), JSON.stringify(plan));
  rememberPlan(deps, jobId, plan);

  const fresh = {
    jobId,
    inputTag,
    model: spec.model,
    ref: spec.ref,
    version,
    partsTotal: plan.parts.length,
    maxConcurrency: spec.maxConcurrency ?? deps.maxConcurrency ?? BATCH.maxConcurrency,
    partBytes: plan.partBytes,
    bytesTotal,
    startedAt,
    updatedAt: startedAt,
    ...(follows !== '' ? { follows } : {}),
  };
  // A cancel written before this job: its event (delivered again, or late) must not cancel this one, and finds
  // it gone (`cancelBatchJob`). The output of the job before (done) is not this job's: were it left, this job,
  // cancelled or failed, would show it as its own, and one waiting for output.jsonl would read it while this job
  // runs. A repeat of this job's own start leaves them alone (it is this job's cancel; it has no output yet).
  if (standing?.inputTag !== inputTag) await clearForNewJob(deps, jobId);
  let job = await deps.jobs.createJob(fresh);
  // The job this one replaces: the record standing when it was created (read before, or found by createJob).
  let replaced = standing;
  if (job.inputTag !== inputTag) {
    // The job of a previous input still runs: the new input replaces it.
    replaced = job;
    await deps.jobs.finish(job.jobId, job.inputTag, 'cancelled', now(deps).toISOString(), REPLACED);
    job = await deps.jobs.createJob(fresh);
    if (job.inputTag !== inputTag)
      throw new Error(`batch ${jobId}: the job of another input started meanwhile`);
  }
  if (job.state !== 'running') {
    await afterEnd(deps, job);
    return { state: 'skipped', reason: `the job of this input is already ${job.state}` };
  }
  // The segments of the input this one replaces (counted parts of a job cancelled just now, or kept after a failed
  // assembly): nobody reads them any more. Its parts still in flight remove their own.
  if (replaced && replaced.inputTag !== inputTag) {
    await deleteUnder(deps, BATCH_KEYS.segments(jobId, runOfInput(replaced.inputTag)));
  }

  if (job.partsTotal === 0) {
    await deps.blobs.put(BATCH_KEYS.output(jobId), new Uint8Array(), NDJSON);
    const done = await deps.jobs.finish(jobId, inputTag, 'done', now(deps).toISOString());
    // Another end (a cancel) came first: its record says how the job ended.
    if (done) await afterEnd(deps, done);
    else await afterEndAgain(deps, await deps.jobs.getJob(jobId), inputTag);
    return { state: 'done', total: 0, succeeded: 0, failed: 0 };
  }

  // The first parts, up to maxConcurrency. A retried start claims only what its first attempt did not, and
  // queues again every claimed part not yet counted (a duplicate part is harmless, a lost one would stall the job).
  const conc = deps.ioConcurrency ?? BATCH.ioConcurrency;
  const initial = Math.min(job.maxConcurrency, job.partsTotal);
  const missing = Math.max(0, initial - job.queued);
  await mapConcurrent(
    Array.from({ length: missing }, (_, i) => i),
    conc,
    () => deps.jobs.claimNext(jobId, inputTag),
  );
  const claimed = (await deps.jobs.getJob(jobId)) ?? job;
  if (claimed.inputTag !== inputTag || claimed.state !== 'running') {
    return {
      state: 'skipped',
      reason: `the job is ${claimed.inputTag !== inputTag ? 'replaced' : claimed.state}`,
    };
  }
  const toSend = await uncountedParts(deps, claimed);
  // The status first: a fast part's own status must not be overwritten by this older one.
  await writeJobStatus(deps, claimed);
  await sendParts(deps, claimed, toSend);
  return { state: 'running', partsDone: claimed.partsDone, partsTotal: claimed.partsTotal };
}

/**
 * The part indexes of a job that are claimed (below `queued`) and not counted: those in flight, and any whose
 * message was lost after its claim (its send failed, or the invocation ended between the claim and the send; or
 * the SDK's retry of a claim whose answer was lost claimed again: DynamoBatchJobRepository.claimNext).
 */
async function uncountedParts(deps: BatchScoreDeps, job: BatchJobRecord): Promise<number[]> {
  const counted = new Set(
    job.partsDone > 0 ? (await deps.jobs.listParts(job.jobId, job.inputTag)).map((p) => p.index) : [],
  );
  const out: number[] = [];
  for (let i = 0; i < Math.min(job.queued, job.partsTotal); i++) if (!counted.has(i)) out.push(i);
  return out;
}

/**
 * Sends (again) the `batch-part` messages of these indexes. A part sent again while it is in flight is harmless:
 * it is scored from its first line, in the same chunks, so it writes the same bytes under the same segment keys
 * (a segment's content depends only on its name; one continued at other rows writes segments of other names,
 * which nothing lists and the job's end removes with the rest of `parts/{run}/`); it is counted once
 * (`completePart` puts the PART record only if absent), and its other completion is a `duplicate` that changes
 * no count and deletes no segment. A part never sent would leave the job running for ever.
 */
async function sendParts(
  deps: BatchScoreDeps,
  job: BatchJobRecord,
  indexes: readonly number[],
): Promise<void> {
  const { jobId, inputTag } = job;
  await mapConcurrent(indexes, deps.ioConcurrency ?? BATCH.ioConcurrency, (index) =>
    sendPart(deps, { jobId, inputTag, index }),
  );
}

/** What a new job of `jobId` (not a repeat of the standing job's start) removes before its record. */
async function clearForNewJob(deps: BatchScoreDeps, jobId: string): Promise<void> {
  await Promise.all([
    deps.blobs.delete(BATCH_KEYS.cancel(jobId)),
    deps.blobs.delete(BATCH_KEYS.output(jobId)),
  ]);
}

function sendPart(
  deps: BatchScoreDeps,
  m: { jobId: string; inputTag: string; index: number; cursor?: PartCursor },
): Promise<string> {
  return deps.batchQueue.send({ type: 'batch-part', ...m });
}

function sendAggregate(deps: BatchScoreDeps, jobId: string, inputTag: string): Promise<string> {
  return deps.batchQueue.send({ type: 'batch-aggregate', jobId, inputTag });
}

const leaseMsOf = (deps: BatchScoreDeps) => deps.aggregationLeaseMs ?? BATCH.aggregationLeaseMs;

/**
 * Claims the aggregation (one caller wins; a claim older than the lease is taken over) and sends the
 * `batch-aggregate` message. A send that fails gives the claim back before the error goes on, so that the part's
 * redelivery claims and sends again (a claim left behind, the giving back failed too, is taken over once stale).
 */
async function claimAndSendAggregate(
  deps: BatchScoreDeps,
  jobId: string,
  inputTag: string,
  at: string,
  leaseMs = leaseMsOf(deps),
): Promise<boolean> {
  const claim = await deps.jobs.claimAggregation(jobId, inputTag, at, leaseMs);
  if (claim === undefined) return false;
  try {
    await sendAggregate(deps, jobId, inputTag);
  } catch (e) {
    await deps.jobs.releaseAggregation(jobId, inputTag, claim).catch(() => undefined);
    throw e;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Plans, cached per store (one per Lambda container) and job

const planCache = new WeakMap<object, Map<string, BatchPlan>>();
const PLAN_CACHE_SIZE = 8;

function rememberPlan(deps: BatchScoreDeps, jobId: string, plan: BatchPlan): void {
  const cache = planCache.get(deps.blobs) ?? new Map<string, BatchPlan>();
  planCache.set(deps.blobs, cache);
  const key = `${jobId}\n${plan.inputTag}`;
  cache.delete(key);
  cache.set(key, plan);
  while (cache.size > PLAN_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
}

/** The plan of a job's input; undefined when plan.json is about another input (or missing). */
async function planOf(deps: BatchScoreDeps, jobId: string, inputTag: string): Promise<BatchPlan | undefined> {
  const cached = planCache.get(deps.blobs)?.get(`${jobId}\n${inputTag}`);
  if (cached) return cached;
  const bytes = await deps.blobs.get(BATCH_KEYS.plan(jobId));
  if (!bytes) return undefined;
  const plan = parsePlan(dec(bytes));
  if (plan.inputTag !== inputTag) return undefined;
  rememberPlan(deps, jobId, plan);
  return plan;
}

function stateOf(job: BatchJobRecord | undefined, inputTag: string): string | undefined {
  if (!job) return 'missing';
  if (job.inputTag !== inputTag) return 'replaced';
  return job.state === 'running' ? undefined : job.state;
}

// ---------------------------------------------------------------------------------------------------------
// Parts

/**
 * Scores one part of a job (a `batch-part` message), from its cursor when continued. On the message's last receive
 * (`delivery`), the job is ended failed naming the part when the part still runs shortly before the invocation's
 * end (`failBatchPart`, as when it fails then).
 */
export async function runBatchPart(
  deps: BatchScoreDeps,
  message: Omit<BatchPartMessage, 'type'>,
  budget: TimeBudget = noBudget,
  delivery: BatchDelivery = {},
): Promise<BatchRunResult> {
  const receiveCount = delivery.receiveCount ?? 1;
  return guarded(
    deps,
    budget,
    delivery,
    (err) => failBatchPart(deps, message, receiveCount, err),
    (progress) => runPart(deps, message, budget, progress, receiveCount),
  );
}

async function runPart(
  deps: BatchScoreDeps,
  message: Omit<BatchPartMessage, 'type'>,
  budget: TimeBudget,
  progress: Progress,
  receiveCount: number,
): Promise<BatchRunResult> {
  try {
    return await scorePart(deps, message, budget, progress, receiveCount);
  } catch (e) {
    if (!(e instanceof ObjectChangedError)) throw e;
    // The input object was written again or deleted while the job ran (the part reads the bytes the job started on, or none:
    // `part.eTag`, checked as the ranged GET answers, before any line of it): its lines are not those the job was
    // planned on, nor would its output be. A new input's start replaces the job anyway; an object written again
    // without one would be scored in no order at all.
    const { jobId, inputTag, index } = message;
    await deleteSegments(deps, jobId, inputTag, index, message.cursor?.segments ?? []);
    const error = `${e.key} was ${e.deleted ? 'deleted' : 'written again'} while the job ran: part ${index} cannot read the input it was planned on`;
    return failJob(deps, jobId, inputTag, error, BATCH_INPUT_CHANGED);
  }
}

/** Ends the job failed (a failure no retry can mend); skipped when it ended meanwhile. */
async function failJob(
  deps: BatchScoreDeps,
  jobId: string,
  inputTag: string,
  error: string,
  code: string,
): Promise<BatchRunResult> {
  const ended = await deps.jobs.finish(jobId, inputTag, 'failed', now(deps).toISOString(), { error, code });
  if (!ended) return { state: 'skipped', reason: 'the job ended meanwhile' };
  await afterEnd(deps, ended);
  return { state: 'failed', error, code };
}

async function scorePart(
  deps: BatchScoreDeps,
  message: Omit<BatchPartMessage, 'type'>,
  budget: TimeBudget,
  progress: Progress,
  receiveCount: number,
): Promise<BatchRunResult> {
  const { jobId, inputTag, index } = message;
  const job = await deps.jobs.getJob(jobId);
  const stopped = stateOf(job, inputTag);
  // A continuation of a job that ended meanwhile: the segments its cursor names are of no use (the end's own
  // clean-up may have run before they were written).
  const orphans = message.cursor?.segments ?? [];
  if (stopped || !job) {
    await deleteSegments(deps, jobId, inputTag, index, orphans);
    await afterEndAgain(deps, job, inputTag);
    return { state: 'skipped', reason: `the job is ${stopped}` };
  }
  const plan = await planOf(deps, jobId, inputTag);
  if (!plan) {
    await deleteSegments(deps, jobId, inputTag, index, orphans);
    return { state: 'skipped', reason: 'the plan of this input is gone (the input was replaced)' };
  }
  const part = plan.parts[index];
  if (!part) throw new Error(`batch ${jobId}: part ${index} is not in the plan (${plan.parts.length} parts)`);

  const rowsPerChunk = deps.rowsPerChunk ?? BATCH.rowsPerChunk;
  const firstChunkRows = deps.firstChunkRows ?? BATCH.firstChunkRows;
  const segmentBytes = deps.segmentBytes ?? BATCH.segmentBytes;
  const reserveMs = deps.reserveMs ?? BATCH.reserveMs;
  const clock = deps.clock ?? systemClock;
  const run = runOfInput(inputTag);
  const cursor = message.cursor;
  let offset = cursor?.offset ?? 0;
  let row = cursor?.row ?? 0;
  let failed = cursor?.failed ?? 0;
  const firstRow = row;
  const segments: PartSegment[] = [...(cursor?.segments ?? [])];
  const written = new LineBytes();
  let segmentFrom = row;
  const flush = async () => {
    if (row === segmentFrom) return;
    const body = written.take();
    await deps.blobs.put(BATCH_KEYS.segment(jobId, run, index, segmentFrom, row), body, NDJSON);
    segments.push({ fromRow: segmentFrom, toRow: row, sizeBytes: body.length });
    segmentFrom = row;
  };

  // Scoring is pipelined: chunk k + 1 is read and scanned, and its runs started, before the answers of chunk k are
  // taken (up to BATCH.chunksInFlight chunks wait for their answers). An engine that runs in a thread of its own
  // (OrtThreadEngine) scores chunks while this thread reads the next ones; the synchronous engine scores each as it
  // is started. Either way chunks settle in order and the bytes written are the same.
  const depth = deps.chunksInFlight ?? BATCH.chunksInFlight;
  let chunks = 0;
  let slowest = 0;
  let lastSettled = clock.now().getTime();
  // A scanner's arrays are reused by its next block: one scanner more than chunks in flight.
  const scanners: PartScanner[] = Array.from({ length: depth + 1 }, () => ({}));
  let started = 0;
  const inFlight: { readonly scored: Promise<Scored>; readonly bytes: number; readonly lines: number }[] = [];
  /** Takes the oldest chunk's answers; a result when the part ends here (the job failed). */
  const settle = async (): Promise<BatchRunResult | undefined> => {
    const chunk = inFlight.shift()!;
    const scored = await chunk.scored;
    if ('error' in scored) {
      const e = scored.error;
      // The model version vanished or became unservable mid-job: the job fails, it is not retried forever.
      if (isMaasError(e) && e.status < 500) {
        const { error, code } = errorFields(e);
        return failJob(deps, jobId, inputTag, error, code);
      }
      throw e;
    }
    const out = scored.lines;
    failed += scored.failed;
    written.append(out);
    row += out.length;
    offset += chunk.bytes;
    chunks++;
    const at = clock.now().getTime();
    // The time of a whole chunk, from a first chunk smaller than one.
    slowest = Math.max(slowest, ((at - lastSettled) * rowsPerChunk) / Math.max(chunk.lines, 1));
    lastSettled = at;
    if (written.length >= segmentBytes) await flush();
    return undefined;
  };
  /** Settles chunks until at most `max` are in flight; when the part ends on the way, waits for the rest unread. */
  const settleTo = async (max: number): Promise<BatchRunResult | undefined> => {
    while (inFlight.length > max) {
      try {
        const ended = await settle();
        if (ended) {
          await abandon();
          return ended;
        }
      } catch (e) {
        await abandon();
        throw e;
      }
    }
    return undefined;
  };
  /** Waits for the chunks in flight without taking their answers (the part stops here). */
  const abandon = async () => {
    for (const chunk of inFlight.splice(0)) await chunk.scored;
  };
  // Each block is scanned before the next one is read: they share one array.
  for await (const block of byteLineBlocks(
    deps.objects.streamRange(part.key, part.start + offset, part.end, part.eTag),
    (line) => chunkRowsAt(firstRow + line, rowsPerChunk, firstChunkRows),
    true,
  )) {
    // Read and scanned while the chunks in flight are scored; scored below only when there is time for it.
    const read = await readChunk(deps, job, block.lines, scanners[started++ % scanners.length]!);
    // The first chunk of an invocation settles before another is scored: its time bounds the next ones'.
    let ended = chunks === 0 ? await settleTo(0) : undefined;
    // Scoring a chunk needs the time of the chunks in flight and its own.
    if (
      !ended &&
      !hasTimeForAnotherChunk(
        budget.getRemainingTimeInMillis(),
        slowest * (inFlight.length + 1),
        reserveMs,
        chunks,
      )
    ) {
      ended = await settleTo(0);
      if (!ended) {
        // The chunk just read is not scored: the continuation reads it again from the cursor.
        await flush();
        await sendPart(deps, { jobId, inputTag, index, cursor: { offset, row, failed, segments } });
        progress.handedOff = true;
        return {
          state: 'running',
          partsDone: job.partsDone,
          partsTotal: job.partsTotal,
          continued: { index, row },
        };
      }
    }
    if (ended) return ended;
    if (chunks > 0) {
      // A cancel (or a failure, or a new input) stops the part between chunks; its segments are of no use.
      const gone = stateOf(await deps.jobs.getJob(jobId), inputTag);
      if (gone) {
        await abandon();
        await deleteSegments(deps, jobId, inputTag, index, segments);
        return { state: 'skipped', reason: `the job is ${gone}` };
      }
    }
    const scored = scoreChunk(deps, job, read).then(
      (answered): Scored => answered,
      (error: unknown): Scored => ({ error }),
    );
    inFlight.push({ scored, bytes: block.bytes, lines: block.lines.count });
    ended = await settleTo(depth);
    if (ended) return ended;
  }
  const ended = await settleTo(0);
  if (ended) return ended;
  await flush();
  if (offset !== part.end - part.start) {
    throw new Error(
      `batch ${jobId}: part ${index} read ${offset} of ${part.end - part.start} bytes (the input changed?)`,
    );
  }
  return completePart(
    deps,
    jobId,
    inputTag,
    { index, rows: row, failedRows: failed, bytes: part.end - part.start, segments },
    progress,
    receiveCount,
  );
}

async function completePart(
  deps: BatchScoreDeps,
  jobId: string,
  inputTag: string,
  outcome: { index: number; rows: number; failedRows: number; bytes: number; segments: PartSegment[] },
  progress: Progress,
  receiveCount: number,
): Promise<BatchRunResult> {
  const at = now(deps).toISOString();
  const done = await deps.jobs.completePart(jobId, inputTag, outcome, at);
  progress.handedOff = true;
  if (done.kind === 'stopped') {
    // Nobody reads this delivery's segments: the job ended (or its output is assembled already).
    await deleteSegments(deps, jobId, inputTag, outcome.index, outcome.segments);
    return { state: 'skipped', reason: `the job is ${done.state}` };
  }
  if (done.kind === 'duplicate') {
    // Counted by an earlier delivery, which may have stopped before queueing what follows: queue it when nothing
    // shows it was (a part too many in flight is harmless; a part never queued would stall the job).
    const job = await deps.jobs.getJob(jobId);
    if (job && !stateOf(job, inputTag)) {
      // A receive after one that failed or died: that one may have claimed the next index and never sent it (the
      // send failed, or the invocation ended between the two), which no count shows. Every claimed part not
      // counted is sent again, as a retried start does (`sendParts`: one in flight twice is harmless). Only on a
      // receive after the first: the parts so sent are new messages, whose own duplicates send nothing — were
      // every duplicate to send the parts in flight again, each of those would do the same, and so on.
      if (receiveCount > 1) await sendParts(deps, job, await uncountedParts(deps, job));
      if (job.queued < job.partsTotal && job.queued - job.partsDone < job.maxConcurrency) {
        const next = await deps.jobs.claimNext(jobId, inputTag);
        if (next !== undefined) await sendPart(deps, { jobId, inputTag, index: next });
      }
      // The aggregation is claimed and sent again when no claim shows it was, or the claim is older than the
      // lease: its sender died before sending, or the message was lost (a duplicate message is skipped).
      const claimedAt = job.aggregationClaimedAt;
      if (
        job.partsDone === job.partsTotal &&
        (claimedAt === undefined || leaseExpired(claimedAt, at, leaseMsOf(deps)))
      ) {
        await claimAndSendAggregate(deps, jobId, inputTag, at);
      }
    }
    return { state: 'skipped', reason: `part ${outcome.index} was counted already` };
  }
  const job = done.job;
  await writeJobStatus(deps, job);
  const next = await deps.jobs.claimNext(jobId, inputTag);
  if (next !== undefined) await sendPart(deps, { jobId, inputTag, index: next });
  if (job.partsDone === job.partsTotal) await claimAndSendAggregate(deps, jobId, inputTag, at);
  return { state: 'running', partsDone: job.partsDone, partsTotal: job.partsTotal };
}

async function deleteSegments(
  deps: BatchScoreDeps,
  jobId: string,
  inputTag: string,
  index: number,
  segments: readonly PartSegment[],
): Promise<void> {
  const run = runOfInput(inputTag);
  await mapConcurrent(segments, deps.ioConcurrency ?? BATCH.ioConcurrency, (s) =>
    deps.blobs.delete(BATCH_KEYS.segment(jobId, run, index, s.fromRow, s.toRow)),
  );
}

/** The row form of a served version's inputs (null: they have none), made once per version. */
const rowForms = new WeakMap<ServedVersion, RowForm | null>();

function rowFormOfVersion(served: ServedVersion): RowForm | undefined {
  let form = rowForms.get(served);
  if (form === undefined) {
    const inputs = served.version?.signature?.inputs;
    form = (inputs && rowFormOf(inputs, LIMITS.maxInferenceIdLength)) || null;
    rowForms.set(served, form);
  }
  return form ?? undefined;
}

/**
 * The row scanner of one part (its value arrays are reused from chunk to chunk, so a scanner is never shared by
 * parts scored at once in one process).
 */
interface PartScanner {
  form?: RowForm;
  scanner?: RowScanner;
}

function scannerFor(state: PartScanner, form: RowForm): RowScanner {
  if (state.form !== form || !state.scanner) {
    state.form = form;
    state.scanner = createRowScanner(form);
  }
  return state.scanner;
}

/** A chunk's answers, or why it has none. */
type Scored = ChunkLines | { readonly error: unknown };

/** A chunk's output lines, and how many of them are error lines. */
interface ChunkLines {
  readonly lines: string[];
  readonly failed: number;
}

/** A chunk's lines read for scoring: nothing in it refers to the block's bytes any more. */
interface ReadChunk {
  readonly startedAt: number;
  readonly count: number;
  /** The requests of the lines that parsed, in line order. */
  readonly requests: unknown[];
  /** Per line: its parse error (undefined: its request is in `requests`). */
  readonly rejected: (RejectedRow | undefined)[];
  readonly payloadBytes: number;
}

/**
 * Reads a chunk's lines into requests. Lines of the version's common row form are read by the row scanner
 * (functions/domain/fast-rows.ts) straight into stacked inputs; every other line is decoded and parsed as JSON
 * (`parseRow`), as are all lines when the version has no row form. Both give the same answers, byte for byte.
 */
async function readChunk(
  deps: BatchScoreDeps,
  job: { model: string; version: number },
  lines: ByteLines,
  part: PartScanner,
): Promise<ReadChunk> {
  const startedAt = performance.now();
  const n = lines.count;
  // The version resolved (cached) for its signature; when that fails, inferBatch fails the same way later.
  const served = await deps.predictor.resolve(job.model, String(job.version)).catch(() => undefined);
  const form = served ? rowFormOfVersion(served) : undefined;
  // The block's values are dead once its answers are made: this scanner's next block (BATCH.chunksInFlight + 1
  // chunks later, when this one has settled) reuses their arrays.
  const scanned = form ? scannerFor(part, form).scanBlock(lines, true) : undefined;
  const texts = scanned ? scanned.texts : decodeLines(lines);
  const rejected: (RejectedRow | undefined)[] = new Array(n);
  const requests: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const rows = scanned ? scanned.rows[i]! : 0;
    if (rows > 0 && scanned && form) {
      requests.push(preparedRow(form, scanned, i, rows));
      continue;
    }
    const r = parseRow(i, texts[i]!, parseInferenceBody);
    if (r.ok) requests.push(r.request);
    else rejected[i] = r;
  }
  let payloadBytes = 0;
  for (let i = 0; i < n; i++) payloadBytes += lines.ends[i]! - lines.starts[i]!;
  return { startedAt, count: n, requests, rejected, payloadBytes };
}

/**
 * One output line per line of a read chunk: parse errors answered as such, the rest by one `inferBatch` call;
 * error lines counted as they are made.
 */
async function scoreChunk(
  deps: BatchScoreDeps,
  job: { model: string; version: number },
  chunk: ReadChunk,
): Promise<ChunkLines> {
  const { count: n, requests, rejected } = chunk;
  const items = requests.length
    ? await deps.predictor.inferBatch(job.model, String(job.version), requests)
    : [];
  deps.metrics?.inference({
    model: job.model,
    version: job.version,
    route: STABLE_ROUTE,
    status: 200,
    latencyMs: performance.now() - chunk.startedAt,
    coldStart: false,
    payloadBytes: chunk.payloadBytes,
    batchRows: n,
  });
  const out: string[] = new Array(n);
  let failed = 0;
  let j = 0;
  for (let i = 0; i < n; i++) {
    const r = rejected[i];
    if (r) {
      out[i] = JSON.stringify({ error: r.error, code: r.code });
      failed++;
      continue;
    }
    const item = items[j++];
    if (item?.ok) {
      out[i] = item.json ?? JSON.stringify(item.response);
      continue;
    }
    out[i] = item
      ? JSON.stringify({ error: item.error, code: item.code })
      : errorLine(new Error('no answer for this row'));
    failed++;
  }
  return { lines: out, failed };
}

/** The request of line `i` read by the row scanner: its inputs are views of the block's stacked values. */
function preparedRow(form: RowForm, scanned: ScannedBlock, i: number, rows: number): PreparedRequest {
  const feeds: Record<string, Tensor> = {};
  const k0 = i * form.inputs.length;
  for (let k = 0; k < form.inputs.length; k++) {
    const spec = form.inputs[k]!;
    const start = scanned.offsets[k0 + k]!;
    feeds[spec.name] = {
      datatype: 'FP32',
      shape: [rows, ...spec.rowDims],
      data: scanned.values[k]!.subarray(start, start + rows * spec.perRow),
    };
  }
  return new PreparedRequest({ id: scanned.ids[i], feeds, outputs: undefined }, form);
}

// ---------------------------------------------------------------------------------------------------------
// Aggregation

/**
 * Assembles `output.jsonl` (a `batch-aggregate` message, queued by the part that completed the job): a multipart
 * upload of the segments in part and row order, copied server-side; then the job is done and the segments go.
 *
 * The delivery that assembles holds the job's assembly lease (BATCH.aggregationLeaseMs, the worker's timeout):
 * a duplicate delivered meanwhile is skipped without touching the bucket; one delivered after the lease expired
 * (the holder's invocation is gone) takes it over. An assembly that fails gives the lease back before the error
 * goes on, so the message's redelivery assembles at once. On the message's last receive (`delivery`), an assembly
 * still running shortly before the invocation's end ends the job failed (`failBatchAggregate`).
 */
export async function aggregateBatchJob(
  deps: BatchScoreDeps,
  message: Omit<BatchAggregateMessage, 'type'>,
  budget: TimeBudget = noBudget,
  delivery: BatchDelivery = {},
): Promise<BatchRunResult> {
  return guarded(
    deps,
    budget,
    delivery,
    (err) => failBatchAggregate(deps, message, delivery.receiveCount ?? 1, err),
    (progress) => aggregate(deps, message, progress),
  );
}

async function aggregate(
  deps: BatchScoreDeps,
  message: Omit<BatchAggregateMessage, 'type'>,
  progress: Progress,
): Promise<BatchRunResult> {
  const { jobId, inputTag } = message;
  const job = await deps.jobs.getJob(jobId);
  const stopped = stateOf(job, inputTag);
  if (stopped || !job) {
    await afterEndAgain(deps, job, inputTag);
    return { state: 'skipped', reason: `the job is ${stopped}` };
  }
  if (job.partsDone !== job.partsTotal) {
    return { state: 'skipped', reason: `${job.partsDone} of ${job.partsTotal} parts are done` };
  }
  const lease = await deps.jobs.leaseAssembly(jobId, inputTag, now(deps).toISOString(), leaseMsOf(deps));
  if (lease === undefined) {
    const after = await deps.jobs.getJob(jobId);
    const gone = stateOf(after, inputTag);
    if (gone) return { state: 'skipped', reason: `the job is ${gone}` };
    return {
      state: 'skipped',
      reason: `another delivery is assembling the output${after?.assemblyLeasedAt ? ` (leased at ${after.assemblyLeasedAt})` : ''}`,
    };
  }
  try {
    return await assembleJob(deps, job, inputTag, progress);
  } catch (e) {
    await deps.jobs.releaseAssembly(jobId, inputTag, lease).catch(() => undefined);
    throw e;
  }
}

/** The assembly of a job's output under its lease, then its end. */
async function assembleJob(
  deps: BatchScoreDeps,
  job: BatchJobRecord,
  inputTag: string,
  progress: Progress,
): Promise<BatchRunResult> {
  const { jobId } = job;
  const run = runOfInput(inputTag);
  const parts = await deps.jobs.listParts(jobId, inputTag);
  const objects: SizedObject[] = [];
  parts.forEach((p, i) => {
    if (p.index !== i) throw new Error(`batch ${jobId}: part ${i} is not recorded (found ${p.index})`);
    let row = 0;
    for (const s of [...p.segments].sort((a, b) => a.fromRow - b.fromRow)) {
      if (s.fromRow !== row) throw new Error(`batch ${jobId}: part ${i} has no segment from row ${row}`);
      objects.push({
        key: BATCH_KEYS.segment(jobId, run, p.index, s.fromRow, s.toRow),
        sizeBytes: s.sizeBytes,
      });
      row = s.toRow;
    }
    if (row !== p.rows)
      throw new Error(`batch ${jobId}: part ${i} has segments of ${row} of its ${p.rows} rows`);
  });
  if (parts.length !== job.partsTotal) {
    throw new Error(`batch ${jobId}: ${parts.length} of ${job.partsTotal} parts are recorded`);
  }

  try {
    await assemble(deps, BATCH_KEYS.output(jobId), objects, `${BATCH_KEYS.segments(jobId, run)}merged/`);
  } catch (e) {
    // A cancel (or a new input) that ends the job during the assembly removes its segments: not a failure.
    const gone = stateOf(await deps.jobs.getJob(jobId), inputTag);
    if (gone) return { state: 'skipped', reason: `the job is ${gone}` };
    throw e;
  }
  const done = await deps.jobs.finish(jobId, inputTag, 'done', now(deps).toISOString());
  progress.handedOff = true;
  if (!done) {
    // Another end came first (a cancel, say) while the upload completed: the job has no output, as it says. An
    // output of the input replacing this one is that job's to write once it may have written it (it is done, or
    // all its parts are: its assembly may be under way); before, the output just completed is this job's and goes.
    const current = await deps.jobs.getJob(jobId);
    const successorsOutput =
      stateOf(current, inputTag) === 'replaced' &&
      (current?.state === 'done' ||
        (current?.state === 'running' && current.partsDone === current.partsTotal));
    if (!successorsOutput) await deps.blobs.delete(BATCH_KEYS.output(jobId));
    return { state: 'skipped', reason: 'the job ended meanwhile' };
  }
  await afterEnd(deps, done);
  return { state: 'done', total: done.rows, succeeded: done.rows - done.failedRows, failed: done.failedRows };
}

/**
 * Writes `key` as the concatenation of `objects` with multipart uploads (planOutputParts): when one upload cannot
 * hold the parts, groups of objects are assembled first under `scratch` and those are assembled.
 */
async function assemble(
  deps: BatchScoreDeps,
  key: string,
  objects: readonly SizedObject[],
  scratch: string,
  level = 0,
): Promise<void> {
  const plan = planOutputParts(objects, S3_MIN_PART_BYTES, S3_MAX_PART_BYTES);
  if (plan.length === 0) {
    await deps.blobs.put(key, new Uint8Array(), NDJSON);
    return;
  }
  const maxUploadParts = deps.maxUploadParts ?? BATCH.maxParts;
  if (plan.length > maxUploadParts) {
    // An object of at most 5 GiB adds at most two parts (an uploaded piece and a copy); a group of them is one
    // object of the next level, copied in ranges of at most 5 GiB.
    const perGroup = Math.max(2, Math.floor(maxUploadParts / 2));
    const groups: SizedObject[][] = [];
    for (let i = 0; i < objects.length; i += perGroup) groups.push(objects.slice(i, i + perGroup));
    const merged = await mapConcurrent(groups, 1, async (group, g) => {
      const groupKey = `${scratch}${level}-${String(g).padStart(6, '0')}.jsonl`;
      await assemble(deps, groupKey, group, scratch, level + 1);
      return { key: groupKey, sizeBytes: group.reduce((n, o) => n + o.sizeBytes, 0) };
    });
    await assemble(deps, key, merged, scratch, level + 1);
    return;
  }
  const sizes = new Map(objects.map((o) => [o.key, o.sizeBytes]));
  const uploadId = await deps.objects.createMultipart(key, NDJSON);
  try {
    const steps = plan.map((step, i) => ({ step, partNumber: i + 1 }));
    const copies = steps.filter((s) => s.step.kind === 'copy');
    const uploads = steps.filter((s) => s.step.kind === 'upload');
    const [copied, uploaded] = await Promise.all([
      mapConcurrent(copies, deps.copyConcurrency ?? BATCH.copyConcurrency, ({ step, partNumber }) => {
        if (step.kind !== 'copy') throw new Error('unreachable');
        const { key: source, start, end } = step.source;
        const whole = start === 0 && sizes.get(source) === end;
        return deps.objects.copyPart(key, uploadId, partNumber, source, whole ? undefined : { start, end });
      }),
      // One merge at a time: each holds up to 2 × S3_MIN_PART_BYTES.
      mapConcurrent(uploads, 1, async ({ step, partNumber }) => {
        if (step.kind !== 'upload') throw new Error('unreachable');
        const body = new Uint8Array(step.sizeBytes);
        let at = 0;
        for (const piece of step.pieces) {
          const bytes = await deps.objects.getRange(piece.key, piece.start, piece.end);
          if (!bytes || bytes.length !== piece.end - piece.start) {
            throw new Error(`${piece.key} bytes ${piece.start}-${piece.end} are missing`);
          }
          body.set(bytes, at);
          at += bytes.length;
        }
        return deps.objects.uploadPart(key, uploadId, partNumber, body);
      }),
    ]);
    const all: UploadedPart[] = [...copied, ...uploaded].sort((a, b) => a.partNumber - b.partNumber);
    await deps.objects.completeMultipart(key, uploadId, all);
  } catch (e) {
    await deps.objects.abortMultipart(key, uploadId).catch(() => undefined);
    throw e;
  }
}

async function deleteUnder(deps: BatchScoreDeps, prefix: string): Promise<void> {
  const listed = await deps.objects.list(prefix);
  await mapConcurrent(listed, deps.ioConcurrency ?? BATCH.ioConcurrency, (o) => deps.blobs.delete(o.key));
}

// ---------------------------------------------------------------------------------------------------------
// Ends: cancel, poison part

/**
 * Cancels the running job (the S3 event of `batch/{jobId}/cancel`): its remaining parts are skipped. Only while
 * `cancel` is there: a new job of the same id removes it before it is recorded (`startUnguarded`), so an event of
 * a cancel written before that start (delivered again, or late) cannot cancel the job that came after.
 */
export async function cancelBatchJob(deps: BatchScoreDeps, jobId: string): Promise<BatchRunResult> {
  const job = await deps.jobs.getJob(jobId);
  if (!job) return { state: 'skipped', reason: 'there is no such job' };
  if (job.state !== 'running') {
    await afterEnd(deps, job);
    return { state: 'skipped', reason: `the job is ${job.state}` };
  }
  // Read after the record: a job recorded after its start removed `cancel` sees it only if written since.
  if (!(await deps.blobs.head(BATCH_KEYS.cancel(jobId)))) {
    return { state: 'skipped', reason: 'the cancel was written before the running job started' };
  }
  const ended = await deps.jobs.finish(jobId, job.inputTag, 'cancelled', now(deps).toISOString());
  if (!ended) return { state: 'skipped', reason: 'the job ended meanwhile' };
  await afterEnd(deps, ended);
  return { state: 'cancelled' };
}

/**
 * What follows an end made on a message's last receive. That message goes to the dead-letter queue whatever
 * happens here, so when the follow-up fails (`status.json` would stay `running`), a fresh message of the job is
 * sent first: it finds the job ended and runs the follow-up again, with receives of its own.
 */
async function afterLastEnd(
  deps: BatchScoreDeps,
  ended: BatchJobRecord,
  resend: () => Promise<unknown>,
): Promise<void> {
  try {
    await afterEnd(deps, ended);
  } catch (e) {
    // The follow-up's own error is the one to report; a queue that refuses the message too leaves the redrive.
    await resend().catch(() => undefined);
    throw e;
  }
}

/** The code of a job whose input object was written again while it ran. */
export const BATCH_INPUT_CHANGED = 'BATCH_INPUT_CHANGED';

/** The code of a job failed by a part that failed on every receive. */
export const BATCH_PART_FAILED = 'BATCH_PART_FAILED';

/**
 * Ends the job failed, naming the part, when a `batch-part` message failed on its last receive (the worker then
 * rethrows, and the message goes to the dead-letter queue).
 */
export async function failBatchPart(
  deps: BatchScoreDeps,
  message: Omit<BatchPartMessage, 'type'>,
  receiveCount: number,
  err: unknown,
): Promise<BatchRunResult> {
  const { jobId, inputTag, index } = message;
  const job = await deps.jobs.getJob(jobId);
  const stopped = stateOf(job, inputTag);
  if (stopped) {
    await afterEndAgain(deps, job, inputTag);
    return { state: 'skipped', reason: `the job is ${stopped}` };
  }
  const part = await planOf(deps, jobId, inputTag)
    .then((plan) => plan?.parts[index])
    .catch(() => undefined);
  const where = part ? `${part.key} bytes ${part.start}-${part.end}` : 'not in the plan';
  const why = err instanceof Error ? err.message : String(err);
  const error = `part ${index} (${where}) failed after ${receiveCount} attempts: ${why}`;
  const ended = await deps.jobs.finish(jobId, inputTag, 'failed', now(deps).toISOString(), {
    error,
    code: BATCH_PART_FAILED,
  });
  if (!ended) return { state: 'skipped', reason: 'the job ended meanwhile' };
  await afterLastEnd(deps, ended, () => sendPart(deps, { jobId, inputTag, index }));
  return { state: 'failed', error, code: BATCH_PART_FAILED };
}

/** The code of a job whose aggregation failed on every receive. */
export const BATCH_AGGREGATION_FAILED = 'BATCH_AGGREGATION_FAILED';

/**
 * Ends the job failed when its `batch-aggregate` message failed on its last receive (the worker then rethrows, and
 * the message goes to the dead-letter queue): the segments stay for inspection until the job's next input
 * (which removes them).
 */
export async function failBatchAggregate(
  deps: BatchScoreDeps,
  message: Omit<BatchAggregateMessage, 'type'>,
  receiveCount: number,
  err: unknown,
): Promise<BatchRunResult> {
  const { jobId, inputTag } = message;
  const job = await deps.jobs.getJob(jobId);
  const stopped = stateOf(job, inputTag);
  if (stopped) {
    await afterEndAgain(deps, job, inputTag);
    return { state: 'skipped', reason: `the job is ${stopped}` };
  }
  const why = err instanceof Error ? err.message : String(err);
  const error = `the output could not be assembled after ${receiveCount} attempts: ${why}`;
  const ended = await deps.jobs.finish(jobId, inputTag, 'failed', now(deps).toISOString(), {
    error,
    code: BATCH_AGGREGATION_FAILED,
  });
  if (!ended) return { state: 'skipped', reason: 'the job ended meanwhile' };
  await afterLastEnd(deps, ended, () => sendAggregate(deps, jobId, inputTag));
  return { state: 'failed', error, code: BATCH_AGGREGATION_FAILED };
}

// ---------------------------------------------------------------------------------------------------------
// Resume: a job whose messages were lost

/** The code of a running job that could not be taken up again once its messages were lost. */
export const BATCH_NOT_RESUMED = 'BATCH_NOT_RESUMED';

/** What `resumeBatchJob` did with a job. */
export type BatchResume =
  /** Nothing: there is no record, or the job has ended and `status.json` says so. */
  | { readonly kind: 'none' }
  /** The job runs on: the `batch-part` messages of `parts` were sent, or (`aggregate`) its `batch-aggregate`. */
  | { readonly kind: 'requeued'; readonly parts: readonly number[]; readonly aggregate: boolean }
  /**
   * The job has ended now (an empty input: `done`), or had ended before while `status.json` still said `running`
   * (its end's follow-up was cut short): the follow-up ran again.
   */
  | { readonly kind: 'ended'; readonly state: BatchJobState }
  /** The job could not be taken up again: it ended `failed` (`BATCH_NOT_RESUMED`). */
  | { readonly kind: 'failed'; readonly error: string; readonly code: string };

/**
 * Takes up a job all of whose queued messages were lost, as the local service's in-process queues lose theirs when
 * it stops (SQS would deliver them again). Only for a caller that knows no delivery of the job's messages runs any
 * more — the local service starting over its own data, one process per home —: every claim and lease on the record
 * is taken as its holder's, who is gone.
 *
 * - A running job whose parts are not all done: every claimed part not counted is sent again, from its first line
 *   (a continuation lost with its cursor is scored again whole; the segments it had written are removed with the
 *   rest of `parts/{run}/` when the job ends), and more parts are claimed up to `maxConcurrency` in flight (a part
 *   counted whose invocation stopped before it claimed the next). `status.json` is written first, as a start does.
 * - A running job whose parts are all done: the aggregation's claim and the assembly's lease are taken over (a lease
 *   of 0 ms has expired whenever it was taken) and `batch-aggregate` is sent.
 * - A running job without the plan of its input (`plan.json` gone, or about another input): its parts cannot be
 *   scored; it ends `failed` (`BATCH_NOT_RESUMED`), saying why.
 * - An ended job whose `status.json` still says `running`: the end's follow-up runs again.
 *
 * What it sends is what the job's own messages send, so their idempotency holds: a part scored twice writes the same
 * bytes under the same keys and is counted once; the output is assembled under one lease.
 */
export async function resumeBatchJob(deps: BatchScoreDeps, jobId: string): Promise<BatchResume> {
  const job = await deps.jobs.getJob(jobId);
  if (!job) return { kind: 'none' };
  const { inputTag } = job;
  if (job.state !== 'running') {
    const shown = await deps.blobs.get(BATCH_KEYS.status(jobId));
    if (!shown || statusField(shown, 'inputTag') !== inputTag || statusField(shown, 'state') !== 'running') {
      return { kind: 'none' };
    }
    await afterEnd(deps, job);
    return { kind: 'ended', state: job.state };
  }
  const plan = await planOf(deps, jobId, inputTag);
  if (!plan || plan.parts.length !== job.partsTotal) {
    const error =
      'the local service stopped while the job ran, and its plan.json is missing or about another input: its parts cannot be scored again (start the job again)';
    const ended = await failJob(deps, jobId, inputTag, error, BATCH_NOT_RESUMED);
    return ended.state === 'failed' ? { kind: 'failed', error, code: BATCH_NOT_RESUMED } : { kind: 'none' };
  }
  const at = now(deps).toISOString();
  if (job.partsTotal === 0) {
    // Stopped between the record of an empty input and its end (startUnguarded).
    await deps.blobs.put(BATCH_KEYS.output(jobId), new Uint8Array(), NDJSON);
    const done = await deps.jobs.finish(jobId, inputTag, 'done', at);
    if (!done) return { kind: 'none' };
    await afterEnd(deps, done);
    return { kind: 'ended', state: 'done' };
  }
  if (job.partsDone >= job.partsTotal) {
    const lease = await deps.jobs.leaseAssembly(jobId, inputTag, at, 0);
    if (lease !== undefined) await deps.jobs.releaseAssembly(jobId, inputTag, lease);
    const sent = await claimAndSendAggregate(deps, jobId, inputTag, at, 0);
    return sent ? { kind: 'requeued', parts: [], aggregate: true } : { kind: 'none' };
  }
  const parts = await uncountedParts(deps, job);
  while (parts.length < job.maxConcurrency) {
    const next = await deps.jobs.claimNext(jobId, inputTag);
    if (next === undefined) break;
    parts.push(next);
  }
  const claimed = (await deps.jobs.getJob(jobId)) ?? job;
  if (stateOf(claimed, inputTag)) return { kind: 'none' };
  await writeJobStatus(deps, claimed);
  await sendParts(deps, claimed, parts);
  return { kind: 'requeued', parts, aggregate: false };
}

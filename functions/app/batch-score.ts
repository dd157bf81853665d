/**
 * Batch scoring: `batch/{jobId}/job.json` names the model, `batch/{jobId}/input.jsonl` (its creation starts the
 * job) holds one OIP request per line; the job writes `output.jsonl` (same order, one OIP response or one
 * `{"error", "code"}` per line) and keeps `status.json` current.
 *
 * The rows are cut into fixed parts (BATCH.rowsPerPart). Each part is scored with the predictor's
 * `inferBatch` (compatible rows stacked into ORT runs) and written as `parts/{n}.jsonl`. When the invocation's
 * remaining time cannot fit another part, the job writes its cursor into a `batch-continue` message on the work
 * queue and the worker carries on from there: a file larger than one invocation is continued, never truncated.
 * When the last part is written, the parts are joined into `output.jsonl` and removed.
 *
 * The version is resolved once when the job starts (an alias moving mid-job does not mix versions). Parts are
 * deterministic, and starts and continuations run under idempotency guards, so redelivered events or messages
 * neither fork the job nor change its output.
 */
import { BATCH, BATCH_KEYS } from '../contract/events';
import { STABLE_ROUTE } from '../contract/observability';
import {
  type BatchCursor,
  type BatchStatus,
  countOutcomes,
  errorFields,
  errorLine,
  hasTimeForAnotherPart,
  type JobSpec,
  parseJobSpec,
  parseRow,
  partCount,
  partRange,
  splitLines,
} from '../domain/batch';
import { parseInferenceBody } from '../domain/body-parser';
import { BadRequestError, isMaasError } from '../domain/errors';
import {
  AlreadyInProgressError,
  type BlobStore,
  type IdempotencyGuard,
  type QueuePublisher,
  type TimeBudget,
} from '../ports/events';
import { type Clock, systemClock } from '../ports/index';
import type { MetricsSink } from '../ports/telemetry';
import type { Predictor } from './predict';

export interface BatchScoreDeps {
  readonly blobs: BlobStore;
  readonly predictor: Pick<Predictor, 'resolve' | 'inferBatch'>;
  /** Where continuation messages go (the worker consumes them). */
  readonly queue: QueuePublisher;
  /** Guards job starts (per input object) and continuations (per part), so duplicates do not fork a job. */
  readonly startGuard?: IdempotencyGuard;
  readonly partGuard?: IdempotencyGuard;
  readonly clock?: Clock;
  /** @default BATCH.rowsPerPart */
  readonly rowsPerPart?: number;
  /** @default BATCH.reserveMs */
  readonly reserveMs?: number;
  /** Where each scored part is reported (one request of its model version, its rows as BatchRows). @default none */
  readonly metrics?: MetricsSink;
}

/** What an invocation did with a job. */
export type BatchRunResult =
  | { readonly state: 'done'; readonly total: number; readonly succeeded: number; readonly failed: number }
  | { readonly state: 'running'; readonly nextPart: number }
  | { readonly state: 'failed'; readonly error: string }
  /** Nothing to do: the job already finished, or its input was replaced by a newer one. */
  | { readonly state: 'skipped'; readonly reason: string };

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const noBudget: TimeBudget = { getRemainingTimeInMillis: () => Number.MAX_SAFE_INTEGER };

/** Tag of an input object: its version id, else its ETag. */
function inputTagOf(head: { eTag?: string; versionId?: string }): string {
  return head.versionId ? `version:${head.versionId}` : `etag:${head.eTag ?? 'none'}`;
}

/**
 * Starts the job whose `input.jsonl` was created (`inputTag` from the event: version id or ETag, else read).
 * Resolves once this invocation is done with it (finished, failed, or continued through the queue).
 */
export async function startBatchJob(
  deps: BatchScoreDeps,
  jobId: string,
  eventTag: string | undefined,
  budget: TimeBudget = noBudget,
): Promise<BatchRunResult> {
  let inputTag = eventTag;
  if (!inputTag) {
    const head = await deps.blobs.head(BATCH_KEYS.input(jobId));
    if (!head) return { state: 'skipped', reason: 'input.jsonl no longer exists' };
    inputTag = inputTagOf(head);
  }
  const tag = inputTag;
  const run = () => startUnguarded(deps, jobId, tag, budget);
  return deps.startGuard ? guarded(deps.startGuard, { jobId, inputTag: tag }, run, budget) : run();
}

/** Carries on with a job from its cursor (a `batch-continue` message). */
export async function continueBatchJob(
  deps: BatchScoreDeps,
  cursor: BatchCursor,
  budget: TimeBudget = noBudget,
): Promise<BatchRunResult> {
  const run = async (): Promise<BatchRunResult> => {
    const current = await readStatus(deps, cursor.jobId);
    if (current?.state === 'done' && current.inputTag === cursor.inputTag) {
      return { state: 'skipped', reason: 'the job is already done' };
    }
    const head = await deps.blobs.head(BATCH_KEYS.input(cursor.jobId));
    if (!head || inputTagOf(head) !== cursor.inputTag) {
      return {
        state: 'skipped',
        reason: 'the input was replaced or removed; its own event runs the new job',
      };
    }
    const input = await deps.blobs.get(BATCH_KEYS.input(cursor.jobId));
    if (!input) return { state: 'skipped', reason: 'input.jsonl no longer exists' };
    return runParts(deps, cursor, splitLines(dec(input)), budget);
  };
  if (!deps.partGuard) return run();
  const key = { jobId: cursor.jobId, inputTag: cursor.inputTag, part: String(cursor.nextPart) };
  return guarded(deps.partGuard, key, run, budget);
}

async function guarded(
  guard: IdempotencyGuard,
  key: Record<string, string>,
  run: () => Promise<BatchRunResult>,
  budget: TimeBudget,
): Promise<BatchRunResult> {
  try {
    return await guard.once(key, run, budget);
  } catch (e) {
    // Another delivery runs this very step right now: it owns it.
    if (e instanceof AlreadyInProgressError) return { state: 'skipped', reason: 'already running elsewhere' };
    throw e;
  }
}

async function startUnguarded(
  deps: BatchScoreDeps,
  jobId: string,
  inputTag: string,
  budget: TimeBudget,
): Promise<BatchRunResult> {
  const clock = deps.clock ?? systemClock;
  const startedAt = clock.now().toISOString();
  const fail = async (err: unknown, spec?: JobSpec, total = 0): Promise<BatchRunResult> => {
    const { error, code } = errorFields(err);
    await writeStatus(deps, {
      jobId,
      inputTag,
      state: 'failed',
      total,
      succeeded: 0,
      failed: 0,
      ...(spec ? { model: spec.model, ref: spec.ref } : {}),
      startedAt,
      updatedAt: clock.now().toISOString(),
      error,
      code,
    });
    return { state: 'failed', error };
  };

  const jobBytes = await deps.blobs.get(BATCH_KEYS.job(jobId));
  if (!jobBytes) {
    return fail(
      new BadRequestError(`batch/${jobId}/job.json is missing: write it before input.jsonl`, 'JOB_NOT_FOUND'),
    );
  }
  let spec: JobSpec;
  try {
    spec = parseJobSpec(dec(jobBytes));
  } catch (e) {
    return fail(e);
  }
  const input = await deps.blobs.get(BATCH_KEYS.input(jobId));
  if (!input) return { state: 'skipped', reason: 'input.jsonl no longer exists' };
  const lines = splitLines(dec(input));
  let version: number;
  try {
    version = (await deps.predictor.resolve(spec.model, spec.ref)).version.version;
  } catch (e) {
    if (isMaasError(e) && e.status < 500) return fail(e, spec, lines.length);
    throw e;
  }
  const cursor: BatchCursor = {
    jobId,
    inputTag,
    model: spec.model,
    ref: spec.ref,
    version,
    nextPart: 0,
    startedAt,
    succeeded: 0,
    failed: 0,
  };
  return runParts(deps, cursor, lines, budget);
}

/** Scores parts from `cursor.nextPart` while time allows; then finishes the job or queues its continuation. */
async function runParts(
  deps: BatchScoreDeps,
  cursor: BatchCursor,
  lines: readonly string[],
  budget: TimeBudget,
): Promise<BatchRunResult> {
  const clock = deps.clock ?? systemClock;
  const rowsPerPart = deps.rowsPerPart ?? BATCH.rowsPerPart;
  const reserveMs = deps.reserveMs ?? BATCH.reserveMs;
  const total = lines.length;
  const parts = partCount(total, rowsPerPart);
  const computed = new Map<number, string[]>();
  let { succeeded, failed } = cursor;
  let slowest = 0;
  let part = cursor.nextPart;
  const status = (state: BatchStatus['state'], partsDone: number): BatchStatus => ({
    jobId: cursor.jobId,
    inputTag: cursor.inputTag,
    state,
    total,
    succeeded,
    failed,
    model: cursor.model,
    ref: cursor.ref,
    version: cursor.version,
    partsDone,
    partsTotal: parts,
    startedAt: cursor.startedAt,
    updatedAt: clock.now().toISOString(),
  });

  while (part < parts) {
    if (!hasTimeForAnotherPart(budget.getRemainingTimeInMillis(), slowest, reserveMs, computed.size)) {
      const next: BatchCursor = { ...cursor, nextPart: part, succeeded, failed };
      await writeStatus(deps, status('running', part));
      await deps.queue.send({ type: 'batch-continue', cursor: next });
      return { state: 'running', nextPart: part };
    }
    const t0 = clock.now().getTime();
    const { start, end } = partRange(part, total, rowsPerPart);
    let out: string[];
    try {
      out = await scoreRows(deps, cursor, lines.slice(start, end), start);
    } catch (e) {
      // The model version vanished or became unservable mid-job: the job fails, it is not retried forever.
      if (isMaasError(e) && e.status < 500) {
        const { error, code } = errorFields(e);
        await writeStatus(deps, { ...status('failed', part), error, code });
        return { state: 'failed', error };
      }
      throw e;
    }
    await deps.blobs.put(BATCH_KEYS.part(cursor.jobId, part), `${out.join('\n')}\n`, 'application/x-ndjson');
    computed.set(part, out);
    const counts = countOutcomes(out);
    succeeded += counts.succeeded;
    failed += counts.failed;
    part++;
    slowest = Math.max(slowest, clock.now().getTime() - t0);
    if (part < parts) await writeStatus(deps, status('running', part));
  }

  // All parts exist: join them in order (earlier invocations' parts come from S3).
  const all: string[] = [];
  for (let i = 0; i < parts; i++) {
    let out = computed.get(i);
    if (!out) {
      const bytes = await deps.blobs.get(BATCH_KEYS.part(cursor.jobId, i));
      if (!bytes) throw new Error(`batch ${cursor.jobId}: part ${i} is missing`);
      out = splitLines(dec(bytes));
    }
    for (const l of out) all.push(l);
  }
  const counts = countOutcomes(all);
  succeeded = counts.succeeded;
  failed = counts.failed;
  await deps.blobs.put(
    BATCH_KEYS.output(cursor.jobId),
    all.length ? enc(`${all.join('\n')}\n`) : new Uint8Array(),
    'application/x-ndjson',
  );
  await writeStatus(deps, status('done', parts));
  for (let i = 0; i < parts; i++) await deps.blobs.delete(BATCH_KEYS.part(cursor.jobId, i));
  return { state: 'done', total, succeeded, failed };
}

/** One output line per input line: parse errors answered here, the rest by one `inferBatch` call. */
async function scoreRows(
  deps: BatchScoreDeps,
  cursor: BatchCursor,
  lines: readonly string[],
  offset: number,
): Promise<string[]> {
  const startedAt = performance.now();
  const rows = lines.map((line, i) => parseRow(offset + i, line, parseInferenceBody));
  const requests: unknown[] = [];
  for (const r of rows) if (r.ok) requests.push(r.request);
  const items = requests.length
    ? await deps.predictor.inferBatch(cursor.model, String(cursor.version), requests)
    : [];
  let payloadBytes = 0;
  for (const line of lines) payloadBytes += line.length;
  deps.metrics?.inference({
    model: cursor.model,
    version: cursor.version,
    route: STABLE_ROUTE,
    status: 200,
    latencyMs: performance.now() - startedAt,
    coldStart: false,
    payloadBytes,
    batchRows: lines.length,
  });
  let j = 0;
  return rows.map((r) => {
    if (!r.ok) return JSON.stringify({ error: r.error, code: r.code });
    const item = items[j++];
    if (!item) return errorLine(new Error('no answer for this row'));
    return item.ok ? JSON.stringify(item.response) : JSON.stringify({ error: item.error, code: item.code });
  });
}

async function writeStatus(deps: BatchScoreDeps, status: BatchStatus): Promise<void> {
  await deps.blobs.put(BATCH_KEYS.status(status.jobId), JSON.stringify(status));
}

async function readStatus(deps: BatchScoreDeps, jobId: string): Promise<BatchStatus | undefined> {
  const bytes = await deps.blobs.get(BATCH_KEYS.status(jobId));
  if (!bytes) return undefined;
  try {
    return JSON.parse(dec(bytes)) as BatchStatus;
  } catch {
    return undefined;
  }
}

/**
 * Batch scoring against DynamoDB Local + s3rver + onnxruntime-node, through the S3 events handler and the worker
 * on the in-process queue: a 10,000-row file cut into parts of 64 KiB (job.json's partBytes) is scored part by
 * part and assembled in order, with bad rows reported on their own lines; a forced small time budget makes every
 * part continue from its cursor through the queue and produces byte-identical output; a redelivered start event
 * (guarded or not, while the job runs or once it ended) never forks the job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOfInput } from '../../functions/app/batch-score';
import { registerVersion } from '../../functions/app/registry';
import { BATCH, BATCH_KEYS } from '../../functions/contract/events';
import { type BatchStatus, chunkRowsAt } from '../../functions/domain/batch';
import { type BatchPlan, parsePlan } from '../../functions/domain/batch-partition';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import { createS3EventsHandler } from '../../functions/handlers/s3-events';
import { InProcessQueue } from '../../functions/local/in-process-queue';
import { createEventsTestEnv, type EventsTestEnv, s3Event } from '../helpers/events-env';
import { addConstant } from '../helpers/predict-env';
import { type RecordedLine, recordingLogger } from '../helpers/recording-logger';

let env: EventsTestEnv;
const ROWS = 10_000;
/** The smallest part job.json may ask: the 10,000 rows (about 0.9 MB) make a dozen parts and more. */
const PART_BYTES = BATCH.minPartBytes;
/** Rows that must fail, each for its own reason. */
const BAD: Record<number, string> = {
  17: 'MALFORMED_JSON',
  4242: 'UNKNOWN_INPUT',
  5000: 'EMPTY_LINE',
  9999: 'SHAPE_MISMATCH',
};

function inputLines(): string {
  const lines: string[] = [];
  for (let i = 0; i < ROWS; i++) {
    const row = { id: `r${i}`, inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [i, -i] }] };
    if (i === 17) lines.push('{"id": "r17", "inputs": [');
    else if (i === 4242) lines.push(JSON.stringify({ ...row, inputs: [{ ...row.inputs[0], name: 'nope' }] }));
    else if (i === 5000) lines.push('');
    else if (i === 9999)
      lines.push(JSON.stringify({ ...row, inputs: [{ ...row.inputs[0], shape: [1, 3], data: [1, 2, 3] }] }));
    // Every 7th row carries two stacked rows (batch dim 2): rows of different sizes share ORT runs.
    else if (i % 7 === 0)
      lines.push(
        JSON.stringify({
          ...row,
          inputs: [
            {
              ...row.inputs[0],
              shape: [2, 2],
              data: [
                [i, -i],
                [0, 0],
              ],
            },
          ],
        }),
      );
    else lines.push(JSON.stringify(row));
  }
  return `${lines.join('\n')}\n`;
}

async function status(jobId: string): Promise<BatchStatus> {
  return JSON.parse((await env.getText(BATCH_KEYS.status(jobId))) ?? 'null') as BatchStatus;
}

async function planOf(jobId: string): Promise<BatchPlan> {
  return parsePlan((await env.getText(BATCH_KEYS.plan(jobId))) ?? 'null');
}

/** The output segments of the job's input still stored. */
async function segmentsLeft(jobId: string, inputTag: string | undefined): Promise<string[]> {
  const listed = await env.flows.batch.objects.list(BATCH_KEYS.segments(jobId, runOfInput(inputTag ?? '')));
  return listed.map((o) => o.key);
}

/** The log lines of one kind about one job. */
function logged(lines: readonly RecordedLine[], message: string, jobId: string): RecordedLine[] {
  return lines.filter((l) => l.message === message && l.extra?.jobId === jobId);
}

/** Rows per part of a plan (the input is ASCII: its bytes are its characters). */
function rowsPerPart(plan: BatchPlan, text: string): number[] {
  return plan.parts.map((p) => text.slice(p.start, p.end).split('\n').length - 1);
}

let input: string;
beforeAll(async () => {
  env = await createEventsTestEnv();
  const registry = env.flows.registry;
  if (!registry) throw new Error('registry deps are not wired');
  await env.put('uploads/adder/a.onnx', addConstant(1));
  await registerVersion(registry, { name: 'adder', sourceKey: 'uploads/adder/a.onnx' });
  input = inputLines();
});
afterAll(async () => {
  await env?.dispose();
});

describe('batch scoring', () => {
  let output: string;

  it('scores a 10,000-row file in parts, in order, one response or one error per line, and reports counts', async () => {
    await env.put(BATCH_KEYS.job('job-1'), JSON.stringify({ model: 'adder', partBytes: PART_BYTES }));
    const event = await env.put(BATCH_KEYS.input('job-1'), input);
    const [outcome] = await env.s3Events(event);
    const plan = await planOf('job-1');
    const parts = plan.parts.length;
    expect(parts).toBeGreaterThanOrEqual(10);
    // The start partitions the input and queues the first parts; it scores nothing itself.
    expect(outcome).toMatchObject({
      kind: 'batch',
      jobId: 'job-1',
      state: 'running',
      partsDone: 0,
      partsTotal: parts,
    });
    expect(await env.getText(BATCH_KEYS.output('job-1'))).toBeUndefined();

    // Line-aligned byte ranges of at most about partBytes, covering the input without gap or overlap.
    let at = 0;
    for (const p of plan.parts) {
      expect(p).toMatchObject({ key: BATCH_KEYS.input('job-1'), start: at });
      expect(input[p.end - 1]).toBe('\n');
      expect(p.end - p.start).toBeLessThan(PART_BYTES + 1024);
      at = p.end;
    }
    expect(at).toBe(input.length);

    await env.queue.drain();
    output = (await env.getText(BATCH_KEYS.output('job-1'))) ?? '';
    const lines = output.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(ROWS);
    lines.forEach((line, i) => {
      const row = JSON.parse(line);
      if (BAD[i]) {
        expect(row, `line ${i}`).toMatchObject({ code: BAD[i] });
        expect(typeof row.error).toBe('string');
        return;
      }
      expect(row.id).toBe(`r${i}`);
      expect(row.model_name).toBe('adder');
      expect(row.model_version).toBe('1');
      const expected = i % 7 === 0 ? [i + 1, -i + 1, 1, 1] : [i + 1, -i + 1];
      expect(row.outputs[0].data, `line ${i}`).toEqual(expected);
      expect(row.outputs[0].shape).toEqual([i % 7 === 0 ? 2 : 1, 2]);
    });

    const done = await status('job-1');
    expect(done).toMatchObject({
      jobId: 'job-1',
      state: 'done',
      total: ROWS,
      succeeded: ROWS - 4,
      failed: 4,
      model: 'adder',
      ref: 'prod',
      version: 1,
      partsDone: parts,
      partsTotal: parts,
      bytesDone: input.length,
      bytesTotal: input.length,
    });
    expect(done.rowsPerSecond).toBeGreaterThan(0);
    expect(done.etaSeconds).toBeUndefined();
    expect(done.inputTag).toBe(plan.inputTag);
    // Every part was scored and counted once, the output assembled once; the segments are removed after it.
    const handled = logged(env.logs, 'batch part handled', 'job-1');
    expect(handled).toHaveLength(parts);
    expect(new Set(handled.map((l) => l.extra?.part)).size).toBe(parts);
    expect(logged(env.logs, 'batch job aggregated', 'job-1').map((l) => l.extra?.state)).toEqual(['done']);
    expect(await segmentsLeft('job-1', done.inputTag)).toEqual([]);
    expect(await env.flows.batch.jobs.getJob('job-1')).toMatchObject({
      state: 'done',
      partsDone: parts,
      queued: parts,
      rows: ROWS,
      failedRows: 4,
    });
  });

  it('continues each part from its cursor through the queue when the time budget runs out, with identical output', async () => {
    // Worker invocations get no spare time: each scores one chunk of its part and queues the rest from its cursor.
    const queue = new InProcessQueue({ visibilityTimeoutMs: 5, batchSize: 1, invocationBudgetMs: 0 });
    const logger = recordingLogger();
    const flows = { ...env.flows, batch: { ...env.flows.batch, batchQueue: queue }, logger };
    const s3Events = createS3EventsHandler(flows);
    queue.attach(createAsyncWorkerHandler(flows));
    await env.put(BATCH_KEYS.job('job-2'), JSON.stringify({ model: 'adder', ref: 1, partBytes: PART_BYTES }));
    const [outcome] = await s3Events(await env.put(BATCH_KEYS.input('job-2'), input));
    expect(outcome).toMatchObject({ kind: 'batch', state: 'running' });
    await queue.drain();

    expect(await env.getText(BATCH_KEYS.output('job-2'))).toBe(output);
    const plan = await planOf('job-2');
    // Chunks are counted from each part's first line, the first ones smaller (`chunkRowsAt`).
    const chunks = rowsPerPart(plan, input).map((rows) => {
      let n = 0;
      for (let r = 0; r < rows; r += chunkRowsAt(r, BATCH.rowsPerChunk, BATCH.firstChunkRows)) n++;
      return n;
    });
    const invocations = chunks.reduce((a, b) => a + b, 0);
    // Parts are larger than a chunk: they all continue at least once.
    expect(chunks.filter((c) => c > 1).length).toBeGreaterThanOrEqual(plan.parts.length - 1);
    // One invocation per chunk of every part, and the aggregation.
    expect(queue.stats).toMatchObject({
      sent: invocations + 1,
      invocations: invocations + 1,
      deadLettered: 0,
    });
    const continued = logger.lines.filter((l) => l.message === 'batch part handled' && l.extra?.continued);
    expect(continued).toHaveLength(invocations - plan.parts.length);
    expect(logged(logger.lines, 'batch job aggregated', 'job-2').map((l) => l.extra?.state)).toEqual([
      'done',
    ]);
    const done = await status('job-2');
    expect(done).toMatchObject({
      state: 'done',
      total: ROWS,
      succeeded: ROWS - 4,
      failed: 4,
      ref: '1',
      version: 1,
      partsDone: plan.parts.length,
      partsTotal: plan.parts.length,
      bytesDone: input.length,
      bytesTotal: input.length,
    });
    expect(await segmentsLeft('job-2', done.inputTag)).toEqual([]);
  });

  it('does not start a job again when its input event is delivered again after it ended', async () => {
    const first = await status('job-1');
    const sent = env.queue.stats.sent;
    const head = await env.flows.batch.blobs.head(BATCH_KEYS.input('job-1'));
    const again = s3Event(env.aws.bucket, BATCH_KEYS.input('job-1'), head?.eTag);
    // The idempotency guard answers with the first start's result; nothing is queued or written.
    const [guarded] = await env.s3Events(again);
    expect(guarded).toMatchObject({ kind: 'batch', jobId: 'job-1' });
    // Past the guard's memory, the job record tells the input was scored already.
    const { startGuard: _, ...unguarded } = env.flows.batch;
    const s3Events = createS3EventsHandler({ ...env.flows, batch: unguarded, logger: recordingLogger() });
    const [late] = await s3Events(again);
    expect(late).toMatchObject({ kind: 'batch', state: 'skipped' });
    await env.queue.drain();
    expect(env.queue.stats.sent).toBe(sent);
    expect((await status('job-1')).updatedAt).toBe(first.updatedAt);
    expect(await env.getText(BATCH_KEYS.output('job-1'))).toBe(output);
  });

  it('does not fork a running job when its input event is delivered again', async () => {
    // The parts wait in their queue while the start event comes three more times, once past the guard.
    const queue = new InProcessQueue({ visibilityTimeoutMs: 5 });
    const logger = recordingLogger();
    const batch = { ...env.flows.batch, batchQueue: queue };
    const { startGuard: _, ...unguarded } = batch;
    const s3Events = createS3EventsHandler({ ...env.flows, batch, logger });
    const s3EventsUnguarded = createS3EventsHandler({ ...env.flows, batch: unguarded, logger });
    await env.put(BATCH_KEYS.job('job-3'), JSON.stringify({ model: 'adder', partBytes: PART_BYTES }));
    const event = await env.put(BATCH_KEYS.input('job-3'), input);
    const [first] = await s3Events(event);
    const parts = (await planOf('job-3')).parts.length;
    expect(first).toMatchObject({ state: 'running', partsTotal: parts });
    const queued = Math.min(BATCH.maxConcurrency, parts);
    expect(queue.depth).toBe(queued);
    const [second, third] = [...(await s3Events(event)), ...(await s3Events(event))];
    expect(second).toEqual(first);
    expect(third).toEqual(first);
    expect(queue.depth).toBe(queued);
    // Without the guard, the start finds the running job of this input: it claims no more parts and queues the
    // claimed ones again (a duplicate part is harmless, a lost one would stall the job).
    const [fourth] = await s3EventsUnguarded(event);
    expect(fourth).toMatchObject({ state: 'running', partsDone: 0, partsTotal: parts });
    expect(queue.depth).toBe(2 * queued);

    queue.attach(createAsyncWorkerHandler({ ...env.flows, batch, logger }));
    await queue.drain();
    expect(await env.getText(BATCH_KEYS.output('job-3'))).toBe(output);
    expect(logged(logger.lines, 'batch job aggregated', 'job-3').map((l) => l.extra?.state)).toEqual([
      'done',
    ]);
    expect(await status('job-3')).toMatchObject({
      state: 'done',
      total: ROWS,
      failed: 4,
      partsDone: parts,
      partsTotal: parts,
      bytesDone: input.length,
    });
    expect(await env.flows.batch.jobs.getJob('job-3')).toMatchObject({
      partsDone: parts,
      queued: parts,
      rows: ROWS,
    });
    expect(queue.stats.deadLettered).toBe(0);
  });

  it('fails a job whose job.json is missing, invalid or names an unknown model, with the reason in status.json', async () => {
    const noJob = await env.put(BATCH_KEYS.input('job-nojob'), '{"inputs": []}\n');
    expect((await env.s3Events(noJob))[0]).toMatchObject({ state: 'failed' });
    expect(await status('job-nojob')).toMatchObject({ state: 'failed', code: 'JOB_NOT_FOUND', total: 0 });

    await env.put(BATCH_KEYS.job('job-unknown'), JSON.stringify({ model: 'nobody' }));
    const body = '{"inputs": []}\n{"inputs": []}\n';
    const unknown = await env.put(BATCH_KEYS.input('job-unknown'), body);
    expect((await env.s3Events(unknown))[0]).toMatchObject({ state: 'failed' });
    expect(await status('job-unknown')).toMatchObject({
      state: 'failed',
      code: 'MODEL_NOT_FOUND',
      model: 'nobody',
      total: 0,
      partsTotal: 0,
      bytesTotal: body.length,
    });

    await env.put(BATCH_KEYS.job('job-badspec'), JSON.stringify({ ref: 'prod' }));
    const badSpec = await env.put(BATCH_KEYS.input('job-badspec'), '{"inputs": []}\n');
    await env.s3Events(badSpec);
    expect(await status('job-badspec')).toMatchObject({ state: 'failed', code: 'INVALID_JOB' });

    await env.put(BATCH_KEYS.job('job-smallparts'), JSON.stringify({ model: 'adder', partBytes: 1000 }));
    await env.s3Events(await env.put(BATCH_KEYS.input('job-smallparts'), '{"inputs": []}\n'));
    const small = await status('job-smallparts');
    expect(small).toMatchObject({ state: 'failed', code: 'INVALID_JOB' });
    expect(small.error).toMatch(/partBytes/);
    await env.queue.drain();
    expect(await env.getText(BATCH_KEYS.output('job-smallparts'))).toBeUndefined();
  });

  it('starts nothing for an input under a folder that is no job id, and logs a warning that says why', async () => {
    const key = 'batch/job ü/input.jsonl';
    await env.put('batch/job ü/job.json', JSON.stringify({ model: 'adder' }));
    const [outcome] = await env.s3Events(await env.put(key, '{"inputs": []}\n'));
    expect(outcome).toMatchObject({ kind: 'ignored', key });
    expect((outcome as { reason?: string }).reason).toMatch(/'job ü' is no job id \(1-128 characters/);
    const warned = env.logs.filter((l) => l.message === 's3 event ignored');
    expect(warned.at(-1)).toMatchObject({
      level: 'WARN',
      extra: { key, reason: expect.stringMatching(/'job ü' is no job id/) },
    });
    expect(await env.getText('batch/job ü/status.json')).toBeUndefined();
    // Other keys under batch/ are handled as before, without a warning.
    await env.s3Events(await env.put('batch/job-x/notes.txt', 'x'));
    expect(env.logs.filter((l) => l.message === 's3 event ignored')).toHaveLength(warned.length);
  });

  it('writes an empty output for an empty input at once', async () => {
    await env.put(BATCH_KEYS.job('job-empty'), JSON.stringify({ model: 'adder' }));
    const [outcome] = await env.s3Events(await env.put(BATCH_KEYS.input('job-empty'), ''));
    expect(outcome).toMatchObject({ state: 'done', total: 0 });
    expect(await status('job-empty')).toMatchObject({
      state: 'done',
      total: 0,
      succeeded: 0,
      failed: 0,
      partsDone: 0,
      partsTotal: 0,
      bytesTotal: 0,
    });
    expect(await env.getText(BATCH_KEYS.output('job-empty'))).toBe('');
  });
});

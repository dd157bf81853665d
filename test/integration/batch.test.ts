/**
 * Batch scoring (issue 6.2) against DynamoDB Local + s3rver + onnxruntime-node: a 10,000-row file scored in
 * order with bad rows reported on their own lines; a forced small time budget makes the job continue through
 * the work queue part by part and produce byte-identical output; redelivery does not re-run a job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerVersion } from '../../functions/app/registry';
import { BATCH, BATCH_KEYS } from '../../functions/contract/events';
import type { BatchStatus } from '../../functions/domain/batch';
import { partCount } from '../../functions/domain/batch';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import { createS3EventsHandler } from '../../functions/handlers/s3-events';
import { InProcessQueue } from '../../functions/local/in-process-queue';
import { createEventsTestEnv, type EventsTestEnv, s3Event } from '../helpers/events-env';
import { addConstant } from '../helpers/predict-env';
import { silentLogger } from '../helpers/recording-logger';

let env: EventsTestEnv;
const ROWS = 10_000;
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

  it('scores a 10,000-row file in order, one response or one error per line, and reports counts', async () => {
    await env.put(BATCH_KEYS.job('job-1'), JSON.stringify({ model: 'adder' }));
    const event = await env.put(BATCH_KEYS.input('job-1'), input);
    const [outcome] = await env.s3Events(event);
    expect(outcome).toMatchObject({ kind: 'batch', jobId: 'job-1', state: 'done', total: ROWS, failed: 4 });

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
    expect(await status('job-1')).toMatchObject({
      state: 'done',
      total: ROWS,
      succeeded: ROWS - 4,
      failed: 4,
      model: 'adder',
      ref: 'prod',
      version: 1,
      partsDone: partCount(ROWS, BATCH.rowsPerPart),
    });
    // Parts are removed once the output is assembled.
    expect(await env.getText(BATCH_KEYS.part('job-1', 0))).toBeUndefined();
  });

  it('continues through the queue when the time budget runs out, producing the identical output', async () => {
    const parts = partCount(ROWS, BATCH.rowsPerPart);
    expect(parts).toBeGreaterThan(2);
    // A queue whose worker invocations get no spare time either: every invocation scores exactly one part.
    const queue = new InProcessQueue({ visibilityTimeoutMs: 5, invocationBudgetMs: 0 });
    const flows = { ...env.flows, batch: { ...env.flows.batch, queue }, logger: silentLogger };
    const s3Events = createS3EventsHandler(flows);
    await env.put(BATCH_KEYS.job('job-2'), JSON.stringify({ model: 'adder', ref: 1 }));
    const event = await env.put(BATCH_KEYS.input('job-2'), input);

    const [outcome] = await s3Events(event, { getRemainingTimeInMillis: () => 0 });
    expect(outcome).toMatchObject({ kind: 'batch', state: 'running', nextPart: 1 });
    expect(await status('job-2')).toMatchObject({ state: 'running', partsDone: 1, total: ROWS });
    expect(await env.getText(BATCH_KEYS.output('job-2'))).toBeUndefined();
    expect(queue.depth).toBe(1);

    queue.attach(createAsyncWorkerHandler(flows));
    await queue.drain();
    expect(queue.stats).toMatchObject({ sent: parts - 1, invocations: parts - 1, deadLettered: 0 });
    const continued = (await env.getText(BATCH_KEYS.output('job-2'))) ?? '';
    expect(continued).toBe(output);
    expect(await status('job-2')).toMatchObject({
      state: 'done',
      succeeded: ROWS - 4,
      failed: 4,
      partsDone: parts,
    });
  });

  it('does not re-run a finished job when its input event is delivered again', async () => {
    const first = await status('job-1');
    const head = await env.flows.batch.blobs.head(BATCH_KEYS.input('job-1'));
    const [again] = await env.s3Events(s3Event(env.aws.bucket, BATCH_KEYS.input('job-1'), head?.eTag));
    expect(again).toMatchObject({ kind: 'batch', state: 'done', total: ROWS });
    expect((await status('job-1')).updatedAt).toBe(first.updatedAt);
  });

  it('fails a job whose job.json is missing or names an unknown model, with the reason in status.json', async () => {
    const noJob = await env.put(BATCH_KEYS.input('job-nojob'), '{"inputs": []}\n');
    expect((await env.s3Events(noJob))[0]).toMatchObject({ state: 'failed' });
    expect(await status('job-nojob')).toMatchObject({ state: 'failed', code: 'JOB_NOT_FOUND', total: 0 });

    await env.put(BATCH_KEYS.job('job-unknown'), JSON.stringify({ model: 'nobody' }));
    const unknown = await env.put(BATCH_KEYS.input('job-unknown'), '{"inputs": []}\n{"inputs": []}\n');
    expect((await env.s3Events(unknown))[0]).toMatchObject({ state: 'failed' });
    expect(await status('job-unknown')).toMatchObject({ state: 'failed', code: 'MODEL_NOT_FOUND', total: 2 });

    await env.put(BATCH_KEYS.job('job-badspec'), JSON.stringify({ ref: 'prod' }));
    const badSpec = await env.put(BATCH_KEYS.input('job-badspec'), '{"inputs": []}\n');
    await env.s3Events(badSpec);
    expect(await status('job-badspec')).toMatchObject({ state: 'failed', code: 'INVALID_JOB' });
  });

  it('writes an empty output for an empty input', async () => {
    await env.put(BATCH_KEYS.job('job-empty'), JSON.stringify({ model: 'adder' }));
    await env.s3Events(await env.put(BATCH_KEYS.input('job-empty'), ''));
    expect(await status('job-empty')).toMatchObject({ state: 'done', total: 0, succeeded: 0, failed: 0 });
    expect(await env.getText(BATCH_KEYS.output('job-empty'))).toBe('');
  });
});

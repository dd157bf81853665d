/** The batch use case over in-memory ports and a fake predictor: parts, continuation, duplicates, failures. */
import { describe, expect, it } from 'vitest';
import { continueBatchJob, startBatchJob } from '../../functions/app/batch-score';
import type { Predictor } from '../../functions/app/predict';
import { BATCH_KEYS } from '../../functions/contract/events';
import type { BatchCursor } from '../../functions/domain/batch';
import { NotFoundError } from '../../functions/domain/errors';
import { MemoryBlobStore, MemoryGuard, RecordingQueue } from '../helpers/events-fakes';

/** Answers `{"id", "double"}`; a request with `fail` is rejected like the predictor rejects bad inputs. */
function fakePredictor(opts: { missingModel?: boolean; vanishAfterCalls?: number } = {}) {
  let calls = 0;
  const predictor: Pick<Predictor, 'resolve' | 'inferBatch'> = {
    async resolve(name) {
      if (opts.missingModel) throw new NotFoundError(`model '${name}' does not exist`, 'MODEL_NOT_FOUND');
      return { version: { version: 7 } } as Awaited<ReturnType<Predictor['resolve']>>;
    },
    async inferBatch(_name, ref, requests) {
      calls++;
      if (opts.vanishAfterCalls !== undefined && calls > opts.vanishAfterCalls) {
        throw new NotFoundError('version 7 does not exist', 'VERSION_NOT_FOUND');
      }
      expect(ref).toBe('7');
      return requests.map((r) => {
        const req = r as { id: string; fail?: boolean; v: number };
        if (req.fail) return { ok: false as const, status: 400, code: 'INVALID_INPUT', error: 'bad input' };
        return {
          ok: true as const,
          response: { id: req.id, model_version: '7', double: req.v * 2 } as never,
        };
      });
    },
  };
  return predictor;
}

const input = (n: number) =>
  `${Array.from({ length: n }, (_, i) => (i === 3 ? '{oops' : JSON.stringify({ id: `r${i}`, v: i, fail: i === 5 }))).join('\n')}\n`;

async function setup(rows: number, predictor = fakePredictor()) {
  const blobs = new MemoryBlobStore();
  const queue = new RecordingQueue();
  await blobs.put(BATCH_KEYS.job('j'), JSON.stringify({ model: 'm' }));
  await blobs.put(BATCH_KEYS.input('j'), input(rows));
  const tag = `etag:${(await blobs.head(BATCH_KEYS.input('j')))?.eTag}`;
  const deps = {
    blobs,
    queue,
    predictor,
    rowsPerPart: 4,
    reserveMs: 0,
    startGuard: new MemoryGuard(),
    partGuard: new MemoryGuard(),
  };
  return { blobs, queue, deps, tag };
}

const exhausted = { getRemainingTimeInMillis: () => 0 };

describe('batch scoring', () => {
  it('scores every row in order in one invocation when time allows', async () => {
    const { blobs, deps, tag, queue } = await setup(10);
    expect(await startBatchJob(deps, 'j', tag)).toEqual({
      state: 'done',
      total: 10,
      succeeded: 8,
      failed: 2,
    });
    const lines = (blobs.text(BATCH_KEYS.output('j')) ?? '')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(10);
    expect(lines[0]).toEqual({ id: 'r0', model_version: '7', double: 0 });
    expect(lines[3]).toMatchObject({ code: 'MALFORMED_JSON' });
    expect(lines[5]).toEqual({ error: 'bad input', code: 'INVALID_INPUT' });
    expect(lines[9]).toEqual({ id: 'r9', model_version: '7', double: 18 });
    expect(queue.sent).toEqual([]);
    expect([...blobs.objects.keys()].filter((k) => k.includes('/parts/'))).toEqual([]);
    expect(JSON.parse(blobs.text(BATCH_KEYS.status('j')) ?? '')).toMatchObject({
      state: 'done',
      total: 10,
      succeeded: 8,
      failed: 2,
      version: 7,
      ref: 'prod',
      partsDone: 3,
      partsTotal: 3,
    });
  });

  it('hands over through continuation messages when out of time, with the same result', async () => {
    const once = await setup(10);
    await startBatchJob(once.deps, 'j', once.tag);
    const expected = once.blobs.text(BATCH_KEYS.output('j'));

    const { blobs, deps, tag, queue } = await setup(10);
    expect(await startBatchJob(deps, 'j', tag, exhausted)).toEqual({ state: 'running', nextPart: 1 });
    expect(JSON.parse(blobs.text(BATCH_KEYS.status('j')) ?? '')).toMatchObject({
      state: 'running',
      partsDone: 1,
    });
    const first = queue.sent[0];
    if (first?.type !== 'batch-continue') throw new Error('no continuation');
    expect(first.cursor).toMatchObject({
      jobId: 'j',
      inputTag: tag,
      version: 7,
      nextPart: 1,
      succeeded: 3,
      failed: 1,
    });

    expect(await continueBatchJob(deps, first.cursor, exhausted)).toEqual({ state: 'running', nextPart: 2 });
    // A duplicate of the same continuation neither re-runs the part nor forks the job.
    expect(await continueBatchJob(deps, first.cursor, exhausted)).toEqual({ state: 'running', nextPart: 2 });
    expect(queue.sent).toHaveLength(2);
    const second = queue.sent[1];
    if (second?.type !== 'batch-continue') throw new Error('no continuation');
    expect(await continueBatchJob(deps, second.cursor, exhausted)).toEqual({
      state: 'done',
      total: 10,
      succeeded: 8,
      failed: 2,
    });
    expect(blobs.text(BATCH_KEYS.output('j'))).toBe(expected);
    // A late duplicate after the end is a no-op.
    expect(await continueBatchJob({ ...deps, partGuard: new MemoryGuard() }, second.cursor)).toMatchObject({
      state: 'skipped',
    });
  });

  it('does not start the same input twice', async () => {
    const { deps, tag, queue } = await setup(10);
    const first = await startBatchJob(deps, 'j', tag, exhausted);
    expect(await startBatchJob(deps, 'j', tag, exhausted)).toEqual(first);
    expect(queue.sent).toHaveLength(1);
  });

  it('abandons a continuation whose input was replaced (the new input starts its own job)', async () => {
    const { blobs, deps, tag, queue } = await setup(10);
    await startBatchJob(deps, 'j', tag, exhausted);
    await blobs.put(BATCH_KEYS.input('j'), input(2));
    const msg = queue.sent[0];
    if (msg?.type !== 'batch-continue') throw new Error('no continuation');
    expect(await continueBatchJob(deps, msg.cursor)).toMatchObject({ state: 'skipped' });
  });

  it('fails the job when the model is unknown or its version disappears mid-job', async () => {
    const unknown = await setup(3, fakePredictor({ missingModel: true }));
    expect(await startBatchJob(unknown.deps, 'j', unknown.tag)).toMatchObject({ state: 'failed' });
    expect(JSON.parse(unknown.blobs.text(BATCH_KEYS.status('j')) ?? '')).toMatchObject({
      state: 'failed',
      code: 'MODEL_NOT_FOUND',
      total: 3,
    });

    const vanishing = await setup(10, fakePredictor({ vanishAfterCalls: 1 }));
    expect(await startBatchJob(vanishing.deps, 'j', vanishing.tag)).toMatchObject({ state: 'failed' });
    expect(JSON.parse(vanishing.blobs.text(BATCH_KEYS.status('j')) ?? '')).toMatchObject({
      state: 'failed',
      code: 'VERSION_NOT_FOUND',
      partsDone: 1,
    });
  });

  it("rethrows errors that are not the job's fault, so the delivery is retried", async () => {
    const predictor = fakePredictor();
    const flaky = {
      ...predictor,
      inferBatch: async () => {
        throw new Error('socket hang up');
      },
    };
    const { deps, tag } = await setup(3, flaky);
    await expect(startBatchJob(deps, 'j', tag)).rejects.toThrow('socket hang up');
    // Nothing was recorded as done: a retry runs the job.
    await expect(startBatchJob({ ...deps, predictor }, 'j', tag)).resolves.toMatchObject({ state: 'done' });
  });

  it('reports a missing job.json and an invalid one', async () => {
    const { blobs, deps, tag } = await setup(2);
    await blobs.put(BATCH_KEYS.job('j'), '{"model": 1}');
    expect(await startBatchJob(deps, 'j', tag)).toMatchObject({ state: 'failed' });
    expect(JSON.parse(blobs.text(BATCH_KEYS.status('j')) ?? '')).toMatchObject({ code: 'INVALID_JOB' });
    await blobs.delete(BATCH_KEYS.job('j'));
    expect(await startBatchJob(deps, 'j', 'etag:other')).toMatchObject({ state: 'failed' });
    expect(JSON.parse(blobs.text(BATCH_KEYS.status('j')) ?? '')).toMatchObject({ code: 'JOB_NOT_FOUND' });
  });

  it('continues from a cursor without guards too', async () => {
    const { deps, tag, blobs } = await setup(10);
    const cursor: BatchCursor = {
      jobId: 'j',
      inputTag: tag,
      model: 'm',
      ref: 'prod',
      version: 7,
      nextPart: 0,
      startedAt: 't',
      succeeded: 0,
      failed: 0,
    };
    const { partGuard: _p, startGuard: _s, ...bare } = deps;
    expect(await continueBatchJob(bare, cursor)).toMatchObject({ state: 'done', total: 10 });
    expect(blobs.text(BATCH_KEYS.output('j'))?.split('\n')).toHaveLength(11);
  });
});

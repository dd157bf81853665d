/**
 * Batch scoring at scale over the in-memory ports and a predictor that answers each row from its content: a job cut
 * into parts scored concurrently, shuffled, duplicated and redelivered, continued when time runs out, cancelled,
 * failed by a poison part, aggregated by copies; against one inferBatch-like pass over every line.
 */
import { describe, expect, it, vi } from 'vitest';
import { MemoryBatchJobs, MemoryRangedObjects } from '../../functions/adapters/memory-batch';
import {
  aggregateBatchJob,
  BATCH_AGGREGATION_FAILED,
  BATCH_INPUT_CHANGED,
  BATCH_NOT_RESUMED,
  BATCH_PART_FAILED,
  type BatchRunResult,
  type BatchScoreDeps,
  cancelBatchJob,
  failBatchAggregate,
  failBatchPart,
  resumeBatchJob,
  runBatchPart,
  runOfInput,
  startBatchJob,
} from '../../functions/app/batch-score';
import type { Predictor } from '../../functions/app/predict';
import { BATCH, BATCH_KEYS, QUEUE } from '../../functions/contract/events';
import type { WorkMessage } from '../../functions/domain/async';
import { BINARY_DATA_IN_BATCH, parseRow, splitLines } from '../../functions/domain/batch';
import { parseInferenceBody } from '../../functions/domain/body-parser';
import { NotFoundError } from '../../functions/domain/errors';
import { ObjectChangedError, S3_MIN_PART_BYTES } from '../../functions/ports/batch';
import type { QueuePublisher } from '../../functions/ports/events';
import type { InferenceReport, MetricsSink } from '../../functions/ports/telemetry';
import { MemoryGuard } from '../helpers/events-fakes';
import { gate } from '../helpers/gate';

type Answer = Awaited<ReturnType<Predictor['inferBatch']>>[number];

/** Answers `{"id", "double"}` from each row alone; a row with `fail` is refused as the predictor refuses bad inputs. */
function answer(r: unknown): Answer {
  const req = r as { id: string; fail?: boolean; v: number };
  if (req.fail) return { ok: false as const, status: 400, code: 'INVALID_INPUT', error: 'bad input' };
  return { ok: true as const, response: { id: req.id, model_version: '7', double: req.v * 2 } as never };
}

interface FakeOptions {
  missingModel?: boolean;
  /** inferBatch throws a 404 after this many calls (the version vanished). */
  vanishAfterCalls?: number;
  /** inferBatch throws a plain error (not the job's fault) while this returns true. */
  flaky?: () => boolean;
  /** Called before each inferBatch call. */
  onCall?: (n: number) => Promise<void> | void;
}

function fakePredictor(opts: FakeOptions = {}) {
  let calls = 0;
  const predictor: Pick<Predictor, 'resolve' | 'inferBatch'> = {
    async resolve(name) {
      if (opts.missingModel) throw new NotFoundError(`model '${name}' does not exist`, 'MODEL_NOT_FOUND');
      return { version: { version: 7 } } as Awaited<ReturnType<Predictor['resolve']>>;
    },
    async inferBatch(_name, ref, requests) {
      calls++;
      await opts.onCall?.(calls);
      if (opts.flaky?.()) throw new Error('socket hang up');
      if (opts.vanishAfterCalls !== undefined && calls > opts.vanishAfterCalls) {
        throw new NotFoundError('version 7 does not exist', 'VERSION_NOT_FOUND');
      }
      expect(ref).toBe('7');
      return requests.map(answer);
    },
  };
  return predictor;
}

/** Input lines of every kind: answers, refusals, malformed JSON, blank lines, binary asks, CRLF, multi-byte text. */
function inputLine(i: number): string {
  if (i % 97 === 3) return '{oops';
  if (i % 89 === 5) return '';
  if (i % 83 === 7) return '   ';
  if (i % 79 === 9) return JSON.stringify({ id: `r${i}`, v: i, parameters: { binary_data_output: true } });
  const line = JSON.stringify({ id: `r${i}-é€😀`, v: i, fail: i % 13 === 0 });
  return i % 7 === 0 ? `${line}\r` : line;
}
const inputText = (n: number, from = 0) =>
  `${Array.from({ length: n }, (_, i) => inputLine(from + i)).join('\n')}${n ? '\n' : ''}`;

/** What scoring every line in one inferBatch-like pass gives: the output a job must write. */
function reference(text: string): string {
  const lines = splitLines(text);
  if (lines.length === 0) return '';
  const rows = lines.map((l, i) => parseRow(i, l, parseInferenceBody));
  const answers = rows.flatMap((r) => (r.ok ? [answer(r.request)] : []));
  let j = 0;
  const out = rows.map((r) => {
    if (!r.ok) return JSON.stringify({ error: r.error, code: r.code });
    const a = answers[j++] as Answer;
    return a.ok ? JSON.stringify(a.response) : JSON.stringify({ error: a.error, code: a.code });
  });
  return `${out.join('\n')}\n`;
}

/** A store that also keeps every write of a segment key, to check that rewrites carry the same bytes. */
class RecordingObjects extends MemoryRangedObjects {
  readonly segmentWrites = new Map<string, Uint8Array[]>();
  override async put(key: string, body: Uint8Array | string): Promise<void> {
    if (key.includes('/parts/')) {
      const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body.slice();
      this.segmentWrites.set(key, [...(this.segmentWrites.get(key) ?? []), bytes]);
    }
    await super.put(key, body);
  }
}

/** The batch queue: messages sent, taken by `drain`. */
class TestQueue implements QueuePublisher {
  readonly sent: WorkMessage[] = [];
  private taken = 0;
  onSend?: (m: WorkMessage) => Promise<void> | void;
  async send(message: WorkMessage) {
    this.sent.push(structuredClone(message));
    await this.onSend?.(message);
    return String(this.sent.length);
  }
  /** Messages sent since the last call. */
  fresh(): WorkMessage[] {
    const out = this.sent.slice(this.taken);
    this.taken = this.sent.length;
    return out;
  }
}

interface Setup {
  rows?: number;
  /** Several input files (`input/*.jsonl` and `_SUCCESS`) of these row counts instead of input.jsonl. */
  files?: number[];
  predictor?: Pick<Predictor, 'resolve' | 'inferBatch'>;
  job?: Record<string, unknown>;
  deps?: Partial<BatchScoreDeps>;
  streamChunkBytes?: number;
}

async function setup(o: Setup = {}) {
  const objects = new RecordingObjects({ streamChunkBytes: o.streamChunkBytes ?? 61 });
  const jobs = new MemoryBatchJobs();
  const queue = new TestQueue();
  const reports: InferenceReport[] = [];
  const metrics: MetricsSink = { inference: (r) => reports.push(r), operation: () => undefined };
  await objects.put(BATCH_KEYS.job('j'), JSON.stringify(o.job ?? { model: 'm' }));
  let text = '';
  if (o.files) {
    let from = 0;
    for (const [f, n] of o.files.entries()) {
      const part = inputText(n, from);
      from += n;
      text += part;
      await objects.put(`${BATCH_KEYS.inputPrefix('j')}${String(f).padStart(3, '0')}.jsonl`, part);
    }
    await objects.put(BATCH_KEYS.inputMarker('j'), '');
  } else {
    text = inputText(o.rows ?? 10);
    await objects.put(BATCH_KEYS.input('j'), text);
  }
  const deps: BatchScoreDeps = {
    blobs: objects,
    objects,
    jobs,
    batchQueue: queue,
    predictor: o.predictor ?? fakePredictor(),
    startGuard: new MemoryGuard(),
    metrics,
    partBytes: 700,
    rowsPerChunk: 8,
    segmentBytes: 1_000,
    reserveMs: 0,
    ...o.deps,
  };
  const tag = o.files ? undefined : `etag:${(await objects.head(BATCH_KEYS.input('j')))?.eTag}`;
  const start = () =>
    startBatchJob(
      deps,
      'j',
      o.files ? { input: 'prefix' } : { input: 'file', ...(tag ? { eventTag: tag } : {}) },
    );
  return { objects, jobs, queue, deps, text, start, reports };
}

const exhausted = { getRemainingTimeInMillis: () => 0 };

/** What `maas batch cancel` does to job `j`: writes its `cancel`, whose creation event cancels the job. */
async function cancelJob(objects: MemoryRangedObjects, deps: BatchScoreDeps): Promise<BatchRunResult> {
  await objects.put(BATCH_KEYS.cancel('j'), '');
  return cancelBatchJob(deps, 'j');
}

function handle(deps: BatchScoreDeps, m: WorkMessage, budget = { getRemainingTimeInMillis: () => 60_000 }) {
  if (m.type === 'batch-part') return runBatchPart(deps, m, budget);
  if (m.type === 'batch-aggregate') return aggregateBatchJob(deps, m);
  throw new Error(`not a batch message: ${m.type}`);
}

interface DrainOptions {
  /** Messages handled at once (the queue's concurrency). @default 1 */
  concurrency?: number;
  /** Random order (seeded). */
  seed?: number;
  /** Share of messages delivered twice (once at the same time, once later). */
  duplicate?: number;
  budget?: { getRemainingTimeInMillis(): number };
}

/** Delivers the queue's messages until none is left; resolves with every result. */
async function drain(s: Awaited<ReturnType<typeof setup>>, o: DrainOptions = {}): Promise<BatchRunResult[]> {
  let seed = o.seed ?? 1;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const pool: WorkMessage[] = [];
  const results: BatchRunResult[] = [];
  for (;;) {
    pool.push(...s.queue.fresh());
    if (pool.length === 0) break;
    const batch: WorkMessage[] = [];
    while (batch.length < (o.concurrency ?? 1) && pool.length) {
      const i = o.seed !== undefined ? Math.floor(rnd() * pool.length) : 0;
      const [m] = pool.splice(i, 1);
      if (!m) break;
      batch.push(m);
      if (o.duplicate && rnd() < o.duplicate) {
        batch.push(structuredClone(m));
        pool.push(structuredClone(m));
      }
    }
    results.push(...(await Promise.all(batch.map((m) => handle(s.deps, m, o.budget)))));
  }
  return results;
}

/** `real` with some of its methods replaced (the others called on `real`). */
function withMethods<T extends object>(real: T, over: Partial<T>): T {
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (prop in over) return over[prop as keyof T];
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * Puts `setTimeout` and the clock (the invocation's budget, the guard's timer) in the test's hands: they move only
 * when it advances them. `setImmediate`, with which the stores in memory yield, stays real.
 */
const holdTheClock = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });

/** `real` with a count of the calls of each of its methods made through `proxy`. */
function counting<T extends object>(real: T): { proxy: T; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const proxy = new Proxy(real, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  });
  return { proxy, calls };
}

/**
 * Delivers the queue's messages one at a time with `deps` until none is left, as a worker would; a message whose
 * handling fails is set aside (SQS would deliver it again once its visibility timeout is over).
 */
async function deliver(
  s: Awaited<ReturnType<typeof setup>>,
  deps: BatchScoreDeps,
): Promise<{ message: WorkMessage; error: Error }[]> {
  const failed: { message: WorkMessage; error: Error }[] = [];
  for (let m = s.queue.fresh(); m.length; m = s.queue.fresh()) {
    for (const message of m) {
      await handle(deps, message).catch((error: Error) => failed.push({ message, error }));
    }
  }
  return failed;
}

/**
 * Runs the first queued part of the job with its first `status.json` write held (a write that lands late); resolves
 * once that write waits, with the part's run and what lets the write go.
 */
async function firstPartWithStatusHeld(s: Awaited<ReturnType<typeof setup>>) {
  const [first] = s.queue.fresh();
  if (first?.type !== 'batch-part') throw new Error('no part queued');
  let release: (() => void) | undefined;
  let held = false;
  const blobs = withMethods(s.objects, {
    put: async (...args: Parameters<MemoryRangedObjects['put']>) => {
      if (!held && args[0] === BATCH_KEYS.status('j')) {
        held = true;
        await new Promise<void>((r) => {
          release = r;
        });
      }
      return s.objects.put(...args);
    },
  });
  const late = runBatchPart({ ...s.deps, blobs }, first);
  while (!release) await new Promise((r) => setTimeout(r, 1));
  return { late, release };
}

const statusOf = (objects: MemoryRangedObjects) => JSON.parse(objects.text(BATCH_KEYS.status('j')) ?? 'null');
const keysUnder = (objects: MemoryRangedObjects, prefix: string) =>
  [...objects.objects.keys()].filter((k) => k.startsWith(prefix));

describe('batch scoring: start and parts', () => {
  it('scores every row in order, part by part, and assembles the output once', async () => {
    const s = await setup({ rows: 200 });
    const started = await s.start();
    expect(started).toMatchObject({ state: 'running', partsDone: 0 });
    const plan = JSON.parse(s.objects.text(BATCH_KEYS.plan('j')) ?? '');
    expect(plan.parts.length).toBeGreaterThan(10);
    expect(s.queue.sent.filter((m) => m.type === 'batch-part')).toHaveLength(10); // BATCH.maxConcurrency
    expect(statusOf(s.objects)).toMatchObject({
      state: 'running',
      partsDone: 0,
      partsTotal: plan.parts.length,
    });

    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    const out = splitLines(s.objects.text(BATCH_KEYS.output('j')) ?? '');
    expect(out).toHaveLength(200);
    expect(JSON.parse(out[0] ?? '')).toMatchObject({ code: 'INVALID_INPUT' }); // row 0: fail (0 % 13)
    expect(JSON.parse(out[1] ?? '')).toEqual({ id: 'r1-é€😀', model_version: '7', double: 2 });
    expect(JSON.parse(out[3] ?? '')).toMatchObject({ code: 'MALFORMED_JSON' });
    expect(JSON.parse(out[5] ?? '')).toEqual({ error: 'empty line', code: 'EMPTY_LINE' });
    expect(JSON.parse(out[7] ?? '')).toEqual({ error: 'empty line', code: 'EMPTY_LINE' });
    expect(JSON.parse(out[9] ?? '')).toMatchObject({ code: BINARY_DATA_IN_BATCH });
    expect(JSON.parse(out[14] ?? '')).toEqual({ id: 'r14-é€😀', model_version: '7', double: 28 }); // a CRLF line

    const failed = out.filter((l) => l.startsWith('{"error":')).length;
    const status = statusOf(s.objects);
    expect(status).toMatchObject({
      jobId: 'j',
      state: 'done',
      model: 'm',
      ref: 'prod',
      version: 7,
      partsDone: plan.parts.length,
      partsTotal: plan.parts.length,
      total: 200,
      succeeded: 200 - failed,
      failed,
      bytesDone: plan.bytesTotal,
      bytesTotal: new TextEncoder().encode(s.text).length,
    });
    expect(status.etaSeconds).toBeUndefined();
    expect(s.jobs.aggregationClaims.get('j')).toBe(1);
    expect(s.objects.completed.get(BATCH_KEYS.output('j'))).toBe(1);
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
    expect(s.objects.openUploads).toBe(0);
    // One metric per scored chunk, with its rows.
    expect(s.reports.reduce((n, r) => n + (r.batchRows ?? 0), 0)).toBe(200);
    expect(Math.max(...s.reports.map((r) => r.batchRows ?? 0))).toBeLessThanOrEqual(8);
    // The input was never read whole: parts stream their ranges, the start reads scan windows.
    expect(s.objects.reads.get(BATCH_KEYS.input('j'))).toBeGreaterThan(plan.parts.length);
  });

  it('scores parts run concurrently, shuffled, duplicated and redelivered: same bytes, one aggregation', async () => {
    for (const seed of [1, 2, 3]) {
      const s = await setup({ rows: 600, deps: { maxConcurrency: 6 } });
      await s.start();
      const results = await drain(s, { concurrency: 5, seed, duplicate: 0.3 });
      expect(results.some((r) => r.state === 'skipped')).toBe(true); // duplicates were seen as such
      expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
      expect(s.jobs.aggregationClaims.get('j')).toBe(1);
      expect(s.queue.sent.filter((m) => m.type === 'batch-aggregate')).toHaveLength(1);
      expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 600 });
      // Every rewrite of a segment (there were some) carried the bytes of its first write.
      expect([...s.objects.segmentWrites.values()].some((w) => w.length > 1)).toBe(true);
      for (const [key, writes] of s.objects.segmentWrites) {
        for (const w of writes)
          expect(Buffer.from(w).equals(Buffer.from(writes[0] as Uint8Array)), key).toBe(true);
      }
      expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
    }
  });

  it('continues a part from its cursor when time runs out, with the same output', async () => {
    const s = await setup({ rows: 300, deps: { maxConcurrency: 3, segmentBytes: 10_000_000 } });
    await s.start();
    const results = await drain(s, { budget: exhausted, concurrency: 2, seed: 5, duplicate: 0.2 });
    const continued = s.queue.sent.filter((m) => m.type === 'batch-part' && m.cursor);
    expect(continued.length).toBeGreaterThan(10);
    for (const m of continued) {
      if (m.type !== 'batch-part' || !m.cursor) continue;
      expect(m.cursor.row % 8).toBe(0); // between chunks only
      expect(m.cursor.segments.at(-1)?.toRow).toBe(m.cursor.row);
    }
    expect(results.some((r) => r.state === 'running' && r.continued)).toBe(true);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    expect(s.jobs.aggregationClaims.get('j')).toBe(1);
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 300 });
  });

  it('cuts a segment once it holds segmentBytes: memory bounded by a segment and a chunk', async () => {
    const s = await setup({ rows: 120, deps: { partBytes: 1_000_000, segmentBytes: 500 } });
    await s.start();
    expect(JSON.parse(s.objects.text(BATCH_KEYS.plan('j')) ?? '').parts).toHaveLength(1);
    await drain(s);
    const sizes = [...s.objects.segmentWrites.values()].map((w) => (w[0] as Uint8Array).length);
    expect(sizes.length).toBeGreaterThan(5);
    const chunkMax = Math.max(...sizes);
    expect(chunkMax).toBeLessThan(500 + 8 * 200); // a segment: under segmentBytes, plus one chunk of answers
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
  });

  it('takes the input from input/*.jsonl in key order when input/_SUCCESS starts the job', async () => {
    const s = await setup({ files: [30, 0, 45, 1] });
    // What Hadoop and Spark write beside their files (names starting with _ or .) is left alone.
    await s.objects.put(`${BATCH_KEYS.inputPrefix('j')}_committed_42`, '{}');
    await s.objects.put(`${BATCH_KEYS.inputPrefix('j')}.000.jsonl.crc`, 'crc');
    expect(await s.start()).toMatchObject({ state: 'running' });
    const plan = JSON.parse(s.objects.text(BATCH_KEYS.plan('j')) ?? '');
    expect(new Set(plan.parts.map((p: { key: string }) => p.key))).toEqual(
      new Set(['batch/j/input/000.jsonl', 'batch/j/input/002.jsonl', 'batch/j/input/003.jsonl']),
    );
    expect(plan.inputTag).toMatch(/^inputs:/);
    await drain(s, { concurrency: 3, seed: 9 });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 76 });
  });

  it('takes *.ndjson and any case of .jsonl; refuses the job when input/ holds other objects, naming them', async () => {
    const s = await setup({ files: [3, 4] });
    await s.objects.put(`${BATCH_KEYS.inputPrefix('j')}002.NDJSON`, inputText(2, 7));
    await s.objects.put(`${BATCH_KEYS.inputPrefix('j')}003.Jsonl`, inputText(1, 9));
    expect(await s.start()).toMatchObject({ state: 'running' });
    await drain(s, { concurrency: 2, seed: 3 });
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 10 });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(inputText(10)));

    // Files under input/ that are no input files would lose their rows without a word.
    const stray = await setup({ files: [5] });
    await stray.objects.put(`${BATCH_KEYS.inputPrefix('j')}part-00000-c000.json`, inputText(2));
    await stray.objects.put(`${BATCH_KEYS.inputPrefix('j')}date=2026-01-01/part-0.jsonl`, inputText(2));
    expect(await stray.start()).toMatchObject({ state: 'failed', code: 'INVALID_INPUT' });
    const st = statusOf(stray.objects);
    expect(st).toMatchObject({ state: 'failed', code: 'INVALID_INPUT', model: 'm', total: 0 });
    expect(st.error).toContain('date=2026-01-01/part-0.jsonl, part-00000-c000.json');
    expect(stray.objects.text(BATCH_KEYS.output('j'))).toBeUndefined();
    expect(stray.queue.sent).toHaveLength(0);
    // Once they are gone, the marker written again (an empty object: the same ETag) starts the files: the objects
    // refused are part of what names the input.
    await stray.objects.delete(`${BATCH_KEYS.inputPrefix('j')}part-00000-c000.json`);
    await stray.objects.delete(`${BATCH_KEYS.inputPrefix('j')}date=2026-01-01/part-0.jsonl`);
    await stray.objects.put(BATCH_KEYS.inputMarker('j'), '');
    expect(await stray.start()).toMatchObject({ state: 'running' });
    await drain(stray, { concurrency: 1, seed: 1 });
    expect(statusOf(stray.objects)).toMatchObject({ state: 'done', total: 5 });
    // A folder's marker (the S3 console's "Create folder" writes input/ itself) is no object of the input.
    const folder = await setup({ files: [2] });
    await folder.objects.put(BATCH_KEYS.inputPrefix('j'), '');
    expect(await folder.start()).toMatchObject({ state: 'running' });
  });

  it('starts the input/ files again when input/_SUCCESS is written again; a stale event of it is skipped', async () => {
    const s = await setup({ files: [30, 20] });
    const markerTag = async () => `etag:${(await s.objects.head(BATCH_KEYS.inputMarker('j')))?.eTag}`;
    const start = async (eventTag: string) => startBatchJob(s.deps, 'j', { input: 'prefix', eventTag });
    const first = await markerTag();
    expect(await start(first)).toMatchObject({ state: 'running' });
    await drain(s);
    const firstTag = (await s.jobs.getJob('j'))?.inputTag;
    // A new version of the marker (in a versioned bucket, a new version id; here new bytes, a new ETag).
    await s.objects.put(BATCH_KEYS.inputMarker('j'), 'again');
    expect(await start(first)).toMatchObject({
      state: 'skipped',
      reason: expect.stringMatching(/written again since this event/),
    });
    expect(await start(await markerTag())).toMatchObject({ state: 'running' });
    await drain(s);
    expect((await s.jobs.getJob('j'))?.inputTag).not.toBe(firstTag);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 50 });
  });

  it('applies partBytes and maxConcurrency of job.json', async () => {
    const s = await setup({ rows: 3000, job: { model: 'm', partBytes: 65_536, maxConcurrency: 2 } });
    await s.start();
    const plan = JSON.parse(s.objects.text(BATCH_KEYS.plan('j')) ?? '');
    expect(plan.partBytes).toBe(65_536);
    expect(plan.parts.length).toBeGreaterThan(2);
    expect(s.queue.sent).toHaveLength(2);
    expect((await s.jobs.getJob('j'))?.maxConcurrency).toBe(2);
  });

  it('keeps at most maxConcurrency parts in flight, whatever the queue delivers at once', async () => {
    const s = await setup({ rows: 400, deps: { maxConcurrency: 3, partBytes: 500 } });
    const sentIndexes = new Set<number>();
    let most = 0;
    s.queue.onSend = async (m) => {
      if (m.type !== 'batch-part' || m.cursor) return;
      sentIndexes.add(m.index);
      const job = await s.jobs.getJob('j');
      most = Math.max(most, sentIndexes.size - (job?.partsDone ?? 0));
    };
    await s.start();
    expect(s.queue.sent).toHaveLength(3);
    const partsTotal = JSON.parse(s.objects.text(BATCH_KEYS.plan('j')) ?? '').parts.length;
    expect(partsTotal).toBeGreaterThan(20);
    await drain(s, { concurrency: 10, seed: 4 });
    expect(most).toBe(3);
    expect(sentIndexes.size).toBe(partsTotal);
    expect(s.queue.sent.filter((m) => m.type === 'batch-part')).toHaveLength(partsTotal);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
  });

  it('writes an empty output at once for an empty input', async () => {
    const s = await setup({ rows: 0 });
    expect(await s.start()).toEqual({ state: 'done', total: 0, succeeded: 0, failed: 0 });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe('');
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', partsTotal: 0, total: 0 });
    expect(s.queue.sent).toEqual([]);
    const files = await setup({ files: [0, 0] });
    expect(await files.start()).toMatchObject({ state: 'done', total: 0 });
  });

  it('does not start the same input twice', async () => {
    const s = await setup({ rows: 50 });
    const first = await s.start();
    const sent = s.queue.sent.length;
    expect(await s.start()).toEqual(first);
    expect(s.queue.sent).toHaveLength(sent);
    await drain(s);
    // Without the guard (or once its record expired), a start of an input whose job is done changes nothing.
    const { startGuard: _g, ...bare } = s.deps;
    expect(await startBatchJob(bare, 'j', { input: 'file' })).toEqual({
      state: 'skipped',
      reason: 'the job of this input is already done',
    });
    expect(s.queue.fresh()).toEqual([]);
    expect(statusOf(s.objects).state).toBe('done');
  });

  it('queues again, on a retried start, the first parts a failed start claimed but did not send', async () => {
    const s = await setup({ rows: 100, deps: { maxConcurrency: 4 } });
    let sends = 0;
    s.queue.onSend = () => {
      if (++sends === 2) throw new Error('queue unavailable');
    };
    await expect(s.start()).rejects.toThrow('queue unavailable');
    expect((await s.jobs.getJob('j'))?.queued).toBe(4);
    s.queue.onSend = undefined;
    expect(await s.start()).toMatchObject({ state: 'running' });
    expect((await s.jobs.getJob('j'))?.queued).toBe(4);
    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
  });

  it('skips an event whose input.jsonl was replaced since; the new input replaces a running job', async () => {
    const s = await setup({ rows: 100 });
    expect(await startBatchJob(s.deps, 'j', { input: 'file', eventTag: 'etag:old' })).toMatchObject({
      state: 'skipped',
    });
    await s.start();
    const old = s.queue.fresh();
    // A new input while the first job runs: the first is cancelled (replaced), its parts skip.
    const text = inputText(40, 1000);
    await s.objects.put(BATCH_KEYS.input('j'), text);
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
    const fresh = s.queue.fresh();
    expect(old.length).toBeGreaterThan(0);
    for (const m of old) expect(await handle(s.deps, m)).toMatchObject({ state: 'skipped' });
    for (const m of fresh) await handle(s.deps, m);
    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(text));
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 40 });
  });

  it('scores an input again after another one (A, B, then A again): a new job, not the first one repeated', async () => {
    const s = await setup({ rows: 50 });
    const output = () => s.objects.text(BATCH_KEYS.output('j'));
    await s.start();
    await drain(s);
    expect(output()).toBe(reference(s.text));
    const b = inputText(20, 700);
    await s.objects.put(BATCH_KEYS.input('j'), b);
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
    await drain(s);
    expect(output()).toBe(reference(b));
    // The same bytes again: the same ETag, so the same input tag as the first job's.
    await s.objects.put(BATCH_KEYS.input('j'), s.text);
    const again = await s.start();
    expect(again).toMatchObject({ state: 'running' });
    await drain(s);
    expect(output()).toBe(reference(s.text));
    const status = statusOf(s.objects);
    expect(status).toMatchObject({ state: 'done', total: 50, partsDone: status.partsTotal });
    // Its start delivered again now is a repeat: nothing starts.
    expect(await s.start()).toEqual(again);
    expect(s.queue.fresh()).toEqual([]);
  });

  it('A, B, A, B: four jobs, each scoring its own input', async () => {
    const s = await setup({ rows: 50 });
    const b = inputText(20, 700);
    for (const text of [s.text, b, s.text, b]) {
      await s.objects.put(BATCH_KEYS.input('j'), text);
      expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
      await drain(s);
      expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(text));
      expect(statusOf(s.objects)).toMatchObject({
        state: 'done',
        inputTag: (await s.jobs.getJob('j'))?.inputTag,
      });
    }
  });

  it('a new input removes the output of the job before: none while it runs, none once it is cancelled', async () => {
    const s = await setup({ rows: 30 });
    const output = () => s.objects.text(BATCH_KEYS.output('j'));
    await s.start();
    await drain(s);
    expect(output()).toBe(reference(s.text));
    // The done job's start again (its guard record expired) is no new job: its output stays.
    const { startGuard: _g, ...bare } = s.deps;
    expect(await startBatchJob(bare, 'j', { input: 'file' })).toMatchObject({ state: 'skipped' });
    expect(output()).toBe(reference(s.text));
    await s.objects.put(BATCH_KEYS.input('j'), inputText(20, 700));
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
    expect(output()).toBeUndefined();
    expect(await cancelJob(s.objects, s.deps)).toEqual({ state: 'cancelled' });
    await drain(s);
    expect(statusOf(s.objects)).toMatchObject({ state: 'cancelled', total: 0 });
    expect(output()).toBeUndefined();
  });

  it('a new input whose start fails, or whose job fails, leaves no output of the job before', async () => {
    const s = await setup({ rows: 30 });
    const output = () => s.objects.text(BATCH_KEYS.output('j'));
    await s.start();
    await drain(s);
    await s.objects.put(BATCH_KEYS.job('j'), JSON.stringify({ model: 'm', partbytes: 1 }));
    await s.objects.put(BATCH_KEYS.input('j'), inputText(20, 700));
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({
      state: 'failed',
      code: 'INVALID_JOB',
    });
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'INVALID_JOB' });
    expect(output()).toBeUndefined();
    // A job that runs, then fails (its version vanishes), after a done one.
    const t = await setup({ rows: 30, predictor: fakePredictor({ vanishAfterCalls: 5 }) });
    await t.start();
    await drain(t);
    expect(t.objects.text(BATCH_KEYS.output('j'))).toBe(reference(t.text));
    await t.objects.put(BATCH_KEYS.input('j'), inputText(20, 700));
    await startBatchJob(t.deps, 'j', { input: 'file' });
    await drain(t);
    expect(statusOf(t.objects)).toMatchObject({ state: 'failed', code: 'VERSION_NOT_FOUND' });
    expect(t.objects.text(BATCH_KEYS.output('j'))).toBeUndefined();
  });

  it("the output of a replaced job's assembly, completed after the new job started, goes", async () => {
    const s = await setup({ rows: 60 });
    const output = () => s.objects.text(BATCH_KEYS.output('j'));
    let release: (() => void) | undefined;
    const objects = withMethods(s.objects, {
      completeMultipart: async (...args: Parameters<MemoryRangedObjects['completeMultipart']>) => {
        await new Promise<void>((r) => {
          release = r;
        });
        return s.objects.completeMultipart(...args);
      },
    });
    await s.start();
    // Every part of the first job: what is left is its aggregation, whose upload completes late.
    const aggregate: WorkMessage[] = [];
    for (let ms = s.queue.fresh(); ms.length; ms = s.queue.fresh()) {
      for (const m of ms) {
        if (m.type === 'batch-aggregate') aggregate.push(m);
        else await handle(s.deps, m);
      }
    }
    const late = handle({ ...s.deps, objects }, aggregate[0]!);
    while (!release) await new Promise((r) => setTimeout(r, 1));
    const b = inputText(20, 700);
    await s.objects.put(BATCH_KEYS.input('j'), b);
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
    const second = s.queue.fresh();
    release();
    expect(await late).toEqual({ state: 'skipped', reason: 'the job ended meanwhile' });
    expect(output()).toBeUndefined();
    for (const m of second) await handle(s.deps, m);
    await drain(s);
    expect(output()).toBe(reference(b));
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 20 });
  });

  it('A, B, A: messages of the first A job do not touch the third', async () => {
    const s = await setup({ rows: 60, deps: { maxConcurrency: 1 } });
    await s.start();
    const [p0] = s.queue.fresh();
    // Part 0 of the first job scores one chunk, then its time runs out: a continuation is queued.
    let calls = 0;
    const budget = { getRemainingTimeInMillis: () => (calls++ < 1 ? 60_000 : 0) };
    await runBatchPart(s.deps, p0 as Extract<WorkMessage, { type: 'batch-part' }>, budget);
    const late = s.queue.fresh();
    expect(late.map((m) => m.type === 'batch-part' && m.cursor !== undefined)).toEqual([true]);
    await s.objects.put(BATCH_KEYS.input('j'), inputText(20, 700));
    await startBatchJob(s.deps, 'j', { input: 'file' });
    s.queue.fresh();
    await s.objects.put(BATCH_KEYS.input('j'), s.text);
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
    const third = (await s.jobs.getJob('j'))?.inputTag;
    expect(third).not.toBe(late[0]?.type === 'batch-part' ? late[0].inputTag : undefined);
    for (const m of late) expect(await handle(s.deps, m)).toMatchObject({ state: 'skipped' });
    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', inputTag: third, total: 60 });
  });

  it("A, B, A: the first A job's assembly, completed late, does not end the third", async () => {
    const s = await setup({ rows: 60 });
    let release: (() => void) | undefined;
    let held = false;
    const objects = withMethods(s.objects, {
      completeMultipart: async (...args: Parameters<MemoryRangedObjects['completeMultipart']>) => {
        await s.objects.completeMultipart(...args);
        if (held) return;
        held = true;
        await new Promise<void>((r) => {
          release = r;
        });
      },
    });
    await s.start();
    const first = drain({ ...s, deps: { ...s.deps, objects } });
    while (!release) await new Promise((r) => setTimeout(r, 1));
    await s.objects.put(BATCH_KEYS.input('j'), inputText(20, 700));
    await startBatchJob(s.deps, 'j', { input: 'file' });
    await s.objects.put(BATCH_KEYS.input('j'), s.text);
    await startBatchJob(s.deps, 'j', { input: 'file' });
    release();
    await first;
    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    const status = statusOf(s.objects);
    expect(status).toMatchObject({
      state: 'done',
      total: 60,
      inputTag: (await s.jobs.getJob('j'))?.inputTag,
    });
    expect(status.partsDone).toBe(status.partsTotal);
  });

  it('a start that fails keeps its status: a late message or cancel of the job before does not write over it', async () => {
    // A clock a second further at each reading: the failed start is later than the job before, to the millisecond.
    let t = Date.parse('2026-12-02T10:00:00Z');
    const clock = {
      now: () => {
        t += 1000;
        return new Date(t);
      },
    };
    const s = await setup({ rows: 20, deps: { clock } });
    const aggregates: WorkMessage[] = [];
    s.queue.onSend = (m) => {
      if (m.type === 'batch-aggregate') aggregates.push(structuredClone(m));
    };
    await s.start();
    await drain(s);
    await s.objects.put(BATCH_KEYS.input('j'), inputText(5, 900));
    const unknown = { ...s.deps, predictor: fakePredictor({ missingModel: true }) };
    expect(await startBatchJob(unknown, 'j', { input: 'file' })).toMatchObject({ state: 'failed' });
    for (const m of aggregates) await handle(s.deps, m);
    await cancelJob(s.objects, s.deps);
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'MODEL_NOT_FOUND' });
  });

  it('an empty input after a finished job has its own status', async () => {
    const s = await setup({ rows: 20 });
    await s.start();
    await drain(s);
    await s.objects.put(BATCH_KEYS.input('j'), '');
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'done', total: 0 });
    expect(statusOf(s.objects)).toMatchObject({
      state: 'done',
      total: 0,
      inputTag: (await s.jobs.getJob('j'))?.inputTag,
    });
  });

  it('a cancel landing before a new job has written its first status ends it cancelled, status and all', async () => {
    const s = await setup({ rows: 20 });
    await s.start();
    await drain(s);
    await s.objects.put(BATCH_KEYS.input('j'), inputText(30, 500));
    let cancelled = false;
    const jobs = withMethods(s.jobs, {
      claimNext: async (...args: Parameters<MemoryBatchJobs['claimNext']>) => {
        if (!cancelled) {
          cancelled = true;
          expect(await cancelJob(s.objects, s.deps)).toEqual({ state: 'cancelled' });
        }
        return s.jobs.claimNext(...args);
      },
    });
    await startBatchJob({ ...s.deps, jobs }, 'j', { input: 'file' });
    expect(cancelled).toBe(true);
    expect(statusOf(s.objects)).toMatchObject({
      state: 'cancelled',
      inputTag: (await s.jobs.getJob('j'))?.inputTag,
    });
  });

  it('a failed start while the job before runs ends that job replaced, and its own status stands', async () => {
    const s = await setup({ rows: 40, deps: { maxConcurrency: 1 } });
    await s.start();
    const [first] = s.queue.fresh();
    if (!first) throw new Error('no part');
    await handle(s.deps, first);
    expect(keysUnder(s.objects, 'batch/j/parts/').length).toBeGreaterThan(0);
    await s.objects.put(BATCH_KEYS.input('j'), inputText(5, 900));
    const unknown = { ...s.deps, predictor: fakePredictor({ missingModel: true }) };
    expect(await startBatchJob(unknown, 'j', { input: 'file' })).toMatchObject({
      state: 'failed',
      code: 'MODEL_NOT_FOUND',
    });
    expect(await s.jobs.getJob('j')).toMatchObject({ state: 'cancelled', code: 'BATCH_INPUT_REPLACED' });
    expect(await drain(s)).toEqual([expect.objectContaining({ state: 'skipped' })]);
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'MODEL_NOT_FOUND' });
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBeUndefined();
  });

  it('a running status of the job before, written after a later start failed, gives way to that start', async () => {
    const s = await setup({ rows: 40, deps: { maxConcurrency: 1 } });
    await s.start();
    const [first] = s.queue.fresh();
    if (!first) throw new Error('no part');
    const unknown = { ...s.deps, predictor: fakePredictor({ missingModel: true }) };
    // The part is counted; before it writes its status, a new input's start fails.
    const jobs = withMethods(s.jobs, {
      completePart: async (...args: Parameters<MemoryBatchJobs['completePart']>) => {
        const counted = await s.jobs.completePart(...args);
        await s.objects.put(BATCH_KEYS.input('j'), inputText(5, 900));
        await startBatchJob(unknown, 'j', { input: 'file' });
        return counted;
      },
    });
    expect(await handle({ ...s.deps, jobs }, first)).toMatchObject({ state: 'running' });
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'MODEL_NOT_FOUND' });
  });

  it("a running status of the job before, written late, gives way to the new job's end", async () => {
    const s = await setup({ rows: 40, deps: { maxConcurrency: 1 } });
    await s.start();
    const { late, release } = await firstPartWithStatusHeld(s);
    s.queue.fresh();
    const b = inputText(10, 700);
    await s.objects.put(BATCH_KEYS.input('j'), b);
    await startBatchJob(s.deps, 'j', { input: 'file' });
    const aggregates: WorkMessage[] = [];
    for (let m = s.queue.fresh(); m.length; m = s.queue.fresh()) {
      for (const message of m) {
        if (message.type === 'batch-aggregate') aggregates.push(message);
        else await handle(s.deps, message);
      }
    }
    release();
    await late;
    expect(statusOf(s.objects).state).toBe('running');
    expect(aggregates).toHaveLength(1);
    for (const m of aggregates) expect(await handle(s.deps, m)).toMatchObject({ state: 'done' });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(b));
    expect(statusOf(s.objects)).toMatchObject({
      state: 'done',
      inputTag: (await s.jobs.getJob('j'))?.inputTag,
    });
  });

  it('a running status of a replaced job, written after the job replacing it ended, gives way to that end', async () => {
    const s = await setup({ rows: 40, deps: { maxConcurrency: 1 } });
    await s.start();
    const { late, release } = await firstPartWithStatusHeld(s);
    s.queue.fresh();
    await s.objects.put(BATCH_KEYS.input('j'), inputText(10, 700));
    await startBatchJob(s.deps, 'j', { input: 'file' });
    await drain(s);
    release();
    await late;
    await drain(s);
    const record = await s.jobs.getJob('j');
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', inputTag: record?.inputTag });
  });

  it('orders a failed start and the jobs by their tags, not their clocks', async () => {
    // Every reading of these clocks is the same millisecond, or earlier for the later start (a clock behind).
    const at = (iso: string) => ({ now: () => new Date(iso) });
    const s = await setup({ rows: 0, deps: { clock: at('2026-12-02T10:00:00.005Z') } });
    await s.start();
    await s.objects.put(BATCH_KEYS.input('j'), inputText(5, 900));
    const unknown = {
      ...s.deps,
      clock: at('2026-12-02T10:00:00.003Z'),
      predictor: fakePredictor({ missingModel: true }),
    };
    expect(await startBatchJob(unknown, 'j', { input: 'file' })).toMatchObject({ state: 'failed' });
    await cancelJob(s.objects, s.deps);
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'MODEL_NOT_FOUND' });
    // An empty input replacing a running job, on a clock behind that job's: its end is the status.
    const t = await setup({ rows: 40, deps: { clock: at('2026-12-02T10:00:00.005Z') } });
    await t.start();
    await t.objects.put(BATCH_KEYS.input('j'), '');
    await startBatchJob({ ...t.deps, clock: at('2026-12-02T10:00:00.003Z') }, 'j', { input: 'file' });
    await drain(t);
    const record = await t.jobs.getJob('j');
    expect(statusOf(t.objects)).toMatchObject({ state: 'done', total: 0, inputTag: record?.inputTag });
  });

  it('an empty input whose job a cancel ends first says cancelled', async () => {
    const s = await setup({ rows: 0 });
    let cancelled = false;
    const jobs = withMethods(s.jobs, {
      finish: async (...args: Parameters<MemoryBatchJobs['finish']>) => {
        if (!cancelled && args[2] === 'done') {
          cancelled = true;
          expect(await cancelJob(s.objects, s.deps)).toEqual({ state: 'cancelled' });
        }
        return s.jobs.finish(...args);
      },
    });
    await startBatchJob({ ...s.deps, jobs }, 'j', { input: 'file' });
    expect(cancelled).toBe(true);
    expect((await s.jobs.getJob('j'))?.state).toBe('cancelled');
    expect(statusOf(s.objects).state).toBe('cancelled');
  });

  it('removes the segments of the input it replaces, counted parts included', async () => {
    const s = await setup({ rows: 100, deps: { maxConcurrency: 1 } });
    await s.start();
    const [first] = s.queue.fresh();
    if (!first) throw new Error('no part');
    await handle(s.deps, first);
    const oldTag = (await s.jobs.getJob('j'))?.inputTag ?? '';
    const oldSegments = `batch/j/parts/${runOfInput(oldTag)}/`;
    expect(keysUnder(s.objects, oldSegments).length).toBeGreaterThan(0);
    const text = inputText(30, 500);
    await s.objects.put(BATCH_KEYS.input('j'), text);
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
    expect(keysUnder(s.objects, oldSegments)).toEqual([]);
    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(text));
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
  });
});

describe('batch scoring: an end whose status write or clean-up failed is completed by its retry', () => {
  /** The deps with `objects` whose first write of status.json in `state` fails. */
  function failingStatus(s: Awaited<ReturnType<typeof setup>>, state: string) {
    let failed = 0;
    const blobs = withMethods(s.objects, {
      put: async (key: string, body: Uint8Array | string) => {
        if (failed === 0 && key === BATCH_KEYS.status('j') && JSON.parse(String(body)).state === state) {
          failed++;
          throw new Error('SlowDown');
        }
        await s.objects.put(key, body);
      },
    });
    return { ...s.deps, blobs };
  }

  /** Delivers the messages with `deps` (until one fails when `untilFailure`); resolves with those that failed. */
  async function deliverAll(
    s: Awaited<ReturnType<typeof setup>>,
    deps: BatchScoreDeps,
    untilFailure = false,
  ) {
    const failed: WorkMessage[] = [];
    for (let m = s.queue.fresh(); m.length; m = s.queue.fresh()) {
      for (const message of m) {
        await handle(deps, message).catch((e: Error) => {
          expect(e.message).toBe('SlowDown');
          failed.push(message);
        });
        if (untilFailure && failed.length > 0) return failed;
      }
    }
    return failed;
  }

  it('the aggregation: its redelivery writes the done status and removes the segments', async () => {
    const s = await setup({ rows: 60 });
    const deps = failingStatus(s, 'done');
    await s.start();
    const failed = await deliverAll(s, deps);
    expect(failed.map((m) => m.type)).toEqual(['batch-aggregate']);
    expect((await s.jobs.getJob('j'))?.state).toBe('done');
    expect(statusOf(s.objects).state).toBe('running');
    for (const m of failed) expect(await handle(deps, m)).toMatchObject({ state: 'skipped' });
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 60 });
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
  });

  it('the cancel: its retried event writes the cancelled status and removes the segments', async () => {
    const s = await setup({ rows: 60 });
    const deps = failingStatus(s, 'cancelled');
    await s.start();
    const [first] = s.queue.fresh();
    if (!first) throw new Error('no part');
    await handle(deps, first);
    expect(keysUnder(s.objects, 'batch/j/parts/').length).toBeGreaterThan(0);
    await expect(cancelJob(s.objects, deps)).rejects.toThrow('SlowDown');
    expect(statusOf(s.objects).state).toBe('running');
    expect(await cancelBatchJob(deps, 'j')).toMatchObject({ state: 'skipped' });
    expect(statusOf(s.objects).state).toBe('cancelled');
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
  });

  it('the empty input: its retried start writes the done status', async () => {
    const s = await setup({ rows: 0 });
    const deps = failingStatus(s, 'done');
    const start = () => startBatchJob(deps, 'j', { input: 'file' });
    await expect(start()).rejects.toThrow('SlowDown');
    expect(s.objects.text(BATCH_KEYS.status('j'))).toBeUndefined();
    expect(await start()).toMatchObject({ state: 'skipped' });
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 0 });
  });

  it('a poison part whose end cannot write the status on its last receive: a fresh message of the job does', async () => {
    const s = await setup({ rows: 100 });
    const deps = failingStatus(s, 'failed');
    await s.start();
    const [first, second] = s.queue.fresh();
    if (first?.type !== 'batch-part' || !second) throw new Error('no parts');
    await handle(deps, second);
    expect(keysUnder(s.objects, 'batch/j/parts/').length).toBeGreaterThan(0);
    await expect(failBatchPart(deps, first, 3, new Error('out of memory'))).rejects.toThrow('SlowDown');
    expect((await s.jobs.getJob('j'))?.state).toBe('failed');
    expect(statusOf(s.objects).state).toBe('running');
    // The message itself goes to the dead-letter queue; the fresh one completes the end.
    const resent = s.queue.fresh();
    expect(resent).toEqual([
      { type: 'batch-part', jobId: 'j', inputTag: first.inputTag, index: first.index },
    ]);
    for (const m of resent) expect(await handle(deps, m)).toMatchObject({ state: 'skipped' });
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'BATCH_PART_FAILED' });
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
  });

  it('an assembly failed on its last receive whose end cannot write the status: a fresh message of the job does', async () => {
    const s = await setup({ rows: 30 });
    const deps = failingStatus(s, 'failed');
    await s.start();
    let aggregate: WorkMessage | undefined;
    for (let m = s.queue.fresh(); m.length; m = s.queue.fresh()) {
      for (const message of m) {
        if (message.type === 'batch-aggregate') aggregate = message;
        else await handle(deps, message);
      }
    }
    if (aggregate?.type !== 'batch-aggregate') throw new Error('no aggregation');
    await expect(failBatchAggregate(deps, aggregate, 3, new Error('SlowDown'))).rejects.toThrow('SlowDown');
    expect(statusOf(s.objects).state).toBe('running');
    const resent = s.queue.fresh();
    expect(resent).toEqual([{ type: 'batch-aggregate', jobId: 'j', inputTag: aggregate.inputTag }]);
    for (const m of resent) expect(await handle(deps, m)).toMatchObject({ state: 'skipped' });
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'BATCH_AGGREGATION_FAILED' });
    // Kept for inspection, as after any failed assembly.
    expect(keysUnder(s.objects, 'batch/j/parts/').length).toBeGreaterThan(0);
  });

  it('a part that fails the job: its redelivery writes the failed status and removes the segments', async () => {
    const s = await setup({ rows: 100, predictor: fakePredictor({ vanishAfterCalls: 3 }) });
    const deps = failingStatus(s, 'failed');
    await s.start();
    const failed = await deliverAll(s, deps, true);
    expect(failed.length).toBe(1);
    expect((await s.jobs.getJob('j'))?.state).toBe('failed');
    expect(statusOf(s.objects).state).toBe('running');
    for (const m of failed) expect(await handle(deps, m)).toMatchObject({ state: 'skipped' });
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'VERSION_NOT_FOUND' });
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
  });
});

describe('batch scoring: failures, cancel, poison parts', () => {
  it('fails the job when the model is unknown, job.json is missing or invalid', async () => {
    const unknown = await setup({ rows: 3, predictor: fakePredictor({ missingModel: true }) });
    expect(await unknown.start()).toMatchObject({ state: 'failed', code: 'MODEL_NOT_FOUND' });
    expect(statusOf(unknown.objects)).toMatchObject({ state: 'failed', code: 'MODEL_NOT_FOUND', model: 'm' });

    const bad = await setup({ rows: 2, job: { model: 1 } });
    expect(await bad.start()).toMatchObject({ state: 'failed' });
    expect(statusOf(bad.objects)).toMatchObject({ code: 'INVALID_JOB' });
    const tooSmall = await setup({ rows: 2, job: { model: 'm', partBytes: 10 } });
    expect(await tooSmall.start()).toMatchObject({ state: 'failed', code: 'INVALID_JOB' });

    const missing = await setup({ rows: 2 });
    await missing.objects.delete(BATCH_KEYS.job('j'));
    expect(await missing.start()).toMatchObject({ state: 'failed', code: 'JOB_NOT_FOUND' });
    expect(statusOf(missing.objects).error).toMatch(/before input.jsonl/);
  });

  it('fails the job when its version disappears mid-job; the other parts skip', async () => {
    const s = await setup({ rows: 200, predictor: fakePredictor({ vanishAfterCalls: 4 }) });
    await s.start();
    const results = await drain(s);
    expect(results.filter((r) => r.state === 'failed')).toEqual([
      { state: 'failed', error: 'version 7 does not exist', code: 'VERSION_NOT_FOUND' },
    ]);
    expect(results.some((r) => r.state === 'skipped')).toBe(true);
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'VERSION_NOT_FOUND' });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBeUndefined();
    expect(s.jobs.aggregationClaims.get('j')).toBeUndefined();
  });

  it('waits for the chunks still in flight when the job fails on the last ones', async () => {
    // One part of five chunks: the fourth fails the job (its version vanished) while the fifth is still running.
    let fifthDone = false;
    const predictor = fakePredictor({
      vanishAfterCalls: 3,
      onCall: async (n) => {
        if (n !== 5) return;
        await new Promise((done) => setTimeout(done, 30));
        fifthDone = true;
      },
    });
    const s = await setup({ rows: 40, predictor, deps: { partBytes: 1_000_000 } });
    await s.start();
    const [part, ...others] = s.queue.fresh();
    if (!part) throw new Error('no part');
    expect(others).toEqual([]);
    expect(await handle(s.deps, part)).toEqual({
      state: 'failed',
      error: 'version 7 does not exist',
      code: 'VERSION_NOT_FOUND',
    });
    expect(fifthDone).toBe(true);
  });

  it("reads an invocation's second chunk while its first is scored, and scores it only after", async () => {
    // Each chunk read resolves the job's version once (readChunk); the first chunk's run waits for the second read.
    const base = fakePredictor();
    let reads = 0;
    let scored = 0;
    let readsWhenSecondScored = 0;
    let secondReadSeen: () => void = () => undefined;
    const secondRead = new Promise<void>((done) => {
      secondReadSeen = done;
    });
    const predictor: typeof base = {
      async resolve(name, ref) {
        if (++reads === 3) secondReadSeen();
        return base.resolve(name, ref);
      },
      async inferBatch(name, ref, requests) {
        const n = ++scored;
        // Bounded: a part that reads nothing while it scores goes on after a second, and fails below.
        if (n === 1) await Promise.race([secondRead, new Promise((done) => setTimeout(done, 1000))]);
        if (n === 2) readsWhenSecondScored = reads;
        return base.inferBatch(name, ref, requests);
      },
    };
    const s = await setup({ rows: 40, predictor, deps: { partBytes: 1_000_000 } });
    await s.start();
    const [part, ...others] = s.queue.fresh();
    if (!part) throw new Error('no part');
    expect(others).toEqual([]);
    // Scored in one invocation, not continued.
    expect(await handle(s.deps, part)).not.toHaveProperty('continued');
    // The start resolved once; the first chunk's run ended only once the second chunk had been read.
    expect(readsWhenSecondScored).toBeGreaterThanOrEqual(3);
    expect(scored).toBe(5);
    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
  });

  it("rethrows errors that are not the job's fault, so the delivery is retried", async () => {
    let failing = true;
    const s = await setup({ rows: 40, predictor: fakePredictor({ flaky: () => failing }) });
    await s.start();
    const [first, ...others] = s.queue.fresh();
    if (!first) throw new Error('no part');
    await expect(handle(s.deps, first)).rejects.toThrow('socket hang up');
    failing = false;
    await handle(s.deps, first); // the retry
    for (const m of others) await handle(s.deps, m);
    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
  });

  it('cancels a running job: the running part stops at its next chunk, the queued ones skip, no aggregation', async () => {
    let s: Awaited<ReturnType<typeof setup>> | undefined;
    const predictor = fakePredictor({
      onCall: async (n) => {
        if (n === 6 && s) expect(await cancelJob(s.objects, s.deps)).toEqual({ state: 'cancelled' });
      },
    });
    s = await setup({ rows: 300, predictor, deps: { maxConcurrency: 2 } });
    await s.start();
    const results = await drain(s, { concurrency: 2 });
    expect(results.filter((r) => r.state === 'skipped').length).toBeGreaterThan(0);
    expect(s.jobs.aggregationClaims.get('j')).toBeUndefined();
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBeUndefined();
    const status = statusOf(s.objects);
    expect(status.state).toBe('cancelled');
    expect(status.partsDone).toBeLessThan(status.partsTotal);
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
    // A second cancel, and one of a job that is not there, change nothing.
    expect(await cancelJob(s.objects, s.deps)).toMatchObject({ state: 'skipped' });
    expect(await cancelBatchJob(s.deps, 'nobody')).toMatchObject({ state: 'skipped' });
  });

  it('a cancel event delivered again after a new input started the job again leaves the new job running', async () => {
    const s = await setup({ rows: 20 });
    await s.start();
    expect(await cancelJob(s.objects, s.deps)).toEqual({ state: 'cancelled' });
    await s.objects.put(BATCH_KEYS.input('j'), inputText(30, 500));
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
    // The new job's start removed the cancel written before it; the old cancel's event comes again.
    expect(await s.objects.head(BATCH_KEYS.cancel('j'))).toBeUndefined();
    expect(await cancelBatchJob(s.deps, 'j')).toEqual({
      state: 'skipped',
      reason: 'the cancel was written before the running job started',
    });
    await drain(s);
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 30 });
    // A cancel written for the new job still cancels it.
    await s.objects.put(BATCH_KEYS.input('j'), inputText(40, 900));
    await startBatchJob(s.deps, 'j', { input: 'file' });
    expect(await cancelJob(s.objects, s.deps)).toEqual({ state: 'cancelled' });
  });

  it('a start delivered again while its job runs leaves a cancel of that job in place', async () => {
    const s = await setup({ rows: 20 });
    const unguarded = { ...s.deps, startGuard: undefined };
    await startBatchJob(unguarded, 'j', { input: 'file' });
    await s.objects.put(BATCH_KEYS.cancel('j'), '');
    expect(await startBatchJob(unguarded, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
    expect(await cancelBatchJob(s.deps, 'j')).toEqual({ state: 'cancelled' });
  });

  it('fails the job BATCH_INPUT_CHANGED when its input is written again with no new start: nothing of the new bytes is scored', async () => {
    const s = await setup({ rows: 60 });
    await s.start();
    const [first, ...others] = s.queue.fresh();
    if (!first) throw new Error('no part');
    expect(await handle(s.deps, first)).toMatchObject({ state: 'running' });
    // The same size, other lines: read at the planned offsets they would be scored as if nothing happened.
    await s.objects.put(BATCH_KEYS.input('j'), s.text.replaceAll('"r', '"q'));
    const [next] = others;
    if (!next) throw new Error('no second part');
    expect(await handle(s.deps, next)).toEqual({
      state: 'failed',
      code: BATCH_INPUT_CHANGED,
      error: `${BATCH_KEYS.input('j')} was written again while the job ran: part 1 cannot read the input it was planned on`,
    });
    await drain(s);
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: BATCH_INPUT_CHANGED, partsDone: 1 });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBeUndefined();
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
  });

  it('fails the job BATCH_INPUT_CHANGED at once when its input is deleted while it runs (no retries)', async () => {
    const s = await setup({ rows: 60 });
    await s.start();
    const [first, next] = s.queue.fresh();
    if (!first || !next) throw new Error('no parts');
    expect(await handle(s.deps, first)).toMatchObject({ state: 'running' });
    await s.objects.delete(BATCH_KEYS.input('j'));
    // Its first receive: a missing input is no failure a retry could mend.
    expect(await handle(s.deps, next)).toEqual({
      state: 'failed',
      code: BATCH_INPUT_CHANGED,
      error: `${BATCH_KEYS.input('j')} was deleted while the job ran: part 1 cannot read the input it was planned on`,
    });
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: BATCH_INPUT_CHANGED });
  });

  it('a part continued after its input was written again fails the job and removes the segments it wrote', async () => {
    const s = await setup({ rows: 40, deps: { partBytes: 1_000_000, segmentBytes: 200 } });
    await s.start();
    const [first] = s.queue.fresh();
    if (!first) throw new Error('no part');
    const once = { getRemainingTimeInMillis: () => 60_000 };
    let calls = 0;
    // Time enough for the first chunks, then none: the part continues from its cursor.
    const budget = { getRemainingTimeInMillis: () => (++calls < 3 ? once.getRemainingTimeInMillis() : 0) };
    expect(await handle(s.deps, first, budget)).toMatchObject({ state: 'running', continued: {} });
    const [continuation] = s.queue.fresh();
    if (continuation?.type !== 'batch-part' || !continuation.cursor) throw new Error('no continuation');
    expect(continuation.cursor.segments.length).toBeGreaterThan(0);
    expect(keysUnder(s.objects, 'batch/j/parts/').length).toBeGreaterThan(0);
    await s.objects.put(BATCH_KEYS.input('j'), s.text.replaceAll('"r', '"q'));
    expect(await handle(s.deps, continuation)).toMatchObject({ state: 'failed', code: BATCH_INPUT_CHANGED });
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
  });

  it('an input written again while its start cuts it: the start fails for a retry, which leaves it to the new input', async () => {
    const s = await setup({ rows: 60 });
    let written = false;
    const objects = withMethods(s.objects, {
      getRange: async (...args: Parameters<MemoryRangedObjects['getRange']>) => {
        if (!written) {
          written = true;
          await s.objects.put(BATCH_KEYS.input('j'), inputText(70, 300));
        }
        return s.objects.getRange(...args);
      },
    });
    const eventTag = `etag:${(await s.objects.head(BATCH_KEYS.input('j')))?.eTag}`;
    const start = { input: 'file', eventTag } as const;
    await expect(startBatchJob({ ...s.deps, objects }, 'j', start)).rejects.toBeInstanceOf(
      ObjectChangedError,
    );
    expect(await s.jobs.getJob('j')).toBeUndefined();
    expect(await startBatchJob(s.deps, 'j', start)).toMatchObject({ state: 'skipped' });
    expect(await startBatchJob(s.deps, 'j', { input: 'file' })).toMatchObject({ state: 'running' });
    await drain(s);
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 70 });
  });

  it('never cancels a job that is done', async () => {
    const s = await setup({ rows: 20 });
    await s.start();
    await drain(s);
    expect(await cancelJob(s.objects, s.deps)).toEqual({ state: 'skipped', reason: 'the job is done' });
    expect(statusOf(s.objects).state).toBe('done');
  });

  it('fails the job naming the part when a part fails on its last receive', async () => {
    const s = await setup({ rows: 100 });
    await s.start();
    const plan = JSON.parse(s.objects.text(BATCH_KEYS.plan('j')) ?? '');
    const [m0, m1, ...rest] = s.queue.fresh();
    if (m0?.type !== 'batch-part' || m1?.type !== 'batch-part') throw new Error('no parts');
    await handle(s.deps, m0);
    const p1 = plan.parts[1];
    const result = await failBatchPart(s.deps, m1, 3, new Error('out of memory'));
    const error = `part 1 (batch/j/input.jsonl bytes ${p1.start}-${p1.end}) failed after 3 attempts: out of memory`;
    expect(result).toEqual({ state: 'failed', error, code: BATCH_PART_FAILED });
    expect(statusOf(s.objects)).toMatchObject({
      state: 'failed',
      error,
      code: 'BATCH_PART_FAILED',
      partsDone: 1,
    });
    for (const m of [...rest, ...s.queue.fresh()])
      expect(await handle(s.deps, m)).toMatchObject({ state: 'skipped' });
    expect(s.jobs.aggregationClaims.get('j')).toBeUndefined();
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
    // A second poison part of the same job changes nothing: the first failure stands.
    expect(await failBatchPart(s.deps, m0, 3, new Error('x'))).toMatchObject({ state: 'skipped' });
    expect(statusOf(s.objects).error).toBe(error);
  });

  it('skips a part or an aggregation of a job that does not exist', async () => {
    const s = await setup({ rows: 10 });
    expect(await runBatchPart(s.deps, { jobId: 'j', inputTag: 'etag:x', index: 0 })).toMatchObject({
      state: 'skipped',
    });
    expect(await aggregateBatchJob(s.deps, { jobId: 'j', inputTag: 'etag:x' })).toMatchObject({
      state: 'skipped',
    });
  });
});

describe('batch scoring: a lost batch-aggregate message', () => {
  const isAggregate = (m: WorkMessage) => m.type === 'batch-aggregate';

  it('gives the claim back when its message cannot be sent: the redelivered part sends it, same output', async () => {
    const normal = await setup({ rows: 200 });
    await normal.start();
    await drain(normal);

    const s = await setup({ rows: 200 });
    let failures = 1;
    const deps: BatchScoreDeps = {
      ...s.deps,
      batchQueue: {
        send: async (m) => {
          if (isAggregate(m) && failures-- > 0) throw new Error('SQS is unavailable');
          return s.queue.send(m);
        },
      },
    };
    await s.start();
    const failed = await deliver(s, deps);
    // The part that completed the job claimed the aggregation, could not send it, and failed.
    expect(failed.map((f) => [f.message.type, f.error.message])).toEqual([
      ['batch-part', 'SQS is unavailable'],
    ]);
    const afterFailure = await s.jobs.getJob('j');
    expect(afterFailure?.state).toBe('running');
    expect(afterFailure?.aggregationClaimedAt).toBeUndefined();
    expect(s.queue.sent.filter(isAggregate)).toHaveLength(0);

    // Its redelivery: counted already, it claims and sends the aggregation.
    const message = failed[0]!.message;
    expect(await handle(deps, message)).toMatchObject({ state: 'skipped' });
    expect(await deliver(s, deps)).toEqual([]);
    expect(s.queue.sent.filter(isAggregate)).toHaveLength(1);
    expect(s.jobs.aggregationClaims.get('j')).toBe(2);
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 200 });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(normal.objects.text(BATCH_KEYS.output('j')));
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
  });

  it('takes over a claim older than the lease when its sender died before sending', async () => {
    let t = Date.parse('2026-01-01T00:00:00.000Z');
    const s = await setup({ rows: 120, deps: { clock: { now: () => new Date(t) } } });
    // The sender's invocation dies between the claim and the send: nothing gives the claim back.
    let died = false;
    const deps: BatchScoreDeps = {
      ...s.deps,
      batchQueue: {
        send: async (m) => {
          if (isAggregate(m) && !died) {
            died = true;
            throw new Error('the invocation timed out');
          }
          return s.queue.send(m);
        },
      },
      jobs: withMethods(s.jobs, {
        releaseAggregation: async () => {
          throw new Error('the invocation timed out');
        },
      }),
    };
    await s.start();
    const failed = await deliver(s, deps);
    expect(failed).toHaveLength(1);
    const message = failed[0]!.message;
    expect(await s.jobs.getJob('j')).toMatchObject({
      state: 'running',
      aggregationClaimedAt: new Date(t).toISOString(),
    });

    // A duplicate of the part while the claim is younger than the lease leaves it to its holder.
    t += BATCH.aggregationLeaseMs - 1;
    expect(await handle(deps, message)).toMatchObject({ state: 'skipped' });
    expect(s.queue.fresh()).toEqual([]);

    // The redelivery, a visibility timeout after the receive: the claim is stale, taken over and sent.
    t += QUEUE.visibilityTimeoutSeconds * 1000 - (BATCH.aggregationLeaseMs - 1);
    expect(await handle(deps, message)).toMatchObject({ state: 'skipped' });
    expect(await deliver(s, deps)).toEqual([]);
    expect(s.jobs.aggregationClaims.get('j')).toBe(2);
    expect(s.queue.sent.filter(isAggregate)).toHaveLength(1);
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 120 });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
  });
});

describe('batch scoring: a lost batch-part message', () => {
  type PartMessage = Extract<WorkMessage, { type: 'batch-part' }>;
  const indexes = (ms: WorkMessage[]) => ms.map((m) => (m.type === 'batch-part' ? m.index : m.type));

  /** A job of four parts, `maxConcurrency` in flight, whose queue refuses the first `batch-part` send after the start. */
  async function fourParts(maxConcurrency: number) {
    const rows = 48;
    const s = await setup({
      rows,
      deps: { maxConcurrency, partBytes: Math.ceil(Buffer.byteLength(inputText(rows)) / 4) },
    });
    await s.start();
    expect((await s.jobs.getJob('j'))?.partsTotal).toBe(4);
    let refuse = true;
    const deps: BatchScoreDeps = {
      ...s.deps,
      batchQueue: {
        send: async (m) => {
          if (refuse && m.type === 'batch-part') {
            refuse = false;
            throw new Error('SQS is unavailable');
          }
          return s.queue.send(m);
        },
      },
    };
    return { ...s, deps, rows };
  }

  it('sends again, on the receive after a failed send of the next part, every claimed part not counted', async () => {
    const s = await fourParts(1);
    const [p0] = s.queue.fresh() as PartMessage[];
    // Part 0 is counted and claims part 1, whose send fails: the message fails and SQS delivers it again.
    await expect(runBatchPart(s.deps, p0!)).rejects.toThrow('SQS is unavailable');
    expect(await s.jobs.getJob('j')).toMatchObject({ partsDone: 1, queued: 2 });
    expect(s.queue.fresh()).toEqual([]);
    // Its second receive finds part 0 counted, and part 1 claimed but not counted: part 1 is sent.
    expect(await runBatchPart(s.deps, p0!, undefined, { receiveCount: 2 })).toMatchObject({
      state: 'skipped',
    });
    const resent = s.queue.fresh();
    expect(indexes(resent)).toEqual([1]);
    for (const m of resent) await handle(s.deps, m);
    await drain(s);
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', partsDone: 4, partsTotal: 4, total: s.rows });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    expect(s.jobs.aggregationClaims.get('j')).toBe(1);
  });

  it('a duplicate on its first receive sends nothing again; parts in flight sent twice give the same output', async () => {
    const s = await fourParts(3);
    const first = s.queue.fresh() as PartMessage[];
    expect(indexes(first)).toEqual([0, 1, 2]);
    // Part 0 counted, part 3 claimed, its send refused.
    await expect(runBatchPart(s.deps, first[0]!)).rejects.toThrow('SQS is unavailable');
    // A duplicate of the message on its first receive (SQS delivers a message twice at times): parts 1 and 2 are
    // in flight, nothing shows part 3 lost, nothing is sent — else every duplicate would multiply the parts.
    expect(await runBatchPart(s.deps, first[0]!, undefined, { receiveCount: 1 })).toMatchObject({
      state: 'skipped',
    });
    expect(s.queue.fresh()).toEqual([]);
    // The receive after the failed one sends every claimed part not counted: 1 and 2 (in flight) and 3 (lost).
    await runBatchPart(s.deps, first[0]!, undefined, { receiveCount: 2 });
    const resent = s.queue.fresh();
    expect(indexes(resent)).toEqual([1, 2, 3]);
    // Each of 1 and 2 runs twice (shuffled): counted once, same segments, one aggregation, no more sends.
    for (const m of [...first.slice(1), ...resent].reverse()) await handle(s.deps, m);
    const after = s.queue.fresh();
    expect(after.filter((m) => m.type === 'batch-part')).toEqual([]);
    for (const m of after) await handle(s.deps, m);
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', partsDone: 4, total: s.rows });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    expect(s.jobs.aggregationClaims.get('j')).toBe(1);
    // Parts 1 and 2 wrote their segments twice, the same bytes each time.
    expect([...s.objects.segmentWrites.values()].filter((w) => w.length > 1).length).toBeGreaterThanOrEqual(
      2,
    );
    for (const [key, writes] of s.objects.segmentWrites) {
      for (const w of writes) expect(Buffer.from(w).equals(Buffer.from(writes[0]!)), key).toBe(true);
    }
  });
});

describe('batch scoring: the deadline of a last receive', () => {
  type PartMessage = Extract<WorkMessage, { type: 'batch-part' }>;
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  /** A predictor whose every call takes `ms`. */
  const slow = (ms: number) => fakePredictor({ onCall: () => sleep(ms) });
  /** An invocation that ends `ms` from now. */
  const endingIn = (ms: number) => {
    const end = Date.now() + ms;
    return { getRemainingTimeInMillis: () => end - Date.now() };
  };
  const last = { receiveCount: QUEUE.maxReceiveCount, lastReceive: true };
  // One chunk per part: the first chunk of an invocation always runs, however long it takes.
  const oneChunk = { rowsPerChunk: 1_000, lastReceiveGuardMs: 50 };

  it('ends the job failed, naming the part, when the part still runs shortly before its last invocation ends', async () => {
    // The model answers only once the guard has ended the job (a chunk slower than the whole invocation), so the
    // part carries on after that end however late the timers fire.
    const ended = gate();
    const s = await setup({
      rows: 40,
      predictor: fakePredictor({ onCall: () => ended.opened }),
      deps: oneChunk,
    });
    await s.start();
    const [m0, ...others] = s.queue.fresh() as PartMessage[];
    const told: unknown[] = [];
    // The invocation would be killed at 200 ms (no catch runs then): the job is ended at 150 ms.
    const result = await runBatchPart(s.deps, m0!, endingIn(200), {
      ...last,
      onDeadline: (o) => {
        told.push(o);
        ended.open();
      },
    });
    const p0 = JSON.parse(s.objects.text(BATCH_KEYS.plan('j')) ?? '').parts[0];
    const error =
      `part 0 (batch/j/input.jsonl bytes ${p0.start}-${p0.end}) failed after 3 attempts: ` +
      "the invocation ran out of time (still running 0.05 s before the worker's time limit)";
    expect(told).toEqual([{ result: { state: 'failed', error, code: BATCH_PART_FAILED } }]);
    // The part, ending after that (here, not killed), does not count itself into the failed job: it stays failed.
    expect(result).toEqual({ state: 'skipped', reason: 'the job is failed' });
    expect(await s.jobs.getJob('j')).toMatchObject({ state: 'failed', partsDone: 0, error });
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', code: 'BATCH_PART_FAILED', error });
    expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
    for (const m of [...others, ...s.queue.fresh()]) {
      expect(await handle(s.deps, m)).toMatchObject({ state: 'skipped' });
    }
    expect(statusOf(s.objects)).toMatchObject({ state: 'failed', error });
  });

  it('leaves the job running on an earlier receive (SQS delivers it again), and when the part ends in time', async () => {
    const s = await setup({ rows: 40, predictor: slow(100), deps: oneChunk });
    await s.start();
    const [m0, m1, ...others] = s.queue.fresh() as PartMessage[];
    expect(
      await runBatchPart(s.deps, m0!, endingIn(120), { receiveCount: QUEUE.maxReceiveCount - 1 }),
    ).toMatchObject({ state: 'running', partsDone: 1 });
    // On the last receive, a part that ends well before the guard (at 1 950 ms of 2 000) disarms it: once the
    // invocation's end has passed, the job still runs.
    const budget = endingIn(2_000);
    const told: unknown[] = [];
    expect(
      await runBatchPart({ ...s.deps, predictor: fakePredictor() }, m1!, budget, {
        ...last,
        onDeadline: (o) => told.push(o),
      }),
    ).toMatchObject({ state: 'running', partsDone: 2 });
    await sleep(budget.getRemainingTimeInMillis() + 100);
    expect(told).toEqual([]);
    expect(await s.jobs.getJob('j')).toMatchObject({ state: 'running', partsDone: 2 });
    for (const m of others) await handle(s.deps, m);
    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
  });

  it('does not end the job once the part is counted, though its invocation then runs out of time', async () => {
    const s = await setup({ rows: 40, deps: oneChunk });
    await s.start();
    const [m0] = s.queue.fresh() as PartMessage[];
    // The status write after the count is held while the invocation's end comes and goes: the guard's time comes
    // once the part is counted, and before the part has returned.
    const writing = gate();
    const written = gate();
    const blobs = withMethods(s.objects, {
      put: async (...args: Parameters<MemoryRangedObjects['put']>) => {
        if (args[0] === BATCH_KEYS.status('j')) {
          writing.open();
          await written.opened;
        }
        return s.objects.put(...args);
      },
    });
    holdTheClock();
    try {
      const told: unknown[] = [];
      const running = runBatchPart({ ...s.deps, blobs }, m0!, endingIn(100), {
        ...last,
        onDeadline: (o) => told.push(o),
      });
      await writing.opened;
      expect(await s.jobs.getJob('j')).toMatchObject({ state: 'running', partsDone: 1 });
      vi.advanceTimersByTime(100);
      written.open();
      expect(await running).toMatchObject({ state: 'running', partsDone: 1 });
      expect(told).toEqual([]);
      expect((await s.jobs.getJob('j'))?.state).toBe('running');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('batch scoring: aggregation', () => {
  /** A job of `sizes.length` parts of one segment each, of those sizes, every part done. */
  async function doneParts(sizes: number[], deps: Partial<BatchScoreDeps> = {}) {
    const objects = new MemoryRangedObjects();
    const jobs = new MemoryBatchJobs();
    const queue = new TestQueue();
    const inputTag = 'etag:agg';
    const run = runOfInput(inputTag);
    const at = '2026-01-01T00:00:00.000Z';
    await jobs.createJob({
      jobId: 'j',
      inputTag,
      model: 'm',
      ref: 'prod',
      version: 7,
      partsTotal: sizes.length,
      maxConcurrency: 10,
      partBytes: 1,
      bytesTotal: sizes.length,
      startedAt: at,
      updatedAt: at,
    });
    const expected: Uint8Array[] = [];
    for (const [index, size] of sizes.entries()) {
      // One line per KiB (or less), so each segment holds whole lines and its own rows.
      const body = new Uint8Array(size).fill(0x61 + (index % 26));
      for (let i = 1023; i < size; i += 1024) body[i] = 0x0a;
      if (size) body[size - 1] = 0x0a;
      const rows = Math.ceil(size / 1024);
      await objects.put(BATCH_KEYS.segment('j', run, index, 0, rows), body);
      expected.push(body);
      await jobs.claimNext('j', inputTag);
      await jobs.completePart(
        'j',
        inputTag,
        { index, rows, failedRows: 0, bytes: 1, segments: [{ fromRow: 0, toRow: rows, sizeBytes: size }] },
        at,
      );
    }
    expect(await jobs.claimAggregation('j', inputTag, at, 60_000)).toEqual(expect.any(String));
    const all = Buffer.concat(expected);
    const d: BatchScoreDeps = {
      blobs: objects,
      objects,
      jobs,
      batchQueue: queue,
      predictor: fakePredictor(),
      ...deps,
    };
    return { objects, jobs, deps: d, all, inputTag, prefix: BATCH_KEYS.segments('j', run) };
  }

  const MiB = 1024 * 1024;

  it('copies segments of 5 MiB or more server-side without reading them', async () => {
    const a = await doneParts([S3_MIN_PART_BYTES, 6 * MiB, S3_MIN_PART_BYTES + 1]);
    expect(await aggregateBatchJob(a.deps, { jobId: 'j', inputTag: a.inputTag })).toMatchObject({
      state: 'done',
    });
    expect(a.objects.readsUnder(a.prefix)).toBe(0);
    expect(a.objects.copiedParts).toHaveLength(3);
    expect(a.objects.uploadedParts).toHaveLength(0);
    expect(Buffer.from(a.objects.objects.get(BATCH_KEYS.output('j'))?.body ?? []).equals(a.all)).toBe(true);
    expect(keysUnder(a.objects, a.prefix)).toEqual([]);
    expect((await a.jobs.getJob('j'))?.state).toBe('done');
  });

  it('merges small segments (never a part under 5 MiB but the last) and reads only what it merges', async () => {
    const sizes = [MiB, 2 * MiB, 3 * MiB, 100 * 1024, 6 * MiB, 20 * MiB, 2 * MiB, 12 * MiB, 5];
    const a = await doneParts(sizes);
    await aggregateBatchJob(a.deps, { jobId: 'j', inputTag: a.inputTag });
    // The store refuses a small part that is not the last: completing proves the rule.
    expect(Buffer.from(a.objects.objects.get(BATCH_KEYS.output('j'))?.body ?? []).equals(a.all)).toBe(true);
    expect(a.objects.uploadedParts.slice(0, -1).every((p) => p.bytes >= S3_MIN_PART_BYTES)).toBe(true);
    expect(a.objects.uploadedParts.every((p) => p.bytes < 2 * S3_MIN_PART_BYTES)).toBe(true);
    // The 20 MiB segment (after a full merge) is copied whole, nothing of it read; the 12 MiB one (after a small
    // one) gives the merge the 3 MiB it lacks and the rest of it is copied.
    const run = runOfInput(a.inputTag);
    const big = BATCH_KEYS.segment('j', run, 5, 0, 20 * 1024);
    expect(a.objects.reads.get(big)).toBeUndefined();
    expect(a.objects.copiedParts.some((p) => p.sourceKey === big && p.bytes === 20 * MiB)).toBe(true);
    const topped = BATCH_KEYS.segment('j', run, 7, 0, 12 * 1024);
    expect(a.objects.reads.get(topped)).toBe(1);
    expect(a.objects.copiedParts.some((p) => p.sourceKey === topped && p.bytes === 9 * MiB)).toBe(true);
  });

  it('never asks a range copy of a segment of 5 MiB or less: a small last segment is merged whole', async () => {
    // S3 copies a byte range only of a source greater than 5 MB; the store refuses it as S3 does.
    const small = await doneParts([MiB]);
    await expect(
      small.objects.copyPart(
        'x',
        await small.objects.createMultipart('x', 'text/plain'),
        1,
        BATCH_KEYS.segment('j', runOfInput(small.inputTag), 0, 0, 1024),
        { start: 0, end: 10 },
      ),
    ).rejects.toThrow(/InvalidRequest/);
    // 3 MiB then 4 MiB: one merged part (topping the 3 up from the 4 and copying the rest would be refused).
    const a = await doneParts([3 * MiB, 4 * MiB]);
    expect(await aggregateBatchJob(a.deps, { jobId: 'j', inputTag: a.inputTag })).toMatchObject({
      state: 'done',
    });
    expect(Buffer.from(a.objects.objects.get(BATCH_KEYS.output('j'))?.body ?? []).equals(a.all)).toBe(true);
    expect(a.objects.copiedParts).toEqual([]);
    expect(a.objects.uploadedParts.map((p) => p.bytes)).toEqual([7 * MiB]);
    // A last segment larger than 5 MiB is still topped up from and its rest copied in a range.
    const b = await doneParts([3 * MiB, 6 * MiB]);
    expect(await aggregateBatchJob(b.deps, { jobId: 'j', inputTag: b.inputTag })).toMatchObject({
      state: 'done',
    });
    expect(Buffer.from(b.objects.objects.get(BATCH_KEYS.output('j'))?.body ?? []).equals(b.all)).toBe(true);
    expect(b.objects.uploadedParts.map((p) => p.bytes)).toEqual([S3_MIN_PART_BYTES]);
    expect(b.objects.copiedParts.map((p) => p.bytes)).toEqual([4 * MiB]);
  });

  it('ends the job failed when its assembly still runs shortly before its last invocation ends', async () => {
    const a = await doneParts([MiB, MiB], { lastReceiveGuardMs: 50 });
    // The upload's completion is under way when the invocation's end comes near, and lands only once the guard
    // has ended the job.
    const completing = gate();
    const ended = gate();
    const objects = withMethods(a.objects, {
      completeMultipart: async (...args: Parameters<MemoryRangedObjects['completeMultipart']>) => {
        completing.open();
        await ended.opened;
        return a.objects.completeMultipart(...args);
      },
    });
    holdTheClock();
    let result: BatchRunResult;
    try {
      const end = Date.now() + 200;
      const assembling = aggregateBatchJob(
        { ...a.deps, objects },
        { jobId: 'j', inputTag: a.inputTag },
        { getRemainingTimeInMillis: () => end - Date.now() },
        { receiveCount: QUEUE.maxReceiveCount, lastReceive: true, onDeadline: () => ended.open() },
      );
      await completing.opened;
      vi.advanceTimersByTime(200);
      result = await assembling;
    } finally {
      vi.useRealTimers();
    }
    // The upload completed after the end: the output goes (a failed job has none), the segments stay.
    expect(result).toEqual({ state: 'skipped', reason: 'the job ended meanwhile' });
    expect(await a.jobs.getJob('j')).toMatchObject({
      state: 'failed',
      code: BATCH_AGGREGATION_FAILED,
      error: expect.stringMatching(
        /^the output could not be assembled after 3 attempts: the invocation ran out of time/,
      ),
    });
    expect(a.objects.text(BATCH_KEYS.output('j'))).toBeUndefined();
    expect(keysUnder(a.objects, a.prefix)).toHaveLength(2);
  });

  it('assembles in two levels when one upload cannot hold every part', async () => {
    const a = await doneParts([5 * MiB, 5 * MiB, 5 * MiB, 5 * MiB, 5 * MiB, 3], { maxUploadParts: 4 });
    await aggregateBatchJob(a.deps, { jobId: 'j', inputTag: a.inputTag });
    expect(Buffer.from(a.objects.objects.get(BATCH_KEYS.output('j'))?.body ?? []).equals(a.all)).toBe(true);
    expect(a.objects.readsUnder(a.prefix)).toBeLessThan(3);
    expect(keysUnder(a.objects, a.prefix)).toEqual([]);
    expect(a.objects.openUploads).toBe(0);
  });

  it('removes the output it completed when a cancel ended the job meanwhile', async () => {
    const s = await setup({ rows: 60 });
    const objects = withMethods(s.objects, {
      completeMultipart: async (...args: Parameters<MemoryRangedObjects['completeMultipart']>) => {
        await s.objects.completeMultipart(...args);
        expect(await cancelJob(s.objects, s.deps)).toEqual({ state: 'cancelled' });
      },
    });
    await s.start();
    const results = await drain({ ...s, deps: { ...s.deps, objects } });
    expect(results.at(-1)).toEqual({ state: 'skipped', reason: 'the job ended meanwhile' });
    expect(statusOf(s.objects).state).toBe('cancelled');
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBeUndefined();
  });

  it('aborts the upload when a segment is missing, and leaves the job running for the retry', async () => {
    const a = await doneParts([MiB, MiB]);
    await a.objects.delete(BATCH_KEYS.segment('j', runOfInput(a.inputTag), 1, 0, 1024));
    const message = { jobId: 'j', inputTag: a.inputTag };
    const err = await aggregateBatchJob(a.deps, message).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(a.objects.openUploads).toBe(0);
    expect((await a.jobs.getJob('j'))?.state).toBe('running');
    // Its last receive fails the job.
    const failed = await failBatchAggregate(a.deps, message, 3, err);
    expect(failed).toMatchObject({ state: 'failed', code: BATCH_AGGREGATION_FAILED });
    expect(JSON.parse(a.objects.text(BATCH_KEYS.status('j')) ?? '')).toMatchObject({
      state: 'failed',
      code: 'BATCH_AGGREGATION_FAILED',
      error: expect.stringMatching(/^the output could not be assembled after 3 attempts: /),
    });
    expect(await failBatchAggregate(a.deps, message, 3, err)).toMatchObject({ state: 'skipped' });
  });

  it('gives the assembly lease back when the assembly fails: the retry assembles at once', async () => {
    const a = await doneParts([MiB, MiB]);
    const segment = BATCH_KEYS.segment('j', runOfInput(a.inputTag), 1, 0, 1024);
    const body = a.objects.objects.get(segment)!.body;
    await a.objects.delete(segment);
    const message = { jobId: 'j', inputTag: a.inputTag };
    await expect(aggregateBatchJob(a.deps, message)).rejects.toThrow(/missing/);
    expect((await a.jobs.getJob('j'))?.assemblyLeasedAt).toBeUndefined();
    await a.objects.put(segment, body);
    expect(await aggregateBatchJob(a.deps, message)).toMatchObject({ state: 'done' });
    expect(Buffer.from(a.objects.objects.get(BATCH_KEYS.output('j'))?.body ?? []).equals(a.all)).toBe(true);
    expect(a.jobs.assemblyLeases.get('j')).toBe(2);
  });

  it('lets one of two deliveries of the message at once assemble; the other is skipped and touches no object', async () => {
    const a = await doneParts([6 * MiB, MiB, 20 * MiB, 5]);
    const message = { jobId: 'j', inputTag: a.inputTag };
    const one = counting(a.objects);
    const two = counting(a.objects);
    const results = await Promise.all(
      [one, two].map((c) => aggregateBatchJob({ ...a.deps, blobs: c.proxy, objects: c.proxy }, message)),
    );
    expect(results.map((r) => r.state).sort()).toEqual(['done', 'skipped']);
    const [winner, loser] = results[0]?.state === 'done' ? [one, two] : [two, one];
    expect(results.find((r) => r.state === 'skipped')).toMatchObject({
      reason: expect.stringMatching(/^another delivery is assembling the output/),
    });
    expect(loser.calls).toEqual(new Map());
    expect(winner.calls.get('copyPart')).toBe(a.objects.copiedParts.length);
    expect(winner.calls.get('uploadPart')).toBe(a.objects.uploadedParts.length);
    expect(a.objects.copiedParts.length).toBeGreaterThan(0);
    expect(a.objects.uploadedParts.length).toBeGreaterThan(0);
    expect(a.objects.completed.get(BATCH_KEYS.output('j'))).toBe(1);
    expect(Buffer.from(a.objects.objects.get(BATCH_KEYS.output('j'))?.body ?? []).equals(a.all)).toBe(true);
    expect((await a.jobs.getJob('j'))?.state).toBe('done');
    expect(keysUnder(a.objects, a.prefix)).toEqual([]);
    // A later duplicate finds the job done.
    expect(await aggregateBatchJob(a.deps, message)).toMatchObject({
      state: 'skipped',
      reason: 'the job is done',
    });
  });

  it('completes an assembly whose delivery died holding the lease, once the lease has expired', async () => {
    let t = Date.parse('2026-01-01T00:01:00.000Z');
    const a = await doneParts([S3_MIN_PART_BYTES, 6 * MiB, S3_MIN_PART_BYTES + 1], {
      clock: { now: () => new Date(t) },
    });
    const message = { jobId: 'j', inputTag: a.inputTag };
    // The first delivery takes the lease and dies in its copies (they never answer).
    let wake!: (e: Error) => void;
    const hung = new Promise<never>((_, reject) => {
      wake = reject;
    });
    let copying!: () => void;
    const copied = new Promise<void>((resolve) => {
      copying = resolve;
    });
    const dying = withMethods(a.objects, {
      copyPart: () => {
        copying();
        return hung;
      },
    });
    const first = aggregateBatchJob({ ...a.deps, blobs: dying, objects: dying }, message);
    await copied;
    expect(await a.jobs.getJob('j')).toMatchObject({
      state: 'running',
      assemblyLeasedAt: new Date(t).toISOString(),
    });

    // A redelivery while the lease runs is skipped without touching the bucket.
    t += BATCH.aggregationLeaseMs - 1;
    const early = counting(a.objects);
    expect(
      await aggregateBatchJob({ ...a.deps, blobs: early.proxy, objects: early.proxy }, message),
    ).toMatchObject({
      state: 'skipped',
      reason: expect.stringMatching(/^another delivery is assembling the output/),
    });
    expect(early.calls).toEqual(new Map());

    // Once it has expired, the redelivery takes the lease over and assembles.
    t += 1;
    expect(await aggregateBatchJob(a.deps, message)).toMatchObject({ state: 'done' });
    expect(Buffer.from(a.objects.objects.get(BATCH_KEYS.output('j'))?.body ?? []).equals(a.all)).toBe(true);
    expect(a.objects.completed.get(BATCH_KEYS.output('j'))).toBe(1);
    expect(statusOf(a.objects)).toMatchObject({ state: 'done' });
    expect(keysUnder(a.objects, a.prefix)).toEqual([]);
    expect(a.jobs.assemblyLeases.get('j')).toBe(2);

    // The first delivery, were it to wake, changes nothing: its upload is abandoned, the job stays done.
    wake(new Error('the invocation timed out'));
    expect(await first).toMatchObject({ state: 'skipped', reason: 'the job is done' });
    expect(a.objects.openUploads).toBe(0);
    expect(a.objects.completed.get(BATCH_KEYS.output('j'))).toBe(1);
  });
});

describe('resumeBatchJob: a job whose messages were all lost (the local service stopped)', () => {
  /**
   * Starts a job and delivers `k` of its messages one at a time (every other one out of time, so parts continue
   * from cursors), then loses every message still queued: what a stop does to the in-process queues.
   */
  async function stoppedAfter(k: number) {
    const s = await setup({ rows: 150, deps: { maxConcurrency: 3 } });
    await s.start();
    const pool: WorkMessage[] = [];
    for (let handled = 0; handled < k; handled++) {
      pool.push(...s.queue.fresh());
      const m = pool.shift();
      if (!m) break;
      await handle(s.deps, m, handled % 2 === 1 ? exhausted : undefined);
    }
    s.queue.fresh();
    return s;
  }

  it('finishes the job with the output of an uninterrupted run, wherever it stopped', async () => {
    const total = await stoppedAfter(Number.POSITIVE_INFINITY);
    const messages = total.queue.sent.length;
    expect(statusOf(total.objects)).toMatchObject({ state: 'done' });
    expect(await resumeBatchJob(total.deps, 'j')).toEqual({ kind: 'none' });
    for (let k = 0; k < messages; k++) {
      const s = await stoppedAfter(k);
      const resumed = await resumeBatchJob(s.deps, 'j');
      expect(resumed.kind, `stopped after ${k} messages`).toBe('requeued');
      if (resumed.kind === 'requeued') {
        // At most maxConcurrency parts in flight, never a part counted.
        expect(resumed.parts.length).toBeLessThanOrEqual(3);
        const counted = new Set(
          (await s.jobs.listParts('j', statusOf(s.objects).inputTag)).map((p) => p.index),
        );
        for (const index of resumed.parts) expect(counted.has(index)).toBe(false);
      }
      await drain(s);
      expect(s.objects.text(BATCH_KEYS.output('j')), `stopped after ${k} messages`).toBe(reference(s.text));
      expect(statusOf(s.objects)).toMatchObject({ state: 'done', total: 150 });
      expect(s.objects.completed.get(BATCH_KEYS.output('j'))).toBe(1);
      expect(keysUnder(s.objects, 'batch/j/parts/')).toEqual([]);
      for (const [key, writes] of s.objects.segmentWrites) {
        for (const w of writes)
          expect(Buffer.from(w).equals(Buffer.from(writes[0] as Uint8Array)), key).toBe(true);
      }
    }
  });

  it('takes over the claim and the lease of an assembly that stopped with the service', async () => {
    const s = await setup({ rows: 40 });
    await s.start();
    const pool: WorkMessage[] = [];
    for (;;) {
      pool.push(...s.queue.fresh());
      const m = pool.shift();
      if (!m || m.type === 'batch-aggregate') break;
      await handle(s.deps, m);
    }
    const tag = statusOf(s.objects).inputTag;
    expect(
      await s.jobs.leaseAssembly('j', tag, new Date().toISOString(), BATCH.aggregationLeaseMs),
    ).toBeDefined();
    s.queue.fresh();
    expect(await resumeBatchJob(s.deps, 'j')).toEqual({ kind: 'requeued', parts: [], aggregate: true });
    await drain(s);
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe(reference(s.text));
    expect(statusOf(s.objects)).toMatchObject({ state: 'done' });
  });

  it('ends a running empty job done, and a job without its plan failed', async () => {
    const s = await setup({ rows: 0 });
    const spec = { model: 'm', ref: 'prod', version: 7, maxConcurrency: 1, partBytes: 700, bytesTotal: 0 };
    const at = '2026-01-01T00:00:00.000Z';
    await s.objects.put(
      BATCH_KEYS.plan('j'),
      JSON.stringify({ inputTag: 't0', partBytes: 700, bytesTotal: 0, parts: [] }),
    );
    await s.jobs.createJob({
      ...spec,
      jobId: 'j',
      inputTag: 't0',
      partsTotal: 0,
      startedAt: at,
      updatedAt: at,
    });
    expect(await resumeBatchJob(s.deps, 'j')).toEqual({ kind: 'ended', state: 'done' });
    expect(s.objects.text(BATCH_KEYS.output('j'))).toBe('');
    expect(statusOf(s.objects)).toMatchObject({ state: 'done', partsTotal: 0 });

    await s.jobs.createJob({
      ...spec,
      jobId: 'k',
      inputTag: 't1',
      partsTotal: 2,
      startedAt: at,
      updatedAt: at,
    });
    expect(await resumeBatchJob(s.deps, 'k')).toMatchObject({ kind: 'failed', code: BATCH_NOT_RESUMED });
    expect((await s.jobs.getJob('k'))?.state).toBe('failed');
    expect(s.queue.fresh()).toEqual([]);
  });
});

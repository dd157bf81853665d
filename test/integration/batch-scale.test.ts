/**
 * Batch scoring at scale (issue 16) against DynamoDB Local + s3rver + onnxruntime-node, wired as the worker and
 * the S3 events function are (createEventFlows), with in-process batch queues of a chosen concurrency:
 * - a 200,000-row job in over 20 parts scored by 4 workers at once writes the very bytes the sequential path writes
 *   (the same job with one worker and maxConcurrency 1);
 * - when every output segment has at least S3's 5 MiB part minimum, the aggregation reads no segment: output.jsonl
 *   is made of server-side copies only;
 * - a worker's memory does not grow with the input: the same job scored in a process of its own at 5 MiB and at
 *   52 MiB of input peaks at about the same size.
 * The measured figures are printed (console.info) for the record.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { OrtThreadEngine } from '../../functions/adapters/ort-thread-engine';
import type { BatchScoreDeps } from '../../functions/app/batch-score';
import { registerVersion } from '../../functions/app/registry';
import { SessionCache } from '../../functions/app/session-cache';
import { BATCH_KEYS } from '../../functions/contract/events';
import type { BatchStatus } from '../../functions/domain/batch';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import { createEventFlows, type EventFlows } from '../../functions/handlers/event-deps';
import { createS3EventsHandler } from '../../functions/handlers/s3-events';
import { InProcessQueue } from '../../functions/local/in-process-queue';
import { buildMlp, buildModel, ElemType } from '../../functions/local/onnx-builder';
import { S3_MIN_PART_BYTES } from '../../functions/ports/batch';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import type { RssChildOptions, RssChildReport } from '../helpers/batch-rss-child';
import { s3Event } from '../helpers/events-fakes';
import { addConstant } from '../helpers/predict-env';
import { silentLogger } from '../helpers/recording-logger';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const MiB = 1024 * 1024;
const ROWS = 200_000;
/** Features of the wide rows (about 2.4 KB a line: many bytes in few rows). */
const WIDE = 256;

/**
 * How much more a worker's peak may take at 52 MiB of input than at 5 MiB (47 MiB more input): resident size, and
 * the JavaScript side's live bytes (heapUsed + arrayBuffers after a full collection). A worker that held its input
 * would take at least the input's growth more, 47 MiB, and about twice that once decoded (the previous design read
 * input.jsonl whole, then split its text). One that streams holds a chunk of lines and its part's output segment,
 * the same at both sizes; what still differs is what a run ten times longer leaves to the allocator and to V8 (pages
 * kept, code optimised): 8 to 12 MiB of resident size and 2 to 5 MiB of live bytes measured here. The bounds leave
 * room for that, and stay far under the input's growth: 20 MiB (under half of it), 12 MiB (a quarter). The same
 * measure of a worker made to keep the chunks it streamed (and nothing more) gave +52 MiB and +49 MiB.
 */
const RSS_GROWTH_BOUND = 20 * MiB;
const LIVE_GROWTH_BOUND = 12 * MiB;
/** The young generation of the worker processes, fixed (see test/helpers/batch-rss-child.ts). */
const SEMI_SPACE_MB = 16;

/** The lines the model does not answer, each for its own reason (their error lines must match too). */
const refused = (i: number) => i % 10_007 === 11 || i % 9_973 === 13 || i % 8_191 === 17;

function inputLine(i: number): string {
  if (i % 10_007 === 11) return '{"id": "broken", "inputs": [';
  if (i % 9_973 === 13) return '';
  const id = `r${i}`;
  // Every 7th row stacks two rows (batch dim 2): rows of different sizes share ORT runs.
  const data = i % 7 === 0 ? [i, -i, 0.5, i / 4] : [i, -i];
  const shape = i % 7 === 0 ? [2, 2] : [1, 2];
  const name = i % 8_191 === 17 ? 'nope' : 'x';
  return JSON.stringify({ id, inputs: [{ name, shape, datatype: 'FP32', data }] });
}

function inputText(rows: number): string {
  const lines: string[] = new Array(rows);
  for (let i = 0; i < rows; i++) lines[i] = inputLine(i);
  return `${lines.join('\n')}\n`;
}

/** JSONL of at least `bytes`, rows of WIDE features for input `input`. */
function wideInput(bytes: number): Buffer {
  const pool = Array.from({ length: 61 }, (_, k) =>
    Array.from({ length: WIDE }, (_, j) =>
      (((k * 7919 + j * 104_729) % 2_000_001) / 1e6 - 1).toFixed(6),
    ).join(','),
  );
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `{"id":"w${i}","inputs":[{"name":"input","shape":[1,${WIDE}],"datatype":"FP32","data":[${pool[i % pool.length]}]}]}`;
    lines.push(line);
    size += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8');
}

/** Fan-out: `y = Tile(x, [1, FAN])` on FP32, `[batch, 8]` -> `[batch, 8 * FAN]`: short rows, long answers. */
const FAN = 64;
function fanOut(): Uint8Array {
  return buildModel({
    name: 'fan-out',
    inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 8] }],
    outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', 8 * FAN] }],
    initializers: [{ name: 'repeats', elemType: ElemType.INT64, dims: [2], int64s: [1, FAN] }],
    nodes: [{ opType: 'Tile', inputs: ['x', 'repeats'], outputs: ['y'] }],
  });
}

/** `rows` lines of one length each (`lineBytes`) for the fan-out model, of 7-digit values (exact in FP32). */
function fanOutInput(rows: number): { input: Buffer; lineBytes: number } {
  const lines = Array.from({ length: rows }, (_, i) => {
    const data = Array.from({ length: 8 }, (_, k) => 1_000_000 + ((i * 8 + k) % 9_000_000));
    return JSON.stringify({
      id: `f${String(i).padStart(6, '0')}`,
      inputs: [{ name: 'x', shape: [1, 8], datatype: 'FP32', data }],
    });
  });
  return { input: Buffer.from(`${lines.join('\n')}\n`, 'utf8'), lineBytes: (lines[0]?.length ?? 0) + 1 };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

/** What the flows read of a job's part objects (bodies), and how many of them they copied server-side. */
interface PartAccess {
  gets: number;
  copies: number;
}

/** `target` with its reads (get, getRange, streamRange) and copies of keys under `batch/{jobId}/parts/` counted. */
function counting<T extends object>(target: T, access: Map<string, PartAccess>): T {
  const jobOf = (key: unknown) =>
    typeof key === 'string' ? /^batch\/([^/]+)\/parts\//.exec(key)?.[1] : undefined;
  const count = (jobId: string | undefined, what: keyof PartAccess) => {
    if (!jobId) return;
    const a = access.get(jobId) ?? { gets: 0, copies: 0 };
    a[what]++;
    access.set(jobId, a);
  };
  return new Proxy(target, {
    get(t, prop, receiver) {
      const value = Reflect.get(t, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (prop === 'get' || prop === 'getRange' || prop === 'streamRange') count(jobOf(args[0]), 'gets');
        // copyPart(key, uploadId, partNumber, sourceKey, range?)
        if (prop === 'copyPart') count(jobOf(args[3]), 'copies');
        return value.apply(t, args);
      };
    },
  });
}

let aws: TestAwsEnv;
let flows: EventFlows;
let sessions: SessionCache;
let batch: BatchScoreDeps;
const access = new Map<string, PartAccess>();

beforeAll(async () => {
  aws = await createTestAwsEnv('batchscale');
  sessions = new SessionCache({ engine: new OrtThreadEngine() });
  flows = createEventFlows({
    table: aws.table,
    bucket: aws.bucket,
    doc: aws.doc,
    s3: aws.s3,
    // Unused: each job runs on a batch queue of its own.
    queue: new InProcessQueue(),
    inspector: new OrtModelInspector(),
    sessions,
  });
  batch = {
    ...flows.batch,
    objects: counting(flows.batch.objects, access),
    blobs: counting(flows.batch.blobs, access),
  };
  const registry = flows.registry;
  if (!registry) throw new Error('registry deps are not wired');
  for (const [name, bytes] of [
    ['adder', addConstant(1)],
    ['fan-out', fanOut()],
    ['wide', buildMlp({ inFeatures: WIDE, layers: [1], seed: 3 })],
  ] as const) {
    await put(`uploads/${name}/a.onnx`, bytes);
    await registerVersion(registry, { name, sourceKey: `uploads/${name}/a.onnx` });
  }
});

afterAll(async () => {
  await sessions?.close();
  await aws?.dispose();
});

/** Puts an object; resolves with its ETag. */
async function put(key: string, body: Uint8Array | string): Promise<string | undefined> {
  await aws.s3.send(new PutObjectCommand({ Bucket: aws.bucket, Key: key, Body: body }));
  const head = await aws.s3.send(new HeadObjectCommand({ Bucket: aws.bucket, Key: key }));
  return head.ETag?.replaceAll('"', '');
}

interface JobRun {
  output: Buffer;
  status: BatchStatus;
  peakInFlight: number;
  ms: number;
}

/**
 * Runs job `jobId` as the stack does: the S3 event of its input.jsonl starts it, and a batch queue delivering one
 * message per invocation to `concurrency` invocations at once scores its parts and assembles the output.
 */
async function runJob(
  jobId: string,
  input: Buffer,
  spec: { model: string; partBytes: number; maxConcurrency: number },
  concurrency: number,
): Promise<JobRun> {
  const queue = new InProcessQueue({
    queueName: 'maas-batch',
    batchSize: 1,
    concurrency,
    visibilityTimeoutMs: 50,
  });
  const deps = { ...flows, batch: { ...batch, batchQueue: queue }, logger: silentLogger };
  queue.attach(createAsyncWorkerHandler(deps));
  await put(BATCH_KEYS.job(jobId), JSON.stringify(spec));
  const eTag = await put(BATCH_KEYS.input(jobId), input);
  const t0 = performance.now();
  const [started] = await createS3EventsHandler(deps)(
    s3Event(aws.bucket, BATCH_KEYS.input(jobId), eTag, input.length),
  );
  expect(started).toMatchObject({ kind: 'batch', state: 'running' });
  await queue.drain();
  const ms = performance.now() - t0;
  queue.detach();
  expect(queue.stats.deadLettered).toBe(0);
  const status = JSON.parse(
    new TextDecoder().decode(await flows.batch.blobs.get(BATCH_KEYS.status(jobId))),
  ) as BatchStatus;
  const output = Buffer.from((await flows.batch.blobs.get(BATCH_KEYS.output(jobId))) ?? new Uint8Array());
  return { output, status, peakInFlight: queue.stats.peakInFlight, ms };
}

describe('batch scoring at scale', () => {
  it(`scores ${ROWS} rows in over 20 parts with 4 workers at once, byte-identical to the sequential path`, async () => {
    const input = Buffer.from(inputText(ROWS), 'utf8');
    // About 24 parts of 800 KiB, whose segments (under 5 MiB) the aggregation merges. The two jobs run at the same
    // time (each on its own queue): the sequential one waits on the emulators while the other scores.
    const spec = { model: 'adder', partBytes: 800 * 1024 };
    const [parallel, sequential] = await Promise.all([
      runJob('parallel', input, { ...spec, maxConcurrency: 8 }, 4),
      runJob('sequential', input, { ...spec, maxConcurrency: 1 }, 1),
    ]);
    console.info(
      `batch-scale: ${ROWS} rows, ${mib(input.length)} in ${parallel.status.partsTotal} parts -> ${mib(parallel.output.length)} ` +
        `(sha256 ${sha(parallel.output)}); 4 workers (peak ${parallel.peakInFlight} in flight) ${seconds(parallel.ms)}, ` +
        `1 worker ${seconds(sequential.ms)}, both at once`,
    );

    expect(parallel.status.partsTotal).toBeGreaterThanOrEqual(20);
    expect(parallel.peakInFlight).toBeGreaterThanOrEqual(4);
    expect(sequential.peakInFlight).toBe(1);
    let failed = 0;
    for (let i = 0; i < ROWS; i++) if (refused(i)) failed++;
    for (const run of [parallel, sequential]) {
      expect(run.status).toMatchObject({
        state: 'done',
        total: ROWS,
        failed,
        succeeded: ROWS - failed,
        partsDone: parallel.status.partsTotal,
        partsTotal: parallel.status.partsTotal,
      });
    }
    expect(parallel.output.equals(sequential.output)).toBe(true);

    // Output line n answers input line n.
    const lines = parallel.output.toString('utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(ROWS);
    for (const i of [0, 1, 7, 11, 13, 17, 99_999, 123_457, ROWS - 1]) {
      const row = JSON.parse(lines[i] as string);
      if (i === 11) expect(row).toMatchObject({ code: 'MALFORMED_JSON' });
      else if (i === 13) expect(row).toMatchObject({ code: 'EMPTY_LINE' });
      else if (i === 17) expect(row).toMatchObject({ code: 'UNKNOWN_INPUT' });
      else {
        expect(row.id, `line ${i}`).toBe(`r${i}`);
        expect(row.outputs[0].data.slice(0, 2), `line ${i}`).toEqual([i + 1, -i + 1]);
      }
    }
    // Segments under 5 MiB are merged, which reads them: the counter sees reads where there are some.
    expect(access.get('parallel')?.gets ?? 0).toBeGreaterThan(0);
  });

  it('assembles output.jsonl from server-side copies only, reading no segment, when every segment has 5 MiB', async () => {
    // Four parts of 1,400 rows whose answers take about 4 KiB each (512 values of 8 bytes): one segment of 5.6 MiB per part.
    const rowsPerPart = 1_400;
    const { input, lineBytes } = fanOutInput(4 * rowsPerPart);
    const spec = { model: 'fan-out', partBytes: rowsPerPart * lineBytes, maxConcurrency: 4 };
    const [run, onePart] = await Promise.all([
      runJob('copies', input, spec, 4),
      // The same rows in one part, whose single segment is copied too: the output does not depend on the cut.
      runJob('one-part', input, { ...spec, partBytes: input.length }, 1),
    ]);
    const parts = await flows.batch.jobs.listParts('copies', run.status.inputTag ?? '');
    const sizes = parts.flatMap((p) => p.segments.map((s) => s.sizeBytes));
    console.info(
      `batch-scale: ${4 * rowsPerPart} rows in ${parts.length} parts -> segments of ${sizes.map(mib).join(', ')}; ` +
        `part objects read ${access.get('copies')?.gets ?? 0}, copied ${access.get('copies')?.copies ?? 0}; ${seconds(run.ms)}`,
    );
    expect(parts.length).toBe(4);
    for (const s of sizes) expect(s).toBeGreaterThanOrEqual(S3_MIN_PART_BYTES);
    expect(access.get('copies')).toEqual({ gets: 0, copies: sizes.length });
    expect(access.get('one-part')).toEqual({ gets: 0, copies: 1 });
    expect(run.status).toMatchObject({ state: 'done', total: 4 * rowsPerPart, failed: 0, partsTotal: 4 });
    expect(run.output.length).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(run.output.equals(onePart.output)).toBe(true);
    const last = JSON.parse(run.output.toString('utf8').split('\n').at(-2) as string);
    expect(last.id).toBe(`f${String(4 * rowsPerPart - 1).padStart(6, '0')}`);
    expect(last.outputs[0].data).toHaveLength(8 * FAN);
  });

  it("bounds a worker's memory by its part, not its input: 5 MiB and 52 MiB inputs peak alike", async () => {
    // One worker, one part at a time, parts of 4 MiB: 2 parts of the small input, 13 of the large one.
    const spec = JSON.stringify({ model: 'wide', partBytes: 4 * MiB, maxConcurrency: 1 });
    const small = wideInput(5 * MiB);
    const large = wideInput(52 * MiB);
    const warm = wideInput(2 * MiB);
    expect(large.length).toBeGreaterThanOrEqual(10 * small.length);
    await Promise.all(
      (
        [
          ['warm-small', warm],
          ['warm-large', warm],
          ['small', small],
          ['large', large],
        ] as const
      ).map(async ([jobId, body]) => {
        await put(BATCH_KEYS.job(jobId), spec);
        await put(BATCH_KEYS.input(jobId), body);
      }),
    );
    const child = (jobId: string, warmJobId: string) =>
      runChild({
        dynamoEndpoint: aws.dynamoEndpoint,
        s3Endpoint: aws.s3Endpoint,
        table: aws.table,
        bucket: aws.bucket,
        warmJobId,
        jobId,
      });
    // Each worker in a process of its own, both at once (their peaks are their own).
    const [s, l] = await Promise.all([child('small', 'warm-small'), child('large', 'warm-large')]);
    for (const r of [s, l]) {
      console.info(
        `batch-scale: worker process, ${mib(r.bytesTotal)} input, ${r.rows} rows, ${r.partsTotal} parts, ${seconds(r.ms)}: ` +
          `rss ${mib(r.baseline.rss)} -> peak ${mib(r.peak.rss)}; live heapUsed+arrayBuffers ` +
          `${mib(r.baseline.heapUsed + r.baseline.arrayBuffers)} -> peak ${mib(r.peakLive)} (${r.chunkSamples} chunks, ${r.samples} samples)`,
      );
    }
    const growth = {
      input: l.bytesTotal - s.bytesTotal,
      rss: l.peak.rss - s.peak.rss,
      live: l.peakLive - s.peakLive,
    };
    const signed = (n: number) => `${n < 0 ? '-' : '+'}${mib(Math.abs(n))}`;
    console.info(
      `batch-scale: input ${signed(growth.input)} -> peak rss ${signed(growth.rss)}, ` +
        `peak live heapUsed+arrayBuffers ${signed(growth.live)} (bounds ${mib(RSS_GROWTH_BOUND)}, ${mib(LIVE_GROWTH_BOUND)})`,
    );
    expect(s.partsTotal).toBe(2);
    expect(l.partsTotal).toBe(13);
    expect(growth.input).toBeGreaterThan(45 * MiB);
    expect(growth.rss).toBeLessThan(RSS_GROWTH_BOUND);
    expect(growth.live).toBeLessThan(LIVE_GROWTH_BOUND);
  });
});

/** Runs test/helpers/batch-rss-child.ts in a fresh Node.js process; resolves with its report. */
function runChild(o: RssChildOptions): Promise<RssChildReport> {
  return new Promise((res, rej) => {
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        `--min-semi-space-size=${SEMI_SPACE_MB}`,
        `--max-semi-space-size=${SEMI_SPACE_MB}`,
        '--import',
        'tsx',
        resolve(ROOT, 'test/helpers/batch-rss-child.ts'),
      ],
      {
        cwd: ROOT,
        env: { ...process.env, BATCH_RSS_CHILD: JSON.stringify(o), NODE_NO_WARNINGS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', rej);
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{')) {
        rej(new Error(`the worker process exited ${code}: ${err.slice(-2000)}${out.slice(-500)}`));
        return;
      }
      res(JSON.parse(last) as RssChildReport);
    });
  });
}

/**
 * Batch scoring benchmark (issue 16), on the bench MLP (512-1024-512-10, `buildMlp` as bench/run.ts builds it):
 *   - `batchOverRaw`: rows/s of one worker scoring a part — `runBatchPart` over the in-memory ports
 *     (MemoryRangedObjects, MemoryBatchJobs) with the real predictor on onnxruntime-node in a thread of its own, as
 *     the worker function scores (OrtThreadEngine) — over rows/s of raw batched `session.run` of the same rows on
 *     this thread: a session of the same bytes and options, BATCH.ortBatchRows rows a run, as the predictor stacks
 *     them. Interleaved repeats in turning orders, medians; a collection of the young generation before each timed
 *     run (untimed), so that none pays for the garbage of the one before (not a full one: see `collector`).
 *     Target ≥ 0.8.
 *   - `batchCeilingOverRaw`: the same part scored by the same code over an engine whose runs cost nothing (they
 *     answer at once with outputs of the model's shape, every value the float32 nearest 0.1234567, so that the
 *     answers' text is as long as the model's), over the same raw rows/s: the bound the part's own work (reading,
 *     scanning, answering, writing) puts on `batchOverRaw` on this machine, whatever the model costs. Interleaved
 *     with the two above.
 *   - `batchLocalRowsPerSecond`: rows/s of a job over the same rows run locally as `maas dev` runs it: DynamoDB
 *     Local + s3rver + an in-process batch queue of BATCH.maxConcurrency invocations at once, from the start of the
 *     job (partition) to its output assembled; parts sized for two parts a worker.
 * Used by bench/run.ts (`npm run bench`); `npx tsx bench/batch.ts [--json]` runs it alone (emulators of its own).
 */
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import ort from 'onnxruntime-node';
import { MemoryBatchJobs, MemoryRangedObjects } from '../functions/adapters/memory-batch';
import { MemoryRegistryRepository } from '../functions/adapters/memory-registry';
import { OrtEngine, ortSessionOptions } from '../functions/adapters/ort-engine';
import { OrtModelInspector } from '../functions/adapters/ort-inspector';
import { OrtThreadEngine } from '../functions/adapters/ort-thread-engine';
import { type BatchScoreDeps, runBatchPart, startBatchJob } from '../functions/app/batch-score';
import { createPredictor, type Predictor } from '../functions/app/predict';
import { registerVersion } from '../functions/app/registry';
import { SessionCache } from '../functions/app/session-cache';
import { S3_KEYS } from '../functions/contract/env';
import { BATCH, BATCH_KEYS } from '../functions/contract/events';
import type { WorkMessage } from '../functions/domain/async';
import type { BatchStatus } from '../functions/domain/batch';
import type { Tensor } from '../functions/domain/tensor';
import { createAsyncWorkerHandler } from '../functions/handlers/async-worker';
import { createEventFlows } from '../functions/handlers/event-deps';
import { InProcessQueue } from '../functions/local/in-process-queue';
import { buildMlp, seededRandom } from '../functions/local/onnx-builder';
import type { InferenceEngine, ModelSession } from '../functions/ports/inference';
import { MemoryArtifactStore } from '../test/helpers/memory-artifact-store';
import { silentLogger } from '../test/helpers/recording-logger';
import { startBenchEmulators } from './emulators';

/** The bench MLP, as bench/run.ts builds it. */
export const BENCH_MLP = { inFeatures: 512, layers: [1024, 512, 10], seed: 2 } as const;

export interface BatchRows {
  /** The JSONL of the rows (one OIP request of shape [1, inFeatures] a line). */
  readonly jsonl: Buffer;
  /** The same values, row-major. */
  readonly values: Float32Array;
  readonly rows: number;
  readonly inFeatures: number;
}

/** `rows` requests of `inFeatures` values in [-1, 1] with 6 decimals (as bench/run.ts's request bodies). */
export function batchRows(rows: number, inFeatures: number = BENCH_MLP.inFeatures, seed = 16): BatchRows {
  const rand = seededRandom(seed);
  const values = new Float32Array(rows * inFeatures);
  const lines: string[] = new Array(rows);
  for (let r = 0; r < rows; r++) {
    const data: number[] = new Array(inFeatures);
    for (let j = 0; j < inFeatures; j++) {
      const v = Math.round((rand() * 2 - 1) * 1e6) / 1e6;
      data[j] = v;
      values[r * inFeatures + j] = v;
    }
    lines[r] = JSON.stringify({
      id: `r${r}`,
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, inFeatures], data }],
    });
  }
  return { jsonl: Buffer.from(`${lines.join('\n')}\n`, 'utf8'), values, rows, inFeatures };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * A collection of the young generation, untimed (`gc` without --expose-gc: the flag set at run time, the function
 * from a new context). Not a full collection: after a forced full one, V8 compiled the part's functions again
 * (23–31 TurboFan compilations in each timed part, against 0–4 after a young-generation collection or none; about
 * half as many when the part's row scanners outlived the collection; batchOverRaw
 * 0.30–0.35 against 0.45–0.54, docs/performance.md), which no worker does: nothing forces a collection there, and
 * raw `session.run` has almost no JavaScript to lose.
 */
function collector(): () => void {
  type Gc = (options?: { type: 'minor' | 'major' }) => void;
  let gc = (globalThis as { gc?: Gc }).gc;
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as Gc;
  }
  const exposed = gc;
  return () => exposed({ type: 'minor' });
}

export interface BatchOverRawResult {
  readonly rows: number;
  readonly inputBytes: number;
  readonly repeats: number;
  /** Median rows/s of one worker scoring the part (runBatchPart, in-memory ports). */
  readonly partRowsPerSecond: number;
  /** Median rows/s of raw `session.run` on the same rows, BATCH.ortBatchRows a run. */
  readonly rawRowsPerSecond: number;
  readonly batchOverRaw: number;
  /** Median rows/s of the same part over an engine whose runs cost nothing (`InstantEngine`). */
  readonly ceilingRowsPerSecond: number;
  readonly batchCeilingOverRaw: number;
  /** Every timed run, rows/s, in the order run. */
  readonly partRuns: number[];
  readonly rawRuns: number[];
  readonly ceilingRuns: number[];
}

export interface BatchOverRawOptions {
  readonly data: BatchRows;
  /** The model (input `input` of [batch, data.inFeatures]). @default the bench MLP */
  readonly modelBytes?: Uint8Array;
  /** Timed runs of each. @default 5 */
  readonly repeats?: number;
  /** Intra-op threads of the session. @default 1 (the predict path's and bench/run.ts's) */
  readonly threads?: number;
  /** Called with each timed run (what, rows/s). */
  readonly onRun?: (what: ScoredBy, rowsPerSecond: number) => void;
}

/** What scores the rows of a timed run: the part on onnxruntime, raw `session.run`, the part on `InstantEngine`. */
type ScoredBy = 'part' | 'raw' | 'ceiling';

/**
 * An engine whose runs cost nothing: sessions are created by `sessions` (their names are the model's), and a run
 * answers at once, every output `[rows, width]` of float32 0.1234567 (its shortest text has as many digits as a
 * model's outputs usually have). Bench only: what a part costs besides its model.
 */
class InstantEngine implements InferenceEngine {
  constructor(
    private readonly sessions: InferenceEngine,
    private readonly width: number,
  ) {}
  createSession(bytes: Uint8Array): Promise<ModelSession> {
    return this.sessions.createSession(bytes);
  }
  release(session: ModelSession): Promise<void> {
    return this.sessions.release(session);
  }
  async run(
    _session: ModelSession,
    feeds: Readonly<Record<string, Tensor>>,
    outputNames: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const rows = Object.values(feeds)[0]?.shape[0] ?? 1;
    const out: Record<string, Tensor> = {};
    for (const name of outputNames) {
      out[name] = {
        datatype: 'FP32',
        shape: [rows, this.width],
        data: new Float32Array(rows * this.width).fill(0.1234567),
      };
    }
    return out;
  }
}

/** The orders of the timed runs of a repeat, in turn: every one of the three before and after each other one. */
const ORDERS: readonly (readonly ScoredBy[])[] = [
  ['raw', 'part', 'ceiling'],
  ['ceiling', 'part', 'raw'],
  ['part', 'raw', 'ceiling'],
  ['ceiling', 'raw', 'part'],
  ['raw', 'ceiling', 'part'],
  ['part', 'ceiling', 'raw'],
];

/** `batchOverRaw` and `batchCeilingOverRaw` (see the module comment). */
export async function measureBatchOverRaw(o: BatchOverRawOptions): Promise<BatchOverRawResult> {
  const modelBytes = o.modelBytes ?? buildMlp(BENCH_MLP);
  const repeats = o.repeats ?? 5;
  const { data } = o;
  // The part scores as the worker function does: onnxruntime in a thread of its own (event-deps.ts).
  const engine = new OrtThreadEngine({ threads: o.threads ?? 1 });
  const sessions = new SessionCache({ engine });
  const mainEngine = new OrtEngine({ threads: o.threads ?? 1 });
  const instantSessions = new SessionCache({
    engine: new InstantEngine(mainEngine, BENCH_MLP.layers[BENCH_MLP.layers.length - 1]!),
  });
  const repo = new MemoryRegistryRepository();
  const store = new MemoryArtifactStore();
  const sourceKey = S3_KEYS.upload('bench-batch', 'bench');
  await store.putObject(sourceKey, modelBytes);
  await registerVersion({ repo, store, inspector: new OrtModelInspector() }, { name: 'mlp', sourceKey });
  const predictor = createPredictor({ repo, store, sessions, maxBatchRows: BATCH.ortBatchRows });
  const instantPredictor = createPredictor({
    repo,
    store,
    sessions: instantSessions,
    maxBatchRows: BATCH.ortBatchRows,
  });

  const objects = new MemoryRangedObjects();
  const jobs = new MemoryBatchJobs();
  const sent: WorkMessage[] = [];
  const deps: BatchScoreDeps = {
    blobs: objects,
    objects,
    jobs,
    predictor,
    batchQueue: {
      async send(m) {
        sent.push(m);
        return String(sent.length);
      },
    },
  };
  // One part holds every row.
  const partBytes = Math.min(BATCH.maxPartBytes, Math.max(BATCH.minPartBytes, data.jsonl.length));
  const collect = collector();
  let jobCount = 0;
  /** A fresh job over the rows, started (untimed); resolves with what its one part message says. */
  const freshJob = async () => {
    const jobId = `bench-${jobCount++}`;
    for (const key of [...objects.objects.keys()]) if (!key.endsWith('job.json')) objects.objects.delete(key);
    await objects.put(BATCH_KEYS.job(jobId), JSON.stringify({ model: 'mlp', partBytes, maxConcurrency: 1 }));
    await objects.put(BATCH_KEYS.input(jobId), data.jsonl);
    sent.length = 0;
    const started = await startBatchJob(deps, jobId, { input: 'file' });
    const part = sent.find((m) => m.type === 'batch-part');
    if (started.state !== 'running' || !part || part.type !== 'batch-part' || part.index !== 0) {
      throw new Error(`the bench job did not start with one part: ${JSON.stringify(started)}`);
    }
    const { type: _type, ...message } = part;
    return message;
  };
  const scorePart = async (on: Predictor) => {
    const message = await freshJob();
    collect();
    const t0 = performance.now();
    const result = await runBatchPart({ ...deps, predictor: on }, message);
    const ms = performance.now() - t0;
    if (result.state !== 'running' || result.partsDone !== 1) {
      throw new Error(`the bench part did not complete: ${JSON.stringify(result)}`);
    }
    return (data.rows / ms) * 1000;
  };

  // The predictor's session is in the scoring thread; raw runs a session of the same bytes and options on this one.
  await predictor.preload('mlp');
  await instantPredictor.preload('mlp');
  const session = await ort.InferenceSession.create(
    modelBytes,
    ortSessionOptions({ threads: o.threads ?? 1 }),
  );
  const feeds: Record<string, ort.Tensor>[] = [];
  for (let r = 0; r < data.rows; r += BATCH.ortBatchRows) {
    const n = Math.min(BATCH.ortBatchRows, data.rows - r);
    const slice = data.values.subarray(r * data.inFeatures, (r + n) * data.inFeatures);
    feeds.push({ input: new ort.Tensor('float32', slice, [n, data.inFeatures]) });
  }
  const scoreRaw = async () => {
    collect();
    const t0 = performance.now();
    for (const f of feeds) await session.run(f);
    const ms = performance.now() - t0;
    return (data.rows / ms) * 1000;
  };

  const score: Record<ScoredBy, () => Promise<number>> = {
    raw: scoreRaw,
    part: () => scorePart(predictor),
    ceiling: () => scorePart(instantPredictor),
  };
  // Untimed first runs: the session's first runs, the JIT of the part's code.
  for (const what of ['raw', 'part', 'ceiling'] as const) await score[what]();
  const runs: Record<ScoredBy, number[]> = { raw: [], part: [], ceiling: [] };
  for (let i = 0; i < repeats; i++) {
    // Each repeat in a new order of the three, so that each follows the others as often.
    const order = ORDERS[i % ORDERS.length]!;
    for (const what of order) {
      const rowsPerSecond = await score[what]();
      runs[what].push(round(rowsPerSecond, 1));
      o.onRun?.(what, rowsPerSecond);
    }
  }
  await sessions.close();
  await instantSessions.close();
  await engine.close();
  await session.release();
  const partRowsPerSecond = median(runs.part);
  const rawRowsPerSecond = median(runs.raw);
  const ceilingRowsPerSecond = median(runs.ceiling);
  return {
    rows: data.rows,
    inputBytes: data.jsonl.length,
    repeats,
    partRowsPerSecond: round(partRowsPerSecond, 1),
    rawRowsPerSecond: round(rawRowsPerSecond, 1),
    batchOverRaw: round(partRowsPerSecond / rawRowsPerSecond),
    ceilingRowsPerSecond: round(ceilingRowsPerSecond, 1),
    batchCeilingOverRaw: round(ceilingRowsPerSecond / rawRowsPerSecond),
    partRuns: runs.part,
    rawRuns: runs.raw,
    ceilingRuns: runs.ceiling,
  };
}

export interface BatchLocalResult {
  readonly rows: number;
  readonly inputBytes: number;
  readonly parts: number;
  readonly partBytes: number;
  readonly concurrency: number;
  /** Most worker invocations that ran at once. */
  readonly peakInFlight: number;
  readonly seconds: number;
  readonly rowsPerSecond: number;
}

export interface BatchLocalOptions {
  readonly data: BatchRows;
  readonly doc: DynamoDBDocumentClient;
  readonly s3: S3Client;
  readonly table: string;
  readonly bucket: string;
  /** @default the bench MLP */
  readonly modelBytes?: Uint8Array;
  /** The model's name in the registry. @default 'bench-batch' */
  readonly name?: string;
  /** @default BATCH.maxConcurrency */
  readonly concurrency?: number;
  /** @default 1 */
  readonly threads?: number;
}

/** `batchLocalRowsPerSecond` (see the module comment). */
export async function measureBatchLocal(o: BatchLocalOptions): Promise<BatchLocalResult> {
  const name = o.name ?? 'bench-batch';
  const concurrency = o.concurrency ?? BATCH.maxConcurrency;
  // As `maas dev` scores batch parts: onnxruntime in a thread of its own (functions/local/compose.ts).
  const engine = new OrtThreadEngine({ threads: o.threads ?? 1 });
  const sessions = new SessionCache({ engine });
  const batchQueue = new InProcessQueue({ queueName: 'maas-batch', batchSize: 1, concurrency });
  const flows = createEventFlows({
    table: o.table,
    bucket: o.bucket,
    doc: o.doc,
    s3: o.s3,
    queue: new InProcessQueue(),
    batchQueue,
    sessions,
    inspector: new OrtModelInspector(),
  });
  const registry = flows.registry;
  if (!registry) throw new Error('the registry is not wired');
  const sourceKey = S3_KEYS.upload(name, 'bench-batch');
  await flows.batch.blobs.put(sourceKey, o.modelBytes ?? buildMlp(BENCH_MLP), 'application/octet-stream');
  await registerVersion(registry, { name, sourceKey });
  batchQueue.attach(createAsyncWorkerHandler({ ...flows, logger: silentLogger }));
  // Keeps the process alive while the queue's (unref'd) timers are all that is pending.
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    // A first job loads the session (and compiles the code) as a running service would have.
    // Job ids of their own: a job id whose input was scored already would not run again.
    const run = randomUUID().slice(0, 8);
    const warm = batchRows(64, o.data.inFeatures, 7);
    await runLocalJob(flows.batch, batchQueue, `bench-warm-${run}`, name, warm.jsonl, BATCH.minPartBytes);
    const partBytes = Math.max(BATCH.minPartBytes, Math.ceil(o.data.jsonl.length / (2 * concurrency)));
    const before = batchQueue.stats.peakInFlight;
    const { status, ms } = await runLocalJob(
      flows.batch,
      batchQueue,
      `bench-${run}`,
      name,
      o.data.jsonl,
      partBytes,
    );
    if (status.total !== o.data.rows || status.failed !== 0) {
      throw new Error(`the local job scored ${status.total} rows, ${status.failed} failed`);
    }
    return {
      rows: o.data.rows,
      inputBytes: o.data.jsonl.length,
      parts: status.partsTotal,
      partBytes,
      concurrency,
      peakInFlight: Math.max(before, batchQueue.stats.peakInFlight),
      seconds: round(ms / 1000, 2),
      rowsPerSecond: round((o.data.rows / ms) * 1000, 1),
    };
  } finally {
    clearInterval(keepAlive);
    batchQueue.detach();
    await sessions.close();
    await engine.close();
  }
}

async function runLocalJob(
  batch: BatchScoreDeps,
  queue: InProcessQueue,
  jobId: string,
  model: string,
  jsonl: Buffer,
  partBytes: number,
): Promise<{ status: BatchStatus; ms: number }> {
  await batch.blobs.put(
    BATCH_KEYS.job(jobId),
    JSON.stringify({ model, partBytes, maxConcurrency: BATCH.maxConcurrency }),
  );
  await batch.blobs.put(BATCH_KEYS.input(jobId), jsonl, 'application/x-ndjson');
  const t0 = performance.now();
  const started = await startBatchJob(batch, jobId, { input: 'file' });
  if (started.state !== 'running') throw new Error(`job ${jobId} did not start: ${JSON.stringify(started)}`);
  await queue.drain();
  const ms = performance.now() - t0;
  const bytes = await batch.blobs.get(BATCH_KEYS.status(jobId));
  const status = JSON.parse(new TextDecoder().decode(bytes)) as BatchStatus;
  if (status.state !== 'done') throw new Error(`job ${jobId} ended ${JSON.stringify(status)}`);
  return { status, ms };
}

export interface BatchBenchResult {
  readonly overRaw: BatchOverRawResult;
  readonly local: BatchLocalResult;
}

/** Rows of the batch benchmark: 8,192 rows of the bench MLP, about 42 MB of JSONL. */
export const BATCH_BENCH_ROWS = 8_192;

/** Both measures on the same rows (bench/run.ts passes its emulators' clients). */
export async function measureBatch(
  local: Omit<BatchLocalOptions, 'data'>,
  opts: { rows?: number; repeats?: number; progress?: (msg: string) => void } = {},
): Promise<BatchBenchResult> {
  const data = batchRows(opts.rows ?? BATCH_BENCH_ROWS);
  opts.progress?.(`bench: batch part vs raw session.run (${data.rows} rows, ${mb(data.jsonl.length)})`);
  const overRaw = await measureBatchOverRaw({
    data,
    ...(opts.repeats !== undefined ? { repeats: opts.repeats } : {}),
    onRun: (what, rps) => opts.progress?.(`bench:   ${what} ${rps.toFixed(0)} rows/s`),
  });
  opts.progress?.(`bench: batch job on DynamoDB Local + s3rver, ${BATCH.maxConcurrency} workers at once`);
  const localResult = await measureBatchLocal({ ...local, data });
  return { overRaw, local: localResult };
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** The lines bench/run.ts and this script print. */
export function batchReportLines(r: BatchBenchResult): string[] {
  const o = r.overRaw;
  const l = r.local;
  return [
    `  batchOverRaw     ${o.batchOverRaw}  (one worker scoring a part, ${o.partRowsPerSecond.toFixed(0)} rows/s, over raw session.run ` +
      `${BATCH.ortBatchRows} rows a run, ${o.rawRowsPerSecond.toFixed(0)} rows/s; ${o.rows} rows, ${mb(o.inputBytes)}; ` +
      `median of ${o.repeats}; target >= 0.8)`,
    `  batchCeilingOverRaw ${o.batchCeilingOverRaw}  (the same part over an engine whose runs cost nothing, ` +
      `${o.ceilingRowsPerSecond.toFixed(0)} rows/s: the bound the part's own work puts on batchOverRaw here)`,
    `  batchLocalRowsPerSecond ${l.rowsPerSecond.toFixed(0)}  (${l.rows} rows in ${l.parts} parts on DynamoDB Local + s3rver, ` +
      `${l.concurrency} workers at once (peak ${l.peakInFlight}), ${l.seconds} s from start to output)`,
  ];
}

/** The summary fields bench/run.ts adds to its JSON. */
export function batchSummary(r: BatchBenchResult) {
  return {
    batchOverRaw: r.overRaw.batchOverRaw,
    batchCeilingOverRaw: r.overRaw.batchCeilingOverRaw,
    batchLocalRowsPerSecond: r.local.rowsPerSecond,
    batch: {
      model: 'mlp 512-1024-512-10, rows of shape [1, 512] in JSONL',
      ortBatchRows: BATCH.ortBatchRows,
      rowsPerChunk: BATCH.rowsPerChunk,
      overRaw: r.overRaw,
      local: r.local,
    },
  };
}

async function main() {
  const asJson = process.argv.includes('--json');
  const root = resolve(fileURLToPath(import.meta.url), '..', '..');
  const work = join(root, '.bench', `batch-${process.pid}`);
  const progress = (msg: string) => process.stderr.write(`${msg}\n`);
  const { doc, s3, table, bucket, stop } = await startBenchEmulators(work, 'maas-bench-batch', progress);
  try {
    const result = await measureBatch({ doc, s3, table, bucket }, { progress });
    if (asJson) console.log(JSON.stringify({ ...batchSummary(result), targets: { batchOverRaw: 0.8 } }));
    else for (const line of batchReportLines(result)) console.log(line);
  } finally {
    await stop();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

/**
 * A batch worker in a process of its own, to measure its memory (test/integration/batch-scale.test.ts). Over the
 * table and bucket named in BATCH_RSS_CHILD (JSON, `RssChildOptions`) it runs a warm-up job, then the measured job,
 * as the worker does: startBatchJob, then an in-process batch queue of one invocation at a time. While a part is
 * scored (not while the output is assembled) it samples `process.memoryUsage()`:
 * - after each scored chunk, following a full collection: what the worker holds then (its part's output segment,
 *   its open stream, the caches), not what the collector has yet to reclaim;
 * - every few milliseconds, the resident size only.
 * Its last stdout line is the `RssChildReport` (JSON).
 *
 * Run with `node --expose-gc --import tsx`; a fixed young generation (`--min-semi-space-size` =
 * `--max-semi-space-size`) keeps V8 from resizing it mid-job, which would move the resident size by tens of MiB
 * whatever the job.
 */
import type { SQSEvent } from 'aws-lambda';
import { dynamoDocumentClient, s3Client } from '../../functions/adapters/aws-clients';
import { OrtThreadEngine } from '../../functions/adapters/ort-thread-engine';
import { type BatchScoreDeps, startBatchJob } from '../../functions/app/batch-score';
import { SessionCache } from '../../functions/app/session-cache';
import { BATCH_KEYS } from '../../functions/contract/events';
import type { BatchStatus } from '../../functions/domain/batch';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import { createEventFlows } from '../../functions/handlers/event-deps';
import { localClientOptions } from '../../functions/local/emulators';
import { InProcessQueue } from '../../functions/local/in-process-queue';
import type { TimeBudget } from '../../functions/ports/events';
import { silentLogger } from './recording-logger';

export interface RssChildOptions {
  readonly dynamoEndpoint: string;
  readonly s3Endpoint: string;
  readonly table: string;
  readonly bucket: string;
  /** A job run first, unmeasured (session loaded, code compiled, heap sized). */
  readonly warmJobId: string;
  readonly jobId: string;
}

/** Bytes, as `process.memoryUsage()` reports them. */
export interface MemorySample {
  readonly rss: number;
  readonly heapUsed: number;
  readonly arrayBuffers: number;
  readonly external: number;
}

export interface RssChildReport {
  readonly jobId: string;
  readonly rows: number;
  readonly partsTotal: number;
  readonly bytesTotal: number;
  /** After the warm-up job and a full collection. */
  readonly baseline: MemorySample;
  /** The largest value of each figure while parts were scored (each on its own; rss from every sample). */
  readonly peak: MemorySample;
  /** The largest `heapUsed + arrayBuffers` after a chunk (and a full collection): the JavaScript side's live bytes. */
  readonly peakLive: number;
  /** Samples after a chunk, and in all. */
  readonly chunkSamples: number;
  readonly samples: number;
  readonly ms: number;
}

const options = JSON.parse(process.env.BATCH_RSS_CHILD ?? 'null') as RssChildOptions | null;
if (!options) throw new Error('BATCH_RSS_CHILD is not set');
const collect = (globalThis as { gc?: () => void }).gc;
if (!collect) throw new Error('run with --expose-gc');

const sessions = new SessionCache({ engine: new OrtThreadEngine() });
const batchQueue = new InProcessQueue({ queueName: 'maas-batch', batchSize: 1, concurrency: 1 });
const flows = createEventFlows({
  table: options.table,
  bucket: options.bucket,
  doc: dynamoDocumentClient(localClientOptions(options.dynamoEndpoint)),
  s3: s3Client(localClientOptions(options.s3Endpoint)),
  queue: new InProcessQueue(),
  batchQueue,
  sessions,
});

let measuring = false;
let scoring = false;
let samples = 0;
let chunkSamples = 0;
const peak = { rss: 0, heapUsed: 0, arrayBuffers: 0, external: 0 };
let peakLive = 0;

function sampleRss(): void {
  if (!measuring || !scoring) return;
  samples++;
  peak.rss = Math.max(peak.rss, process.memoryUsage.rss());
}

function sampleChunk(): void {
  if (!measuring || !scoring) return;
  collect?.();
  const m = process.memoryUsage();
  samples++;
  chunkSamples++;
  peak.rss = Math.max(peak.rss, m.rss);
  peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
  peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
  peak.external = Math.max(peak.external, m.external);
  peakLive = Math.max(peakLive, m.heapUsed + m.arrayBuffers);
}

const predictor = flows.batch.predictor;
const batch: BatchScoreDeps = {
  ...flows.batch,
  predictor: {
    resolve: (name, ref) => predictor.resolve(name, ref),
    async inferBatch(name, ref, requests) {
      const items = await predictor.inferBatch(name, ref, requests);
      // The chunk's lines, requests and answers are still alive: the most a part holds at once.
      sampleChunk();
      return items;
    },
  },
};
const worker = createAsyncWorkerHandler({ ...flows, batch, logger: silentLogger });
batchQueue.attach(async (event: SQSEvent, context: TimeBudget) => {
  scoring = event.Records.some((r) => (JSON.parse(r.body) as { type?: string }).type === 'batch-part');
  try {
    return await worker(event, context);
  } finally {
    scoring = false;
  }
});

async function runJob(jobId: string): Promise<BatchStatus> {
  const started = await startBatchJob(batch, jobId, { input: 'file' });
  if (started.state !== 'running') throw new Error(`job ${jobId} did not start: ${JSON.stringify(started)}`);
  await batchQueue.drain();
  const status = await flows.batch.blobs.get(BATCH_KEYS.status(jobId));
  const parsed = JSON.parse(new TextDecoder().decode(status)) as BatchStatus;
  if (parsed.state !== 'done') throw new Error(`job ${jobId} ended ${JSON.stringify(parsed)}`);
  return parsed;
}

// The in-process queue's timers do not hold the event loop open (unref): this one does, until the report is out.
const keepAlive = setInterval(() => undefined, 1000);
await runJob(options.warmJobId);
collect();
collect();
const m = process.memoryUsage();
const baseline: MemorySample = {
  rss: m.rss,
  heapUsed: m.heapUsed,
  arrayBuffers: m.arrayBuffers,
  external: m.external,
};
measuring = true;
const timer = setInterval(sampleRss, 5);
const t0 = performance.now();
const status = await runJob(options.jobId);
const ms = performance.now() - t0;
measuring = false;
clearInterval(timer);
const report: RssChildReport = {
  jobId: options.jobId,
  rows: status.total,
  partsTotal: status.partsTotal,
  bytesTotal: status.bytesTotal,
  baseline,
  peak,
  peakLive,
  chunkSamples,
  samples,
  ms: Math.round(ms),
};
await sessions.close();
clearInterval(keepAlive);
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);

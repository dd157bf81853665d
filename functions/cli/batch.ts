/**
 * `maas batch`: scores JSONL files through the batch pipeline — writes `batch/{jobId}/job.json`, then the input
 * (one file as `input.jsonl`, several as `input/{nnnn}-{name}.jsonl` closed by the empty `input/_SUCCESS`; the
 * creation of either starts the job, locally and in AWS alike), follows `status.json` until the job ends and
 * streams `output.jsonl`. `maas batch status` reads a job's status, `maas batch cancel` writes its `cancel` object
 * and waits until the job stops.
 *
 * Everything here works on a `BatchBucket` (the model bucket, or an in-memory one in tests): large input files go
 * up as multipart uploads read from disk part by part and the output comes down as a stream, so the CLI's memory
 * does not grow with the size of a job.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { SingleBar } from 'cli-progress';
import { s3Client } from '../adapters/aws-clients';
import { S3BlobStore } from '../adapters/s3-blob-store';
import { EnvironmentVariables, type EnvRecord } from '../config/environment';
import { BATCH_KEYS } from '../contract/events';
import { localClientOptions } from '../local/emulators';
import { LOOPBACK_NAMES } from '../local/loopback';
import type { BlobStore } from '../ports/events';
import { UsageError } from './context';
import { duration, printable } from './format';

const MiB = 1024 * 1024;
const NDJSON = 'application/x-ndjson';

/** An input file up to this size is one PUT; a larger one is a multipart upload read from disk part by part. */
export const SINGLE_PUT_BYTES = 64 * MiB;
/** Bytes per uploaded part of a large input file (raised so that a file needs at most `S3_MAX_PARTS`). */
const UPLOAD_PART_BYTES = 16 * MiB;
/** Parts of one input file uploaded at once (the CLI holds this many parts in memory). */
const UPLOAD_CONCURRENCY = 4;
/** S3's largest number of parts of a multipart upload. */
const S3_MAX_PARTS = 10_000;

/** The states of a job as `status.json` gives them. */
export type JobState = 'running' | 'done' | 'failed' | 'cancelled';

/** A job that has ended: its status changes no more. */
export const isFinished = (state: JobState): boolean => state !== 'running';

/** `status.json` as the CLI reads it (the fields after `code` are absent from jobs of earlier releases). */
export interface JobStatus {
  readonly jobId: string;
  readonly state: JobState;
  /** Rows scored so far; every row of the input once the job is done. */
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly version?: number;
  readonly error?: string;
  readonly code?: string;
  readonly model?: string;
  readonly ref?: string;
  readonly partsDone?: number;
  readonly partsTotal?: number;
  readonly rowsPerSecond?: number;
  readonly etaSeconds?: number;
  readonly bytesDone?: number;
  readonly bytesTotal?: number;
  readonly startedAt?: string;
  readonly updatedAt?: string;
}

/** `batch/{jobId}/job.json` as the CLI writes it. */
export interface JobSpec {
  readonly model: string;
  readonly ref?: string;
  /** Input bytes per part (`BATCH.minPartBytes` .. `BATCH.maxPartBytes`; the service's default without it). */
  readonly partBytes?: number;
  /** Parts scored at once (1 .. `BATCH.maxConcurrencyLimit`; the service's default without it). */
  readonly maxConcurrency?: number;
}

/** One input of a job: bytes in memory, or a file read from disk when it is uploaded. */
export type BatchInput =
  | { readonly name: string; readonly bytes: Uint8Array }
  | { readonly name: string; readonly path: string; readonly sizeBytes: number };

export const inputSize = (input: BatchInput): number =>
  'bytes' in input ? input.bytes.byteLength : input.sizeBytes;

/** The model bucket as the batch commands use it; `putFile` and `stream` keep large files out of memory. */
export interface BatchBucket extends BlobStore {
  readonly bucket?: string;
  /** Uploads a local file (`onBytes`: bytes sent so far); without it the CLI reads the file and `put`s it. */
  putFile?(key: string, path: string, sizeBytes: number, onBytes?: (sent: number) => void): Promise<void>;
  /** The object's bytes as chunks; without it the CLI `get`s the whole object. */
  stream?(key: string): AsyncIterable<Uint8Array>;
  /**
   * Writes an object only where none is: false when one is there already. What claims a job id against another
   * `maas batch` started at the same moment; without it, the job id is checked before it is written (`put`).
   */
  putNew?(key: string, body: Uint8Array | string, contentType?: string): Promise<boolean>;
}

// ---------------------------------------------------------------------------------------------------------------
// Job spec

/** A job id valid as one S3 path segment: `cli-20261123T093000Z-1a2b3c4d`. */
export const newJobId = (now = new Date()): string =>
  `cli-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${randomUUID().slice(0, 8)}`;

/** job.json: the model, and the ref and options that were given (the service's defaults for the others). */
export function jobSpec(
  model: string,
  opts: {
    ref?: string | undefined;
    partBytes?: number | undefined;
    maxConcurrency?: number | undefined;
  } = {},
): JobSpec {
  return {
    model,
    ...(opts.ref !== undefined ? { ref: opts.ref } : {}),
    ...(opts.partBytes !== undefined ? { partBytes: opts.partBytes } : {}),
    ...(opts.maxConcurrency !== undefined ? { maxConcurrency: opts.maxConcurrency } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Input layout and submission

/**
 * The object name of input file `index` of `count` under `input/`: `{nnnn}-{name}.jsonl`, the index zero-padded
 * (4 digits, more for more files) so that key order is the order the files were given; the file's name without
 * its directory and `.jsonl`, characters other than `A-Z a-z 0-9 . _ -` as `_`, at most 100 of them.
 */
export function inputObjectName(index: number, count: number, fileName: string): string {
  const width = Math.max(4, String(Math.max(0, count - 1)).length);
  const base =
    basename(fileName)
      .replace(/\.jsonl$/i, '')
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .slice(0, 100) || 'input';
  return `${String(index).padStart(width, '0')}-${base}.jsonl`;
}

/** Where a job's inputs go: their keys in upload order, and the marker that starts the job after them (if any). */
export interface InputLayout {
  readonly objects: readonly { readonly key: string; readonly input: BatchInput }[];
  /** `input/_SUCCESS`, written empty after every input object; none for a job of one `input.jsonl`. */
  readonly marker?: string;
}

/**
 * One input of up to `SINGLE_PUT_BYTES` is `input.jsonl` (as a single PUT its creation starts the job). Several
 * inputs, or one larger input (a multipart upload), are `input/{nnnn}-{name}.jsonl` in the order given, then the
 * empty `input/_SUCCESS`: the job starts from the marker written last, whatever way the inputs went up.
 */
export function inputLayout(
  jobId: string,
  inputs: readonly BatchInput[],
  singlePutBytes = SINGLE_PUT_BYTES,
): InputLayout {
  const only = inputs.length === 1 ? inputs[0] : undefined;
  if (only && inputSize(only) <= singlePutBytes) {
    return { objects: [{ key: BATCH_KEYS.input(jobId), input: only }] };
  }
  return {
    objects: inputs.map((input, i) => ({
      key: `${BATCH_KEYS.inputPrefix(jobId)}${inputObjectName(i, inputs.length, input.name)}`,
      input,
    })),
    marker: BATCH_KEYS.inputMarker(jobId),
  };
}

/** What `submitBatch` reports while it uploads. */
export interface UploadProgress {
  /** Bytes of all inputs sent so far, and their total. */
  readonly sent: number;
  readonly total: number;
}

/**
 * Writes job.json, then the inputs in order, then the marker (see `inputLayout`). A job id that names an existing
 * job (its job.json or status.json exists) is refused: its status, inputs and output would be mixed with the new
 * job's. job.json is written only where none is (`putNew`) when the store can: of two runs started at once with
 * the same job id, one goes on and the other is refused, having written nothing.
 */
export async function submitBatch(
  store: BatchBucket,
  job: { readonly jobId: string; readonly spec: JobSpec; readonly inputs: readonly BatchInput[] },
  opts: { onUpload?: (p: UploadProgress) => void } = {},
): Promise<InputLayout> {
  if (job.inputs.length === 0) throw new UsageError('give at least one input file');
  const taken = () =>
    new UsageError(
      `job id '${job.jobId}' is taken (batch/${job.jobId}/ holds a job): choose another --job-id`,
    );
  const existing =
    (await store.head(BATCH_KEYS.job(job.jobId))) ?? (await store.head(BATCH_KEYS.status(job.jobId)));
  if (existing) throw taken();
  const layout = inputLayout(job.jobId, job.inputs);
  const total = job.inputs.reduce((n, i) => n + inputSize(i), 0);
  let before = 0;
  const spec = JSON.stringify(job.spec);
  if (!store.putNew) await store.put(BATCH_KEYS.job(job.jobId), spec);
  else if (!(await store.putNew(BATCH_KEYS.job(job.jobId), spec))) throw taken();
  for (const { key, input } of layout.objects) {
    const size = inputSize(input);
    if ('bytes' in input) await store.put(key, input.bytes, NDJSON);
    else if (store.putFile) {
      await store.putFile(key, input.path, size, (sent) => opts.onUpload?.({ sent: before + sent, total }));
    } else await store.put(key, readFileSync(input.path), NDJSON);
    before += size;
    opts.onUpload?.({ sent: before, total });
  }
  if (layout.marker) await store.put(layout.marker, '', 'application/octet-stream');
  return layout;
}

// ---------------------------------------------------------------------------------------------------------------
// Status, waiting, output

/** The job's `status.json`, or undefined before the job has one. */
export async function readStatus(
  store: BlobStore,
  jobId: string,
  attempts = 5,
): Promise<JobStatus | undefined> {
  try {
    const raw = await store.get(BATCH_KEYS.status(jobId));
    if (!raw) return undefined;
    return JSON.parse(Buffer.from(raw).toString('utf8')) as JobStatus;
  } catch (e) {
    // A busy store can time out, and one without atomic writes (the local S3 emulator's files) can hand out a
    // status being rewritten: read it again shortly; only a status that stays unreadable is an error.
    if (attempts > 1) {
      await new Promise((r) => setTimeout(r, 100));
      return readStatus(store, jobId, attempts - 1);
    }
    if (!(e instanceof SyntaxError)) throw e;
    throw new Error(`${BATCH_KEYS.status(jobId)} is not JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** Whether a job id names a job (its job.json exists). */
export async function jobExists(store: BlobStore, jobId: string): Promise<boolean> {
  return (await store.head(BATCH_KEYS.job(jobId))) !== undefined;
}

/** How long and how often a command waits on `status.json`. */
export interface WaitOptions {
  readonly pollMs?: number;
  readonly timeoutMs?: number;
  /** Every status read while waiting (the progress display). */
  readonly onStatus?: (s: JobStatus) => void;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Reads `status.json` every `pollMs` until `until` holds for it (else the timeout passes: resolves undefined, with
 * the last status read in `last`).
 */
async function pollStatus(
  store: BlobStore,
  jobId: string,
  until: (s: JobStatus) => boolean,
  opts: WaitOptions,
): Promise<{ done?: JobStatus; last?: JobStatus }> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const deadline = now() + (opts.timeoutMs ?? 600_000);
  let last: JobStatus | undefined;
  for (;;) {
    let status: JobStatus | undefined;
    try {
      status = await readStatus(store, jobId);
    } catch (e) {
      // A read that fails (a timeout while the store is busy, a 5xx) is tried again at the next poll; one that
      // still fails when the time is up is the answer.
      if (now() >= deadline) throw e;
    }
    if (status) {
      last = status;
      opts.onStatus?.(status);
      if (until(status)) return { done: status };
    }
    if (now() >= deadline) return last ? { last } : {};
    await sleep(opts.pollMs ?? 500);
  }
}

/** Waits until the job has ended (done, failed or cancelled); throws when the timeout passes first. */
export async function waitForJob(
  store: BlobStore,
  jobId: string,
  opts: WaitOptions = {},
): Promise<JobStatus> {
  const { done } = await pollStatus(store, jobId, (s) => isFinished(s.state), opts);
  if (done) return done;
  throw new Error(
    `job ${jobId} did not finish in time; follow it with \`maas batch status ${jobId}\`, and once it is done \`maas batch status ${jobId} --out <file>\` writes its output (its status is at ${BATCH_KEYS.status(jobId)}, its output will be at ${BATCH_KEYS.output(jobId)})`,
  );
}

/** Streams `output.jsonl` to `write`, chunk by chunk; false when there is no output. */
export async function fetchOutput(
  store: BatchBucket,
  jobId: string,
  write: (chunk: Uint8Array) => void | Promise<void>,
): Promise<boolean> {
  const key = BATCH_KEYS.output(jobId);
  if (store.stream) {
    if (!(await store.head(key))) return false;
    for await (const chunk of store.stream(key)) await write(chunk);
    return true;
  }
  const bytes = await store.get(key);
  if (!bytes) return false;
  await write(bytes);
  return true;
}

export interface BatchRun {
  readonly status: JobStatus;
  /** `output.jsonl` (one answer or error object per input line, same order), when the job is done. */
  readonly output?: Uint8Array;
}

/**
 * Submits a job and waits until it ends, its output in memory (the command streams it instead). `input` is the
 * one input's bytes; `inputs` several inputs.
 */
export async function runBatch(
  store: BatchBucket,
  job: {
    jobId: string;
    model: string;
    ref?: string;
    input?: Uint8Array;
    inputs?: readonly BatchInput[];
    partBytes?: number;
    maxConcurrency?: number;
  },
  opts: WaitOptions = {},
): Promise<BatchRun> {
  const inputs = job.inputs ?? (job.input ? [{ name: 'input.jsonl', bytes: job.input }] : []);
  await submitBatch(store, { jobId: job.jobId, spec: jobSpec(job.model, job), inputs });
  const status = await waitForJob(store, job.jobId, opts);
  if (status.state !== 'done') return { status };
  const output = await store.get(BATCH_KEYS.output(job.jobId));
  return { status, ...(output ? { output } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// Cancel

/** What `cancelJob` saw. */
export interface CancelOutcome {
  /** The status the job ended with (cancelled, or done / failed when it ended first). */
  readonly status: JobStatus;
  /** Whether the cancel object was written (not when the job had ended already). */
  readonly requested: boolean;
}

/**
 * Cancels a job: writes `batch/{jobId}/cancel` and waits until `status.json` says the job has ended — cancelled,
 * or done or failed when that came first. A job that has ended already is left alone (nothing is written). A job
 * submitted but not started yet (no `status.json`) is waited for first: the service cancels a job it has
 * recorded, and a cancel created before the job's start has recorded it would find no job. Throws when there is no
 * such job, when it has not started before the timeout (nothing written), and when it still runs after it.
 */
export async function cancelJob(
  store: BlobStore,
  jobId: string,
  opts: WaitOptions = {},
): Promise<CancelOutcome> {
  let before = await readStatus(store, jobId);
  if (!before) {
    if (!(await jobExists(store, jobId))) {
      throw new Error(`no batch job '${jobId}' (${BATCH_KEYS.job(jobId)} does not exist)`);
    }
    before = (await pollStatus(store, jobId, () => true, opts)).done;
    if (!before) {
      throw new Error(
        `job ${jobId} has not started (no ${BATCH_KEYS.status(jobId)} yet: is its input uploaded?); nothing was cancelled`,
      );
    }
  }
  if (isFinished(before.state)) return { status: before, requested: false };
  await store.put(BATCH_KEYS.cancel(jobId), JSON.stringify({ requestedAt: new Date().toISOString() }));
  const { done } = await pollStatus(store, jobId, (s) => isFinished(s.state), opts);
  if (done) return { status: done, requested: true };
  throw new Error(
    `job ${jobId} is still running after the cancel request; follow it with \`maas batch status ${jobId}\``,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Progress

/** The figures of a status as the progress displays show them ('-' when the status has none). */
export interface ProgressFields {
  /** The job's state; `assembling` once every part of a running job is done (its output is being put together). */
  readonly state: JobState | 'assembling';
  /** `12/40`, or '-' before the job is partitioned. */
  readonly parts: string;
  readonly rows: string;
  readonly failedRows: string;
  readonly rate: string;
  readonly eta: string;
}

const rate = (r: number): string => (r >= 10 ? String(Math.round(r)) : String(Number(r.toFixed(1))));

export function progressFields(s: JobStatus): ProgressFields {
  // Every part scored: what is left is the output's assembly, which has no ETA of its own.
  const assembling =
    s.state === 'running' && s.partsTotal !== undefined && (s.partsDone ?? 0) >= s.partsTotal;
  const running = s.state === 'running' && !assembling;
  return {
    state: assembling ? 'assembling' : s.state,
    parts: s.partsTotal !== undefined ? `${s.partsDone ?? 0}/${s.partsTotal}` : '-',
    rows: String(s.total ?? 0),
    failedRows: String(s.failed ?? 0),
    rate: s.rowsPerSecond !== undefined && s.rowsPerSecond > 0 ? rate(s.rowsPerSecond) : '-',
    eta:
      running && s.etaSeconds !== undefined && Number.isFinite(s.etaSeconds)
        ? duration(Math.max(0, Math.round(s.etaSeconds)))
        : '-',
  };
}

/**
 * One line of a status: `running 12/40 parts, 120000 rows (3 failed), 8532 rows/s, ETA 3m12s`; what a status
 * lacks is left out; a failed job ends with its error and code.
 */
export function formatProgress(s: JobStatus): string {
  const f = progressFields(s);
  const parts = [
    `${f.state}${f.parts !== '-' ? ` ${f.parts} parts` : ''}`,
    `${f.rows} rows${f.failedRows !== '0' ? ` (${f.failedRows} failed)` : ''}`,
    ...(f.rate !== '-' ? [`${f.rate} rows/s`] : []),
    ...(f.eta !== '-' ? [`ETA ${f.eta}`] : []),
  ];
  const line = parts.join(', ');
  // A failed job's error can quote the rows it read.
  return printable(
    s.state === 'failed' ? `${line}: ${s.error ?? 'unknown error'} (${s.code ?? 'FAILED'})` : line,
  );
}

/** Shows the statuses of a job while a command waits on it. */
export interface ProgressView {
  update(status: JobStatus): void;
  /** Ends the display (the bar's last rendering stays on screen). */
  stop(): void;
}

/** The stream a progress bar draws on (standard error on a terminal). */
export type BarStream = NodeJS.WritableStream & { readonly isTTY?: boolean; readonly columns?: number };

/**
 * A progress bar (cli-progress) on a terminal: parts done of parts, rows, rows/s and the ETA of status.json.
 * `fps`: most redraws per second.
 */
export function progressBar(stream: BarStream, opts: { fps?: number } = {}): ProgressView {
  const bar = new SingleBar({
    // About 75 columns (the job id is on the line before).
    format: '{state} [{bar}] {parts} parts | {rows} rows{failedNote} | {rate} rows/s | ETA {etaText}',
    barCompleteChar: '\u2588',
    barIncompleteChar: '\u2591',
    stream,
    fps: opts.fps ?? 5,
    barsize: 20,
    // No hidden cursor: a Ctrl-C while waiting would leave the terminal without one.
    hideCursor: false,
  });
  let started = false;
  return {
    update(s) {
      const total = Math.max(1, s.partsTotal ?? 1);
      const value = s.state === 'done' ? total : Math.min(total, s.partsDone ?? 0);
      const fields = progressFields(s);
      const payload = {
        ...fields,
        failedNote: fields.failedRows === '0' ? '' : ` (${fields.failedRows} failed)`,
        // `eta` is cli-progress's own token (its estimate from the bar's values): the service's is shown instead.
        etaText: fields.eta,
      };
      if (!started) {
        bar.start(total, value, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(value, payload);
      }
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

/**
 * Status lines for logs (no terminal): `job {jobId}: {formatProgress}` when the line changes, at most one every
 * `intervalMs` unless the state changes.
 */
export function progressLines(
  jobId: string,
  write: (text: string) => void,
  opts: { intervalMs?: number; now?: () => number } = {},
): ProgressView {
  const now = opts.now ?? Date.now;
  const interval = opts.intervalMs ?? 5_000;
  let lastLine: string | undefined;
  let lastState: JobState | undefined;
  let lastAt = Number.NEGATIVE_INFINITY;
  return {
    update(s) {
      const line = formatProgress(s);
      if (line === lastLine) return;
      if (s.state === lastState && now() - lastAt < interval) return;
      write(`job ${jobId}: ${line}\n`);
      lastLine = line;
      lastState = s.state;
      lastAt = now();
    },
    stop() {},
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The bucket

interface LocalEndpointsFile {
  api?: string;
  s3?: string;
  bucket?: string;
}

/**
 * The model bucket over S3, with large files uploaded part by part from disk (`UPLOAD_CONCURRENCY` parts in
 * flight) and objects read as streams.
 */
export class S3BatchBucket extends S3BlobStore implements BatchBucket {
  constructor(
    private readonly client: S3Client,
    bucket: string,
  ) {
    super(client, bucket);
  }

  async putFile(
    key: string,
    path: string,
    sizeBytes: number,
    onBytes?: (sent: number) => void,
  ): Promise<void> {
    if (sizeBytes <= SINGLE_PUT_BYTES) {
      await this.put(key, readFileSync(path), NDJSON);
      onBytes?.(sizeBytes);
      return;
    }
    const partBytes = Math.max(UPLOAD_PART_BYTES, Math.ceil(sizeBytes / S3_MAX_PARTS / MiB) * MiB);
    const count = Math.ceil(sizeBytes / partBytes);
    const { UploadId } = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: NDJSON }),
    );
    if (!UploadId) throw new Error(`no upload id for ${key}`);
    const file = await open(path, 'r');
    const eTags: string[] = [];
    let sent = 0;
    let next = 0;
    try {
      const worker = async () => {
        for (let i = next++; i < count; i = next++) {
          const start = i * partBytes;
          const length = Math.min(partBytes, sizeBytes - start);
          const body = Buffer.allocUnsafe(length);
          const { bytesRead } = await file.read(body, 0, length, start);
          if (bytesRead !== length) throw new Error(`${path} changed while it was uploaded`);
          const out = await this.client.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: key,
              UploadId,
              PartNumber: i + 1,
              Body: body,
            }),
          );
          if (!out.ETag) throw new Error(`no ETag for part ${i + 1} of ${key}`);
          eTags[i] = out.ETag;
          sent += length;
          onBytes?.(sent);
        }
      };
      await Promise.all(Array.from({ length: Math.min(UPLOAD_CONCURRENCY, count) }, worker));
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId,
          MultipartUpload: { Parts: eTags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      );
    } catch (e) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId }))
        .catch(() => {});
      throw e;
    } finally {
      await file.close();
    }
  }

  async *stream(key: string): AsyncIterable<Uint8Array> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    if (!out.Body) return;
    for await (const chunk of out.Body as AsyncIterable<Uint8Array>) yield chunk;
  }
}

/**
 * The bucket batch files go to: `--bucket` (a deployed stack, credentials from the AWS chain), else the bucket
 * of the running `maas dev` when the CLI talks to it (from `$MAAS_HOME/endpoints.json`).
 */
export function batchStore(
  opts: { bucket?: string; region?: string; endpoint: string },
  env: EnvRecord,
): (BatchBucket & { bucket: string }) | undefined {
  if (opts.bucket) {
    return new S3BatchBucket(s3Client(opts.region ? { region: opts.region } : {}), opts.bucket);
  }
  let local: LocalEndpointsFile | undefined;
  try {
    local = JSON.parse(readFileSync(join(new EnvironmentVariables(env).home(), 'endpoints.json'), 'utf8'));
  } catch {
    return undefined;
  }
  if (!local?.s3 || !local.bucket || !local.api || !sameEndpoint(local.api, opts.endpoint)) return undefined;
  return new S3BatchBucket(s3Client(localClientOptions(local.s3)), local.bucket);
}

/**
 * Whether two endpoints are the same service: the same scheme, port and path (a trailing slash aside), and the same
 * host, any name of the loopback interface counting as one (`maas dev` listens on 127.0.0.1, users write any).
 */
export function sameEndpoint(a: string, b: string): boolean {
  let x: URL;
  let y: URL;
  try {
    x = new URL(a);
    y = new URL(b);
  } catch {
    return a === b;
  }
  const host = (u: URL) => (LOOPBACK_NAMES.has(u.hostname) ? 'loopback' : u.hostname);
  const path = (u: URL) => u.pathname.replace(/\/+$/, '');
  return x.protocol === y.protocol && x.port === y.port && host(x) === host(y) && path(x) === path(y);
}

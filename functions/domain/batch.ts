/**
 * Batch scoring, pure part: the job spec, the keys that start or cancel a job, JSONL line handling (whole texts and
 * streams of byte chunks), the batch queue's messages, the plan of the aggregation's multipart upload and the status
 * document. The partition of the input into byte ranges is functions/domain/batch-partition.ts; grouping rows
 * into ORT runs is the predictor's `inferBatch`.
 *
 * Batch is JSON only: input lines are JSON requests and output lines JSON answers. A line that asks binary tensor
 * data (an input's `binary_data_size`, `binary_data_output` or an output's `binary_data` set true) gets an error
 * line of its own (`BINARY_DATA_IN_BATCH`, see `jsonOnly`); the rest of the job runs as usual.
 *
 * A part is scored in chunks of lines counted from its first line (`chunkRowsAt`: `BATCH.firstChunkRows`, then
 * twice as many each chunk up to `BATCH.rowsPerChunk`), and continued (when an invocation runs out of time) between
 * chunks only: the rows of every `inferBatch` call are the same however often and in how many invocations a part is
 * scored, so a part computed twice writes the same bytes.
 */
import { z } from 'zod';
import { BATCH, BATCH_KEYS } from '../contract/events';
import { DEFAULT_ALIAS, LIMITS } from '../contract/limits';
import { binaryFlag } from './binary-tensors';
import { BadRequestError, isMaasError } from './errors';
import type { ByteLines } from './fast-rows';
import { isModelName } from './names';

/** `batch/{jobId}/job.json`. */
export const JobSpecSchema = z
  .object({
    model: z.string().refine(isModelName, 'model must be a valid model name'),
    ref: z
      .union([z.string().regex(LIMITS.namePattern), z.number().int().positive()])
      .optional()
      .transform((r) => (r === undefined ? DEFAULT_ALIAS : String(r))),
    /** Input bytes per part (absent: BATCH.partBytes); raised when the input would need more than BATCH.maxParts. */
    partBytes: z.number().int().min(BATCH.minPartBytes).max(BATCH.maxPartBytes).optional(),
    /** Parts of the job in flight at once (absent: the service's default, BATCH.maxConcurrency). */
    maxConcurrency: z.number().int().min(1).max(BATCH.maxConcurrencyLimit).optional(),
  })
  // A misspelt option (`partbytes`) is refused, not run with the default.
  .strict();
export type JobSpec = z.output<typeof JobSpecSchema>;

/** The keys `job.json` takes, in words (`model, ref, partBytes and maxConcurrency`). */
const JOB_SPEC_KEYS = Object.keys(JobSpecSchema.shape)
  .join(', ')
  .replace(/, (?=[^,]*$)/, ' and ');

/** Job ids are one S3 path segment. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9\-_.=]{0,127}$/;

/** Parses `job.json`; any defect is a BadRequestError naming it. */
export function parseJobSpec(text: string): JobSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new BadRequestError(`job.json is not valid JSON: ${(e as Error).message}`, 'INVALID_JOB');
  }
  const parsed = JobSpecSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue?.code === 'unrecognized_keys') {
      throw new BadRequestError(
        `job.json has unknown ${issue.keys.length === 1 ? 'key' : 'keys'} ${issue.keys.map((k) => `'${k}'`).join(', ')}: it takes ${JOB_SPEC_KEYS}`,
        'INVALID_JOB',
      );
    }
    const where = issue?.path.length ? `'${issue.path.join('.')}': ` : '';
    throw new BadRequestError(`job.json ${where}${issue?.message ?? 'is invalid'}`, 'INVALID_JOB');
  }
  return parsed.data;
}

/**
 * What an object under a job's `input/` is (`name`: its key after `input/`): an input file (`*.jsonl` or
 * `*.ndjson`, any case, directly under `input/`), left alone, or neither — which the job refuses rather than skip
 * its rows. Left alone, as Hadoop and Spark leave them: a path whose first part starts with `_` or `.` (`_SUCCESS`,
 * `_committed_…`, `.part-0.crc`, `_temporary/…`), and a folder's marker (a key ending in `/`, `input/` itself
 * included, which the S3 console and S3A write).
 */
export function inputObjectKind(name: string): 'input' | 'ignored' | 'other' {
  if (name === '' || name.endsWith('/')) return 'ignored';
  if (name.startsWith('_') || name.startsWith('.')) return 'ignored';
  if (name.includes('/')) return 'other';
  return /\.(?:jsonl|ndjson)$/i.test(name) ? 'input' : 'other';
}

/** The refusal of a job whose `input/` holds objects that are no input files (`inputObjectKind` 'other'). */
export function strayInputObjects(names: readonly string[]): BadRequestError {
  const shown = names.slice(0, 5).join(', ');
  const more = names.length > 5 ? ` and ${names.length - 5} more` : '';
  return new BadRequestError(
    `input/ holds objects that are not input files: ${shown}${more}. Inputs are *.jsonl or *.ndjson objects ` +
      'directly under input/ (names starting with _ or . are left alone): rename or remove these, then write input/_SUCCESS again',
    'INVALID_INPUT',
  );
}

/** What the creation of a `batch/…` object asks: start a job (from `input.jsonl` or `input/*.jsonl`), cancel one. */
export type BatchKeyEvent =
  | { readonly kind: 'start'; readonly jobId: string; readonly input: BatchInputForm }
  | { readonly kind: 'cancel'; readonly jobId: string }
  /** A key that would start or cancel a job, under a folder whose name is no job id: nothing is done. */
  | { readonly kind: 'invalid'; readonly jobId: string; readonly reason: string };

/** A job's input: the one object `input.jsonl`, or the objects `input/*.jsonl` (key order) closed by `_SUCCESS`. */
export type BatchInputForm = 'file' | 'prefix';

/**
 * The meaning of a created key under `batchPrefix`: `{jobId}/input.jsonl` and `{jobId}/input/_SUCCESS` start the
 * job, `{jobId}/cancel` cancels it (`invalid` when `{jobId}` is no job id: nothing is done, and it is said why);
 * any other key (the job's own outputs included) means nothing.
 */
export function batchEventOfKey(key: string, batchPrefix: string): BatchKeyEvent | undefined {
  if (!key.startsWith(batchPrefix)) return undefined;
  const rest = key.slice(batchPrefix.length).split('/');
  const jobId = rest[0] ?? '';
  let event: BatchKeyEvent | undefined;
  if (rest.length === 2 && rest[1] === BATCH_KEYS.inputFileName)
    event = { kind: 'start', jobId, input: 'file' };
  else if (rest.length === 2 && rest[1] === BATCH_KEYS.cancelFileName) event = { kind: 'cancel', jobId };
  else if (rest.length === 3 && rest[1] === 'input' && rest[2] === BATCH_KEYS.inputMarkerName) {
    event = { kind: 'start', jobId, input: 'prefix' };
  }
  if (event === undefined || JOB_ID_PATTERN.test(jobId)) return event;
  return { kind: 'invalid', jobId, reason: JOB_ID_RULE };
}

/** What {@link JOB_ID_PATTERN} asks, in words. */
export const JOB_ID_RULE = '1-128 characters A-Z a-z 0-9 - _ . = starting with a letter or digit';

/**
 * Splits JSONL text into lines: `\n` or `\r\n` separated, a final newline ends the last line rather than
 * starting an empty one. Every other line, blank ones included, is a row (and gets one output line).
 */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/** A block of consecutive lines read from a stream, and the input bytes they took (line breaks included). */
export interface LineBlock {
  readonly lines: string[];
  readonly bytes: number;
}

/** A block of consecutive lines as bytes (see `byteLineBlocks`), and the input bytes they took. */
export interface ByteLineBlock {
  readonly lines: ByteLines;
  readonly bytes: number;
}

const NL = 0x0a;
const CR = 0x0d;

/**
 * Lines of the chunk of a part that starts at line `row` (counted from the part's first line, 0-based): chunk
 * sizes are `firstRows`, then twice the size before, up to `rowsPerChunk`, which every later chunk has. A `row`
 * inside a chunk gets the lines left in it, so chunks end at the same lines wherever a part is taken up. Small
 * first chunks let the model start on a part's first lines while the next ones are read.
 */
export function chunkRowsAt(row: number, rowsPerChunk: number, firstRows: number): number {
  let from = 0;
  let size = Math.max(1, Math.min(firstRows, rowsPerChunk));
  while (size < rowsPerChunk) {
    if (row < from + size) return from + size - row;
    from += size;
    size = Math.min(size * 2, rowsPerChunk);
  }
  return rowsPerChunk - ((row - from) % rowsPerChunk);
}

/**
 * The lines of a stream of byte chunks, in blocks of up to `maxLines` (or, given a function, of up to
 * `maxLines(line)` for the block whose first line is `line`, 0-based): `\n` separated (a line may cross chunks),
 * a trailing `\r` dropped, a final newline ends the last line, a last line without one is a line. A block's bytes
 * are one contiguous array (its line breaks included) and its lines ranges of it. Only the current block and one
 * unfinished line are held. With `reuse`, the blocks share one array (grown when needed): a block is valid until
 * the next one is asked for (no fresh allocation, and no page faults, per block).
 */
export async function* byteLineBlocks(
  chunks: AsyncIterable<Uint8Array>,
  maxLines: number | ((line: number) => number),
  reuse = false,
): AsyncGenerator<ByteLineBlock, void, undefined> {
  const limitAt = typeof maxLines === 'number' ? () => maxLines : maxLines;
  let linesBefore = 0;
  let limit = limitAt(0);
  let pool = new Uint8Array(0);
  let pieces: Uint8Array[] = [];
  let size = 0;
  let starts: number[] = [];
  let ends: number[] = [];
  let lineFrom = 0;
  const make = (): ByteLineBlock => {
    if (reuse && pool.length < size) pool = new Uint8Array(Math.ceil(size * 1.25));
    const data = reuse ? pool.subarray(0, size) : new Uint8Array(size);
    let at = 0;
    for (const p of pieces) {
      data.set(p, at);
      at += p.length;
    }
    const n = starts.length;
    const s = Int32Array.from(starts);
    const e = Int32Array.from(ends);
    for (let i = 0; i < n; i++) if (e[i]! > s[i]! && data[e[i]! - 1] === CR) e[i]!--;
    return { lines: { data, starts: s, ends: e, count: n }, bytes: size };
  };
  for await (const chunk of chunks) {
    let pos = 0;
    let pieceFrom = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(NL, pos);
      if (nl < 0) break;
      size += nl + 1 - pos;
      starts.push(lineFrom);
      ends.push(size - 1);
      lineFrom = size;
      pos = nl + 1;
      if (starts.length >= limit) {
        pieces.push(chunk.subarray(pieceFrom, pos));
        pieceFrom = pos;
        linesBefore += starts.length;
        limit = limitAt(linesBefore);
        yield make();
        pieces = [];
        size = 0;
        starts = [];
        ends = [];
        lineFrom = 0;
      }
    }
    if (pieceFrom < chunk.length) {
      pieces.push(chunk.subarray(pieceFrom));
      size += chunk.length - pos;
    }
  }
  if (size > lineFrom) {
    starts.push(lineFrom);
    ends.push(size);
  }
  if (starts.length) yield make();
}

/**
 * The lines of a stream of byte chunks as text, in blocks of up to `maxLines`, with the rules of `splitLines` and
 * `byteLineBlocks` (a UTF-8 character may cross chunks; each line is decoded on its own).
 */
export async function* lineBlocks(
  chunks: AsyncIterable<Uint8Array>,
  maxLines: number,
): AsyncGenerator<LineBlock, void, undefined> {
  for await (const block of byteLineBlocks(chunks, maxLines)) {
    yield { lines: decodeLines(block.lines), bytes: block.bytes };
  }
}

const lineEncoder = new TextEncoder();

/**
 * Output lines written as UTF-8 into one array that grows as needed, each line encoded straight into it (invalid
 * UTF-16 replaced, as `TextEncoder.encode` does). A chunk's answers used to be joined into one string and that
 * encoded: 3.2 µs a line of a bench answer against 1.2 this way (docs/performance.md, "The output's bytes").
 */
export class LineBytes {
  private bytes: Uint8Array;
  private size = 0;

  constructor(initialBytes = 1 << 16) {
    this.bytes = new Uint8Array(initialBytes);
  }

  /** Bytes written since the last `take`. */
  get length(): number {
    return this.size;
  }

  /** Writes each line and a line break after it. */
  append(lines: readonly string[]): void {
    for (const line of lines) {
      // At most 3 bytes of UTF-8 a UTF-16 unit (a pair of surrogates: 4 bytes for 2 units).
      const room = this.size + line.length * 3 + 1;
      if (room > this.bytes.length) {
        const grown = new Uint8Array(Math.max(this.bytes.length * 2, room));
        grown.set(this.bytes.subarray(0, this.size));
        this.bytes = grown;
      }
      this.size += lineEncoder.encodeInto(line, this.bytes.subarray(this.size)).written;
      this.bytes[this.size++] = 0x0a;
    }
  }

  /** A copy of the bytes written; the writer starts again empty (its array is kept for the next lines). */
  take(): Uint8Array {
    const out = this.bytes.slice(0, this.size);
    this.size = 0;
    return out;
  }
}

const lineDecoder = new TextDecoder();

/** The text of each line of a block (a BOM at a line's start dropped, invalid UTF-8 replaced). */
export function decodeLines(lines: ByteLines): string[] {
  const out: string[] = new Array(lines.count);
  for (let i = 0; i < lines.count; i++) {
    out[i] = lineDecoder.decode(lines.data.subarray(lines.starts[i], lines.ends[i]));
  }
  return out;
}

/** A row that parsed as JSON; the predictor validates it against the model's signature. */
export interface ParsedRow {
  readonly ok: true;
  readonly index: number;
  readonly request: unknown;
}
/** A row rejected before inference; `error`/`code` go to its output line. */
export interface RejectedRow {
  readonly ok: false;
  readonly index: number;
  readonly error: string;
  readonly code: string;
}

/**
 * Parses one JSONL row with `parse` (the predict path's body parser, which keeps big INT64 literals exact).
 * A blank line or a parse error rejects the row; everything else is for the predictor to validate.
 */
export function parseRow(
  index: number,
  line: string,
  parse: (text: string) => unknown,
): ParsedRow | RejectedRow {
  if (line.trim() === '') return { ok: false, index, error: 'empty line', code: 'EMPTY_LINE' };
  try {
    const request = parse(line);
    const binary = jsonOnly(request);
    if (binary !== undefined) return { ok: false, index, error: binary, code: BINARY_DATA_IN_BATCH };
    return { ok: true, index, request };
  } catch (e) {
    return { ok: false, index, ...errorFields(e) };
  }
}

/** The code of a batch line that asks binary tensor data. */
export const BINARY_DATA_IN_BATCH = 'BINARY_DATA_IN_BATCH';

const paramsOf = (o: unknown): unknown => (o as { parameters?: unknown } | null | undefined)?.parameters;
const paramOf = (o: unknown, key: string): unknown =>
  (paramsOf(o) as Record<string, unknown> | undefined)?.[key];

/**
 * Why a batch line cannot be answered because it asks binary tensor data, or undefined when it does not: an input
 * with `parameters.binary_data_size` (a JSONL line carries no bytes after a header), or an output that would be
 * answered binary (an answer is one JSON line): its own `binary_data`, else the request's `binary_data_output`,
 * is true — as the encoder decides (`wantsBinaryOutput`). A flag that is not a boolean is a 400
 * `INVALID_PARAMETERS`, as on the predict routes; anything else is left to validation.
 */
export function jsonOnly(request: unknown): string | undefined {
  const r = request as { inputs?: unknown; outputs?: unknown; parameters?: unknown } | null;
  const inputs = r?.inputs;
  if (Array.isArray(inputs)) {
    for (const [i, input] of inputs.entries()) {
      if (paramOf(input, 'binary_data_size') === undefined) continue;
      const name = (input as { name?: unknown }).name;
      return `input ${typeof name === 'string' ? `'${name}'` : i} has binary_data_size: batch lines are JSON and carry no binary data; give the input's values as 'data'`;
    }
  }
  const all = binaryFlag(r?.parameters, 'binary_data_output', `'parameters'`);
  const outputs = r?.outputs;
  // Listed outputs each decide (their own flag, else the request's); without a list every output takes the request's.
  const binary =
    Array.isArray(outputs) && outputs.length > 0
      ? outputs
          .map((o) => {
            const name = (o as { name?: unknown } | null)?.name;
            return binaryFlag(paramsOf(o), 'binary_data', `output '${String(name)}'`) ?? all;
          })
          .includes(true)
      : all === true;
  if (!binary) return undefined;
  return 'batch answers are JSON lines: binary outputs are not available in batch; drop binary_data_output / binary_data (or set them false)';
}

/** The output line of a failed row. */
export function errorLine(err: unknown): string {
  return JSON.stringify(errorFields(err));
}

/** `{error, code}` of any thrown value; unexpected errors are not described beyond their message. */
export function errorFields(err: unknown): { error: string; code: string } {
  if (isMaasError(err)) return { error: err.message, code: err.code };
  return { error: err instanceof Error ? err.message : String(err), code: 'INTERNAL' };
}

/** Whether an output line is an error line (counts `failed` when parts are assembled). */
export function isErrorLine(line: string): boolean {
  return line.startsWith('{"error":');
}

export type BatchState = 'running' | 'done' | 'failed' | 'cancelled';

/** `batch/{jobId}/status.json`. */
export interface BatchStatus {
  readonly jobId: string;
  /** Which input (version id or ETag of `input.jsonl`, or digest of the `input/` objects) the status is about. */
  readonly inputTag?: string;
  readonly state: BatchState;
  readonly model?: string;
  readonly ref?: string;
  /** The concrete version every row is scored with (resolved once, when the job starts). */
  readonly version?: number;
  readonly partsDone: number;
  readonly partsTotal: number;
  /** Rows of the finished parts (every row once the job is done), and how many answered / are error lines. */
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Rows over the time since the start (while running, with the parts in flight counted half done). */
  readonly rowsPerSecond: number;
  /** While running, once a part is done: the remaining input bytes at the speed so far (parts in flight half done). */
  readonly etaSeconds?: number;
  /** Input bytes of the finished parts, and of the whole input. */
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly startedAt: string;
  readonly updatedAt: string;
  /** Why the whole job failed (state `failed`) or stopped. */
  readonly error?: string;
  readonly code?: string;
}

/** The job's progress as its record keeps it (functions/ports/batch.ts BatchJobRecord has these fields). */
export interface BatchProgress {
  readonly jobId: string;
  readonly inputTag: string;
  readonly state: BatchState;
  readonly model: string;
  readonly ref: string;
  readonly version: number;
  readonly partsTotal: number;
  readonly partsDone: number;
  /** Parts handed out so far: those of them not done are in flight. */
  readonly queued: number;
  readonly bytesTotal: number;
  readonly bytesDone: number;
  readonly rows: number;
  readonly failedRows: number;
  readonly startedAt: string;
  readonly error?: string;
  readonly code?: string;
}

/**
 * The status document of a job's progress at `now`. While it runs, the parts in flight (handed out, not done)
 * count half done in `rowsPerSecond` and `etaSeconds`: counted from the finished parts alone, a job whose parts
 * all run at once looks up to `maxConcurrency` times slower than it is until its last part ends (its first parts
 * end when most of the work is nearly done). Its rows of a part in flight are estimated at the finished parts'
 * rows per byte. Once it has ended, `rowsPerSecond` is its rows over its time.
 */
export function batchStatusOf(job: BatchProgress, now: Date): BatchStatus {
  const elapsedMs = now.getTime() - Date.parse(job.startedAt);
  const seconds = Number.isFinite(elapsedMs) && elapsedMs > 0 ? elapsedMs / 1000 : 0;
  const estimating = job.state === 'running' && job.bytesDone > 0 && seconds > 0;
  const inFlight = Math.max(0, Math.min(job.queued, job.partsTotal) - job.partsDone);
  // The parts in flight hold at most the bytes not done (the last part is often shorter than the mean).
  const bytesSoFar = estimating
    ? job.bytesDone +
      Math.min((inFlight * job.bytesTotal) / Math.max(1, job.partsTotal), job.bytesTotal - job.bytesDone) / 2
    : job.bytesDone;
  const rowsSoFar = estimating ? (job.rows * bytesSoFar) / job.bytesDone : job.rows;
  const eta = estimating
    ? Math.round((seconds * Math.max(0, job.bytesTotal - bytesSoFar)) / bytesSoFar)
    : undefined;
  return {
    jobId: job.jobId,
    inputTag: job.inputTag,
    state: job.state,
    model: job.model,
    ref: job.ref,
    version: job.version,
    partsDone: job.partsDone,
    partsTotal: job.partsTotal,
    total: job.rows,
    succeeded: job.rows - job.failedRows,
    failed: job.failedRows,
    rowsPerSecond: seconds > 0 ? Math.round((rowsSoFar / seconds) * 10) / 10 : 0,
    ...(eta !== undefined ? { etaSeconds: eta } : {}),
    bytesDone: job.bytesDone,
    bytesTotal: job.bytesTotal,
    startedAt: job.startedAt,
    updatedAt: now.toISOString(),
    ...(job.error !== undefined ? { error: job.error } : {}),
    ...(job.code !== undefined ? { code: job.code } : {}),
  };
}

/** One output segment of a part: rows `[fromRow, toRow)` counted from the part's first line, and its bytes. */
export const PartSegmentSchema = z.object({
  fromRow: z.number().int().nonnegative(),
  toRow: z.number().int().positive(),
  sizeBytes: z.number().int().nonnegative(),
});

/**
 * Where a continued part carries on: `offset` input bytes of the part's range and `row` lines are scored (`row` is
 * the next segment's first row), `failed` of those lines are error lines, and `segments` were written for them.
 */
export const PartCursorSchema = z.object({
  offset: z.number().int().nonnegative(),
  row: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  segments: z.array(PartSegmentSchema),
});
export type PartCursor = z.output<typeof PartCursorSchema>;

/** Scores part `index` of a job's plan (from its cursor when continued). */
export const BatchPartMessageSchema = z.object({
  type: z.literal('batch-part'),
  jobId: z.string().regex(JOB_ID_PATTERN),
  inputTag: z.string().min(1),
  index: z.number().int().nonnegative(),
  cursor: PartCursorSchema.optional(),
});
export type BatchPartMessage = z.output<typeof BatchPartMessageSchema>;

/** Assembles `output.jsonl` once every part of the job is done. */
export const BatchAggregateMessageSchema = z.object({
  type: z.literal('batch-aggregate'),
  jobId: z.string().regex(JOB_ID_PATTERN),
  inputTag: z.string().min(1),
});
export type BatchAggregateMessage = z.output<typeof BatchAggregateMessageSchema>;

/**
 * Whether there is time for another chunk: the remaining time minus the reserve must cover the slowest chunk
 * seen so far. The first chunk of an invocation always runs, so every invocation makes progress.
 */
export function hasTimeForAnotherChunk(
  remainingMs: number,
  slowestChunkMs: number,
  reserveMs: number,
  chunksDoneThisInvocation: number,
): boolean {
  if (chunksDoneThisInvocation === 0) return true;
  return remainingMs - reserveMs > slowestChunkMs;
}

/**
 * Whether a claim or lease on a job record taken at `takenAt` (ISO) has expired by `now` (ISO): taken `leaseMs`
 * ago or more (BATCH.aggregationLeaseMs). A stale one may be taken over.
 */
export function leaseExpired(takenAt: string, now: string, leaseMs: number): boolean {
  return Date.parse(takenAt) <= Date.parse(now) - leaseMs;
}

/** Counts of output lines. */
export function countOutcomes(lines: readonly string[]): { succeeded: number; failed: number } {
  let failed = 0;
  for (const l of lines) if (isErrorLine(l)) failed++;
  return { succeeded: lines.length - failed, failed };
}

/** An object to assemble into the output, in order, and its size. */
export interface SizedObject {
  readonly key: string;
  readonly sizeBytes: number;
}

/** Bytes `[start, end)` of an object. */
export interface ByteRange {
  readonly key: string;
  readonly start: number;
  readonly end: number;
}

/**
 * One part of the output's multipart upload: a server-side copy of (a range of) one object, or bytes read from
 * ranges of objects and uploaded.
 */
export type OutputPartPlan =
  | { readonly kind: 'copy'; readonly source: ByteRange }
  | { readonly kind: 'upload'; readonly pieces: readonly ByteRange[]; readonly sizeBytes: number };

/**
 * The parts of a multipart upload whose object is the concatenation of `objects`, such that every part but the
 * last has at least `minPartBytes` (S3 refuses a smaller one) and no byte passes through the caller that a copy
 * can move: an object of at least `minPartBytes` is copied whole; smaller ones are read and merged until the merge
 * holds `minPartBytes`; a merge followed by a large object takes the bytes it lacks from that object's start when
 * the rest of it can still be copied (at least `minPartBytes`, or any size when it ends the output), else the
 * whole object. A copy of part of an object (a byte range) is only ever of an object larger than `minPartBytes`:
 * S3 copies a range only of a source object greater than 5 MB (`x-amz-copy-source-range`), so a last object of
 * at most `minPartBytes` that tops up a merge is merged whole. A merge never exceeds 2 × `minPartBytes`; the last
 * part may be small. Empty objects add nothing. A copy of more than `maxPartBytes` (S3 copies at most 5 GiB a
 * part) is split into ranges of nearly equal size, each over `maxPartBytes` / 2.
 */
export function planOutputParts(
  objects: readonly SizedObject[],
  minPartBytes: number,
  maxPartBytes = Number.POSITIVE_INFINITY,
): OutputPartPlan[] {
  if (!(maxPartBytes >= 2 * minPartBytes)) {
    throw new RangeError(
      `maxPartBytes (${maxPartBytes}) must be at least twice minPartBytes (${minPartBytes})`,
    );
  }
  const parts: OutputPartPlan[] = [];
  const copy = (key: string, start: number, end: number) => {
    const ranges = Math.max(1, Math.ceil((end - start) / maxPartBytes));
    for (let k = 0; k < ranges; k++) {
      const from = start + Math.floor(((end - start) * k) / ranges);
      const to = start + Math.floor(((end - start) * (k + 1)) / ranges);
      parts.push({ kind: 'copy', source: { key, start: from, end: to } });
    }
  };
  let pieces: ByteRange[] = [];
  let merged = 0;
  const flush = () => {
    if (merged > 0) parts.push({ kind: 'upload', pieces, sizeBytes: merged });
    pieces = [];
    merged = 0;
  };
  let last = objects.length - 1;
  while (last >= 0 && objects[last]?.sizeBytes === 0) last--;
  for (const [i, o] of objects.entries()) {
    const n = o.sizeBytes;
    if (n === 0) continue;
    if (merged === 0) {
      if (n >= minPartBytes) copy(o.key, 0, n);
      else {
        pieces.push({ key: o.key, start: 0, end: n });
        merged = n;
      }
      continue;
    }
    const lacking = minPartBytes - merged;
    // The rest of the object is copied (a byte range of it) when it is large enough, or when it ends the output
    // (the last part) — either way only of an object larger than minPartBytes (S3 copies no range of a smaller
    // one; `n - lacking >= minPartBytes` implies it). A smaller last object is merged whole: under 2 × min.
    if (n - lacking >= minPartBytes || (i === last && n > minPartBytes)) {
      pieces.push({ key: o.key, start: 0, end: lacking });
      merged += lacking;
      flush();
      copy(o.key, lacking, n);
      continue;
    }
    pieces.push({ key: o.key, start: 0, end: n });
    merged += n;
    if (merged >= minPartBytes) flush();
  }
  flush();
  return parts;
}

/**
 * Batch scoring, pure part: the job spec, JSONL line handling, the part layout that makes continuation
 * deterministic, and the status document. Grouping rows into ORT runs is the predictor's `inferBatch`.
 *
 * Batch is JSON only: input lines are JSON requests and output lines JSON answers. A line that asks binary tensor
 * data (an input's `binary_data_size`, `binary_data_output` or an output's `binary_data` set true) gets an error
 * line of its own (`BINARY_DATA_IN_BATCH`, see `jsonOnly`); the rest of the job runs as usual.
 *
 * A job's rows are cut into fixed parts of `rowsPerPart` rows. Part `i` always covers the same rows, so a
 * part computed twice (duplicate delivery, retry) has the same content and continuation never shifts rows.
 */
import { z } from 'zod';
import { DEFAULT_ALIAS, LIMITS } from '../contract/limits';
import { BadRequestError, isMaasError } from './errors';
import { isModelName } from './names';

/** `batch/{jobId}/job.json`. */
export const JobSpecSchema = z.object({
  model: z.string().refine(isModelName, 'model must be a valid model name'),
  ref: z
    .union([z.string().regex(LIMITS.namePattern), z.number().int().positive()])
    .optional()
    .transform((r) => (r === undefined ? DEFAULT_ALIAS : String(r))),
});
export type JobSpec = z.output<typeof JobSpecSchema>;

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
    const where = issue?.path.length ? `'${issue.path.join('.')}': ` : '';
    throw new BadRequestError(`job.json ${where}${issue?.message ?? 'is invalid'}`, 'INVALID_JOB');
  }
  return parsed.data;
}

/** What a `batch/…` key means: the input that starts a job, or nothing. */
export function batchJobIdOfInputKey(
  key: string,
  batchPrefix: string,
  inputFileName: string,
): string | undefined {
  if (!key.startsWith(batchPrefix)) return undefined;
  const rest = key.slice(batchPrefix.length).split('/');
  if (rest.length !== 2 || rest[1] !== inputFileName) return undefined;
  const jobId = rest[0] ?? '';
  return JOB_ID_PATTERN.test(jobId) ? jobId : undefined;
}

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

/** Number of parts of a job of `total` rows. */
export function partCount(total: number, rowsPerPart: number): number {
  return Math.ceil(total / rowsPerPart);
}

/** Rows `[start, end)` of part `index`. */
export function partRange(index: number, total: number, rowsPerPart: number): { start: number; end: number } {
  const start = index * rowsPerPart;
  return { start, end: Math.min(total, start + rowsPerPart) };
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

const paramOf = (o: unknown, key: string): unknown =>
  (o as { parameters?: Record<string, unknown> } | null | undefined)?.parameters?.[key];

/**
 * Why a batch line cannot be answered because it asks binary tensor data, or undefined when it does not: an input
 * with `parameters.binary_data_size` (a JSONL line carries no bytes after a header), or `binary_data_output` /
 * an output's `binary_data` set true (an answer is one JSON line). `false` asks JSON and is fine; anything else
 * is left to validation.
 */
export function jsonOnly(request: unknown): string | undefined {
  const inputs = (request as { inputs?: unknown } | null)?.inputs;
  if (Array.isArray(inputs)) {
    for (const [i, input] of inputs.entries()) {
      if (paramOf(input, 'binary_data_size') === undefined) continue;
      const name = (input as { name?: unknown }).name;
      return `input ${typeof name === 'string' ? `'${name}'` : i} has binary_data_size: batch lines are JSON and carry no binary data; give the input's values as 'data'`;
    }
  }
  const why =
    'batch answers are JSON lines: binary outputs are not available in batch; drop binary_data_output / binary_data (or set them false)';
  if (paramOf(request, 'binary_data_output') === true) return why;
  const outputs = (request as { outputs?: unknown } | null)?.outputs;
  if (Array.isArray(outputs) && outputs.some((o) => paramOf(o, 'binary_data') === true)) return why;
  return undefined;
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

export type BatchState = 'running' | 'done' | 'failed';

/** `batch/{jobId}/status.json`. */
export interface BatchStatus {
  readonly jobId: string;
  /** Which `input.jsonl` (version id or ETag) the status is about. */
  readonly inputTag?: string;
  readonly state: BatchState;
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly model?: string;
  readonly ref?: string;
  /** The concrete version every row is scored with (resolved once, when the job starts). */
  readonly version?: number;
  readonly partsDone?: number;
  readonly partsTotal?: number;
  readonly startedAt: string;
  readonly updatedAt: string;
  /** Why the whole job failed (state `failed`). */
  readonly error?: string;
  readonly code?: string;
}

/** Continuation of a job that did not finish in one invocation. */
export interface BatchCursor {
  readonly jobId: string;
  /** ETag (or version id) of the input, so a replaced input never mixes with the old one. */
  readonly inputTag: string;
  readonly model: string;
  readonly ref: string;
  readonly version: number;
  readonly nextPart: number;
  readonly startedAt: string;
  /** Outcomes of the parts before `nextPart`. */
  readonly succeeded: number;
  readonly failed: number;
}

export const BatchCursorSchema = z.object({
  jobId: z.string().regex(JOB_ID_PATTERN),
  inputTag: z.string().min(1),
  model: z.string().refine(isModelName),
  ref: z.string().min(1),
  version: z.number().int().positive(),
  nextPart: z.number().int().nonnegative(),
  startedAt: z.string().min(1),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
});

/**
 * Whether there is time for another part: the remaining time minus the reserve must cover the slowest part
 * seen so far. The first part of an invocation always runs, so every invocation makes progress.
 */
export function hasTimeForAnotherPart(
  remainingMs: number,
  slowestPartMs: number,
  reserveMs: number,
  partsDoneThisInvocation: number,
): boolean {
  if (partsDoneThisInvocation === 0) return true;
  return remainingMs - reserveMs > slowestPartMs;
}

/** Counts of assembled output lines. */
export function countOutcomes(lines: readonly string[]): { succeeded: number; failed: number } {
  let failed = 0;
  for (const l of lines) if (isErrorLine(l)) failed++;
  return { succeeded: lines.length - failed, failed };
}

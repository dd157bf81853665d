/**
 * Batch scoring, pure part: the job spec, JSONL line handling, grouping rows into ORT batches, the part
 * layout that makes continuation deterministic, and the status document.
 *
 * A job's rows are cut into fixed parts of `rowsPerPart` rows. Part `i` always covers the same rows, so a
 * part computed twice (duplicate delivery, retry) has the same content and continuation never shifts rows.
 */
import { z } from 'zod';
import { DEFAULT_ALIAS, LIMITS } from '../contract/limits';
import { BadRequestError, isMaasError } from './errors';

/** `batch/{jobId}/job.json`. */
export const JobSpecSchema = z.object({
  model: z.string().regex(LIMITS.namePattern, 'model must be a valid model name'),
  ref: z
    .union([z.string().regex(/^[a-z0-9][a-z0-9\-_.]{0,63}$/), z.number().int().positive()])
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

/** A tensor of a row, as far as batching needs to know it. */
interface RowTensor {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly data: unknown;
}

/** A row that parsed as an inference request. */
export interface ParsedRow {
  readonly ok: true;
  readonly index: number;
  readonly request: Record<string, unknown> & { inputs: readonly RowTensor[] };
}
/** A row rejected before inference; `error`/`code` go to its output line. */
export interface RejectedRow {
  readonly ok: false;
  readonly index: number;
  readonly error: string;
  readonly code: string;
}

/**
 * Parses one JSONL row as an OIP inference request: valid JSON, an object with a non-empty `inputs` array of
 * `{name, datatype, shape, data}`. Deeper checks (against the model's signature) happen at inference.
 */
export function parseRow(index: number, line: string): ParsedRow | RejectedRow {
  if (line.trim() === '') return { ok: false, index, error: 'empty line', code: 'EMPTY_LINE' };
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (e) {
    return { ok: false, index, error: `not valid JSON: ${(e as Error).message}`, code: 'MALFORMED_JSON' };
  }
  try {
    return { ok: true, index, request: checkRequestShape(raw) };
  } catch (e) {
    return { ok: false, index, ...errorFields(e) };
  }
}

/**
 * Basic structure of an OIP request body (shared by batch rows and async requests): an object with a
 * non-empty `inputs` array whose entries have a string `name` and `datatype`, an integer `shape` array and
 * `data`. Throws BadRequestError.
 */
export function checkRequestShape(raw: unknown): ParsedRow['request'] {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new BadRequestError('an inference request must be a JSON object', 'INVALID_REQUEST');
  }
  const inputs = (raw as { inputs?: unknown }).inputs;
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new BadRequestError("'inputs' must be a non-empty array", 'INVALID_REQUEST');
  }
  inputs.forEach((t, i) => {
    const ok =
      t !== null &&
      typeof t === 'object' &&
      typeof (t as RowTensor).name === 'string' &&
      typeof (t as RowTensor).datatype === 'string' &&
      Array.isArray((t as RowTensor).shape) &&
      (t as RowTensor).shape.every((d) => Number.isInteger(d) && d >= 0) &&
      'data' in (t as object);
    if (!ok) {
      throw new BadRequestError(
        `inputs[${i}] must be {"name", "datatype", "shape": [non-negative integers], "data"}`,
        'INVALID_REQUEST',
      );
    }
  });
  return raw as ParsedRow['request'];
}

/**
 * The layout of a row: rows with equal layouts can be stacked along dim 0 into one ORT run. Undefined when
 * the row cannot be stacked (a scalar input, inputs disagreeing on dim 0).
 */
export function rowLayout(request: ParsedRow['request']): { key: string; rows: number } | undefined {
  let rows: number | undefined;
  const parts: string[] = [];
  for (const t of [...request.inputs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (t.shape.length === 0) return undefined;
    const first = t.shape[0] as number;
    if (rows === undefined) rows = first;
    else if (rows !== first) return undefined;
    parts.push(`${t.name}|${t.datatype}|${t.shape.slice(1).join('x')}`);
  }
  if (rows === undefined || rows === 0) return undefined;
  const outputs = (request as { outputs?: unknown }).outputs;
  const params = (request as { parameters?: unknown }).parameters;
  return {
    key: `${parts.join(';')}#${JSON.stringify(outputs ?? null)}#${JSON.stringify(params ?? null)}`,
    rows,
  };
}

/**
 * Groups parsed rows into ORT batches: rows with the same layout, in input order, at most `maxRows` stacked
 * rows (dim 0) per group. A row that cannot be stacked, or is larger than `maxRows` alone, is its own group.
 * Returns groups of positions into `rows`.
 */
export function groupRows(rows: readonly ParsedRow[], maxRows: number): number[][] {
  const groups: number[][] = [];
  const open = new Map<string, { members: number[]; rows: number }>();
  rows.forEach((row, pos) => {
    const layout = rowLayout(row.request);
    if (!layout || layout.rows >= maxRows) {
      groups.push([pos]);
      return;
    }
    let g = open.get(layout.key);
    if (g && g.rows + layout.rows > maxRows) {
      open.delete(layout.key);
      g = undefined;
    }
    if (!g) {
      g = { members: [], rows: 0 };
      open.set(layout.key, g);
      groups.push(g.members);
    }
    g.members.push(pos);
    g.rows += layout.rows;
  });
  return groups;
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
}

export const BatchCursorSchema = z.object({
  jobId: z.string().regex(JOB_ID_PATTERN),
  inputTag: z.string().min(1),
  model: z.string().regex(LIMITS.namePattern),
  ref: z.string().min(1),
  version: z.number().int().positive(),
  nextPart: z.number().int().nonnegative(),
  startedAt: z.string().min(1),
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

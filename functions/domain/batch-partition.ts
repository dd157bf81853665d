/**
 * The partition of a batch job's input into parts: byte ranges `[start, end)` of the input objects, cut on line
 * breaks, so that a worker scores a part from one ranged read without seeing the rest of the input.
 *
 * Nominal cuts fall every `partBytes` inside each object; each cut c (0 < c < size) moves to the byte after the
 * first `\n` at or after byte c - 1 (a cut that already follows a line break stays). That line break is found by
 * ranged reads of `scanBytes` from c - 1, up to the next nominal cut's own scan: when none is there, the cut is
 * the next one's (equal cuts collapse), and a last cut without a line break after it is dropped. So every byte is
 * read at most once, the reads of all cuts can run at once, and a line longer than a part (or a window) is whole
 * in one part. Parts are numbered across objects in key order; an empty object has none.
 *
 * The part count is bounded by `maxParts` (S3's limit on the parts of the output's multipart upload): an input
 * that would need more gets the smallest `partBytes` that keeps it within.
 */
import { z } from 'zod';
import { BATCH } from '../contract/events';
import { BadRequestError } from './errors';

/** One input object of a job and its size. */
export interface InputObject {
  readonly key: string;
  readonly sizeBytes: number;
  /** The object's ETag when the job started: every read of it is of those bytes only. */
  readonly eTag?: string;
}

/**
 * One part of a job: bytes `[start, end)` of the input object `key`, whole lines; `eTag`, the object's when the job
 * started (a part reads those bytes or none: an object written again since fails the read).
 */
export interface PlannedPart {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly eTag?: string;
}

/** `batch/{jobId}/plan.json`, written once when the job starts. */
export interface BatchPlan {
  /** The input this plan is about (parts of a replaced input never read another's plan). */
  readonly inputTag: string;
  /** The part size the cuts were made with (job.json's or the default, raised to keep within BATCH.maxParts). */
  readonly partBytes: number;
  readonly bytesTotal: number;
  readonly parts: readonly PlannedPart[];
}

const PlanSchema = z.object({
  inputTag: z.string().min(1),
  partBytes: z.number().int().positive(),
  bytesTotal: z.number().int().nonnegative(),
  parts: z.array(
    z.object({
      key: z.string().min(1),
      start: z.number().int().nonnegative(),
      end: z.number().int().positive(),
      eTag: z.string().optional(),
    }),
  ),
});

/** Parses `plan.json` (written by the job's start; a defect is a bug or a foreign write, an Error). */
export function parsePlan(text: string): BatchPlan {
  return PlanSchema.parse(JSON.parse(text));
}

/** Bytes `[start, end)` of an object: fewer when it ends first, undefined when it is missing. */
export type ReadRange = (
  key: string,
  start: number,
  end: number,
  eTag: string | undefined,
) => Promise<Uint8Array | undefined>;

/** Runs `fn` over `items` with at most `limit` calls in flight; resolves with the results in item order. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/** Nominal part count of `inputs` cut every `partBytes`. */
export function nominalPartCount(inputs: readonly InputObject[], partBytes: number): number {
  let n = 0;
  for (const o of inputs) n += Math.ceil(o.sizeBytes / partBytes);
  return n;
}

/**
 * `partBytes`, or the smallest larger size that cuts `inputs` into at most `maxParts` parts. An input of more
 * non-empty objects than `maxParts` cannot be cut so: BadRequestError TOO_MANY_INPUT_OBJECTS.
 */
export function effectivePartBytes(
  inputs: readonly InputObject[],
  partBytes: number,
  maxParts: number,
): number {
  if (nominalPartCount(inputs, partBytes) <= maxParts) return partBytes;
  const nonEmpty = inputs.filter((o) => o.sizeBytes > 0);
  if (nonEmpty.length > maxParts) {
    throw new BadRequestError(
      `the input has ${nonEmpty.length} non-empty objects; a job takes at most ${maxParts}: join some of them`,
      'TOO_MANY_INPUT_OBJECTS',
    );
  }
  // The count falls as the size grows, and is at most maxParts once every object is one part.
  let lo = partBytes + 1;
  let hi = Math.max(...nonEmpty.map((o) => o.sizeBytes));
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (nominalPartCount(inputs, mid) <= maxParts) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export interface PartitionOptions {
  readonly partBytes: number;
  readonly readRange: ReadRange;
  /** @default BATCH.maxParts */
  readonly maxParts?: number;
  /** @default BATCH.scanBytes */
  readonly scanBytes?: number;
  /** Ranged reads in flight at once. @default BATCH.ioConcurrency */
  readonly concurrency?: number;
}

/** The parts of `inputs` (in the given order) and the part size they were cut with. */
export async function partitionInputs(
  inputs: readonly InputObject[],
  opts: PartitionOptions,
): Promise<{ partBytes: number; parts: PlannedPart[] }> {
  const partBytes = effectivePartBytes(inputs, opts.partBytes, opts.maxParts ?? BATCH.maxParts);
  const scanBytes = opts.scanBytes ?? BATCH.scanBytes;
  // Every nominal cut of every object, with the end of its scan (where the next cut's scan begins).
  const scans: { object: number; cut: number; limit: number }[] = [];
  inputs.forEach((o, object) => {
    for (let cut = partBytes; cut < o.sizeBytes; cut += partBytes) {
      const next = cut + partBytes;
      scans.push({ object, cut, limit: next < o.sizeBytes ? next - 1 : o.sizeBytes });
    }
  });
  const found = await mapConcurrent(scans, opts.concurrency ?? BATCH.ioConcurrency, async (s) => {
    const { key, eTag } = inputs[s.object] as InputObject;
    for (let pos = s.cut - 1; pos < s.limit; pos += scanBytes) {
      const end = Math.min(s.limit, pos + scanBytes);
      const bytes = await opts.readRange(key, pos, end, eTag);
      if (!bytes || bytes.length < end - pos) {
        throw new Error(`input object ${key} changed while the job started (bytes ${pos}-${end} unreadable)`);
      }
      const nl = bytes.indexOf(0x0a);
      if (nl >= 0) return pos + nl + 1;
    }
    return undefined;
  });

  // A cut with no line break before the next cut's scan became that cut (equal cuts collapse); a last one
  // without any is dropped.
  const parts: PlannedPart[] = [];
  let i = 0;
  inputs.forEach((o, object) => {
    let start = 0;
    const close = (end: number) => {
      if (end > start && end <= o.sizeBytes) {
        parts.push({ key: o.key, start, end, ...(o.eTag !== undefined ? { eTag: o.eTag } : {}) });
      }
      start = Math.max(start, end);
    };
    for (; i < scans.length && scans[i]?.object === object; i++) {
      const at = found[i];
      if (at !== undefined) close(at);
    }
    close(o.sizeBytes);
  });
  return { partBytes, parts };
}

/**
 * Ports of batch scoring at scale (docs/ARCHITECTURE.md, "Batch scoring"): ranged reads, listings and multipart
 * copies of the model bucket's batch objects, and the job record whose conditional counters coordinate the parts
 * of a job scored by concurrent workers. Adapters map storage only; the rules (which part runs next, who
 * aggregates, when a job ends) live in functions/app/batch-score.ts.
 */

/** S3's smallest part of a multipart upload, except the last one (5 MiB). */
export const S3_MIN_PART_BYTES = 5 * 1024 * 1024;

/** S3's largest part of a multipart upload, and largest range one `UploadPartCopy` copies (5 GiB). */
export const S3_MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;

/** One object of a listing. */
export interface ListedObject {
  readonly key: string;
  readonly sizeBytes: number;
  readonly eTag?: string;
}

/** A part of a multipart upload once sent. */
export interface UploadedPart {
  readonly partNumber: number;
  readonly eTag: string;
}

/** A ranged read named the object by its ETag, and the object has another one now: it was written again. */
export class ObjectChangedError extends Error {
  constructor(
    readonly key: string,
    readonly expectedETag: string,
    /** The object is gone, not written again. */
    readonly deleted = false,
  ) {
    super(
      deleted
        ? `${key} was deleted: it no longer has ETag ${expectedETag}`
        : `${key} was written again: its ETag is no longer ${expectedETag}`,
    );
    this.name = 'ObjectChangedError';
  }
}

/**
 * Byte-level access to the batch objects of the model bucket. A read given an `eTag` is of that object only: when
 * the object has another ETag (it was written again since) or is gone (deleted), the read fails with
 * `ObjectChangedError`.
 */
export interface RangedObjects {
  /** Bytes `[start, end)` of an object (a ranged GET); fewer when the object ends first; undefined when missing. */
  getRange(key: string, start: number, end: number, eTag?: string): Promise<Uint8Array | undefined>;
  /** Bytes `[start, end)` of an object as a stream of chunks (one ranged GET), never buffered whole. */
  streamRange(key: string, start: number, end: number, eTag?: string): AsyncIterable<Uint8Array>;
  /** Every object under `prefix`, in key order (all pages). */
  list(prefix: string): Promise<ListedObject[]>;
  /** Starts a multipart upload of `key`; resolves with its upload id. */
  createMultipart(key: string, contentType: string): Promise<string>;
  /**
   * Part `partNumber` (1..10 000) of the upload as a server-side copy of `sourceKey` (all of it, or bytes
   * `[range.start, range.end)`): the bytes never pass through the caller. Every part but the last must be at least
   * S3_MIN_PART_BYTES, and a range is copied only of a source larger than S3_MIN_PART_BYTES (S3 refuses a byte-range
   * copy of a source of 5 MB or less).
   */
  copyPart(
    key: string,
    uploadId: string,
    partNumber: number,
    sourceKey: string,
    range?: { readonly start: number; readonly end: number },
  ): Promise<UploadedPart>;
  /** Part `partNumber` of the upload from bytes the caller holds. */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array): Promise<UploadedPart>;
  /** Completes the upload: the object is the parts in part-number order. */
  completeMultipart(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void>;
  /** Abandons the upload (its parts are freed). */
  abortMultipart(key: string, uploadId: string): Promise<void>;
}

export type BatchJobState = 'running' | 'done' | 'failed' | 'cancelled';

/** One output segment of a part: rows `[fromRow, toRow)` counted from the part's first line, and its bytes. */
export interface PartSegment {
  readonly fromRow: number;
  readonly toRow: number;
  readonly sizeBytes: number;
}

/** What a finished part contributes to its job. */
export interface PartOutcome {
  readonly index: number;
  readonly rows: number;
  readonly failedRows: number;
  /** Input bytes of the part. */
  readonly bytes: number;
  readonly segments: readonly PartSegment[];
}

/** The job record (one per job id; the input tag tells which input it is about). */
export interface BatchJobRecord {
  readonly jobId: string;
  readonly inputTag: string;
  readonly state: BatchJobState;
  readonly model: string;
  readonly ref: string;
  readonly version: number;
  readonly partsTotal: number;
  readonly partsDone: number;
  /** Part indexes handed out so far (the next one to queue is `queued`). */
  readonly queued: number;
  readonly maxConcurrency: number;
  readonly partBytes: number;
  readonly bytesTotal: number;
  readonly bytesDone: number;
  /** Rows of the finished parts, and how many of them are error lines. */
  readonly rows: number;
  readonly failedRows: number;
  readonly startedAt: string;
  readonly updatedAt: string;
  /** The tag of the job this one came after (the record it replaced), when there was one (see `jobTagOf`). */
  readonly follows?: string;
  /**
   * When the aggregation was claimed (by the part that completed the job, to send the `batch-aggregate` message);
   * removed when that send failed, and set again by a caller that takes over a claim older than the lease.
   */
  readonly aggregationClaimedAt?: string;
  /** When the assembly of the output was leased (by the delivery of `batch-aggregate` that assembles it). */
  readonly assemblyLeasedAt?: string;
  readonly error?: string;
  readonly code?: string;
}

/** The fields a new job starts with. */
export type NewBatchJob = Omit<
  BatchJobRecord,
  | 'partsDone'
  | 'queued'
  | 'bytesDone'
  | 'rows'
  | 'failedRows'
  | 'aggregationClaimedAt'
  | 'assemblyLeasedAt'
  | 'error'
  | 'code'
  | 'state'
>;

/** The record a job starts with: running, nothing counted, no part handed out (every repository writes this). */
export function startedJob(job: NewBatchJob): BatchJobRecord {
  return { ...job, state: 'running', partsDone: 0, queued: 0, bytesDone: 0, rows: 0, failedRows: 0 };
}

/** What `completePart` did. */
export type PartCompletion =
  /** The part is counted now; `job` is the record after the update. */
  | { readonly kind: 'counted'; readonly job: BatchJobRecord }
  /** The part was counted before (a redelivered or duplicated message): nothing changed. */
  | { readonly kind: 'duplicate' }
  /** The job is no longer running (cancelled, failed, done) or is about another input: nothing changed. */
  | { readonly kind: 'stopped'; readonly state: BatchJobState | 'replaced' | 'missing' };

/**
 * The job records (DynamoDB's registry table in AWS; in memory for unit tests). Every write is conditional, so
 * concurrent workers and redelivered messages agree on one outcome.
 */
export interface BatchJobRepository {
  /**
   * Creates the record of a job, state running, counters at 0. Resolves with the record that stands: the new one,
   * or the existing one when a job with the same id and input tag exists already (a redelivered start). A record
   * of another input tag that is not running is replaced; one that is running is left and returned.
   */
  createJob(job: NewBatchJob): Promise<BatchJobRecord>;
  getJob(jobId: string): Promise<BatchJobRecord | undefined>;
  /** Counts a finished part once (see PartCompletion). */
  completePart(jobId: string, inputTag: string, outcome: PartOutcome, now: string): Promise<PartCompletion>;
  /** Hands out the next part index to queue, while `queued < partsTotal` and the job runs; else undefined. */
  claimNext(jobId: string, inputTag: string): Promise<number | undefined>;
  /**
   * Claims the aggregation of a job whose parts are all done (the job still running), for its caller to send the
   * `batch-aggregate` message: resolves with the claim's id for exactly one caller, else undefined. There is one
   * claim at a time; it stands while it is younger than `leaseMs` (its `aggregationClaimedAt` after `now − leaseMs`).
   * One older may be taken over: its caller died before sending, or sent and the job is not done yet. A takeover
   * is a write conditional on the claim's time being at or before `now − leaseMs`, and it writes `now`: of callers
   * at once exactly one wins too (while their clocks agree within the lease).
   */
  claimAggregation(
    jobId: string,
    inputTag: string,
    now: string,
    leaseMs: number,
  ): Promise<string | undefined>;
  /**
   * Removes the aggregation's claim `claimId` (its message could not be sent), so that the next caller claims
   * again at once; a claim that is no longer this one (taken over since) stays.
   */
  releaseAggregation(jobId: string, inputTag: string, claimId: string): Promise<void>;
  /**
   * Leases the assembly of the output of a job whose parts are all done (the job still running) to one delivery of
   * its `batch-aggregate` message: resolves with the lease's id when there is no lease or it expired (its
   * `assemblyLeasedAt` at or before `now − leaseMs`), undefined while another holds it or the job is not ready.
   */
  leaseAssembly(jobId: string, inputTag: string, now: string, leaseMs: number): Promise<string | undefined>;
  /** Ends the assembly lease `leaseId` (the assembly failed: the next delivery takes it at once); another stays. */
  releaseAssembly(jobId: string, inputTag: string, leaseId: string): Promise<void>;
  /**
   * Ends a running job (`done`, `failed` with its error, `cancelled`); resolves with the record after, or
   * undefined when the job was not running (another end came first: it stands).
   */
  finish(
    jobId: string,
    inputTag: string,
    state: Exclude<BatchJobState, 'running'>,
    now: string,
    error?: { readonly error: string; readonly code: string },
  ): Promise<BatchJobRecord | undefined>;
  /** The finished parts of a job, in index order. */
  listParts(jobId: string, inputTag: string): Promise<PartOutcome[]>;
}

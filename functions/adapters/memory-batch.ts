/**
 * The ports of batch scoring in memory (unit tests, no AWS), with the guarantees of the AWS adapters for
 * concurrent callers of one process: each call yields first (as a round trip would), then checks its condition
 * against the state as it is now and writes at once.
 *
 * - MemoryBatchJobs: BatchJobRepository with the conditional writes of the DynamoDB one (functions/adapters/
 *   dynamodb-batch-jobs.ts). Reads return copies.
 * - MemoryRangedObjects: RangedObjects and BlobStore over one map of objects, enforcing S3's rules a local
 *   emulator does not: every part of a multipart upload but the last has at least S3_MIN_PART_BYTES, part numbers
 *   are 1..10 000 and listed in ascending order, a copy's source and range exist, and a copy of a byte range is
 *   only of a source larger than S3_MIN_PART_BYTES (S3: "You can copy a range only if the source object is greater
 *   than 5 MB"; 5 MiB here, which meets it however MB is read). It counts the reads of each
 *   object's bytes (get, getRange, streamRange), so tests can tell which bodies a flow read.
 */
import { createHash } from 'node:crypto';
import { leaseExpired } from '../domain/batch';
import {
  type BatchJobRecord,
  type BatchJobRepository,
  type BatchJobState,
  type ListedObject,
  type NewBatchJob,
  ObjectChangedError,
  type PartCompletion,
  type PartOutcome,
  type RangedObjects,
  S3_MIN_PART_BYTES,
  startedJob,
  type UploadedPart,
} from '../ports/batch';
import type { BlobStore } from '../ports/events';

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const copy = <T>(v: T): T => structuredClone(v);

export class MemoryBatchJobs implements BatchJobRepository {
  private readonly jobs = new Map<string, BatchJobRecord>();
  /** Counted parts per job, `{inputTag}#{index}`. */
  private readonly parts = new Map<string, Map<string, PartOutcome & { inputTag: string }>>();
  /** How many times claimAggregation gave a claim, per job (a test asserts one aggregation). */
  readonly aggregationClaims = new Map<string, number>();
  /** How many times leaseAssembly gave a lease, per job. */
  readonly assemblyLeases = new Map<string, number>();
  /** The id of the current claim or lease, `{jobId}#{field}`. */
  private readonly leaseHolders = new Map<string, string>();
  private leaseIds = 0;

  async createJob(job: NewBatchJob): Promise<BatchJobRecord> {
    await yieldTurn();
    const standing = this.jobs.get(job.jobId);
    if (standing && (standing.inputTag === job.inputTag || standing.state === 'running'))
      return copy(standing);
    const record = startedJob(job);
    this.jobs.set(job.jobId, record);
    return copy(record);
  }

  async getJob(jobId: string): Promise<BatchJobRecord | undefined> {
    await yieldTurn();
    const job = this.jobs.get(jobId);
    return job ? copy(job) : undefined;
  }

  async completePart(
    jobId: string,
    inputTag: string,
    outcome: PartOutcome,
    now: string,
  ): Promise<PartCompletion> {
    await yieldTurn();
    const job = this.jobs.get(jobId);
    if (!job) return { kind: 'stopped', state: 'missing' };
    if (job.inputTag !== inputTag) return { kind: 'stopped', state: 'replaced' };
    if (job.state !== 'running') return { kind: 'stopped', state: job.state };
    const parts = this.parts.get(jobId) ?? new Map();
    this.parts.set(jobId, parts);
    const k = `${inputTag}#${outcome.index}`;
    if (parts.has(k)) return { kind: 'duplicate' };
    parts.set(k, { ...copy(outcome), inputTag });
    const next: BatchJobRecord = {
      ...job,
      partsDone: job.partsDone + 1,
      rows: job.rows + outcome.rows,
      failedRows: job.failedRows + outcome.failedRows,
      bytesDone: job.bytesDone + outcome.bytes,
      updatedAt: now,
    };
    this.jobs.set(jobId, next);
    return { kind: 'counted', job: copy(next) };
  }

  async claimNext(jobId: string, inputTag: string): Promise<number | undefined> {
    await yieldTurn();
    const job = this.jobs.get(jobId);
    if (!job || job.inputTag !== inputTag || job.state !== 'running' || job.queued >= job.partsTotal) {
      return undefined;
    }
    this.jobs.set(jobId, { ...job, queued: job.queued + 1 });
    return job.queued;
  }

  async claimAggregation(
    jobId: string,
    inputTag: string,
    now: string,
    leaseMs: number,
  ): Promise<string | undefined> {
    return this.takeLease(jobId, inputTag, now, leaseMs, 'aggregationClaimedAt', this.aggregationClaims);
  }

  async releaseAggregation(jobId: string, inputTag: string, claimId: string): Promise<void> {
    await this.dropLease(jobId, inputTag, claimId, 'aggregationClaimedAt');
  }

  async leaseAssembly(
    jobId: string,
    inputTag: string,
    now: string,
    leaseMs: number,
  ): Promise<string | undefined> {
    return this.takeLease(jobId, inputTag, now, leaseMs, 'assemblyLeasedAt', this.assemblyLeases);
  }

  async releaseAssembly(jobId: string, inputTag: string, leaseId: string): Promise<void> {
    await this.dropLease(jobId, inputTag, leaseId, 'assemblyLeasedAt');
  }

  /**
   * Sets `field` (with a new id) when the job's parts are all done and it has none, or one taken `leaseMs` ago;
   * each one given is counted in `given`.
   */
  private async takeLease(
    jobId: string,
    inputTag: string,
    now: string,
    leaseMs: number,
    field: 'aggregationClaimedAt' | 'assemblyLeasedAt',
    given: Map<string, number>,
  ): Promise<string | undefined> {
    await yieldTurn();
    const job = this.jobs.get(jobId);
    if (!job || job.inputTag !== inputTag || job.state !== 'running' || job.partsDone !== job.partsTotal) {
      return undefined;
    }
    const held = job[field];
    if (held !== undefined && !leaseExpired(held, now, leaseMs)) return undefined;
    const id = `${field}-${++this.leaseIds}`;
    this.jobs.set(jobId, { ...job, [field]: now, updatedAt: now });
    this.leaseHolders.set(`${jobId}#${field}`, id);
    given.set(jobId, (given.get(jobId) ?? 0) + 1);
    return id;
  }

  /** Removes `field` while its holder is `id`. */
  private async dropLease(
    jobId: string,
    inputTag: string,
    id: string,
    field: 'aggregationClaimedAt' | 'assemblyLeasedAt',
  ): Promise<void> {
    await yieldTurn();
    const job = this.jobs.get(jobId);
    const holder = `${jobId}#${field}`;
    if (!job || job.inputTag !== inputTag || this.leaseHolders.get(holder) !== id) return;
    const { [field]: _removed, ...rest } = job;
    this.jobs.set(jobId, rest);
    this.leaseHolders.delete(holder);
  }

  async finish(
    jobId: string,
    inputTag: string,
    state: Exclude<BatchJobState, 'running'>,
    now: string,
    error?: { readonly error: string; readonly code: string },
  ): Promise<BatchJobRecord | undefined> {
    await yieldTurn();
    const job = this.jobs.get(jobId);
    if (!job || job.inputTag !== inputTag || job.state !== 'running') return undefined;
    const next: BatchJobRecord = { ...job, state, updatedAt: now, ...(error ?? {}) };
    this.jobs.set(jobId, next);
    return copy(next);
  }

  async listParts(jobId: string, inputTag: string): Promise<PartOutcome[]> {
    await yieldTurn();
    return [...(this.parts.get(jobId)?.values() ?? [])]
      .filter((p) => p.inputTag === inputTag)
      .map(({ inputTag: _t, ...p }) => copy(p))
      .sort((a, b) => a.index - b.index);
  }
}

interface StoredObject {
  readonly body: Uint8Array;
  readonly eTag: string;
}

interface Upload {
  readonly key: string;
  readonly contentType: string;
  readonly parts: Map<number, { body: Uint8Array; eTag: string }>;
}

export interface MemoryRangedObjectsOptions {
  /** Bytes per chunk of `streamRange` (small ones make lines cross chunks). @default 64 KiB */
  readonly streamChunkBytes?: number;
}

export class MemoryRangedObjects implements RangedObjects, BlobStore {
  readonly objects = new Map<string, StoredObject>();
  /** Reads of each object's bytes (get, getRange, streamRange). */
  readonly reads = new Map<string, number>();
  /** Parts copied server-side (copyPart) and uploaded (uploadPart), and uploads completed, per key. */
  readonly copiedParts: { key: string; sourceKey: string; bytes: number }[] = [];
  readonly uploadedParts: { key: string; bytes: number }[] = [];
  readonly completed = new Map<string, number>();
  private readonly uploads = new Map<string, Upload>();
  private readonly streamChunkBytes: number;
  private n = 0;

  constructor(opts: MemoryRangedObjectsOptions = {}) {
    this.streamChunkBytes = opts.streamChunkBytes ?? 64 * 1024;
  }

  private read(key: string): StoredObject | undefined {
    const o = this.objects.get(key);
    if (o) this.reads.set(key, (this.reads.get(key) ?? 0) + 1);
    return o;
  }

  /** Reads of the objects whose key starts with `prefix`. */
  readsUnder(prefix: string): number {
    let n = 0;
    for (const [k, c] of this.reads) if (k.startsWith(prefix)) n += c;
    return n;
  }

  text(key: string): string | undefined {
    const o = this.objects.get(key);
    return o ? new TextDecoder().decode(o.body) : undefined;
  }

  // BlobStore

  async get(key: string): Promise<Uint8Array | undefined> {
    await yieldTurn();
    return this.read(key)?.body.slice();
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    await yieldTurn();
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body.slice();
    // As S3 tags an object written in one PUT: the MD5 of its bytes (the same bytes again, the same ETag).
    this.objects.set(key, { body: bytes, eTag: createHash('md5').update(bytes).digest('hex') });
  }

  async delete(key: string): Promise<void> {
    await yieldTurn();
    this.objects.delete(key);
  }

  async head(key: string): Promise<{ eTag?: string; sizeBytes: number } | undefined> {
    await yieldTurn();
    const o = this.objects.get(key);
    return o ? { eTag: o.eTag, sizeBytes: o.body.length } : undefined;
  }

  // RangedObjects

  async getRange(key: string, start: number, end: number, eTag?: string): Promise<Uint8Array | undefined> {
    await yieldTurn();
    const o = this.read(key);
    if (eTag !== undefined && o?.eTag !== eTag) throw new ObjectChangedError(key, eTag, !o);
    return o?.body.slice(start, end);
  }

  async *streamRange(key: string, start: number, end: number, eTag?: string): AsyncIterable<Uint8Array> {
    await yieldTurn();
    const o = this.read(key);
    if (eTag !== undefined && o?.eTag !== eTag) throw new ObjectChangedError(key, eTag, !o);
    if (!o) throw Object.assign(new Error(`NoSuchKey: ${key}`), { name: 'NoSuchKey' });
    const stop = Math.min(end, o.body.length);
    for (let at = start; at < stop; at += this.streamChunkBytes) {
      yield o.body.slice(at, Math.min(stop, at + this.streamChunkBytes));
      await yieldTurn();
    }
  }

  async list(prefix: string): Promise<ListedObject[]> {
    await yieldTurn();
    return [...this.objects.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, o]) => ({ key, sizeBytes: o.body.length, eTag: o.eTag }));
  }

  async createMultipart(key: string, contentType: string): Promise<string> {
    await yieldTurn();
    const id = `upload-${++this.n}`;
    this.uploads.set(id, { key, contentType, parts: new Map() });
    return id;
  }

  private upload(key: string, uploadId: string, partNumber: number): Upload {
    const u = this.uploads.get(uploadId);
    if (!u || u.key !== key) throw new Error(`NoSuchUpload: ${uploadId} of ${key}`);
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
      throw new Error(`InvalidArgument: part number ${partNumber} is not in 1..10000`);
    }
    return u;
  }

  async copyPart(
    key: string,
    uploadId: string,
    partNumber: number,
    sourceKey: string,
    range?: { readonly start: number; readonly end: number },
  ): Promise<UploadedPart> {
    await yieldTurn();
    const u = this.upload(key, uploadId, partNumber);
    const source = this.objects.get(sourceKey);
    if (!source) throw Object.assign(new Error(`NoSuchKey: ${sourceKey}`), { name: 'NoSuchKey' });
    if (range && (range.start < 0 || range.end > source.body.length || range.start >= range.end)) {
      throw new Error(
        `InvalidRange: ${range.start}-${range.end} of ${sourceKey} (${source.body.length} bytes)`,
      );
    }
    if (range && source.body.length <= S3_MIN_PART_BYTES) {
      throw new Error(
        `InvalidRequest: The specified copy source is not supported as a byte-range copy source (${sourceKey} has ${source.body.length} bytes; a range is copied only of a source larger than ${S3_MIN_PART_BYTES})`,
      );
    }
    const body = range ? source.body.slice(range.start, range.end) : source.body.slice();
    const eTag = `p${++this.n}`;
    u.parts.set(partNumber, { body, eTag });
    this.copiedParts.push({ key, sourceKey, bytes: body.length });
    return { partNumber, eTag };
  }

  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array,
  ): Promise<UploadedPart> {
    await yieldTurn();
    const u = this.upload(key, uploadId, partNumber);
    const eTag = `p${++this.n}`;
    u.parts.set(partNumber, { body: body.slice(), eTag });
    this.uploadedParts.push({ key, bytes: body.length });
    return { partNumber, eTag };
  }

  async completeMultipart(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    await yieldTurn();
    const u = this.uploads.get(uploadId);
    if (!u || u.key !== key) throw new Error(`NoSuchUpload: ${uploadId} of ${key}`);
    if (parts.length === 0) throw new Error('MalformedXML: a multipart upload needs at least one part');
    const bodies: Uint8Array[] = [];
    parts.forEach((p, i) => {
      const prev = parts[i - 1];
      if (prev && prev.partNumber >= p.partNumber)
        throw new Error('InvalidPartOrder: part numbers must ascend');
      const stored = u.parts.get(p.partNumber);
      if (!stored || stored.eTag !== p.eTag) throw new Error(`InvalidPart: part ${p.partNumber}`);
      if (i < parts.length - 1 && stored.body.length < S3_MIN_PART_BYTES) {
        throw new Error(
          `EntityTooSmall: part ${p.partNumber} has ${stored.body.length} bytes; every part but the last needs ${S3_MIN_PART_BYTES}`,
        );
      }
      bodies.push(stored.body);
    });
    const size = bodies.reduce((n, b) => n + b.length, 0);
    const body = new Uint8Array(size);
    let at = 0;
    for (const b of bodies) {
      body.set(b, at);
      at += b.length;
    }
    this.objects.set(key, { body, eTag: `e${++this.n}-${parts.length}` });
    this.uploads.delete(uploadId);
    this.completed.set(key, (this.completed.get(key) ?? 0) + 1);
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    await yieldTurn();
    const u = this.uploads.get(uploadId);
    if (u && u.key === key) this.uploads.delete(uploadId);
  }

  /** Multipart uploads started and neither completed nor aborted. */
  get openUploads(): number {
    return this.uploads.size;
  }
}

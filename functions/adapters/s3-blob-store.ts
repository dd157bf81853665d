/**
 * BlobStore over S3 (the model bucket): batch job files, async request documents and feedback; the ObjectLinks
 * of async results too large to answer inline (presigned GETs); the ObjectReader the capture listing reads records back with (ListObjects); and RangedObjects, the byte-level access
 * of batch scoring (ranged GETs, listings, multipart uploads whose parts are server-side copies).
 */
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { type ListedObject, ObjectChangedError, type RangedObjects, type UploadedPart } from '../ports/batch';
import type { BlobStore, ObjectLinks } from '../ports/events';
import type { FolderListing, FolderReader, ObjectListing, ObjectReader } from '../ports/objects';

const isMissing = (e: unknown): boolean => {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404;
};

const unquoted = (eTag: string): string => eTag.replaceAll('"', '');

/**
 * A read of `key` as ETag `expected` answered with another ETag: the object was written again (its body, unread,
 * is freed).
 */
function checkETag(key: string, expected: string | undefined, out: { ETag?: string; Body?: unknown }): void {
  if (expected !== undefined && out.ETag !== undefined && unquoted(out.ETag) !== expected) {
    (out.Body as Readable | undefined)?.destroy();
    throw new ObjectChangedError(key, expected);
  }
}

/**
 * S3's 412 to an `If-Match` read, or its 404 to a read that named an ETag (the object was deleted), as the
 * `ObjectChangedError` it means; any other error as it is.
 */
function changedOr(e: unknown, key: string, eTag: string | undefined): unknown {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  const failed = err.name === 'PreconditionFailed' || err.$metadata?.httpStatusCode === 412;
  if (eTag !== undefined && isMissing(e)) return new ObjectChangedError(key, eTag, true);
  return eTag !== undefined && failed ? new ObjectChangedError(key, eTag) : e;
}

/**
 * A range that starts at or after the object's end: `empty` (nothing to read), unless the read named the object by
 * its ETag. A reader does that only for ranges it planned inside that object, so the object is shorter now: it was
 * written again. (A store that ignores `If-Match`, as the local S3 emulator does, answers 416 before any ETag
 * check: the answer has none.)
 */
function unsatisfiable<T>(key: string, eTag: string | undefined, empty: T): T {
  if (eTag !== undefined) throw new ObjectChangedError(key, eTag);
  return empty;
}

export class S3BlobStore implements BlobStore, ObjectLinks, ObjectReader, FolderReader {
  private readonly ranged: S3RangedObjects;

  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
  ) {
    this.ranged = new S3RangedObjects(s3, bucket);
  }

  getRange(key: string, start: number, end: number): Promise<Uint8Array | undefined> {
    return this.ranged.getRange(key, start, end);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  async put(key: string, body: Uint8Array | string, contentType = 'application/json'): Promise<void> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    await this.s3.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentType: contentType }),
    );
  }

  /**
   * Writes `key` only where no object is (S3's conditional write, `If-None-Match: *`): false when one is there
   * already, or when another conditional write of the same key is in progress (409); that object stays as it is.
   * A store that ignores the condition (the local S3 emulator) writes it as `put` does.
   */
  async putNew(key: string, body: Uint8Array | string, contentType = 'application/json'): Promise<boolean> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    try {
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: bytes,
          ContentType: contentType,
          IfNoneMatch: '*',
        }),
      );
      return true;
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      const status = err.$metadata?.httpStatusCode;
      if (err.name === 'PreconditionFailed' || status === 412) return false;
      if (err.name === 'ConditionalRequestConflict' || status === 409) return false;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /**
   * A presigned `GET` URL of `key`, valid for `expiresInSeconds`, signed with the function's own credentials (its
   * role's read grant is what the URL may do). The presigner is loaded with the first link.
   */
  async presignGet(key: string, expiresInSeconds: number): Promise<string> {
    const { getSignedUrl } = await import('@aws-sdk/s3-request-presigner');
    return getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: expiresInSeconds,
    });
  }

  async head(key: string): Promise<{ eTag?: string; versionId?: string; sizeBytes: number } | undefined> {
    try {
      const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        ...(out.ETag ? { eTag: unquoted(out.ETag) } : {}),
        ...(out.VersionId && out.VersionId !== 'null' ? { versionId: out.VersionId } : {}),
        sizeBytes: out.ContentLength ?? 0,
      };
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  /**
   * Keys after `startAfter`, in key order. ListObjects (v1) with `Marker` is the same listing as ListObjectsV2 with
   * `StartAfter` (same permission, s3:ListBucket), and the one the local emulator can answer: s3rver fails every
   * truncated ListObjectsV2 answer on Node.js 17 and later (its continuation token is DES-encrypted, which
   * OpenSSL 3 no longer provides). Continuation is by key, so no continuation token is needed.
   */
  async list(prefix: string, opts: { startAfter?: string; maxKeys?: number } = {}): Promise<ObjectListing> {
    const out = await this.s3.send(
      new ListObjectsCommand({
        Bucket: this.bucket,
        Prefix: prefix,
        ...(opts.startAfter !== undefined ? { Marker: opts.startAfter } : {}),
        ...(opts.maxKeys !== undefined ? { MaxKeys: opts.maxKeys } : {}),
      }),
    );
    const objects = (out.Contents ?? []).flatMap((o) =>
      o.Key !== undefined ? [{ key: o.Key, sizeBytes: o.Size ?? 0 }] : [],
    );
    return { objects, truncated: out.IsTruncated === true };
  }

  /** The folders under `prefix`: ListObjects (v1, as `list`) with the delimiter `/`, its common prefixes. */
  async folders(
    prefix: string,
    opts: { startAfter?: string; maxKeys?: number } = {},
  ): Promise<FolderListing> {
    const out = await this.s3.send(
      new ListObjectsCommand({
        Bucket: this.bucket,
        Prefix: prefix,
        Delimiter: '/',
        ...(opts.startAfter !== undefined ? { Marker: opts.startAfter } : {}),
        ...(opts.maxKeys !== undefined ? { MaxKeys: opts.maxKeys } : {}),
      }),
    );
    const listed = (out.CommonPrefixes ?? []).flatMap((p) => (p.Prefix !== undefined ? [p.Prefix] : []));
    // The folder `startAfter` names comes again from an emulator (its keys sort after it): not after it.
    const folders = listed.flatMap((f) => {
      const name = f.slice(prefix.length, -1);
      return name === '' || f === opts.startAfter ? [] : [name];
    });
    // S3 answers NextMarker with a delimiter; s3rver may not: the last prefix or key listed is where it stopped.
    const next = out.NextMarker ?? listed.at(-1) ?? out.Contents?.at(-1)?.Key;
    const truncated = out.IsTruncated === true && next !== undefined && next !== opts.startAfter;
    return { folders, truncated, ...(truncated ? { next } : {}) };
  }
}

/** A ranged GET that starts at or after the object's end (S3's 416 `InvalidRange`): the object exists. */
const isUnsatisfiableRange = (e: unknown): boolean => {
  const err = e as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'InvalidRange' || err.Code === 'InvalidRange' || err.$metadata?.httpStatusCode === 416;
};

/** The `Range` header of bytes `[start, end)` (end > start). */
const rangeHeader = (start: number, end: number) => `bytes=${start}-${end - 1}`;

/**
 * A `CopySource`: bucket/key, URL-encoded as S3 decodes it. Characters that mean themselves in a URL path (`=` of
 * a job id, `/`, `:`, `@`, `&`, ...) stay as they are; `+`, `?` and `#`, which would not, are escaped. (s3rver
 * decodes the header with `decodeURI`, which leaves an escaped `+` escaped: a source key with `+` is copied only
 * on S3.)
 */
const copySource = (bucket: string, key: string) =>
  `${bucket}/${encodeURI(key).replace(/[+?#]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;

/** S3's listing order: by the UTF-8 bytes of the keys. */
const byKey = (a: ListedObject, b: ListedObject) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key));

/** Bytes as a Buffer over the same memory (the SDK uploads Buffers as they are). */
const asBuffer = (bytes: Uint8Array) =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export interface S3RangedObjectsOptions {
  /** Keys per listing request (S3 answers at most 1 000). @default 1000 */
  readonly listPageSize?: number;
}

/**
 * RangedObjects over S3 (the model bucket's batch objects).
 *
 * - Ranged reads are GetObject with `Range`; a range that starts at or after the object's end is empty (S3 answers
 *   416), one that runs past it is cut there. A body is never trusted to honour the range: no more than
 *   `end - start` bytes are returned or streamed (s3rver answers `bytes=0-0` with the whole object).
 * - Listings are ListObjects (v1) continued by `Marker` (the last key of the page): the same permission as
 *   ListObjectsV2 (s3:ListBucket), and the one s3rver answers when the listing is truncated (its ListObjectsV2
 *   continuation token is DES-encrypted, which OpenSSL 3 no longer provides: every truncated page fails).
 *   s3rver walks its directories, so a key that is also the start of a longer key's folder (`b.jsonl` beside
 *   `b/x.jsonl`) comes out of order there; the adapter sorts what it got, but a page boundary between the two can
 *   skip the first on s3rver. S3 lists in key order; flat names (`input/*.jsonl`) list right on both.
 * - s3rver answers a ranged GET of an empty object with a length it never sends (the read hangs until the idle
 *   timeout): read ranges of an object known to be non-empty (its size comes with the listing).
 * - Multipart uploads: parts are server-side copies (UploadPartCopy, `CopySourceRange` for a range) or uploaded
 *   bytes; completion sends the parts in part-number order, as S3 requires. Aborting an upload that is gone, or on
 *   a server without AbortMultipartUpload (s3rver answers 405), resolves: the upload is abandoned either way.
 */
export class S3RangedObjects implements RangedObjects {
  private readonly listPageSize: number;

  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    opts: S3RangedObjectsOptions = {},
  ) {
    this.listPageSize = opts.listPageSize ?? 1000;
  }

  async getRange(key: string, start: number, end: number, eTag?: string): Promise<Uint8Array | undefined> {
    if (end <= start) {
      const found = await this.exists(key);
      return found ? new Uint8Array() : undefined;
    }
    try {
      const out = await this.s3.send(this.rangedGet(key, start, end, eTag));
      checkETag(key, eTag, out);
      const bytes = out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
      return bytes.byteLength > end - start ? bytes.subarray(0, end - start) : bytes;
    } catch (e) {
      if (isUnsatisfiableRange(e)) return unsatisfiable(key, eTag, new Uint8Array());
      if (isMissing(e) && eTag === undefined) return undefined;
      throw changedOr(e, key, eTag);
    }
  }

  /** Chunks as the connection delivers them; a missing object fails with S3's `NoSuchKey`. */
  async *streamRange(key: string, start: number, end: number, eTag?: string): AsyncIterable<Uint8Array> {
    if (end <= start) return;
    let body: Readable | undefined;
    try {
      const out = await this.s3.send(this.rangedGet(key, start, end, eTag));
      checkETag(key, eTag, out);
      body = out.Body as Readable | undefined;
    } catch (e) {
      if (isUnsatisfiableRange(e)) return unsatisfiable(key, eTag, undefined);
      throw changedOr(e, key, eTag);
    }
    if (!body) return;
    let left = end - start;
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        if (chunk.byteLength === 0) continue;
        if (chunk.byteLength >= left) {
          yield chunk.subarray(0, left);
          return;
        }
        left -= chunk.byteLength;
        yield chunk;
      }
    } finally {
      // A consumer that stops early (or a range cut short) frees the connection.
      if (!body.readableEnded) body.destroy();
    }
  }

  /**
   * The ranged GET of `[start, end)`; of the object with ETag `eTag` only, when given (`If-Match`: S3 answers 412
   * when it has another; the answer's ETag is checked too, by `checkETag`, for stores that ignore the condition).
   */
  private rangedGet(key: string, start: number, end: number, eTag: string | undefined): GetObjectCommand {
    return new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Range: rangeHeader(start, end),
      ...(eTag !== undefined ? { IfMatch: `"${eTag}"` } : {}),
    });
  }

  async list(prefix: string): Promise<ListedObject[]> {
    const found: ListedObject[] = [];
    let marker: string | undefined;
    for (;;) {
      const out = await this.s3.send(
        new ListObjectsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          MaxKeys: this.listPageSize,
          ...(marker !== undefined ? { Marker: marker } : {}),
        }),
      );
      for (const o of out.Contents ?? []) {
        if (o.Key === undefined) continue;
        found.push({
          key: o.Key,
          sizeBytes: o.Size ?? 0,
          ...(o.ETag ? { eTag: unquoted(o.ETag) } : {}),
        });
      }
      const last = found.at(-1)?.key;
      if (out.IsTruncated !== true || last === undefined || last === marker) return found.sort(byKey);
      marker = last;
    }
  }

  async createMultipart(key: string, contentType: string): Promise<string> {
    const out = await this.s3.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: contentType }),
    );
    if (!out.UploadId) throw new Error(`S3 started no multipart upload of ${key}: no upload id`);
    return out.UploadId;
  }

  async copyPart(
    key: string,
    uploadId: string,
    partNumber: number,
    sourceKey: string,
    range?: { readonly start: number; readonly end: number },
  ): Promise<UploadedPart> {
    if (range && range.end <= range.start) {
      throw new RangeError(`empty copy range [${range.start}, ${range.end}) of ${sourceKey}`);
    }
    const out = await this.s3.send(
      new UploadPartCopyCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        CopySource: copySource(this.bucket, sourceKey),
        ...(range ? { CopySourceRange: rangeHeader(range.start, range.end) } : {}),
      }),
    );
    const eTag = out.CopyPartResult?.ETag;
    if (!eTag) throw new Error(`S3 returned no ETag for part ${partNumber} of ${key} (copy of ${sourceKey})`);
    return { partNumber, eTag };
  }

  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array,
  ): Promise<UploadedPart> {
    const out = await this.s3.send(
      new UploadPartCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: asBuffer(body),
        ContentLength: body.byteLength,
      }),
    );
    if (!out.ETag) throw new Error(`S3 returned no ETag for part ${partNumber} of ${key}`);
    return { partNumber, eTag: out.ETag };
  }

  async completeMultipart(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    const ordered = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    await this.s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: ordered.map((p) => ({ PartNumber: p.partNumber, ETag: p.eTag })) },
      }),
    );
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.s3.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }),
      );
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err.name === 'NoSuchUpload' || err.$metadata?.httpStatusCode === 405) return;
      throw e;
    }
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
  }
}

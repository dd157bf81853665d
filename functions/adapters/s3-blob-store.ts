/**
 * BlobStore over S3 (the model bucket): batch job files, async request documents and feedback; and the
 * ObjectReader the capture listing reads records back with (ListObjects).
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { BlobStore } from '../ports/events';
import type { ObjectListing, ObjectReader } from '../ports/objects';

const isMissing = (e: unknown): boolean => {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404;
};

export class S3BlobStore implements BlobStore, ObjectReader {
  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
  ) {}

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

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async head(key: string): Promise<{ eTag?: string; versionId?: string; sizeBytes: number } | undefined> {
    try {
      const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        ...(out.ETag ? { eTag: out.ETag.replaceAll('"', '') } : {}),
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
    const keys = (out.Contents ?? []).flatMap((o) => (o.Key !== undefined ? [o.Key] : []));
    return { keys, truncated: out.IsTruncated === true };
  }
}

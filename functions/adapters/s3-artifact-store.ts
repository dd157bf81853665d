/** ArtifactStore on S3 (or s3rver / LocalStack through the same client). */

import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NotFoundError } from '../domain/errors';
import type { ArtifactStore } from '../ports';
import { collectBody, isMissingObject, missingArtifact } from './s3-artifact-reader';

export interface S3ArtifactStoreOptions {
  /** Built with `s3Client()` (checksums when required, path style for emulators). */
  readonly s3: S3Client;
  readonly bucket: string;
}

/**
 * The artifact store on S3 through the generated client: reads, writes and presigned uploads, for the registry
 * and the event flows. The predict path reads artifacts with `S3ArtifactReader` (s3-artifact-reader.ts), which
 * also hashes them as they stream in. Keys are used as given: callers build them with `S3_KEYS` from the contract.
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly bucket: string;
  private readonly s3: S3Client;

  constructor(opts: S3ArtifactStoreOptions) {
    this.s3 = opts.s3;
    this.bucket = opts.bucket;
  }

  /** The object's bytes; NotFoundError (`ARTIFACT_NOT_FOUND`) when the key does not exist. */
  async getObject(key: string): Promise<Uint8Array> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new NotFoundError(`artifact '${key}' has no body`, 'ARTIFACT_NOT_FOUND');
      return await collectBody(out.Body as AsyncIterable<Uint8Array>, out.ContentLength);
    } catch (e) {
      if (isMissingObject(e)) throw missingArtifact(key);
      throw e;
    }
  }

  async putObject(key: string, body: Uint8Array, contentType = 'application/octet-stream'): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        // A Buffer with a known length: S3-compatible servers mishandle streamed uploads.
        Body: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
        ContentType: contentType,
      }),
    );
  }

  /** Size of the object, or `undefined` when it does not exist. */
  async headObject(key: string): Promise<{ sizeBytes: number } | undefined> {
    try {
      const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { sizeBytes: out.ContentLength ?? 0 };
    } catch (e) {
      if (isMissingObject(e)) return undefined;
      throw e;
    }
  }

  async deleteObject(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /**
   * A presigned `PUT` URL for `key`, valid for `expiresInSeconds`. `Content-Length: sizeBytes` is a signed header:
   * S3 refuses an upload of any other size (SignatureDoesNotMatch).
   */
  presignPut(key: string, expiresInSeconds: number, sizeBytes: number): Promise<string> {
    const command = new PutObjectCommand({ Bucket: this.bucket, Key: key, ContentLength: sizeBytes });
    return getSignedUrl(this.s3, command, {
      signableHeaders: new Set(['content-length']),
      expiresIn: expiresInSeconds,
    });
  }
}

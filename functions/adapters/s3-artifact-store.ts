/** ArtifactStore on S3 (or s3rver / LocalStack through the same client). */

import { createHash } from 'node:crypto';
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
import type { HashedArtifact } from '../ports/inference';

export interface S3ArtifactStoreOptions {
  /** Built with `s3Client()` (checksums when required, path style for emulators). */
  readonly s3: S3Client;
  readonly bucket: string;
}

const isMissing = (e: unknown): boolean => {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === 'NoSuchKey' || err?.name === 'NotFound' || err?.$metadata?.httpStatusCode === 404;
};

/**
 * The read side of the artifact store: all the predict function needs. Kept apart so that its bundle carries
 * only the GetObject operation of the S3 client (the bundler drops the other commands and the presigner).
 * Keys are used as given: callers build them with `S3_KEYS` from the contract.
 */
export class S3ArtifactReader implements Pick<ArtifactStore, 'bucket' | 'getObject' | 'getObjectHashed'> {
  readonly bucket: string;
  protected readonly s3: S3Client;

  constructor(opts: S3ArtifactStoreOptions) {
    this.s3 = opts.s3;
    this.bucket = opts.bucket;
  }

  /** The object's bytes; NotFoundError (`ARTIFACT_NOT_FOUND`) when the key does not exist. */
  async getObject(key: string): Promise<Uint8Array> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new NotFoundError(`artifact '${key}' has no body`, 'ARTIFACT_NOT_FOUND');
      return await out.Body.transformToByteArray();
    } catch (e) {
      if (isMissing(e)) throw new NotFoundError(`artifact '${key}' does not exist`, 'ARTIFACT_NOT_FOUND');
      throw e;
    }
  }

  /**
   * The object's bytes and their sha256, computed chunk by chunk as the body streams in (the digest is ready
   * when the last byte is). NotFoundError (`ARTIFACT_NOT_FOUND`) when the key does not exist.
   */
  async getObjectHashed(key: string): Promise<HashedArtifact> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new NotFoundError(`artifact '${key}' has no body`, 'ARTIFACT_NOT_FOUND');
      const hash = createHash('sha256');
      const size = out.ContentLength;
      // Copy into one buffer of the announced size; collect and concatenate when the size is unknown or off.
      let bytes: Buffer | undefined = size !== undefined ? Buffer.allocUnsafe(size) : undefined;
      const chunks: Uint8Array[] = [];
      let received = 0;
      for await (const chunk of out.Body as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        if (bytes && received + chunk.byteLength <= bytes.byteLength) bytes.set(chunk, received);
        else if (bytes) {
          chunks.push(bytes.subarray(0, received), chunk);
          bytes = undefined;
        } else chunks.push(chunk);
        received += chunk.byteLength;
      }
      const body =
        bytes && received === bytes.byteLength
          ? bytes
          : Buffer.concat(bytes ? [bytes.subarray(0, received)] : chunks);
      return { bytes: body, sha256: hash.digest('hex') };
    } catch (e) {
      if (isMissing(e)) throw new NotFoundError(`artifact '${key}' does not exist`, 'ARTIFACT_NOT_FOUND');
      throw e;
    }
  }
}

/** The artifact store on S3: reads (see `S3ArtifactReader`), writes, copies and presigned uploads. */
export class S3ArtifactStore extends S3ArtifactReader implements ArtifactStore {
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
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  async deleteObject(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /** A presigned `PUT` URL for `key`, valid for `expiresInSeconds`. */
  presignPut(key: string, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.s3, new PutObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: expiresInSeconds,
    });
  }
}

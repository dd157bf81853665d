/**
 * The artifact reads of the predict path: S3 GetObject signed and sent by `AwsHttpClient` (see aws-http.ts for
 * why the predict function does without the generated S3 client), the sha256 computed while the body streams in.
 * Buckets are addressed by virtual host on AWS and by path on a configured endpoint (s3rver, LocalStack), as
 * the SDK client of `aws-clients.ts` does.
 */
import { createHash, type Hash } from 'node:crypto';
import { NotFoundError } from '../domain/errors';
import type { ArtifactStore } from '../ports';
import type { HashedArtifact } from '../ports/inference';
import { type AwsCall, AwsHttpClient, type AwsHttpOptions, encodeS3Key } from './aws-http';

export interface S3ArtifactReaderOptions extends Omit<AwsHttpOptions, 'service'> {
  readonly bucket: string;
  /** A client to use instead of one built from the other options. */
  readonly client?: AwsHttpClient;
}

/**
 * S3 error codes of a key that does not exist (`NotFound`: a 404 without a body, as HEAD answers). A missing
 * bucket (`NoSuchBucket`) is a deployment fault, not a missing artifact.
 */
const MISSING = new Set(['NoSuchKey', 'NotFound']);

export const isMissingObject = (e: unknown): boolean => MISSING.has((e as { name?: string })?.name ?? '');

/**
 * A 403 answer. S3 answers a missing key with 403 `AccessDenied`, not 404, to a role that may not list the bucket
 * (the predict role): on an artifact read it means the same as `NoSuchKey`.
 */
const isForbidden = (e: unknown): boolean =>
  (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === 403;

/** The error of an artifact whose key does not exist (404 `ARTIFACT_NOT_FOUND`). */
export const missingArtifact = (key: string, cause?: unknown) =>
  new NotFoundError(
    `artifact '${key}' does not exist`,
    'ARTIFACT_NOT_FOUND',
    cause === undefined ? {} : { cause },
  );

/**
 * Collects a streamed body into one buffer (of the announced size when it is right), feeding `hash` chunk by
 * chunk: the digest is ready when the last byte is.
 */
export async function collectBody(
  body: AsyncIterable<Uint8Array>,
  size: number | undefined,
  hash?: Hash,
): Promise<Buffer> {
  let bytes: Buffer | undefined = size !== undefined ? Buffer.allocUnsafe(size) : undefined;
  const chunks: Uint8Array[] = [];
  let received = 0;
  for await (const chunk of body) {
    hash?.update(chunk);
    if (bytes && received + chunk.byteLength <= bytes.byteLength) bytes.set(chunk, received);
    else if (bytes) {
      chunks.push(bytes.subarray(0, received), chunk);
      bytes = undefined;
    } else chunks.push(chunk);
    received += chunk.byteLength;
  }
  return bytes && received === bytes.byteLength
    ? bytes
    : Buffer.concat(bytes ? [bytes.subarray(0, received)] : chunks);
}

/**
 * Whether a bucket can be addressed as a host label, by the SDK's rule: lower-case letters, digits and hyphens,
 * 3-63 long, not shaped like an IP address. Names with dots would not match S3's wildcard certificate, and legacy
 * names with capitals or underscores are no valid host names: those go by path.
 */
export const isVirtualHostable = (bucket: string): boolean =>
  /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket) && !/^\d+\.\d+\.\d+\.\d+$/.test(bucket);

/** Artifact reads on S3: all the predict function needs of the artifact store. */
export class S3ArtifactReader implements Pick<ArtifactStore, 'bucket' | 'getObject' | 'getObjectHashed'> {
  readonly bucket: string;
  private readonly client: AwsHttpClient;
  private readonly virtualHost: boolean;

  constructor(o: S3ArtifactReaderOptions) {
    this.bucket = o.bucket;
    this.client = o.client ?? new AwsHttpClient({ ...o, service: 's3' });
    this.virtualHost = !this.client.customEndpoint && isVirtualHostable(o.bucket);
  }

  /**
   * The object's bytes; NotFoundError (`ARTIFACT_NOT_FOUND`) when the key does not exist, or S3 refuses it with a
   * 403 (its answer for a missing key to a role that may not list the bucket).
   */
  async getObject(key: string): Promise<Uint8Array> {
    return (await this.fetch(key, false)).bytes;
  }

  /** The object's bytes and their sha256; NotFoundError (`ARTIFACT_NOT_FOUND`) when the key does not exist. */
  async getObjectHashed(key: string): Promise<HashedArtifact> {
    const { bytes, sha256 } = await this.fetch(key, true);
    return { bytes, sha256: sha256 as string };
  }

  private async fetch(key: string, hashed: boolean): Promise<{ bytes: Buffer; sha256?: string }> {
    try {
      const path = encodeS3Key(key);
      const base = this.client.endpoint.pathname.replace(/\/$/, '');
      const call: AwsCall = this.virtualHost
        ? {
            method: 'GET',
            hostname: `${this.bucket}.${this.client.endpoint.hostname}`,
            path: `${base}/${path}`,
          }
        : { method: 'GET', path: `${base}/${encodeS3Key(this.bucket)}/${path}` };
      return await this.client.send(call, async (response) => {
        const length = Number(response.headers['content-length']);
        const hash = hashed ? createHash('sha256') : undefined;
        const bytes = await collectBody(
          response.body as AsyncIterable<Uint8Array>,
          Number.isSafeInteger(length) ? length : undefined,
          hash,
        );
        return hash ? { bytes, sha256: hash.digest('hex') } : { bytes };
      });
    } catch (e) {
      if (isMissingObject(e) || isForbidden(e)) throw missingArtifact(key, e);
      throw e;
    }
  }
}

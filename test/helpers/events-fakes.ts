/** In-memory fakes of the event flows' ports and S3 event builders, for unit tests. */
import type { S3Event } from 'aws-lambda';
import type { WorkMessage } from '../../functions/domain/async';
import { encodeS3EventKey } from '../../functions/local/in-process-queue';
import {
  AlreadyInProgressError,
  type BlobStore,
  type IdempotencyGuard,
  type ObjectLinks,
  type QueuePublisher,
} from '../../functions/ports/events';

/** Objects in memory; its links are `memory:` URLs that `follow` reads back (as long as the object exists). */
export class MemoryBlobStore implements BlobStore, ObjectLinks {
  readonly objects = new Map<string, { body: Uint8Array; eTag: string }>();
  private n = 0;
  async get(key: string) {
    return this.objects.get(key)?.body;
  }
  async put(key: string, body: Uint8Array | string) {
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
    this.objects.set(key, { body: bytes, eTag: `e${++this.n}` });
  }
  async delete(key: string) {
    this.objects.delete(key);
  }
  async head(key: string) {
    const o = this.objects.get(key);
    return o ? { eTag: o.eTag, sizeBytes: o.body.byteLength } : undefined;
  }
  async presignGet(key: string, expiresInSeconds: number) {
    return `memory:${encodeURIComponent(key)}?expires=${expiresInSeconds}`;
  }
  /** What a GET of a `presignGet` URL answers: the object's bytes, or undefined. */
  follow(url: string): Uint8Array | undefined {
    const key = /^memory:([^?]*)/.exec(url)?.[1];
    return key === undefined ? undefined : this.objects.get(decodeURIComponent(key))?.body;
  }
  text(key: string): string | undefined {
    const o = this.objects.get(key);
    return o ? new TextDecoder().decode(o.body) : undefined;
  }
}

export class RecordingQueue implements QueuePublisher {
  readonly sent: WorkMessage[] = [];
  async send(message: WorkMessage) {
    this.sent.push(message);
    return String(this.sent.length);
  }
}

/** Idempotency with the Powertools semantics, in memory. */
export class MemoryGuard implements IdempotencyGuard {
  readonly records = new Map<string, { status: 'INPROGRESS' | 'COMPLETED'; result?: unknown }>();
  async once<T>(key: Record<string, string>, work: () => Promise<T>): Promise<T> {
    const k = JSON.stringify(Object.entries(key).sort());
    const r = this.records.get(k);
    if (r?.status === 'COMPLETED') return r.result as T;
    if (r?.status === 'INPROGRESS') throw new AlreadyInProgressError(k);
    this.records.set(k, { status: 'INPROGRESS' });
    try {
      const result = await work();
      this.records.set(k, { status: 'COMPLETED', result });
      return result;
    } catch (e) {
      this.records.delete(k);
      throw e;
    }
  }
}

/** An ObjectCreated:Put notification as S3 sends it (key URL-encoded). */
export function s3Event(bucket: string, key: string, eTag?: string, size = 0): S3Event {
  return {
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: 'us-east-1',
        eventTime: new Date().toISOString(),
        eventName: 'ObjectCreated:Put',
        userIdentity: { principalId: 'test' },
        requestParameters: { sourceIPAddress: '127.0.0.1' },
        responseElements: { 'x-amz-request-id': 'test', 'x-amz-id-2': 'test' },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'test',
          bucket: { name: bucket, ownerIdentity: { principalId: 'test' }, arn: `arn:aws:s3:::${bucket}` },
          object: {
            key: encodeS3EventKey(key),
            size,
            ...(eTag ? { eTag } : {}),
            sequencer: Date.now().toString(16),
          },
        },
      },
    ],
  } as S3Event;
}

/**
 * Ports of the event-driven flows: the work queue, the object store of batch jobs and async requests, the
 * idempotency guard and the time budget of an invocation. Inference is the predictor of functions/app/predict.ts.
 */
import type { ShadowMirrorMessage, WorkMessage } from '../domain/async';

/** Sends messages to the work queue (SQS in AWS, the in-process queue locally). */
export interface QueuePublisher {
  /** Resolves with the queue's message id once the message is durably enqueued. */
  send(message: WorkMessage): Promise<string>;
}

/**
 * Where the predict path mirrors the requests its aliases' shadows sample (the work queue: SQS in AWS, the
 * in-process queue locally). Called after the answer, never waited for by the caller nor by the request's report; a
 * throw, a rejection or a send that has not settled after `SHADOW.budgetMs` is counted on its own
 * (`ShadowMirrorErrors`), never seen by the caller. A message larger than `SHADOW.maxMessageBytes` is refused
 * (rejected) without being sent.
 */
export interface ShadowMirror {
  mirror(message: ShadowMirrorMessage): void | Promise<void>;
}

/** Objects of batch jobs and async requests (the model bucket). */
export interface BlobStore {
  /** The object's bytes, or undefined when it does not exist. */
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, body: Uint8Array | string, contentType?: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** ETag / version id of an object, or undefined when it does not exist. */
  head(key: string): Promise<{ eTag?: string; versionId?: string; sizeBytes: number } | undefined>;
}

/** Links that let a caller read an object straight from the store (S3: presigned GETs). */
export interface ObjectLinks {
  /**
   * A URL whose `GET` answers the object at `key` (its bytes, with the content type it was stored with) until it
   * expires, `expiresInSeconds` from now. Signing reads nothing: the object need not exist.
   */
  presignGet(key: string, expiresInSeconds: number): Promise<string>;
}

/** The part of an AWS Lambda context the flows use (time budget). */
export interface TimeBudget {
  getRemainingTimeInMillis(): number;
}

/** The same work already runs elsewhere (another delivery of the same event holds the lock). */
export class AlreadyInProgressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AlreadyInProgressError';
  }
}

/**
 * Runs work at most once per key: the first caller runs it and its (JSON) result is stored; later callers
 * get the stored result without running it; a caller arriving while it runs gets AlreadyInProgressError.
 * Work that throws stores nothing, so a retry runs it again.
 */
export interface IdempotencyGuard {
  once<T>(key: Record<string, string>, work: () => Promise<T>, budget?: TimeBudget): Promise<T>;
}

/**
 * Async inference: `POST …/infer-async` stores the request as `async/{requestId}/request.json` and queues an
 * `async-infer` message; the worker runs it with the predictor (the same code path as `/infer`) and writes
 * `async/{requestId}/result.json`; `GET /async/{requestId}` reads them back.
 *
 * A request the predictor rejects (unknown model, invalid inputs, …) is answered `failed` at once. Any other
 * error is thrown so the queue retries the message; on its last attempt the request is answered `failed`
 * before the message goes to the dead-letter queue, so no caller polls forever.
 */
import { randomUUID } from 'node:crypto';
import { ASYNC_KEYS, QUEUE } from '../contract/events';
import { DEFAULT_ALIAS } from '../contract/limits';
import {
  type AsyncRequestDoc,
  type AsyncResultDoc,
  type AsyncStatusView,
  asyncStatusView,
  checkRequestId,
  checkRequestShape,
} from '../domain/async';
import { errorFields } from '../domain/batch';
import { isMaasError, NotFoundError } from '../domain/errors';
import { parseVersionRef, validateModelName } from '../domain/names';
import type { BlobStore, QueuePublisher } from '../ports/events';
import { type Clock, systemClock } from '../ports/index';
import type { InferenceObservation } from './inference';
import type { InferenceObserver } from './observe';
import type { Predictor } from './predict';

export interface AsyncInferenceDeps {
  readonly blobs: BlobStore;
  readonly queue: QueuePublisher;
  readonly clock?: Clock;
  /** @default crypto.randomUUID */
  readonly newId?: () => string;
}

export interface AsyncWorkerDeps {
  readonly blobs: BlobStore;
  readonly predictor: Pick<Predictor, 'infer'>;
  readonly clock?: Clock;
  /** Receives after which the queue dead-letters a message. @default QUEUE.maxReceiveCount */
  readonly maxReceiveCount?: number;
  /**
   * Reports each request run as an inference of its model, and captures it when its alias or version says so.
   * @default none
   */
  readonly observer?: InferenceObserver;
}

/**
 * Request bodies arrive parsed by the body parser (domain/body-parser.ts), which reads large flat numeric `data`
 * straight into typed arrays (and exact 64-bit integers into bigints): store them as the JSON arrays (decimal
 * strings for bigints) the decoder reads back, never as `{"0": …}` objects.
 */
const toJson = (_key: string, value: unknown): unknown => {
  if (typeof value === 'bigint') return value.toString();
  if (ArrayBuffer.isView(value) && !(value instanceof DataView))
    return Array.from(value as unknown as ArrayLike<unknown>);
  return value;
};
const enc = (v: unknown) => JSON.stringify(v, toJson);
const dec = <T>(b: Uint8Array): T => JSON.parse(new TextDecoder().decode(b)) as T;

/** Accepts a request: stored, queued, answered with its id (202). */
export async function submitAsyncInference(
  deps: AsyncInferenceDeps,
  input: { name: string; ref?: string; body: unknown; actor: string; routingKey?: string },
): Promise<{ requestId: string }> {
  validateModelName(input.name);
  parseVersionRef(input.ref); // a malformed ref is the caller's 400 now, not a failed request later
  const request = checkRequestShape(input.body);
  const requestId = (deps.newId ?? randomUUID)();
  const doc: AsyncRequestDoc = {
    requestId,
    name: input.name,
    ref: input.ref ?? DEFAULT_ALIAS,
    request,
    ...(input.routingKey ? { routingKey: input.routingKey } : {}),
    createdAt: (deps.clock ?? systemClock).now().toISOString(),
    actor: input.actor,
  };
  await deps.blobs.put(ASYNC_KEYS.request(requestId), enc(doc));
  await deps.queue.send({ type: 'async-infer', requestId });
  return { requestId };
}

/** `GET /async/{requestId}`: pending until the worker writes a result; NotFoundError for unknown ids. */
export async function getAsyncStatus(
  deps: Pick<AsyncInferenceDeps, 'blobs'>,
  requestId: string,
): Promise<AsyncStatusView> {
  checkRequestId(requestId);
  const result = await deps.blobs.get(ASYNC_KEYS.result(requestId));
  if (result) return asyncStatusView(dec<AsyncResultDoc>(result));
  const request = await deps.blobs.head(ASYNC_KEYS.request(requestId));
  if (!request) throw new NotFoundError(`no async request '${requestId}'`, 'ASYNC_REQUEST_NOT_FOUND');
  return asyncStatusView(undefined);
}

/** Runs one queued request. Throws (so the message is retried) only for errors that are not the request's. */
export async function runAsyncInference(
  deps: AsyncWorkerDeps,
  requestId: string,
): Promise<AsyncResultDoc['status'] | 'duplicate'> {
  const clock = deps.clock ?? systemClock;
  if (await deps.blobs.head(ASYNC_KEYS.result(requestId))) return 'duplicate';
  const bytes = await deps.blobs.get(ASYNC_KEYS.request(requestId));
  if (!bytes) throw new Error(`async request ${requestId} has no request document`);
  const doc = dec<AsyncRequestDoc>(bytes);
  const startedAt = performance.now();
  const obs: InferenceObservation = doc.routingKey ? { routingKey: doc.routingKey } : {};
  const observed = (status: number, response: unknown, code?: string) =>
    deps.observer?.answered({
      model: doc.name,
      ref: doc.ref,
      obs,
      status,
      startedAt,
      payloadBytes: bytes.byteLength,
      // Serialized only when the request is captured.
      requestText: () => JSON.stringify(doc.request),
      requestContentType: 'application/json',
      responseText: () => JSON.stringify(response),
      ...(code !== undefined ? { code } : {}),
    });
  let result: AsyncResultDoc;
  try {
    const response = await deps.predictor.infer(doc.name, doc.ref, doc.request, obs);
    result = { status: 'done', result: response, completedAt: clock.now().toISOString() };
    observed(200, response);
  } catch (e) {
    const status = isMaasError(e) ? e.status : 500;
    if (!isMaasError(e) || e.status >= 500) {
      observed(status, { error: 'internal error', code: 'INTERNAL' }, isMaasError(e) ? e.code : undefined);
      throw e;
    }
    result = { status: 'failed', ...errorFields(e), completedAt: clock.now().toISOString() };
    observed(status, errorFields(e), e.code);
  }
  await deps.blobs.put(ASYNC_KEYS.result(requestId), enc(result));
  return result.status;
}

/**
 * Called when processing a message failed: on its last receive the request is answered `failed` (best
 * effort) since the queue is about to dead-letter it.
 */
export async function recordLastAttemptFailure(
  deps: AsyncWorkerDeps,
  requestId: string,
  receiveCount: number,
  err: unknown,
): Promise<boolean> {
  if (receiveCount < (deps.maxReceiveCount ?? QUEUE.maxReceiveCount)) return false;
  const request = await deps.blobs.head(ASYNC_KEYS.request(requestId)).catch(() => undefined);
  if (!request) return false;
  const result: AsyncResultDoc = {
    status: 'failed',
    error: `the request could not be processed after ${receiveCount} attempts${isMaasError(err) ? `: ${err.message}` : ''}`,
    code: 'PROCESSING_FAILED',
    completedAt: (deps.clock ?? systemClock).now().toISOString(),
  };
  await deps.blobs.put(ASYNC_KEYS.result(requestId), enc(result)).catch(() => {});
  return true;
}

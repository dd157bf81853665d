/**
 * Async inference: `POST …/infer-async` stores the request as `async/{requestId}/request.json` and queues an
 * `async-infer` message; the worker runs it with the predictor (the same code path as `/infer`) and writes
 * `async/{requestId}/result.json`; `GET /async/{requestId}` reads them back, or, for a result too large for a
 * function's answer (`LIMITS.maxResponseBytes`), answers a presigned GET of the stored object.
 *
 * Binary tensor data is stored as it came: a binary request's body (decoded from base64 and its Content-Encoding)
 * is `async/{requestId}/request.bin`, checked at submit as far as it can be without the model (a malformed body is
 * a 400 then, and nothing is stored or queued), and run with the predictor's binary path. An answer with binary
 * outputs (asked by `binary_data` / `binary_data_output`, in a binary or a JSON request) is stored as encoded in
 * `async/{requestId}/result.bin` and read back in the binary form (domain/async.ts `binaryStatusBody`). An answered
 * binary exchange is captured in its JSON form, as on the sync path.
 *
 * A request the predictor rejects (unknown model, invalid inputs, …) is answered `failed` at once. Any other
 * error is thrown so the queue retries the message; on its last attempt the request is answered `failed`
 * before the message goes to the dead-letter queue, so no caller polls forever.
 *
 * A request is reported (and captured) once, by the attempt that answers it: a run answered `done` or `failed`
 * reports itself; a run that failed with a 5xx is reported only if its attempt was the last
 * (`recordLastAttemptFailure`), never when the queue retries it. (A run answered whose result document could not be
 * written is retried, and reports again.)
 */
import { randomUUID } from 'node:crypto';
import { ASYNC_KEYS, QUEUE } from '../contract/events';
import { carriedBase64Bytes, carriedTextBytes, DEFAULT_ALIAS, LIMITS } from '../contract/limits';
import {
  type AsyncRequestDoc,
  type AsyncResultDoc,
  type AsyncStatusView,
  asyncStatusView,
  binaryStatusBody,
  checkBinaryRequest,
  checkRequestId,
  checkRequestShape,
} from '../domain/async';
import { errorFields } from '../domain/batch';
import {
  asksBinaryOutput,
  binaryAnswerAsJson,
  binaryRequestAsJson,
  type EncodedResponse,
} from '../domain/binary-tensors';
import { parseInferenceBody } from '../domain/body-parser';
import { BadRequestError, isMaasError, NotFoundError } from '../domain/errors';
import { ownInferenceId } from '../domain/inference-validation';
import { parseVersionRef, validateModelName } from '../domain/names';
import type { BlobStore, ObjectLinks, QueuePublisher } from '../ports/events';
import { type Clock, systemClock } from '../ports/index';
import { type InferenceObservation, rawInputOf } from './inference';
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
  /** `inferBinary` runs binary requests and `inferEncoded` JSON ones asking binary outputs; without them they fail. */
  readonly predictor: Pick<Predictor, 'infer'> & Partial<Pick<Predictor, 'inferBinary' | 'inferEncoded'>>;
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
/**
 * A request document as `enc` writes it, with the numbers it was sent: a literal beyond a double (`1e400`) parses
 * as Infinity, which JSON writes as `null`, so it is refused (the request would run on other values than were
 * sent); `-0`, which `JSON.stringify` writes as `0`, is written `-0` (through a marker no request can hold).
 */
function encRequest(doc: AsyncRequestDoc): string {
  let negativeZero: string | undefined;
  const text = JSON.stringify(doc, (key, value: unknown) => {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new BadRequestError(
        `the request holds a number beyond the range of a double${key && Number.isNaN(Number(key)) ? ` ('${key}')` : ''}, which cannot be kept until it runs`,
        'NON_FINITE',
      );
    }
    if (value === 0 && Object.is(value, -0)) {
      negativeZero ??= `-0 ${randomUUID()}`;
      return negativeZero;
    }
    return toJson(key, value);
  });
  return negativeZero === undefined ? text : text.replaceAll(JSON.stringify(negativeZero), '-0');
}
const dec = <T>(b: Uint8Array): T => JSON.parse(new TextDecoder().decode(b)) as T;

/** A request body of the binary tensor data extension, decoded from base64 and its Content-Encoding. */
export interface BinaryBody {
  readonly bytes: Uint8Array;
  /** Its `Inference-Header-Content-Length` (0: the raw form). */
  readonly headerLength: number;
}

/**
 * Accepts a request: stored, queued, answered with its id (202). `body` is a parsed JSON request; `binary` a
 * request of the binary tensor data extension (then `body` is not read), checked now and stored as it came.
 */
export async function submitAsyncInference(
  deps: AsyncInferenceDeps,
  input: {
    name: string;
    ref?: string;
    body?: unknown;
    binary?: BinaryBody;
    actor: string;
    routingKey?: string;
  },
): Promise<{ requestId: string }> {
  validateModelName(input.name);
  parseVersionRef(input.ref); // a malformed ref is the caller's 400 now, not a failed request later
  const binary = input.binary;
  let request: Record<string, unknown> | undefined;
  if (binary) checkBinaryRequest(binary.bytes, binary.headerLength);
  else request = checkRequestShape(input.body);
  const requestId = (deps.newId ?? randomUUID)();
  const doc: AsyncRequestDoc = {
    requestId,
    name: input.name,
    ref: input.ref ?? DEFAULT_ALIAS,
    ...(request ? { request } : {}),
    ...(binary ? { binary: { headerLength: binary.headerLength } } : {}),
    ...(input.routingKey ? { routingKey: input.routingKey } : {}),
    createdAt: (deps.clock ?? systemClock).now().toISOString(),
    actor: input.actor,
  };
  const document = encRequest(doc);
  // The body before its document: a request whose document exists always has its body.
  if (binary)
    await deps.blobs.put(ASYNC_KEYS.requestBody(requestId), binary.bytes, 'application/octet-stream');
  await deps.blobs.put(ASYNC_KEYS.request(requestId), document);
  await deps.queue.send({ type: 'async-infer', requestId });
  return { requestId };
}

/** A done request whose answer has binary outputs, in the binary form (see domain/async.ts `binaryStatusBody`). */
export interface AsyncBinaryAnswer {
  readonly status: 'done';
  readonly binary: { readonly body: Uint8Array; readonly headerLength: number };
}

/**
 * A done request whose answer is too large to answer inline (`maxResponseBytes`): where to read it instead.
 * `url` GETs the stored result object: for a JSON answer `result.json`, the status document `{"status": "done",
 * "result": …, "completedAt"}`; for a binary one `result.bin`, the answer as the predict path encodes it, a JSON
 * header of `headerLength` bytes (the OIP response) then the raw tensors.
 */
export interface AsyncLinkedAnswer {
  readonly status: 'done';
  readonly download: {
    readonly url: string;
    /** When `url` stops working (ISO 8601). */
    readonly expiresAt: string;
    readonly sizeBytes: number;
    readonly contentType: 'application/json' | 'application/octet-stream';
    /** Binary answers only: the `Inference-Header-Content-Length` of the object. */
    readonly headerLength?: number;
  };
}

/** What reading an async result needs. */
export interface AsyncResultDeps {
  readonly blobs: BlobStore;
  /** Presigns the GETs of results too large to answer inline. */
  readonly links: ObjectLinks;
  /** Largest answer body answered inline, as the response carries it. @default LIMITS.maxResponseBytes */
  readonly maxResponseBytes?: number;
  /** Lifetime of a result's link. @default LIMITS.resultUrlTtlSeconds */
  readonly resultUrlTtlSeconds?: number;
  readonly clock?: Clock;
}

/** `{"status":"done","result":` and `}`: what the binary form adds around the stored answer's JSON header. */
const BINARY_STATUS_FRAMING = '{"status":"done","result":}'.length;

/** Bytes of a binary answer body of `n` bytes as the response carries it: a string of its base64. */
const binaryAnswerLength = (n: number) => carriedBase64Bytes(n) + 2;

/** Bytes of a JSON answer body as the response carries it: a string, escaped once more. */
const jsonAnswerLength = (view: unknown) => carriedTextBytes(JSON.stringify(view)) + 2;

/**
 * `GET /async/{requestId}`: pending until the worker writes a result; NotFoundError for unknown ids. A binary
 * answer comes back as `AsyncBinaryAnswer`, everything else as the JSON status view; a done answer that would not
 * fit `maxResponseBytes` as `AsyncLinkedAnswer`. The sizes are read first (HEAD), so a large result is never
 * read here: a result document larger than the limit can only be a done JSON answer (a failed or binary one holds
 * a message or a header length), and its answer would be no smaller.
 */
export async function getAsyncStatus(
  deps: AsyncResultDeps,
  requestId: string,
): Promise<AsyncStatusView | AsyncBinaryAnswer | AsyncLinkedAnswer> {
  checkRequestId(requestId);
  const max = deps.maxResponseBytes ?? LIMITS.maxResponseBytes;
  const link = async (
    key: string,
    sizeBytes: number,
    binary?: { headerLength: number },
  ): Promise<AsyncLinkedAnswer> => {
    const expiresInSeconds = deps.resultUrlTtlSeconds ?? LIMITS.resultUrlTtlSeconds;
    const expiresAt = new Date((deps.clock ?? systemClock).now().getTime() + expiresInSeconds * 1000);
    const url = await deps.links.presignGet(key, expiresInSeconds);
    return {
      status: 'done',
      download: {
        url,
        expiresAt: expiresAt.toISOString(),
        sizeBytes,
        contentType: binary ? 'application/octet-stream' : 'application/json',
        ...(binary ? { headerLength: binary.headerLength } : {}),
      },
    };
  };
  const resultKey = ASYNC_KEYS.result(requestId);
  const stored = await deps.blobs.head(resultKey);
  if (stored && stored.sizeBytes > max) return link(resultKey, stored.sizeBytes);
  const result = stored ? await deps.blobs.get(resultKey) : undefined;
  if (result) {
    const doc = dec<AsyncResultDoc>(result);
    if (doc.status === 'done' && 'binary' in doc) {
      const bodyKey = ASYNC_KEYS.resultBody(requestId);
      const body = await deps.blobs.head(bodyKey);
      if (!body) throw new Error(`async request ${requestId} has a binary result without its body`);
      if (binaryAnswerLength(body.sizeBytes + BINARY_STATUS_FRAMING) > max) {
        return link(bodyKey, body.sizeBytes, { headerLength: doc.binary.headerLength });
      }
      const bytes = await deps.blobs.get(bodyKey);
      if (!bytes) throw new Error(`async request ${requestId} has a binary result without its body`);
      return { status: 'done', binary: binaryStatusBody(bytes, doc.binary.headerLength) };
    }
    const view = asyncStatusView(doc);
    if (view.status === 'done' && jsonAnswerLength(view) > max) return link(resultKey, result.byteLength);
    return view;
  }
  const request = await deps.blobs.head(ASYNC_KEYS.request(requestId));
  if (!request) throw new NotFoundError(`no async request '${requestId}'`, 'ASYNC_REQUEST_NOT_FOUND');
  return asyncStatusView(undefined);
}

/**
 * The report of a run that failed with a 5xx, by the error it threw: made by `recordLastAttemptFailure` when that
 * attempt was the request's last, with the answer it got; dropped with the error when the message is retried.
 */
const failedRuns = new WeakMap<object, (answer: unknown) => void>();

/**
 * Runs one queued request. Throws (so the message is retried) only for errors that are not the request's; a run
 * that failed so is reported only by `recordLastAttemptFailure` on the last receive. A request answered while it
 * ran (`PROCESSING_FAILED` at the deadline of its last receive) keeps that answer: the run writes and reports
 * nothing (`duplicate`).
 */
export async function runAsyncInference(
  deps: AsyncWorkerDeps,
  requestId: string,
): Promise<AsyncResultDoc['status'] | 'duplicate'> {
  const clock = deps.clock ?? systemClock;
  if (await deps.blobs.head(ASYNC_KEYS.result(requestId))) return 'duplicate';
  const bytes = await deps.blobs.get(ASYNC_KEYS.request(requestId));
  if (!bytes) throw new Error(`async request ${requestId} has no request document`);
  const doc = dec<AsyncRequestDoc>(bytes);
  let body: Uint8Array | undefined;
  if (doc.binary) {
    body = await deps.blobs.get(ASYNC_KEYS.requestBody(requestId));
    if (!body) throw new Error(`async request ${requestId} has no request body`);
  }
  const startedAt = performance.now();
  const obs: InferenceObservation = doc.routingKey ? { routingKey: doc.routingKey } : {};
  // The request's own id names it even when it fails before it runs (validation), as on the sync path: its
  // metrics and its capture record carry it. (A binary request's id is read from its header when it is parsed.)
  const ownId = ownInferenceId(doc.request);
  if (ownId !== undefined) obs.inferenceId = ownId;
  /**
   * Reports the run. An answered binary exchange is captured in its JSON form (`binaryRequestAsJson`,
   * `binaryAnswerAsJson`; a raw body is the served version's one input); a failed binary request is not captured.
   */
  const observed = (
    status: number,
    response: unknown,
    code?: string,
    answerBody?: Uint8Array,
    answerHeaderLength?: number,
  ) => {
    const failedBinary = status !== 200 && doc.binary !== undefined;
    deps.observer?.answered({
      model: doc.name,
      ref: doc.ref,
      obs,
      status,
      startedAt,
      payloadBytes: body?.byteLength ?? bytes.byteLength,
      // Serialized only when the request is captured.
      requestText: () =>
        body && doc.binary
          ? binaryRequestAsJson(body, doc.binary.headerLength, rawInputOf(obs.served))
          : JSON.stringify(doc.request),
      requestContentType: 'application/json',
      responseText: () =>
        answerBody && answerHeaderLength !== undefined
          ? binaryAnswerAsJson(answerBody, answerHeaderLength)
          : JSON.stringify(response),
      ...(code !== undefined ? { code } : {}),
      binary: failedBinary,
    });
  };
  let result: AsyncResultDoc;
  let answerBody: Uint8Array | undefined;
  let report: () => void;
  try {
    let encoded: EncodedResponse | undefined;
    let response: unknown;
    if (doc.binary && body) {
      if (!deps.predictor.inferBinary) throw new Error('this worker cannot run binary requests');
      encoded = await deps.predictor.inferBinary(doc.name, doc.ref, body, doc.binary.headerLength, obs);
    } else if (asksBinaryOutput(doc.request)) {
      if (!deps.predictor.inferEncoded) throw new Error('this worker cannot answer binary outputs');
      encoded = await deps.predictor.inferEncoded(doc.name, doc.ref, doc.request, obs);
    } else {
      response = await deps.predictor.infer(doc.name, doc.ref, doc.request, obs);
    }
    const completedAt = clock.now().toISOString();
    if (encoded?.headerLength !== undefined) {
      answerBody = encoded.body;
      result = { status: 'done', binary: { headerLength: encoded.headerLength }, completedAt };
    } else {
      // A JSON answer of the encoder: parsed as the predict path parses (64-bit integers exact), stored as today.
      if (encoded) response = parseInferenceBody(new TextDecoder().decode(encoded.body));
      result = { status: 'done', result: response, completedAt };
    }
    const answer = answerBody;
    const headerLength = encoded?.headerLength;
    report = () => observed(200, response, undefined, answer, headerLength);
  } catch (e) {
    const status = isMaasError(e) ? e.status : 500;
    if (!isMaasError(e) || e.status >= 500) {
      // Retried unless this receive is the last: reported then, as the answer the request gets.
      if (deps.observer && typeof e === 'object' && e !== null) {
        const code = isMaasError(e) ? e.code : undefined;
        failedRuns.set(e, (answer) => observed(status, answer, code));
      }
      throw e;
    }
    result = { status: 'failed', ...errorFields(e), completedAt: clock.now().toISOString() };
    const code = e.code;
    report = () => observed(status, errorFields(e), code);
  }
  // The first answer written stands (the store has no conditional write: a head, then the writes).
  if (await deps.blobs.head(ASYNC_KEYS.result(requestId))) return 'duplicate';
  report();
  // The answer's body before the result document that points to it.
  if (answerBody) {
    await deps.blobs.put(ASYNC_KEYS.resultBody(requestId), answerBody, 'application/octet-stream');
  }
  await deps.blobs.put(ASYNC_KEYS.result(requestId), enc(result));
  return result.status;
}

/**
 * Called when processing a message failed (or was still running at the deadline of its invocation): on its last
 * receive the request is answered `failed` since the queue is about to dead-letter it, and a run that failed with a
 * 5xx is reported (and captured) with that answer. A request answered already keeps its answer (the first written
 * stands) and nothing is reported. Earlier receives report nothing: the queue retries them. Returns whether it
 * answered the request. Throws when the request or its answer could not be read, or the answer written (the run is
 * reported all the same), so that a caller that can try again does (the dead-letter path); an answer that could
 * not be read is never written over.
 */
export async function recordLastAttemptFailure(
  deps: AsyncWorkerDeps,
  requestId: string,
  receiveCount: number,
  err: unknown,
): Promise<boolean> {
  if (receiveCount < (deps.maxReceiveCount ?? QUEUE.maxReceiveCount)) return false;
  const result: AsyncResultDoc = {
    status: 'failed',
    error: `the request could not be processed after ${receiveCount} attempts${isMaasError(err) ? `: ${err.message}` : ''}`,
    code: 'PROCESSING_FAILED',
    completedAt: (deps.clock ?? systemClock).now().toISOString(),
  };
  let request: unknown;
  let answered: unknown;
  let failure: { readonly error: unknown } | undefined;
  try {
    request = await deps.blobs.head(ASYNC_KEYS.request(requestId));
    answered = request ? await deps.blobs.head(ASYNC_KEYS.result(requestId)) : undefined;
    if (request && !answered) await deps.blobs.put(ASYNC_KEYS.result(requestId), enc(result));
  } catch (error) {
    failure = { error };
  }
  // The failed run ends here, whether or not its answer could be written.
  if (typeof err === 'object' && err !== null) {
    const report = failedRuns.get(err);
    failedRuns.delete(err);
    if (!answered) report?.({ error: result.error, code: result.code });
  }
  if (failure) throw failure.error;
  return request !== undefined && !answered;
}

/**
 * Async inference and the work queue, pure part: the messages on the queue, the stored request and result
 * documents, and the status answer of `GET /async/{requestId}`.
 */
import { z } from 'zod';
import { LIMITS } from '../contract/limits';
import { BatchAggregateMessageSchema, BatchPartMessageSchema } from './batch';
import { checkRawBody, parseBinaryRequest } from './binary-tensors';
import { DeriveMessageSchema } from './derive';
import { BadRequestError } from './errors';
import {
  checkInputsData,
  checkNamesDistinct,
  checkRequestShape as checkOipRequest,
} from './inference-validation';
import { isModelName } from './names';
import { nestsDeeperThan } from './nesting';

/**
 * An OIP request body checked before an async request is accepted, as far as it can be without the model, with the
 * sync route's own checks and codes: its structure (inference-validation.ts `checkRequestShape`: an object with a
 * non-empty `inputs` of named inputs with a datatype, a shape of non-negative integers and `data`, an inference id,
 * `parameters` objects and their binary data flags); since it is stored as JSON until it runs, its whole nesting at
 * most `LIMITS.maxNesting` levels more than the request's own three (the body, `inputs`, an input); no input given
 * twice and no output asked twice (`checkNamesDistinct`); then each input's data against its own datatype and shape
 * (`checkInputsData`: element count, element types, ranges, finiteness), in time linear in the data. What needs the
 * model (which input and output names it has, its datatypes and shapes) is checked when the request runs. Throws
 * BadRequestError.
 */
export function checkRequestShape(raw: unknown): Record<string, unknown> {
  const request = checkOipRequest(raw);
  if (nestsDeeperThan(raw, LIMITS.maxNesting + 3)) {
    throw new BadRequestError(
      `the request nests deeper than ${LIMITS.maxNesting} levels of 'data' or 'parameters'`,
      'INVALID_REQUEST',
    );
  }
  checkNamesDistinct(request);
  checkInputsData(request);
  return raw as Record<string, unknown>;
}

/**
 * Checks a request body of the binary tensor data extension before an async request is accepted, as far as it
 * can be without the model: the JSON header, each binary input's `binary_data_size` against its shape and
 * datatype, the sizes adding up to the body, BYTES lengths, BOOL bytes (parseBinaryRequest), then the request as
 * for JSON (`checkRequestShape`), so the JSON inputs of a mixed request have their data checked too (the binary
 * ones, decoded already, only their length). The raw form (`headerLength` 0) needs the model's only input and is
 * checked when it runs, as the sync route checks it; an empty raw body, which no input takes, is refused now.
 * Throws BadRequestError (400) like the sync route.
 */
export function checkBinaryRequest(body: Uint8Array, headerLength: number): void {
  if (headerLength === 0) checkRawBody(body);
  else checkRequestShape(parseBinaryRequest(body, headerLength).request);
}

/** Request ids are UUIDs (lower-case, as `crypto.randomUUID()` makes them). */
export const REQUEST_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function checkRequestId(id: string): string {
  if (!REQUEST_ID_PATTERN.test(id))
    throw new BadRequestError(`'${id}' is not a request id`, 'INVALID_REQUEST_ID');
  return id;
}

/** A message on the work queue. */
export const WorkMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('async-infer'), requestId: z.string().regex(REQUEST_ID_PATTERN) }),
  /** Scores one part of a batch job, or carries on with it from its cursor (the batch queue; functions/app/batch-score.ts). */
  BatchPartMessageSchema,
  /** Assembles a batch job's output once its last part is done (the batch queue). */
  BatchAggregateMessageSchema,
  /** Completes a PENDING version: a registration that did not fit the API's time continues here. */
  z.object({
    type: z.literal('register-complete'),
    name: z.string().refine(isModelName, 'not a model name'),
    version: z.number().int().min(1),
  }),
  /** Completes a PENDING derived version: transforms, accuracy gate, READY or FAILED (functions/app/derive.ts). */
  DeriveMessageSchema,
  /**
   * A request answered through an alias with a shadow, mirrored after its answer: the worker runs `requestText` on
   * `model` version `shadowVersion` and compares its answer with `answerText` (functions/app/shadow.ts). Both travel
   * as the texts the caller sent and got: the worker parses the request as the predict path does (64-bit integers
   * exact), and the predict path parses nothing to mirror it.
   */
  z.object({
    type: z.literal('shadow'),
    model: z.string().refine(isModelName, 'not a model name'),
    alias: z.string().min(1),
    servedVersion: z.number().int().min(1),
    shadowVersion: z.number().int().min(1),
    inferenceId: z.string(),
    /** When the caller was answered (ISO 8601). */
    at: z.string(),
    /** The OIP request body as received. */
    requestText: z.string(),
    /** The OIP response body the caller got. */
    answerText: z.string(),
  }),
]);
export type WorkMessage = z.output<typeof WorkMessageSchema>;

/** The work message of a mirrored request (shadow traffic). */
export type ShadowMirrorMessage = Extract<WorkMessage, { type: 'shadow' }>;

/** Thrown for a queue message that can never be processed (it is retried, then dead-lettered). */
export class MalformedMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedMessageError';
  }
}

/** The outputs of a shadow message's answer, as JSON carries them. */
const ShadowAnswerSchema = z.looseObject({
  outputs: z.array(
    z.looseObject({
      name: z.string(),
      shape: z.array(z.number().int().min(0)),
      datatype: z.string(),
      data: z.unknown(),
    }),
  ),
});

/** The answer of a shadow message (`answerText`); MalformedMessageError when it is not an OIP response. */
export function parseShadowAnswer(text: string): {
  outputs: { name: string; shape: number[]; datatype: string; data: unknown }[];
} {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new MalformedMessageError("the shadow message's answer is not JSON");
  }
  const parsed = ShadowAnswerSchema.safeParse(raw);
  if (!parsed.success)
    throw new MalformedMessageError(
      `the shadow message's answer is not an OIP response: ${parsed.error.message}`,
    );
  return parsed.data;
}

export function parseWorkMessage(body: string): WorkMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    throw new MalformedMessageError('queue message is not JSON');
  }
  const parsed = WorkMessageSchema.safeParse(raw);
  if (!parsed.success)
    throw new MalformedMessageError(`queue message is not a work message: ${parsed.error.message}`);
  return parsed.data;
}

/** `async/{requestId}/request.json`. */
export interface AsyncRequestDoc {
  readonly requestId: string;
  readonly name: string;
  /** Version number or alias as the caller wrote it (alias `prod` when absent). */
  readonly ref: string;
  /** The JSON request; absent for a binary one (`binary`). */
  readonly request?: Record<string, unknown>;
  /**
   * A request of the binary tensor data extension: its body is stored as it came in
   * `async/{requestId}/request.bin`, and `headerLength` is its `Inference-Header-Content-Length`.
   */
  readonly binary?: { readonly headerLength: number };
  /** The `x-maas-routing-key` the request came with (it routes the request within a split alias). */
  readonly routingKey?: string;
  readonly createdAt: string;
  readonly actor: string;
}

/** A binary answer: its body (JSON header + raw tensors) is `async/{requestId}/result.bin`. */
export interface AsyncBinaryResult {
  /** The length in bytes of the answer's JSON header (its `Inference-Header-Content-Length`). */
  readonly headerLength: number;
}

/** `async/{requestId}/result.json`. */
export type AsyncResultDoc =
  | { readonly status: 'done'; readonly result: unknown; readonly completedAt: string }
  | { readonly status: 'done'; readonly binary: AsyncBinaryResult; readonly completedAt: string }
  | {
      readonly status: 'failed';
      readonly error: string;
      readonly code: string;
      readonly completedAt: string;
    };

/** The answer of `GET /async/{requestId}`. */
export type AsyncStatusView =
  | { status: 'pending' }
  | { status: 'done'; result: unknown }
  | { status: 'failed'; error: string; code: string };

/** The status view of a request whose request document exists, given its result document (if any). */
export function asyncStatusView(result: AsyncResultDoc | undefined): AsyncStatusView {
  if (!result) return { status: 'pending' };
  if (result.status === 'done') {
    if (!('result' in result)) throw new Error('a binary result has no JSON view; see binaryStatusBody');
    return { status: 'done', result: result.result };
  }
  return { status: 'failed', error: result.error, code: result.code };
}

/**
 * The answer of `GET /async/{requestId}` for a binary result, in the binary tensor data form: its JSON header is
 * the status document `{"status":"done","result":<the answer's JSON header>}` (binary outputs carry
 * `parameters.binary_data_size`, no `data`), followed by the answer's raw tensors as the worker stored them.
 * `stored` is the stored answer body and `headerLength` its JSON header's length; `headerLength` of the result is
 * the new header's length (the `Inference-Header-Content-Length` to answer with).
 */
export function binaryStatusBody(
  stored: Uint8Array,
  headerLength: number,
): { body: Uint8Array; headerLength: number } {
  if (!Number.isSafeInteger(headerLength) || headerLength <= 0 || headerLength > stored.length) {
    throw new Error(
      `a stored binary answer of ${stored.length} bytes cannot have a header of ${headerLength}`,
    );
  }
  const prefix = new TextEncoder().encode('{"status":"done","result":');
  const body = new Uint8Array(prefix.length + stored.length + 1);
  body.set(prefix);
  body.set(stored.subarray(0, headerLength), prefix.length);
  const end = prefix.length + headerLength;
  body[end] = 0x7d; // '}'
  body.set(stored.subarray(headerLength), end + 1);
  return { body, headerLength: end + 1 };
}

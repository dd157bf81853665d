/**
 * Async inference and the work queue, pure part: the messages on the queue, the stored request and result
 * documents, and the status answer of `GET /async/{requestId}`.
 */
import { z } from 'zod';
import { BatchCursorSchema } from './batch';
import { BadRequestError } from './errors';

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
  z.object({ type: z.literal('batch-continue'), cursor: BatchCursorSchema }),
]);
export type WorkMessage = z.output<typeof WorkMessageSchema>;

/** Thrown for a queue message that can never be processed (it is retried, then dead-lettered). */
export class MalformedMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedMessageError';
  }
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
  readonly request: Record<string, unknown>;
  readonly createdAt: string;
  readonly actor: string;
}

/** `async/{requestId}/result.json`. */
export type AsyncResultDoc =
  | { readonly status: 'done'; readonly result: unknown; readonly completedAt: string }
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
  if (result.status === 'done') return { status: 'done', result: result.result };
  return { status: 'failed', error: result.error, code: result.code };
}

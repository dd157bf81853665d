/**
 * API Gateway HTTP API (payload v2) glue shared by every HTTP handler: body parsing with limits,
 * JSON responses, the caller's identity, and the one mapping from errors to HTTP answers.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { LIMITS } from '../contract/limits';
import { matchRoute, type OperationId, routeKey } from '../contract/routes';
import {
  BadRequestError,
  isMaasError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  UnavailableError,
} from '../domain/errors';
import type { Invocation, Logger } from '../ports/logger';
import { hasContentEncoding, requestBytes } from './request-body';

export type HttpEvent = APIGatewayProxyEventV2 & {
  requestContext: APIGatewayProxyEventV2['requestContext'] & {
    authorizer?: {
      iam?: { userArn?: string; userId?: string; callerId?: string };
      jwt?: { claims?: Record<string, string | number | boolean> };
    };
  };
};
export type HttpResult = APIGatewayProxyStructuredResultV2;

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

/** A body already serialized (the predict path builds its JSON itself). */
export function rawJson(statusCode: number, body: string): HttpResult {
  return { statusCode, headers: { 'content-type': JSON_HEADERS['content-type'] }, body };
}

/**
 * Finds which of a handler's operations an event asks for, as its operation id. `ops` are the handler's
 * operations by route key (`operationsOf(fn)` of the contract). API Gateway sets `routeKey` from the route
 * table; events it did not route (`$default`, hand-built) are matched on their path here. A path of
 * another function's operation is a 404, a known path with another method a 405.
 */
export function resolveOperation<Op extends OperationId>(
  event: HttpEvent,
  ops: ReadonlyMap<string, Op>,
): { op: Op; params: Record<string, string | undefined> } {
  const op = ops.get(event.routeKey);
  if (op !== undefined) return { op, params: event.pathParameters ?? {} };
  const method = event.requestContext?.http?.method ?? 'GET';
  const m = matchRoute(method, event.rawPath ?? '/');
  if (m && 'methodNotAllowed' in m)
    throw new MethodNotAllowedError(`${method} is not allowed on ${event.rawPath}`, m.allowed);
  const found = m ? ops.get(routeKey(m.route)) : undefined;
  if (!m || found === undefined)
    throw new NotFoundError(`no route for ${method} ${event.rawPath}`, 'ROUTE_NOT_FOUND');
  return { op: found, params: m.pathParameters };
}

/**
 * The entry of a function whose environment is unusable: every request is answered with a JSON 500, its cause
 * logged with each. Nothing is logged at import (the local server imports the handler modules for their
 * factories, without a Lambda environment).
 */
export function misconfiguredHandler(
  cause: unknown,
  logger: Logger,
): (event: HttpEvent, context?: Invocation) => Promise<HttpResult> {
  return async (_event, context) => errorResult(cause, logger.forRequest(context));
}

/**
 * Maps any thrown value to an OIP-style error answer; never leaks a stack trace. What the caller is not told (a
 * dependency's failure, an unexpected error) is logged with `logger`.
 */
export function errorResult(err: unknown, logger?: Pick<Logger, 'error'>): HttpResult {
  // Ours, or the 503 of ours a library's error wraps (Powertools Idempotency wraps its persistence layer's).
  const own = isMaasError(err) ? err : unavailableIn(err);
  if (own !== undefined) {
    // A caller's mistake is answered, not logged; a failure of ours is logged, with what caused it.
    if (own.status >= 500) {
      logger?.error(own.message, {
        code: own.code,
        ...(own.cause !== undefined ? { cause: describe(own.cause) } : {}),
        ...(own !== err ? { wrappedBy: describe(err) } : {}),
      });
    }
    const headers: Record<string, string> =
      own instanceof UnavailableError
        ? { 'retry-after': String(own.retryAfterSeconds) }
        : own instanceof MethodNotAllowedError
          ? { allow: own.allowed.join(', ') }
          : {};
    return json(own.status, { error: own.message, code: own.code }, headers);
  }
  if (isDependencyUnavailable(err)) {
    logger?.error('dependency unavailable', { error: describe(err) });
    return json(
      503,
      { error: 'a dependency is unavailable, retry later', code: 'UNAVAILABLE' },
      { 'retry-after': '1' },
    );
  }
  logger?.error('unhandled error', { error: describe(err) });
  return json(500, { error: 'internal error', code: 'INTERNAL' });
}

function describe(err: unknown): Record<string, unknown> {
  return err instanceof Error
    ? { name: err.name, message: err.message, stack: err.stack }
    : { value: String(err) };
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
]);
const THROTTLE_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'ServiceUnavailable',
  'InternalServerError',
  'SlowDown',
  'TimeoutError',
]);

/** The UnavailableError among the causes of `err` (a few levels deep), if any. */
function unavailableIn(err: unknown): UnavailableError | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e instanceof Error; depth++) {
    if (e instanceof UnavailableError) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function isDependencyUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code;
  if (code && UNAVAILABLE_CODES.has(code)) return true;
  if (THROTTLE_NAMES.has(err.name)) return true;
  // An AWS service's own failure (5xx), as the SDK and aws-http.ts mark it, after their retries.
  if ((err as { $fault?: string }).$fault === 'server') return true;
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err && isDependencyUnavailable(cause);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes of a body as text: bytes that are not UTF-8 are a 400, never read as U+FFFD. */
function utf8(bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new BadRequestError('request body is not UTF-8 text', 'MALFORMED_JSON');
  }
}

/** Raw body bytes of the event, honouring `isBase64Encoded`, with the size limit enforced. */
export function bodyText(event: HttpEvent, maxBytes: number = LIMITS.maxBodyBytes): string {
  if (hasContentEncoding(event)) return utf8(requestBytes(event, maxBytes));
  const raw = event.body ?? '';
  if (!event.isBase64Encoded) {
    const size = Buffer.byteLength(raw, 'utf8');
    if (size > maxBytes) tooLarge(size, maxBytes);
    return raw;
  }
  const size = Buffer.byteLength(raw, 'base64');
  if (size > maxBytes) tooLarge(size, maxBytes);
  return utf8(Buffer.from(raw, 'base64'));
}

function tooLarge(size: number, maxBytes: number): never {
  throw new PayloadTooLargeError(`request body is ${size} bytes; the limit is ${maxBytes} bytes`);
}

/** Parses a JSON object body; malformed JSON or a non-object is a 400. */
export function parseJsonObject(event: HttpEvent, maxBytes?: number): Record<string, unknown> {
  const text = bodyText(event, maxBytes);
  if (text.trim() === '')
    throw new BadRequestError('request body is empty; a JSON object is required', 'MALFORMED_JSON');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new BadRequestError(`request body is not valid JSON: ${(e as Error).message}`, 'MALFORMED_JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BadRequestError('request body must be a JSON object', 'MALFORMED_JSON');
  }
  return parsed as Record<string, unknown>;
}

/** The caller's identity: IAM principal, else JWT subject, else 'anonymous'. */
export function actorOf(event: HttpEvent): string {
  const auth = event.requestContext?.authorizer;
  const iam = auth?.iam;
  if (iam?.userArn) return iam.userArn;
  if (iam?.callerId) return iam.callerId;
  const sub = auth?.jwt?.claims?.sub;
  if (sub !== undefined) return String(sub);
  return 'anonymous';
}

export function pathParam(event: HttpEvent, name: string): string {
  const value = event.pathParameters?.[name];
  if (value === undefined || value === '') throw new BadRequestError(`path parameter '${name}' is missing`);
  return value;
}

export function queryParam(event: HttpEvent, name: string): string | undefined {
  return event.queryStringParameters?.[name];
}

/**
 * Builds API Gateway HTTP API (payload 2.0) events for handler tests. `routeKey` and `pathParameters`
 * come from the contract's route table (`matchRoute`), exactly as API Gateway would fill them.
 */
import { matchRoute, routeKey as routeKeyOf } from '../../functions/contract/routes';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';

export interface ApiEventOptions {
  /** An object/array is JSON-encoded; a string is sent as is; bytes (a Uint8Array) are sent base64-encoded. */
  readonly body?: unknown;
  /** Query parameters; they may also be written in `path` after `?`. */
  readonly query?: Record<string, string>;
  readonly headers?: Record<string, string>;
  /** Sends the body base64-encoded (`isBase64Encoded: true`). */
  readonly base64?: boolean;
  /** IAM principal ARN of the caller (`requestContext.authorizer.iam.userArn`). */
  readonly actor?: string;
  /** JWT claims of the caller (`requestContext.authorizer.jwt.claims`). */
  readonly jwtClaims?: Record<string, string | number | boolean>;
}

/**
 * An APIGW v2 event for `method path`. Unknown paths get routeKey `$default` (what a catch-all route
 * would receive) and no path parameters.
 */
export function apiEvent(method: string, path: string, opts: ApiEventOptions = {}): HttpEvent {
  const upper = method.toUpperCase();
  const [rawPath = '/', inlineQuery = ''] = path.split('?', 2);
  const params = new URLSearchParams(inlineQuery);
  for (const [k, v] of Object.entries(opts.query ?? {})) params.set(k, v);
  const queryStringParameters = Object.fromEntries(params.entries());
  const match = matchRoute(upper, rawPath);
  const found = match && 'route' in match ? match : undefined;
  const routeKey = found ? routeKeyOf(found.route) : '$default';

  const bytes = opts.body instanceof Uint8Array ? Buffer.from(opts.body) : undefined;
  const base64 = Boolean(opts.base64) || bytes !== undefined;
  let body: string | undefined;
  if (bytes) body = bytes.toString('latin1');
  else if (opts.body !== undefined)
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v;
  if (body !== undefined && headers['content-type'] === undefined)
    headers['content-type'] = 'application/json';
  if (body !== undefined) headers['content-length'] = String(bytes?.length ?? Buffer.byteLength(body));
  if (bytes) body = bytes.toString('base64');
  else if (base64 && body !== undefined) body = Buffer.from(body, 'utf8').toString('base64');

  const now = new Date();
  const authorizer = opts.actor
    ? { iam: { userArn: opts.actor, callerId: opts.actor.split('/').pop() ?? opts.actor } }
    : opts.jwtClaims
      ? { jwt: { claims: opts.jwtClaims, scopes: [] } }
      : undefined;
  const event = {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString: params.toString(),
    headers,
    ...(params.size > 0 ? { queryStringParameters } : {}),
    ...(found && Object.keys(found.pathParameters).length > 0
      ? { pathParameters: found.pathParameters }
      : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'local',
      domainName: '127.0.0.1',
      domainPrefix: '127',
      http: { method: upper, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: `req-${Math.random().toString(36).slice(2, 10)}`,
      routeKey,
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
      ...(authorizer ? { authorizer } : {}),
    },
    ...(body !== undefined ? { body } : {}),
    isBase64Encoded: base64 && body !== undefined,
  };
  return event as unknown as HttpEvent;
}

/** Parses a handler answer: status, lower-cased headers and the JSON body (undefined when empty). */
export function parseResult<T = Record<string, unknown>>(
  r: HttpResult,
): { status: number; headers: Record<string, string>; body: T } {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = String(v);
  const text = r.isBase64Encoded && r.body ? Buffer.from(r.body, 'base64').toString('utf8') : r.body;
  return {
    status: r.statusCode ?? 200,
    headers,
    body: (text ? JSON.parse(text) : undefined) as T,
  };
}

/**
 * The local HTTP front door: turns node:http requests into API Gateway HTTP API (payload v2) events,
 * routes them with the contract's route table (`matchRoute`) to the same handler objects Lambda runs, and
 * writes the handlers' results back as HTTP answers. Each event carries its route's `routeKey` as API Gateway
 * sets it, from which the handlers resolve the route's operation id exactly as in AWS.
 */
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { LIMITS } from '../contract/limits';
import { type FunctionId, matchRoute, type RouteMatch, routeKey } from '../contract/routes';
import {
  BadRequestError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
} from '../domain/errors';
import { errorResult, type HttpEvent, type HttpResult, json } from '../handlers/http';
import { isLoopbackName, LOOPBACK_NAMES } from './loopback';

/** A Lambda HTTP handler as the handler modules export it. */
// biome-ignore lint/suspicious/noExplicitAny: Lambda handlers take a Context the local server fakes.
export type LocalHttpHandler = (event: HttpEvent, context?: any) => Promise<HttpResult | string | object>;

export interface LocalServerOptions {
  /** Handler per function of the route table; a missing one answers 501 NOT_IMPLEMENTED. */
  readonly handlers: Partial<Record<FunctionId, LocalHttpHandler>>;
  /** Requests with a larger body are refused with 413; past it nothing of the body is kept. */
  readonly maxBodyBytes?: number;
  /**
   * How much of a refused body is still read (and discarded) before the 413 is sent, so that the client reads
   * the answer instead of a connection reset; a body declared or found larger is answered at once.
   * @default 4 × maxBodyBytes, at least 1 MiB
   */
  readonly drainBytes?: number;
  /** How long a refused body may take to drain before the 413 is sent anyway. @default 10 000 ms */
  readonly drainMs?: number;
  /** Identity reported for routes that require IAM auth in AWS (history `actor`). */
  readonly actor?: string;
  /** Receives one line per unexpected failure. */
  readonly onError?: (message: string, err: unknown) => void;
  /**
   * The Prometheus text of the local metrics, served as `GET /metrics` (the local server's own route, outside the
   * route table; what `maas stats` reads). Without it `/metrics` is a 404.
   */
  readonly metrics?: () => string | Promise<string>;
  /**
   * Sets a local alarm's state (`POST /local/alarms/{name}` with `{"state": "ALARM" | "OK" | "INSUFFICIENT_DATA"}`,
   * the local server's own route, outside the route table; what `maas alarm` calls) and answers what it did (200
   * `{alarm, state, rolledBack}`). `{name}` is one percent-encoded path segment: a `/` of the name is `%2F`. Without
   * it the path is a 404.
   */
  readonly alarms?: (name: string, state: LocalAlarmState) => Promise<object>;
  /**
   * Whether only requests to a loopback name of the server (its `Host`) are answered, and none sent by a page of
   * another origin (its `Origin`): a web page the user visits can neither post to the service (no CORS preflight
   * guards a form's POST) nor reach it under a name of its own (DNS rebinding). The CLI, curl and SDKs send no
   * `Origin`; the console's page is served by the server itself.
   * @default true (startLocalServer: true when it listens on a loopback address)
   */
  readonly loopbackOnly?: boolean;
}

/** The states a local alarm can be set to. */
export const LOCAL_ALARM_STATES = ['ALARM', 'OK', 'INSUFFICIENT_DATA'] as const;
export type LocalAlarmState = (typeof LOCAL_ALARM_STATES)[number];

/** The prefix of the local server's alarm route (`POST /local/alarms/{name}`; not a route of the HTTP API). */
export const LOCAL_ALARMS_PATH = '/local/alarms/';

/** The local server's own metrics path (not a route of the HTTP API). */
export const METRICS_PATH = '/metrics';

/** Content type of the Prometheus text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const TEXT_TYPES = [
  /^text\//,
  /^application\/(json|xml|javascript|x-www-form-urlencoded|graphql|x-ndjson)\b/,
  /\+(json|xml)\b/,
];

/** API Gateway base64-encodes bodies whose content type is not text. */
export function isTextContentType(contentType: string | undefined): boolean {
  if (!contentType) return true;
  const ct = contentType.toLowerCase();
  return TEXT_TYPES.some((re) => re.test(ct));
}

const localActor = (): string => {
  try {
    return `local:${userInfo().username}`;
  } catch {
    return 'local';
  }
};

/** A request's target as a URL; one that is none (`http://[`) is a 400, as API Gateway refuses it. */
function requestUrl(req: Pick<IncomingMessage, 'url'>): URL {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    throw new BadRequestError('the request target is not a valid URL', 'INVALID_URL');
  }
}

/** Builds the API Gateway v2 event for one request whose route matched. */
export function toEvent(
  req: Pick<IncomingMessage, 'method' | 'url' | 'headers' | 'socket'>,
  body: Buffer,
  match: RouteMatch,
  actor: string = localActor(),
  now: Date = new Date(),
): HttpEvent {
  const url = requestUrl(req);
  const headers: Record<string, string> = {};
  let cookies: string[] | undefined;
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (lower === 'cookie') {
      cookies = (Array.isArray(value) ? value.join('; ') : value)
        .split(';')
        .map((c) => c.trim())
        .filter(Boolean);
      continue;
    }
    headers[lower] = Array.isArray(value) ? value.join(',') : value;
  }
  const queryStringParameters: Record<string, string> = {};
  for (const key of new Set(url.searchParams.keys())) {
    queryStringParameters[key] = url.searchParams.getAll(key).join(',');
  }
  // As API Gateway: a body of a text Content-Type is passed as text, any other base64-encoded. Without a
  // Content-Type, a body of the binary tensor data extension (its client sends none) or a compressed one is passed
  // base64-encoded, its bytes intact; a bare JSON body as text (the handlers read both alike). A JSON body whose
  // bytes are not UTF-8 is passed base64-encoded whatever its type: as text it would become U+FFFD unseen, where
  // the handlers' strict decoding refuses it (400). A binary request or a compressed body of a text type stays text
  // (bytes that are not UTF-8 become U+FFFD), as API Gateway passes it: the handlers refuse any that arrives so.
  const binary = headers['inference-header-content-length'] !== undefined;
  const encoded = headers['content-encoding'] !== undefined;
  const text =
    (headers['content-type'] !== undefined
      ? isTextContentType(headers['content-type'])
      : !binary && !encoded) &&
    (binary || encoded || isUtf8(body));
  const method = (req.method ?? 'GET').toUpperCase();
  const requestId = randomUUID();
  const sourceIp = req.socket?.remoteAddress ?? '127.0.0.1';
  const hasBody = body.length > 0;
  const event: HttpEvent = {
    version: '2.0',
    routeKey: routeKey(match.route),
    rawPath: url.pathname,
    rawQueryString: url.search.replace(/^\?/, ''),
    headers,
    ...(cookies ? { cookies } : {}),
    ...(Object.keys(queryStringParameters).length ? { queryStringParameters } : {}),
    ...(Object.keys(match.pathParameters).length ? { pathParameters: { ...match.pathParameters } } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: headers.host ?? 'localhost',
      domainPrefix: (headers.host ?? 'localhost').split('.')[0] ?? 'localhost',
      http: {
        method,
        path: url.pathname,
        protocol: 'HTTP/1.1',
        sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: routeKey(match.route),
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
      ...(match.route.auth === 'iam' ? { authorizer: { iam: { callerId: actor, userArn: actor } } } : {}),
    },
    isBase64Encoded: hasBody && !text,
    ...(hasBody ? { body: text ? body.toString('utf8') : body.toString('base64') } : {}),
  };
  return event;
}

/** Writes a handler's result as API Gateway would (a non-structured result is a 200 JSON body). */
export function writeResult(res: ServerResponse, result: HttpResult | string | object | undefined): void {
  const structured =
    result !== null && typeof result === 'object' && 'statusCode' in result
      ? (result as HttpResult)
      : json(200, result ?? null);
  const status = structured.statusCode ?? 200;
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(structured.headers ?? {})) headers[k.toLowerCase()] = String(v);
  if (structured.cookies?.length) headers['set-cookie'] = structured.cookies;
  const raw = structured.body ?? '';
  const payload = structured.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  headers['content-length'] = String(payload.length);
  res.writeHead(status, headers);
  res.end(payload);
}

/** A body over the limit: the 413 to answer, and whether the rest of the body was read (drained) first. */
interface BodyTooLarge {
  readonly error: PayloadTooLargeError;
  readonly drained: boolean;
}

/**
 * Reads the request body. Past `maxBytes` nothing more is kept, but the rest of the body is still read and
 * discarded — up to `drainBytes` in all and for at most `drainMs` — so that the 413 can be answered once the
 * client has finished sending: closing a connection with unread request bytes makes the peer's TCP stack reset
 * it, and the client then sees EPIPE/ECONNRESET instead of the answer. A body declared (or found) larger than
 * `drainBytes`, or one that takes longer than `drainMs`, is answered at once without draining.
 */
function readBody(
  req: IncomingMessage,
  maxBytes: number,
  drainBytes: number,
  drainMs: number,
): Promise<Buffer | BodyTooLarge> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > drainBytes) {
    return Promise.resolve({ error: tooLarge(declared, maxBytes, true), drained: false });
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (value: Buffer | BodyTooLarge) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      resolve(value);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (settled) return;
      if (!over && size > maxBytes) {
        over = true;
        chunks.length = 0;
        timer = setTimeout(() => settle({ error: tooLarge(size, maxBytes, true), drained: false }), drainMs);
      }
      if (over) {
        if (size > drainBytes) settle({ error: tooLarge(size, maxBytes, true), drained: false });
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      settle(over ? { error: tooLarge(size, maxBytes, false), drained: true } : Buffer.concat(chunks));
    });
    req.on('error', (e) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      reject(e);
    });
  });
}

const tooLarge = (size: number, limit: number, atLeast: boolean) =>
  new PayloadTooLargeError(
    `request body is ${atLeast ? 'at least ' : ''}${size} bytes; the limit is ${limit} bytes`,
  );

/**
 * Why a request is not answered by a server on a loopback address (`loopbackOnly`); undefined when it is. The
 * `Host` must be a loopback name (a page that reached the server under a name of its own did so by DNS
 * rebinding), any port (a forwarded one, or 80 left out); an `Origin`, when sent, must be the request's own
 * (`http://` and its `Host`): the server's own page, not another site's or another local server's.
 */
function crossSiteRefusal(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  if (!isLoopbackName(host)) {
    return `this server answers only under a loopback name: 127.0.0.1, localhost or [::1] (got Host ${host ?? 'none'})`;
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin.toLowerCase() !== `http://${host?.toLowerCase()}`) {
    return `requests from the web page at ${origin} are refused: only this server's own pages, and clients that send no Origin (the CLI, curl, SDKs), are answered`;
  }
  return undefined;
}

/** Creates (but does not start) the local HTTP server. */
export function createLocalServer(opts: LocalServerOptions): Server {
  const maxBodyBytes = opts.maxBodyBytes ?? LIMITS.maxBodyBytes;
  const drainBytes = opts.drainBytes ?? Math.max(4 * maxBodyBytes, 1024 * 1024);
  const drainMs = opts.drainMs ?? 10_000;
  const actor = opts.actor ?? localActor();
  const server = createServer((req, res) => {
    void handle(req, res).catch((err) => {
      opts.onError?.('request failed', err);
      if (!res.headersSent) writeResult(res, errorResult(err));
      else res.destroy();
    });
  });
  // A request Node's HTTP parser refuses (a malformed request line or method, headers over its limit) is answered
  // with a JSON error like any other refusal, not Node's bare status line.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const status = tooLarge ? 431 : 400;
    const body = JSON.stringify(
      tooLarge
        ? {
            error: 'the request line and headers are larger than the server accepts',
            code: 'HEADERS_TOO_LARGE',
          }
        : { error: 'the request is not valid HTTP', code: 'MALFORMED_REQUEST' },
    );
    socket.end(
      `HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  return server;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    if (opts.loopbackOnly !== false) {
      const refused = crossSiteRefusal(req);
      if (refused) {
        req.resume();
        writeResult(res, json(403, { error: refused, code: 'FORBIDDEN_ORIGIN' }));
        return;
      }
    }
    const path = requestUrl(req).pathname;
    if (path === '/console' || path.startsWith('/console/')) {
      return (await import('./console-server')).serveConsole(req, res, { metrics: Boolean(opts.metrics) });
    }
    if (path === METRICS_PATH && opts.metrics) {
      req.resume();
      if (method !== 'GET') {
        writeResult(
          res,
          errorResult(new MethodNotAllowedError(`${method} is not allowed on ${path}`, ['GET'])),
        );
        return;
      }
      const text = await opts.metrics();
      writeResult(res, {
        statusCode: 200,
        headers: { 'content-type': PROMETHEUS_CONTENT_TYPE },
        body: text,
      });
      return;
    }
    if (path.startsWith(LOCAL_ALARMS_PATH) && opts.alarms) {
      await setAlarm(req, res, method, path, opts.alarms);
      return;
    }
    const match = matchRoute(method, path);
    if (!match || 'methodNotAllowed' in match) {
      req.resume();
      const err = match
        ? new MethodNotAllowedError(`${method} is not allowed on ${path}`, match.allowed)
        : new NotFoundError(`no route for ${method} ${path}`, 'ROUTE_NOT_FOUND');
      writeResult(res, errorResult(err));
      return;
    }
    const body = await readBody(req, maxBodyBytes, drainBytes, drainMs);
    if (!Buffer.isBuffer(body)) {
      // The connection is not reused after a refused body. Drained: the answer is read like any other. Not
      // drained: it is sent and the socket closed after it, past which the client may only see a reset.
      res.setHeader('connection', 'close');
      writeResult(res, errorResult(body.error));
      if (!body.drained) res.on('finish', () => req.socket.destroySoon?.());
      return;
    }
    const handler = opts.handlers[match.route.fn];
    if (!handler) {
      writeResult(
        res,
        json(501, {
          error: `${routeKey(match.route)} is not available in the local server yet`,
          code: 'NOT_IMPLEMENTED',
        }),
      );
      return;
    }
    const event = toEvent(req, body, match, actor);
    // Lambda's invocation payload: a request whose event is larger never reaches a function on AWS.
    const eventBytes = Buffer.byteLength(JSON.stringify(event), 'utf8');
    if (eventBytes > LIMITS.maxInvocationBytes) {
      const err = new PayloadTooLargeError(
        `the request is ${eventBytes} bytes as the function receives it (its body ${event.isBase64Encoded ? 'base64-encoded' : 'escaped as a string'}, with its headers), more than the ${LIMITS.maxInvocationBytes} a Lambda invocation carries: send a smaller body, a compressed one (Content-Encoding: gzip), or score it with a batch job`,
      );
      writeResult(res, errorResult(err));
      return;
    }
    let result: HttpResult | string | object;
    try {
      result = await handler(event, lambdaContext(match.route.fn, event.requestContext.requestId));
    } catch (err) {
      opts.onError?.(`handler ${match.route.fn} threw`, err);
      result = errorResult(err);
    }
    writeResult(res, result);
  }
}

/** `POST /local/alarms/{name}` with `{"state": …}`: 400 `INVALID_ALARM` for a bad name or state. */
async function setAlarm(
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  path: string,
  alarms: NonNullable<LocalServerOptions['alarms']>,
): Promise<void> {
  const bad = (why: string) => writeResult(res, errorResult(new BadRequestError(why, 'INVALID_ALARM')));
  if (method !== 'POST') {
    req.resume();
    writeResult(res, errorResult(new MethodNotAllowedError(`${method} is not allowed on ${path}`, ['POST'])));
    return;
  }
  const body = await readBody(req, 64 * 1024, 1024 * 1024, 10_000);
  if (!Buffer.isBuffer(body)) {
    writeResult(res, errorResult(body.error));
    return;
  }
  // One path segment, decoded after it is matched: a `/` of the name (CloudWatch allows it) comes as `%2F`.
  const segment = path.slice(LOCAL_ALARMS_PATH.length);
  if (segment.includes('/')) {
    return bad('the alarm name must be one path segment (a / in it percent-encoded: %2F)');
  }
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return bad('the alarm name is not a valid path segment');
  }
  if (name.length < 1 || name.length > 255) {
    return bad('the alarm name must be 1-255 characters (one path segment)');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8') || '{}');
  } catch {
    return bad('the body must be JSON: {"state": "ALARM" | "OK"}');
  }
  const state = (parsed as { state?: unknown } | null)?.state;
  if (!(LOCAL_ALARM_STATES as readonly unknown[]).includes(state)) {
    return bad(`state must be one of ${LOCAL_ALARM_STATES.join(', ')}`);
  }
  writeResult(res, json(200, await alarms(name, state as LocalAlarmState)));
}

function lambdaContext(fn: FunctionId, requestId: string) {
  const deadline = Date.now() + 30_000;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: `maas-local-${fn}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:maas-local-${fn}`,
    memoryLimitInMB: '1769',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/maas-local-${fn}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

export interface RunningLocalServer {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/** Starts the server on `host:port` (port 0 = any free port). */
export function startLocalServer(
  opts: LocalServerOptions & { port: number; host?: string },
): Promise<RunningLocalServer> {
  const host = opts.host ?? '127.0.0.1';
  const server = createLocalServer({
    ...opts,
    // A listen address in `URL.hostname` form (IPv6 in brackets) is one of the loopback names, or not.
    loopbackOnly: opts.loopbackOnly ?? LOOPBACK_NAMES.has(host.includes(':') ? `[${host}]` : host),
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      resolve({
        url: `http://${host}:${port}`,
        port,
        server,
        close: () =>
          new Promise<void>((res) => {
            server.close(() => res());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/**
 * The web console's server side. {@link serveConsole} answers `/console/…` with the console's static assets
 * (console/build.ts builds them when missing or stale) and `/console/config.json` with what the page needs to
 * know about the API behind it; the local server (`maas dev`) calls it for those paths and serves the API itself
 * on the same origin.
 *
 * {@link startConsoleServer} is `maas console`: a server on this machine that serves the same assets and forwards
 * the page's API calls to a deployed stack through the CLI's own client — SigV4-signed with the user's AWS
 * credentials, or with the bearer token — so no credential reaches the browser. It forwards only the routes of the
 * route table (and `/metrics` when the API serves it), only from the console's own page (a header a cross-site request cannot set without the server's
 * consent, which it never gives, and a loopback `Host`).
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { MaasClient } from '../cli/client';
import { LIMITS } from '../contract/limits';
import { matchRoute } from '../contract/routes';

/** The local service's Prometheus text (`maas dev` serves it; a deployed stack does not). */
const METRICS_PATH = '/metrics';

/** Where the console is served. */
export const CONSOLE_PATH = '/console';

/** The header the console's page sends with every API call; `maas console` forwards nothing without it. */
export const CONSOLE_HEADER = 'x-maas-console';

/** Whether a request path belongs to the console (its page, assets and config). */
export const isConsolePath = (path: string): boolean =>
  path === CONSOLE_PATH || path.startsWith(`${CONSOLE_PATH}/`);

/** How the API behind the console is reached (what `/console/config.json` says, besides the endpoint). */
export type ConsoleAuth =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer' }
  | { readonly kind: 'sigv4'; readonly region: string };

/** What the page is told about the API (`/console/config.json`; console/src/api.ts reads it). */
export interface ConsoleConfig {
  readonly mode: 'local' | 'remote';
  readonly endpoint: string;
  readonly auth: 'none' | 'sigv4' | 'bearer';
  readonly region?: string;
  readonly metrics: boolean;
}

/** Options of {@link serveConsole}. */
export interface ConsoleSiteOptions {
  /**
   * What the page is told; from the request by default: the local service on the request's own origin, its
   * `/metrics` served when `metrics` is true.
   */
  readonly config?: (req: IncomingMessage) => ConsoleConfig;
  /** Whether the local service serves `/metrics` (for the default config). @default true */
  readonly metrics?: boolean;
  /** Where the built assets are. @default console/dist */
  readonly distDir?: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
};

/** Only the console's own files, no inline script, no other origin: the page works offline and loads nothing else. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

const COMMON_HEADERS = {
  'cache-control': 'no-cache',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head = false): void {
  const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, {
    ...COMMON_HEADERS,
    'content-type': type,
    'content-length': String(payload.length),
    ...(type.startsWith('text/html') ? { 'content-security-policy': CSP } : {}),
  });
  res.end(head ? undefined : payload);
}

const sendJson = (res: ServerResponse, status: number, body: unknown, head = false) =>
  send(res, status, TYPES['.json'] as string, JSON.stringify(body), head);

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

/** The local service's config: the API on the request's own origin. */
const localConfig =
  (metrics: boolean) =>
  (req: IncomingMessage): ConsoleConfig => ({
    mode: 'local',
    endpoint: `http://${req.headers.host ?? '127.0.0.1'}`,
    auth: 'none',
    metrics,
  });

/**
 * Answers a request for a console path (see {@link isConsolePath}): `/console` redirects to `/console/`, which is
 * the page; `/console/config.json` the config; `/console/{asset}` a built asset. Only GET and HEAD.
 */
export async function serveConsole(
  req: IncomingMessage,
  res: ServerResponse,
  opts: ConsoleSiteOptions = {},
): Promise<void> {
  req.resume();
  const method = (req.method ?? 'GET').toUpperCase();
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  const head = method === 'HEAD';
  if (method !== 'GET' && !head) {
    res.setHeader('allow', 'GET, HEAD');
    return sendJson(
      res,
      405,
      { error: `${method} is not allowed on ${path}`, code: 'METHOD_NOT_ALLOWED' },
      head,
    );
  }
  if (path === CONSOLE_PATH) {
    res.writeHead(302, { ...COMMON_HEADERS, location: `${CONSOLE_PATH}/`, 'content-length': '0' });
    res.end();
    return;
  }
  const name = path.slice(CONSOLE_PATH.length + 1) || 'index.html';
  if (name === 'config.json') {
    return sendJson(res, 200, (opts.config ?? localConfig(opts.metrics ?? true))(req), head);
  }
  const { ensureConsoleBuilt, DIST_DIR } = await import('../../console/build');
  const dir = opts.distDir ?? DIST_DIR;
  let assets: readonly { name: string }[];
  try {
    assets = (await ensureConsoleBuilt(dir)).assets;
  } catch (e) {
    const why = (e as Error)?.message ?? String(e);
    if (name === 'index.html') {
      return send(
        res,
        500,
        TYPES['.html'] as string,
        `<!doctype html><html lang="en"><title>maas console</title><h1>The console could not be built</h1><pre>${escapeHtml(why)}</pre><p>Its build needs the project's dev dependencies (esbuild, preact, uplot): <code>npm ci</code>.</p></html>`,
        head,
      );
    }
    return sendJson(
      res,
      500,
      { error: `the console could not be built: ${why}`, code: 'CONSOLE_BUILD_FAILED' },
      head,
    );
  }
  if (name.includes('/') || !assets.some((a) => a.name === name)) {
    return sendJson(res, 404, { error: `the console has no ${path}`, code: 'NOT_FOUND' }, head);
  }
  const ext = name.slice(name.lastIndexOf('.'));
  send(res, 200, TYPES[ext] ?? 'application/octet-stream', await readFile(join(dir, name)), head);
}

/** The request headers `maas console` passes on to the API (authorization is its own). */
const FORWARDED_HEADERS = [
  'content-type',
  'content-encoding',
  'inference-header-content-length',
  'idempotency-key',
  'x-maas-routing-key',
] as const;

/** Options of {@link startConsoleServer}. */
export interface ConsoleServerOptions {
  /** The CLI's client for the API (it signs, or sends the bearer token, as for every CLI command). */
  readonly client: MaasClient;
  /** How `client` authorizes its requests (what the page is told). */
  readonly auth: ConsoleAuth;
  /** @default 0 (any free port) */
  readonly port?: number;
  /** @default 127.0.0.1 */
  readonly host?: string;
  /** Where the built assets are. @default console/dist */
  readonly distDir?: string;
  /** Receives one line per forwarding failure. */
  readonly onError?: (message: string) => void;
  /**
   * Whether the API serves `GET /metrics` (forwarded for the Live page). @default whether it answers one with the
   * Prometheus text at start (a local `maas dev` does; a deployed stack does not)
   */
  readonly metrics?: boolean;
}

export interface RunningConsoleServer {
  /** `http://host:port` (the console is at `${url}/console/`). */
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/** Reads a request body up to `max` bytes; undefined when it is larger. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Whether a `Host` header names this loopback server (a page on another name reached it by DNS rebinding). */
function isOwnHost(host: string | undefined, port: number): boolean {
  if (!host) return false;
  return [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(host.toLowerCase());
}

/** Starts `maas console`'s server: the console's assets, and the API's routes forwarded through `client`. */
export async function startConsoleServer(opts: ConsoleServerOptions): Promise<RunningConsoleServer> {
  const { MaasApiError, ConnectionError } = await import('../cli/client');
  const client = opts.client;
  const host = opts.host ?? '127.0.0.1';
  let port = 0;
  const metrics =
    opts.metrics ??
    (await client.getText(METRICS_PATH).then(
      (a) => a.status === 200 && a.contentType.startsWith('text/plain'),
      () => false,
    ));
  const config = (): ConsoleConfig => ({
    mode: 'remote',
    endpoint: client.endpoint,
    auth: opts.auth.kind,
    ...(opts.auth.kind === 'sigv4' ? { region: opts.auth.region } : {}),
    metrics,
  });

  const forward = async (req: IncomingMessage, res: ServerResponse, method: string, pathAndQuery: string) => {
    const body = method === 'GET' ? Buffer.alloc(0) : await readBody(req, LIMITS.maxBodyBytes);
    if (body === undefined) {
      return sendJson(res, 413, {
        error: `request body over ${LIMITS.maxBodyBytes} bytes`,
        code: 'PAYLOAD_TOO_LARGE',
      });
    }
    try {
      if (method === 'GET') {
        const answer = await client.getText(pathAndQuery);
        return send(res, answer.status, answer.contentType || (TYPES['.json'] as string), answer.text);
      }
      const headers: Record<string, string> = {};
      for (const name of FORWARDED_HEADERS) {
        const v = req.headers[name];
        if (typeof v === 'string') headers[name] = v;
      }
      const accept = typeof req.headers.accept === 'string' ? req.headers.accept : 'application/json';
      const answer = await client.sendBytes(
        { method: method as never, path: pathAndQuery },
        body,
        headers,
        accept,
      );
      return send(
        res,
        answer.status,
        answer.headers.get('content-type') ?? (TYPES['.json'] as string),
        Buffer.from(answer.body),
      );
    } catch (e) {
      if (e instanceof MaasApiError) {
        const b = e.body;
        return typeof b === 'string'
          ? send(res, e.status, 'text/plain; charset=utf-8', b)
          : sendJson(res, e.status, b ?? { error: e.message, code: e.code });
      }
      const message = (e as Error)?.message ?? String(e);
      opts.onError?.(`${method} ${pathAndQuery}: ${message}`);
      if (e instanceof ConnectionError)
        return sendJson(res, 502, { error: message, code: 'UPSTREAM_UNREACHABLE' });
      return sendJson(res, 502, {
        error: `the request could not be forwarded: ${message}`,
        code: 'FORWARD_FAILED',
      });
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!isOwnHost(req.headers.host, port)) {
      req.resume();
      return sendJson(res, 403, {
        error: `this server answers only on http://${host}:${port} (got Host ${req.headers.host ?? 'none'})`,
        code: 'CONSOLE_FORBIDDEN',
      });
    }
    if (isConsolePath(url.pathname)) {
      return serveConsole(req, res, { config, ...(opts.distDir ? { distDir: opts.distDir } : {}) });
    }
    if (url.pathname === '/' && (method === 'GET' || method === 'HEAD')) {
      req.resume();
      res.writeHead(302, { ...COMMON_HEADERS, location: `${CONSOLE_PATH}/`, 'content-length': '0' });
      res.end();
      return;
    }
    const match =
      metrics && method === 'GET' && url.pathname === METRICS_PATH
        ? 'metrics'
        : matchRoute(method, url.pathname);
    if (!match || (match !== 'metrics' && 'methodNotAllowed' in match)) {
      req.resume();
      return match
        ? sendJson(res, 405, {
            error: `${method} is not allowed on ${url.pathname}`,
            code: 'METHOD_NOT_ALLOWED',
          })
        : sendJson(res, 404, {
            error: `no route for ${method} ${url.pathname}: the console forwards only the API's routes`,
            code: 'ROUTE_NOT_FOUND',
          });
    }
    if (req.headers[CONSOLE_HEADER] !== '1') {
      req.resume();
      return sendJson(res, 403, {
        error: `API calls are forwarded only from the console's page (the ${CONSOLE_HEADER} header is missing)`,
        code: 'CONSOLE_FORBIDDEN',
      });
    }
    await forward(req, res, method, `${url.pathname}${url.search}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      opts.onError?.(`request failed: ${(e as Error)?.message ?? String(e)}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'the console server failed', code: 'INTERNAL' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

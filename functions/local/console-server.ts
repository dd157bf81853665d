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
 * consent, which it never gives, and a loopback `Host`). Against a stack without `/metrics` it answers the Live page's
 * `GET /console/metrics.json` itself, from CloudWatch `GetMetricData` with the same credential chain (read-only).
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { MaasClient } from '../cli/client';
import { configuredRegion } from '../config/environment';
import {
  CONSOLE_CONFIG_PATH,
  CONSOLE_HEADER,
  CONSOLE_PATH,
  type ConsoleConfig,
  LIVE_METRICS_PATH,
} from '../contract/console';
import { LIMITS } from '../contract/limits';
import { matchRoute, pathFor } from '../contract/routes';
import {
  LIVE_MINUTES,
  type LiveMetrics,
  liveQueries,
  liveWindow,
  shapeLive,
  type VersionRef,
} from '../domain/metric-series';
import { isModelName } from '../domain/names';
import type { Model, ModelVersion } from '../domain/types';
import { isLoopbackName } from './loopback';

/** The local service's Prometheus text (`maas dev` serves it; a deployed stack does not). */
const METRICS_PATH = '/metrics';

/** Model versions the Live page reads from CloudWatch at most per request (newest first per model). */
export const LIVE_MAX_VERSIONS = 100;

/** Whether a request path belongs to the console (its page, assets and config). */
export const isConsolePath = (path: string): boolean =>
  path === CONSOLE_PATH || path.startsWith(`${CONSOLE_PATH}/`);

/** How the API behind the console is reached (what `/console/config.json` says, besides the endpoint). */
export type ConsoleAuth =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer' }
  | { readonly kind: 'sigv4'; readonly region: string };

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

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string | Buffer,
  head = false,
  extra: Readonly<Record<string, string>> = {},
): void {
  const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, {
    ...extra,
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
    live: metrics ? 'prometheus' : 'none',
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
  if (path === CONSOLE_CONFIG_PATH) {
    return sendJson(res, 200, (opts.config ?? localConfig(opts.metrics ?? true))(req), head);
  }
  const name = path.slice(CONSOLE_PATH.length + 1) || 'index.html';
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

/**
 * The answer headers `maas console` passes back to the page: the binary form's header length (without it a binary
 * answer cannot be read), the inference's id and route, and how long to wait before a retry.
 */
const RETURNED_HEADERS = [
  'inference-header-content-length',
  'x-maas-inference-id',
  'x-maas-route',
  'retry-after',
];

/** The headers of `answer` among RETURNED_HEADERS. */
function returnedHeaders(answer: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of RETURNED_HEADERS) {
    const v = answer.get(name);
    if (v !== null) out[name] = v;
  }
  return out;
}

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
  /**
   * Where the Live page's figures are read when the API serves no `/metrics`: CloudWatch `GetMetricData`, with the
   * default credential chain of the AWS SDK (the one the CLI's client signs with) in the stack's region.
   */
  readonly cloudWatch?: ConsoleCloudWatchOptions;
}

/** How `maas console` reaches CloudWatch (see {@link ConsoleServerOptions.cloudWatch}). */
export interface ConsoleCloudWatchOptions {
  /** @default the SigV4 region of `auth`, else the region of an execute-api endpoint, else AWS_REGION */
  readonly region?: string;
  /**
   * Another CloudWatch endpoint: for tests and CloudWatch emulators. @default the SDK's (AWS_ENDPOINT_URL_CLOUDWATCH
   * when set, else the region's)
   */
  readonly endpoint?: string;
  /** @default the AWS SDK's default credential chain */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** The time (ms) that reads use as now. @default Date.now */
  readonly now?: () => number;
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

/** An answer of the Live page's route: its status and JSON body. */
interface JsonAnswer {
  readonly status: number;
  readonly body: LiveMetrics | { readonly error: string; readonly code: string };
}

/** Every item of a paged listing of the API (`nextToken`), up to `max`. */
async function listAll<T>(
  client: MaasClient,
  path: string,
  field: 'models' | 'versions',
  max: number,
): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const q = token ? `?limit=100&nextToken=${encodeURIComponent(token)}` : '?limit=100';
    const page = await client.request<Record<string, unknown> & { nextToken?: string }>('GET', `${path}${q}`);
    items.push(...((page[field] as T[] | undefined) ?? []));
    token = page.nextToken;
  } while (token && items.length < max);
  return items;
}

/**
 * The model versions whose figures the Live page reads: the READY versions (those that can serve) of `model`, or
 * of every model (by name), at most {@link LIVE_MAX_VERSIONS}; per model, first those its aliases and splits
 * serve (they carry the traffic), then the newest; `truncated` when there were more (the models after the one
 * that reached the limit are not listed). Found through the API, so a version shows from its first request
 * (CloudWatch's own metric listings lag by minutes).
 */
async function servingVersions(
  client: MaasClient,
  model: string | undefined,
): Promise<{ versions: VersionRef[]; truncated: boolean }> {
  const models = model
    ? [await client.request<Model>('GET', pathFor('getModel', { name: model }))]
    : (await listAll<Model>(client, pathFor('listModels', {}), 'models', 5000)).sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
      );
  const all: VersionRef[] = [];
  // A few models at a time, and no more once the limit is reached: a registry of many models is not asked at once.
  for (let i = 0; i < models.length && all.length <= LIVE_MAX_VERSIONS; i += 4) {
    const batch = models.slice(i, i + 4);
    const lists = await Promise.all(
      batch.map((m) =>
        listAll<ModelVersion>(client, pathFor('listVersions', { name: m.name }), 'versions', 5000),
      ),
    );
    lists.forEach((versions, k) => {
      const serving = servedBy(batch[k] as Model);
      const rank = (v: ModelVersion) => (serving.has(v.version) ? 1 : 0);
      const ready = versions
        .filter((v) => v.status === 'READY')
        .sort((a, b) => rank(b) - rank(a) || b.version - a.version);
      all.push(...ready.map((v) => ({ model: v.name, version: v.version })));
    });
  }
  return { versions: all.slice(0, LIVE_MAX_VERSIONS), truncated: all.length > LIVE_MAX_VERSIONS };
}

/** The versions a model's aliases point at, and those their splits send traffic to (canary, shadow). */
function servedBy(m: Model): Set<number> {
  const served = new Set<number>(Object.values(m.aliases ?? {}));
  for (const split of Object.values(m.splits ?? {})) {
    if (split.canary) served.add(split.canary.version);
    if (split.shadow) served.add(split.shadow.version);
  }
  return served;
}

/** The Live page's route against CloudWatch: reads `?minutes=` (default 10) of `?model=` (default every model). */
function liveMetricsRoute(deps: {
  client: MaasClient;
  auth: ConsoleAuth;
  cloudWatch: ConsoleCloudWatchOptions;
  regionFromHost: (hostname: string) => string | undefined;
}): (query: URLSearchParams) => Promise<JsonAnswer> {
  const region =
    deps.cloudWatch.region ||
    (deps.auth.kind === 'sigv4' ? deps.auth.region : '') ||
    deps.regionFromHost(new URL(deps.client.endpoint).hostname) ||
    configuredRegion() ||
    '';
  let reader: Promise<import('../adapters/cloudwatch-metrics-reader').CloudWatchMetricsReader> | undefined;
  const getReader = () => {
    reader ??= (async () => {
      const [{ cloudWatchClient }, { CloudWatchMetricsReader }] = await Promise.all([
        import('../adapters/aws-clients'),
        import('../adapters/cloudwatch-metrics-reader'),
      ]);
      const cw = deps.cloudWatch;
      return new CloudWatchMetricsReader(
        cloudWatchClient({
          region,
          ...(cw.endpoint ? { endpoint: cw.endpoint } : {}),
          ...(cw.credentials ? { credentials: cw.credentials } : {}),
        }),
      );
    })();
    return reader;
  };
  const fail = (status: number, code: string, error: string): JsonAnswer => ({
    status,
    body: { error, code },
  });

  return async (query) => {
    const minutesText = query.get('minutes');
    const minutes = minutesText === null ? LIVE_MINUTES.default : Number(minutesText);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > LIVE_MINUTES.max) {
      return fail(
        400,
        'INVALID_ARGUMENT',
        `minutes must be a whole number from 1 to ${LIVE_MINUTES.max} (got ${JSON.stringify(minutesText)})`,
      );
    }
    const model = query.get('model') || undefined;
    if (model !== undefined && !isModelName(model)) {
      return fail(400, 'INVALID_ARGUMENT', `${JSON.stringify(model)} is not a model name`);
    }
    if (!region) {
      return fail(
        503,
        'CLOUDWATCH_NO_REGION',
        `cannot tell the AWS region of the stack at ${deps.client.endpoint} to read its CloudWatch metrics: set AWS_REGION`,
      );
    }
    const { versions, truncated } = await servingVersions(deps.client, model);
    const window = liveWindow((deps.cloudWatch.now ?? Date.now)(), minutes);
    if (versions.length === 0) return { status: 200, body: shapeLive([], [], window) };
    const { GET_METRIC_DATA_ACTION, CloudWatchReadError } = await import(
      '../adapters/cloudwatch-metrics-reader'
    );
    try {
      const results = await (await getReader()).read(liveQueries(versions, window), window.start, window.end);
      const shaped = shapeLive(versions, results, window);
      return { status: 200, body: truncated ? { ...shaped, truncated } : shaped };
    } catch (e) {
      if (!(e instanceof CloudWatchReadError)) throw e;
      const said = `CloudWatch answered: ${e.message}`;
      switch (e.kind) {
        case 'access-denied':
          return fail(
            403,
            'CLOUDWATCH_ACCESS_DENIED',
            `your AWS credentials may not read the stack's metrics: they need the ${GET_METRIC_DATA_ACTION} permission (in ${region}). ${said}`,
          );
        case 'credentials':
          return fail(
            503,
            'CLOUDWATCH_CREDENTIALS',
            `no usable AWS credentials to read the stack's metrics with ${GET_METRIC_DATA_ACTION} (the credential chain of the AWS SDK: environment, profile, SSO, instance role). ${said}`,
          );
        case 'throttled':
          return fail(
            503,
            'CLOUDWATCH_THROTTLED',
            `CloudWatch throttled the reads; the page tries again. ${said}`,
          );
        case 'unavailable':
          return fail(503, 'CLOUDWATCH_UNAVAILABLE', `CloudWatch in ${region} could not be reached. ${said}`);
        case 'invalid':
          return fail(502, 'CLOUDWATCH_REJECTED', `CloudWatch rejected the query. ${said}`);
        default:
          return fail(502, 'CLOUDWATCH_FAILED', `the metrics could not be read from CloudWatch. ${said}`);
      }
    }
  };
}

/** Starts `maas console`'s server: the console's assets, and the API's routes forwarded through `client`. */
export async function startConsoleServer(opts: ConsoleServerOptions): Promise<RunningConsoleServer> {
  const { MaasApiError, ConnectionError, RequestTimeoutError, regionFromHost } = await import(
    '../cli/client'
  );
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
    live: metrics ? 'prometheus' : 'cloudwatch',
  });

  /** Answers the failure of an API call this server made itself (as the API wrote it); false when it was not one. */
  const apiFailure = (res: ServerResponse, e: unknown): boolean => {
    if (e instanceof MaasApiError) {
      const b = e.body;
      if (typeof b === 'string') send(res, e.status, 'text/plain; charset=utf-8', b);
      else sendJson(res, e.status, b ?? { error: e.message, code: e.code });
      return true;
    }
    return unreachable(res, e);
  };

  /** Answers an API that could not be reached (502) or did not answer in time (504); false for other failures. */
  const unreachable = (res: ServerResponse, e: unknown): boolean => {
    if (e instanceof RequestTimeoutError) {
      sendJson(res, 504, { error: e.message, code: 'UPSTREAM_TIMEOUT' });
      return true;
    }
    if (e instanceof ConnectionError) {
      sendJson(res, 502, { error: e.message, code: 'UPSTREAM_UNREACHABLE' });
      return true;
    }
    return false;
  };

  const live = liveMetricsRoute({
    client,
    auth: opts.auth,
    cloudWatch: opts.cloudWatch ?? {},
    regionFromHost,
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
        // As bytes: an async result in the binary form is raw tensors after its JSON header.
        const answer = await client.getBytes(pathAndQuery);
        return send(
          res,
          answer.status,
          answer.headers.get('content-type') || (TYPES['.json'] as string),
          Buffer.from(answer.body),
          false,
          returnedHeaders(answer.headers),
        );
      }
      const headers: Record<string, string> = {};
      for (const name of FORWARDED_HEADERS) {
        const v = req.headers[name];
        if (typeof v === 'string') headers[name] = v;
      }
      const accept = typeof req.headers.accept === 'string' ? req.headers.accept : 'application/json';
      // Whatever the status: a refusal comes back as the API wrote it, with its headers (`retry-after` of a 503).
      const answer = await client.exchangeBytes(
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
        false,
        returnedHeaders(answer.headers),
      );
    } catch (e) {
      const message = (e as Error)?.message ?? String(e);
      opts.onError?.(`${method} ${pathAndQuery}: ${message}`);
      if (unreachable(res, e)) return;
      return sendJson(res, 502, {
        error: `the request could not be forwarded: ${message}`,
        code: 'FORWARD_FAILED',
      });
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://localhost');
    // A loopback name, any port (a forwarded one): another name reached it by DNS rebinding.
    if (!isLoopbackName(req.headers.host)) {
      req.resume();
      return sendJson(res, 403, {
        error: `this server answers only under a loopback name, as http://${host}:${port} (got Host ${req.headers.host ?? 'none'})`,
        code: 'CONSOLE_FORBIDDEN',
      });
    }
    if (url.pathname === LIVE_METRICS_PATH && !metrics) {
      req.resume();
      if (method !== 'GET') {
        res.setHeader('allow', 'GET');
        return sendJson(res, 405, {
          error: `${method} is not allowed on ${url.pathname}`,
          code: 'METHOD_NOT_ALLOWED',
        });
      }
      if (req.headers[CONSOLE_HEADER] !== '1') {
        return sendJson(res, 403, {
          error: `the metrics are read only for the console's page (the ${CONSOLE_HEADER} header is missing)`,
          code: 'CONSOLE_FORBIDDEN',
        });
      }
      try {
        const answer = await live(url.searchParams);
        return sendJson(res, answer.status, answer.body);
      } catch (e) {
        if (apiFailure(res, e)) return;
        throw e;
      }
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

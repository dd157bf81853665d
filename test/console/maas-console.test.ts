/**
 * `maas console` against a second local service started as if deployed: behind a stand-in for API Gateway that
 * lets a request through only with a valid SigV4 signature (checked here from the algorithm's definition with
 * node:crypto) or the expected bearer token. The page is driven in headless Chromium through the console server,
 * which signs what it forwards as the CLI signs; the command itself runs as a process with a bearer token (its Live reads signed for `--region`).
 */
import { execFile, spawn } from 'node:child_process';
import {
  createServer,
  type IncomingHttpHeaders,
  type RequestListener,
  request,
  type Server,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MaasClient, type MaasClientOptions } from '../../functions/cli/client';
import { consoleAuth, describeAuth } from '../../functions/cli/commands/console';
import { decodeInferResponse, encodeInferRequest } from '../../functions/client/oip-binary';
import {
  INFERENCE_DIMENSION_SETS,
  METRICS,
  METRICS_NAMESPACE,
  type MetricName,
} from '../../functions/contract/observability';
import { matchRoute } from '../../functions/contract/routes';
import { LIVE_MINUTES, type LiveMetrics, liveWindow } from '../../functions/domain/metric-series';
import { type RunningConsoleServer, startConsoleServer } from '../../functions/local/console-server';
import { launchBrowser, saveScreenshot, type TestBrowser } from './browser';
import {
  ACCESS_DENIED,
  type FakeCloudWatch,
  GET_METRIC_DATA_TARGET,
  type SeenCall,
  startFakeCloudWatch,
} from './fake-cloudwatch';
import { ACCESS_KEY_ID, SECRET, sigV4Region } from './sigv4';
import { type ConsoleTarget, startConsoleTarget } from './target';

const ROOT = join(import.meta.dirname, '..', '..');
const DOCS = join(ROOT, 'docs');
const TOKEN = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJjb25zb2xlIn0.';

/** One request the gateway received, and whether it let it through. */
interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly verdict: 'sigv4' | 'bearer' | 'refused';
}

const sigV4Valid = (method: string, path: string, headers: IncomingHttpHeaders, body: Buffer) =>
  sigV4Region('execute-api', method, path, headers, body) !== undefined;

/** Headers of a connection, not of a request: the stand-in for API Gateway sets its own. */
const HOP_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
  'authorization',
  'content-encoding',
]);

/**
 * The stand-in for API Gateway: only the route table's routes (404 otherwise), each request's authorization checked
 * (403), then passed on to `upstream`.
 */
async function startGateway(upstream: string) {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const method = req.method ?? 'GET';
      const path = req.url ?? '/';
      const verdict =
        req.headers.authorization === `Bearer ${TOKEN}`
          ? 'bearer'
          : sigV4Valid(method, path, req.headers, body)
            ? 'sigv4'
            : 'refused';
      seen.push({ method, path, headers: req.headers, body, verdict });
      const known = matchRoute(method, new URL(path, 'http://h').pathname);
      if (!known || 'methodNotAllowed' in known) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: 'Not Found' }));
        return;
      }
      if (verdict === 'refused') {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: 'Forbidden' }));
        return;
      }
      // Every header both ways, as API Gateway passes them (its own and the connection's aside).
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === 'string' && !HOP_HEADERS.has(name)) headers[name] = value;
      }
      const answer = await fetch(`${upstream}${path}`, { method, headers, ...(body.length ? { body } : {}) });
      const back: Record<string, string> = {};
      answer.headers.forEach((value, name) => {
        if (!HOP_HEADERS.has(name)) back[name] = value;
      });
      res.writeHead(answer.status, back);
      res.end(Buffer.from(await answer.arrayBuffer()));
    });
  });
  const url = await new Promise<string>((r) =>
    server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
  return { url, seen, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A GET with a `Host` header of one's choosing (fetch does not let one set it). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host, 'x-maas-console': '1' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The time the console server reads CloudWatch at (fixed, so the window's minutes are known). */
const NOW = Date.now();
const WINDOW = liveWindow(NOW, LIVE_MINUTES.default);
const minute = (i: number) => WINDOW.start + i * 60_000;
const WINDOW_SECONDS = (WINDOW.end - WINDOW.start) / 1000;

/**
 * CloudWatch's figures of the sample: v1 with requests in minutes 0, 1 and 3 of the window (and outside it, before
 * and in the minute in progress), v2 in minute 7, v3 none.
 */
function seedCloudWatch(cw: FakeCloudWatch): void {
  const metric = (name: MetricName, version: number) => ({
    namespace: METRICS_NAMESPACE,
    name,
    dimensions: { model: 'iris', version: String(version) },
  });
  const put = (name: MetricName, version: number, stat: string, at: number, value: number, period = 60) =>
    cw.put(metric(name, version), stat, period, at, value);
  for (const [i, n, p50, p90, p99] of [
    [0, 120, 4, 9, 20],
    [1, 60, 5, 10, 25],
    [3, 30, 6, 11, 30],
  ] as const) {
    put('Requests', 1, 'Sum', minute(i), n);
    put('Latency', 1, 'p50', minute(i), p50);
    put('Latency', 1, 'p90', minute(i), p90);
    put('Latency', 1, 'p99', minute(i), p99);
  }
  put('Requests', 1, 'Sum', minute(-1), 999);
  put('Requests', 1, 'Sum', WINDOW.end, 999);
  put('ClientErrors', 1, 'Sum', minute(1), 6);
  put('ServerErrors', 1, 'Sum', minute(3), 3);
  for (const [stat, v] of [
    ['p50', 5],
    ['p90', 10],
    ['p99', 28],
  ] as const) {
    put('Latency', 1, stat, WINDOW.start, v, WINDOW_SECONDS);
  }
  put('Requests', 2, 'Sum', minute(7), 12);
  for (const [stat, v] of [
    ['p50', 3],
    ['p90', 7],
    ['p99', 8],
  ] as const) {
    put('Latency', 2, stat, minute(7), v);
    put('Latency', 2, stat, WINDOW.start, v, WINDOW_SECONDS);
  }
}

/**
 * `maas console` (unsigned) over an API that `handle` serves on a port of its own; `close` stops both, the API's
 * open connections included.
 */
async function consoleOver(
  handle: RequestListener,
  client: Omit<MaasClientOptions, 'endpoint'> = {},
): Promise<{ readonly url: string; close(): Promise<void> }> {
  const upstream = createServer(handle);
  const endpoint = await new Promise<string>((r) =>
    upstream.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`)),
  );
  const server = await startConsoleServer({
    client: new MaasClient({ endpoint, ...client }),
    auth: { kind: 'none' },
    metrics: false,
  });
  return {
    url: server.url,
    close: async () => {
      await server.close();
      upstream.closeAllConnections();
      await new Promise<void>((r) => upstream.close(() => r()));
    },
  };
}

describe('maas console against a deployed-like stack', () => {
  let remote: ConsoleTarget;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  let chrome: TestBrowser;
  let page: Page;
  let problems: string[];
  let consoleServer: RunningConsoleServer;
  let cloudWatch: FakeCloudWatch;

  // A machine without Chromium installs it first (apt-get): minutes, not seconds.
  beforeAll(async () => {
    [remote, chrome] = await Promise.all([startConsoleTarget('console-remote'), launchBrowser()]);
    gateway = await startGateway(remote.url);
    const client = new MaasClient({
      endpoint: gateway.url,
      sign: true,
      region: 'eu-west-1',
      credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET },
    });
    cloudWatch = await startFakeCloudWatch();
    seedCloudWatch(cloudWatch);
    consoleServer = await startConsoleServer({
      client,
      auth: { kind: 'sigv4', region: 'eu-west-1' },
      cloudWatch: {
        endpoint: cloudWatch.url,
        credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET },
        now: () => NOW,
      },
    });
    ({ page, problems } = await chrome.page());
    page.setDefaultTimeout(15_000);
  }, 900_000);

  afterAll(async () => {
    await chrome?.close();
    await consoleServer?.close();
    await gateway?.stop();
    await cloudWatch?.stop();
    await remote?.close();
  });

  it('says how the CLI would send requests to an endpoint', () => {
    const api = 'https://abc123.execute-api.eu-west-1.amazonaws.com';
    expect(consoleAuth(api, undefined, undefined)).toEqual({ kind: 'sigv4', region: 'eu-west-1' });
    expect(consoleAuth(api, undefined, 'us-east-2')).toEqual({ kind: 'sigv4', region: 'us-east-2' });
    expect(consoleAuth(api, TOKEN, undefined)).toEqual({ kind: 'bearer' });
    expect(consoleAuth('http://127.0.0.1:3000', undefined, undefined)).toEqual({ kind: 'none' });
    expect(describeAuth({ kind: 'sigv4', region: 'eu-west-1' })).toBe(
      'SigV4-signed for execute-api in eu-west-1',
    );
  });

  it('serves the console and forwards its calls SigV4-signed, checked by the gateway', async () => {
    await page.goto(`${consoleServer.url}/`);
    const row = page.locator('tr[data-model="iris"]');
    await row.waitFor();
    expect(page.url()).toBe(`${consoleServer.url}/console/`);
    await expect(page.locator('.endpoint').textContent()).resolves.toContain(`${gateway.url} (SigV4-signed)`);
    await saveScreenshot(page, join(DOCS, 'console-remote.png'));

    // A promotion through the page: a signed PUT with its body, and the alias moved behind the gateway.
    await page.getByRole('link', { name: 'iris' }).click();
    await page.getByRole('button', { name: 'Promote version 2' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Point prod at v2' }).click();
    await page.getByText('prod now points at v2.').waitFor();
    expect((await remote.call('GET', '/models/iris')).body.aliases.prod).toBe(2);
    const put = gateway.seen.find((s) => s.method === 'PUT' && s.path === '/models/iris/aliases/prod');
    expect(put?.verdict).toBe('sigv4');
    expect(JSON.parse(String(put?.body))).toEqual({ version: 2, expectedVersion: 1 });
    expect(put?.headers.authorization).toMatch(
      /Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request/,
    );

    // Try it: a signed inference.
    await page.goto(`${consoleServer.url}/console/#/models/iris/try`);
    const cells = page.locator('fieldset[data-input="features"] input.cell');
    await cells.first().waitFor();
    for (const [i, v] of ['6.7', '3.0', '5.2', '2.3'].entries()) await cells.nth(i).fill(v);
    await page.getByRole('button', { name: 'Run inference' }).click();
    await expect(page.locator('.prediction [data-row="0"] .predicted').textContent()).resolves.toBe(
      'virginica',
    );
    expect(gateway.seen.find((s) => s.method === 'POST' && s.path.endsWith('/infer'))?.verdict).toBe('sigv4');
    // The curl it shows signs as well: run with these credentials, the gateway lets it through.
    const curl = (await page.locator('#cmd-curl').textContent()) as string;
    expect(curl).toContain('--aws-sigv4 aws:amz:eu-west-1:execute-api');
    const { stdout } = await promisify(execFile)('sh', ['-c', curl], {
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: SECRET,
        AWS_SESSION_TOKEN: '',
      },
    });
    expect(JSON.parse(stdout).outputs.find((o: { name: string }) => o.name === 'label').data).toEqual([
      'virginica',
    ]);
    expect(gateway.seen.at(-1)).toMatchObject({ method: 'POST', verdict: 'sigv4' });
    // With temporary credentials, the token goes as its own header, also in a shell that does not split the words
    // of an expansion (zsh, macOS's default; bash with IFS empty does as zsh does).
    for (const shell of [
      ['sh', '-c', curl],
      ['bash', '-c', `IFS=''\n${curl}`],
    ]) {
      const [cmd, ...args] = shell as [string, ...string[]];
      const signed = await promisify(execFile)(cmd, args, {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
          AWS_SECRET_ACCESS_KEY: SECRET,
          AWS_SESSION_TOKEN: 'session-token',
        },
      });
      expect(JSON.parse(signed.stdout).outputs, shell.join(' ')).toBeDefined();
      const seen = gateway.seen.at(-1);
      expect(seen).toMatchObject({ method: 'POST', verdict: 'sigv4' });
      expect(seen?.headers['x-amz-security-token']).toBe('session-token');
    }

    // An error from behind the gateway keeps its code and message.
    await page.goto(`${consoleServer.url}/console/#/models/absent`);
    await expect(
      page.locator('[role="alert"][data-code="MODEL_NOT_FOUND"]').textContent(),
    ).resolves.toContain("model 'absent' not found");

    // Live: the stack has no /metrics; the page charts CloudWatch's figures, read by the console server.
    await page.goto(`${consoleServer.url}/console/#/live`);
    const v1 = page.locator('tr[data-series="iris@v1"]');
    await v1.waitFor();
    await expect(v1.locator('td.requests').textContent()).resolves.toBe('210');
    await expect(v1.locator('td.client-errors').textContent()).resolves.toBe('6');
    await expect(v1.locator('td.server-errors').textContent()).resolves.toBe('3');
    await expect(v1.locator('td.p99').textContent()).resolves.toBe('28');
    await expect(page.locator('tr[data-series="iris@v2"] td.requests').textContent()).resolves.toBe('12');
    await expect(page.locator('tr[data-series="iris@v3"]').count()).resolves.toBe(0);
    await expect(page.locator('.chart-box canvas').count()).resolves.toBe(3);
    await expect(page.locator('section[data-source]').getAttribute('data-source')).resolves.toBe(
      'cloudwatch',
    );
    await expect(page.locator('.live-totals caption').textContent()).resolves.toBe(
      'Totals over the last 10 minutes',
    );
    await saveScreenshot(page, join(DOCS, 'console-live-remote.png'));
    expect(cloudWatch.seen.length).toBeGreaterThan(0);
    expect(cloudWatch.seen.every((c) => c.region === 'eu-west-1')).toBe(true);

    expect(gateway.seen.length).toBeGreaterThan(5);
    expect(gateway.seen.filter((s) => s.verdict !== 'sigv4')).toEqual([]);
    expect(problems.filter((p) => p.startsWith('page error'))).toEqual([]);
  });

  it('passes binary answers back whole, with their header length (an inference, an async result)', async () => {
    const { body, headers } = encodeInferRequest({
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: [6.7, 3.0, 5.2, 2.3] }],
      binaryOutputs: true,
    });
    const post = (path: string) =>
      fetch(`${consoleServer.url}${path}`, {
        method: 'POST',
        headers: { ...headers, 'x-maas-console': '1' },
        body,
      });
    const read = async (r: Response) => {
      const length = r.headers.get('inference-header-content-length');
      expect(length).toMatch(/^\d+$/);
      return decodeInferResponse(new Uint8Array(await r.arrayBuffer()), Number(length));
    };
    const label = (outputs: { name: string; data: unknown }[]) =>
      outputs.find((o) => o.name === 'label')?.data;

    const sync = await post('/v2/models/iris/infer');
    expect(sync.status).toBe(200);
    expect(sync.headers.get('content-type')).toBe('application/octet-stream');
    expect(sync.headers.get('x-maas-inference-id')).toMatch(/\S/);
    expect(label((await read(sync)).outputs)).toEqual(['virginica']);

    const accepted = await post('/v2/models/iris/infer-async');
    expect(accepted.status).toBe(202);
    const { requestId } = (await accepted.json()) as { requestId: string };
    await remote.services.idle();
    const result = await fetch(`${consoleServer.url}/async/${requestId}`, {
      headers: { 'x-maas-console': '1' },
    });
    expect(result.status).toBe(200);
    // The status document is the JSON header; its result's binary outputs follow it.
    const length = Number(result.headers.get('inference-header-content-length'));
    const bytes = Buffer.from(await result.arrayBuffer());
    const status = JSON.parse(bytes.subarray(0, length).toString('utf8'));
    expect(status.status).toBe('done');
    const resultHeader = Buffer.from(JSON.stringify(status.result), 'utf8');
    const answer = decodeInferResponse(
      Buffer.concat([resultHeader, bytes.subarray(length)]),
      resultHeader.length,
    );
    expect(label(answer.outputs)).toEqual(['virginica']);
  });

  it('passes refusals back as the API wrote them, with the headers a client reads (retry-after of a 503 to a POST)', async () => {
    // An API that is loading: every call is a 503 with how long to wait, and the id of the inference it refused.
    const refusal = JSON.stringify({ error: 'model is loading, retry later', code: 'UNAVAILABLE' });
    const loading = await consoleOver((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(503, {
          'content-type': 'application/json',
          'retry-after': '7',
          'x-maas-inference-id': 'inf-1',
          'x-maas-route': 'stable',
          'x-upstream-only': 'kept back',
        });
        res.end(refusal);
      });
    });
    try {
      for (const [method, path] of [
        ['GET', '/models/iris'],
        ['POST', '/v2/models/iris/infer'],
        ['POST', '/models/iris/aliases/prod/rollback'],
        ['PUT', '/models/iris/aliases/prod'],
        ['PATCH', '/models/iris/aliases/prod'],
      ] as const) {
        const r = await fetch(`${loading.url}${path}`, {
          method,
          headers: { 'x-maas-console': '1', 'content-type': 'application/json' },
          ...(method === 'GET' ? {} : { body: '{}' }),
        });
        const what = `${method} ${path}`;
        expect(r.status, what).toBe(503);
        expect(r.headers.get('retry-after'), what).toBe('7');
        expect(r.headers.get('x-maas-inference-id'), what).toBe('inf-1');
        expect(r.headers.get('content-type'), what).toBe('application/json');
        expect(r.headers.get('x-maas-route'), what).toBe('stable');
        expect(r.headers.get('x-upstream-only'), what).toBeNull();
        expect(await r.text(), what).toBe(refusal);
      }
    } finally {
      await loading.close();
    }
  });

  it('answers a 504 when the API takes a call and does not answer in time, never hangs', async () => {
    // An API that stalls: it reads the request and never answers.
    const stalled = await consoleOver((req) => req.resume(), { timeoutMs: 300 });
    try {
      for (const [method, path] of [
        ['GET', '/models/iris'],
        ['POST', '/v2/models/iris/infer'],
      ] as const) {
        const r = await fetch(`${stalled.url}${path}`, {
          method,
          headers: { 'x-maas-console': '1', 'content-type': 'application/json' },
          ...(method === 'GET' ? {} : { body: '{}' }),
          signal: AbortSignal.timeout(10_000),
        });
        expect(r.status, method).toBe(504);
        expect(await r.json(), method).toEqual({
          error: expect.stringContaining('did not answer within 0.3 s'),
          code: 'UPSTREAM_TIMEOUT',
        });
      }
    } finally {
      await stalled.close();
    }
  });

  it('forwards nothing but the API routes, from its own page, on its own host', async () => {
    const before = gateway.seen.length;
    const bare = await fetch(`${consoleServer.url}/models`);
    expect(bare.status).toBe(403);
    expect(await bare.json()).toMatchObject({ code: 'CONSOLE_FORBIDDEN' });
    const other = await fetch(`${consoleServer.url}/etc/passwd`, { headers: { 'x-maas-console': '1' } });
    expect(other.status).toBe(404);
    const rebound = await getWithHost(`${consoleServer.url}/models`, `evil.example:${consoleServer.port}`);
    expect(rebound.status).toBe(403);
    const suffixed = await getWithHost(
      `${consoleServer.url}/models`,
      `localhost:${consoleServer.port}.evil.example`,
    );
    expect(suffixed.status).toBe(403);
    expect(gateway.seen.length).toBe(before);
    // Through a forwarded port (another port of this machine's loopback), the page is served all the same.
    const forwarded = await getWithHost(
      `${consoleServer.url}/console/`,
      `localhost:${consoleServer.port + 1}`,
    );
    expect(forwarded.status).toBe(200);
    expect(gateway.seen.length).toBe(before);
    const index = await fetch(`${consoleServer.url}/console/`);
    expect(index.headers.get('content-security-policy')).toContain("default-src 'self'");
  });

  it('forwards /metrics for the Live page when the API serves it (a local maas dev)', async () => {
    const local = await startConsoleServer({
      client: new MaasClient({ endpoint: remote.url }),
      auth: { kind: 'none' },
    });
    try {
      const config = await (await fetch(`${local.url}/console/config.json`)).json();
      expect(config).toEqual({
        mode: 'remote',
        endpoint: remote.url,
        auth: 'none',
        metrics: true,
        live: 'prometheus',
      });
      const metrics = await fetch(`${local.url}/metrics`, { headers: { 'x-maas-console': '1' } });
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('maas_requests_total');
      // The page reads /metrics: CloudWatch is not read.
      const cw = await fetch(`${local.url}/console/metrics.json`, { headers: { 'x-maas-console': '1' } });
      expect(cw.status).toBe(404);
    } finally {
      await local.close();
    }
    // Behind the gateway there is none: the Live page reads CloudWatch instead.
    const config = await (await fetch(`${consoleServer.url}/console/config.json`)).json();
    expect(config).toMatchObject({ auth: 'sigv4', metrics: false, live: 'cloudwatch' });
    expect((await fetch(`${consoleServer.url}/metrics`, { headers: { 'x-maas-console': '1' } })).status).toBe(
      404,
    );
  });

  it('answers the Live page from CloudWatch GetMetricData, signed for monitoring, in the shape of the local source', async () => {
    const before = cloudWatch.seen.length;
    const res = await fetch(`${consoleServer.url}/console/metrics.json?minutes=10&model=iris`, {
      headers: { 'x-maas-console': '1' },
    });
    expect(res.status).toBe(200);
    const nulls = (n: number) => Array.from({ length: n }, () => null);
    const zeros = (n: number) => Array.from({ length: n }, () => 0);
    expect(await res.json()).toEqual({
      source: 'cloudwatch',
      times: Array.from({ length: 10 }, (_, i) => minute(i + 1)),
      periodSeconds: 60,
      totalsOver: 'window',
      series: [
        {
          key: 'iris@v1',
          model: 'iris',
          version: '1',
          // Minute 2 and 4-7 had no request (0); minutes 8 and 9 are after the last figure CloudWatch has (null).
          requestsPerSec: [2, 1, 0, 0.5, 0, 0, 0, 0, null, null],
          clientErrorsPerSec: [0, 0.1, ...zeros(6), null, null],
          serverErrorsPerSec: [0, 0, 0, 0.05, ...zeros(4), null, null],
          p50Ms: [4, 5, null, 6, ...nulls(6)],
          p90Ms: [9, 10, null, 11, ...nulls(6)],
          p99Ms: [20, 25, null, 30, ...nulls(6)],
          totals: { requests: 210, clientErrors: 6, serverErrors: 3, p50Ms: 5, p90Ms: 10, p99Ms: 28 },
        },
        {
          key: 'iris@v2',
          model: 'iris',
          version: '2',
          requestsPerSec: [...zeros(7), 0.2, null, null],
          clientErrorsPerSec: [...zeros(8), null, null],
          serverErrorsPerSec: [...zeros(8), null, null],
          p50Ms: [...nulls(7), 3, null, null],
          p90Ms: [...nulls(7), 7, null, null],
          p99Ms: [...nulls(7), 8, null, null],
          totals: { requests: 12, clientErrors: 0, serverErrors: 0, p50Ms: 3, p90Ms: 7, p99Ms: 8 },
        },
      ],
    });

    // What CloudWatch received: one signed GetMetricData for the READY versions — first the one an alias serves
    // (prod → v2: a model of more versions than one read covers keeps it), then the newest — in the contract's
    // namespace, metric names and {model, version} dimensions, per minute and over the whole window.
    expect(cloudWatch.seen.length).toBe(before + 1);
    const call = cloudWatch.seen.at(-1) as SeenCall;
    expect(call.region).toBe('eu-west-1');
    expect(call.headers.authorization).toMatch(
      /Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/monitoring\/aws4_request/,
    );
    expect(call.headers['x-amz-target']).toBe(GET_METRIC_DATA_TARGET);
    expect(call.headers['content-type']).toBe('application/x-amz-json-1.0');
    expect(call.body.StartTime * 1000).toBe(WINDOW.start);
    expect(call.body.EndTime * 1000).toBe(WINDOW.end);
    const queries = call.body.MetricDataQueries;
    const dimensionSet = INFERENCE_DIMENSION_SETS.find((d) => d.join() === 'model,version');
    for (const q of queries) {
      expect(q.Id).toMatch(/^[a-z][a-zA-Z0-9_]*$/);
      expect(q.MetricStat.Metric.Namespace).toBe(METRICS_NAMESPACE);
      expect(Object.keys(METRICS)).toContain(q.MetricStat.Metric.MetricName);
      expect(q.MetricStat.Metric.Dimensions.map((d) => d.Name)).toEqual(dimensionSet);
      expect(q.MetricStat.Metric.Dimensions[0]?.Value).toBe('iris');
    }
    const asked = (period: number) =>
      queries
        .filter((q) => q.MetricStat.Period === period)
        .map(
          (q) =>
            `${q.MetricStat.Metric.Dimensions[1]?.Value} ${q.MetricStat.Metric.MetricName} ${q.MetricStat.Stat}`,
        );
    const perVersion = (v: number) => [
      `${v} Requests Sum`,
      `${v} ClientErrors Sum`,
      `${v} ServerErrors Sum`,
      `${v} Latency p50`,
      `${v} Latency p90`,
      `${v} Latency p99`,
    ];
    expect((await remote.call('GET', '/models/iris')).body.aliases).toEqual({ prod: 2 });
    expect(asked(60)).toEqual([2, 3, 1].flatMap(perVersion));
    expect(asked(WINDOW_SECONDS)).toEqual(
      [2, 3, 1].flatMap((v) => [`${v} Latency p50`, `${v} Latency p90`, `${v} Latency p99`]),
    );
    expect(queries).toHaveLength(27);

    // Every model (no model=): the same series.
    const all = await fetch(`${consoleServer.url}/console/metrics.json`, {
      headers: { 'x-maas-console': '1' },
    });
    expect(((await all.json()) as LiveMetrics).series.map((s) => s.key)).toEqual(['iris@v1', 'iris@v2']);
  });

  it("refuses the Live route's bad requests with their code, before CloudWatch is asked", async () => {
    const before = cloudWatch.seen.length;
    const get = async (query: string, headers: Record<string, string> = { 'x-maas-console': '1' }) => {
      const res = await fetch(`${consoleServer.url}/console/metrics.json${query}`, { headers });
      return { status: res.status, body: (await res.json()) as { error: string; code: string } };
    };
    expect(await get('?minutes=10', {})).toMatchObject({ status: 403, body: { code: 'CONSOLE_FORBIDDEN' } });
    expect(await get('?minutes=0')).toMatchObject({ status: 400, body: { code: 'INVALID_ARGUMENT' } });
    expect(await get('?minutes=abc')).toMatchObject({ status: 400, body: { code: 'INVALID_ARGUMENT' } });
    expect(await get('?model=no%20such')).toMatchObject({ status: 400, body: { code: 'INVALID_ARGUMENT' } });
    // A model the API does not know: its answer, as the API wrote it.
    const absent = await get('?model=absent');
    expect(absent.status).toBe(404);
    expect(absent.body).toMatchObject({ code: 'MODEL_NOT_FOUND' });
    expect(absent.body.error).toContain("model 'absent' not found");
    expect(cloudWatch.seen.length).toBe(before);
  });

  it('answers a refusal of CloudWatch with its code and the permission it needs, and the page shows it', async () => {
    cloudWatch.fail = ACCESS_DENIED;
    const before = cloudWatch.seen.length;
    try {
      const res = await fetch(`${consoleServer.url}/console/metrics.json?minutes=10`, {
        headers: { 'x-maas-console': '1' },
      });
      expect(res.status).toBe(403);
      const body = (await res.json()) as { error: string; code: string };
      expect(body.code).toBe('CLOUDWATCH_ACCESS_DENIED');
      expect(body.error).toContain('need the cloudwatch:GetMetricData permission');
      expect(body.error).toContain('is not authorized to perform: cloudwatch:GetMetricData');
      // One attempt: a refusal is not retried.
      expect(cloudWatch.seen.length).toBe(before + 1);
      expect(cloudWatch.seen.at(-1)?.region).toBe('eu-west-1');

      await page.goto(`${consoleServer.url}/console/?denied#/live`);
      const alert = page.locator('[role="alert"][data-code="CLOUDWATCH_ACCESS_DENIED"]');
      await expect(alert.locator('.error-message').textContent()).resolves.toContain(
        'cloudwatch:GetMetricData',
      );
      await expect(alert.locator('.error-status').textContent()).resolves.toContain('403');
      await expect(page.locator('[data-explain="cloudwatch-permission"]').textContent()).resolves.toContain(
        '"Action": "cloudwatch:GetMetricData"',
      );
    } finally {
      cloudWatch.fail = undefined;
    }

    // Credentials CloudWatch does not accept (here: a wrong secret, so the signature does not match).
    const refused = await startConsoleServer({
      client: new MaasClient({
        endpoint: gateway.url,
        sign: true,
        region: 'eu-west-1',
        credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET },
      }),
      auth: { kind: 'sigv4', region: 'eu-west-1' },
      cloudWatch: {
        endpoint: cloudWatch.url,
        credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'not-the-secret' },
        now: () => NOW,
      },
    });
    try {
      const res = await fetch(`${refused.url}/console/metrics.json`, { headers: { 'x-maas-console': '1' } });
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: string; code: string };
      expect(body.code).toBe('CLOUDWATCH_CREDENTIALS');
      expect(body.error).toContain('SignatureDoesNotMatch');
      expect(cloudWatch.seen.at(-1)?.region).toBeUndefined();
    } finally {
      await refused.close();
    }
  });

  it('runs as `maas console` with a bearer token', async () => {
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin', 'maas.js'),
        '--endpoint',
        gateway.url,
        '--token',
        TOKEN,
        '--region',
        'eu-central-1',
        'console',
        '--port',
        '0',
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          AWS_ENDPOINT_URL_CLOUDWATCH: cloudWatch.url,
          AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
          AWS_SECRET_ACCESS_KEY: SECRET,
          AWS_REGION: 'us-west-2',
        },
      },
    );
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d;
          const m = / on (http:\/\/127\.0\.0\.1:\d+)\/console\//.exec(out);
          if (m) resolve(m[1] as string);
        });
        exited.then(() => reject(new Error(`maas console exited: ${out}${err}`)));
      });
      expect(out).toContain(`maas console for ${gateway.url} (requests with the bearer token)`);
      const config = await (await fetch(`${url}/console/config.json`)).json();
      expect(config).toEqual({
        mode: 'remote',
        endpoint: gateway.url,
        auth: 'bearer',
        metrics: false,
        live: 'cloudwatch',
      });
      const models = await fetch(`${url}/models`, { headers: { 'x-maas-console': '1' } });
      expect(models.status).toBe(200);
      const listed = (await models.json()) as { models: { name: string }[] };
      expect(listed.models.map((m) => m.name)).toEqual(['iris']);
      const last = gateway.seen.at(-1);
      expect(last).toMatchObject({ method: 'GET', verdict: 'bearer' });
      expect(last?.headers.authorization).toBe(`Bearer ${TOKEN}`);
      // The Live page's CloudWatch reads are signed for --region, not the environment's region.
      const before = cloudWatch.seen.length;
      const live = await fetch(`${url}/console/metrics.json?minutes=10&model=iris`, {
        headers: { 'x-maas-console': '1' },
      });
      expect(live.status, await live.clone().text()).toBe(200);
      expect(((await live.json()) as LiveMetrics).source).toBe('cloudwatch');
      expect(cloudWatch.seen.length).toBe(before + 1);
      expect(cloudWatch.seen.at(-1)?.region).toBe('eu-central-1');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

/**
 * `maas console` against a second local service started as if deployed: behind a stand-in for API Gateway that
 * lets a request through only with a valid SigV4 signature (checked here from the algorithm's definition with
 * node:crypto) or the expected bearer token. The page is driven in headless Chromium through the console server,
 * which signs what it forwards as the CLI signs; the command itself runs as a process with a bearer token.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MaasClient } from '../../functions/cli/client';
import { consoleAuth, describeAuth } from '../../functions/cli/commands/console';
import { matchRoute } from '../../functions/contract/routes';
import { type RunningConsoleServer, startConsoleServer } from '../../functions/local/console-server';
import { launchBrowser, saveScreenshot, type TestBrowser } from './browser';
import { type ConsoleTarget, startConsoleTarget } from './target';

const ROOT = join(import.meta.dirname, '..', '..');
const DOCS = join(ROOT, 'docs');
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TOKEN = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJjb25zb2xlIn0.';

/** One request the gateway received, and whether it let it through. */
interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly verdict: 'sigv4' | 'bearer' | 'refused';
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** Whether a request carries a valid SigV4 signature for execute-api by AKIDEXAMPLE over what was received. */
function sigV4Valid(method: string, path: string, headers: IncomingHttpHeaders, body: Buffer): boolean {
  const m =
    /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/(\d{8})\/([^/]+)\/execute-api\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
      String(headers.authorization),
    );
  if (!m) return false;
  const [, date, region, signedHeaders, signature] = m as unknown as string[];
  const names = (signedHeaders as string).split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) return false;
  const url = new URL(path, 'http://h');
  const enc = (s: string) =>
    encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
  const canonical = [
    method,
    url.pathname,
    [...url.searchParams]
      .map(([k, v]) => `${enc(k)}=${enc(v)}`)
      .sort()
      .join('&'),
    names.map((n) => `${n}:${String(headers[n]).trim()}\n`).join(''),
    signedHeaders,
    sha256(body),
  ].join('\n');
  const scope = `${date}/${region}/execute-api/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', String(headers['x-amz-date']), scope, sha256(canonical)].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${SECRET}`, date as string), region as string), 'execute-api'),
    'aws4_request',
  );
  return createHmac('sha256', key).update(toSign).digest('hex') === signature;
}

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
      const answer = await fetch(`${upstream}${path}`, {
        method,
        headers: req.headers['content-type'] ? { 'content-type': String(req.headers['content-type']) } : {},
        ...(body.length ? { body } : {}),
      });
      res.writeHead(answer.status, {
        'content-type': answer.headers.get('content-type') ?? 'application/json',
      });
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

describe('maas console against a deployed-like stack', () => {
  let remote: ConsoleTarget;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  let chrome: TestBrowser;
  let page: Page;
  let problems: string[];
  let consoleServer: RunningConsoleServer;

  // A machine without Chromium installs it first (apt-get): minutes, not seconds.
  beforeAll(async () => {
    [remote, chrome] = await Promise.all([startConsoleTarget('console-remote'), launchBrowser()]);
    gateway = await startGateway(remote.url);
    const client = new MaasClient({
      endpoint: gateway.url,
      sign: true,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET },
    });
    consoleServer = await startConsoleServer({ client, auth: { kind: 'sigv4', region: 'eu-west-1' } });
    ({ page, problems } = await chrome.page());
    page.setDefaultTimeout(15_000);
  }, 900_000);

  afterAll(async () => {
    await chrome?.close();
    await consoleServer?.close();
    await gateway?.stop();
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

    // An error from behind the gateway keeps its code and message.
    await page.goto(`${consoleServer.url}/console/#/models/absent`);
    await expect(
      page.locator('[role="alert"][data-code="MODEL_NOT_FOUND"]').textContent(),
    ).resolves.toContain("model 'absent' not found");

    // Live says what it needs: the stack has no /metrics.
    await page.goto(`${consoleServer.url}/console/#/live`);
    await expect(page.locator('[data-explain="no-metrics"]').textContent()).resolves.toContain(
      'GetMetricData',
    );
    await saveScreenshot(page, join(DOCS, 'console-live-remote.png'));

    expect(gateway.seen.length).toBeGreaterThan(5);
    expect(gateway.seen.filter((s) => s.verdict !== 'sigv4')).toEqual([]);
    expect(problems.filter((p) => p.startsWith('page error'))).toEqual([]);
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
      expect(config).toEqual({ mode: 'remote', endpoint: remote.url, auth: 'none', metrics: true });
      const metrics = await fetch(`${local.url}/metrics`, { headers: { 'x-maas-console': '1' } });
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('maas_requests_total');
    } finally {
      await local.close();
    }
    // Behind the gateway there is none: the Live page says what it needs instead.
    const config = await (await fetch(`${consoleServer.url}/console/config.json`)).json();
    expect(config).toMatchObject({ auth: 'sigv4', metrics: false });
    expect((await fetch(`${consoleServer.url}/metrics`, { headers: { 'x-maas-console': '1' } })).status).toBe(
      404,
    );
  });

  it('runs as `maas console` with a bearer token', async () => {
    const child = spawn(
      process.execPath,
      [join(ROOT, 'bin', 'maas.js'), '--endpoint', gateway.url, '--token', TOKEN, 'console', '--port', '0'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
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
      expect(config).toEqual({ mode: 'remote', endpoint: gateway.url, auth: 'bearer', metrics: false });
      const models = await fetch(`${url}/models`, { headers: { 'x-maas-console': '1' } });
      expect(models.status).toBe(200);
      const listed = (await models.json()) as { models: { name: string }[] };
      expect(listed.models.map((m) => m.name)).toEqual(['iris']);
      const last = gateway.seen.at(-1);
      expect(last).toMatchObject({ method: 'GET', verdict: 'bearer' });
      expect(last?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

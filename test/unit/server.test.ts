import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationsOf, pathFor, ROUTES, routeKey } from '../../functions/contract/routes';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import { json } from '../../functions/handlers/http';
import { isTextContentType, type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { postBytes } from '../helpers/raw-post';

describe('local server', () => {
  let server: RunningLocalServer;
  const seen: HttpEvent[] = [];

  beforeAll(async () => {
    server = await startLocalServer({
      port: 0,
      maxBodyBytes: 1024,
      actor: 'local:tester',
      handlers: {
        registry: async (event) => {
          seen.push(event);
          if (event.rawPath === '/models/boom') throw new Error('secret stack detail');
          if (event.pathParameters?.name === 'binary') {
            return {
              statusCode: 200,
              headers: { 'Content-Type': 'application/octet-stream' },
              body: Buffer.from([0, 255, 7]).toString('base64'),
              isBase64Encoded: true,
            } satisfies HttpResult;
          }
          return json(201, { echo: event.body ?? null }, { 'x-extra': 'yes' });
        },
        predict: async (event) => {
          seen.push(event);
          return { live: true };
        },
      },
    });
  });
  afterAll(() => server.close());

  const last = () => seen[seen.length - 1]!;

  it('turns a request into an API Gateway v2 event for the route', async () => {
    const res = await fetch(`${server.url}/models/iris/versions?limit=2&tag=a&tag=b`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Custom': 'V', cookie: 'a=1; b=2' },
      body: '{"uploadId":"u1"}',
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-extra')).toBe('yes');
    expect(await res.json()).toEqual({ echo: '{"uploadId":"u1"}' });
    const e = last();
    expect(e.version).toBe('2.0');
    expect(e.routeKey).toBe('POST /models/{name}/versions');
    expect(e.rawPath).toBe('/models/iris/versions');
    expect(e.rawQueryString).toBe('limit=2&tag=a&tag=b');
    expect(e.queryStringParameters).toEqual({ limit: '2', tag: 'a,b' });
    expect(e.pathParameters).toEqual({ name: 'iris' });
    expect(e.headers['x-custom']).toBe('V');
    expect(e.headers['content-type']).toBe('application/json');
    expect(e.headers.cookie).toBeUndefined();
    expect(e.cookies).toEqual(['a=1', 'b=2']);
    expect(e.isBase64Encoded).toBe(false);
    expect(e.requestContext.http.method).toBe('POST');
    expect(e.requestContext.http.path).toBe('/models/iris/versions');
    expect(e.requestContext.http.sourceIp).toMatch(/127\.0\.0\.1/);
    expect(e.requestContext.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof e.requestContext.timeEpoch).toBe('number');
    expect(e.requestContext.authorizer?.iam?.userArn).toBe('local:tester');
  });

  it('routes every operation of the table to its function with the routeKey API Gateway would send', async () => {
    const sample: Record<string, string> = {
      name: 'm 1',
      ref: 'prod',
      version: '3',
      alias: 'a',
      requestId: 'r',
      action: 'abort',
    };
    for (const route of ROUTES.filter((r) => r.fn !== 'async')) {
      const names = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
      const params = Object.fromEntries(names.map((n) => [n, sample[n] as string]));
      const res = await fetch(`${server.url}${pathFor(route.operationId, params as never)}`, {
        method: route.method,
      });
      expect(res.ok, routeKey(route)).toBe(true);
      expect(last().routeKey).toBe(routeKey(route));
      expect(operationsOf(route.fn).get(last().routeKey)).toBe(route.operationId);
      expect(last().pathParameters ?? {}).toEqual(params);
    }
  });

  it('base64-encodes non-text bodies and decodes base64 results', async () => {
    const res = await fetch(`${server.url}/models/binary/uploads`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([1, 2, 3]),
    });
    expect(res.status).toBe(200);
    expect(Array.from(new Uint8Array(await res.arrayBuffer()))).toEqual([0, 255, 7]);
    expect(last().isBase64Encoded).toBe(true);
    expect(Buffer.from(last().body!, 'base64')).toEqual(Buffer.from([1, 2, 3]));
    expect(isTextContentType('application/vnd.api+json')).toBe(true);
    expect(isTextContentType('image/png')).toBe(false);
  });

  it('answers 404 for unknown paths and 405 for a known path with the wrong method', async () => {
    const nf = await fetch(`${server.url}/nope`);
    expect(nf.status).toBe(404);
    expect(await nf.json()).toEqual({ error: expect.any(String), code: 'ROUTE_NOT_FOUND' });
    const na = await fetch(`${server.url}/models`, { method: 'DELETE' });
    expect(na.status).toBe(405);
    expect(await na.json()).toEqual({ error: expect.any(String), code: 'METHOD_NOT_ALLOWED' });
  });

  it('answers 400 INVALID_URL for a request target that is no URL, and serves the next request', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
      let text = '';
      socket.on('data', (d) => {
        text += d;
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
      socket.end(
        `GET http://[ HTTP/1.1\r\nHost: 127.0.0.1:${new URL(server.url).port}\r\nConnection: close\r\n\r\n`,
      );
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      error: expect.any(String),
      code: 'INVALID_URL',
    });
    expect((await fetch(`${server.url}/models`)).status).toBe(201);
  });

  it('answers only its loopback names, and no page of another origin (cross-site posts, DNS rebinding)', async () => {
    const port = Number(new URL(server.url).port);
    /** A POST with these headers (node:http: Host and Origin as given), its status and code. */
    const post = (headers: Record<string, string>) =>
      new Promise<{ status: number; code?: string }>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/models/iris/versions',
            method: 'POST',
            headers: { 'content-type': 'text/plain', ...headers },
          },
          (res) => {
            let text = '';
            res.on('data', (d) => {
              text += d;
            });
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, code: text ? JSON.parse(text).code : undefined }),
            );
          },
        );
        req.on('error', reject);
        req.end('{}');
      });
    const before = seen.length;
    // A form posted by a page the user visits, and a page that reached the server under a name of its own.
    expect(await post({ origin: 'http://evil.example' })).toEqual({ status: 403, code: 'FORBIDDEN_ORIGIN' });
    expect(await post({ origin: 'null' })).toEqual({ status: 403, code: 'FORBIDDEN_ORIGIN' });
    expect(
      await post({ host: `rebind.evil.example:${port}`, origin: `http://rebind.evil.example:${port}` }),
    ).toEqual({
      status: 403,
      code: 'FORBIDDEN_ORIGIN',
    });
    expect(await post({ host: `localhost:${port}.evil.example` })).toEqual({
      status: 403,
      code: 'FORBIDDEN_ORIGIN',
    });
    // A page of another local server (another port of this machine) is another site.
    expect(await post({ origin: `http://127.0.0.1:${port + 1}` })).toEqual({
      status: 403,
      code: 'FORBIDDEN_ORIGIN',
    });
    expect(seen.length).toBe(before);
    // Reached through a forwarded port, or on port 80 (no port in Host and Origin): still this machine's page.
    expect(
      (await post({ host: `localhost:${port + 1}`, origin: `http://localhost:${port + 1}` })).status,
    ).toBe(201);
    expect((await post({ host: 'localhost', origin: 'http://localhost' })).status).toBe(201);
    expect((await post({ host: '[::1]:8080' })).status).toBe(201);
    const forwarded = 3;
    // Its own pages (any loopback name), and clients that send no Origin.
    expect((await post({ origin: `http://127.0.0.1:${port}` })).status).toBe(201);
    expect((await post({ host: `localhost:${port}`, origin: `http://localhost:${port}` })).status).toBe(201);
    expect((await post({})).status).toBe(201);
    expect(seen.length).toBe(before + forwarded + 3);
  });

  it('answers any Host when it listens beyond the loopback interface (loopbackOnly false)', async () => {
    const open = await startLocalServer({
      port: 0,
      loopbackOnly: false,
      handlers: { registry: async () => json(201, {}) },
    });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: Number(new URL(open.url).port),
            path: '/models/iris/versions',
            method: 'POST',
            headers: { host: 'maas.internal:80' },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end('{}');
      });
      expect(status).toBe(201);
    } finally {
      await open.close();
    }
  });

  it('answers 501 for routes whose function is not wired', async () => {
    const res = await fetch(`${server.url}/async/abc`);
    expect(res.status).toBe(501);
    expect(await res.json()).toMatchObject({ code: 'NOT_IMPLEMENTED' });
  });

  it('wraps a non-structured result as 200 JSON', async () => {
    const res = await fetch(`${server.url}/v2/health/live`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ live: true });
  });

  it('maps a handler crash to 500 without leaking details', async () => {
    const res = await fetch(`${server.url}/models/boom`);
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(JSON.parse(body)).toEqual({ error: 'internal error', code: 'INTERNAL' });
    expect(body).not.toContain('secret');
  });

  it('refuses a body over the limit with 413 (declared length, before reading it)', async () => {
    const before = seen.length;
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${server.url}/models/x/versions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': 10_000_000 },
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.write('{"x":"'); // the rest is never sent
    });
    expect(status).toBe(413);
    expect(JSON.parse(body)).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect(seen.length).toBe(before);
  });

  it('refuses a chunked body once it passes the limit', async () => {
    const res = await fetch(`${server.url}/models/x/versions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('x'.repeat(2048)));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });
});

describe('local server: bodies over the limit', () => {
  const LIMIT = 6 * 1024 * 1024;
  let server: RunningLocalServer;
  let handled = 0;

  beforeAll(async () => {
    server = await startLocalServer({
      port: 0,
      maxBodyBytes: LIMIT,
      handlers: {
        predict: async () => {
          handled++;
          return json(200, { ok: true });
        },
      },
    });
  });
  afterAll(() => server.close());

  const send = (size: number, chunked: boolean) =>
    postBytes(`${server.url}/v2/models/m/infer`, size, chunked);

  it('answers 413 PAYLOAD_TOO_LARGE that the client reads, for limit+1 and limit×2 bytes, again and again', async () => {
    for (let round = 0; round < 5; round++) {
      for (const [size, chunked] of [
        [LIMIT + 1, false],
        [LIMIT * 2, false],
        [LIMIT + 1, true],
        [LIMIT * 2, true],
      ] as const) {
        const r = await send(size, chunked);
        expect(r.status, `round ${round}: ${size} bytes${chunked ? ', chunked' : ''}`).toBe(413);
        expect(JSON.parse(r.body)).toEqual({ error: expect.any(String), code: 'PAYLOAD_TOO_LARGE' });
        expect(r.connection).toBe('close');
      }
    }
    expect(handled).toBe(0);
    // The server still serves normal requests afterwards.
    expect((await send(2, false)).status).toBe(200);
  });
});

describe('local server: GET /metrics', () => {
  const TEXT =
    '# TYPE maas_requests_total counter\nmaas_requests_total{model="iris",version="1",alias="prod",route="stable"} 3\n';
  let withMetrics: RunningLocalServer;
  let without: RunningLocalServer;
  let calls = 0;

  beforeAll(async () => {
    withMetrics = await startLocalServer({
      port: 0,
      handlers: { registry: async () => json(200, { registry: true }) },
      metrics: async () => {
        calls++;
        return TEXT;
      },
    });
    without = await startLocalServer({ port: 0, handlers: {} });
  });
  afterAll(async () => {
    await withMetrics.close();
    await without.close();
  });

  it('answers the configured text as the Prometheus text format, fresh on every request', async () => {
    for (let i = 1; i <= 2; i++) {
      const res = await fetch(`${withMetrics.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(await res.text()).toBe(TEXT);
      expect(calls).toBe(i);
    }
    // The API's routes are served beside it.
    expect(await (await fetch(`${withMetrics.url}/models`)).json()).toEqual({ registry: true });
  });

  it('refuses another method with 405', async () => {
    const res = await fetch(`${withMetrics.url}/metrics`, { method: 'POST', body: 'x' });
    expect(res.status).toBe(405);
    expect(((await res.json()) as { code: string }).code).toBe('METHOD_NOT_ALLOWED');
  });

  it('is a 404 when no metrics are configured', async () => {
    const res = await fetch(`${without.url}/metrics`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'no route for GET /metrics', code: 'ROUTE_NOT_FOUND' });
  });
});

describe('local alarms route', () => {
  it('sets an alarm by name with {state}, refusing bad states, names and methods; a 404 without alarms', async () => {
    const set: [string, string][] = [];
    const server = await startLocalServer({
      port: 0,
      handlers: {},
      alarms: async (name, state) => {
        set.push([name, state]);
        return { alarm: name, state, rolledBack: [] };
      },
    });
    const bare = await startLocalServer({ port: 0, handlers: {} });
    try {
      const post = (path: string, body: string, url = server.url, method = 'POST') =>
        fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json' }, body });
      const ok = await post('/local/alarms/my%20alarm', '{"state":"ALARM"}');
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ alarm: 'my alarm', state: 'ALARM', rolledBack: [] });
      for (const [path, body] of [
        ['/local/alarms/x', '{"state":"RED"}'],
        ['/local/alarms/x', '{}'],
        ['/local/alarms/x', 'not json'],
        ['/local/alarms/', '{"state":"OK"}'],
        [`/local/alarms/${'a'.repeat(256)}`, '{"state":"OK"}'],
        ['/local/alarms/a/b', '{"state":"OK"}'],
      ] as const) {
        const r = await post(path, body);
        expect(r.status, `${path} ${body}`).toBe(400);
        expect(await r.json()).toEqual({ error: expect.any(String), code: 'INVALID_ALARM' });
      }
      const put = await post('/local/alarms/x', '{"state":"OK"}', server.url, 'PUT');
      expect(put.status).toBe(405);
      expect((await post('/local/alarms/x', '{"state":"OK"}', bare.url)).status).toBe(404);
      expect(set).toEqual([['my alarm', 'ALARM']]);
    } finally {
      await server.close();
      await bare.close();
    }
  });
});

describe('local server: what API Gateway and Lambda refuse before a function runs', () => {
  let server: RunningLocalServer;
  const seen: HttpEvent[] = [];
  beforeAll(async () => {
    server = await startLocalServer({
      port: 0,
      handlers: {
        predict: async (event) => {
          seen.push(event);
          return { ok: true };
        },
      },
    });
  });
  afterAll(() => server.close());

  /** One raw HTTP exchange: what the server writes back until it closes the connection. */
  const raw = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
      let answer = '';
      socket.on('data', (d) => {
        answer += d.toString('latin1');
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(answer));
      socket.write(text);
    });

  it('answers a request whose event would exceed Lambda’s 6 MB 413 PAYLOAD_TOO_LARGE, without calling the function', async () => {
    const infer = `${server.url}/v2/models/m/infer`;
    const post = (bytes: number) =>
      fetch(infer, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '2' },
        body: Buffer.alloc(bytes, 0x41),
      });
    seen.length = 0;
    // 5 000 000 bytes: 6 666 668 once base64-encoded in the event.
    const big = await post(5_000_000);
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({
      error: expect.stringContaining('6291456'),
      code: 'PAYLOAD_TOO_LARGE',
    });
    expect(seen).toHaveLength(0);
    // 4 500 000 bytes: 6 000 000 base64, with room for the rest of the event.
    const fits = await post(4_500_000);
    expect(fits.status).toBe(200);
    expect(seen).toHaveLength(1);
  });

  it('passes a compressed body of a text type as text, as API Gateway does (its bytes are not kept)', async () => {
    seen.length = 0;
    const gz = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe]);
    const r = await fetch(`${server.url}/v2/models/m/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gz,
    });
    expect(r.status).toBe(200);
    expect(seen[0]?.isBase64Encoded).toBe(false);
    expect(seen[0]?.body).toBe(gz.toString('utf8'));
    // Without a Content-Type it goes base64, bytes intact.
    await fetch(`${server.url}/v2/models/m/infer`, {
      method: 'POST',
      headers: { 'content-encoding': 'gzip' },
      body: gz,
    });
    expect(seen[1]?.isBase64Encoded).toBe(true);
    expect(Buffer.from(seen[1]?.body ?? '', 'base64')).toEqual(gz);
  });

  it('answers requests the HTTP parser refuses with a JSON error', async () => {
    const bad = await raw('FOO /v2/models/m HTTP/1.1\r\nhost: x\r\n\r\n');
    expect(bad).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(bad.slice(bad.indexOf('\r\n\r\n') + 4))).toEqual({
      error: 'the request is not valid HTTP',
      code: 'MALFORMED_REQUEST',
    });
    const long = await raw(`GET /v2/health/live HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(long).toMatch(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(long.slice(long.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'HEADERS_TOO_LARGE' });
  });
});

/**
 * The console's assets: built by esbuild into a folder with their manifest, rebuilt when an input is newer than the
 * build, self-contained (the page loads only its own files); and how the local server serves them.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsole, currentBuild, ensureConsoleBuilt } from '../../console/build';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';

describe('the console build', () => {
  const dir = mkdtempSync(join(tmpdir(), 'maas-console-build-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the page, its script and stylesheet, and a manifest of sizes and inputs', async () => {
    const manifest = await buildConsole(dir);
    expect(manifest.assets.map((a) => a.name)).toEqual(['app.css', 'app.js', 'index.html']);
    for (const a of manifest.assets) expect(a.gzipBytes).toBeLessThan(a.bytes + 64);
    expect(manifest.inputs).toEqual(
      expect.arrayContaining([
        'console/src/main.tsx',
        'console/build.ts',
        'functions/contract/routes.ts',
        expect.stringMatching(/^node_modules\/preact\//),
        expect.stringMatching(/^node_modules\/uplot\//),
      ]),
    );
    // Self-contained: the page refers to its own files only.
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect([...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1])).toEqual([
      'data:,',
      `app.css?v=${manifest.builtAtMs}`,
      `app.js?v=${manifest.builtAtMs}`,
    ]);
    const js = readFileSync(join(dir, 'app.js'), 'utf8');
    expect(js).not.toMatch(/import\s*\(?\s*["']https?:/);
    expect(currentBuild(dir)).toEqual(manifest);
  });

  it('builds again when an input changed since', async () => {
    const before = currentBuild(dir);
    expect(before).toBeDefined();
    const stale = { ...before, builtAtMs: 0 };
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(stale));
    expect(currentBuild(dir)).toBeUndefined();
    const rebuilt = await ensureConsoleBuilt(dir);
    expect(rebuilt.builtAtMs).toBeGreaterThan(0);
    expect(currentBuild(dir)).toEqual(rebuilt);
    rmSync(join(dir, 'app.js'));
    expect(currentBuild(dir)).toBeUndefined();
  });
});

describe('the console on the local server', () => {
  let server: RunningLocalServer;
  beforeAll(async () => {
    server = await startLocalServer({ port: 0, handlers: {}, metrics: () => '' });
  });
  afterAll(() => server?.close());

  it('serves the page at /console/ with a policy that keeps it to its own origin', async () => {
    const redirect = await fetch(`${server.url}/console`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('/console/');
    const page = await fetch(`${server.url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    expect(await page.text()).toContain('<script type="module" src="app.js?v=');
    const js = await fetch(`${server.url}/console/app.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const config = await (await fetch(`${server.url}/console/config.json`)).json();
    expect(config).toEqual({
      mode: 'local',
      endpoint: server.url,
      auth: 'none',
      metrics: true,
      live: 'prometheus',
    });
  });

  it('answers what it does not have with the API’s error shape', async () => {
    const missing = await fetch(`${server.url}/console/nothing.js`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'NOT_FOUND' });
    const post = await fetch(`${server.url}/console/`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(await post.json()).toMatchObject({ code: 'METHOD_NOT_ALLOWED' });
  });
});

/**
 * The tracer layer as it deploys (layers/tracer/build.ts): built into a temporary directory, then loaded in a child
 * process on the deployed runtime's Node.js major with NODE_PATH = the layer's `nodejs/node_modules` and nothing
 * else (cwd and files outside the repository, so the project's node_modules is not on any resolution path):
 * - the layer is self-contained: it requires only Node.js built-ins, and a Tracer can be constructed from it;
 * - `loadTracer`, bundled with the very options of the function bundles (functions/contract/bundling.ts), leaves
 *   the tracer out of the bundle, finds it through NODE_PATH, and in a Lambda-like environment (trace header,
 *   X-Ray daemon address) sends the subsegment of a span to the daemon's UDP port: a real trace leaves the process;
 * - without the layer, the same bundle still loads, and `loadTracer` gives a tracer that records nothing.
 */
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_OPTIONS, TRACER_LAYER_EXTERNALS } from '../../functions/contract/bundling';
import { TRACE_SPANS } from '../../functions/contract/observability';
import {
  type BuiltTracerLayer,
  buildTracerLayer,
  TRACER_LAYER_MAIN,
  TRACER_LAYER_MAX_UNZIPPED_BYTES,
  TRACER_PACKAGE,
  tracerVersion,
} from '../../layers/tracer/build';
import { type LambdaNode, lambdaNode } from './lambda-sandbox';

const ROOT_ID = '1-5759e988-bd862e3fe1be46a994272793';
const PARENT_ID = '53995c3f42cd8ad8';
const TRACE_HEADER = `Root=${ROOT_ID};Parent=${PARENT_ID};Sampled=1`;

let dir: string;
let layer: BuiltTracerLayer;
let node: LambdaNode;
let adapterBundle: string;

interface ChildResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `script` (an ES module file) on the runtime's Node.js, cwd in the temp dir, with only `env` (and PATH). */
function runChild(script: string, env: Record<string, string>): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(node.path, [script], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The last line of the child's stdout, parsed. */
const lastJson = (r: ChildResult): unknown => JSON.parse(r.stdout.trim().split('\n').at(-1) ?? 'null');

const layerNodeModules = () => join(layer.dir, 'nodejs', 'node_modules');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'maas-tracer-layer-'));
  node = lambdaNode('nodejs24.x');
  layer = buildTracerLayer({ outDir: join(dir, 'layer'), log: false });
  // The adapter bundled exactly as every function bundle is (only the target follows the child's Node.js 24).
  const out = await build({
    ...BUNDLE_OPTIONS,
    mainFields: [...BUNDLE_OPTIONS.mainFields],
    external: [...BUNDLE_OPTIONS.external],
    entryPoints: [join(__dirname, '..', '..', 'functions', 'adapters', 'powertools-tracer.ts')],
    outdir: join(dir, 'task'),
    logLevel: 'silent',
  });
  expect(out.errors).toEqual([]);
  adapterBundle = join(dir, 'task', 'powertools-tracer.mjs');
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('tracer layer build', () => {
  it('is one CommonJS file and its package.json under nodejs/node_modules, within budget', () => {
    expect([...layer.files].sort()).toEqual(
      [TRACER_LAYER_MAIN, `nodejs/node_modules/${TRACER_PACKAGE}/package.json`].sort(),
    );
    const pkg = JSON.parse(
      readFileSync(join(layerNodeModules(), TRACER_PACKAGE, 'package.json'), 'utf8'),
    ) as Record<string, unknown>;
    expect(pkg).toEqual({ name: TRACER_PACKAGE, version: tracerVersion(), main: 'index.js' });
    expect(layer.version).toBe(tracerVersion());
    expect(layer.unzippedBytes).toBeGreaterThan(0);
    expect(layer.unzippedBytes).toBeLessThan(TRACER_LAYER_MAX_UNZIPPED_BYTES);
  });

  it('requires nothing but Node.js built-ins: the X-Ray SDK and Powertools commons are inside', () => {
    const code = readFileSync(join(layer.dir, TRACER_LAYER_MAIN), 'utf8');
    const required = [...code.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1] as string);
    expect(required.length).toBeGreaterThan(0);
    const builtins = new Set(builtinModules);
    const outside = required.filter((r) => !builtins.has(r.replace(/^node:/, '')));
    expect(outside).toEqual([]);
  });

  it('loads in isolation (NODE_PATH = the layer only) and constructs a Tracer', async () => {
    const script = join(dir, 'construct.mjs');
    writeFileSync(
      script,
      `import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
let isolated = false;
try { require.resolve('aws-xray-sdk-core'); } catch { isolated = true; }
const { Tracer } = require('${TRACER_PACKAGE}');
const tracer = new Tracer({ serviceName: 'maas-layer-test' });
console.log(JSON.stringify({ isolated, tracer: tracer.constructor.name, enabled: tracer.isTracingEnabled() }));
`,
    );
    const r = await runChild(script, { NODE_PATH: layerNodeModules() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Outside Lambda the tracer is constructed disabled.
    expect(lastJson(r)).toEqual({ isolated: true, tracer: 'Tracer', enabled: false });
  });
});

describe('loadTracer in a function bundle', () => {
  let socket: Socket;
  let port: number;
  const datagrams: string[] = [];

  beforeAll(async () => {
    socket = createSocket('udp4');
    socket.on('message', (m) => datagrams.push(m.toString('utf8')));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    port = socket.address().port;
  });

  afterAll(() => {
    socket?.close();
  });

  it('leaves the tracer out of the bundle', () => {
    const code = readFileSync(adapterBundle, 'utf8');
    expect(TRACER_LAYER_EXTERNALS).toContain(TRACER_PACKAGE);
    expect(code).toContain(`"${TRACER_PACKAGE}"`);
    // The X-Ray SDK's daemon client and Powertools' Tracer class are not bundled.
    expect(code).not.toMatch(/AWS_XRAY_DAEMON_ADDRESS|ProviderService|captureHTTPsGlobal/);
  });

  /**
   * Runs, in a Lambda-like traced invocation (trace header, daemon address), the bundled adapter's `loadTracer` and
   * one `Run` span that returns `value`; `env` adds to that environment (the layer's NODE_PATH, or nothing).
   */
  async function spanInLambda(
    file: string,
    value: number,
    env: Record<string, string>,
  ): Promise<ChildResult> {
    const script = join(dir, file);
    writeFileSync(
      script,
      `const { loadTracer } = await import(${JSON.stringify(adapterBundle)});
const tracer = await loadTracer('maas-predict');
const value = await tracer.span(${JSON.stringify(TRACE_SPANS.run)}, async () => ${value});
console.log(JSON.stringify({ enabled: tracer.enabled, value }));
`,
    );
    datagrams.length = 0;
    return runChild(script, {
      ...env,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
      AWS_LAMBDA_FUNCTION_NAME: 'maas-predict',
      LAMBDA_TASK_ROOT: join(dir, 'task'),
      _X_AMZN_TRACE_ID: TRACE_HEADER,
      AWS_XRAY_DAEMON_ADDRESS: `127.0.0.1:${port}`,
    });
  }

  it('in a Lambda-like sandbox with the layer, sends the span as an X-Ray subsegment to the daemon', async () => {
    const r = await spanInLambda('traced.mjs', 42, { NODE_PATH: layerNodeModules() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lastJson(r)).toEqual({ enabled: true, value: 42 });
    // The datagram is sent before the child exits; give the socket a moment to deliver it.
    for (let i = 0; i < 50 && datagrams.length === 0; i++) await new Promise((res) => setTimeout(res, 20));
    const docs = datagrams.map((d) => {
      const [header, body] = d.split('\n');
      expect(JSON.parse(header ?? '')).toEqual({ format: 'json', version: 1 });
      return JSON.parse(body ?? '') as Record<string, unknown>;
    });
    expect(docs).toEqual([
      expect.objectContaining({
        type: 'subsegment',
        name: TRACE_SPANS.run,
        trace_id: ROOT_ID,
        parent_id: PARENT_ID,
        start_time: expect.any(Number),
        end_time: expect.any(Number),
      }),
    ]);
  });

  it('without the layer, the bundle loads and loadTracer gives a tracer that records nothing', async () => {
    const r = await spanInLambda('untraced.mjs', 7, {});
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lastJson(r)).toEqual({ enabled: false, value: 7 });
    await new Promise((res) => setTimeout(res, 100));
    expect(datagrams).toEqual([]);
  });
});

/**
 * A stalled dependency: the service's own DynamoDB Local (not the suite's) is paused with SIGSTOP, as a
 * network partition or a hung service looks to a client (connections accepted, nothing answered). Every HTTP
 * route that reads the table must answer 503 UNAVAILABLE with Retry-After within the 10 s contract
 * (docs/ARCHITECTURE.md, "Errors"), and the same routes must answer 2xx again by themselves once it resumes.
 * The measured times are printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient, s3Client } from '../../functions/adapters/aws-clients';
import { registerVersion } from '../../functions/app/registry';
import { S3_KEYS } from '../../functions/contract/env';
import { composeLocal, type LocalServices } from '../../functions/local/compose';
import {
  localClientOptions,
  type RunningDynamo,
  type RunningS3,
  startDynamoDbLocal,
  startS3rver,
} from '../../functions/local/emulators';
import { ensureBucket, ensureTable } from '../../functions/local/provision';
import { buildIrisModel, SAMPLE_MODEL } from '../../functions/local/sample-model';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { silentLogger } from '../helpers/recording-logger';

/** The contract: a stalled dependency is answered within 10 s. */
const CONTRACT_MS = 10_000;
/** Time the service may take to serve again once the dependency is back (a loaded 2-core machine). */
const RECOVERY_MS = 20_000;

const TABLE = 'maas-faults';
const BUCKET = 'maas-faults';
const MODEL = 'faulty';
const UNCACHED = 'faulty-cold';

let dir: string;
let dynamo: RunningDynamo | undefined;
let s3: RunningS3 | undefined;
let services: LocalServices | undefined;
let server: RunningLocalServer | undefined;
let paused = false;

interface Probe {
  readonly label: string;
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
}

const PROBES: readonly Probe[] = [
  { label: 'GET /v2/health/ready', method: 'GET', path: '/v2/health/ready' },
  {
    label: 'POST infer (uncached model)',
    method: 'POST',
    path: `/v2/models/${UNCACHED}/versions/1/infer`,
    body: {
      inputs: [{ name: SAMPLE_MODEL.inputName, shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }],
    },
  },
  { label: 'GET model metadata', method: 'GET', path: `/v2/models/${UNCACHED}/versions/1` },
  { label: 'GET /models', method: 'GET', path: '/models' },
  { label: 'GET /models/{name}', method: 'GET', path: `/models/${MODEL}` },
  { label: 'GET /models/{name}/versions', method: 'GET', path: `/models/${MODEL}/versions` },
  {
    label: 'PUT /models/{name}/aliases/{alias}',
    method: 'PUT',
    path: `/models/${MODEL}/aliases/staging`,
    body: { version: 1 },
  },
];

async function call(
  p: Probe,
): Promise<{ status: number; body: string; retryAfter: string | null; ms: number }> {
  const started = performance.now();
  try {
    const res = await fetch(`${server?.url}${p.path}`, {
      method: p.method,
      ...(p.body !== undefined
        ? { body: JSON.stringify(p.body), headers: { 'content-type': 'application/json' } }
        : {}),
      // Far beyond the contract: a hang shows up as a failed assertion (status 0), not a stuck test.
      signal: AbortSignal.timeout(30_000),
    });
    const body = await res.text();
    const retryAfter = res.headers.get('retry-after');
    return { status: res.status, body, retryAfter, ms: performance.now() - started };
  } catch (e) {
    return { status: 0, body: String(e), retryAfter: null, ms: performance.now() - started };
  }
}

function resume(): void {
  if (paused && dynamo?.process.pid) {
    process.kill(dynamo.process.pid, 'SIGCONT');
    paused = false;
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'maas-faults-'));
  [dynamo, s3] = await Promise.all([startDynamoDbLocal(), startS3rver({ directory: join(dir, 's3') })]);
  const doc = dynamoDocumentClient(localClientOptions(dynamo.endpoint));
  const s3c = s3Client(localClientOptions(s3.endpoint));
  await Promise.all([ensureTable(doc, TABLE), ensureBucket(s3c, BUCKET)]);
  services = composeLocal({
    doc,
    s3: s3c,
    endpoints: { dynamodb: dynamo.endpoint, s3: s3.endpoint },
    table: TABLE,
    bucket: BUCKET,
    logger: silentLogger,
    log: () => {},
  });
  const bytes = buildIrisModel();
  for (const name of [MODEL, UNCACHED]) {
    const key = S3_KEYS.upload(name, 'faults');
    await services.registry.store.putObject(key, bytes);
    await registerVersion(services.registry, { name, sourceKey: key, actor: 'test' });
  }
  server = await startLocalServer({ handlers: services.handlers, port: 0 });
  // The routes work before the fault. The uncached model stays unserved until the fault, and readiness unprobed:
  // its outcome is reused for LIMITS.readinessTtlMs (handlers/readiness.ts).
  for (const p of PROBES.filter((q) => !q.path.includes(UNCACHED) && !q.path.includes('/health/'))) {
    expect((await call(p)).status, p.label).toBeLessThan(300);
  }
}, 180_000);

afterAll(async () => {
  // Whatever failed above, the emulator is resumed before it is stopped (a stopped process ignores SIGTERM).
  resume();
  await server?.close();
  await services?.close();
  await Promise.all([dynamo?.stop(), s3?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('DynamoDB Local paused (SIGSTOP)', () => {
  it('every route that reads the table answers 503 UNAVAILABLE with Retry-After within the contract, then recovers', async () => {
    const pid = dynamo?.process.pid;
    expect(pid).toBeDefined();
    process.kill(pid as number, 'SIGSTOP');
    paused = true;

    // All at once, as concurrent clients would: each is timed on its own.
    const stalled = await Promise.all(PROBES.map(async (p) => ({ p, r: await call(p) })));
    const lines = stalled.map(({ p, r }) => `  ${p.label.padEnd(40)} ${r.status} ${Math.round(r.ms)} ms`);
    console.log(`time to answer with DynamoDB Local paused:\n${lines.join('\n')}`);
    for (const { p, r } of stalled) {
      expect(r.status, `${p.label}: ${r.body}`).toBe(503);
      expect(JSON.parse(r.body), p.label).toMatchObject({ code: 'UNAVAILABLE', error: expect.any(String) });
      expect(Number(r.retryAfter), p.label).toBeGreaterThanOrEqual(1);
      expect(r.ms, p.label).toBeLessThan(CONTRACT_MS);
    }

    resume();
    const recovered: string[] = [];
    for (const p of PROBES) {
      const until = Date.now() + RECOVERY_MS;
      let last = await call(p);
      while (last.status >= 300 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 250));
        last = await call(p);
      }
      recovered.push(`  ${p.label.padEnd(40)} ${last.status} ${Math.round(last.ms)} ms`);
      expect(last.status, `${p.label} after resume: ${last.body}`).toBeLessThan(300);
    }
    console.log(`after DynamoDB Local resumed:\n${recovered.join('\n')}`);
  }, 120_000);
});

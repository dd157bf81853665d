/**
 * The Lambda entry as deployed: `handler` built at module scope from the environment, with MAAS_PRELOAD
 * loading sessions during INIT (a fresh child process, the suite's emulators).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addConstant, createPredictTestEnv, type PredictTestEnv } from '../helpers/predict-env';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '..', '..');

let env: PredictTestEnv;
let sha: string;

beforeAll(async () => {
  env = await createPredictTestEnv();
  sha = (await env.register('preloaded', addConstant(3))).sha256;
});
afterAll(async () => {
  await env?.dispose();
});

describe('MAAS_PRELOAD', () => {
  it('loads the listed sessions during INIT and serves from them; a bad entry does not stop the function', async () => {
    const script = join(ROOT, '.maas', `preload-${process.pid}.mts`);
    mkdirSync(join(ROOT, '.maas'), { recursive: true });
    writeFileSync(
      script,
      `import { handler } from ${JSON.stringify(join(ROOT, 'functions/handlers/predict.ts'))};
import { sharedOrtEngine } from ${JSON.stringify(join(ROOT, 'functions/adapters/ort-engine.ts'))};
import { sharedSessionCache } from ${JSON.stringify(join(ROOT, 'functions/app/session-cache.ts'))};
import { apiEvent } from ${JSON.stringify(join(ROOT, 'test/helpers/apigw.ts'))};
// The handler's INIT created the process's cache: this returns that one.
const sessions = sharedSessionCache({ engine: sharedOrtEngine() });
const loadedAtInit = sessions.has(${JSON.stringify(sha)});
const created = sessions.created;
const r = await handler(apiEvent('POST', '/v2/models/preloaded/infer', { body: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] } }));
console.log(JSON.stringify({ loadedAtInit, created, createdAfter: sessions.created, status: r.statusCode, body: JSON.parse(r.body) }));
`,
    );
    const { stdout, stderr } = await run(join(ROOT, 'node_modules', '.bin', 'tsx'), [script], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...env.aws.childEnv,
        MAAS_PRELOAD: 'preloaded@prod,ghost@1',
        NODE_NO_WARNINGS: '1',
      },
      timeout: 60_000,
    }).finally(() => rmSync(script, { force: true }));
    // The driver's line (the handler's EMF document follows it, written after the answer).
    const out = JSON.parse(stdout.split('\n').find((l) => l.startsWith('{"loadedAtInit"'))!);
    expect(out.loadedAtInit).toBe(true);
    expect(out.created).toBe(1);
    expect(out.createdAfter).toBe(1);
    expect(out.status).toBe(200);
    expect(out.body.outputs[0].data).toEqual([4, 5]);
    expect(stderr).toContain('preload failed');
  });
});

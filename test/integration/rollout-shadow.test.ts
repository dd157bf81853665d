/**
 * A rollout rolled back by divergence on the local service, end to end: the predict path mirrors the stable traffic
 * to the new version (in-process work queue), the worker compares the answers and counts them into the rollout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerVersion } from '../../functions/app/registry';
import { startTestLocalService, type TestLocalService } from '../helpers/local-services';
import { addConstant } from '../helpers/predict-env';

let local: TestLocalService;

beforeAll(async () => {
  local = await startTestLocalService('rollout-shadow');
});
afterAll(async () => {
  await local?.close();
});

const call = (method: string, path: string, body?: unknown) => local.call(method, path, body);
const reasons = (name: string) => local.canaryHistory(name);

describe('rollouts and shadow traffic on the local service', () => {
  it('rolls back on divergence: the stable traffic mirrored to the new version, compared by the worker', async () => {
    // v1 answers x + 1, v2 answers x + 5: every element differs by 4, the argmax agrees.
    for (const [i, c] of [1, 5].entries()) {
      const key = `uploads/div/v${i}.onnx`;
      await local.services.registry.store.putObject(key, addConstant(c));
      await registerVersion(local.services.registry, { name: 'div', sourceKey: key, actor: 'tester' });
    }
    const started = await call('PUT', '/models/div/aliases/prod/rollout', {
      version: 2,
      steps: [{ weight: 10, bakeSeconds: 3600 }],
      maxDivergence: { maxAbsDiff: 0.5, shadowPercent: 100 },
    });
    expect(started.status).toBe(201);
    const model = await call('GET', '/models/div');
    expect(model.body.splits).toEqual({
      prod: { canary: { version: 2, weight: 10 }, shadow: { version: 2, percent: 100 } },
    });
    // Keyed requests: keys on the stable side are mirrored (all of them at 100 %).
    const answered: number[] = [];
    for (let i = 0; i < 20 && answered.filter((v) => v === 1).length < 3; i++) {
      const res = await fetch(`${local.server.url}/v2/models/div/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-maas-routing-key': `user-${i}` },
        body: JSON.stringify({
          id: `req-${i}`,
          inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [1, 2] }],
        }),
      });
      expect(res.status).toBe(200);
      answered.push(Number(((await res.json()) as { model_version: string }).model_version));
    }
    expect(answered).toContain(1);
    await local.services.idle();
    const r = await call('GET', '/models/div/aliases/prod/rollout');
    expect(r.body).toMatchObject({ status: 'rolled_back', endedReason: 'divergence:maxAbsDiff' });
    expect((r.body.divergence as { overMaxAbs: number }).overMaxAbs).toBeGreaterThanOrEqual(1);
    expect((await reasons('div')).map(([, reason]) => reason).at(-1)).toBe('divergence:maxAbsDiff');
    expect((await call('GET', '/models/div')).body.splits).toBeUndefined();
  });
});

/**
 * A rollout rolled back by divergence on the local service, end to end: the predict path mirrors the stable traffic
 * to the new version (in-process work queue), the worker compares the answers and counts them into the rollout —
 * judged on the model's own outputs, not on its post-processing outputs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerVersion } from '../../functions/app/registry';
import { buildMlp } from '../../functions/local/onnx-builder';
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

  it('a flipped near-tie of a model with argmax post-processing: judged by its scores, not by the class index', async () => {
    // softmax(x · I + b): v2's bias tips the near-tie [0, 0.05] to class 0; the probabilities move by 0.025, the
    // argmax output by 1 (over maxAbsDiff 0.5 if it were judged).
    const model = (b: number[]) =>
      buildMlp({
        inFeatures: 2,
        layers: [2],
        softmax: true,
        inputName: 'x',
        weights: [{ w: [1, 0, 0, 1], b }],
      });
    for (const [i, b] of [
      [0, 0],
      [0.1, 0],
    ].entries()) {
      const key = `uploads/tie/v${i}.onnx`;
      await local.services.registry.store.putObject(key, model(b));
      await registerVersion(local.services.registry, {
        name: 'tie',
        sourceKey: key,
        postprocess: { argmax: true },
        labels: ['no', 'yes'],
        actor: 'tester',
      });
    }
    const started = await call('PUT', '/models/tie/aliases/prod/rollout', {
      version: 2,
      steps: [{ weight: 10, bakeSeconds: 3600 }],
      maxDivergence: { maxAbsDiff: 0.5, shadowPercent: 100, minSamples: 1000 },
    });
    expect(started.status).toBe(201);
    let stable = 0;
    for (let i = 0; i < 20 && stable < 3; i++) {
      const res = await fetch(`${local.server.url}/v2/models/tie/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-maas-routing-key': `user-${i}` },
        body: JSON.stringify({
          id: `tie-${i}`,
          inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [0, 0.05] }],
        }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { model_version: string; outputs: { name: string }[] };
      if (body.model_version === '1') stable++;
      expect(body.outputs.map((o) => o.name)).toEqual(['output', 'argmax', 'label']);
    }
    expect(stable).toBeGreaterThan(0);
    await local.services.idle();
    const r = await call('GET', '/models/tie/aliases/prod/rollout');
    expect(r.body).toMatchObject({ status: 'running' });
    // One row per mirrored request (the argmax output adds none), none over maxAbsDiff.
    const d = r.body.divergence as {
      requests: number;
      rows: number;
      agreeingRows: number;
      overMaxAbs: number;
    };
    expect(d.requests).toBeGreaterThanOrEqual(1);
    expect(d).toMatchObject({ rows: d.requests, agreeingRows: 0, overMaxAbs: 0 });
  });
});

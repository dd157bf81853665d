/**
 * Staged rollouts end to end on the local service: the rollout routes through the local HTTP server, the controller
 * on its timer, and `POST /local/alarms/{name}` rolling a rollout back, read back through the alias history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestLocalService, type TestLocalService } from '../helpers/local-services';
import { newVersion } from '../helpers/registry-repository-contract';

let local: TestLocalService;

beforeAll(async () => {
  local = await startTestLocalService('rollout-local');
});
afterAll(async () => {
  await local?.close();
});

const call = (method: string, path: string, body?: unknown) => local.call(method, path, body);
const reasons = (name: string) => local.canaryHistory(name);

describe('rollouts on the local service', () => {
  it('starts over HTTP, advances on a tick, and rolls back on POST /local/alarms/{name}', async () => {
    for (let i = 0; i < 2; i++) await local.services.registry.repo.createVersion(newVersion('e2e'));
    const started = await call('PUT', '/models/e2e/aliases/prod/rollout', {
      version: 2,
      steps: [
        { weight: 10, bakeSeconds: 0 },
        { weight: 50, bakeSeconds: 3600 },
      ],
      alarms: ['e2e-errors'],
    });
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({ status: 'running', weight: 10, actor: 'local:tester' });
    const id8 = String(started.body.id).slice(0, 8);

    expect((await local.services.tickRollouts()).advanced).toEqual(['e2e@prod']);
    expect((await call('GET', '/models/e2e/aliases/prod/rollout')).body).toMatchObject({
      step: 1,
      weight: 50,
    });

    const bad = await call('POST', '/local/alarms/e2e-errors', { state: 'RED' });
    expect(bad).toEqual({ status: 400, body: { error: expect.any(String), code: 'INVALID_ALARM' } });
    const ok = await call('POST', '/local/alarms/e2e-errors', { state: 'OK' });
    expect(ok).toEqual({ status: 200, body: { alarm: 'e2e-errors', state: 'OK', rolledBack: [] } });
    const fired = await call('POST', '/local/alarms/e2e-errors', { state: 'ALARM' });
    expect(fired).toEqual({
      status: 200,
      body: { alarm: 'e2e-errors', state: 'ALARM', rolledBack: ['e2e@prod'] },
    });
    expect((await call('GET', '/models/e2e/aliases/prod/rollout')).body).toMatchObject({
      status: 'rolled_back',
      endedReason: 'alarm:e2e-errors',
    });
    expect(await reasons('e2e')).toEqual([
      [10, `rollout ${id8}: step 1/2, canary v2 at 10%`],
      [50, `rollout ${id8}: step 2/2, canary v2 at 50%`],
      [undefined, 'alarm:e2e-errors'],
    ]);
    const model = await call('GET', '/models/e2e');
    expect(model.body.splits).toBeUndefined();
    // The alarm stays in ALARM: a new rollout naming it is rolled back by the next tick.
    const again = await call('PUT', '/models/e2e/aliases/prod/rollout', {
      version: 2,
      steps: [{ weight: 5, bakeSeconds: 3600 }],
      alarms: ['e2e-errors'],
    });
    expect(again.status).toBe(201);
    expect((await local.services.tickRollouts()).rolledBack).toEqual(['e2e@prod']);
    expect((await call('POST', '/local/alarms/e2e-errors', { state: 'OK' })).status).toBe(200);
  });

  it('answers 400, not 500, for shares and bounds DynamoDB cannot store, and stores those at the edge', async () => {
    for (let i = 0; i < 2; i++) await local.services.registry.repo.createVersion(newVersion('tiny'));
    const before = await local.services.registry.repo.getAlias('tiny', 'prod');
    const refused = async (method: string, path: string, body: unknown, code: string) => {
      const r = await call(method, path, body);
      expect([r.status, r.body.code], JSON.stringify(body)).toEqual([400, code]);
      return String(r.body.error);
    };
    for (const weight of [1e-300, 1e-11]) {
      const error = await refused(
        'PATCH',
        '/models/tiny/aliases/prod',
        { routing: { canary: { version: 2, weight } } },
        'INVALID_ROUTING',
      );
      expect(error).toContain('in steps of 0.1');
    }
    await refused(
      'PATCH',
      '/models/tiny/aliases/prod',
      { routing: { shadow: { version: 2, percent: 1e-200 } } },
      'INVALID_ROUTING',
    );
    for (const path of ['/models/tiny/aliases/prod', '/models/tiny/versions/2']) {
      await refused('PATCH', path, { capture: { samplePercent: 1e-300 } }, 'INVALID_CAPTURE');
    }
    const rollout = (maxDivergence: object, weight = 10) => ({
      version: 2,
      steps: [{ weight, bakeSeconds: 3600 }],
      maxDivergence,
    });
    await refused(
      'PUT',
      '/models/tiny/aliases/prod/rollout',
      rollout({ maxAbsDiff: 1 }, 1e-300),
      'INVALID_ROLLOUT',
    );
    for (const bounds of [
      { maxAbsDiff: 1e300 },
      { maxAbsDiff: 1e-300 },
      { maxAbsDiff: 1, maxShadowErrorRate: 1e-300 },
    ]) {
      const error = await refused(
        'PUT',
        '/models/tiny/aliases/prod/rollout',
        rollout(bounds),
        'INVALID_ROLLOUT',
      );
      expect(error).toContain('0 or at least 1e-130 in magnitude');
    }
    expect(await local.services.registry.repo.getAlias('tiny', 'prod')).toEqual(before);
    expect((await call('GET', '/models/tiny/aliases/prod/rollout')).status).toBe(404);

    // The edges of the stored range are written and read back as given.
    const edge = { maxAbsDiff: 1e-130, maxKlDivergence: Number.MAX_SAFE_INTEGER, maxShadowErrorRate: 1e-130 };
    const started = await call('PUT', '/models/tiny/aliases/prod/rollout', rollout(edge, 0.1));
    expect(started.status).toBe(201);
    expect((await call('GET', '/models/tiny/aliases/prod/rollout')).body).toMatchObject({
      weight: 0.1,
      maxDivergence: edge,
    });
    expect((await call('POST', '/models/tiny/aliases/prod/rollout/abort')).status).toBe(200);
  });

  it('runs the controller on its timer, and pause / resume / abort over HTTP', async () => {
    for (let i = 0; i < 2; i++) await local.services.registry.repo.createVersion(newVersion('timed'));
    const started = await call('PUT', '/models/timed/aliases/prod/rollout', {
      version: 2,
      steps: [
        { weight: 10, bakeSeconds: 0 },
        { weight: 20, bakeSeconds: 3600 },
      ],
    });
    expect(started.status).toBe(201);
    local.services.startRolloutController(50);
    const deadline = Date.now() + 10_000;
    let step = 0;
    while (Date.now() < deadline && step !== 1) {
      await new Promise((r) => setTimeout(r, 50));
      step = Number((await call('GET', '/models/timed/aliases/prod/rollout')).body.step);
    }
    expect(step).toBe(1);
    expect((await call('POST', '/models/timed/aliases/prod/rollout/pause')).body).toMatchObject({
      status: 'paused',
    });
    expect((await call('POST', '/models/timed/aliases/prod/rollout/resume')).body).toMatchObject({
      status: 'running',
    });
    expect((await call('POST', '/models/timed/aliases/prod/rollout/abort')).body).toMatchObject({
      status: 'aborted',
    });
    expect((await call('POST', '/models/timed/aliases/prod/rollout/skip')).body).toMatchObject({
      code: 'INVALID_ACTION',
    });
    expect((await reasons('timed')).map(([, r]) => r).at(-1)).toBe('rollout aborted');
    const alias = await local.services.registry.repo.getAlias('timed', 'prod');
    expect(alias?.routing).toBeUndefined();
  });
});

describe('the local server passing bodies to the handlers', () => {
  it('refuses a text body that is not UTF-8 (400) instead of storing U+FFFD in its place', async () => {
    await local.services.registry.repo.createVersion(newVersion('bytes'));
    // "café" with é as the Latin-1 byte 0xE9: not UTF-8.
    const body = Buffer.concat([Buffer.from('{"description":"caf'), Buffer.of(0xe9), Buffer.from('"}')]);
    const r = await fetch(`${local.server.url}/models/bytes/versions/1`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ error: 'request body is not UTF-8 text', code: 'MALFORMED_JSON' });
    expect((await local.services.registry.repo.getVersion('bytes', 1))?.description).toBeUndefined();
    // The same text in UTF-8 is stored as sent.
    const ok = await call('PATCH', '/models/bytes/versions/1', { description: 'café' });
    expect(ok.status).toBe(200);
    expect((await local.services.registry.repo.getVersion('bytes', 1))?.description).toBe('café');
  });
});

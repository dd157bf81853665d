/**
 * Staged rollouts end to end on the local service: the rollout routes through the local HTTP server, the controller
 * on its timer, and `POST /local/alarms/{name}` rolling a rollout back, read back through the alias history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalServices } from '../../functions/local/compose';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { composeTestServices } from '../helpers/local-services';
import { newVersion } from '../helpers/registry-repository-contract';

let aws: TestAwsEnv;
let services: LocalServices;
let server: RunningLocalServer;

beforeAll(async () => {
  aws = await createTestAwsEnv('rollout-local');
  services = composeTestServices(aws);
  server = await startLocalServer({
    port: 0,
    handlers: services.handlers,
    actor: 'local:tester',
    alarms: (name, state) => services.setAlarm(name, state),
  });
});
afterAll(async () => {
  await server?.close();
  await services?.close();
  await aws?.dispose();
});

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    ...(body !== undefined
      ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
      : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const reasons = async (name: string) => {
  const h = await call('GET', `/models/${name}/aliases/prod/history`);
  return (h.body.history as { reason?: string; routing?: { canary?: { weight: number } } }[])
    .slice()
    .reverse()
    .slice(1)
    .map((e) => [e.routing?.canary?.weight, e.reason]);
};

describe('rollouts on the local service', () => {
  it('starts over HTTP, advances on a tick, and rolls back on POST /local/alarms/{name}', async () => {
    for (let i = 0; i < 2; i++) await services.registry.repo.createVersion(newVersion('e2e'));
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

    expect((await services.tickRollouts()).advanced).toEqual(['e2e@prod']);
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
    expect((await services.tickRollouts()).rolledBack).toEqual(['e2e@prod']);
    expect((await call('POST', '/local/alarms/e2e-errors', { state: 'OK' })).status).toBe(200);
  });

  it('runs the controller on its timer, and pause / resume / abort over HTTP', async () => {
    for (let i = 0; i < 2; i++) await services.registry.repo.createVersion(newVersion('timed'));
    const started = await call('PUT', '/models/timed/aliases/prod/rollout', {
      version: 2,
      steps: [
        { weight: 10, bakeSeconds: 0 },
        { weight: 20, bakeSeconds: 3600 },
      ],
    });
    expect(started.status).toBe(201);
    services.startRolloutController(50);
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
    const alias = await services.registry.repo.getAlias('timed', 'prod');
    expect(alias?.routing).toBeUndefined();
  });
});

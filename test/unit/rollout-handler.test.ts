/** The rollout routes of the registry handler on in-memory repositories: bodies, answers and error codes. */
import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import { MemoryRolloutRepository } from '../../functions/adapters/memory-rollouts';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import { createRegistryHandler } from '../../functions/handlers/registry';
import type { ArtifactStore, ModelInspector } from '../../functions/ports';
import { apiEvent, parseResult } from '../helpers/apigw';
import { newVersion } from '../helpers/registry-repository-contract';

const unused = () => {
  throw new Error('not used');
};
const store = {
  bucket: 'b',
  getObject: unused,
  putObject: unused,
  headObject: unused,
  deleteObject: unused,
  presignPut: unused,
} as unknown as ArtifactStore;
const inspector: ModelInspector = { inspect: unused };
const clock = { now: () => new Date('2026-03-01T12:00:00.000Z') };

let h: (e: HttpEvent) => Promise<HttpResult>;
beforeEach(async () => {
  const repo = new MemoryRegistryRepository({ clock });
  for (let i = 0; i < 2; i++) await repo.createVersion(newVersion('m'));
  h = createRegistryHandler({ repo, store, inspector, rollouts: new MemoryRolloutRepository(), clock });
});

const call = async (method: string, path: string, body?: unknown) =>
  parseResult<Record<string, unknown>>(await h(apiEvent(method, path, body === undefined ? {} : { body })));

const spec = { version: 2, steps: [{ weight: 10, bakeSeconds: 300 }, { weight: 100 }], alarms: ['errors'] };

describe('rollout routes', () => {
  it('PUT starts (201), GET reads with weight and nextStepAt, POST pause/resume/abort (200)', async () => {
    const started = await call('PUT', '/models/m/aliases/prod/rollout', { ...spec, expectedRevision: 1 });
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({
      name: 'm',
      alias: 'prod',
      version: 2,
      fromVersion: 1,
      status: 'running',
      step: 0,
      weight: 10,
      steps: [
        { weight: 10, bakeSeconds: 300 },
        { weight: 100, bakeSeconds: 0 },
      ],
      alarms: ['errors'],
      nextStepAt: '2026-03-01T12:05:00.000Z',
      revision: 1,
      divergence: { requests: 0, rows: 0, agreeingRows: 0, overMaxAbs: 0, overKl: 0, shadowErrors: 0 },
    });
    expect(started.body.id).toMatch(/^[0-9a-f-]{36}$/);
    const got = await call('GET', '/models/m/aliases/prod/rollout');
    expect(got).toMatchObject({ status: 200, body: { id: started.body.id, weight: 10 } });
    const again = await call('PUT', '/models/m/aliases/prod/rollout', spec);
    expect(again).toMatchObject({ status: 409, body: { code: 'ROLLOUT_IN_PROGRESS' } });
    expect((await call('POST', '/models/m/aliases/prod/rollout/pause')).body).toMatchObject({
      status: 'paused',
    });
    expect((await call('POST', '/models/m/aliases/prod/rollout/pause')).body).toEqual({
      error: expect.stringContaining('paused'),
      code: 'ROLLOUT_NOT_ACTIVE',
    });
    expect((await call('POST', '/models/m/aliases/prod/rollout/resume')).body).toMatchObject({
      status: 'running',
    });
    const aborted = await call('POST', '/models/m/aliases/prod/rollout/abort', {});
    expect(aborted).toMatchObject({ status: 200, body: { status: 'aborted', endedReason: 'aborted' } });
    expect(aborted.body.nextStepAt).toBeUndefined();
    expect(await call('POST', '/models/m/aliases/prod/rollout/abort')).toMatchObject({
      status: 409,
      body: { code: 'ROLLOUT_NOT_ACTIVE' },
    });
    const history = await call('GET', '/models/m/aliases/prod/history');
    expect((history.body.history as { reason?: string }[]).map((e) => e.reason).slice(0, 2)).toEqual([
      'rollout aborted',
      `rollout ${String(started.body.id).slice(0, 8)}: step 1/2, canary v2 at 10%`,
    ]);
  });

  it('answers malformed bodies with 400 INVALID_ROLLOUT {error, code} and unknown actions with 400 INVALID_ACTION', async () => {
    for (const body of [
      { version: 2 },
      { version: 2, steps: [{ weight: 0 }] },
      { ...spec, alarms: [42] },
      { ...spec, expectedRevision: -1 },
      { ...spec, maxDivergence: { minArgmaxAgreement: 2 } },
    ]) {
      const r = await call('PUT', '/models/m/aliases/prod/rollout', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(Object.keys(r.body).sort()).toEqual(['code', 'error']);
      expect(r.body.code).toBe('INVALID_ROLLOUT');
    }
    expect(await call('POST', '/models/m/aliases/prod/rollout/restart')).toMatchObject({
      status: 400,
      body: { code: 'INVALID_ACTION' },
    });
    expect(await call('GET', '/models/m/aliases/prod/rollout')).toMatchObject({
      status: 404,
      body: { code: 'ROLLOUT_NOT_FOUND' },
    });
    expect(
      await call('PUT', '/models/m/aliases/prod/rollout', { ...spec, expectedRevision: 5 }),
    ).toMatchObject({
      status: 412,
      body: { code: 'PRECONDITION_FAILED' },
    });
  });

  it("pause, resume and abort with the caller's rollout id: another rollout is a 409 left as it is, a malformed body a 400", async () => {
    const shown = await call('PUT', '/models/m/aliases/prod/rollout', spec);
    expect((await call('POST', '/models/m/aliases/prod/rollout/abort')).status).toBe(200);
    const other = await call('PUT', '/models/m/aliases/prod/rollout', spec);
    expect(other.status).toBe(201);
    const before = await call('GET', '/models/m/aliases/prod/rollout');
    for (const action of ['pause', 'resume', 'abort']) {
      const r = await call('POST', `/models/m/aliases/prod/rollout/${action}`, { id: shown.body.id });
      expect(r).toMatchObject({
        status: 409,
        body: {
          error: expect.stringContaining(`rollout ${shown.body.id} is not`),
          code: 'ROLLOUT_NOT_ACTIVE',
        },
      });
    }
    for (const body of [{ id: 5 }, { id: '' }, { rollout: other.body.id }, [other.body.id]]) {
      const r = await call('POST', '/models/m/aliases/prod/rollout/abort', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(Object.keys(r.body).sort()).toEqual(['code', 'error']);
    }
    expect((await call('GET', '/models/m/aliases/prod/rollout')).body).toEqual(before.body);
    const paused = await call('POST', '/models/m/aliases/prod/rollout/pause', { id: other.body.id });
    expect(paused).toMatchObject({ status: 200, body: { id: other.body.id, status: 'paused' } });
  });

  it('answers 501 when the handler has no rollout repository', async () => {
    const bare = createRegistryHandler({ repo: new MemoryRegistryRepository(), store, inspector });
    const r = parseResult(await bare(apiEvent('GET', '/models/m/aliases/prod/rollout')));
    expect(r).toMatchObject({ status: 501, body: { code: 'NOT_IMPLEMENTED' } });
  });
});

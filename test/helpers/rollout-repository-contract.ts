/**
 * The RolloutRepository contract, one suite for every implementation (DynamoDB, in memory): creation only without
 * an active rollout, transitions conditional on the revision (also under concurrency), counters added apart from
 * transitions and kept by them, and the listing of active (and pending) rollouts only.
 *
 * Every test uses its own model names, so the repositories of one suite may share their store.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, PreconditionFailedError } from '../../functions/domain/errors';
import { type Rollout, ZERO_DIVERGENCE } from '../../functions/domain/rollout';
import type { RolloutRepository } from '../../functions/ports/rollouts';

export interface RolloutRepositoryHarness {
  readonly repository: RolloutRepository;
  dispose?(): Promise<void>;
}

/** A running rollout of v2 on `name@prod` (from v1), at step 0. */
export function newRollout(name: string, extra: Partial<Rollout> = {}): Rollout {
  const at = '2026-01-01T00:00:00.000Z';
  return {
    name,
    alias: 'prod',
    id: randomUUID(),
    version: 2,
    steps: [
      { weight: 10, bakeSeconds: 60 },
      { weight: 100, bakeSeconds: 0 },
    ],
    alarms: ['errors'],
    maxDivergence: { minArgmaxAgreement: 0.9 },
    fromVersion: 1,
    status: 'running',
    step: 0,
    stepStartedAt: at,
    startedAt: at,
    updatedAt: at,
    actor: 'tester',
    revision: 1,
    divergence: ZERO_DIVERGENCE,
    ...extra,
  };
}

const delta = { requests: 1, rows: 4, agreeingRows: 3, overMaxAbs: 0, overKl: 1, shadowErrors: 0 };

export function rolloutRepositoryContract(setup: () => Promise<RolloutRepositoryHarness>): void {
  let harness: RolloutRepositoryHarness;
  let repo: RolloutRepository;
  beforeAll(async () => {
    harness = await setup();
    repo = harness.repository;
  });
  afterAll(async () => {
    await harness?.dispose?.();
  });

  describe('RolloutRepository contract', () => {
    it('creates, reads back, and refuses a second active rollout with 409 ROLLOUT_IN_PROGRESS', async () => {
      expect(await repo.get('rc-create', 'prod')).toBeUndefined();
      const r = newRollout('rc-create');
      await repo.create(r);
      expect(await repo.get('rc-create', 'prod')).toEqual(r);
      const err = await repo.create(newRollout('rc-create')).catch((e) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect(err.code).toBe('ROLLOUT_IN_PROGRESS');
      // Another alias of the same model is independent.
      await repo.create(newRollout('rc-create', { alias: 'staging' }));
      expect((await repo.get('rc-create', 'staging'))?.alias).toBe('staging');
    });

    it('replaces an ended rollout with a new one', async () => {
      const r = newRollout('rc-replace');
      await repo.create(r);
      await repo.update({ ...r, status: 'aborted', endedReason: 'aborted' }, 1);
      const next = newRollout('rc-replace', { version: 3 });
      await repo.create(next);
      expect(await repo.get('rc-replace', 'prod')).toEqual(next);
    });

    it('refuses a new rollout while the last one ended with its alias change pending, until it settles', async () => {
      const r = newRollout('rc-pending');
      await repo.create(r);
      await repo.update({ ...r, status: 'completed', endedReason: 'completed', aliasPending: true }, 1);
      const err = await repo.create(newRollout('rc-pending', { version: 3 })).catch((e) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect(err.code).toBe('ROLLOUT_IN_PROGRESS');
      expect((await repo.get('rc-pending', 'prod'))?.id).toBe(r.id);
      // Settled (the pending flag cleared): a new rollout may start.
      await repo.update({ ...r, status: 'completed', endedReason: 'completed' }, 2);
      const next = newRollout('rc-pending', { version: 3 });
      await repo.create(next);
      expect(await repo.get('rc-pending', 'prod')).toEqual(next);
    });

    it('updates the state conditionally on the revision, keeping spec and counters', async () => {
      const r = newRollout('rc-update');
      await repo.create(r);
      expect(await repo.recordDivergence('rc-update', 'prod', r.id, delta)).toBe(true);
      const u = await repo.update(
        // A transition writes its state fields only: a changed spec or counters in the object are ignored.
        {
          ...r,
          step: 1,
          stepStartedAt: '2026-01-01T00:01:00.000Z',
          version: 99,
          divergence: ZERO_DIVERGENCE,
        },
        1,
      );
      expect(u).toMatchObject({
        step: 1,
        revision: 2,
        version: 2,
        stepStartedAt: '2026-01-01T00:01:00.000Z',
      });
      expect(u.divergence).toEqual({ ...ZERO_DIVERGENCE, ...delta });
      expect(await repo.get('rc-update', 'prod')).toEqual(u);
      const stale = await repo.update({ ...r, step: 1 }, 1).catch((e) => e);
      expect(stale).toBeInstanceOf(PreconditionFailedError);
      const other = await repo.update({ ...u, id: randomUUID() }, 2).catch((e) => e);
      expect(other).toBeInstanceOf(PreconditionFailedError);
      const missing = await repo.update(newRollout('rc-update-none'), 1).catch((e) => e);
      expect(missing).toBeInstanceOf(NotFoundError);
      expect(missing.code).toBe('ROLLOUT_NOT_FOUND');
    });

    it('sets and removes the optional state fields', async () => {
      const r = newRollout('rc-optional');
      await repo.create(r);
      const paused = await repo.update({ ...r, status: 'paused', pausedAt: '2026-01-01T00:00:30.000Z' }, 1);
      expect(paused.pausedAt).toBe('2026-01-01T00:00:30.000Z');
      const { pausedAt: _p, ...running } = paused;
      const resumed = await repo.update({ ...running, status: 'running' }, 2);
      expect(resumed.pausedAt).toBeUndefined();
      const ended = await repo.update(
        { ...resumed, status: 'completed', endedReason: 'completed', endedAt: 'x', aliasPending: true },
        3,
      );
      expect(ended).toMatchObject({ status: 'completed', endedReason: 'completed', aliasPending: true });
      const { aliasPending: _a, ...settled } = ended;
      const done = await repo.update(settled, 4);
      expect(done.aliasPending).toBeUndefined();
      expect(done.endedReason).toBe('completed');
    });

    it('lets exactly one of concurrent transitions from one revision win', async () => {
      const r = newRollout('rc-race');
      await repo.create(r);
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => repo.update({ ...r, step: 1, updatedAt: `t${i}` }, 1)),
      );
      expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
      for (const x of results.filter((x) => x.status === 'rejected')) {
        expect((x as PromiseRejectedResult).reason).toBeInstanceOf(PreconditionFailedError);
      }
      expect((await repo.get('rc-race', 'prod'))?.revision).toBe(2);
    });

    it('adds counters only to the active rollout of that id', async () => {
      const r = newRollout('rc-count');
      await repo.create(r);
      await Promise.all([
        repo.recordDivergence('rc-count', 'prod', r.id, delta),
        repo.recordDivergence('rc-count', 'prod', r.id, delta),
      ]);
      expect((await repo.get('rc-count', 'prod'))?.divergence).toEqual({
        requests: 2,
        rows: 8,
        agreeingRows: 6,
        overMaxAbs: 0,
        overKl: 2,
        shadowErrors: 0,
      });
      expect(await repo.recordDivergence('rc-count', 'prod', randomUUID(), delta)).toBe(false);
      expect(await repo.recordDivergence('rc-count-none', 'prod', r.id, delta)).toBe(false);
      await repo.update({ ...r, status: 'rolled_back' }, 1);
      expect(await repo.recordDivergence('rc-count', 'prod', r.id, delta)).toBe(false);
      expect((await repo.get('rc-count', 'prod'))?.divergence.requests).toBe(2);
    });

    it('lists active rollouts and ended ones with a pending alias change, not settled ones', async () => {
      const run = newRollout('rc-list-a');
      const paused = newRollout('rc-list-b', { status: 'paused' });
      const ending = newRollout('rc-list-c');
      const ended = newRollout('rc-list-d');
      await Promise.all([run, paused, ending, ended].map((r) => repo.create(r)));
      await repo.update({ ...ending, status: 'completed', aliasPending: true }, 1);
      await repo.update({ ...ended, status: 'aborted' }, 1);
      const listed = (await repo.listActive()).filter((r) => r.name.startsWith('rc-list-'));
      expect(listed.map((r) => r.name).sort()).toEqual(['rc-list-a', 'rc-list-b', 'rc-list-c']);
      expect(listed.find((r) => r.name === 'rc-list-a')).toEqual(run);
      // Settling removes it from the listing.
      await repo.update({ ...ending, status: 'completed' }, 2);
      const after = (await repo.listActive()).filter((r) => r.name.startsWith('rc-list-'));
      expect(after.map((r) => r.name).sort()).toEqual(['rc-list-a', 'rc-list-b']);
    });
  });
}

/**
 * The rollout use cases on the in-memory registry and rollout repositories with an injected clock: a rollout that
 * completes, one paused and resumed, rollbacks by alarm and by divergence, an abort, a superseded one, a transition
 * finished by the next tick — each read back through the alias history.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { LocalAlarmStates } from '../../functions/adapters/local-alarms';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import { MemoryRolloutRepository } from '../../functions/adapters/memory-rollouts';
import { deleteVersion, moveAlias, updateAlias, updateVersion } from '../../functions/app/registry';
import {
  abortRollout,
  getRollout,
  onAlarm,
  pauseRollout,
  type RolloutDeps,
  recordComparison,
  resumeRollout,
  startRollout,
  tick,
} from '../../functions/app/rollout';
import { compareOutputs, type OipOutput, type ShadowComparison } from '../../functions/domain/divergence';
import { ConflictError, PreconditionFailedError } from '../../functions/domain/errors';
import type { AliasRoutingChange } from '../../functions/domain/registry-plans';
import type { RolloutSpec } from '../../functions/domain/rollout';
import type {
  AliasMove,
  AliasMoveResult,
  AliasState,
  HistoryEntry,
  ModelSignature,
} from '../../functions/domain/types';
import type { RegistryEvent } from '../../functions/ports';
import { newVersion } from '../helpers/registry-repository-contract';

const T0 = Date.parse('2026-03-01T12:00:00.000Z');

class TestClock {
  t = T0;
  now = () => new Date(this.t);
  at(seconds: number) {
    this.t = T0 + seconds * 1000;
    return this.now();
  }
}

/** A registry whose split writes and alias moves can be made to fail (a transition that stops half way). */
class FlakyRegistry extends MemoryRegistryRepository {
  failRouting = 0;
  /** Split writes that lose a race (412) next. */
  raceRouting = 0;
  /** The errors the next alias moves fail with, one each, in order. */
  moveFailures: Error[] = [];
  override moveAlias(move: AliasMove): Promise<AliasMoveResult> {
    const failure = this.moveFailures.shift();
    return failure ? Promise.reject(failure) : super.moveAlias(move);
  }
  override setAliasRouting(change: AliasRoutingChange): Promise<AliasState> {
    if (this.failRouting > 0) {
      this.failRouting--;
      return Promise.reject(new Error('table unavailable'));
    }
    if (this.raceRouting > 0) {
      this.raceRouting--;
      return Promise.reject(new PreconditionFailedError('the alias changed'));
    }
    return super.setAliasRouting(change);
  }
}

let clock: TestClock;
let repo: FlakyRegistry;
let rollouts: MemoryRolloutRepository;
let alarms: LocalAlarmStates;
let events: RegistryEvent[];
let deps: RolloutDeps;

beforeEach(async () => {
  clock = new TestClock();
  repo = new FlakyRegistry({ clock });
  rollouts = new MemoryRolloutRepository();
  alarms = new LocalAlarmStates();
  events = [];
  deps = { repo, rollouts, alarms, clock, events: { publish: async (e) => void events.push(e) } };
  // v1 (prod), v2, v3.
  for (let i = 0; i < 3; i++) await repo.createVersion(newVersion('m'));
});

const spec = (extra: Partial<RolloutSpec> = {}): RolloutSpec => ({
  version: 2,
  steps: [
    { weight: 10, bakeSeconds: 60 },
    { weight: 50, bakeSeconds: 60 },
    { weight: 100, bakeSeconds: 0 },
  ],
  alarms: ['errors'],
  ...extra,
});

const start = (extra: Partial<RolloutSpec> = {}) =>
  startRollout(deps, { name: 'm', alias: 'prod', spec: spec(extra), actor: 'alice' });

/** The alias history oldest first, without the first READY version's own `prod` entry. */
async function history(): Promise<HistoryEntry[]> {
  const page = await repo.aliasHistory('m', 'prod', 100);
  return page.items.slice().reverse().slice(1);
}

const summary = (h: HistoryEntry[]) =>
  h.map((e) => ({
    version: e.version,
    canary: e.routing?.canary ? `v${e.routing.canary.version}@${e.routing.canary.weight}` : undefined,
    reason: e.reason,
  }));

/** The reasons of the alias history, oldest first (as `history`). */
const reasons = async () => summary(await history()).map((e) => e.reason);

/** The rollout ended `superseded`, and the alias, moved by hand to v3, has no split; the reasons of its history. */
async function expectSupersededByV3(): Promise<(string | undefined)[]> {
  expect(await getRollout(deps, 'm', 'prod')).toMatchObject({
    status: 'aborted',
    endedReason: 'superseded',
  });
  const alias = await repo.getAlias('m', 'prod');
  expect(alias?.version).toBe(3);
  expect(alias?.routing).toBeUndefined();
  return reasons();
}

describe('a rollout that completes', () => {
  it('advances each step after its bake and promotes after the last, with one history entry per change', async () => {
    const r = await start();
    const id8 = r.id.slice(0, 8);
    expect(r).toMatchObject({ status: 'running', step: 0, weight: 10, fromVersion: 1, version: 2 });
    expect(r.nextStepAt).toBe('2026-03-01T12:01:00.000Z');
    expect((await repo.getAlias('m', 'prod'))?.routing).toEqual({ canary: { version: 2, weight: 10 } });

    expect((await tick(deps, clock.at(59))).advanced).toEqual([]);
    expect((await tick(deps, clock.at(60))).advanced).toEqual(['m@prod']);
    expect((await tick(deps, clock.at(61))).advanced).toEqual([]);
    expect((await tick(deps, clock.at(120))).advanced).toEqual(['m@prod']);
    // The last step (100 %) bakes 0 s: the next tick promotes.
    expect((await tick(deps, clock.at(121))).promoted).toEqual(['m@prod']);
    expect((await tick(deps, clock.at(500))).rollouts).toBe(0);

    const alias = await repo.getAlias('m', 'prod');
    expect(alias?.version).toBe(2);
    expect(alias?.routing).toBeUndefined();
    expect(summary(await history())).toEqual([
      { version: 1, canary: 'v2@10', reason: `rollout ${id8}: step 1/3, canary v2 at 10%` },
      { version: 1, canary: 'v2@50', reason: `rollout ${id8}: step 2/3, canary v2 at 50%` },
      { version: 1, canary: 'v2@100', reason: `rollout ${id8}: step 3/3, canary v2 at 100%` },
      { version: 2, canary: undefined, reason: 'rollout completed' },
    ]);
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({
      status: 'completed',
      endedReason: 'completed',
      step: 2,
    });
    expect(events.map((e) => e.type)).toEqual([
      'AliasRoutingChanged',
      'AliasRoutingChanged',
      'AliasRoutingChanged',
      'AliasMoved',
      'RolloutCompleted',
    ]);
    expect(events.at(-1)?.detail).toEqual({
      name: 'm',
      alias: 'prod',
      rolloutId: r.id,
      version: 2,
      fromVersion: 1,
    });
  });
});

describe('pause and resume', () => {
  it('holds the step while paused and keeps what the bake had', async () => {
    await start();
    clock.at(30);
    expect(await pauseRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' })).toMatchObject({
      status: 'paused',
    });
    expect((await tick(deps, clock.at(500))).advanced).toEqual([]);
    const pauseErr = await pauseRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' }).catch((e) => e);
    expect(pauseErr.code).toBe('ROLLOUT_NOT_ACTIVE');
    clock.at(1000);
    const resumed = await resumeRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' });
    // 30 s baked before the pause: 30 s are left.
    expect(resumed.nextStepAt).toBe(new Date(T0 + 1030_000).toISOString());
    expect((await tick(deps, clock.at(1029))).advanced).toEqual([]);
    expect((await tick(deps, clock.at(1030))).advanced).toEqual(['m@prod']);
    const resumeErr = await resumeRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' }).catch((e) => e);
    expect(resumeErr.code).toBe('ROLLOUT_NOT_ACTIVE');
    expect(summary(await history()).map((e) => e.canary)).toEqual(['v2@10', 'v2@50']);
  });
});

describe('actions racing other writers', () => {
  /** Makes the next `count` rollout writes find the rollout changed since they read it (a tick got there first). */
  /**
   * On the next rollout write, before it: another client aborts the rollout and starts one to `version`. Returns
   * what puts the repository's writes back.
   */
  function replacedBeforeNextWrite(version?: number): () => void {
    const update = rollouts.update.bind(rollouts);
    let raced = false;
    rollouts.update = async (next, expected) => {
      if (!raced) {
        raced = true;
        await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'carol' });
        await startRollout(deps, {
          name: 'm',
          alias: 'prod',
          spec: version === undefined ? spec() : spec({ version }),
          actor: 'dave',
        });
      }
      return update(next, expected);
    };
    return () => {
      rollouts.update = update;
    };
  }

  function racedWrites(count: number) {
    const update = rollouts.update.bind(rollouts);
    let left = count;
    rollouts.update = async (next, expected) => {
      if (left-- > 0) {
        const now = await rollouts.get(next.name, next.alias);
        if (now)
          await update(
            { ...now, updatedAt: new Date(clock.now().getTime() + 1).toISOString() },
            now.revision,
          );
      }
      return update(next, expected);
    };
  }

  it('reads the rollout again and acts on it as it is now, instead of a 412 the caller never asked for', async () => {
    await start();
    racedWrites(2);
    expect(await pauseRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' })).toMatchObject({
      status: 'paused',
    });
    racedWrites(1);
    expect(await resumeRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' })).toMatchObject({
      status: 'running',
    });
    racedWrites(1);
    expect(await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' })).toMatchObject({
      status: 'aborted',
    });
    // The rollout the caller meant ended, and another started, between its read and its write: not the caller's.
    const first = await start();
    const restore = replacedBeforeNextWrite(3);
    const late = await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' }).catch((x) => x);
    restore();
    expect([late.status, late.code]).toEqual([409, 'ROLLOUT_NOT_ACTIVE']);
    const now = await getRollout(deps, 'm', 'prod');
    expect([now.id !== first.id, now.version, now.status]).toEqual([true, 3, 'running']);
    await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' });
    // A rollout that keeps changing: 503, retry.
    await start();
    racedWrites(10);
    const e = await pauseRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' }).catch((x) => x);
    expect([e.status, e.code]).toEqual([503, 'UNAVAILABLE']);
  });

  it('acts only on the rollout the caller names (id): another one in its place is a 409 and is left as it is', async () => {
    // The caller shows rollout v1 -> v2; another client aborts it and starts v1 -> v3.
    const shown = await start();
    await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'carol' });
    const other = await start({ version: 3 });
    const before = { rollout: await rollouts.get('m', 'prod'), alias: await repo.getAlias('m', 'prod') };
    for (const act of [pauseRollout, resumeRollout, abortRollout]) {
      const e = await act(deps, { name: 'm', alias: 'prod', actor: 'bob', id: shown.id }).catch((x) => x);
      expect([e.status, e.code]).toEqual([409, 'ROLLOUT_NOT_ACTIVE']);
      expect(e.message).toContain(`rollout ${shown.id} is not the rollout of alias 'prod'`);
    }
    expect({ rollout: await rollouts.get('m', 'prod'), alias: await repo.getAlias('m', 'prod') }).toEqual(
      before,
    );
    // Replaced between the action's read and its write: refused too (the write is conditional on the rollout read).
    const restore = replacedBeforeNextWrite();
    const late = await pauseRollout(deps, { name: 'm', alias: 'prod', actor: 'bob', id: other.id }).catch(
      (x) => x,
    );
    restore();
    expect([late.status, late.code]).toEqual([409, 'ROLLOUT_NOT_ACTIVE']);
    const third = await getRollout(deps, 'm', 'prod');
    expect([third.id !== other.id, third.version, third.status]).toEqual([true, 2, 'running']);
    // Named rightly, the action applies.
    expect(await pauseRollout(deps, { name: 'm', alias: 'prod', actor: 'bob', id: third.id })).toMatchObject({
      id: third.id,
      status: 'paused',
    });
    expect(await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob', id: third.id })).toMatchObject({
      id: third.id,
      status: 'aborted',
    });
  });
});

describe('rollbacks', () => {
  it('rolls back on an alarm read by the tick, also while paused', async () => {
    const r = await start({ keyParameter: 'user' });
    await tick(deps, clock.at(60));
    await pauseRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' });
    alarms.set('other', 'ALARM');
    expect((await tick(deps, clock.at(70))).rolledBack).toEqual([]);
    alarms.set('errors', 'ALARM');
    expect((await tick(deps, clock.at(80))).rolledBack).toEqual(['m@prod']);
    const alias = await repo.getAlias('m', 'prod');
    expect(alias).toMatchObject({ version: 1, routing: { keyParameter: 'user' } });
    expect(alias?.routing?.canary).toBeUndefined();
    const h = await history();
    expect(summary(h).map((e) => e.reason)).toEqual([
      `rollout ${r.id.slice(0, 8)}: step 1/3, canary v2 at 10%`,
      `rollout ${r.id.slice(0, 8)}: step 2/3, canary v2 at 50%`,
      'alarm:errors',
    ]);
    expect(h.at(-1)?.routing).toEqual({ keyParameter: 'user' });
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({
      status: 'rolled_back',
      endedReason: 'alarm:errors',
    });
    const rolledBack = events.find((e) => e.type === 'RolloutRolledBack');
    expect(rolledBack?.detail).toEqual({
      name: 'm',
      alias: 'prod',
      rolloutId: r.id,
      version: 2,
      fromVersion: 1,
      reason: 'alarm:errors',
    });
    expect(events.find((e) => e.type === 'AliasMoved')?.detail).toEqual({
      name: 'm',
      alias: 'prod',
      version: 1,
      previousVersion: 1,
    });
    // Over: the tick leaves it, and the alias no more changes.
    expect((await tick(deps, clock.at(200))).rollouts).toBe(0);
    expect(await history()).toHaveLength(3);
  });

  it('without the alarm states, still rolls back on divergence and advances rollouts naming no alarm', async () => {
    await moveAlias(deps, { name: 'm', alias: 'staging', version: 1, actor: 'alice' });
    const prod = await start({ maxDivergence: { maxAbsDiff: 0.5 } });
    await startRollout(deps, { name: 'm', alias: 'staging', spec: spec({ alarms: [] }), actor: 'alice' });
    alarms.inAlarm = () => Promise.reject(new Error('CloudWatch unavailable'));
    const warned: string[] = [];
    deps = { ...deps, logger: { warn: (message: string) => void warned.push(message) } };
    const s = await tick(deps, clock.at(60));
    // Its alarms unknown, prod's step holds (counted as failed); staging names none and advances.
    expect(s).toMatchObject({ advanced: ['m@staging'], failed: ['m@prod'], rolledBack: [] });
    expect((await getRollout(deps, 'm', 'prod')).step).toBe(0);
    expect(warned).toEqual(['alarm states unavailable: rollouts naming alarms do not advance this run']);
    // Divergence needs no alarm state.
    await rollouts.recordDivergence('m', 'prod', prod.id, {
      requests: 1,
      rows: 0,
      agreeingRows: 0,
      overMaxAbs: 1,
      overKl: 0,
      shadowErrors: 0,
    });
    expect(await tick(deps, clock.at(61))).toMatchObject({ rolledBack: ['m@prod'], failed: [] });
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({
      status: 'rolled_back',
      endedReason: 'divergence:maxAbsDiff',
    });
  });

  it('rolls back at once on an alarm event naming it, not on OK or other alarms', async () => {
    await start();
    expect(await onAlarm(deps, 'errors', 'OK')).toEqual([]);
    expect(await onAlarm(deps, 'latency', 'ALARM')).toEqual([]);
    const [r] = await onAlarm(deps, 'errors', 'ALARM');
    expect(r).toMatchObject({ status: 'rolled_back', endedReason: 'alarm:errors' });
    expect((await reasons()).at(-1)).toBe('alarm:errors');
    expect((await repo.getAlias('m', 'prod'))?.routing).toBeUndefined();
  });

  it('counts no comparison answered before it started, nor one served by another version than its stable', async () => {
    await start({ maxDivergence: { maxAbsDiff: 0.01 } });
    await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'alice' });
    clock.at(10);
    const second = await start({ maxDivergence: { maxAbsDiff: 0.5 } });
    const diverging = (extra: Partial<ShadowComparison> = {}): ShadowComparison => ({
      model: 'm',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      inferenceId: 'late',
      outputs: [{ output: 'y', rows: 1, maxAbsDiff: 0.9 }],
      ...extra,
    });
    // Mirrored while the first rollout ran, compared after the second started.
    expect(await recordComparison(deps, diverging({ at: new Date(T0 + 5_000).toISOString() }))).toBe(false);
    // Served by a version the rollout does not roll from.
    expect(await recordComparison(deps, diverging({ servedVersion: 3 }))).toBe(false);
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({
      id: second.id,
      status: 'running',
      divergence: { requests: 0 },
    });
    // Answered after it started (or of no known time): counted.
    expect(await recordComparison(deps, diverging({ at: new Date(T0 + 10_000).toISOString() }))).toBe(true);
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({
      id: second.id,
      status: 'rolled_back',
      endedReason: 'divergence:maxAbsDiff',
    });
  });

  it('announces the rollback once, also when the split was cleared by hand before it settled', async () => {
    const r = await start();
    repo.raceRouting = 1;
    expect(await onAlarm(deps, 'errors', 'ALARM')).toMatchObject([{ status: 'rolled_back' }]);
    expect(events.map((e) => e.type)).not.toContain('RolloutRolledBack');
    await updateAlias(deps, { name: 'm', alias: 'prod', routing: null, actor: 'bob' });
    events.length = 0;
    expect((await tick(deps, clock.at(5))).rollouts).toBe(1);
    // The split was not cleared by the rollback: no AliasMoved, but the rollback is announced.
    expect(events.map((e) => e.type)).toEqual(['RolloutRolledBack']);
    expect(events[0]?.detail).toMatchObject({ rolloutId: r.id, reason: 'alarm:errors' });
    expect((await tick(deps, clock.at(6))).rollouts).toBe(0);
    expect(events).toHaveLength(1);
  });

  it('announces the completion once, when the settle after the move is what failed', async () => {
    await start({ steps: [{ weight: 50, bakeSeconds: 0 }] });
    const update = rollouts.update.bind(rollouts);
    let failSettle = true;
    rollouts.update = (next, expected) => {
      if (failSettle && next.status === 'completed' && !next.aliasPending) {
        failSettle = false;
        return Promise.reject(new Error('table unavailable'));
      }
      return update(next, expected);
    };
    expect((await tick(deps, clock.at(1))).failed).toEqual(['m@prod']);
    expect((await repo.getAlias('m', 'prod'))?.version).toBe(2);
    expect(events.map((e) => e.type)).not.toContain('RolloutCompleted');
    await tick(deps, clock.at(2));
    expect(events.filter((e) => e.type === 'RolloutCompleted')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'AliasMoved')).toHaveLength(1);
    expect((await tick(deps, clock.at(3))).rollouts).toBe(0);
  });

  it('rolls back on divergence, counting only comparisons of its version', async () => {
    await start({ maxDivergence: { minArgmaxAgreement: 0.9, minSamples: 20 } });
    expect((await repo.getAlias('m', 'prod'))?.routing).toMatchObject({
      canary: { version: 2, weight: 10 },
      shadow: { version: 2, percent: 10 },
    });
    const comparison = (agreeing: number, shadowVersion = 2): ShadowComparison => ({
      model: 'm',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion,
      inferenceId: 'x',
      outputs: [{ output: 'y', rows: 10, agreeingRows: agreeing, maxAbsDiff: 0.1 }],
    });
    expect(await recordComparison(deps, comparison(0, 3))).toBe(false);
    expect(await recordComparison(deps, comparison(9))).toBe(true);
    // 9 of 10 agree: under minSamples, not judged.
    expect((await getRollout(deps, 'm', 'prod')).status).toBe('running');
    expect(await recordComparison(deps, comparison(8))).toBe(true);
    // 17 of 20 < 0.9: rolled back at once.
    const r = await getRollout(deps, 'm', 'prod');
    expect(r).toMatchObject({ status: 'rolled_back', endedReason: 'divergence:argmaxAgreement' });
    expect(r.divergence).toMatchObject({ requests: 2, rows: 20, agreeingRows: 17 });
    const h = await history();
    expect(
      summary(h)
        .map((e) => e.reason)
        .at(-1),
    ).toBe('divergence:argmaxAgreement');
    expect(h.at(-1)?.routing).toBeUndefined();
    expect(await recordComparison(deps, comparison(0))).toBe(false);
  });
});

describe('abort, superseded, half-way transitions', () => {
  it('aborts: clears canary and shadow, keeps the key parameter, history `rollout aborted`', async () => {
    await start({ maxDivergence: { maxAbsDiff: 1 }, keyParameter: 'k' });
    const r = await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' });
    expect(r).toMatchObject({ status: 'aborted', endedReason: 'aborted' });
    expect((await repo.getAlias('m', 'prod'))?.routing).toEqual({ keyParameter: 'k' });
    expect((await reasons()).at(-1)).toBe('rollout aborted');
    const again = await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' }).catch((e) => e);
    expect(again.code).toBe('ROLLOUT_NOT_ACTIVE');
    // A new rollout may start once the last one is over.
    expect((await start({ version: 3 })).version).toBe(3);
  });

  it('ends `superseded` when the alias was moved by hand', async () => {
    await start();
    await moveAlias(deps, { name: 'm', alias: 'prod', version: 3, actor: 'carol' });
    const s = await tick(deps, clock.at(10));
    expect(s.aborted).toEqual(['m@prod']);
    expect((await expectSupersededByV3()).slice(1)).toEqual([undefined, 'rollout aborted: superseded']);
  });

  it('finishes a transition that stopped half way on the next tick, and restores a split changed by hand', async () => {
    await start();
    repo.failRouting = 1;
    const s = await tick(deps, clock.at(60));
    expect(s.failed).toEqual(['m@prod']);
    expect((await getRollout(deps, 'm', 'prod')).step).toBe(1);
    expect((await repo.getAlias('m', 'prod'))?.routing?.canary?.weight).toBe(10);
    expect((await tick(deps, clock.at(61))).reconciled).toEqual(['m@prod']);
    expect((await repo.getAlias('m', 'prod'))?.routing?.canary?.weight).toBe(50);
    await updateAlias(deps, { name: 'm', alias: 'prod', routing: null, actor: 'dave' });
    expect((await tick(deps, clock.at(62))).reconciled).toEqual(['m@prod']);
    expect((await repo.getAlias('m', 'prod'))?.routing?.canary?.weight).toBe(50);
    expect((await tick(deps, clock.at(63))).reconciled).toEqual([]);
  });

  it('advances or promotes a step only after its own split was in place for its whole bake', async () => {
    await start();
    // The split of step 2 cannot be written for a while.
    repo.failRouting = 1000;
    expect((await tick(deps, clock.at(60))).failed).toEqual(['m@prod']);
    expect((await getRollout(deps, 'm', 'prod')).step).toBe(1);
    // Step 2's bake is over by the clock, but its split never was in place: no advance.
    const stuck = await tick(deps, clock.at(120));
    expect(stuck.advanced).toEqual([]);
    expect(stuck.failed).toEqual(['m@prod']);
    expect((await getRollout(deps, 'm', 'prod')).step).toBe(1);
    expect((await repo.getAlias('m', 'prod'))?.routing?.canary?.weight).toBe(10);
    // The split is written at 130: the bake counts from then.
    repo.failRouting = 0;
    const written = await tick(deps, clock.at(130));
    expect(written).toMatchObject({ advanced: [], reconciled: ['m@prod'] });
    expect((await getRollout(deps, 'm', 'prod')).nextStepAt).toBe(new Date(T0 + 190_000).toISOString());
    expect((await repo.getAlias('m', 'prod'))?.routing?.canary?.weight).toBe(50);
    expect((await tick(deps, clock.at(189))).advanced).toEqual([]);
    // Step 3 (100 %, no bake) advances, but its split fails: no promotion before it is in place.
    repo.failRouting = 1;
    expect((await tick(deps, clock.at(190))).advanced).toEqual(['m@prod']);
    expect((await repo.getAlias('m', 'prod'))?.routing?.canary?.weight).toBe(50);
    const held = await tick(deps, clock.at(191));
    expect(held).toMatchObject({ promoted: [], reconciled: ['m@prod'] });
    expect((await repo.getAlias('m', 'prod'))?.routing?.canary?.weight).toBe(100);
    expect((await tick(deps, clock.at(192))).promoted).toEqual(['m@prod']);
    expect(summary(await history()).map((e) => e.canary ?? `v${e.version}`)).toEqual([
      'v2@10',
      'v2@50',
      'v2@100',
      'v2',
    ]);
  });

  it('restarts the bake of a paused rollout whose split is put back, from its resumption', async () => {
    await start();
    clock.at(30);
    await pauseRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' });
    await updateAlias(deps, { name: 'm', alias: 'prod', routing: null, actor: 'dave' });
    expect((await tick(deps, clock.at(40))).reconciled).toEqual(['m@prod']);
    clock.at(100);
    const resumed = await resumeRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' });
    expect(resumed.nextStepAt).toBe(new Date(T0 + 160_000).toISOString());
  });

  it('ends `superseded` when its promotion lost to a move by hand, clearing the canary it left', async () => {
    await start({
      steps: [
        { weight: 10, bakeSeconds: 60 },
        { weight: 100, bakeSeconds: 0 },
      ],
    });
    await tick(deps, clock.at(60));
    repo.moveFailures.push(new PreconditionFailedError('the alias changed'));
    expect((await tick(deps, clock.at(61))).promoted).toEqual(['m@prod']);
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({ status: 'completed' });
    await moveAlias(deps, { name: 'm', alias: 'prod', version: 3, actor: 'carol' });
    expect((await repo.getAlias('m', 'prod'))?.routing?.canary).toEqual({ version: 2, weight: 100 });
    events.length = 0;
    expect((await tick(deps, clock.at(62))).aborted).toEqual(['m@prod']);
    expect((await expectSupersededByV3()).at(-1)).toBe('rollout aborted: superseded');
    expect(events.map((e) => e.type)).toEqual(['AliasRoutingChanged']);
    expect((await tick(deps, clock.at(63))).rollouts).toBe(0);
  });

  it('abort of an ended rollout whose alias change is pending tries that change again, then answers', async () => {
    await start({ steps: [{ weight: 50, bakeSeconds: 0 }] });
    const move = repo.moveAlias.bind(repo);
    let failure: Error | undefined = new Error('table unavailable');
    repo.moveAlias = (m) => (failure ? Promise.reject(failure) : move(m));
    expect((await tick(deps, clock.at(1))).failed).toEqual(['m@prod']);
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({ status: 'completed' });
    // Still failing: the failure, not ROLLOUT_NOT_ACTIVE.
    const still = await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' }).catch((e) => e);
    expect(still).toBe(failure);
    // Losing a race on the alias: 503, to be retried.
    failure = new PreconditionFailedError('the alias changed');
    const raced = await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' }).catch((e) => e);
    expect(raced).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    failure = undefined;
    expect(await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' })).toMatchObject({
      status: 'completed',
    });
    expect((await repo.getAlias('m', 'prod'))?.version).toBe(2);
    expect((await tick(deps, clock.at(2))).rollouts).toBe(0);
    // Settled: now it is over.
    const over = await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' }).catch((e) => e);
    expect(over.code).toBe('ROLLOUT_NOT_ACTIVE');
    // And the alias takes a new rollout.
    expect((await start({ version: 3 })).status).toBe('running');
  });

  it('finishes a promotion whose alias move failed', async () => {
    await start({ steps: [{ weight: 50, bakeSeconds: 0 }] });
    repo.moveFailures.push(new Error('table unavailable'));
    expect((await tick(deps, clock.at(1))).failed).toEqual(['m@prod']);
    expect((await getRollout(deps, 'm', 'prod')).status).toBe('completed');
    expect((await repo.getAlias('m', 'prod'))?.version).toBe(1);
    expect((await tick(deps, clock.at(2))).rollouts).toBe(1);
    expect((await repo.getAlias('m', 'prod'))?.version).toBe(2);
    expect((await reasons()).at(-1)).toBe('rollout completed');
    expect((await tick(deps, clock.at(3))).rollouts).toBe(0);
  });
});

describe('start', () => {
  it('succeeds when a controller run wrote its split between the rollout and the split write', async () => {
    const create = rollouts.create.bind(rollouts);
    rollouts.create = async (r) => {
      const created = await create(r);
      expect((await tick(deps, clock.now())).reconciled).toEqual(['m@prod']);
      return created;
    };
    const r = await start();
    expect(r).toMatchObject({ status: 'running', step: 0, weight: 10 });
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({ id: r.id, status: 'running' });
    expect((await repo.getAlias('m', 'prod'))?.routing).toEqual({ canary: { version: 2, weight: 10 } });
    // One split change, by the controller.
    expect(summary(await history()).map((e) => e.canary)).toEqual(['v2@10']);
  });

  it('still fails, and ends the rollout, when the alias changed otherwise meanwhile', async () => {
    const create = rollouts.create.bind(rollouts);
    rollouts.create = async (r) => {
      const created = await create(r);
      await updateAlias(deps, { name: 'm', alias: 'prod', routing: { keyParameter: 'k' }, actor: 'bob' });
      return created;
    };
    const err = await start().catch((e) => e);
    expect(err).toBeInstanceOf(PreconditionFailedError);
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({
      status: 'aborted',
      endedReason: 'start failed: PRECONDITION_FAILED',
    });
  });
});

describe('refusals', () => {
  it('409 ROLLOUT_IN_PROGRESS, 404 ROLLOUT_NOT_FOUND / VERSION_NOT_FOUND / ALIAS_NOT_FOUND, 409 CANARY_IS_STABLE, 412', async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e) => e.code,
      );
    expect(await code(getRollout(deps, 'm', 'prod'))).toBe('ROLLOUT_NOT_FOUND');
    expect(await code(start({ version: 9 }))).toBe('VERSION_NOT_FOUND');
    expect(await code(start({ version: 1 }))).toBe('CANARY_IS_STABLE');
    expect(await code(startRollout(deps, { name: 'm', alias: 'nope', spec: spec(), actor: 'a' }))).toBe(
      'ALIAS_NOT_FOUND',
    );
    expect(
      await code(
        startRollout(deps, { name: 'm', alias: 'prod', spec: spec(), expectedRevision: 7, actor: 'a' }),
      ),
    ).toBe('PRECONDITION_FAILED');
    // Nothing was written by the refusals.
    expect(await code(getRollout(deps, 'm', 'prod'))).toBe('ROLLOUT_NOT_FOUND');
    await start();
    expect(await code(start({ version: 3 }))).toBe('ROLLOUT_IN_PROGRESS');
  });

  it('409 ALIAS_TOO_LARGE before anything is written when the canary and the stable version cannot share the alias', async () => {
    // Labels of 275 001 bytes each: one version fits an alias, two do not.
    const labels = Array.from({ length: 25_000 }, (_, i) => `lab${String(i).padStart(5, '0')}`);
    for (let i = 0; i < 2; i++) await repo.createVersion(newVersion('big', { labels }));
    const err = await startRollout(deps, { name: 'big', alias: 'prod', spec: spec(), actor: 'a' }).catch(
      (e: Error) => e,
    );
    expect(err).toMatchObject({ status: 409, code: 'ALIAS_TOO_LARGE' });
    expect((err as Error).message).toMatch(/shorter labels/);
    // No rollout recorded (not even an aborted one), the alias as it was.
    await expect(getRollout(deps, 'big', 'prod')).rejects.toMatchObject({ code: 'ROLLOUT_NOT_FOUND' });
    expect(await repo.getAlias('big', 'prod')).toMatchObject({ version: 1, revision: 1 });
  });
});

describe('divergence judged on the model outputs', () => {
  it('a flipped near-tie of a model with argmax, label and top-k: judged by its scores, not the derived outputs', async () => {
    await start({
      steps: [{ weight: 10, bakeSeconds: 0 }],
      maxDivergence: { minArgmaxAgreement: 0.5, maxAbsDiff: 0.5, shadowPercent: 100, minSamples: 4 },
    });
    // Four rows; row 3 is a near-tie whose argmax flips (its probabilities move 0.131).
    const answer = (probs: number[][]): OipOutput[] => {
      const argmax = probs.map((p) => p.indexOf(Math.max(...p)));
      const top = probs.map((p) => [...p.keys()].sort((a, b) => (p[b] as number) - (p[a] as number)));
      return [
        { name: 'output', datatype: 'FP32', shape: [4, 3], data: probs.flat() },
        { name: 'argmax', datatype: 'INT64', shape: [4], data: argmax },
        { name: 'label', datatype: 'BYTES', shape: [4], data: argmax.map((i) => `class-${i}`) },
        { name: 'topk_indices', datatype: 'INT64', shape: [4, 3], data: top.flat() },
        {
          name: 'topk_scores',
          datatype: 'FP32',
          shape: [4, 3],
          data: top.flatMap((t, r) => t.map((i) => probs[r]![i]!)),
        },
        { name: 'topk_labels', datatype: 'BYTES', shape: [4, 3], data: top.flat().map((i) => `class-${i}`) },
      ];
    };
    const rows = [
      [0.8, 0.1, 0.1],
      [0.1, 0.8, 0.1],
      [0.1, 0.1, 0.8],
    ];
    const stable = answer([...rows, [0.0, 0.5, 0.5 - 1e-3]]);
    const shadow = answer([...rows, [0.0, 0.369, 0.631]]);
    const derived = new Set(['argmax', 'label', 'topk_indices', 'topk_scores', 'topk_labels']);
    const c: ShadowComparison = {
      model: 'm',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      inferenceId: 'near-tie',
      outputs: compareOutputs(stable, shadow, derived),
    };
    expect(await recordComparison(deps, c)).toBe(true);
    // 3 of 4 rows agree (not 11 of 12 with the top-k scores' rows), nothing over maxAbsDiff (0.131 < 0.5).
    const r = await getRollout(deps, 'm', 'prod');
    expect(r).toMatchObject({ status: 'running' });
    expect(r.divergence).toMatchObject({ requests: 1, rows: 4, agreeingRows: 3, overMaxAbs: 0 });
    expect((await tick(deps, clock.at(1))).promoted).toEqual(['m@prod']);
  });
});

describe('a model without class scores', () => {
  const REGRESSION: ModelSignature = {
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 1] }],
  };
  const regression = async () => {
    for (let i = 0; i < 2; i++) await repo.createVersion(newVersion('reg', { signature: REGRESSION }));
  };
  const startReg = (maxDivergence: RolloutSpec['maxDivergence']) =>
    startRollout(deps, {
      name: 'reg',
      alias: 'prod',
      spec: spec({ steps: [{ weight: 50, bakeSeconds: 60 }], alarms: [], maxDivergence }),
      actor: 'alice',
    });

  it('400 INVALID_ROLLOUT for minArgmaxAgreement, before anything is written', async () => {
    await regression();
    const err = await startReg({ minArgmaxAgreement: 0.9, maxAbsDiff: 0.5 }).catch((e) => e);
    expect(err).toMatchObject({ status: 400, code: 'INVALID_ROLLOUT' });
    expect(err.message).toMatch(/minArgmaxAgreement needs class scores/);
    await expect(getRollout(deps, 'reg', 'prod')).rejects.toMatchObject({ code: 'ROLLOUT_NOT_FOUND' });
    expect((await repo.getAlias('reg', 'prod'))?.routing).toBeUndefined();
  });

  it('bounded by maxAbsDiff: its compared rows count toward minSamples, and it is promoted', async () => {
    await regression();
    await startReg({ maxAbsDiff: 0.5, minSamples: 20 });
    const c: ShadowComparison = {
      model: 'reg',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      inferenceId: 'r',
      outputs: compareOutputs(
        [{ name: 'y', datatype: 'FP32', shape: [10, 1], data: Array.from({ length: 10 }, (_, i) => i) }],
        [
          {
            name: 'y',
            datatype: 'FP32',
            shape: [10, 1],
            data: Array.from({ length: 10 }, (_, i) => i + 0.1),
          },
        ],
      ),
    };
    expect(await recordComparison(deps, c)).toBe(true);
    expect(await getRollout(deps, 'reg', 'prod')).toMatchObject({ awaitingSamples: true });
    expect((await tick(deps, clock.at(60))).promoted).toEqual([]);
    expect(await recordComparison(deps, c)).toBe(true);
    expect((await getRollout(deps, 'reg', 'prod')).divergence).toMatchObject({ rows: 20, overMaxAbs: 0 });
    expect((await tick(deps, clock.at(61))).promoted).toEqual(['reg@prod']);
    expect((await repo.getAlias('reg', 'prod'))?.version).toBe(2);
  });
});

describe('a rollout whose version can no longer be served', () => {
  it('ends `aborted`, naming the version, once archived after a split change by hand released it', async () => {
    await start({ maxDivergence: { maxAbsDiff: 1 } });
    // The split cleared by hand releases the version, which can then be archived.
    await updateAlias(deps, { name: 'm', alias: 'prod', routing: null, actor: 'dave' });
    await updateVersion(deps, 'm', 2, { status: 'ARCHIVED' });
    const warned: string[] = [];
    deps = { ...deps, logger: { warn: (message: string) => void warned.push(message) } };
    events.length = 0;
    const s = await tick(deps, clock.at(10));
    expect(s).toMatchObject({ aborted: ['m@prod'], failed: [], reconciled: [] });
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({
      status: 'aborted',
      endedReason: 'version 2 not servable: ARCHIVED',
    });
    expect(warned).toEqual(['rollout aborted: its version can no longer be served']);
    // Nothing to clear: no alias change, no event; the alias takes a new rollout.
    expect(events).toEqual([]);
    expect((await tick(deps, clock.at(11))).rollouts).toBe(0);
    expect((await start({ version: 3 })).status).toBe('running');
  });

  it('ends `aborted` when deleted, also when the split would be written by an advance', async () => {
    await start({ alarms: [] });
    expect((await tick(deps, clock.at(60))).advanced).toEqual(['m@prod']);
    await updateAlias(deps, { name: 'm', alias: 'prod', routing: null, actor: 'dave' });
    await deleteVersion(deps, 'm', 2);
    expect((await tick(deps, clock.at(61))).aborted).toEqual(['m@prod']);
    expect(await getRollout(deps, 'm', 'prod')).toMatchObject({
      status: 'aborted',
      endedReason: 'version 2 not servable: deleted',
    });
  });

  it('other refusals of its split are not taken for it: thrown, the rollout stays', async () => {
    await start();
    await updateAlias(deps, { name: 'm', alias: 'prod', routing: null, actor: 'dave' });
    repo.setAliasRouting = () => Promise.reject(new ConflictError('too large', 'ALIAS_TOO_LARGE'));
    expect((await tick(deps, clock.at(10))).failed).toEqual(['m@prod']);
    expect((await getRollout(deps, 'm', 'prod')).status).toBe('running');
  });
});

describe("the alias's own shadow", () => {
  beforeEach(async () => {
    // v4: a shadow experiment on prod at 20 %.
    await repo.createVersion(newVersion('m'));
    await updateAlias(deps, {
      name: 'm',
      alias: 'prod',
      routing: { shadow: { version: 4, percent: 20 } },
      actor: 'carol',
    });
  });

  it('is kept by a rollout without maxDivergence, through its steps, its abort', async () => {
    await start();
    const shadow = { version: 4, percent: 20 };
    expect((await repo.getAlias('m', 'prod'))?.routing).toEqual({
      canary: { version: 2, weight: 10 },
      shadow,
    });
    expect((await tick(deps, clock.at(60))).advanced).toEqual(['m@prod']);
    expect((await repo.getAlias('m', 'prod'))?.routing).toEqual({
      canary: { version: 2, weight: 50 },
      shadow,
    });
    await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' });
    expect((await repo.getAlias('m', 'prod'))?.routing).toEqual({ shadow });
  });

  it('is kept on the alias when the rollout completes', async () => {
    await start({ steps: [{ weight: 50, bakeSeconds: 0 }] });
    expect((await tick(deps, clock.at(1))).promoted).toEqual(['m@prod']);
    expect(await repo.getAlias('m', 'prod')).toMatchObject({
      version: 2,
      routing: { shadow: { version: 4, percent: 20 } },
    });
  });

  it("gives way to the rollout's own shadow when it bounds divergence (not restored after it)", async () => {
    await start({ maxDivergence: { maxAbsDiff: 1 } });
    expect((await repo.getAlias('m', 'prod'))?.routing).toEqual({
      canary: { version: 2, weight: 10 },
      shadow: { version: 2, percent: 10 },
    });
    await abortRollout(deps, { name: 'm', alias: 'prod', actor: 'bob' });
    expect((await repo.getAlias('m', 'prod'))?.routing).toBeUndefined();
  });

  it('archived meanwhile: dropped from the split, the rollout goes on', async () => {
    await start();
    await updateVersion(deps, 'm', 4, { status: 'ARCHIVED' });
    expect((await tick(deps, clock.at(60))).advanced).toEqual(['m@prod']);
    expect((await repo.getAlias('m', 'prod'))?.routing).toEqual({ canary: { version: 2, weight: 50 } });
    expect((await getRollout(deps, 'm', 'prod')).status).toBe('running');
  });

  it('409 SHADOW_INCOMPATIBLE at the start when it could not shadow the version once promoted', async () => {
    // v5 serves an output more than v4 (as a canary may): promoted, v4 could not shadow it.
    const sig: ModelSignature = {
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [
        { name: 'output', datatype: 'FP32', shape: [-1, 3] },
        { name: 'extra', datatype: 'FP32', shape: [-1] },
      ],
    };
    await repo.createVersion(newVersion('m', { signature: sig }));
    const err = await start({ version: 5 }).catch((e) => e);
    expect(err).toMatchObject({ status: 409, code: 'SHADOW_INCOMPATIBLE' });
    expect(err.message).toMatch(/shadow of version 4.*version 5 once promoted/);
    await expect(getRollout(deps, 'm', 'prod')).rejects.toMatchObject({ code: 'ROLLOUT_NOT_FOUND' });
    // With maxDivergence its own shadow replaces v4: it starts.
    expect((await start({ version: 5, maxDivergence: { maxAbsDiff: 1 } })).status).toBe('running');
  });
});

/**
 * The rollout controller on DynamoDB Local: concurrent runs never apply a transition twice (one history entry per
 * weight change, one promotion), an alarm event rolls back at once, a hand move supersedes, a version archived
 * mid-rollout ends it, the alias's own shadow is kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { DynamoRolloutRepository } from '../../functions/adapters/dynamodb-rollouts';
import { LocalAlarmStates } from '../../functions/adapters/local-alarms';
import { moveAlias, updateAlias, updateVersion } from '../../functions/app/registry';
import { abortRollout, getRollout, type RolloutDeps, startRollout } from '../../functions/app/rollout';
import type { HistoryEntry } from '../../functions/domain/types';
import {
  type ControllerEvent,
  type ControllerResult,
  createRolloutController,
} from '../../functions/handlers/rollout-controller';
import type { RegistryEvent } from '../../functions/ports';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { newVersion } from '../helpers/registry-repository-contract';

const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const clock = { t: T0, now: () => new Date(clock.t) };
const at = (seconds: number) => {
  clock.t = T0 + seconds * 1000;
};

let env: TestAwsEnv;
let deps: RolloutDeps;
let repo: DynamoRegistryRepository;
let controller: (e: ControllerEvent) => Promise<ControllerResult>;
const events: RegistryEvent[] = [];
const scheduled: ControllerEvent = { source: 'aws.events', 'detail-type': 'Scheduled Event' };

beforeAll(async () => {
  env = await createTestAwsEnv('rollout-ctl');
  repo = new DynamoRegistryRepository({ doc: env.doc, table: env.table, clock });
  deps = {
    repo,
    rollouts: new DynamoRolloutRepository({ doc: env.doc, table: env.table }),
    alarms: new LocalAlarmStates(),
    clock,
    events: { publish: async (e) => void events.push(e) },
  };
  controller = createRolloutController(deps);
});
afterAll(async () => {
  await env?.dispose();
});

/** History of `name@prod`, oldest first. */
async function history(name: string): Promise<HistoryEntry[]> {
  return (await repo.aliasHistory(name, 'prod', 100)).items.slice().reverse();
}

/** Runs `n` controller invocations at once and sums what they did. */
async function concurrently(n: number, event: ControllerEvent = scheduled) {
  const results = await Promise.all(Array.from({ length: n }, () => controller(event)));
  const count = (k: 'advanced' | 'promoted' | 'rolledBack' | 'reconciled' | 'failed') =>
    results.reduce((sum, r) => sum + r[k].length, 0);
  return {
    advanced: count('advanced'),
    promoted: count('promoted'),
    rolledBack: count('rolledBack'),
    reconciled: count('reconciled'),
    failed: count('failed'),
  };
}

describe('rollout controller (DynamoDB Local)', () => {
  it('five concurrent runs advance each step once and promote once', async () => {
    for (let i = 0; i < 2; i++) await repo.createVersion(newVersion('conc'));
    at(0);
    const r = await startRollout(deps, {
      name: 'conc',
      alias: 'prod',
      spec: {
        version: 2,
        steps: [
          { weight: 10, bakeSeconds: 60 },
          { weight: 50, bakeSeconds: 60 },
          { weight: 100, bakeSeconds: 0 },
        ],
        alarms: [],
      },
      actor: 'tester',
    });
    at(30);
    expect(await concurrently(5)).toMatchObject({ advanced: 0, promoted: 0, failed: 0 });
    at(60);
    const first = await concurrently(5);
    expect(first).toMatchObject({ advanced: 1, failed: 0 });
    at(61);
    expect(await concurrently(5)).toMatchObject({ advanced: 0, reconciled: 0 });
    at(121);
    // The last step bakes 0 s: a run that reads it after the advance may promote in the same batch.
    const third = await concurrently(5);
    expect(third).toMatchObject({ advanced: 1, failed: 0 });
    at(122);
    const last = await concurrently(5);
    expect(last).toMatchObject({ advanced: 0, failed: 0 });
    expect(third.promoted + last.promoted).toBe(1);
    at(200);
    expect(await concurrently(5)).toMatchObject({ advanced: 0, promoted: 0, reconciled: 0 });

    const id8 = r.id.slice(0, 8);
    const h = (await history('conc')).slice(1);
    expect(h.map((e) => [e.version, e.routing?.canary?.weight, e.reason])).toEqual([
      [1, 10, `rollout ${id8}: step 1/3, canary v2 at 10%`],
      [1, 50, `rollout ${id8}: step 2/3, canary v2 at 50%`],
      [1, 100, `rollout ${id8}: step 3/3, canary v2 at 100%`],
      [2, undefined, 'rollout completed'],
    ]);
    const alias = await repo.getAlias('conc', 'prod');
    expect(alias).toMatchObject({ version: 2 });
    expect(alias?.routing).toBeUndefined();
    const done = await getRollout(deps, 'conc', 'prod');
    expect(done).toMatchObject({ status: 'completed', step: 2 });
    expect(events.filter((e) => e.type === 'RolloutCompleted')).toHaveLength(1);
    expect(await deps.rollouts.listActive()).toEqual([]);
  });

  it('rolls back at once on the alarm event, once however many runs receive it', async () => {
    for (let i = 0; i < 2; i++) await repo.createVersion(newVersion('alarmed'));
    at(0);
    await startRollout(deps, {
      name: 'alarmed',
      alias: 'prod',
      spec: { version: 2, steps: [{ weight: 20, bakeSeconds: 600 }], alarms: ['alarmed-errors'] },
      actor: 'tester',
    });
    const event: ControllerEvent = {
      source: 'aws.cloudwatch',
      'detail-type': 'CloudWatch Alarm State Change',
      detail: { alarmName: 'alarmed-errors', state: { value: 'ALARM' } },
    };
    const ok = await controller({
      ...event,
      detail: { alarmName: 'alarmed-errors', state: { value: 'OK' } },
    });
    expect(ok.alarm).toEqual({ name: 'alarmed-errors', state: 'OK', rolledBack: [] });
    const results = await Promise.all([controller(event), controller(event), controller(event)]);
    expect(results.flatMap((r) => r.alarm?.rolledBack ?? [])).toEqual(['alarmed@prod']);
    const h = (await history('alarmed')).slice(1);
    expect(h.map((e) => [e.routing?.canary?.weight, e.reason])).toEqual([
      [20, expect.stringMatching(/^rollout [0-9a-f]{8}: step 1\/1, canary v2 at 20%$/)],
      [undefined, 'alarm:alarmed-errors'],
    ]);
    expect(await getRollout(deps, 'alarmed', 'prod')).toMatchObject({
      status: 'rolled_back',
      endedReason: 'alarm:alarmed-errors',
    });
    expect(events.filter((e) => e.type === 'RolloutRolledBack').map((e) => e.detail)).toEqual([
      expect.objectContaining({
        name: 'alarmed',
        reason: 'alarm:alarmed-errors',
        version: 2,
        fromVersion: 1,
      }),
    ]);
  });

  it('ends a rollout `superseded` when its alias is moved by hand', async () => {
    for (let i = 0; i < 3; i++) await repo.createVersion(newVersion('moved'));
    at(0);
    await startRollout(deps, {
      name: 'moved',
      alias: 'prod',
      spec: { version: 2, steps: [{ weight: 5, bakeSeconds: 600 }], alarms: [] },
      actor: 'tester',
    });
    await moveAlias(deps, { name: 'moved', alias: 'prod', version: 3, actor: 'operator', reason: 'hotfix' });
    at(1);
    const r = await controller(scheduled);
    expect(r.aborted).toEqual(['moved@prod']);
    expect(await getRollout(deps, 'moved', 'prod')).toMatchObject({
      status: 'aborted',
      endedReason: 'superseded',
    });
    const h = (await history('moved')).slice(1);
    expect(h.map((e) => [e.version, e.routing?.canary?.version, e.reason])).toEqual([
      [1, 2, expect.stringMatching(/^rollout [0-9a-f]{8}: step 1\/1/)],
      [3, 2, 'hotfix'],
      [3, undefined, 'rollout aborted: superseded'],
    ]);
  });

  it('ends a rollout `aborted` when its version was archived after its split was cleared by hand', async () => {
    for (let i = 0; i < 3; i++) await repo.createVersion(newVersion('archived'));
    at(0);
    await startRollout(deps, {
      name: 'archived',
      alias: 'prod',
      spec: { version: 2, steps: [{ weight: 10, bakeSeconds: 600 }], alarms: [] },
      actor: 'tester',
    });
    // Clearing the split releases version 2, which may then be archived.
    await updateAlias(deps, { name: 'archived', alias: 'prod', routing: null, actor: 'operator' });
    await updateVersion(deps, 'archived', 2, { status: 'ARCHIVED' });
    at(1);
    const r = await controller(scheduled);
    expect(r).toMatchObject({ aborted: ['archived@prod'], failed: [] });
    expect(await getRollout(deps, 'archived', 'prod')).toMatchObject({
      status: 'aborted',
      endedReason: 'version 2 not servable: ARCHIVED',
    });
    expect((await deps.rollouts.listActive()).map((x) => x.name)).not.toContain('archived');
    // The alias is free again: a new rollout starts.
    const next = await startRollout(deps, {
      name: 'archived',
      alias: 'prod',
      spec: { version: 3, steps: [{ weight: 10, bakeSeconds: 600 }], alarms: [] },
      actor: 'tester',
    });
    expect(next).toMatchObject({ status: 'running', version: 3 });
  });

  it("keeps the alias's own shadow beside a rollout without maxDivergence, and after its abort", async () => {
    for (let i = 0; i < 3; i++) await repo.createVersion(newVersion('shadowed'));
    const shadow = { version: 3, percent: 20 };
    await updateAlias(deps, { name: 'shadowed', alias: 'prod', routing: { shadow }, actor: 'operator' });
    at(0);
    await startRollout(deps, {
      name: 'shadowed',
      alias: 'prod',
      spec: { version: 2, steps: [{ weight: 10, bakeSeconds: 600 }], alarms: [] },
      actor: 'tester',
    });
    expect((await repo.getAlias('shadowed', 'prod'))?.routing).toEqual({
      canary: { version: 2, weight: 10 },
      shadow,
    });
    at(1);
    const run = await controller(scheduled);
    expect([...run.reconciled, ...run.failed]).not.toContain('shadowed@prod');
    expect((await repo.getAlias('shadowed', 'prod'))?.routing?.shadow).toEqual(shadow);
    await abortRollout(deps, { name: 'shadowed', alias: 'prod', actor: 'tester' });
    expect((await repo.getAlias('shadowed', 'prod'))?.routing).toEqual({ shadow });
  });
});

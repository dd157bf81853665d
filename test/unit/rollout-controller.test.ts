/**
 * The rollout controller entry (which events tick, which roll back), the CloudWatch alarm states (chunks of 100,
 * metric and composite alarms), the local alarm states, and the split-change event of updateAlias.
 */
import { DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { describe, expect, it } from 'vitest';
import { CloudWatchAlarmStates } from '../../functions/adapters/cloudwatch-alarms';
import { LocalAlarmStates } from '../../functions/adapters/local-alarms';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import { MemoryRolloutRepository } from '../../functions/adapters/memory-rollouts';
import { updateAlias } from '../../functions/app/registry';
import { type RolloutDeps, startRollout } from '../../functions/app/rollout';
import { alarmOf, createRolloutController } from '../../functions/handlers/rollout-controller';
import type { RegistryEvent } from '../../functions/ports';
import { newVersion } from '../helpers/registry-repository-contract';

const alarmEvent = (alarmName: string, value: string) => ({
  source: 'aws.cloudwatch',
  'detail-type': 'CloudWatch Alarm State Change',
  detail: { alarmName, state: { value } },
});

describe('rollout controller entry', () => {
  it('reads the alarm of CloudWatch alarm events only', () => {
    expect(alarmOf(alarmEvent('a', 'ALARM'))).toEqual({ name: 'a', state: 'ALARM' });
    expect(alarmOf({ source: 'aws.events', 'detail-type': 'Scheduled Event' })).toBeUndefined();
    expect(alarmOf({ ...alarmEvent('a', 'ALARM'), source: 'custom' })).toBeUndefined();
    expect(
      alarmOf({ source: 'aws.cloudwatch', 'detail-type': 'CloudWatch Alarm State Change' }),
    ).toBeUndefined();
  });

  it('ticks on schedules, rolls back on an alarm event, and reports what it did', async () => {
    const repo = new MemoryRegistryRepository();
    for (let i = 0; i < 2; i++) await repo.createVersion(newVersion('ctl'));
    const alarms = new LocalAlarmStates();
    const deps: RolloutDeps = { repo, rollouts: new MemoryRolloutRepository(), alarms };
    const lines: unknown[] = [];
    const controller = createRolloutController(deps, { info: (_m, a) => void lines.push(a) });
    await startRollout(deps, {
      name: 'ctl',
      alias: 'prod',
      spec: { version: 2, steps: [{ weight: 10, bakeSeconds: 3600 }], alarms: ['ctl-errors'] },
      actor: 't',
    });
    const quiet = await controller({ 'detail-type': 'Scheduled Event', source: 'aws.events' });
    expect(quiet).toMatchObject({ rollouts: 1, advanced: [], rolledBack: [] });
    expect(quiet.alarm).toBeUndefined();
    expect(lines).toEqual([]);
    const other = await controller(alarmEvent('unrelated', 'ALARM'));
    expect(other.alarm).toEqual({ name: 'unrelated', state: 'ALARM', rolledBack: [] });
    const fired = await controller(alarmEvent('ctl-errors', 'ALARM'));
    expect(fired.alarm).toEqual({ name: 'ctl-errors', state: 'ALARM', rolledBack: ['ctl@prod'] });
    expect(lines).toHaveLength(1);
    expect((await repo.getAlias('ctl', 'prod'))?.routing).toBeUndefined();
    expect((await deps.rollouts.get('ctl', 'prod'))?.endedReason).toBe('alarm:ctl-errors');
  });
});

describe('alarm states', () => {
  it('CloudWatch: asks DescribeAlarms in ALARM in chunks of 100, metric and composite alarms', async () => {
    const asked: string[][] = [];
    const client = {
      send: async (cmd: DescribeAlarmsCommand) => {
        expect(cmd).toBeInstanceOf(DescribeAlarmsCommand);
        expect(cmd.input).toMatchObject({
          StateValue: 'ALARM',
          AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
        });
        const names = cmd.input.AlarmNames ?? [];
        asked.push(names);
        return {
          MetricAlarms: names.filter((n) => n === 'a7' || n === 'a150').map((AlarmName) => ({ AlarmName })),
          CompositeAlarms: names.filter((n) => n === 'a201').map((AlarmName) => ({ AlarmName })),
        };
      },
    };
    const states = new CloudWatchAlarmStates(client as never);
    const names = Array.from({ length: 205 }, (_, i) => `a${i}`);
    expect(await states.inAlarm([...names, 'a7'])).toEqual(['a7', 'a150', 'a201', 'a7']);
    expect(asked.map((c) => c.length)).toEqual([100, 100, 5]);
    expect(await states.inAlarm([])).toEqual([]);
  });

  it('local: only alarms set to ALARM', async () => {
    const states = new LocalAlarmStates();
    states.set('a', 'ALARM');
    states.set('b', 'OK');
    expect(await states.inAlarm(['a', 'b', 'c'])).toEqual(['a']);
    states.set('a', 'OK');
    expect(await states.inAlarm(['a'])).toEqual([]);
  });
});

describe('updateAlias', () => {
  it('publishes AliasRoutingChanged with the split before and after, only when it changed', async () => {
    const repo = new MemoryRegistryRepository();
    for (let i = 0; i < 2; i++) await repo.createVersion(newVersion('ev'));
    const events: RegistryEvent[] = [];
    const deps = { repo, events: { publish: async (e: RegistryEvent) => void events.push(e) } };
    const canary = { canary: { version: 2, weight: 10 } };
    await updateAlias(deps, { name: 'ev', alias: 'prod', routing: canary, actor: 't' });
    await updateAlias(deps, { name: 'ev', alias: 'prod', routing: canary, actor: 't' });
    await updateAlias(deps, { name: 'ev', alias: 'prod', routing: null, actor: 't' });
    await updateAlias(deps, { name: 'ev', alias: 'prod', capture: null, actor: 't' });
    expect(events).toEqual([
      {
        type: 'AliasRoutingChanged',
        detail: {
          name: 'ev',
          alias: 'prod',
          version: 1,
          revision: 2,
          routing: canary,
          previousRouting: null,
        },
      },
      {
        type: 'AliasRoutingChanged',
        detail: {
          name: 'ev',
          alias: 'prod',
          version: 1,
          // The same canary again changed nothing: no revision of its own.
          revision: 3,
          routing: null,
          previousRouting: canary,
        },
      },
    ]);
  });
});

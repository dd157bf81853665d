/**
 * `maas shadow`, `maas canary`, `maas models`, `maas rollout` and `maas alarm` against the local service as
 * `maas dev` composes it (local server + DynamoDB Local + s3rver, rollouts in the table, alarms set by hand): the
 * splits they write, a rollout walked by the controller (bake, pause, resume, an alarm rolling it back), and the
 * refusals printed with the API's code.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tick } from '../../functions/app/rollout';
import type { LocalServices } from '../../functions/local/compose';
import { buildMlp } from '../../functions/local/onnx-builder';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { cliAt } from '../helpers/fake-api';
import { composeTestServices } from '../helpers/local-services';

describe('progressive delivery commands on the local service', () => {
  let aws: TestAwsEnv;
  let services: LocalServices;
  let server: RunningLocalServer;
  const dir = mkdtempSync(join(tmpdir(), 'maas-cli-progressive-'));
  const cli = (...args: string[]) => cliAt(server.url, ...args);

  beforeAll(async () => {
    aws = await createTestAwsEnv('cliprog');
    services = composeTestServices(aws);
    server = await startLocalServer({
      port: 0,
      actor: 'local:tester',
      handlers: services.handlers,
      alarms: (name, state) => services.setAlarm(name, state),
    });
    // Three versions with one signature (features FP32[-1,4] -> probabilities FP32[-1,3]).
    for (const seed of [1, 2, 3]) {
      const file = join(dir, `mlp-${seed}.onnx`);
      writeFileSync(
        file,
        buildMlp({ inFeatures: 4, layers: [6, 3], inputName: 'features', outputName: 'probabilities', seed }),
      );
      const r = await cli('register', file, '--name', 'flow');
      expect(r.err).toBe('');
    }
    expect((await cli('promote', 'flow', '1')).code).toBe(0);
  });

  afterAll(async () => {
    await server?.close();
    await services?.close();
    await aws?.dispose();
  });

  it('shadow and canary write one split, each keeping the other; models shows it', async () => {
    const shadow = await cli('shadow', 'flow', '2', '--percent', '25');
    expect(shadow.err).toBe('');
    expect(shadow.out).toMatch(/^flow@prod: version 1, no canary, shadow 2 @ 25% \(revision \d+\)\n$/);
    const canary = await cli('canary', 'flow', '3', '--weight', '10', '--key-parameter', 'user');
    expect(canary.out).toMatch(
      /^flow@prod: version 1, canary 3 @ 10%, shadow 2 @ 25% \(key parameter 'user'\) \(revision \d+\)\n$/,
    );
    expect((await cli('models')).out).toMatch(/flow\s+3\s+prod=1 \(canary 3 @ 10%, shadow 2 @ 25%\)/);
    const off = await cli('shadow', 'flow', '--off');
    expect(off.out).toMatch(/flow@prod: version 1, canary 3 @ 10% \(key parameter 'user'\)/);
    expect((await cli('canary', 'flow', '--off')).out).toMatch(/flow@prod: version 1, no canary \(revision/);
    expect((await cli('models')).out).toMatch(/flow\s+3\s+prod=1\s/);
    // The registry's refusals come with their code.
    const stable = await cli('shadow', 'flow', '1', '--percent', '5');
    expect(stable.code).toBe(1);
    expect(stable.err).toMatch(/^error: .* \(409 SHADOW_IS_STABLE\)\n$/);
  });

  it('walks a rollout: start, status, refusals, pause and resume, a bake, an alarm rolling it back', async () => {
    const start = await cli(
      'rollout',
      'flow',
      '3',
      '--steps',
      '10:5m,50:10m,100',
      '--alarm',
      'flow-errors',
      '--max-divergence',
      'agreement=0.99,shadow=20',
    );
    expect(start.err).toBe('');
    expect(start.code).toBe(0);
    expect(start.out).toMatch(/^flow@prod: rollout [0-9a-f]{8} running, version 1 -> 3/);
    expect(start.out).toContain('  steps     > 10% for 5m\n              50% for 10m\n              100%\n');
    expect(start.out).toMatch(
      / {2}weight {6}10% \(step 1 of 3\), next step at \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/,
    );
    expect(start.out).toContain('  alarms      flow-errors');
    expect(start.out).toContain('0 requests, 0 rows, agreement - (min 99%, judged from 100 rows)');
    expect(start.out).toContain('(mirroring 20% of stable)');
    expect(start.out).toContain('by local:tester');
    // The split the rollout wrote: canary at the first step's weight, the stable share mirrored to the version.
    expect((await cli('models')).out).toMatch(/prod=1 \(canary 3 @ 10%, shadow 3 @ 20%\)/);

    const json = JSON.parse((await cli('--json', 'rollout', 'status', 'flow')).out);
    expect(json).toMatchObject({
      name: 'flow',
      alias: 'prod',
      version: 3,
      fromVersion: 1,
      status: 'running',
    });

    const busy = await cli('rollout', 'flow', '2', '--steps', '100');
    expect(busy.code).toBe(1);
    expect(busy.err).toMatch(/\(409 ROLLOUT_IN_PROGRESS\)\n$/);
    const tooMany = await cli(
      'rollout',
      'flow',
      '2',
      '--steps',
      '100',
      '--alias',
      'staging',
      ...Array.from({ length: 11 }, (_, i) => ['--alarm', `a${i}`]).flat(),
    );
    expect(tooMany.code).toBe(1);
    expect(tooMany.err).toMatch(/\(400 INVALID_ROLLOUT\)\n$/);

    const paused = await cli('rollout', 'pause', 'flow');
    expect(paused.out).toMatch(/rollout [0-9a-f]{8} paused/);
    expect(paused.out).toMatch(/10% \(step 1 of 3\), paused/);
    expect((await cli('rollout', 'resume', 'flow')).out).toMatch(/rollout [0-9a-f]{8} running/);
    const again = await cli('rollout', 'resume', 'flow');
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/\(409 ROLLOUT_NOT_ACTIVE\)\n$/);

    // The controller, six minutes on: the first bake is over.
    await tick(services.rollouts, new Date(Date.now() + 6 * 60_000));
    const second = await cli('rollout', 'status', 'flow');
    expect(second.out).toContain('  steps       10% for 5m\n            > 50% for 10m\n');
    expect((await cli('models')).out).toMatch(/prod=1 \(canary 3 @ 50%, shadow 3 @ 20%\)/);

    // An alarm the rollout does not name changes nothing; its own, in ALARM, rolls it back at once.
    expect(await cli('alarm', 'other-errors')).toEqual({
      code: 0,
      out: 'alarm other-errors is ALARM\n',
      err: '',
    });
    expect((await cli('rollout', 'status', 'flow')).out).toMatch(/rollout [0-9a-f]{8} running/);
    expect((await cli('alarm', 'flow-errors', '--state', 'insufficient_data')).out).toBe(
      'alarm flow-errors is INSUFFICIENT_DATA\n',
    );
    const fired = await cli('alarm', 'flow-errors');
    expect(fired).toEqual({ code: 0, out: 'alarm flow-errors is ALARM; rolled back: flow@prod\n', err: '' });
    const ended = await cli('rollout', 'status', 'flow');
    expect(ended.out).toMatch(/rollout [0-9a-f]{8} rolled_back, version 1 -> 3/);
    expect(ended.out).not.toMatch(/^ +> /m);
    expect(ended.out).toMatch(/ {2}ended {7}\S+ \S+: alarm:flow-errors\n$/);
    expect((await cli('models')).out).toMatch(/flow\s+3\s+prod=1\s/);
    const abort = await cli('rollout', 'abort', 'flow');
    expect(abort.err).toMatch(/\(409 ROLLOUT_NOT_ACTIVE\)\n$/);
  });

  it('rehearses the rollback of an alarm whose name has a / (sent as %2F)', async () => {
    expect((await cli('promote', 'flow', '1', '--alias', 'team')).code).toBe(0);
    const alarm = 'team/flow errors';
    const start = await cli(
      'rollout',
      'flow',
      '2',
      '--alias',
      'team',
      '--steps',
      '10:5m,100',
      '--alarm',
      alarm,
    );
    expect(start.err).toBe('');
    expect(await cli('alarm', alarm)).toEqual({
      code: 0,
      out: `alarm ${alarm} is ALARM; rolled back: flow@team\n`,
      err: '',
    });
    const ended = await cli('rollout', 'status', 'flow', '--alias', 'team');
    expect(ended.out).toMatch(/rollout [0-9a-f]{8} rolled_back, version 1 -> 2/);
    expect(ended.out).toContain(`alarm:${alarm}`);
  });

  it('an alias without a rollout answers 404 with its code', async () => {
    const none = await cli('rollout', 'status', 'flow', '--alias', 'staging');
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/^error: .* \(404 [A-Z_]+_NOT_FOUND\)\n$/);
  });
});

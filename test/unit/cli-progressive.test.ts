/**
 * `maas shadow`, `maas rollout`, `maas alarm` and the split-keeping of `maas canary` over a stand-in API: what
 * they send, what they print, their usage errors; the parsing of rollout steps and divergence bounds, and the
 * rendering of splits and rollouts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  duration,
  formatAlarm,
  formatModels,
  formatRollout,
  formatRouting,
} from '../../functions/cli/format';
import { nextSplit, parseDivergence, parseSteps } from '../../functions/cli/progressive';
import { cliAt, type SeenRequest, startFakeApi } from '../helpers/fake-api';

/** A running rollout as GET …/rollout answers it. */
const ROLLOUT = {
  name: 'iris',
  alias: 'prod',
  id: '3f2a9c1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b',
  version: 3,
  fromVersion: 1,
  status: 'running',
  step: 1,
  steps: [
    { weight: 10, bakeSeconds: 300 },
    { weight: 50, bakeSeconds: 600 },
    { weight: 100, bakeSeconds: 0 },
  ],
  alarms: ['Maas-iris@prod-error-rate'],
  maxDivergence: { minArgmaxAgreement: 0.99, maxAbsDiff: 0.5, minSamples: 100, shadowPercent: 10 },
  stepStartedAt: '2026-12-01T06:30:00.000Z',
  startedAt: '2026-12-01T06:25:00.000Z',
  updatedAt: '2026-12-01T06:30:00.000Z',
  actor: 'local:dev',
  revision: 3,
  divergence: { requests: 1200, rows: 3400, agreeingRows: 3386, overMaxAbs: 0, overKl: 0, shadowErrors: 1 },
  weight: 50,
  nextStepAt: '2026-12-01T06:40:00.000Z',
};

describe('rollout options', () => {
  it('parses steps as the service does: weights with bake times in s, m or h, a step without one bakes 0 s', () => {
    expect(parseSteps('10:5m,50:10m,100')).toEqual([
      { weight: 10, bakeSeconds: 300 },
      { weight: 50, bakeSeconds: 600 },
      { weight: 100, bakeSeconds: 0 },
    ]);
    expect(parseSteps(' 0.5:30s , 25:1h ')).toEqual([
      { weight: 0.5, bakeSeconds: 30 },
      { weight: 25, bakeSeconds: 3600 },
    ]);
    expect(parseSteps('10:90')).toEqual([{ weight: 10, bakeSeconds: 90 }]);
    for (const bad of [
      '',
      '10:',
      '10:5d',
      'ten',
      '10,,50',
      '-5:1m',
      '0:1m',
      '10:1.5m',
      '50,10',
      '10:1m:2m',
    ]) {
      expect(() => parseSteps(bad), bad).toThrow(/^--steps: rollout /);
    }
    expect(() => parseSteps('50,10')).toThrow(/weights increase/);
  });

  it('parses divergence bounds by their short keys, each once', () => {
    expect(parseDivergence('agreement=0.99,maxAbs=0.5,kl=0.1,minSamples=200,shadow=20')).toEqual({
      minArgmaxAgreement: 0.99,
      maxAbsDiff: 0.5,
      maxKlDivergence: 0.1,
      minSamples: 200,
      shadowPercent: 20,
    });
    expect(parseDivergence('kl=0.05')).toEqual({ maxKlDivergence: 0.05 });
    expect(parseDivergence('maxAbs=1,errors=0.2')).toEqual({ maxAbsDiff: 1, maxShadowErrorRate: 0.2 });
    expect(() => parseDivergence('agreement=high')).toThrow(/agreement must be a decimal number/);
    expect(() => parseDivergence('similarity=0.9')).toThrow(/key among agreement, maxAbs, kl/);
    expect(() => parseDivergence('kl=0.1,kl=0.2')).toThrow(/given twice/);
    expect(() => parseDivergence('kl')).toThrow(/<key>=<number>/);
    // Decimal numbers only: what Number() would read as another value is refused.
    for (const bad of [
      'shadow=0x10',
      'minSamples=1e2',
      'kl= 0.1 x',
      'maxAbs=Infinity',
      'agreement=.99',
      'kl=',
    ]) {
      expect(() => parseDivergence(bad), bad).toThrow(/must be a decimal number|<key>=<number>/);
    }
    expect(() => parseDivergence('shadow=0x10')).toThrow(
      "shadow must be a decimal number (e.g. 0.5), got '0x10'",
    );
  });

  it('changes one part of a split and keeps the others; no canary and no shadow is no split', () => {
    const split = { canary: { version: 3, weight: 10 }, keyParameter: 'user' };
    expect(nextSplit(split, { shadow: { version: 4, percent: 20 } })).toEqual({
      canary: { version: 3, weight: 10 },
      shadow: { version: 4, percent: 20 },
      keyParameter: 'user',
    });
    expect(nextSplit({ ...split, shadow: { version: 4, percent: 20 } }, { canary: null })).toEqual({
      shadow: { version: 4, percent: 20 },
      keyParameter: 'user',
    });
    expect(nextSplit(split, { canary: null })).toBeNull();
    expect(nextSplit(undefined, { shadow: null })).toBeNull();
    expect(nextSplit(split, { keyParameter: null })).toEqual({ canary: { version: 3, weight: 10 } });
  });
});

describe('rendering', () => {
  it('lists each alias with its canary and shadow', () => {
    const out = formatModels({
      models: [
        {
          name: 'iris',
          latestVersion: 4,
          aliases: { prod: 1, staging: 2 },
          splits: {
            prod: { canary: { version: 3, weight: 10 }, shadow: { version: 4, percent: 20 } },
            staging: { shadow: { version: 4, percent: 5.5 } },
          },
        },
      ],
    });
    expect(out).toMatch(/iris\s+4\s+prod=1 \(canary 3 @ 10%, shadow 4 @ 20%\) staging=2 \(shadow 4 @ 5.5%\)/);
  });

  it('shows an alias split with its shadow', () => {
    const alias = { alias: 'prod', version: 1, revision: 7 };
    expect(
      formatRouting('iris', {
        ...alias,
        routing: {
          canary: { version: 3, weight: 10 },
          shadow: { version: 3, percent: 20 },
          keyParameter: 'u',
        },
      }),
    ).toBe("iris@prod: version 1, canary 3 @ 10%, shadow 3 @ 20% (key parameter 'u') (revision 7)");
    expect(formatRouting('iris', { ...alias, routing: { shadow: { version: 4, percent: 20 } } })).toBe(
      'iris@prod: version 1, no canary, shadow 4 @ 20% (revision 7)',
    );
    expect(formatRouting('iris', alias)).toBe('iris@prod: version 1, no canary (revision 7)');
  });

  it('renders a running rollout: steps with the current one marked, weight, next step, divergence', () => {
    expect(formatRollout(ROLLOUT)).toBe(
      [
        'iris@prod: rollout 3f2a9c1e running, version 1 -> 3 (revision 3)',
        '  steps       10% for 5m',
        '            > 50% for 10m',
        '              100%',
        '  weight      50% (step 2 of 3), next step at 2026-12-01 06:40:00Z',
        '  alarms      Maas-iris@prod-error-rate',
        '  divergence  1200 requests, 3400 rows, agreement 99.59% (min 99%, judged from 100 rows), 0 over max abs 0.5, 1 shadow errors (mirroring 10% of stable)',
        '  started     2026-12-01 06:25:00Z by local:dev',
      ].join('\n'),
    );
  });

  it('renders an ended rollout with its reason and no current step', () => {
    const { maxDivergence: _m, divergence: _d, weight: _w, nextStepAt: _n, ...rest } = ROLLOUT;
    const out = formatRollout({
      ...rest,
      status: 'rolled_back',
      alarms: [],
      keyParameter: 'user',
      updatedAt: '2026-12-01T06:33:10.000Z',
      endedReason: 'alarm:Maas-iris@prod-error-rate',
    });
    expect(out).not.toMatch(/^ {12}> |^ {2}steps {5}> /m);
    expect(out).not.toContain('weight');
    expect(out).toContain("  key         parameter 'user'");
    expect(out).toContain('  alarms      -');
    expect(out).toContain('  ended       2026-12-01 06:33:10Z: alarm:Maas-iris@prod-error-rate');
    // A paused rollout keeps its marker and says it is paused; the last step waits for promotion.
    const paused = formatRollout({ ...rest, status: 'paused' });
    expect(paused).toContain('            > 50% for 10m');
    expect(paused).toContain('50% (step 2 of 3), paused');
    expect(formatRollout({ ...rest, step: 2, nextStepAt: '2026-12-01T06:50:00.000Z' })).toContain(
      '100% (step 3 of 3), promotion at 2026-12-01 06:50:00Z',
    );
    expect(
      formatRollout({ ...rest, step: 2, nextStepAt: '2026-12-01T06:50:00.000Z', awaitingSamples: true }),
    ).toMatch(/100% \(step 3 of 3\), promotion once \d+ rows were compared/);
    expect(formatRollout({ ...rest, status: 'paused', pausedAt: '2026-12-01T06:31:00.000Z' })).toContain(
      '(step 2 of 3), paused since 2026-12-01 06:31:00Z',
    );
    expect(formatRollout({ ...rest, status: 'completed', endedAt: '2026-12-01T07:00:00.000Z' })).toContain(
      '  ended       2026-12-01 07:00:00Z',
    );
  });

  it('writes durations compactly and alarm answers in a line', () => {
    expect([0, 45, 300, 3600, 5400, 3661].map(duration)).toEqual([
      '0s',
      '45s',
      '5m',
      '1h',
      '1h30m',
      '1h1m1s',
    ]);
    expect(formatAlarm({ alarm: 'a', state: 'OK', rolledBack: [] })).toBe('alarm a is OK');
    expect(
      formatAlarm({
        alarm: 'a',
        state: 'ALARM',
        rolledBack: ['iris@prod', { name: 'm', alias: 'live', id: ROLLOUT.id }],
      }),
    ).toBe('alarm a is ALARM; rolled back: iris@prod, m@live (rollout 3f2a9c1e)');
  });
});

describe('commands against an HTTP API', () => {
  const split = {
    canary: { version: 2, weight: 5 },
    shadow: { version: 3, percent: 20 },
    keyParameter: 'user',
  };
  let api: Awaited<ReturnType<typeof startFakeApi>>;
  const patched = (req: SeenRequest) => {
    const body = req.body as { routing: unknown };
    const alias = req.url.split('/')[4] as string;
    return {
      status: 200,
      body: {
        alias,
        version: 1,
        revision: 9,
        updatedAt: 't',
        ...(body.routing ? { routing: body.routing } : {}),
      },
    };
  };
  beforeAll(async () => {
    api = await startFakeApi({
      'GET /models/iris': {
        status: 200,
        body: { name: 'iris', latestVersion: 3, aliases: { prod: 1, staging: 1 }, splits: { prod: split } },
      },
      'PATCH /models/iris/aliases/prod': patched,
      'PATCH /models/iris/aliases/staging': patched,
      'PUT /models/iris/aliases/prod/rollout': (req) => ({
        status: 201,
        body: { ...ROLLOUT, ...(req.body as object), step: 0, status: 'running', weight: 10 },
      }),
      'PUT /models/iris/aliases/staging/rollout': {
        status: 409,
        body: { error: 'a rollout of iris@staging is in progress (3f2a9c1e)', code: 'ROLLOUT_IN_PROGRESS' },
      },
      'GET /models/iris/aliases/prod/rollout': { status: 200, body: ROLLOUT },
      'POST /models/iris/aliases/prod/rollout/pause': { status: 200, body: { ...ROLLOUT, status: 'paused' } },
      'POST /models/iris/aliases/prod/rollout/abort': {
        status: 200,
        body: { ...ROLLOUT, status: 'aborted', endedReason: 'rollout aborted' },
      },
      'POST /models/iris/aliases/prod/rollout/resume': {
        status: 409,
        body: { error: 'the rollout of iris@prod is running, not paused', code: 'ROLLOUT_NOT_ACTIVE' },
      },
      'POST /local/alarms/iris-errors': (req) => ({
        status: 200,
        body: {
          alarm: 'iris-errors',
          state: (req.body as { state: string }).state,
          rolledBack: ['iris@prod'],
        },
      }),
    });
  });
  afterAll(() => api.stop());
  const last = () => api.seen.at(-1) as SeenRequest;

  it('shadow PATCHes the alias with its split plus the shadow, keeping canary and key parameter', async () => {
    const r = await cliAt(
      api.url,
      'shadow',
      'iris',
      '4',
      '--percent',
      '12.5',
      '--expect-revision',
      '8',
      '--reason',
      'try v4',
    );
    expect(r).toMatchObject({ code: 0, err: '' });
    expect([last().method, last().url]).toEqual(['PATCH', '/models/iris/aliases/prod']);
    expect(last().body).toEqual({
      routing: {
        canary: { version: 2, weight: 5 },
        shadow: { version: 4, percent: 12.5 },
        keyParameter: 'user',
      },
      expectedRevision: 8,
      reason: 'try v4',
    });
    expect(r.out).toBe(
      "iris@prod: version 1, canary 2 @ 5%, shadow 4 @ 12.5% (key parameter 'user') (revision 9)\n",
    );
    // An alias without a split gets a split of the shadow alone.
    await cliAt(api.url, 'shadow', 'iris', '4', '--percent', '20', '--alias', 'staging');
    expect(last().body).toEqual({ routing: { shadow: { version: 4, percent: 20 } } });
  });

  it('shadow --off keeps the canary; with nothing else left it clears the split', async () => {
    const r = await cliAt(api.url, 'shadow', 'iris', '--off');
    expect(r.code).toBe(0);
    expect(last().body).toEqual({ routing: { canary: { version: 2, weight: 5 }, keyParameter: 'user' } });
    await cliAt(api.url, 'shadow', 'iris', '--off', '--alias', 'staging');
    expect([last().url, last().body]).toEqual(['/models/iris/aliases/staging', { routing: null }]);
  });

  it('canary keeps the shadow of the split, also with --off', async () => {
    expect((await cliAt(api.url, 'canary', 'iris', '3', '--weight', '30')).code).toBe(0);
    expect(last().body).toEqual({
      routing: {
        canary: { version: 3, weight: 30 },
        shadow: { version: 3, percent: 20 },
        keyParameter: 'user',
      },
    });
    const off = await cliAt(api.url, 'canary', 'iris', '--off');
    expect(last().body).toEqual({ routing: { shadow: { version: 3, percent: 20 }, keyParameter: 'user' } });
    expect(off.out).toBe(
      "iris@prod: version 1, no canary, shadow 3 @ 20% (key parameter 'user') (revision 9)\n",
    );
  });

  it('rollout PUTs the spec: parsed steps, repeated alarms, bounds, the kept key parameter', async () => {
    const r = await cliAt(
      api.url,
      'rollout',
      'iris',
      '3',
      '--steps',
      '10:5m,50:10m,100',
      '--alarm',
      'iris-errors',
      '--alarm',
      'iris-p99',
      '--max-divergence',
      'agreement=0.99,maxAbs=0.5',
      '--expect-revision',
      '4',
    );
    expect(r).toMatchObject({ code: 0, err: '' });
    expect([last().method, last().url]).toEqual(['PUT', '/models/iris/aliases/prod/rollout']);
    expect(last().body).toEqual({
      version: 3,
      steps: [
        { weight: 10, bakeSeconds: 300 },
        { weight: 50, bakeSeconds: 600 },
        { weight: 100, bakeSeconds: 0 },
      ],
      alarms: ['iris-errors', 'iris-p99'],
      maxDivergence: { minArgmaxAgreement: 0.99, maxAbsDiff: 0.5 },
      expectedRevision: 4,
    });
    expect(r.out).toContain('iris@prod: rollout 3f2a9c1e running, version 1 -> 3');
    expect(r.out).toContain('  steps     > 10% for 5m\n              50% for 10m\n');
    expect(r.out).toContain('  alarms      iris-errors, iris-p99');

    // Without --key-parameter the service keeps the alias's own: nothing is read first, none is sent.
    const seen = api.seen.length;
    await cliAt(api.url, 'rollout', 'iris', '3', '--steps', '100', '--key-parameter', 'session');
    expect(api.seen.length).toBe(seen + 1);
    expect(last().body).toEqual({
      version: 3,
      steps: [{ weight: 100, bakeSeconds: 0 }],
      alarms: [],
      keyParameter: 'session',
    });
  });

  it('rollout --json prints the answer as it came', async () => {
    const r = await cliAt(api.url, '--json', 'rollout', 'status', 'iris');
    expect(JSON.parse(r.out)).toEqual(ROLLOUT);
  });

  it('rollout status, pause and abort GET or POST the rollout and print it', async () => {
    const status = await cliAt(api.url, 'rollout', 'status', 'iris');
    expect([last().method, last().url]).toEqual(['GET', '/models/iris/aliases/prod/rollout']);
    expect(status.out).toBe(`${formatRollout(ROLLOUT)}\n`);
    const pause = await cliAt(api.url, 'rollout', 'pause', 'iris', '--alias', 'prod');
    expect([last().method, last().url, last().body]).toEqual([
      'POST',
      '/models/iris/aliases/prod/rollout/pause',
      undefined,
    ]);
    expect(pause.out).toContain('50% (step 2 of 3), paused');
    const abort = await cliAt(api.url, 'rollout', 'abort', 'iris');
    expect(abort.out).toContain('rollout 3f2a9c1e aborted');
    expect(abort.out).toContain(': rollout aborted');
  });

  it("prints the API's code and message when it refuses (exit 1)", async () => {
    const resume = await cliAt(api.url, 'rollout', 'resume', 'iris');
    expect(resume).toEqual({
      code: 1,
      out: '',
      err: 'error: the rollout of iris@prod is running, not paused (409 ROLLOUT_NOT_ACTIVE)\n',
    });
    const busy = await cliAt(api.url, 'rollout', 'iris', '3', '--steps', '100', '--alias', 'staging');
    expect(busy.code).toBe(1);
    expect(busy.err).toContain('(409 ROLLOUT_IN_PROGRESS)');
    const none = await cliAt(api.url, 'rollout', 'status', 'iris', '--alias', 'canary');
    expect(none.err).toBe('error: no such thing (404 NOT_FOUND)\n');
  });

  it('alarm POSTs the state to the local service', async () => {
    const r = await cliAt(api.url, 'alarm', 'iris-errors');
    expect([last().method, last().url, last().body]).toEqual([
      'POST',
      '/local/alarms/iris-errors',
      { state: 'ALARM' },
    ]);
    expect(r).toEqual({ code: 0, out: 'alarm iris-errors is ALARM; rolled back: iris@prod\n', err: '' });
    await cliAt(api.url, 'alarm', 'iris-errors', '--state', 'ok');
    expect(last().body).toEqual({ state: 'OK' });
  });

  it('alarm against a deployed stack sends nothing and says how to set a CloudWatch alarm (exit 2)', async () => {
    const seen = api.seen.length;
    const r = await cliAt(
      'https://abc123.execute-api.eu-west-1.amazonaws.com',
      'alarm',
      'iris-errors',
      '--state',
      'OK',
    );
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      "aws cloudwatch set-alarm-state --alarm-name 'iris-errors' --state-value OK --state-reason 'rollout rehearsal'",
    );
    expect(api.seen.length).toBe(seen);
  });

  it('refuses malformed calls before sending anything (exit 2)', async () => {
    const seen = api.seen.length;
    for (const args of [
      ['shadow', 'iris'],
      ['shadow', 'iris', '4'],
      ['shadow', 'iris', '--percent', '10'],
      ['shadow', 'iris', '4', '--percent', 'some'],
      ['shadow', 'iris', '4', '--percent', '1e1'],
      ['shadow', 'iris', '4', '--percent', '0x10'],
      ['shadow', 'iris', '4', '--percent', ' 5'],
      ['canary', 'iris', '2', '--weight', '0x10'],
      ['canary', 'iris', '2', '--weight', '1e1'],
      ['rollout', 'iris', '3', '--steps', '100', '--max-divergence', 'shadow=1e1'],
      ['shadow', 'iris', '4', '--off'],
      ['shadow', 'iris', '--off', '--percent', '5'],
      ['rollout', 'iris', '3'],
      ['rollout', 'iris', '--steps', '100'],
      ['rollout', 'iris', 'three', '--steps', '100'],
      ['rollout', 'iris', '3', '--steps', '10:5x'],
      ['rollout', 'iris', '3', '--steps', '100', '--max-divergence', 'agreement'],
      ['rollout', 'status'],
      ['rollout', 'pause', 'iris', '--alarm', 'x'],
      ['rollout', 'abort', 'iris', '--key-parameter', 'user'],
      ['alarm', 'iris-errors', '--state', 'BROKEN'],
    ]) {
      const r = await cliAt(api.url, ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err, args.join(' ')).toMatch(/^error: /);
    }
    expect(api.seen.length).toBe(seen);
  });

  it('an action word with --steps is a model name: rollout of model "status"', async () => {
    const r = await cliAt(api.url, 'rollout', 'status', '2', '--steps', '100');
    expect([last().method, last().url]).toEqual(['PUT', '/models/status/aliases/prod/rollout']);
    expect(r.code).toBe(1); // the fake API knows no model 'status'
  });
});

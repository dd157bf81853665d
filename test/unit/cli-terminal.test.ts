/**
 * Text from the service never drives the terminal: every command family's human output writes control characters
 * as escapes (`printable`), and `--json` stays exact JSON that parses back to the same strings (`jsonText`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobStatus } from '../../functions/cli/batch';
import { formatProgress } from '../../functions/cli/batch';
import { cancelSummary, runSummary } from '../../functions/cli/commands/batch';
import { formatCapture, formatStats } from '../../functions/cli/commands/observe';
import {
  formatAlarm,
  formatCaptureConfig,
  formatHistory,
  formatModels,
  formatMoveResult,
  formatPrediction,
  formatRegistered,
  formatRollout,
  formatRouting,
  formatVersions,
  jsonText,
  printable,
  type RolloutJson,
} from '../../functions/cli/format';
import { formatDerived, formatVersionsWithLineage } from '../../functions/cli/format-derive';
import { cliAt, startFakeApi } from '../helpers/fake-api';

/**
 * What an inference-only caller can store: an OSC title change ended by BEL, an erase-line, a carriage return and a
 * colour, a newline and a tab, NUL, DEL, a C1 CSI and NEL, a line separator, and the six characters `\u001b`.
 */
const HOSTILE =
  '\u001b]0;owned\u0007\u001b[2K\r\u001b[32mall good\u001b[0m\n\t\u0000\u007f\u009b31m\u0085\u2028end\\u001b';

/** HOSTILE as `printable` shows it. */
const SHOWN =
  '\\u001b]0;owned\\u0007\\u001b[2K\\r\\u001b[32mall good\\u001b[0m\\n\\t\\u0000\\u007f\\u009b31m\\u0085\\u2028end\\\\u001b';

/** Any character a terminal may act on, but the newline that ends a line of output. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what it finds
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

/** `text` holds no control character but newlines, and (when given) exactly `lines` lines. */
function expectInert(text: string, lines?: number): void {
  expect(text).not.toMatch(RAW_CONTROL);
  if (lines !== undefined) expect(text.replace(/\n$/, '').split('\n')).toHaveLength(lines);
}

describe('printable', () => {
  it('writes C0 controls, DEL, C1 controls and U+2028/9 as JSON escapes, and doubles a backslash', () => {
    expect(printable(HOSTILE)).toBe(SHOWN);
    expect(printable('\u0001\u001f\u0080\u009f\u2029')).toBe('\\u0001\\u001f\\u0080\\u009f\\u2029');
    expect(printable('C:\\models')).toBe('C:\\\\models');
  });

  it('leaves other text as it is', () => {
    const plain = 'iris@prod: café Ωmega 模型 🙂 \u00a0nbsp ~!@#$%^&*()[]{}"\'`';
    expect(printable(plain)).toBe(plain);
  });

  it('is unambiguous: the escapes of a control and of the text that spells them differ', () => {
    expect(printable('\u001b')).not.toBe(printable('\\u001b'));
    expect(printable('\n')).not.toBe(printable('\\n'));
    // Read back as a JSON string, the shown text is the original.
    expect(JSON.parse(`"${printable(HOSTILE).replace(/"/g, '\\"')}"`)).toBe(HOSTILE);
  });
});

describe('jsonText', () => {
  it('is JSON that parses back to the exact strings, with nothing raw a terminal acts on', () => {
    const value = { id: HOSTILE, nested: [{ reason: HOSTILE }], n: 1 };
    const text = jsonText(value, 2);
    expectInert(text);
    expect(JSON.parse(text)).toEqual(value);
    expect((JSON.parse(text) as typeof value).id).toBe(HOSTILE);
  });

  it('is JSON.stringify for text without DEL, C1 controls or U+2028/9', () => {
    const value = { name: 'iris', description: 'tab\there "quoted" \\ back', v: [1, 2.5, null] };
    expect(jsonText(value, 2)).toBe(JSON.stringify(value, null, 2));
  });
});

describe('human output of each command family', () => {
  it('capture: the inference id, alias, route and bodies', () => {
    const out = formatCapture([
      {
        captureData: {
          endpointInput: { data: HOSTILE, encoding: 'JSON' },
          endpointOutput: { data: HOSTILE, encoding: 'JSON' },
        },
        eventMetadata: { inferenceId: HOSTILE, inferenceTime: '2026-01-01T00:00:00Z' },
        version: 1,
        alias: HOSTILE,
        route: HOSTILE,
        status: 200,
      },
    ]);
    expectInert(out, 2);
    expect(out).toContain(SHOWN);
  });

  it('models and versions: names, aliases, descriptions, failure reasons, the next token', () => {
    const models = formatModels({
      models: [
        {
          name: HOSTILE,
          latestVersion: 1,
          aliases: { [HOSTILE]: 1 },
          splits: { [HOSTILE]: { canary: { version: 2, weight: 5 } } },
          description: HOSTILE,
          updatedAt: '2026-01-01T00:00:00.000Z',
        },
      ],
      nextToken: HOSTILE,
    });
    expectInert(models, 3);
    expect(models).toContain(`${SHOWN}=1 (canary 2 @ 5%)`);
    for (const v of [
      { name: 'iris', version: 1, status: 'READY', description: HOSTILE },
      { name: 'iris', version: 2, status: 'FAILED', failureReason: HOSTILE },
    ]) {
      const answer = { versions: [v], nextToken: HOSTILE };
      expectInert(formatVersions(answer), 3);
      expectInert(formatVersionsWithLineage(answer), 3);
      expect(formatVersionsWithLineage(answer)).toContain(SHOWN);
    }
    const derivedLines = formatDerived({
      name: HOSTILE,
      version: 2,
      status: 'FAILED',
      derivedFrom: 1,
      transforms: [{ preprocess: { [HOSTILE]: [] } }] as never,
      failureReason: HOSTILE,
    });
    expectInert(derivedLines, 3);
    const registered = formatRegistered({
      name: HOSTILE,
      version: 1,
      status: 'READY',
      sha256: HOSTILE,
      signature: { inputs: [{ name: HOSTILE, datatype: 'FP32', shape: [1] }], outputs: [] },
      labels: [HOSTILE],
      postprocess: { labels: [HOSTILE] },
    });
    expectInert(registered, 6);
    // The post-processing is shown as JSON: its strings escaped once, as JSON escapes them.
    expect(registered).toContain(`  postprocess  ${jsonText({ labels: [HOSTILE] })}`);
  });

  it('history and the alias commands: aliases, actors, reasons, key parameters', () => {
    const history = formatHistory({
      history: [
        {
          alias: HOSTILE,
          version: 2,
          previousVersion: 1,
          at: '2026-01-01T00:00:00Z',
          actor: HOSTILE,
          reason: HOSTILE,
        },
      ],
    });
    expectInert(history, 2);
    expect(history).toContain(SHOWN);
    const move = formatMoveResult('iris', { alias: HOSTILE, version: 2, previousVersion: 1, revision: 3 });
    const routing = formatRouting('iris', {
      alias: HOSTILE,
      version: 1,
      routing: { canary: { version: 2, weight: 5 }, keyParameter: HOSTILE },
    });
    const capture = formatCaptureConfig('iris', {
      alias: HOSTILE,
      capture: { samplePercent: 1, input: true, output: true },
    });
    const alarm = formatAlarm({
      alarm: HOSTILE,
      state: 'ALARM',
      rolledBack: [HOSTILE, { name: HOSTILE, alias: 'prod' }],
    });
    for (const line of [move, routing, capture, alarm]) expectInert(line, 1);
  });

  it('rollout status: the id, alarms, key parameter, actor and end reason', () => {
    const rollout: RolloutJson = {
      name: 'iris',
      alias: HOSTILE,
      id: HOSTILE,
      version: 2,
      fromVersion: 1,
      status: 'rolled_back',
      step: 0,
      steps: [{ weight: 10, bakeSeconds: 60 }],
      alarms: [HOSTILE],
      keyParameter: HOSTILE,
      startedAt: '2026-01-01T00:00:00Z',
      actor: HOSTILE,
      endedReason: HOSTILE,
      endedAt: '2026-01-01T00:05:00Z',
    };
    const out = formatRollout(rollout);
    expectInert(out, 6);
    expect(out).toContain(`by ${SHOWN}`);
    expect(out).toContain(`: ${SHOWN}`);
  });

  it('predictions and stats: model, output names and BYTES data', () => {
    const prediction = formatPrediction({
      model_name: HOSTILE,
      model_version: '1',
      outputs: [{ name: HOSTILE, datatype: 'BYTES', shape: [1], data: [HOSTILE] }],
    });
    expectInert(prediction, 2);
    // The data is JSON, and parses back to the exact string.
    expect(JSON.parse(prediction.split('  ').at(-1) as string)).toEqual([HOSTILE]);
    const stats = formatStats([
      {
        model: HOSTILE,
        version: '1',
        alias: HOSTILE,
        route: HOSTILE,
        requests: 1,
        clientErrors: 0,
        serverErrors: 0,
        coldStarts: 0,
        payloadBytes: 10,
        p50Ms: 1,
        p99Ms: 2,
      },
    ]);
    expectInert(stats, 2);
  });

  it('batch: a failed job status and the run and cancel summaries', () => {
    const failed: JobStatus = {
      jobId: 'j1',
      state: 'failed',
      total: 1,
      succeeded: 0,
      failed: 1,
      error: HOSTILE,
      code: HOSTILE,
    };
    expectInert(formatProgress(failed), 1);
    expectInert(runSummary(failed, 'iris', undefined).line, 1);
    expectInert(
      cancelSummary(
        'j1',
        { status: { ...failed, state: HOSTILE as never }, requested: true },
        formatProgress(failed),
      ).line,
      1,
    );
  });
});

describe('the commands against a service that stored hostile text', () => {
  const record = {
    captureData: { endpointInput: { data: HOSTILE, encoding: 'JSON' } },
    eventMetadata: { inferenceId: HOSTILE, inferenceTime: '2026-01-01T00:00:00Z' },
    version: 1,
    alias: 'prod',
    route: 'alias',
    status: 200,
  };
  const versions = { versions: [{ name: 'iris', version: 1, status: 'READY', description: HOSTILE }] };
  const models = { models: [{ name: 'iris', latestVersion: 1, aliases: { prod: 1 }, description: HOSTILE }] };
  const history = {
    history: [
      {
        alias: 'prod',
        version: 1,
        previousVersion: null,
        at: '2026-01-01T00:00:00Z',
        actor: HOSTILE,
        reason: HOSTILE,
      },
    ],
  };
  const rollout = {
    name: 'iris',
    alias: 'prod',
    id: 'r1234567',
    version: 2,
    fromVersion: 1,
    status: 'aborted',
    step: 0,
    steps: [{ weight: 10, bakeSeconds: 0 }],
    actor: HOSTILE,
    endedReason: HOSTILE,
  };
  const refusal = { error: `unknown inference id '${HOSTILE}'`, code: 'INVALID_FEEDBACK' };
  let api: Awaited<ReturnType<typeof startFakeApi>>;
  beforeAll(async () => {
    api = await startFakeApi({
      'GET /models/iris/capture': { status: 200, body: { records: [record] } },
      'GET /models/iris/versions': { status: 200, body: versions },
      'GET /models': { status: 200, body: models },
      'GET /models/iris/aliases/prod/history': { status: 200, body: history },
      'GET /models/iris/aliases/prod/rollout': { status: 200, body: rollout },
      'POST /v2/models/iris/feedback': { status: 400, body: refusal },
    });
  });
  afterAll(() => api.stop());

  const cases: [string[], unknown, number][] = [
    [['capture', 'iris'], [record], 2],
    [['versions', 'iris'], versions, 2],
    [['models'], models, 2],
    [['history', 'iris'], history, 2],
    [['rollout', 'status', 'iris'], rollout, 5],
  ];

  it.each(cases)(
    'maas %s: escapes on the terminal, the exact text with --json',
    async (args, body, lines) => {
      const human = await cliAt(api.url, ...args);
      expect(human.code).toBe(0);
      expectInert(human.out, lines);
      expect(human.out).toContain(SHOWN);
      const json = await cliAt(api.url, '--json', ...args);
      expect(json.code).toBe(0);
      expectInert(json.out);
      expect(JSON.parse(json.out)).toEqual(body);
    },
  );

  it('an error message that echoes the caller text is printed escaped; --json prints its body exactly', async () => {
    const human = await cliAt(api.url, 'feedback', 'iris', '--id', 'x', '--label', 'setosa');
    expect(human.code).toBe(1);
    expectInert(human.err, 1);
    expect(human.err).toContain(SHOWN);
    const json = await cliAt(api.url, '--json', 'feedback', 'iris', '--id', 'x', '--label', 'setosa');
    expect(json.code).toBe(1);
    expectInert(json.out);
    expect(JSON.parse(json.out)).toEqual(refusal);
    expectInert(json.err, 1);
  });
});

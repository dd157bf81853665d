/**
 * Shadow traffic over fakes: the worker's use case (`runShadow`: comparison, failures counted and never thrown,
 * the captured shadow record, `onComparison`), the worker handler on `shadow` messages (a failed shadow is done, a
 * malformed message is retried), the mirrors (the 256 KiB limit, SQS SendMessage as sent) and the EMF documents of a
 * comparison.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EmfLineSink } from '../../functions/adapters/emf-lines';
import { EmfMetricsSink } from '../../functions/adapters/emf-metrics';
import { PrometheusMetricsSink } from '../../functions/adapters/prometheus-metrics';
import {
  QueueShadowMirror,
  ShadowMessageTooLargeError,
  SqsShadowMirror,
  shadowMessageBody,
} from '../../functions/adapters/shadow-mirror';
import { createInferenceObserver } from '../../functions/app/observe';
import { isRetryableError, runShadow, type ShadowWorkerDeps } from '../../functions/app/shadow';
import { SHADOW } from '../../functions/contract/observability';
import type { WorkMessage } from '../../functions/domain/async';
import {
  MalformedMessageError,
  parseWorkMessage,
  type ShadowMirrorMessage,
} from '../../functions/domain/async';
import type { CaptureConfig } from '../../functions/domain/capture';
import { compareOutputs, MISMATCH_ABS_DIFF, type ShadowComparison } from '../../functions/domain/divergence';
import { ConflictError, UnavailableError } from '../../functions/domain/errors';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import {
  AlreadyInProgressError,
  type IdempotencyGuard,
  type ShadowMirror,
} from '../../functions/ports/events';
import type { InferenceReport, ShadowMirrorFailure } from '../../functions/ports/telemetry';
import { MemoryGuard, RecordingQueue } from '../helpers/events-fakes';
import { silentLogger } from '../helpers/recording-logger';
import { sqsEvent as sqsEventOf } from '../helpers/sqs-event';
import { afterAnswer, until } from '../helpers/until';

const REQUEST = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] };

const message = (extra: Partial<ShadowMirrorMessage> = {}): ShadowMirrorMessage => ({
  type: 'shadow',
  model: 'iris',
  alias: 'prod',
  servedVersion: 1,
  shadowVersion: 2,
  inferenceId: 'id-1',
  at: '2026-01-01T00:00:00.000Z',
  requestText: JSON.stringify(REQUEST),
  answerText: JSON.stringify({
    model_name: 'iris',
    model_version: '1',
    outputs: [{ name: 'p', datatype: 'FP32', shape: [1, 2], data: [0.25, 0.75] }],
  }),
  ...extra,
});

function deps(infer: () => Promise<unknown>, capture?: CaptureConfig) {
  const comparisons: ShadowComparison[] = [];
  const lines: { version: number; line: Record<string, unknown> }[] = [];
  const handed: ShadowComparison[] = [];
  const d: ShadowWorkerDeps = {
    predictor: {
      infer: infer as never,
      resolve: async (_name, ref) => ({ version: { version: Number(ref) || 1 } }) as never,
      capture: () => capture,
    },
    metrics: { inference: () => {}, operation: () => {}, shadow: (c) => comparisons.push(c) },
    capture: { write: (_m, version, line) => void lines.push({ version, line: JSON.parse(line) }) },
    onComparison: async (c) => {
      handed.push(c);
    },
    newId: () => 'event-1',
  };
  return { d, comparisons, lines, handed };
}

const shadowAnswer = (data: number[]) => ({
  model_name: 'iris',
  model_version: '2',
  id: 'x',
  outputs: [{ name: 'p', datatype: 'FP32', shape: [1, 2], data }],
});

describe('runShadow', () => {
  it('runs the request on the shadow version by number, compares, reports, captures the pair, hands it on', async () => {
    const calls: unknown[][] = [];
    const { d, comparisons, lines, handed } = deps(
      async (...args: unknown[]) => {
        calls.push(args);
        return shadowAnswer([0.75, 0.25]);
      },
      { samplePercent: 100, input: true, output: true },
    );
    const c = await runShadow(d, message());
    // Replayed with the mirrored inference id when it had none: the shadow's answer carries the same id.
    expect(calls).toEqual([['iris', '2', { ...REQUEST, id: 'id-1' }]]);
    expect(c).toEqual({
      model: 'iris',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      inferenceId: 'id-1',
      at: '2026-01-01T00:00:00.000Z',
      outputs: [
        {
          output: 'p',
          rows: 1,
          agreeingRows: 0,
          argmaxAgreement: 0,
          maxAbsDiff: 0.5,
          klDivergence: expect.closeTo(0.25 * Math.log(1 / 3) + 0.75 * Math.log(3), 6),
        },
      ],
    });
    expect(comparisons).toEqual([c]);
    expect(handed).toEqual([c]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      version: 2,
      line: {
        eventMetadata: { eventId: 'event-1', inferenceId: 'id-1' },
        model: 'iris',
        version: 2,
        alias: 'prod',
        route: 'shadow',
        status: 200,
      },
    });
  });

  it('captures nothing when the alias does not capture or the id is not sampled', async () => {
    const none = deps(async () => shadowAnswer([0.25, 0.75]));
    await runShadow(none.d, message());
    expect(none.lines).toHaveLength(0);
    const zero = deps(async () => shadowAnswer([0.25, 0.75]), {
      samplePercent: 0,
      input: true,
      output: true,
    });
    await runShadow(zero.d, message());
    expect(zero.lines).toHaveLength(0);
  });

  it('a shadow that fails (not READY, a model that throws) is a failed comparison, counted, never thrown', async () => {
    for (const [error, code] of [
      [new ConflictError('version 2 is ARCHIVED', 'VERSION_NOT_READY'), 'VERSION_NOT_READY'],
      [new Error('onnxruntime: bad reshape'), 'INTERNAL'],
    ] as const) {
      const { d, comparisons, lines, handed } = deps(() => Promise.reject(error), {
        samplePercent: 100,
        input: true,
        output: true,
      });
      const c = await runShadow(d, message());
      expect(c).toMatchObject({ failed: true, error: code, outputs: [], shadowVersion: 2 });
      expect(comparisons).toEqual([c]);
      expect(handed).toEqual([c]);
      expect(lines).toHaveLength(0);
    }
  });

  it("compares the versions' post-processing outputs as such (no argmax rows), the model's as before", async () => {
    const answer = (p: number[], argmax: number) => ({
      model_name: 'iris',
      outputs: [
        { name: 'p', datatype: 'FP32', shape: [1, 2], data: p },
        { name: 'argmax', datatype: 'INT64', shape: [1], data: [argmax] },
        { name: 'topk_scores', datatype: 'FP32', shape: [1, 2], data: [...p].sort((a, b) => b - a) },
      ],
    });
    const { d: base, handed } = deps(async () => answer([0.52, 0.48], 0));
    const resolved: string[] = [];
    // The shadow version declares argmax and top-k; the served one, archived since, cannot be resolved.
    const d: ShadowWorkerDeps = {
      ...base,
      predictor: {
        ...base.predictor,
        resolve: async (_name: string, ref?: string) => {
          resolved.push(String(ref));
          if (ref === '1') throw new ConflictError('version 1 is ARCHIVED', 'VERSION_NOT_READY');
          return { extraOutputs: ['argmax', 'topk_indices', 'topk_scores'] } as never;
        },
      },
    };
    const c = await runShadow(d, message({ answerText: JSON.stringify(answer([0.48, 0.52], 1)) }));
    expect(c?.failed).toBeUndefined();
    // The shadow version's declaration, then the served one's (then the capture's resolutions).
    expect(resolved.slice(0, 2)).toEqual(['2', '1']);
    expect(c?.outputs).toEqual([
      expect.objectContaining({ output: 'p', rows: 1, agreeingRows: 0 }),
      { output: 'argmax', rows: 1, maxAbsDiff: 1, postprocess: true },
      expect.objectContaining({ output: 'topk_scores', rows: 1, postprocess: true }),
    ]);
    expect(c?.outputs[2]?.agreeingRows).toBeUndefined();
    expect(handed).toEqual([c]);
  });

  it('neither a failing metrics sink, capture sink nor onComparison makes it throw', async () => {
    const { d } = deps(async () => shadowAnswer([0.25, 0.75]), {
      samplePercent: 100,
      input: true,
      output: true,
    });
    const c = await runShadow(
      {
        ...d,
        metrics: {
          inference: () => {},
          operation: () => {},
          shadow: () => {
            throw new Error('x');
          },
        },
        capture: { write: () => Promise.reject(new Error('s3 down')) },
        onComparison: () => Promise.reject(new Error('table down')),
      },
      message(),
    );
    expect(c?.outputs[0]?.maxAbsDiff).toBe(0);
  });
});

/** An SQS event of `bodies` (ids m0, m1, …), each received `receiveCount` times. */
const sqsEvent = (bodies: string[], receiveCount = '1') =>
  sqsEventOf(bodies.map((body, i) => ({ id: `m${i}`, body, receiveCount: Number(receiveCount) })));

describe('the worker handler on shadow messages', () => {
  it('a failed shadow is done (not retried); a malformed shadow message is retried', async () => {
    const { d, comparisons } = deps(() => Promise.reject(new Error('boom')));
    const handler = createAsyncWorkerHandler({
      worker: { blobs: {} as never, predictor: {} as never },
      batch: {} as never,
      shadow: d,
      logger: silentLogger,
    });
    const malformed = JSON.stringify({ ...message(), shadowVersion: 0 });
    const out = await handler(sqsEvent([JSON.stringify(message()), malformed]), {
      getRemainingTimeInMillis: () => 60_000,
    });
    expect(out.batchItemFailures).toEqual([{ itemIdentifier: 'm1' }]);
    expect(comparisons).toHaveLength(1);
    expect(comparisons[0]?.failed).toBe(true);
  });

  it('parses as a work message: the request and answer as sent', () => {
    expect(parseWorkMessage(JSON.stringify(message()))).toEqual(message());
    expect(() => parseWorkMessage(JSON.stringify({ ...message(), answerText: undefined }))).toThrow();
    expect(() => parseWorkMessage(JSON.stringify({ ...message(), model: 'bad name!' }))).toThrow();
  });
});

describe('shadow mirrors', () => {
  const big = (bytes: number) =>
    message({
      requestText: JSON.stringify({
        inputs: [{ name: 'x', datatype: 'BYTES', shape: [1], data: ['a'.repeat(bytes)] }],
      }),
    });

  it('refuse a message over 256 KiB without sending it (multi-byte characters counted as bytes)', async () => {
    const queue = new RecordingQueue();
    const mirror = new QueueShadowMirror(queue);
    await mirror.mirror(message());
    expect(queue.sent as WorkMessage[]).toEqual([message()]);
    await expect(mirror.mirror(big(SHADOW.maxMessageBytes))).rejects.toBeInstanceOf(
      ShadowMessageTooLargeError,
    );
    expect(queue.sent).toHaveLength(1);
    const overhead = shadowMessageBody(big(0)).length;
    expect(() => shadowMessageBody(big(SHADOW.maxMessageBytes - overhead))).not.toThrow();
    expect(() => shadowMessageBody(big(SHADOW.maxMessageBytes - overhead + 1))).toThrow(
      ShadowMessageTooLargeError,
    );
    // 'é' is two UTF-8 bytes: half as many characters exceed the limit.
    const accents = message({
      requestText: JSON.stringify({
        inputs: [
          { name: 'x', datatype: 'BYTES', shape: [1], data: ['é'.repeat(SHADOW.maxMessageBytes / 2)] },
        ],
      }),
    });
    expect(() => shadowMessageBody(accents)).toThrow(ShadowMessageTooLargeError);
  });

  it('SQS: one signed SendMessage of the message to the queue URL (JSON protocol)', async () => {
    const calls: { headers?: Record<string, string>; body?: string; path: string }[] = [];
    const mirror = new SqsShadowMirror({
      queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/maas-work',
      client: {
        send: async (call, read) => {
          calls.push(call);
          return read({
            statusCode: 200,
            headers: {},
            body: Readable.from([Buffer.from('{"MessageId":"m-1"}')]),
          } as never) as never;
        },
      },
    });
    await mirror.mirror(message());
    expect(calls).toHaveLength(1);
    expect(calls[0]?.headers).toEqual({
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': 'AmazonSQS.SendMessage',
    });
    const body = JSON.parse(calls[0]!.body!);
    expect(body.QueueUrl).toBe('https://sqs.eu-west-1.amazonaws.com/123456789012/maas-work');
    expect(parseWorkMessage(body.MessageBody)).toEqual(message());
    await expect(mirror.mirror(big(SHADOW.maxMessageBytes))).rejects.toBeInstanceOf(
      ShadowMessageTooLargeError,
    );
    expect(calls).toHaveLength(1);
  });
});

describe('EMF documents of shadow traffic', () => {
  it('a comparison: ShadowRequests on {model, alias, route} and {model, version}; divergence per output', () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new EmfMetricsSink({
      serviceName: 'maas-async-worker',
      output: (l) => lines.push(JSON.parse(l)),
    });
    sink.shadow({
      model: 'iris',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      inferenceId: 'id-1',
      outputs: [
        { output: 'p', rows: 2, agreeingRows: 1, argmaxAgreement: 0.5, maxAbsDiff: 0.25, klDivergence: 0.1 },
        { output: 'label', rows: 2, maxAbsDiff: 1 },
      ],
    });
    expect(lines).toHaveLength(3);
    const metrics = (d: Record<string, unknown>) =>
      (
        d._aws as {
          CloudWatchMetrics: { Metrics: { Name: string; Unit: string }[]; Dimensions: string[][] }[];
        }
      ).CloudWatchMetrics[0]!;
    expect(metrics(lines[0]!).Metrics).toEqual([{ Name: 'ShadowRequests', Unit: 'Count' }]);
    expect(metrics(lines[0]!).Dimensions).toEqual([
      ['model', 'alias', 'route'],
      ['model', 'version'],
    ]);
    expect(lines[0]).toMatchObject({
      model: 'iris',
      alias: 'prod',
      route: 'shadow',
      version: '2',
      ShadowRequests: 1,
    });
    expect(metrics(lines[1]!).Dimensions).toEqual([
      ['model', 'alias', 'route'],
      ['model', 'alias', 'route', 'output'],
      ['model', 'version'],
    ]);
    expect(lines[1]).toMatchObject({
      output: 'p',
      ShadowArgmaxAgreement: 0.5,
      ShadowMaxAbsDiff: 0.25,
      ShadowKlDivergence: 0.1,
    });
    expect(metrics(lines[1]!).Metrics).toContainEqual({ Name: 'ShadowKlDivergence', Unit: 'None' });
    expect(lines[2]).toMatchObject({ output: 'label', ShadowMaxAbsDiff: 1 });
    expect(lines[2]!.ShadowArgmaxAgreement).toBeUndefined();
    // A failed shadow: ShadowRequests and ShadowErrors, no divergence.
    lines.length = 0;
    sink.shadow({
      model: 'iris',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      inferenceId: 'id-2',
      outputs: [],
      failed: true,
      error: 'VERSION_NOT_READY',
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ ShadowRequests: 1, ShadowErrors: 1, error: 'VERSION_NOT_READY' });
  });

  it('ShadowMirrorErrors of a mirror not sent: its own document, the template writes what Powertools writes', () => {
    const failure = {
      model: 'iris',
      version: 1,
      alias: 'prod',
      route: 'canary' as const,
      inferenceId: 'i',
    };
    const out: Record<string, unknown>[][] = [[], []];
    new EmfMetricsSink({ serviceName: 's', output: (l) => out[0]!.push(JSON.parse(l)) }).shadowMirrorFailed(
      failure,
    );
    new EmfLineSink({ serviceName: 's', output: (l) => out[1]!.push(JSON.parse(l)) }).shadowMirrorFailed(
      failure,
    );
    const strip = (d: Record<string, unknown>) => ({ ...d, _aws: { ...(d._aws as object), Timestamp: 0 } });
    expect(out[0]).toHaveLength(1);
    expect(out[1]!.map(strip)).toEqual(out[0]!.map(strip));
    expect(out[1]![0]).toMatchObject({
      ShadowMirrorErrors: 1,
      model: 'iris',
      version: '1',
      alias: 'prod',
      route: 'canary',
      inferenceId: 'i',
    });
    expect(out[1]![0]!.Requests).toBeUndefined();
    expect(out[1]![0]!.ShadowErrors).toBeUndefined();
  });

  it('a mismatch (1e100) is a value CloudWatch accepts (within ±2^360)', () => {
    const lines: Record<string, unknown>[] = [];
    new EmfMetricsSink({ serviceName: 'w', output: (l) => lines.push(JSON.parse(l)) }).shadow({
      model: 'm',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      inferenceId: 'i',
      outputs: compareOutputs(
        [{ name: 'y', datatype: 'FP32', shape: [2, 2], data: [1, 0, 0, 1] }],
        [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: [1, 0] }],
      ),
    });
    const value = lines[1]!.ShadowMaxAbsDiff as number;
    expect(value).toBe(MISMATCH_ABS_DIFF);
    expect(Math.abs(value)).toBeLessThan(2 ** 360);
  });

  it('Prometheus: ShadowMirrorErrors on the answered request, ShadowErrors on the shadow version', async () => {
    const sink = new PrometheusMetricsSink();
    sink.shadowMirrorFailed({ model: 'iris', version: 1, alias: 'prod', route: 'stable' });
    sink.shadow({ ...comparisonOf(), failed: true, error: 'X', outputs: [] });
    const text = await sink.text();
    expect(text).toMatch(
      /maas_shadow_mirror_errors_total\{model="iris",version="1",alias="prod",route="stable"\} 1/,
    );
    expect(text).toMatch(
      /maas_shadow_errors_total\{model="iris",version="2",alias="prod",route="shadow"\} 1/,
    );
  });
});

const comparisonOf = (): ShadowComparison => ({
  model: 'iris',
  alias: 'prod',
  servedVersion: 1,
  shadowVersion: 2,
  inferenceId: 'i',
  outputs: [],
});

describe('the worker: 64-bit integers, redeliveries, dependencies unavailable', () => {
  it('parses the request text as the predict path does: INT64 beyond 2^53 exact', async () => {
    const text =
      '{"id":"abc","inputs":[{"name":"ids","datatype":"INT64","shape":[1],"data":[9007199254740993]}]}';
    const seen: unknown[] = [];
    const { d } = deps(async (...args: unknown[]) => {
      seen.push(args[2]);
      return shadowAnswer([0.25, 0.75]);
    });
    const c = await runShadow(d, message({ requestText: text }));
    expect(c?.failed).toBeUndefined();
    expect((seen[0] as { inputs: { data: unknown[] }[] }).inputs[0]!.data).toEqual(['9007199254740993']);
  });

  it('an answer that is not an OIP response is a malformed message (thrown, nothing reported)', async () => {
    const { d, comparisons, handed } = deps(async () => shadowAnswer([0.25, 0.75]));
    await expect(runShadow(d, message({ answerText: '{"outputs":3}' }))).rejects.toBeInstanceOf(
      MalformedMessageError,
    );
    await expect(runShadow(d, message({ answerText: 'nope' }))).rejects.toBeInstanceOf(MalformedMessageError);
    expect(comparisons).toHaveLength(0);
    expect(handed).toHaveLength(0);
  });

  it('the same mirrored request delivered twice is compared, reported and handed on once', async () => {
    let runs = 0;
    const { d, comparisons, handed } = deps(async () => {
      runs++;
      return shadowAnswer([0.75, 0.25]);
    });
    const guarded = { ...d, guard: new MemoryGuard() };
    const first = await runShadow(guarded, message());
    const again = await runShadow(guarded, message());
    expect(again).toEqual(first);
    expect(runs).toBe(1);
    expect(comparisons).toHaveLength(1);
    expect(handed).toHaveLength(1);
    // Another request (answered at another time, even with the same client id) is compared.
    await runShadow(guarded, message({ at: '2026-01-01T00:00:01.000Z' }));
    expect(handed).toHaveLength(2);
  });

  it('a delivery while another compares the same request is skipped', async () => {
    const { d, handed } = deps(async () => shadowAnswer([0.75, 0.25]));
    const guard: IdempotencyGuard = {
      once: () => Promise.reject(new AlreadyInProgressError('busy')),
    };
    expect(await runShadow({ ...d, guard }, message())).toBeUndefined();
    expect(handed).toHaveLength(0);
  });

  it('a dependency unavailable is retried (thrown, nothing reported), recorded as failed on the last attempt', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), {
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 400 },
    });
    for (const error of [new UnavailableError('s3 down'), throttled]) {
      const { d, comparisons, handed } = deps(() => Promise.reject(error));
      const guarded = { ...d, guard: new MemoryGuard() };
      await expect(runShadow(guarded, message())).rejects.toBe(error);
      expect(comparisons).toHaveLength(0);
      expect(handed).toHaveLength(0);
      const c = await runShadow(guarded, message(), { lastAttempt: true });
      expect(c).toMatchObject({ failed: true, outputs: [] });
      expect(comparisons).toEqual([c]);
      expect(handed).toEqual([c]);
    }
    expect(isRetryableError(new ConflictError('x', 'VERSION_NOT_READY'))).toBe(false);
    expect(isRetryableError(new Error('bad reshape'))).toBe(false);
    expect(isRetryableError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
  });

  it('onComparison unavailable: retried before anything is reported; any other failure is logged', async () => {
    const { d, comparisons } = deps(async () => shadowAnswer([0.75, 0.25]));
    let calls = 0;
    const flaky = {
      ...d,
      guard: new MemoryGuard(),
      onComparison: async () => {
        if (++calls === 1) throw new UnavailableError('table throttled');
      },
    };
    await expect(runShadow(flaky, message())).rejects.toBeInstanceOf(UnavailableError);
    expect(comparisons).toHaveLength(0);
    await runShadow(flaky, message());
    expect(calls).toBe(2);
    expect(comparisons).toHaveLength(1);
  });

  it('the handler: retried on an early receive, done (failed comparison) on the last one', async () => {
    const { d, comparisons } = deps(() => Promise.reject(new UnavailableError('s3 down')));
    const handler = createAsyncWorkerHandler({
      worker: { blobs: {} as never, predictor: {} as never },
      batch: {} as never,
      shadow: d,
      maxReceiveCount: 3,
      logger: silentLogger,
    });
    const budget = { getRemainingTimeInMillis: () => 60_000 };
    const early = await handler(sqsEvent([JSON.stringify(message())], '1'), budget);
    expect(early.batchItemFailures).toEqual([{ itemIdentifier: 'm0' }]);
    expect(comparisons).toHaveLength(0);
    const last = await handler(sqsEvent([JSON.stringify(message())], '3'), budget);
    expect(last.batchItemFailures).toEqual([]);
    expect(comparisons).toHaveLength(1);
    expect(comparisons[0]).toMatchObject({ failed: true, error: 'UNAVAILABLE' });
  });
});

describe('the observer mirrors', () => {
  const answered = (requestText: string, responseText = '{"outputs":[]}', id = 'abc') => ({
    model: 'm',
    ref: 'prod',
    obs: {
      inferenceId: id,
      served: { version: { version: 1 } } as never,
      shadow: { version: 2, percent: 100 },
    },
    status: 200,
    startedAt: performance.now(),
    payloadBytes: requestText.length,
    requestText,
    requestContentType: 'application/json',
    responseText,
  });

  function observed(mirror: ShadowMirror, shadowBudgetMs?: number) {
    const reports: { at: number; r: InferenceReport }[] = [];
    const failures: { at: number; f: ShadowMirrorFailure }[] = [];
    const t0 = performance.now();
    const observer = createInferenceObserver({
      metrics: {
        inference: (r) => reports.push({ at: performance.now() - t0, r }),
        operation: () => {},
        shadowMirrorFailed: (f) => failures.push({ at: performance.now() - t0, f }),
      },
      captureOf: () => undefined,
      mirror,
      ...(shadowBudgetMs !== undefined ? { shadowBudgetMs } : {}),
    });
    return { observer, reports, failures };
  }
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const BUDGET_MS = 30;

  it('the request and answer texts go as they were: INT64 beyond 2^53 exact on the worker', async () => {
    const queue = new RecordingQueue();
    const o = observed(new QueueShadowMirror(queue)).observer;
    const text =
      '{"id":"abc","inputs":[{"name":"ids","datatype":"INT64","shape":[1],"data":[9007199254740993]}]}';
    const answer = '{"outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1]}]}';
    o.answered(answered(text, answer));
    await until(() => queue.sent.length > 0);
    const sent = queue.sent as ShadowMirrorMessage[];
    expect(sent).toHaveLength(1);
    // Through the queue's JSON and back, the worker parses the request text as the predict path does.
    const m = parseWorkMessage(JSON.stringify(sent[0])) as ShadowMirrorMessage;
    expect(m.requestText).toBe(text);
    expect(m.answerText).toBe(answer);
    const seen: unknown[] = [];
    const { d } = deps(async (...args: unknown[]) => {
      seen.push(args[2]);
      return { outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: [1] }] };
    });
    const c = await runShadow(d, m);
    expect(c).toMatchObject({ outputs: [{ output: 'y', maxAbsDiff: 0 }] });
    expect((seen[0] as { inputs: { data: unknown[] }[] }).inputs[0]!.data).toEqual(['9007199254740993']);
  });

  it('texts over the limit are refused before a message is made, and counted on their own', async () => {
    let calls = 0;
    const { observer, reports, failures } = observed({
      mirror: () => {
        calls++;
      },
    });
    const big = JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [0] }],
    }).padEnd(SHADOW.maxMessageBytes + 1, ' ');
    observer.answered(answered(big));
    // Refused and counted on the same turn the mirror would have been called on.
    await until(() => failures.length > 0);
    expect(calls).toBe(0);
    expect(failures.map((x) => x.f)).toEqual([
      { model: 'm', version: 1, alias: 'prod', route: 'stable', inferenceId: 'abc' },
    ]);
    expect(reports).toHaveLength(1);
  });

  it('the report is written at once; a slow send that succeeds is no error', async () => {
    let settledAt = 0;
    const t0 = performance.now();
    const { observer, reports, failures } = observed({
      mirror: () =>
        new Promise<void>((r) =>
          setTimeout(() => {
            settledAt = performance.now() - t0;
            r();
          }, 80),
        ),
    });
    observer.answered(answered('{"inputs":[]}'));
    // Written synchronously, as an unmirrored request's report.
    expect(reports).toHaveLength(1);
    expect(reports[0]!.r.status).toBe(200);
    // Its budget (at least a second) starts after the send, so the send's end comes first however late timers
    // run; a success counted as an error would be counted as it settles, before the next turn.
    await until(() => settledAt > 0);
    await afterAnswer();
    expect(failures).toHaveLength(0);
    expect(SHADOW.budgetMs).toBeGreaterThanOrEqual(1000);
  });

  it('a mirror that rejects, throws or hangs past its budget is counted once, on its own', async () => {
    for (const mirror of [
      () => Promise.reject(new Error('down')),
      () => {
        throw new Error('boom');
      },
      () => new Promise<void>(() => {}),
    ]) {
      const { observer, reports, failures } = observed({ mirror }, BUDGET_MS);
      observer.answered(answered('{"inputs":[]}'));
      expect(reports).toHaveLength(1);
      await until(() => failures.length > 0);
      // Once: a timer started after the budget's, and longer, fires after it however late timers run; whatever the
      // budget's end would count has been counted by then.
      await wait(2 * BUDGET_MS);
      expect(failures).toHaveLength(1);
      expect(failures[0]!.f).toMatchObject({ model: 'm', version: 1, alias: 'prod', route: 'stable' });
      expect(reports).toHaveLength(1);
    }
  });
});

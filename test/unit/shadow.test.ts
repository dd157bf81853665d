/**
 * Shadow traffic over fakes: the worker's use case (`runShadow`: comparison, failures counted and never thrown,
 * the captured shadow record, `onComparison`), the worker handler on `shadow` messages (a failed shadow is done, a
 * malformed message is retried), the mirrors (the 256 KiB limit, SQS SendMessage as sent) and the EMF documents of a
 * comparison.
 */
import { Readable } from 'node:stream';
import type { SQSEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { EmfLineSink } from '../../functions/adapters/emf-lines';
import { EmfMetricsSink } from '../../functions/adapters/emf-metrics';
import {
  QueueShadowMirror,
  ShadowMessageTooLargeError,
  SqsShadowMirror,
  shadowMessageBody,
} from '../../functions/adapters/shadow-mirror';
import { runShadow, type ShadowWorkerDeps } from '../../functions/app/shadow';
import { SHADOW } from '../../functions/contract/observability';
import type { WorkMessage } from '../../functions/domain/async';
import { parseWorkMessage, type ShadowMirrorMessage } from '../../functions/domain/async';
import type { CaptureConfig } from '../../functions/domain/capture';
import type { ShadowComparison } from '../../functions/domain/divergence';
import { ConflictError } from '../../functions/domain/errors';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import { RecordingQueue } from '../helpers/events-fakes';
import { silentLogger } from '../helpers/recording-logger';

const message = (extra: Partial<ShadowMirrorMessage> = {}): ShadowMirrorMessage => ({
  type: 'shadow',
  model: 'iris',
  alias: 'prod',
  servedVersion: 1,
  shadowVersion: 2,
  inferenceId: 'id-1',
  at: '2026-01-01T00:00:00.000Z',
  request: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] },
  answer: {
    model_name: 'iris',
    model_version: '1',
    outputs: [{ name: 'p', datatype: 'FP32', shape: [1, 2], data: [0.25, 0.75] }],
  },
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
    expect(calls).toEqual([['iris', '2', message().request]]);
    expect(c).toEqual({
      model: 'iris',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      inferenceId: 'id-1',
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
    expect(c.outputs[0]?.maxAbsDiff).toBe(0);
  });
});

function sqsEvent(bodies: string[]): SQSEvent {
  return {
    Records: bodies.map((body, i) => ({
      messageId: `m${i}`,
      receiptHandle: `m${i}`,
      body,
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: '0',
        SenderId: 'x',
        ApproximateFirstReceiveTimestamp: '0',
      },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:1:q',
      awsRegion: 'us-east-1',
    })),
  };
}

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
    expect(() => parseWorkMessage(JSON.stringify({ ...message(), answer: {} }))).toThrow();
    expect(() => parseWorkMessage(JSON.stringify({ ...message(), model: 'bad name!' }))).toThrow();
  });
});

describe('shadow mirrors', () => {
  const big = (bytes: number) =>
    message({
      request: { inputs: [{ name: 'x', datatype: 'BYTES', shape: [1], data: ['a'.repeat(bytes)] }] },
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
      request: {
        inputs: [
          { name: 'x', datatype: 'BYTES', shape: [1], data: ['é'.repeat(SHADOW.maxMessageBytes / 2)] },
        ],
      },
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

  it('ShadowErrors of an inference: the template writes what Powertools writes', () => {
    const report = {
      model: 'iris',
      version: 1,
      alias: 'prod',
      route: 'stable' as const,
      status: 200,
      latencyMs: 1,
      coldStart: false,
      payloadBytes: 10,
      shadowErrors: 1,
      inferenceId: 'i',
    };
    const out: Record<string, unknown>[][] = [[], []];
    new EmfMetricsSink({ serviceName: 's', output: (l) => out[0]!.push(JSON.parse(l)) }).inference(report);
    new EmfLineSink({ serviceName: 's', output: (l) => out[1]!.push(JSON.parse(l)) }).inference(report);
    const strip = (d: Record<string, unknown>) => ({ ...d, _aws: { ...(d._aws as object), Timestamp: 0 } });
    expect(out[1]!.map(strip)).toEqual(out[0]!.map(strip));
    expect(out[1]![0]).toMatchObject({ ShadowErrors: 1 });
  });
});

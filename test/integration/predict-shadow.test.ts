/**
 * Shadow traffic end to end, over DynamoDB Local, s3rver and onnxruntime: the predict handler mirrors through the
 * work queue (`QueueShadowMirror` over the in-process queue, as the local service wires it), the worker handler runs
 * the mirrored request on the shadow version and compares. The caller's answer, status and latency never depend on
 * the shadow; the divergence of a deliberately different model is computed as by hand; the shadow's percent is
 * honoured; a shadow split makes no registry call on the warm path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrometheusMetricsSink } from '../../functions/adapters/prometheus-metrics';
import { QueueShadowMirror } from '../../functions/adapters/shadow-mirror';
import { createPredictor } from '../../functions/app/predict';
import { ROUTE_HEADER, ROUTING_KEY_HEADER } from '../../functions/contract/observability';
import type { ShadowMirrorMessage } from '../../functions/domain/async';
import type { ShadowComparison } from '../../functions/domain/divergence';
import { isShadowed } from '../../functions/domain/routing';
import type { AliasRouting } from '../../functions/domain/types';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import { createEventFlows } from '../../functions/handlers/event-deps';
import { createPredictHandler } from '../../functions/handlers/predict';
import { InProcessQueue } from '../../functions/local/in-process-queue';
import { buildMlp } from '../../functions/local/onnx-builder';
import type { ShadowMirror } from '../../functions/ports/events';
import type {
  CaptureSink,
  InferenceReport,
  MetricsSink,
  ShadowMirrorFailure,
} from '../../functions/ports/telemetry';
import { apiEvent, parseResult } from '../helpers/apigw';
import { countCalls } from '../helpers/counting-proxy';
import { createPredictTestEnv, type PredictTestEnv } from '../helpers/predict-env';
import { recordingLogger } from '../helpers/recording-logger';
import { afterAnswer, until } from '../helpers/until';

/** `probabilities = softmax(x · W)` on `[batch, 2]`. */
const softmax2 = (w: number[]) =>
  buildMlp({
    inFeatures: 2,
    layers: [2],
    softmax: true,
    inputName: 'x',
    outputName: 'p',
    weights: [{ w, b: [0, 0] }],
  });

let env: PredictTestEnv;
const reports: InferenceReport[] = [];
const comparisons: ShadowComparison[] = [];
const captured: { version: number; record: Record<string, unknown> }[] = [];
const recording: MetricsSink = {
  inference: (r) => reports.push(r),
  operation: () => {},
  shadow: (c) => comparisons.push(c),
};
const prometheus = new PrometheusMetricsSink();
const both: MetricsSink = {
  inference: (r) => {
    recording.inference(r);
    prometheus.inference(r);
  },
  operation: () => {},
  shadow: (c) => {
    recording.shadow?.(c);
    prometheus.shadow(c);
  },
};
const capture: CaptureSink = {
  write: (_model, version, line) => {
    captured.push({ version, record: JSON.parse(line) as Record<string, unknown> });
  },
};
const onComparison: ShadowComparison[] = [];
let queue: InProcessQueue;
let handler: ReturnType<typeof createPredictHandler>;

// Rows [[0, 1], [0, 0]]: v1 (identity) answers softmax(x), v2 (swapped weights) softmax of the swapped logits.
const X = { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [0, 1, 0, 0] }] };
const E = Math.E;
const P = [1 / (1 + E), E / (1 + E)]; // 0.2689…, 0.7310…

beforeAll(async () => {
  env = await createPredictTestEnv();
  await env.register('shadowed', softmax2([1, 0, 0, 1])); // v1, prod
  await env.register('shadowed', softmax2([0, 1, 1, 0])); // v2: the rows' classes swapped
  await env.register('shadowed', softmax2([1, 0, 0, 1])); // v3: archived below
  // The predict path and the worker share one predictor (as the local service composes them), over the registry
  // repository's reads of the table.
  const predictor = createPredictor({
    repo: env.repo,
    store: env.artifacts,
    sessions: env.sessions,
    clock: { now: () => new Date(env.now) },
    aliasTtlMs: 5000,
  });
  queue = new InProcessQueue({ visibilityTimeoutMs: 200 });
  const flows = createEventFlows({
    table: env.aws.table,
    bucket: env.aws.bucket,
    doc: env.aws.doc,
    s3: env.aws.s3,
    queue,
    predictor,
    metrics: both,
    capture,
    onComparison: async (c) => {
      onComparison.push(c);
    },
  });
  queue.attach(createAsyncWorkerHandler({ ...flows, logger: recordingLogger() }));
  handler = createPredictHandler({
    repo: env.repo,
    store: env.artifacts,
    sessions: env.sessions,
    predictor,
    metrics: both,
    capture,
    mirror: new QueueShadowMirror(queue),
  });
}, 60_000);
afterAll(async () => {
  queue?.detach();
  await env?.dispose();
});

async function route(routing: AliasRouting | null): Promise<void> {
  await env.repo.setAliasRouting({ name: 'shadowed', alias: 'prod', routing, actor: 'test' });
  env.now += 60_000; // past the alias cache
}

/**
 * Waits for the mirror of the request just answered to be on the queue (it is sent after the answer), then for the
 * worker to be done with everything queued. `sent`: the queue's count of sent messages before that request.
 */
async function compared(sent: number): Promise<void> {
  await until(() => queue.stats.sent > sent);
  await queue.drain();
}

async function call(h: typeof handler, body: object = X, key?: string) {
  return parseResult(
    await h(
      apiEvent('POST', '/v2/models/shadowed/infer', {
        body,
        ...(key ? { headers: { [ROUTING_KEY_HEADER]: key } } : {}),
      }),
    ),
  );
}

describe('shadow traffic, end to end through the work queue', () => {
  it('the caller gets the stable answer; the worker compares the shadow as computed by hand', async () => {
    await route({ shadow: { version: 2, percent: 100 } });
    await env.repo.setAliasCapture('shadowed', 'prod', { samplePercent: 100, input: true, output: true });
    const sent = queue.stats.sent;
    const r = await call(handler, { ...X, id: 'pair-1' });
    expect(r.status).toBe(200);
    expect(r.headers[ROUTE_HEADER]).toBe('stable');
    const body = r.body as { model_version: string; outputs: { data: number[] }[] };
    expect(body.model_version).toBe('1');
    const p = body.outputs[0]!.data;
    for (const [i, v] of [P[0]!, P[1]!, 0.5, 0.5].entries()) expect(p[i]).toBeCloseTo(v, 5);
    await compared(sent);
    expect(queue.deadLetters).toHaveLength(0);
    const c = comparisons.find((x) => x.inferenceId === 'pair-1');
    expect(c).toMatchObject({
      model: 'shadowed',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      outputs: [{ output: 'p', rows: 2, agreeingRows: 1, argmaxAgreement: 0.5 }],
    });
    expect(c?.failed).toBeUndefined();
    // Row 0: [0.2689, 0.7311] vs [0.7311, 0.2689]: |diff| 0.4621 = KL (ln(0.7311/0.2689) = 1); row 1: equal.
    const d = c!.outputs[0]!;
    expect(d.maxAbsDiff).toBeCloseTo(P[1]! - P[0]!, 5);
    expect(d.klDivergence).toBeCloseTo((P[1]! - P[0]!) / 2, 5);
    expect(onComparison.map((x) => x.inferenceId)).toContain('pair-1');
    // Captured pair: the stable record and the shadow's, with the same inference id.
    const pair = captured.filter(
      (x) => (x.record.eventMetadata as { inferenceId: string }).inferenceId === 'pair-1',
    );
    expect(pair.map((x) => [x.version, x.record.route]).sort()).toEqual([
      [1, 'stable'],
      [2, 'shadow'],
    ]);
    // Local metrics: the shadow's series, route shadow, the shadow version.
    const text = await prometheus.text();
    expect(text).toMatch(
      /maas_shadow_requests_total\{model="shadowed",version="2",alias="prod",route="shadow"\} [1-9]/,
    );
    expect(text).toMatch(
      /maas_shadow_argmax_agreement_sum\{model="shadowed",version="2",alias="prod",route="shadow",output="p"\} 0\.5/,
    );
    expect(text).toContain('maas_shadow_kl_divergence_count{');
    await env.repo.setAliasCapture('shadowed', 'prod', null);
  });

  it('a request without an id: the shadow answers with the inference id the caller got, and its record carries it', async () => {
    await route({ shadow: { version: 2, percent: 100 } });
    await env.repo.setAliasCapture('shadowed', 'prod', { samplePercent: 100, input: true, output: true });
    try {
      const sent = queue.stats.sent;
      const r = await call(handler, X);
      expect(r.status).toBe(200);
      const id = (r.body as { id?: string }).id;
      expect(id).toEqual(expect.any(String));
      await compared(sent);
      expect(queue.deadLetters).toHaveLength(0);
      expect(comparisons.find((x) => x.inferenceId === id)).toMatchObject({ shadowVersion: 2 });
      const records = captured.filter(
        (x) => (x.record.eventMetadata as { inferenceId: string }).inferenceId === id,
      );
      expect(records.map((x) => [x.version, x.record.route]).sort()).toEqual([
        [1, 'stable'],
        [2, 'shadow'],
      ]);
      // Both answers, as recorded, carry the inference id of their record (feedback joins on it).
      for (const x of records) {
        const output = (x.record.captureData as { endpointOutput: { data: string } }).endpointOutput;
        expect((JSON.parse(output.data) as { id?: string }).id, String(x.record.route)).toBe(id);
      }
      // The request is recorded as the caller sent it (without an id).
      const shadow = records.find((x) => x.record.route === 'shadow')!;
      const input = (shadow.record.captureData as { endpointInput: { data: string } }).endpointInput;
      expect(JSON.parse(input.data)).toEqual(X);
    } finally {
      await env.repo.setAliasCapture('shadowed', 'prod', null);
      env.now += 60_000; // past the alias cache
    }
  });

  it('a shadow version archived meanwhile: the caller notices nothing; a failed comparison, not retried', async () => {
    await route({ shadow: { version: 3, percent: 100 } });
    await env.repo.updateVersion('shadowed', 3, { status: 'ARCHIVED' });
    const sent = queue.stats.sent;
    const r = await call(handler, { ...X, id: 'archived-1' });
    expect(r.status).toBe(200);
    expect((r.body as { model_version: string }).model_version).toBe('1');
    await compared(sent);
    const c = comparisons.find((x) => x.inferenceId === 'archived-1');
    expect(c).toMatchObject({ failed: true, error: 'VERSION_NOT_READY', outputs: [], shadowVersion: 3 });
    expect(queue.deadLetters).toHaveLength(0);
    expect(await prometheus.text()).toMatch(
      /maas_shadow_errors_total\{model="shadowed",version="3",alias="prod",route="shadow"\} 1/,
    );
  });

  it('a mirror delivered twice (a resend, a redelivery) is compared and counted once', async () => {
    await route({ shadow: { version: 2, percent: 100 } });
    const sent = queue.stats.sent;
    const r = await call(handler, { ...X, id: 'twice-1' });
    expect(r.status).toBe(200);
    await compared(sent);
    const once = comparisons.filter((x) => x.inferenceId === 'twice-1');
    expect(once).toHaveLength(1);
    // The same message again, as SQS may deliver it.
    const m: ShadowMirrorMessage = {
      type: 'shadow',
      model: 'shadowed',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
      inferenceId: 'twice-1',
      at: once[0]!.at as string,
      requestText: JSON.stringify({ ...X, id: 'twice-1' }),
      answerText: JSON.stringify(r.body),
    };
    await queue.send(m);
    await queue.send(m);
    await queue.drain();
    expect(queue.deadLetters).toHaveLength(0);
    expect(comparisons.filter((x) => x.inferenceId === 'twice-1')).toHaveLength(1);
    expect(onComparison.filter((x) => x.inferenceId === 'twice-1')).toHaveLength(1);
  });

  it('INT64 beyond 2^53 reaches the shadow exact (the request travels as its text)', async () => {
    await route({ shadow: { version: 2, percent: 100 } });
    const seen: ShadowMirrorMessage[] = [];
    const h = createPredictHandler({
      repo: env.repo,
      store: env.artifacts,
      sessions: env.sessions,
      clock: { now: () => new Date(env.now) },
      mirror: { mirror: (m) => void seen.push(m) },
    });
    const text = `{"id":"big-int","inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[0,1]}],"parameters":{"n":9007199254740993}}`;
    const r = parseResult(await h(apiEvent('POST', '/v2/models/shadowed/infer', { body: text })));
    expect(r.status).toBe(200);
    await until(() => seen.length > 0);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.requestText).toBe(text);
  });

  it('a canary that is the shadow is not mirrored when it answers itself; the stable share is', async () => {
    await route({ canary: { version: 2, weight: 50 }, shadow: { version: 2, percent: 100 } });
    const before = queue.stats.sent;
    const served = { canary: 0, stable: 0 };
    for (let i = 0; i < 40; i++) {
      const r = await call(handler, X, `k-${i}`);
      served[r.headers[ROUTE_HEADER] as 'canary' | 'stable']++;
    }
    // The stable answers' mirrors; then one more turn, by which a canary answer's mirror would have been sent too.
    await until(() => queue.stats.sent - before >= served.stable);
    await afterAnswer();
    await queue.drain();
    expect(served.canary).toBeGreaterThan(0);
    expect(queue.stats.sent - before).toBe(served.stable);
  });
});

describe('the caller never depends on the mirror', () => {
  const BUDGET_MS = 30;
  const handlerWith = (mirror: ShadowMirror, metrics: MetricsSink) =>
    createPredictHandler({
      repo: env.repo,
      store: env.artifacts,
      sessions: env.sessions,
      clock: { now: () => new Date(env.now) },
      metrics,
      mirror,
      shadowBudgetMs: BUDGET_MS,
    });
  /**
   * Resolves after the budgets of the mirrors started so far are over, however late timers fire: a timer started
   * after theirs, and longer, fires after them. Whatever a budget's end would count has been counted by then.
   */
  const pastBudgets = () => new Promise((r) => setTimeout(r, 2 * BUDGET_MS));

  it('a mirror that never settles: the answer and its report at once; ShadowMirrorErrors once the budget is over', async () => {
    await route({ shadow: { version: 2, percent: 100 } });
    const seen: InferenceReport[] = [];
    const failed: ShadowMirrorFailure[] = [];
    const mirrored: string[] = [];
    const h = handlerWith(
      {
        mirror: (m) => {
          mirrored.push(m.inferenceId);
          return new Promise<void>(() => {});
        },
      },
      {
        inference: (r) => seen.push(r),
        operation: () => {},
        shadowMirrorFailed: (f) => failed.push(f),
      },
    );
    await call(h, { ...X, id: 'warm' }); // sessions loaded, alias cached
    const started = performance.now();
    const r = await call(h, { ...X, id: 'never' });
    // Answered and reported before its mirror's budget was over (its end is counted): the answer waited neither for
    // the mirror, which never settles, nor for its budget. The order shows it; the time bound is a loose backstop.
    expect(failed.filter((f) => f.inferenceId === 'never')).toHaveLength(0);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(r.status).toBe(200);
    expect((r.body as { model_version: string }).model_version).toBe('1');
    expect(seen.map((x) => x.inferenceId)).toEqual(['warm', 'never']);
    await until(() => failed.length >= 2);
    await pastBudgets();
    expect(mirrored).toEqual(['warm', 'never']);
    expect(seen.every((x) => x.status === 200)).toBe(true);
    expect(failed.map((f) => f.inferenceId)).toEqual(['warm', 'never']);
    expect(failed[0]).toMatchObject({ model: 'shadowed', version: 1, alias: 'prod', route: 'stable' });
  });

  it('a mirror that throws or rejects: the same answer and status; counted', async () => {
    await route({ shadow: { version: 2, percent: 100 } });
    const seen: InferenceReport[] = [];
    const failed: ShadowMirrorFailure[] = [];
    const metrics: MetricsSink = {
      inference: (r) => seen.push(r),
      operation: () => {},
      shadowMirrorFailed: (f) => failed.push(f),
    };
    const plain = parseResult(
      await handlerWith(
        { mirror: () => {} },
        metrics,
      )(apiEvent('POST', '/v2/models/shadowed/infer', { body: { ...X, id: 'same' } })),
    );
    for (const mirror of [
      () => {
        throw new Error('boom');
      },
      () => Promise.reject(new Error('down')),
    ]) {
      const r = parseResult(
        await handlerWith(
          { mirror },
          metrics,
        )(apiEvent('POST', '/v2/models/shadowed/infer', { body: { ...X, id: 'same' } })),
      );
      expect(r.status).toBe(plain.status);
      expect(r.body).toEqual(plain.body);
    }
    await until(() => failed.length >= 2);
    await pastBudgets();
    expect(seen).toHaveLength(3);
    expect(failed).toHaveLength(2);
  });

  it('a message over 256 KiB is not sent, and counted', async () => {
    await route({ shadow: { version: 2, percent: 100 } });
    const sent: ShadowMirrorMessage[] = [];
    const seen: InferenceReport[] = [];
    const failed: ShadowMirrorFailure[] = [];
    const h = handlerWith(
      new QueueShadowMirror({ send: async (m) => String(sent.push(m as ShadowMirrorMessage)) }),
      {
        inference: (r) => seen.push(r),
        operation: () => {},
        shadowMirrorFailed: (f) => failed.push(f),
      },
    );
    const rows = 10_000; // ~2 × 10 000 × 2 numbers of request and answer: well over 256 KiB
    const big = {
      inputs: [
        {
          name: 'x',
          datatype: 'FP32',
          shape: [rows, 2],
          data: Array.from({ length: rows * 2 }, (_, i) => (i % 7) / 7),
        },
      ],
    };
    expect((await call(h, big)).status).toBe(200);
    expect((await call(h, X)).status).toBe(200);
    // The big request's mirror was refused before the small one's was sent (in the order they were answered).
    await until(() => sent.length > 0 && failed.length > 0);
    await pastBudgets();
    expect(sent).toHaveLength(1);
    expect(JSON.parse(sent[0]!.requestText)).toEqual(X);
    expect(seen).toHaveLength(2);
    expect(failed).toHaveLength(1);
  });

  it('mirrors the shadow percent of keyed requests within a binomial bound, sticky by key; none at 0', async () => {
    await route({ shadow: { version: 2, percent: 20 } });
    const keys = new Map<string, number>();
    const h = handlerWith(
      {
        mirror: (m) => {
          const k = (JSON.parse(m.requestText) as { parameters?: { k?: string } }).parameters?.k ?? '';
          keys.set(k, (keys.get(k) ?? 0) + 1);
        },
      },
      { inference: () => {}, operation: () => {} },
    );
    const n = 2000;
    for (let i = 0; i < n; i++) await call(h, { ...X, parameters: { k: `u${i}` } }, `u${i}`);
    // Nothing marks the last mirror (which requests are mirrored is what is measured): the turn after the last
    // answer is when it is made.
    await afterAnswer();
    const p = 0.2;
    expect(Math.abs(keys.size - n * p)).toBeLessThan(4.5 * Math.sqrt(n * p * (1 - p)));
    for (const k of keys.keys()) expect(isShadowed(20, k, 'x', 'shadowed')).toBe(true);
    // Sticky: the same keys again are mirrored again, and only they.
    for (let i = 0; i < 200; i++) await call(h, { ...X, parameters: { k: `u${i}` } }, `u${i}`);
    await afterAnswer();
    for (const [k, count] of keys) if (Number(k.slice(1)) < 200) expect(count).toBe(2);
    await route({ shadow: { version: 2, percent: 0 } });
    const size = [...keys.values()].reduce((a, b) => a + b, 0);
    for (let i = 0; i < 100; i++) await call(h, { ...X, parameters: { k: `u${i}` } }, `u${i}`);
    await afterAnswer();
    expect([...keys.values()].reduce((a, b) => a + b, 0)).toBe(size);
  }, 60_000);

  it('mirrors answered requests of the alias only: not a failed one, not one by version number', async () => {
    await route({ shadow: { version: 2, percent: 100 } });
    const sent: ShadowMirrorMessage[] = [];
    const h = handlerWith(
      {
        mirror: (m) => {
          sent.push(m);
        },
      },
      { inference: () => {}, operation: () => {} },
    );
    const bad = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [0, 1, 2] }] };
    expect((await call(h, bad)).status).toBe(400);
    const pinned = parseResult(
      await h(apiEvent('POST', '/v2/models/shadowed/versions/1/infer', { body: X })),
    );
    expect(pinned.status).toBe(200);
    expect((await call(h, { ...X, id: 'only-this' })).status).toBe(200);
    // The requests before it were answered, and so mirrored or not, before it.
    await until(() => sent.some((m) => m.inferenceId === 'only-this'));
    expect(sent.map((m) => m.inferenceId)).toEqual(['only-this']);
    expect(sent[0]).toMatchObject({
      type: 'shadow',
      model: 'shadowed',
      alias: 'prod',
      servedVersion: 1,
      shadowVersion: 2,
    });
    expect(JSON.parse(sent[0]!.requestText)).toEqual({ ...X, id: 'only-this' });
    expect(JSON.parse(sent[0]!.answerText)).toMatchObject({
      model_name: 'shadowed',
      model_version: '1',
      id: 'only-this',
    });
    expect(Number.isNaN(Date.parse(sent[0]!.at))).toBe(false);
  });

  it('a shadow split makes no registry call on the warm path', async () => {
    await route({ canary: { version: 2, weight: 30 }, shadow: { version: 2, percent: 50 } });
    const reads = countCalls(env.repo);
    let mirrored = 0;
    const h = createPredictHandler({
      repo: reads.proxy,
      store: env.artifacts,
      sessions: env.sessions,
      clock: { now: () => new Date(env.now) },
      mirror: {
        mirror: () => {
          mirrored++;
        },
      },
    });
    for (let i = 0; i < 40; i++) await call(h, X, `w-${i}`);
    const before = reads.calls();
    mirrored = 0;
    for (let i = 0; i < 200; i++) await call(h, X, `w-${i}`);
    // Mirrors are made after the answers; one more turn, and every request's after-answer work has run (a registry
    // read there would be counted too).
    await until(() => mirrored > 20);
    await afterAnswer();
    expect(reads.calls() - before).toBe(0);
    expect(mirrored).toBeGreaterThan(20);
  });
});

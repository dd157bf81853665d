/**
 * The observed predict path over the emulators and real onnxruntime: the EMF documents of a 200, a 4xx and a 5xx,
 * the inference id, capture (sampling, record, sinks that fail or hang), the trace spans of a cold and a warm
 * request, and the local Prometheus metrics.
 */
import { gzipSync } from 'node:zlib';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BufferedCaptureSink } from '../../functions/adapters/capture-sinks';
import { EmfMetricsSink } from '../../functions/adapters/emf-metrics';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { PrometheusMetricsSink } from '../../functions/adapters/prometheus-metrics';
import { SessionCache } from '../../functions/app/session-cache';
import { tracedEngine, tracedRegistry, tracedStore } from '../../functions/app/tracing';
import { INFERENCE_ID_HEADER, TRACE_SPANS } from '../../functions/contract/observability';
import { createPredictHandler } from '../../functions/handlers/predict';
import type { CaptureSink } from '../../functions/ports/telemetry';
import { apiEvent, parseResult } from '../helpers/apigw';
import { addConstant, createPredictTestEnv, type PredictTestEnv } from '../helpers/predict-env';
import { RecordingTracer } from '../helpers/recording-tracer';
import { afterAnswer, until } from '../helpers/until';

interface Emf {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [key: string]: unknown;
}

const X = { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3, 4] }] };

/** A capture sink that keeps its lines, or fails or hangs as told. */
class TestSink implements CaptureSink {
  readonly lines: { model: string; version: number; line: string }[] = [];
  mode: 'ok' | 'throw' | 'reject' | 'hang' = 'ok';
  write(model: string, version: number, line: string): void | Promise<void> {
    if (this.mode === 'throw') throw new Error('sink down');
    if (this.mode === 'reject') return Promise.reject(new Error('sink down'));
    if (this.mode === 'hang') return new Promise(() => {});
    this.lines.push({ model, version, line });
  }
}

let env: PredictTestEnv;
const emf: Emf[] = [];
const sink = new TestSink();
const prometheus = new PrometheusMetricsSink();
const fanOut = {
  inference: (r: Parameters<EmfMetricsSink['inference']>[0]) => {
    emfSink.inference(r);
    prometheus.inference(r);
  },
  operation: () => {},
};
const emfSink = new EmfMetricsSink({
  serviceName: 'maas-predict',
  output: (line) => emf.push(JSON.parse(line)),
});

beforeAll(async () => {
  env = await createPredictTestEnv({ metrics: fanOut, capture: sink });
  await env.register('adder', addConstant(10)); // v1, prod
  await env.register('adder', addConstant(20)); // v2
  await env.moveAlias('adder', 'staging', 2);
});
afterAll(() => env?.dispose());
beforeEach(() => {
  emf.length = 0;
  sink.lines.length = 0;
  sink.mode = 'ok';
});

const metricsOf = (doc: Emf) =>
  Object.fromEntries(
    doc._aws.CloudWatchMetrics[0]!.Metrics.map((m) => [m.Name, { unit: m.Unit, value: doc[m.Name] }]),
  );

describe('EMF documents', () => {
  it('a 200: one document, namespace maas, the three dimension sets, the request in units', async () => {
    const r = await env.call('POST', '/v2/models/adder/infer', X);
    expect(r.status).toBe(200);
    expect(emf).toHaveLength(1);
    const doc = emf[0]!;
    expect(doc._aws.CloudWatchMetrics[0]!.Namespace).toBe('maas');
    expect(doc._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([
      ['model'],
      ['model', 'version'],
      ['model', 'alias', 'route'],
    ]);
    expect(doc).toMatchObject({
      model: 'adder',
      version: '1',
      alias: 'prod',
      route: 'stable',
      status: '200',
    });
    const m = metricsOf(doc);
    expect(m.Requests).toEqual({ unit: 'Count', value: 1 });
    expect(m.Latency!.unit).toBe('Milliseconds');
    expect(m.InferenceLatency!.unit).toBe('Milliseconds');
    expect(m.InferenceLatency!.value as number).toBeGreaterThan(0);
    expect(m.Latency!.value as number).toBeGreaterThanOrEqual(m.InferenceLatency!.value as number);
    expect(m.PayloadBytes).toEqual({ unit: 'Bytes', value: JSON.stringify(X).length });
    expect(m.BatchRows).toEqual({ unit: 'Count', value: 2 });
    expect(m).not.toHaveProperty('ClientErrors');
    expect(m).not.toHaveProperty('ServerErrors');
    // The inference id is a property, never a dimension.
    expect(doc.inferenceId).toBe(r.headers[INFERENCE_ID_HEADER]);
    expect(doc._aws.CloudWatchMetrics[0]!.Dimensions.flat()).not.toContain('inferenceId');
  });

  it('the first request of the handler is its cold start; the model load is timed when it is waited for', async () => {
    const fresh: Emf[] = [];
    const handler = createPredictHandler({
      repo: env.reader,
      store: env.artifacts,
      sessions: new SessionCache({ engine: new OrtEngine() }),
      metrics: new EmfMetricsSink({ serviceName: 't', output: (l) => fresh.push(JSON.parse(l)) }),
    });
    for (let i = 0; i < 2; i++) await handler(apiEvent('POST', '/v2/models/adder/infer', { body: X }));
    const [first, second] = fresh.map(metricsOf);
    expect(first!.ColdStart).toEqual({ unit: 'Count', value: 1 });
    expect(first!.ModelLoadLatency!.unit).toBe('Milliseconds');
    expect(second).not.toHaveProperty('ColdStart');
    expect(second).not.toHaveProperty('ModelLoadLatency');
  });

  it('a 4xx of a resolved version counts a ClientError with every dimension set', async () => {
    const r = await env.call('POST', '/v2/models/adder/versions/2/infer', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }],
    });
    expect(r.status).toBe(400);
    expect(r.headers[INFERENCE_ID_HEADER]).toMatch(/^[0-9a-f-]{36}$/);
    const doc = emf[0]!;
    expect(metricsOf(doc).ClientErrors).toEqual({ unit: 'Count', value: 1 });
    expect(metricsOf(doc)).not.toHaveProperty('ServerErrors');
    expect(doc).toMatchObject({ model: 'adder', version: '2', status: '400' });
    // By number: no alias, so no {model, alias, route} set.
    expect(doc._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['model'], ['model', 'version']]);
  });

  it('dimensions come from names the registry knows, never from the path as sent', async () => {
    // An alias that does not exist: the model is known, the alias is no dimension.
    const noAlias = await env.call('POST', '/v2/models/adder/versions/nope/infer', X);
    expect(noAlias.status).toBe(404);
    expect(emf[0]!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['model']]);
    expect(emf[0]).toMatchObject({ model: 'adder', status: '404', ClientErrors: 1 });
    expect(emf[0]).not.toHaveProperty('alias');
    // A model that does not exist, or a request that fails before its model is looked up: model '-'.
    emf.length = 0;
    await env.call('POST', '/v2/models/no-such-model/infer', X);
    await env.call('POST', '/v2/models/adder/infer', '{not json');
    expect(emf.map((d) => [d.model, d.status])).toEqual([
      ['-', '404'],
      ['-', '400'],
    ]);
    expect(emf.every((d) => JSON.stringify(d._aws.CloudWatchMetrics[0]!.Dimensions) === '[["model"]]')).toBe(
      true,
    );
  });

  it('a 5xx counts a ServerError', async () => {
    const fresh: Emf[] = [];
    const handler = createPredictHandler({
      repo: env.reader,
      store: {
        getObject: () => Promise.reject(new Error('disk on fire')),
      },
      sessions: new SessionCache({ engine: new OrtEngine() }),
      metrics: new EmfMetricsSink({ serviceName: 't', output: (l) => fresh.push(JSON.parse(l)) }),
      logger: {
        info() {},
        warn() {},
        error() {},
        forRequest: () => ({
          info() {},
          warn() {},
          error() {},
          forRequest: () => {
            throw new Error('unused');
          },
        }),
      },
    });
    const r = parseResult(await handler(apiEvent('POST', '/v2/models/adder/infer', { body: X })));
    expect(r.status).toBe(500);
    expect(metricsOf(fresh[0]!).ServerErrors).toEqual({ unit: 'Count', value: 1 });
    expect(metricsOf(fresh[0]!)).not.toHaveProperty('ClientErrors');
    expect(fresh[0]).toMatchObject({ model: 'adder', version: '1', status: '500' });
  });

  it('health and metadata requests are not inference requests: no document', async () => {
    await env.call('GET', '/v2/health/live');
    await env.call('GET', '/v2/models/adder');
    expect(emf).toHaveLength(0);
  });
});

describe('the inference id', () => {
  it("is the request's id when given, in the body and the header", async () => {
    const r = await env.call<{ id: string }>('POST', '/v2/models/adder/infer', { ...X, id: 'req-42' });
    expect(r.body.id).toBe('req-42');
    expect(r.headers[INFERENCE_ID_HEADER]).toBe('req-42');
  });

  it('is generated when the request has none, and differs per request', async () => {
    const a = await env.call<{ id: string }>('POST', '/v2/models/adder/infer', X);
    const b = await env.call<{ id: string }>('POST', '/v2/models/adder/infer', X);
    expect(a.body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.headers[INFERENCE_ID_HEADER]).toBe(a.body.id);
    expect(b.body.id).not.toBe(a.body.id);
  });

  it('is percent-encoded in the header when it cannot be a header value; the body keeps it as sent', async () => {
    const r = await env.call<{ id: string }>('POST', '/v2/models/adder/infer', { ...X, id: 'é\n1' });
    expect(r.body.id).toBe('é\n1');
    expect(r.headers[INFERENCE_ID_HEADER]).toBe(encodeURIComponent('é\n1'));
  });

  it('empty, longer than the limit or not well-formed is a 400, answered with a generated inference id', async () => {
    for (const id of ['', 'x'.repeat(257), '\ud800', 'a\udc00b']) {
      const r = await env.call<{ code: string }>('POST', '/v2/models/adder/infer', { ...X, id });
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('INVALID_REQUEST');
      expect(r.headers[INFERENCE_ID_HEADER]).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
    }
    // A surrogate pair is well-formed text.
    const pair = await env.call<{ id: string }>('POST', '/v2/models/adder/infer', { ...X, id: 'id-😀' });
    expect(pair.body.id).toBe('id-😀');
    expect(pair.headers[INFERENCE_ID_HEADER]).toBe(encodeURIComponent('id-😀'));
  });
});

describe('capture', () => {
  beforeEach(async () => {
    await env.repo.setAliasCapture('adder', 'prod', null);
    await env.repo.setAliasCapture('adder', 'staging', null);
    await env.repo.updateVersion('adder', 1, { capture: null });
    await env.repo.updateVersion('adder', 2, { capture: null });
    env.now += 60_000; // past the alias cache
  });

  it('at 100 % on the alias: one record per request, request and response together', async () => {
    await env.repo.setAliasCapture('adder', 'prod', { samplePercent: 100, input: true, output: true });
    env.now += 60_000;
    const r = await env.call<{ id: string }>('POST', '/v2/models/adder/infer', { ...X, id: 'cap-1' });
    // Recorded after the answer, not before it.
    expect(sink.lines).toHaveLength(0);
    await afterAnswer();
    expect(sink.lines).toHaveLength(1);
    const { model, version, line } = sink.lines[0]!;
    expect([model, version]).toEqual(['adder', 1]);
    const record = JSON.parse(line);
    expect(record).toMatchObject({
      eventVersion: '0',
      model: 'adder',
      version: 1,
      alias: 'prod',
      route: 'stable',
      status: 200,
      eventMetadata: { inferenceId: 'cap-1' },
      captureData: {
        endpointInput: { mode: 'INPUT', encoding: 'JSON', observedContentType: 'application/json' },
        endpointOutput: { mode: 'OUTPUT', encoding: 'JSON', observedContentType: 'application/json' },
      },
    });
    expect(JSON.parse(record.captureData.endpointInput.data)).toEqual({ ...X, id: 'cap-1' });
    expect(JSON.parse(record.captureData.endpointOutput.data)).toEqual(r.body);
    expect(Date.parse(record.eventMetadata.inferenceTime)).not.toBeNaN();
  });

  it('at 0 %, or undeclared, nothing is written', async () => {
    await env.call('POST', '/v2/models/adder/infer', X);
    await env.repo.setAliasCapture('adder', 'prod', { samplePercent: 0, input: true, output: true });
    env.now += 60_000;
    await env.call('POST', '/v2/models/adder/infer', X);
    await afterAnswer();
    expect(sink.lines).toHaveLength(0);
    expect(emf).toHaveLength(2);
  });

  it("a version's declaration applies by number and through its aliases; an alias's own one wins", async () => {
    await env.repo.updateVersion('adder', 2, { capture: { samplePercent: 100, input: false, output: true } });
    env.now += 60_000;
    await env.call('POST', '/v2/models/adder/versions/2/infer', X);
    await env.call('POST', '/v2/models/adder/versions/staging/infer', X);
    await afterAnswer();
    expect(sink.lines.map((l) => JSON.parse(l.line).alias)).toEqual([undefined, 'staging']);
    expect(Object.keys(JSON.parse(sink.lines[0]!.line).captureData)).toEqual(['endpointOutput']);
    await env.repo.setAliasCapture('adder', 'staging', { samplePercent: 0, input: true, output: true });
    env.now += 60_000;
    await env.call('POST', '/v2/models/adder/versions/staging/infer', X);
    await afterAnswer();
    expect(sink.lines).toHaveLength(2);
  });

  it('a failed compressed request is recorded and counted as its decoded JSON, as a successful one is', async () => {
    await env.repo.setAliasCapture('adder', 'prod', { samplePercent: 100, input: true, output: true });
    env.now += 60_000;
    // Three values for a [1, 2] input: refused after the version is resolved (the request is captured).
    const request = {
      id: 'gz-1',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2, 3] }],
    };
    const text = JSON.stringify(request);
    const r = parseResult(
      await env.handler(
        apiEvent('POST', '/v2/models/adder/infer', {
          body: gzipSync(text),
          headers: { 'content-encoding': 'gzip', 'content-type': 'application/octet-stream' },
        }),
      ),
    );
    expect(r).toMatchObject({ status: 400, body: { code: 'DATA_LENGTH_MISMATCH' } });
    await until(() => sink.lines.length > 0 && emf.length > 0);
    const input = JSON.parse(sink.lines[0]!.line).captureData.endpointInput;
    expect(input).toMatchObject({ encoding: 'JSON', observedContentType: 'application/octet-stream' });
    expect(JSON.parse(input.data)).toEqual(request);
    expect(metricsOf(emf[0]!).PayloadBytes).toEqual({ unit: 'Bytes', value: text.length });

    // A failed binary request counts its bytes, not the characters of their base64 form.
    emf.length = 0;
    const header = JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } }],
    });
    const bytes = Buffer.concat([Buffer.from(header), Buffer.from(new Float32Array([1, 2, 3]).buffer)]);
    const binary = parseResult(
      await env.handler(
        apiEvent('POST', '/v2/models/adder/infer', {
          body: bytes,
          headers: { 'inference-header-content-length': String(header.length) },
        }),
      ),
    );
    expect(binary.status).toBe(400);
    await until(() => emf.length > 0);
    expect(metricsOf(emf[0]!).PayloadBytes).toEqual({ unit: 'Bytes', value: bytes.length });
  });

  it('samples by inference id: the same ids are recorded every time', async () => {
    await env.repo.setAliasCapture('adder', 'prod', { samplePercent: 50, input: true, output: true });
    env.now += 60_000;
    const ids = Array.from({ length: 40 }, (_, i) => `s-${i}`);
    for (const id of ids) await env.call('POST', '/v2/models/adder/infer', { ...X, id });
    await afterAnswer();
    const first = sink.lines.map((l) => JSON.parse(l.line).eventMetadata.inferenceId);
    sink.lines.length = 0;
    for (const id of ids) await env.call('POST', '/v2/models/adder/infer', { ...X, id });
    await afterAnswer();
    expect(sink.lines.map((l) => JSON.parse(l.line).eventMetadata.inferenceId)).toEqual(first);
    expect(first.length).toBeGreaterThan(5);
    expect(first.length).toBeLessThan(35);
  });

  it.each(['throw', 'reject', 'hang'] as const)(
    'a sink that fails (%s) changes neither the answer nor its status, and is counted',
    async (mode) => {
      const expected = await env.call('POST', '/v2/models/adder/infer', { ...X, id: 'same' });
      emf.length = 0;
      await env.repo.setAliasCapture('adder', 'prod', { samplePercent: 100, input: true, output: true });
      env.now += 60_000;
      sink.mode = mode;
      const r = await env.call('POST', '/v2/models/adder/infer', { ...X, id: 'same' });
      expect(r.status).toBe(200);
      expect(r.body).toEqual(expected.body);
      await until(() => emf.length > 0);
      expect(metricsOf(emf[0]!).CaptureErrors).toEqual({ unit: 'Count', value: 1 });
    },
  );

  it('a hanging sink never holds the answer, and its request is reported once the budget is over', async () => {
    await env.repo.setAliasCapture('adder', 'prod', { samplePercent: 100, input: true, output: true });
    env.now += 60_000;
    sink.mode = 'hang';
    const r = await env.call('POST', '/v2/models/adder/infer', X);
    expect(r.status).toBe(200);
    // Answered before the capture even started: nothing is reported yet.
    expect(emf).toHaveLength(0);
    await until(() => emf.length > 0);
    expect(metricsOf(emf[0]!).CaptureErrors).toEqual({ unit: 'Count', value: 1 });
  });

  it('the local sink writes the records as JSONL under capture/{model}/{version}/yyyy/mm/dd/hh/', async () => {
    const local = new BufferedCaptureSink({ store: env.store, now: () => new Date('2026-12-01T07:30:00Z') });
    local.write('adder', 1, '{"a":1}');
    local.write('adder', 1, '{"a":2}');
    local.write('adder', 2, '{"b":1}');
    await local.flush();
    const listed = await env.aws.s3.send(
      new ListObjectsV2Command({ Bucket: env.aws.bucket, Prefix: 'capture/adder/' }),
    );
    const keys = (listed.Contents ?? []).map((o) => o.Key as string).sort();
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/^capture\/adder\/1\/2026\/12\/01\/07\/[^/]+\.jsonl$/);
    expect(keys[1]).toMatch(/^capture\/adder\/2\/2026\/12\/01\/07\/[^/]+\.jsonl$/);
    expect(Buffer.from(await env.store.getObject(keys[0]!)).toString()).toBe('{"a":1}\n{"a":2}\n');
  });
});

describe('trace spans', () => {
  it('a cold request spans registry read, download, sha256, session create and run; a warm one only run', async () => {
    const tracer = new RecordingTracer();
    const engine = new OrtEngine();
    const handler = createPredictHandler({
      repo: tracedRegistry(env.reader, tracer),
      store: tracedStore(env.artifacts, tracer),
      sessions: new SessionCache({ engine: tracedEngine(engine, tracer), tracer }),
      tracer,
    });
    const cold = parseResult(await handler(apiEvent('POST', '/v2/models/adder/infer', { body: X })));
    expect(cold.status).toBe(200);
    const annotations = [...tracer.annotations];
    expect(tracer.take()).toEqual([
      TRACE_SPANS.registryRead,
      TRACE_SPANS.artifactDownload,
      TRACE_SPANS.sha256,
      TRACE_SPANS.sessionCreate,
      TRACE_SPANS.run,
    ]);
    expect(annotations).toEqual([{ model: 'adder', version: 1, alias: 'prod' }]);
    await handler(apiEvent('POST', '/v2/models/adder/infer', { body: X }));
    expect(tracer.take()).toEqual([TRACE_SPANS.run]);
  });

  it('a failing dependency call is a failed span', async () => {
    const tracer = new RecordingTracer();
    const handler = createPredictHandler({
      repo: tracedRegistry(env.reader, tracer),
      store: tracedStore({ getObject: () => Promise.reject(new Error('gone')) }, tracer),
      sessions: new SessionCache({ engine: new OrtEngine(), tracer }),
      tracer,
      logger: {
        info() {},
        warn() {},
        error() {},
        forRequest() {
          return this;
        },
      },
    });
    await handler(apiEvent('POST', '/v2/models/adder/infer', { body: X }));
    const download = tracer.spans.find((s) => s.name === TRACE_SPANS.artifactDownload);
    expect(download?.failed).toBe(true);
  });
});

describe('local Prometheus metrics', () => {
  it('counts requests and errors per model, version, alias and route, with latency histograms', async () => {
    await env.call('POST', '/v2/models/adder/versions/staging/infer', X);
    await env.call('POST', '/v2/models/adder/versions/staging/infer', { inputs: [] });
    const text = await prometheus.text();
    const labels = 'model="adder",version="2",alias="staging",route="stable"';
    expect(text).toMatch(new RegExp(`maas_requests_total\\{${labels}\\} [2-9]`));
    expect(text).toMatch(new RegExp(`maas_client_errors_total\\{${labels}\\} [1-9]`));
    expect(text).toMatch(new RegExp(`maas_latency_ms_count\\{${labels}\\} [2-9]`));
    expect(text).toContain(`maas_latency_ms_bucket{le="+Inf",${labels}}`);
    expect(text).toMatch(
      /maas_inference_latency_ms_sum\{model="adder",version="2",alias="staging",route="stable"\} [0-9.]+/,
    );
  });
});

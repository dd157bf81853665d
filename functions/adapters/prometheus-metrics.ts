/**
 * The `MetricsSink` port on prom-client, for the local service: the same requests the EMF documents count in AWS,
 * as Prometheus counters and latency histograms labelled by model, version, alias and route (inference) or by
 * operation (registry, as `maas_registry_*`), and the shadow comparisons the worker reports (`maas_shadow_*`, route
 * `shadow`, the shadow version; the divergence histograms also by output). `GET /metrics` of the local server answers `text()`; `maas stats`
 * reads it.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import {
  METRICS,
  type MetricName,
  PROMETHEUS,
  prometheusName,
  SHADOW,
  SHADOW_ROUTE,
  type ShadowMetricName,
  shadowPrometheusName,
} from '../contract/observability';
import type { ShadowComparison } from '../domain/divergence';
import type { InferenceReport, MetricsSink, OperationReport, ShadowMirrorFailure } from '../ports/telemetry';

const INFERENCE_LABELS = ['model', 'version', 'alias', 'route'] as const;
const OPERATION_LABELS = ['operation'] as const;

type InferenceLabel = (typeof INFERENCE_LABELS)[number];
type OperationLabel = (typeof OPERATION_LABELS)[number];

const HELP: Record<MetricName, string> = {
  Requests: 'Answered requests',
  ClientErrors: 'Requests answered 4xx',
  ServerErrors: 'Requests answered 5xx',
  Latency: 'Handler total, event to answer (ms)',
  InferenceLatency: 'onnxruntime run time (ms)',
  ModelLoadLatency: 'Artifact fetch, verification and session creation waited for (ms)',
  ColdStart: 'First requests of a process',
  PayloadBytes: 'Request body bytes',
  BatchRows: 'Rows scored',
  CaptureErrors: 'Capture records that could not be written',
  ShadowMirrorErrors: 'Shadow mirrors not sent (the version and route that answered the request)',
};

const SHADOW_LABELS = [...INFERENCE_LABELS, 'output'] as const;
type ShadowLabel = (typeof SHADOW_LABELS)[number];

/** Prometheus metrics of the local service (see the module comment). */
export class PrometheusMetricsSink implements MetricsSink {
  readonly registry = new Registry();
  readonly #inference = new Map<MetricName, Counter<InferenceLabel> | Histogram<InferenceLabel>>();
  /** `ShadowRequests` (a counter on the inference labels) and the divergence histograms (with `output`). */
  readonly #shadow: {
    readonly requests: Counter<InferenceLabel>;
    /** `ShadowErrors`: shadow runs that failed. */
    readonly errors: Counter<InferenceLabel>;
    readonly agreement: Histogram<ShadowLabel>;
    readonly maxAbsDiff: Histogram<ShadowLabel>;
    readonly kl: Histogram<ShadowLabel>;
  };
  readonly #operation: {
    readonly requests: Counter<OperationLabel>;
    readonly clientErrors: Counter<OperationLabel>;
    readonly serverErrors: Counter<OperationLabel>;
    readonly latency: Histogram<OperationLabel>;
  };

  constructor() {
    for (const name of Object.keys(METRICS) as MetricName[]) {
      const config = {
        name: prometheusName(name),
        help: HELP[name],
        labelNames: INFERENCE_LABELS,
        registers: [this.registry],
      };
      this.#inference.set(
        name,
        METRICS[name] === 'Milliseconds'
          ? new Histogram({ ...config, buckets: [...PROMETHEUS.latencyBucketsMs] })
          : new Counter(config),
      );
    }
    const divergence = (name: ShadowMetricName, help: string, buckets: readonly number[]) =>
      new Histogram({
        name: shadowPrometheusName(name),
        help,
        labelNames: SHADOW_LABELS,
        buckets: [...buckets],
        registers: [this.registry],
      });
    this.#shadow = {
      requests: new Counter({
        name: shadowPrometheusName('ShadowRequests'),
        help: 'Mirrored requests run on their shadow version (route shadow, the shadow version)',
        labelNames: INFERENCE_LABELS,
        registers: [this.registry],
      }),
      errors: new Counter({
        name: shadowPrometheusName('ShadowErrors'),
        help: 'Mirrored requests whose shadow run failed (route shadow, the shadow version)',
        labelNames: INFERENCE_LABELS,
        registers: [this.registry],
      }),
      agreement: divergence(
        'ShadowArgmaxAgreement',
        'Share of rows whose argmax agree, shadow vs served, per request and output',
        SHADOW.agreementBuckets,
      ),
      maxAbsDiff: divergence(
        'ShadowMaxAbsDiff',
        'Largest absolute difference of an element, shadow vs served, per request and output',
        SHADOW.differenceBuckets,
      ),
      kl: divergence(
        'ShadowKlDivergence',
        'Mean KL(served || shadow) of probability rows, per request and output',
        SHADOW.differenceBuckets,
      ),
    };
    const registry = (metric: MetricName) =>
      prometheusName(metric).replace(PROMETHEUS.prefix, `${PROMETHEUS.prefix}registry_`);
    const op = { labelNames: OPERATION_LABELS, registers: [this.registry] };
    this.#operation = {
      requests: new Counter({ ...op, name: registry('Requests'), help: HELP.Requests }),
      clientErrors: new Counter({ ...op, name: registry('ClientErrors'), help: HELP.ClientErrors }),
      serverErrors: new Counter({ ...op, name: registry('ServerErrors'), help: HELP.ServerErrors }),
      latency: new Histogram({
        ...op,
        name: registry('Latency'),
        help: HELP.Latency,
        buckets: [...PROMETHEUS.latencyBucketsMs],
      }),
    };
  }

  inference(r: InferenceReport): void {
    const labels: Record<InferenceLabel, string> = {
      model: r.model,
      version: r.version === undefined ? '' : String(r.version),
      alias: r.alias ?? '',
      route: r.route,
    };
    const add = (name: MetricName, value: number | undefined) => {
      if (value === undefined) return;
      const metric = this.#inference.get(name);
      if (metric instanceof Histogram) metric.observe(labels, value);
      else metric?.inc(labels, value);
    };
    add('Requests', 1);
    // Every series of a model exists from its first request on (a 0 reads better than a missing line).
    add('ClientErrors', r.status >= 400 && r.status < 500 ? 1 : 0);
    add('ServerErrors', r.status >= 500 ? 1 : 0);
    add('ColdStart', r.coldStart ? 1 : 0);
    add('Latency', r.latencyMs);
    add('InferenceLatency', r.inferenceMs);
    add('ModelLoadLatency', r.modelLoadMs);
    add('PayloadBytes', r.payloadBytes);
    add('BatchRows', r.batchRows);
    add('CaptureErrors', r.captureErrors ?? 0);
    add('ShadowMirrorErrors', 0);
  }

  shadowMirrorFailed(f: ShadowMirrorFailure): void {
    (this.#inference.get('ShadowMirrorErrors') as Counter<InferenceLabel>).inc(
      { model: f.model, version: String(f.version), alias: f.alias, route: f.route },
      1,
    );
  }

  shadow(c: ShadowComparison): void {
    const labels: Record<InferenceLabel, string> = {
      model: c.model,
      version: String(c.shadowVersion),
      alias: c.alias,
      route: SHADOW_ROUTE,
    };
    this.#shadow.requests.inc(labels);
    this.#shadow.errors.inc(labels, c.failed ? 1 : 0);
    for (const o of c.outputs) {
      const l = { ...labels, output: o.output };
      if (o.argmaxAgreement !== undefined) this.#shadow.agreement.observe(l, o.argmaxAgreement);
      this.#shadow.maxAbsDiff.observe(l, o.maxAbsDiff);
      if (o.klDivergence !== undefined) this.#shadow.kl.observe(l, o.klDivergence);
    }
  }

  operation(r: OperationReport): void {
    const labels = { operation: r.operation };
    const o = this.#operation;
    o.requests.inc(labels);
    o.clientErrors.inc(labels, r.status >= 400 && r.status < 500 ? 1 : 0);
    o.serverErrors.inc(labels, r.status >= 500 ? 1 : 0);
    o.latency.observe(labels, r.latencyMs);
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of `text()`. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

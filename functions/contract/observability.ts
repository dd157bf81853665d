/**
 * The observability contract (docs/ARCHITECTURE.md, "Observability"): metric names, units and dimension sets
 * (CloudWatch EMF in AWS, Prometheus locally), the inference id header, the capture record's S3 layout and the
 * log filter that delivers capture records. The functions emit these names; the stack's dashboard and alarms
 * read them; the local `/metrics` and `maas stats` show them. One list, shared by all.
 */

/** CloudWatch namespace of every metric. */
export const METRICS_NAMESPACE = 'maas';

/**
 * Each function's service name: the `service` of its log lines and metrics, and its `POWERTOOLS_SERVICE_NAME` (the
 * name of its traces), set by the stack. `maas dev` names its handlers' lines alike.
 */
export const SERVICE_NAMES = {
  predict: 'maas-predict',
  registry: 'maas-registry',
  asyncApi: 'maas-async-api',
  s3Events: 'maas-s3-events',
  worker: 'maas-async-worker',
  rolloutController: 'maas-rollout-controller',
} as const;

/** Metric names and their CloudWatch units. */
export const METRICS = {
  /**
   * One per answered request (sync or async inference, registry operation), and one per chunk of a batch part
   * (`BATCH.rowsPerChunk` lines scored by one `inferBatch` call; status 200 whatever its lines' errors).
   */
  Requests: 'Count',
  /** Requests answered 4xx (the caller's mistake). */
  ClientErrors: 'Count',
  /** Requests answered 5xx (ours, or a dependency's). */
  ServerErrors: 'Count',
  /** Handler total, from the event to its answer (a batch chunk: from its read to its answers). */
  Latency: 'Milliseconds',
  /** The onnxruntime run(s) of the request. */
  InferenceLatency: 'Milliseconds',
  /** Fetch, verify and load of a model artifact the request waited for (a cold model only). */
  ModelLoadLatency: 'Milliseconds',
  /** 1 on the first request of a sandbox that started on demand. */
  ColdStart: 'Count',
  /** Request body size. */
  PayloadBytes: 'Bytes',
  /** Rows scored: a request's batch dimension (sync or async), a batch chunk's lines. */
  BatchRows: 'Count',
  /** Capture records that could not be written (the inference is answered all the same). */
  CaptureErrors: 'Count',
  /**
   * Shadow mirrors of requests that were not sent (the mirror threw or rejected, did not settle within
   * `SHADOW.budgetMs`, or the message exceeded `SHADOW.maxMessageBytes`), on the dimensions of the request that was
   * answered (its version and route). Reported on its own document once the mirror settled, never on the request's
   * (which is written at once). The inference is answered all the same. Not `ShadowErrors`: the worker's shadow
   * runs that failed (`SHADOW_METRICS`).
   */
  ShadowMirrorErrors: 'Count',
} as const;

export type MetricName = keyof typeof METRICS;
export type MetricUnit = (typeof METRICS)[MetricName];

/**
 * Dimension sets of the inference metrics: every inference document carries all three, so a metric can be read
 * per model, per version, or per alias and traffic route. A per-request id is never a dimension (it is a
 * property of the document, searchable in the logs).
 */
export const INFERENCE_DIMENSION_SETS = [
  ['model'],
  ['model', 'version'],
  ['model', 'alias', 'route'],
] as const;

/**
 * The `model` dimension of a request no version was chosen for and whose alias or version the registry did not
 * answer for: an unknown or invalid name, a body that could not be read, a lookup that failed (and no `version`).
 */
export const UNRESOLVED_MODEL = '-';

/**
 * Shadow traffic (docs/ARCHITECTURE.md, "Progressive delivery"): what the work queue's worker reports per mirrored
 * request once it ran it on the shadow version and compared the answers. `ShadowRequests` and `ShadowErrors` (a
 * shadow run that failed) once per mirrored request (once per request even when its message is delivered again); the divergence metrics once per output compared (unit None:
 * `ShadowArgmaxAgreement` a fraction of rows, 0-1; `ShadowMaxAbsDiff` the largest absolute difference of an
 * element, `1e100` for a mismatch (`MISMATCH_ABS_DIFF` of functions/domain/divergence.ts); `ShadowKlDivergence` the mean KL(stable ‖ shadow) of probability rows).
 */
export const SHADOW_METRICS = {
  ShadowRequests: 'Count',
  ShadowErrors: 'Count',
  ShadowArgmaxAgreement: 'None',
  ShadowMaxAbsDiff: 'None',
  ShadowKlDivergence: 'None',
} as const;

export type ShadowMetricName = keyof typeof SHADOW_METRICS;

/**
 * Dimension sets of the shadow metrics, with `route` = `shadow` and `version` = the shadow version: per alias, per
 * alias and output (the divergence metrics only), per version.
 */
export const SHADOW_DIMENSION_SETS = [
  ['model', 'alias', 'route'],
  ['model', 'alias', 'route', 'output'],
  ['model', 'version'],
] as const;

/** The route of shadow metrics and shadow capture records. */
export const SHADOW_ROUTE: TrafficRoute = 'shadow';

/** Limits of shadow mirroring. */
export const SHADOW = {
  /**
   * How long (ms) the predict process waits for the mirror of one request (after its answer, never on its path;
   * nothing else waits for it) before it counts the send as hung (`ShadowMirrorErrors`); the send itself is not
   * aborted, and a slower send that succeeds is not an error unless it exceeds this. In Lambda the send runs after
   * the handler returned: a sandbox frozen meanwhile finishes it on its next invocation (or never): mirroring is
   * best effort.
   */
  budgetMs: 5000,
  /**
   * Largest mirror message (its JSON, bytes): SQS's limit. Larger ones are not sent, counted as
   * `ShadowMirrorErrors` (refused before the message is made when the request and answer texts alone exceed it).
   */
  maxMessageBytes: 256 * 1024,
  /** Histogram buckets of the local `/metrics` for the divergence metrics. */
  agreementBuckets: [0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1],
  differenceBuckets: [1e-6, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.5, 1, 10],
} as const;

/**
 * The Prometheus name of a shadow metric: `ShadowRequests` → `maas_shadow_requests_total`, `ShadowMaxAbsDiff` →
 * `maas_shadow_max_abs_diff` (a histogram).
 */
export function shadowPrometheusName(metric: ShadowMetricName): string {
  const snake = metric.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
  return `${PROMETHEUS.prefix}${snake}${SHADOW_METRICS[metric] === 'Count' ? '_total' : ''}`;
}

/** Dimension set of the registry's metrics: its operation id (`moveAlias`, `registerVersion`…). */
export const REGISTRY_DIMENSION_SETS = [['operation']] as const;

/**
 * The traffic route of a request within its alias: `stable` until progressive delivery splits an alias
 * (`canary`, `shadow`).
 */
export type TrafficRoute = 'stable' | 'canary' | 'shadow';
export const STABLE_ROUTE: TrafficRoute = 'stable';
export const CANARY_ROUTE: TrafficRoute = 'canary';

/** Response header carrying the inference id of every inference answer. */
export const INFERENCE_ID_HEADER = 'x-maas-inference-id';

/** Request header whose value routes a request within a split alias (the same key, the same version). */
export const ROUTING_KEY_HEADER = 'x-maas-routing-key';

/** Response header naming the traffic route that answered (`stable` or `canary`). */
export const ROUTE_HEADER = 'x-maas-route';

/**
 * Prometheus names of the local `/metrics` (counters `_total`, histograms in milliseconds), labelled by `model`,
 * `version`, `alias`, `route` (inference) or `operation` (registry).
 */
export const PROMETHEUS = {
  prefix: 'maas_',
  /** Histogram buckets (ms) of the latency histograms. */
  latencyBucketsMs: [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000],
} as const;

/** `Requests` → `maas_requests_total`, `Latency` → `maas_latency_ms`, `PayloadBytes` → `maas_payload_bytes_total`. */
export function prometheusName(metric: MetricName): string {
  const snake = metric.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
  return `${PROMETHEUS.prefix}${snake}${METRICS[metric] === 'Milliseconds' ? '_ms' : '_total'}`;
}

/** S3 layout of captured records and feedback (docs/ARCHITECTURE.md, "Data: table keys and S3 layout"). */
export const CAPTURE_KEYS = {
  capturePrefix: 'capture/',
  feedbackPrefix: 'feedback/',
  /** `capture/{model}/{version}/yyyy/mm/dd/hh/` of an hour (UTC). */
  captureHour: (model: string, version: number, at: Date) => `capture/${model}/${version}/${hourPath(at)}/`,
  /** `feedback/{model}/yyyy/mm/dd/hh/` of an hour (UTC). */
  feedbackHour: (model: string, at: Date) => `feedback/${model}/${hourPath(at)}/`,
} as const;

/** `yyyy/mm/dd/hh` (UTC). */
export function hourPath(at: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${String(at.getUTCFullYear()).padStart(4, '0')}/${p(at.getUTCMonth() + 1)}/${p(at.getUTCDate())}/${p(at.getUTCHours())}`;
}

/**
 * CloudWatch Logs filter pattern that selects capture records among a function's log lines: a capture record is
 * one JSON line with SageMaker Data Capture's `"eventVersion":"0"`, which no other line of ours carries.
 */
export const CAPTURE_LOG_FILTER_PATTERN = '{ $.eventVersion = "0" }';

/** X-Ray subsegments of the predict path (a warm request has `run` only). */
export const TRACE_SPANS = {
  registryRead: 'RegistryRead',
  artifactDownload: 'ArtifactDownload',
  sha256: 'Sha256',
  sessionCreate: 'SessionCreate',
  run: 'Run',
} as const;

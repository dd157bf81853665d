/**
 * The telemetry ports (docs/ARCHITECTURE.md, "Observability"): what a request reports once it is answered
 * (metrics), where sampled exchanges go (capture), and the trace spans around its dependency calls. Adapters:
 * CloudWatch EMF through Powertools Metrics and the Powertools Tracer in AWS, Prometheus locally, recording ones
 * in the tests.
 */
import type { TrafficRoute } from '../contract/observability';
import type { ShadowComparison } from '../domain/divergence';

/** What one answered inference request reports (one EMF document, one set of Prometheus samples). */
export interface InferenceReport {
  readonly model: string;
  /** The version that answered; absent when the request failed before one was resolved. */
  readonly version?: number;
  /** The alias the request named (or the default one); absent for a request by version number. */
  readonly alias?: string;
  readonly route: TrafficRoute;
  readonly status: number;
  /** Handler total (ms); a batch chunk's: from its read to its answers. */
  readonly latencyMs: number;
  /** The onnxruntime run(s) (ms). */
  readonly inferenceMs?: number;
  /** Artifact fetch, verification and session creation the request waited for (ms). */
  readonly modelLoadMs?: number;
  readonly coldStart: boolean;
  readonly payloadBytes: number;
  /** Rows scored (the request's batch dimension, or a batch chunk's lines). */
  readonly batchRows?: number;
  /** Capture records of this request that could not be written. */
  readonly captureErrors?: number;
  /** The inference id: a property of the document, never a dimension. */
  readonly inferenceId?: string;
}

/**
 * A shadow mirror of an answered request that was not sent (`ShadowMirrorErrors`, see `ShadowMirror`): reported on
 * its own once the mirror settled (or its wait was over), on the dimensions of the request that was answered.
 */
export interface ShadowMirrorFailure {
  readonly model: string;
  /** The version that answered the caller. */
  readonly version: number;
  readonly alias: string;
  readonly route: TrafficRoute;
  /** The inference id: a property of the document, never a dimension. */
  readonly inferenceId?: string;
}

/** What one answered registry request reports. */
export interface OperationReport {
  readonly operation: string;
  readonly status: number;
  readonly latencyMs: number;
  readonly coldStart: boolean;
}

export interface MetricsSink {
  /** Records (and, in AWS, flushes as one EMF document) one inference request. Never throws. */
  inference(report: InferenceReport): void;
  /** Records one registry request. Never throws. */
  operation(report: OperationReport): void;
  /**
   * Records one mirrored request run on its shadow version and compared (`ShadowRequests`, `ShadowErrors`, the
   * divergence metrics of each output; `SHADOW_METRICS`). Optional: sinks without it report no shadow. Never throws.
   */
  shadow?(comparison: ShadowComparison): void;
  /** Records one shadow mirror that was not sent (`ShadowMirrorErrors`). Optional: sinks without it count none. Never throws. */
  shadowMirrorFailed?(failure: ShadowMirrorFailure): void;
}

/**
 * Where capture records go: one JSON line each. It may return a promise; the caller waits for it at most
 * `LIMITS.captureBudgetMs` and counts a rejection or a timeout as a `CaptureErrors`.
 */
export interface CaptureSink {
  write(model: string, version: number, line: string): void | Promise<void>;
}

/** Trace annotations of a request (searchable in X-Ray). */
export type TraceAnnotations = Readonly<Record<string, string | number | boolean>>;

export interface Tracer {
  /** Whether spans are recorded at all; when false the decorators are not installed (zero cost). */
  readonly enabled: boolean;
  /** Runs `fn` inside a subsegment named `name`; an error is recorded on it and rethrown. */
  span<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** Annotates the current request's segment (in Lambda: its invocation's subsegment; Lambda's own takes none). */
  annotate(annotations: TraceAnnotations): void;
}

/** The tracer of code that is not traced. */
export const noTracer: Tracer = {
  enabled: false,
  span: (_name, fn) => fn(),
  annotate: () => {},
};

/** The metrics sink of code that reports nothing. */
export const noMetrics: MetricsSink = { inference: () => {}, operation: () => {} };

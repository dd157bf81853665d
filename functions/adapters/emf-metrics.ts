/**
 * The `MetricsSink` port on Powertools Metrics: one CloudWatch EMF document per answered request, written as one
 * stdout line that CloudWatch turns into metrics (no API call, no client). Names, units, namespace and dimension
 * sets come from functions/contract/observability.ts.
 *
 * An inference document carries the three dimension sets of the contract at once — {model}, {model, version},
 * {model, alias, route} — so one line feeds every view of the request; the inference id and the status are
 * properties of the document (searchable in CloudWatch Logs Insights), never dimensions. Powertools' default
 * `service` dimension is cleared: a model's numbers are the same whichever function answered.
 *
 * Each call adds its metrics and flushes them synchronously, so the requests of a process that serves several at
 * once (the local server) can never mix their dimensions.
 *
 * The registry, the worker and batch write their documents with it; the predict function writes the same inference
 * document from a template (`EmfLineSink`, functions/adapters/emf-lines.ts), a test checking that both agree.
 */
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  INFERENCE_DIMENSION_SETS,
  METRICS,
  METRICS_NAMESPACE,
  type MetricName,
  SHADOW_METRICS,
  SHADOW_ROUTE,
  type ShadowMetricName,
} from '../contract/observability';
import type { ShadowComparison } from '../domain/divergence';
import type { InferenceReport, MetricsSink, OperationReport, ShadowMirrorFailure } from '../ports/telemetry';

export interface EmfMetricsOptions {
  /** The `service` property of the documents (the function: `maas-predict`). */
  readonly serviceName: string;
  /** Where the EMF lines go. @default Powertools' own: a console on stdout (what CloudWatch reads in Lambda) */
  readonly output?: (line: string) => void;
}

type DimensionName = (typeof INFERENCE_DIMENSION_SETS)[number][number];

/**
 * Powertools' own warnings, less the one it writes (to stderr, on every flush) when dimension sets share a key:
 * the contract's sets share `model` by design, and EMF reads each set on its own.
 */
const quietAboutSharedDimensions = {
  debug: () => {},
  info: (...args: unknown[]) => console.info(...args),
  warn: (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('defined as both a dimension set and dimension set'))
      return;
    console.warn(...args);
  },
  error: (...args: unknown[]) => console.error(...args),
};

/** EMF documents through Powertools Metrics (see the module comment). */
export class EmfMetricsSink implements MetricsSink {
  readonly #metrics: Metrics;
  readonly #service: string;

  constructor(options: EmfMetricsOptions) {
    this.#service = options.serviceName;
    this.#metrics = new Metrics({
      namespace: METRICS_NAMESPACE,
      serviceName: options.serviceName,
      logger: quietAboutSharedDimensions,
    });
    this.#metrics.clearDefaultDimensions();
    if (options.output) {
      const write = options.output;
      // Powertools writes through its own console object; tests and the benchmark route it elsewhere.
      (this.#metrics as unknown as { console: Pick<Console, 'log'> }).console = {
        log: (line) => write(line),
      };
    }
  }

  inference(r: InferenceReport): void {
    const m = this.#metrics;
    try {
      const values: Record<DimensionName, string | undefined> = {
        model: r.model,
        version: r.version === undefined ? undefined : String(r.version),
        alias: r.alias,
        route: r.route,
      };
      // Each set of the contract whose dimensions all have a value (no version before one was resolved).
      sets: for (const set of INFERENCE_DIMENSION_SETS) {
        const dimensions: Record<string, string> = {};
        for (const name of set) {
          const value = values[name];
          if (value === undefined) continue sets;
          dimensions[name] = value;
        }
        m.addDimensions(dimensions);
      }
      // In the order of the contract's list (the template writes the same order).
      this.#counts(r.status, r.latencyMs);
      if (r.inferenceMs !== undefined) this.#add('InferenceLatency', r.inferenceMs);
      if (r.modelLoadMs !== undefined) this.#add('ModelLoadLatency', r.modelLoadMs);
      if (r.coldStart) this.#add('ColdStart', 1);
      this.#add('PayloadBytes', r.payloadBytes);
      if (r.batchRows !== undefined) this.#add('BatchRows', r.batchRows);
      if (r.captureErrors) this.#add('CaptureErrors', r.captureErrors);
      if (r.inferenceId !== undefined) m.addMetadata('inferenceId', r.inferenceId);
      m.addMetadata('status', String(r.status));
      m.addMetadata('service', this.#service);
      m.publishStoredMetrics();
    } catch {
      this.#reset();
    }
  }

  /** A shadow mirror not sent: `ShadowMirrorErrors` 1 on the inference dimension sets of the answered request. */
  shadowMirrorFailed(f: ShadowMirrorFailure): void {
    const m = this.#metrics;
    try {
      const values: Record<DimensionName, string> = {
        model: f.model,
        version: String(f.version),
        alias: f.alias,
        route: f.route,
      };
      for (const set of INFERENCE_DIMENSION_SETS) {
        m.addDimensions(Object.fromEntries(set.map((name) => [name, values[name]])));
      }
      this.#add('ShadowMirrorErrors', 1);
      if (f.inferenceId !== undefined) m.addMetadata('inferenceId', f.inferenceId);
      m.addMetadata('service', this.#service);
      m.publishStoredMetrics();
    } catch {
      this.#reset();
    }
  }

  /**
   * One document per comparison (`ShadowRequests`, `ShadowErrors` on {model, alias, route} and {model, version})
   * and one per output compared (the divergence metrics, also on {model, alias, route, output}); `route` is
   * `shadow`, `version` the shadow version.
   */
  shadow(c: ShadowComparison): void {
    const m = this.#metrics;
    const base = { model: c.model, alias: c.alias, route: SHADOW_ROUTE };
    const byVersion = { model: c.model, version: String(c.shadowVersion) };
    try {
      m.addDimensions(base);
      m.addDimensions(byVersion);
      this.#addShadow('ShadowRequests', 1);
      if (c.failed) this.#addShadow('ShadowErrors', 1);
      this.#shadowMetadata(c);
      m.publishStoredMetrics();
      for (const o of c.outputs) {
        m.addDimensions(base);
        m.addDimensions({ ...base, output: o.output });
        m.addDimensions(byVersion);
        if (o.argmaxAgreement !== undefined) this.#addShadow('ShadowArgmaxAgreement', o.argmaxAgreement);
        this.#addShadow('ShadowMaxAbsDiff', o.maxAbsDiff);
        if (o.klDivergence !== undefined) this.#addShadow('ShadowKlDivergence', o.klDivergence);
        this.#shadowMetadata(c);
        m.publishStoredMetrics();
      }
    } catch {
      this.#reset();
    }
  }

  #addShadow(name: ShadowMetricName, value: number): void {
    this.#metrics.addMetric(name, SHADOW_METRICS[name], value);
  }

  #shadowMetadata(c: ShadowComparison): void {
    const m = this.#metrics;
    m.addMetadata('inferenceId', c.inferenceId);
    m.addMetadata('servedVersion', String(c.servedVersion));
    if (c.error !== undefined) m.addMetadata('error', c.error);
    m.addMetadata('service', this.#service);
  }

  operation(r: OperationReport): void {
    const m = this.#metrics;
    try {
      m.addDimensions({ operation: r.operation });
      this.#counts(r.status, r.latencyMs);
      if (r.coldStart) this.#add('ColdStart', 1);
      m.addMetadata('status', String(r.status));
      m.addMetadata('service', this.#service);
      m.publishStoredMetrics();
    } catch {
      this.#reset();
    }
  }

  /** Requests, the error class of the status, and Latency. */
  #counts(status: number, latencyMs: number): void {
    this.#add('Requests', 1);
    if (status >= 500) this.#add('ServerErrors', 1);
    else if (status >= 400) this.#add('ClientErrors', 1);
    this.#add('Latency', latencyMs);
  }

  #add(name: MetricName, value: number): void {
    this.#metrics.addMetric(name, METRICS[name], value);
  }

  /** Metrics never fail a request: what a failed document had stored is dropped. */
  #reset(): void {
    try {
      this.#metrics.clearMetrics();
      this.#metrics.clearDimensions();
      this.#metrics.clearMetadata();
    } catch {
      // nothing more to do
    }
  }
}

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
 * Two implementations write the same documents. `EmfMetricsSink` is Powertools Metrics itself, for the registry,
 * async and batch paths. `EmfLineSink` writes the inference document as one template string: Powertools takes about
 * 35 µs per document here (its stores, key-collision checks and console formatting), a tenth of a warm MLP
 * request; the template takes about 2 µs (docs/performance.md, "Observability"). A test checks that both write
 * the same document for the same report.
 */
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  INFERENCE_DIMENSION_SETS,
  METRICS,
  METRICS_NAMESPACE,
  type MetricName,
} from '../contract/observability';
import type { InferenceReport, MetricsSink, OperationReport } from '../ports/telemetry';

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

// ---------------------------------------------------------------------------------------------------------------
// The inference document as a template (see the module comment).

const DEFINITIONS = Object.fromEntries(
  (Object.keys(METRICS) as MetricName[]).map((n) => [n, JSON.stringify({ Name: n, Unit: METRICS[n] })]),
) as Record<MetricName, string>;

/** The `Dimensions` of a document, by which of version and alias it has (the contract's sets with all values). */
const DIMENSIONS: Record<'va' | 'v' | 'a' | '', string> = {
  va: dimensionsJson(true, true),
  v: dimensionsJson(true, false),
  a: dimensionsJson(false, true),
  '': dimensionsJson(false, false),
};

function dimensionsJson(version: boolean, alias: boolean): string {
  const has = (name: DimensionName) => (name === 'version' ? version : name === 'alias' ? alias : true);
  return JSON.stringify(INFERENCE_DIMENSION_SETS.filter((set) => set.every(has)));
}

export interface EmfLineOptions extends EmfMetricsOptions {
  /**
   * Write the documents after the current task (one write for all of them, in a `setImmediate`) instead of before
   * the answer: in Lambda the runtime posts the answer first and asks for the next invocation only after that
   * post completes, so the write still lands within the invocation, and the caller does not wait for it.
   * @default false
   */
  readonly afterAnswer?: boolean;
}

const METRIC_NAMES = Object.keys(METRICS) as MetricName[];
const BIT = Object.fromEntries(METRIC_NAMES.map((n, i) => [n, 1 << i])) as Record<MetricName, number>;
const SAFE_ID = /^[\w.:@/+=-]{1,256}$/;

/** Inference documents written as one template string each; registry documents through Powertools. */
export class EmfLineSink implements MetricsSink {
  readonly #write: (line: string) => void;
  readonly #afterAnswer: boolean;
  readonly #options: EmfLineOptions;
  /** Powertools, for registry documents: made on the first one (a predict function writes none). */
  #operations: EmfMetricsSink | undefined;
  readonly #service: string;
  /** `Metrics` definitions by the bit set of the metrics present. */
  readonly #definitions = new Map<number, string>();
  /** The dimension properties of a document, by model, version and alias. */
  readonly #properties = new Map<string, Map<number | undefined, Map<string | undefined, string>>>();
  #pending: InferenceReport[] = [];
  /** Entries of `#properties`. */
  #cached = 0;

  constructor(options: EmfLineOptions) {
    this.#service = JSON.stringify(options.serviceName);
    this.#write = options.output ?? ((line: string) => process.stdout.write(`${line}\n`));
    this.#afterAnswer = options.afterAnswer ?? false;
    this.#options = options;
  }

  inference(r: InferenceReport): void {
    if (!this.#afterAnswer) {
      this.#writeLines([r]);
      return;
    }
    // After the answer: the report is kept as it is, and made into its document with the others of this task.
    this.#pending.push(r);
    if (this.#pending.length === 1) {
      setImmediate(() => {
        const reports = this.#pending;
        this.#pending = [];
        this.#writeLines(reports);
      });
    }
  }

  /** Writes the documents of `reports` in one write. */
  #writeLines(reports: readonly InferenceReport[]): void {
    try {
      let text = this.#document(reports[0] as InferenceReport);
      for (let i = 1; i < reports.length; i++) text += `\n${this.#document(reports[i] as InferenceReport)}`;
      this.#write(text);
    } catch {
      // Metrics never fail a request.
    }
  }

  /** The EMF document of one report. */
  #document(r: InferenceReport): string {
    {
      const hasVersion = r.version !== undefined;
      const hasAlias = r.alias !== undefined;
      let present = BIT.Requests | BIT.Latency | BIT.PayloadBytes;
      let values = `"Requests":1`;
      if (r.status >= 500) {
        present |= BIT.ServerErrors;
        values += ',"ServerErrors":1';
      } else if (r.status >= 400) {
        present |= BIT.ClientErrors;
        values += ',"ClientErrors":1';
      }
      values += `,"Latency":${num(r.latencyMs)}`;
      if (r.coldStart) {
        present |= BIT.ColdStart;
        values += ',"ColdStart":1';
      }
      if (r.inferenceMs !== undefined) {
        present |= BIT.InferenceLatency;
        values += `,"InferenceLatency":${num(r.inferenceMs)}`;
      }
      if (r.modelLoadMs !== undefined) {
        present |= BIT.ModelLoadLatency;
        values += `,"ModelLoadLatency":${num(r.modelLoadMs)}`;
      }
      values += `,"PayloadBytes":${num(r.payloadBytes)}`;
      if (r.batchRows !== undefined) {
        present |= BIT.BatchRows;
        values += `,"BatchRows":${num(r.batchRows)}`;
      }
      if (r.captureErrors) {
        present |= BIT.CaptureErrors;
        values += `,"CaptureErrors":${num(r.captureErrors)}`;
      }
      // Dimension sets are part of the definitions' key: which sets a document has depends on version and alias.
      const key = present | (hasVersion ? 1 << 20 : 0) | (hasAlias ? 1 << 21 : 0);
      let head = this.#definitions.get(key);
      if (head === undefined) {
        head = `"CloudWatchMetrics":[{"Namespace":"${METRICS_NAMESPACE}","Dimensions":${DIMENSIONS[hasVersion ? (hasAlias ? 'va' : 'v') : hasAlias ? 'a' : '']},"Metrics":[${METRIC_NAMES.filter(
          (n) => present & BIT[n],
        )
          .map((n) => DEFINITIONS[n])
          .join(',')}]}]},"service":${this.#service}`;
        this.#definitions.set(key, head);
      }
      const id = r.inferenceId;
      const idProp =
        id === undefined ? '' : `,"inferenceId":${SAFE_ID.test(id) ? `"${id}"` : JSON.stringify(id)}`;
      return `{"_aws":{"Timestamp":${Date.now()},${head},"status":"${r.status}",${this.#props(r)}${idProp},${values}}`;
    }
  }

  operation(r: OperationReport): void {
    this.#operations ??= new EmfMetricsSink(this.#options);
    this.#operations.operation(r);
  }

  /** `"model":…,"version":…,"alias":…,"route":…` of a report, made once per model, version and alias. */
  #props(r: InferenceReport): string {
    let byVersion = this.#properties.get(r.model);
    if (!byVersion) {
      byVersion = new Map();
      this.#properties.set(r.model, byVersion);
    }
    let byAlias = byVersion.get(r.version);
    if (!byAlias) {
      byAlias = new Map();
      byVersion.set(r.version, byAlias);
    }
    // The route is part of the alias's properties: one route per alias until traffic is split.
    const aliasKey = r.alias === undefined ? undefined : `${r.alias}\u0000${r.route}`;
    let props = byAlias.get(aliasKey);
    if (props === undefined) {
      props = `"model":${JSON.stringify(r.model)}`;
      if (r.version !== undefined) props += `,"version":"${r.version}"`;
      if (r.alias !== undefined)
        props += `,"alias":${JSON.stringify(r.alias)},"route":${JSON.stringify(r.route)}`;
      // Names come from the registry (never from a path as sent), so this stays small; bounded all the same.
      if (++this.#cached > 10_000) {
        this.#properties.clear();
        this.#cached = 0;
      } else byAlias.set(aliasKey, props);
    }
    return props;
  }
}

/** A metric value as JSON (a non-finite number, which JSON cannot carry, is 0). */
const num = (value: number): string => (Number.isFinite(value) ? String(value) : '0');

/**
 * The predict function's `MetricsSink`: the inference document of functions/adapters/emf-metrics.ts (the same
 * CloudWatch EMF document Powertools Metrics writes, names, units, namespace and dimension sets from
 * functions/contract/observability.ts) written from a template. Powertools Metrics costs about 85 µs of CPU per
 * document in the predict process, a fifth of a warm MLP request; the template about 3 µs (docs/performance.md,
 * "Observability"). It imports no Powertools module, so the predict bundle neither carries nor evaluates one. A
 * unit test checks that both write the same document for the same report.
 *
 * With `afterAnswer`, a report is kept as it is and made into its line after the current task, with the other
 * reports of that task, in one write (see `EmfLineOptions.afterAnswer`).
 */
import {
  INFERENCE_DIMENSION_SETS,
  METRICS,
  METRICS_NAMESPACE,
  type MetricName,
} from '../contract/observability';
import type { InferenceReport, MetricsSink, OperationReport, ShadowMirrorFailure } from '../ports/telemetry';

type DimensionName = (typeof INFERENCE_DIMENSION_SETS)[number][number];

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

export interface EmfLineOptions {
  /** The `service` property of the documents (the function: `maas-predict`). */
  readonly serviceName: string;
  /** Where the EMF lines go. @default process.stdout, one line each (what CloudWatch reads in Lambda) */
  readonly output?: (line: string) => void;
  /**
   * Where registry operations are reported (this sink writes inference documents only).
   * @default none: operations are not reported
   */
  readonly operations?: MetricsSink;
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

/** Inference documents written as one template string each (see the module comment). */
export class EmfLineSink implements MetricsSink {
  readonly #write: (line: string) => void;
  readonly #afterAnswer: boolean;
  readonly #operations: MetricsSink | undefined;
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
    this.#operations = options.operations;
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
    this.#operations?.operation(r);
  }

  /**
   * A shadow mirror not sent: one document of `ShadowMirrorErrors` 1 on the inference dimension sets of the answered
   * request, written at once (a mirror settles long after its request's answer).
   */
  shadowMirrorFailed(f: ShadowMirrorFailure): void {
    try {
      const id = f.inferenceId;
      const idProp =
        id === undefined ? '' : `,"inferenceId":${SAFE_ID.test(id) ? `"${id}"` : JSON.stringify(id)}`;
      this.#write(
        `{"_aws":{"Timestamp":${Date.now()},"CloudWatchMetrics":[{"Namespace":"${METRICS_NAMESPACE}","Dimensions":${DIMENSIONS.va},"Metrics":[${DEFINITIONS.ShadowMirrorErrors}]}]},"service":${this.#service},${this.#props({ model: f.model, version: f.version, alias: f.alias, route: f.route } as InferenceReport)}${idProp},"ShadowMirrorErrors":1}`,
      );
    } catch {
      // Metrics never fail a request.
    }
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

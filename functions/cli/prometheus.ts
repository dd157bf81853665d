/**
 * What `maas stats` reads from the local `/metrics`: the Prometheus text exposition format (0.0.4) parsed into
 * samples, the inference metrics of the observability contract summed per model, version, alias and route, and
 * latency quantiles estimated from the histogram buckets as Prometheus' `histogram_quantile` does.
 *
 * Written here rather than taken from a package: the one parser on the npm registry,
 * parse-prometheus-text-format 1.1.1, merges the series of a labelled histogram into one and drops their labels,
 * `_sum` and `_count` (checked on the text prom-client writes), which is exactly what this needs; the format
 * itself is a few lines of grammar.
 */
import { type MetricName, prometheusName } from '../contract/observability';

/** One sample line: `name{label="value",…} value [timestamp]`. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A line that is not a sample of the text format. */
export class PrometheusParseError extends Error {
  constructor(line: number, why: string) {
    super(`metrics line ${line}: ${why}`);
    this.name = 'PrometheusParseError';
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Parses the text format: every sample, comments (`# HELP`, `# TYPE`) and blank lines skipped. */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = (lines[n] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    samples.push(parseSample(line, n + 1));
  }
  return samples;
}

function parseSample(line: string, n: number): Sample {
  const name = NAME.exec(line)?.[0];
  if (!name) throw new PrometheusParseError(n, 'no metric name');
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const label = LABEL.exec(line.slice(i))?.[0];
      if (!label) throw new PrometheusParseError(n, 'bad label name');
      i += label.length;
      while (line[i] === ' ') i++;
      if (line[i] !== '=' || line[i + 1] !== '"')
        throw new PrometheusParseError(n, `label ${label} has no value`);
      i += 2;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new PrometheusParseError(n, 'unterminated label value');
        i++;
        if (c === '"') break;
        if (c === '\\') {
          const e = line[i++];
          value += e === 'n' ? '\n' : (e ?? '');
        } else value += c;
      }
      labels[label] = value;
    }
  }
  const [raw] = line.slice(i).trim().split(/\s+/);
  const value = parseValue(raw ?? '');
  if (value === undefined) throw new PrometheusParseError(n, `bad value '${raw ?? ''}'`);
  return { name, labels, value };
}

function parseValue(raw: string): number | undefined {
  if (raw === '+Inf' || raw === 'Inf') return Number.POSITIVE_INFINITY;
  if (raw === '-Inf') return Number.NEGATIVE_INFINITY;
  if (raw === 'NaN') return Number.NaN;
  if (raw === '' || !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) return undefined;
  return Number(raw);
}

/** One bucket of a histogram: the count of observations at most `le`. */
export interface Bucket {
  readonly le: number;
  readonly count: number;
}

/**
 * The `q`-quantile (0-1) of a histogram, as Prometheus' `histogram_quantile` estimates it: linear interpolation
 * within the bucket the rank falls in (from 0 for the first bucket), the upper bound of the highest finite
 * bucket when the rank falls in `+Inf`; NaN without observations or without a `+Inf` bucket.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number {
  if (Number.isNaN(q)) return Number.NaN;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  // Counts are cumulative, hence monotonic; a scrape may still catch them otherwise (Prometheus fixes that too).
  let max = 0;
  const bs = sorted.map((b) => {
    max = Math.max(max, b.count);
    return { le: b.le, count: max };
  });
  const last = bs.at(-1);
  if (bs.length < 2 || last === undefined || last.le !== Number.POSITIVE_INFINITY) return Number.NaN;
  const total = last.count;
  if (total === 0) return Number.NaN;
  let rank = q * total;
  let b = bs.findIndex((x) => x.count >= rank);
  if (b === bs.length - 1) return (bs[bs.length - 2] as Bucket).le;
  if (b === 0 && (bs[0] as Bucket).le <= 0) return (bs[0] as Bucket).le;
  if (b < 0) b = bs.length - 1;
  const upper = bs[b] as Bucket;
  let start = 0;
  let count = upper.count;
  if (b > 0) {
    const prev = bs[b - 1] as Bucket;
    start = prev.le;
    count -= prev.count;
    rank -= prev.count;
  }
  return count === 0 ? start : start + (upper.le - start) * (rank / count);
}

/** The inference metrics of one model, version, alias and route (labels empty when absent). */
export interface SeriesStats {
  readonly model: string;
  readonly version: string;
  readonly alias: string;
  readonly route: string;
  readonly requests: number;
  readonly clientErrors: number;
  readonly serverErrors: number;
  readonly coldStarts: number;
  readonly payloadBytes: number;
  /** Estimated from `maas_latency_ms` (NaN without observations). */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const COUNTERS = {
  requests: 'Requests',
  clientErrors: 'ClientErrors',
  serverErrors: 'ServerErrors',
  coldStarts: 'ColdStart',
  payloadBytes: 'PayloadBytes',
} as const satisfies Record<string, MetricName>;

/**
 * The inference series of the samples, grouped by `model`, `version`, `alias` and `route` (the registry's
 * `operation` series and every other metric are left out), in model, version, alias, route order; only `model`'s
 * when it is given.
 */
export function inferenceStats(samples: readonly Sample[], model?: string): SeriesStats[] {
  const counterOf = new Map<string, keyof typeof COUNTERS>(
    Object.entries(COUNTERS).map(([field, metric]) => [
      prometheusName(metric),
      field as keyof typeof COUNTERS,
    ]),
  );
  const latencyBucket = `${prometheusName('Latency')}_bucket`;
  type Acc = { -readonly [K in keyof typeof COUNTERS]: number } & { buckets: Map<number, number> };
  const series = new Map<string, { labels: [string, string, string, string]; acc: Acc }>();
  for (const s of samples) {
    const counter = counterOf.get(s.name);
    if (counter === undefined && s.name !== latencyBucket) continue;
    const l = s.labels;
    if (l.model === undefined || l.operation !== undefined) continue;
    if (model !== undefined && l.model !== model) continue;
    const labels: [string, string, string, string] = [l.model, l.version ?? '', l.alias ?? '', l.route ?? ''];
    const id = JSON.stringify(labels);
    let entry = series.get(id);
    if (!entry) {
      entry = {
        labels,
        acc: {
          requests: 0,
          clientErrors: 0,
          serverErrors: 0,
          coldStarts: 0,
          payloadBytes: 0,
          buckets: new Map(),
        },
      };
      series.set(id, entry);
    }
    if (counter !== undefined) entry.acc[counter] += s.value;
    else {
      const le = parseValue(l.le ?? '');
      if (le !== undefined) entry.acc.buckets.set(le, (entry.acc.buckets.get(le) ?? 0) + s.value);
    }
  }
  const byVersion = (a: string, b: string) => (Number(a) || 0) - (Number(b) || 0) || a.localeCompare(b);
  return [...series.values()]
    .sort(
      (x, y) =>
        x.labels[0].localeCompare(y.labels[0]) ||
        byVersion(x.labels[1], y.labels[1]) ||
        x.labels[2].localeCompare(y.labels[2]) ||
        x.labels[3].localeCompare(y.labels[3]),
    )
    .map(({ labels: [m, version, alias, route], acc }) => {
      const buckets = [...acc.buckets].map(([le, count]) => ({ le, count }));
      return {
        model: m,
        version,
        alias,
        route,
        requests: acc.requests,
        clientErrors: acc.clientErrors,
        serverErrors: acc.serverErrors,
        coldStarts: acc.coldStarts,
        payloadBytes: acc.payloadBytes,
        p50Ms: histogramQuantile(0.5, buckets),
        p99Ms: histogramQuantile(0.99, buckets),
      };
    });
}

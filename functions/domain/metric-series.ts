/**
 * The Live page's series (docs/console.md, "Live"): requests, client and server errors per second and latency
 * quantiles per model version, on one grid of times, with the totals of the window. Both sources give this one
 * shape — the local `/metrics` scraped by the page (console/src/live.ts) and CloudWatch read by `maas console`'s
 * server — so the page draws them alike.
 *
 * For CloudWatch, this module also says which figures to ask for ({@link liveQueries}: the contract's namespace,
 * metric names and `{model, version}` dimension set, at a period of one minute) and turns the answers into the
 * series ({@link shapeLive}). Pure: the adapter (adapters/cloudwatch-metrics-reader.ts) sends the queries.
 */
import { INFERENCE_DIMENSION_SETS, METRICS_NAMESPACE, type MetricName } from '../contract/observability';

/** One model version's figures, point by point on {@link LiveMetrics.times}. */
export interface LiveSeries {
  /** `model@vN`. */
  readonly key: string;
  readonly model: string;
  /** The version number as the metrics carry it (a string: the dimension's or label's value). */
  readonly version: string;
  /** Per point: requests per second; null where the source has no figure (yet). */
  readonly requestsPerSec: readonly (number | null)[];
  /** Per point: 4xx answers per second. */
  readonly clientErrorsPerSec: readonly (number | null)[];
  /** Per point: 5xx answers per second. */
  readonly serverErrorsPerSec: readonly (number | null)[];
  /** Per point: latency quantiles (ms); null without a request in the interval. */
  readonly p50Ms: readonly (number | null)[];
  readonly p90Ms: readonly (number | null)[];
  readonly p99Ms: readonly (number | null)[];
  /** Over {@link LiveMetrics.totalsOver}. */
  readonly totals: LiveTotals;
}

export interface LiveTotals {
  readonly requests: number;
  readonly clientErrors: number;
  readonly serverErrors: number;
  /** Latency quantiles (ms); null without requests. */
  readonly p50Ms: number | null;
  readonly p90Ms: number | null;
  readonly p99Ms: number | null;
}

/** What the Live page draws, from either source. */
export interface LiveMetrics {
  /** `prometheus`: the local `/metrics`; `cloudwatch`: CloudWatch through `maas console`. */
  readonly source: 'prometheus' | 'cloudwatch';
  /** The end of each point's interval (epoch ms), ascending. */
  readonly times: readonly number[];
  /** The length of each interval (s): one minute for CloudWatch, the time between two scrapes locally. */
  readonly periodSeconds: number;
  /** What the totals cover: since the service started (local counters), or the window of `times` (CloudWatch). */
  readonly totalsOver: 'service' | 'window';
  /** One per model version with at least one figure, sorted by model and version. */
  readonly series: readonly LiveSeries[];
  /** True when some model versions were not read (more than one read covers): ask for one model. */
  readonly truncated?: boolean;
}

/** The key of a model version's series. */
export const seriesKey = (model: string, version: string): string => `${model}@v${version}`;

/** Sorts series by model, then by version number (v2 before v10). */
export function compareSeries(
  a: Pick<LiveSeries, 'model' | 'version'>,
  b: Pick<LiveSeries, 'model' | 'version'>,
) {
  if (a.model !== b.model) return a.model < b.model ? -1 : 1;
  const d = Number(a.version) - Number(b.version);
  return Number.isNaN(d) || d === 0 ? (a.version < b.version ? -1 : a.version > b.version ? 1 : 0) : d;
}

// --- CloudWatch -------------------------------------------------------------------------------------------------

/** The period of the Live page's CloudWatch figures (s): one minute, the finest of standard-resolution metrics. */
export const LIVE_PERIOD_SECONDS = 60;

/** The window the page asks for by default, and the longest it may ask (minutes). */
export const LIVE_MINUTES = { default: 10, max: 180 } as const;

/** The contract's dimension set of a model version's figures (summed over its aliases and routes). */
export const VERSION_DIMENSIONS = INFERENCE_DIMENSION_SETS.find(
  (s) => s.length === 2 && s.includes('model') && s.includes('version'),
) as readonly ['model', 'version'];

/** A model version whose figures are asked for. */
export interface VersionRef {
  readonly model: string;
  readonly version: number;
}

/** A statistic of a CloudWatch metric. */
export type LiveStat = 'Sum' | 'p50' | 'p90' | 'p99';

/** One figure to read: a metric of the contract, on a model version's dimensions, with a statistic and period. */
export interface MetricQuery {
  /** Unique in one call; ties the answer to the query (`[a-z][a-zA-Z0-9_]*`, as GetMetricData requires). */
  readonly id: string;
  readonly namespace: string;
  readonly metric: MetricName;
  /** Dimension name → value, in the contract's order. */
  readonly dimensions: readonly { readonly name: string; readonly value: string }[];
  readonly stat: LiveStat;
  readonly periodSeconds: number;
}

/** The answer to one query: timestamps (epoch ms, the start of each period) and values, in any order. */
export interface QueryResult {
  readonly id: string;
  readonly timestamps: readonly number[];
  readonly values: readonly number[];
}

/** The time range of a read: whole periods ending at `end` (epoch ms, both multiples of the period). */
export interface LiveWindow {
  readonly start: number;
  readonly end: number;
  readonly periodSeconds: number;
}

/**
 * The window of the last `minutes` whole minutes before `now`: the minute in progress is left out, its figures are
 * not complete.
 */
export function liveWindow(now: number, minutes: number, periodSeconds = LIVE_PERIOD_SECONDS): LiveWindow {
  const p = periodSeconds * 1000;
  const end = Math.floor(now / p) * p;
  return { start: end - Math.max(1, Math.round(minutes)) * 60_000, end, periodSeconds };
}

/** What each version is asked: per period, then over the whole window (the totals' quantiles). */
const PER_PERIOD: readonly { part: string; metric: MetricName; stat: LiveStat }[] = [
  { part: 'req', metric: 'Requests', stat: 'Sum' },
  { part: 'cli', metric: 'ClientErrors', stat: 'Sum' },
  { part: 'srv', metric: 'ServerErrors', stat: 'Sum' },
  { part: 'p50', metric: 'Latency', stat: 'p50' },
  { part: 'p90', metric: 'Latency', stat: 'p90' },
  { part: 'p99', metric: 'Latency', stat: 'p99' },
];
const OVER_WINDOW: readonly { part: string; metric: MetricName; stat: LiveStat }[] = [
  { part: 't50', metric: 'Latency', stat: 'p50' },
  { part: 't90', metric: 'Latency', stat: 'p90' },
  { part: 't99', metric: 'Latency', stat: 'p99' },
];

/** Queries per model version ({@link liveQueries} asks this many for each). */
export const QUERIES_PER_VERSION = PER_PERIOD.length + OVER_WINDOW.length;

/**
 * The queries of the Live page for `versions` over `window`: per version, the requests, client errors and server
 * errors (Sum) and the latency p50, p90 and p99 of each period, and the latency quantiles over the whole window.
 * Query ids are `v{index}_{part}`.
 */
export function liveQueries(versions: readonly VersionRef[], window: LiveWindow): MetricQuery[] {
  const windowSeconds = Math.round((window.end - window.start) / 1000);
  return versions.flatMap((v, i) => {
    const values: Record<string, string> = { model: v.model, version: String(v.version) };
    const dimensions = VERSION_DIMENSIONS.map((name) => ({ name, value: values[name] as string }));
    const q = (parts: typeof PER_PERIOD, periodSeconds: number) =>
      parts.map(({ part, metric, stat }) => ({
        id: `v${i}_${part}`,
        namespace: METRICS_NAMESPACE,
        metric,
        dimensions,
        stat,
        periodSeconds,
      }));
    return [...q(PER_PERIOD, window.periodSeconds), ...q(OVER_WINDOW, windowSeconds)];
  });
}

/**
 * The series of `versions` from the answers to {@link liveQueries}. The grid is every period of the window (its
 * end is each period's start plus the period). A count with no data point is 0 up to the last period any answer
 * has a point for (no request was counted: the metrics are written per request) and null after it (not
 * reported yet: CloudWatch receives the figures a minute or so late); a quantile with no data point is null.
 * Versions without a single data point are left out. Totals are the window's sums and quantiles.
 */
export function shapeLive(
  versions: readonly VersionRef[],
  results: readonly QueryResult[],
  window: LiveWindow,
): LiveMetrics {
  const p = window.periodSeconds * 1000;
  const starts: number[] = [];
  for (let t = window.start; t < window.end; t += p) starts.push(t);
  const byId = new Map<string, Map<number, number>>();
  const windowIds = new Set(versions.flatMap((_, i) => OVER_WINDOW.map(({ part }) => `v${i}_${part}`)));
  let last = Number.NEGATIVE_INFINITY;
  for (const r of results) {
    let points = byId.get(r.id);
    if (!points) {
      points = new Map();
      byId.set(r.id, points);
    }
    r.timestamps.forEach((t, j) => {
      const v = r.values[j];
      if (v === undefined || !Number.isFinite(v)) return;
      points.set(t, v);
      if (!windowIds.has(r.id) && t > last && t >= window.start && t < window.end) last = t;
    });
  }
  const series: LiveSeries[] = [];
  versions.forEach((v, i) => {
    const points = (part: string) => byId.get(`v${i}_${part}`) ?? new Map<number, number>();
    const parts = [...PER_PERIOD, ...OVER_WINDOW].map(({ part }) => points(part));
    if (parts.every((m) => m.size === 0)) return;
    const rate = (part: string) => {
      const m = points(part);
      return starts.map((t) => {
        const v = m.get(t);
        if (v !== undefined) return v / window.periodSeconds;
        return t <= last ? 0 : null;
      });
    };
    const quantile = (part: string) => {
      const m = points(part);
      return starts.map((t) => m.get(t) ?? null);
    };
    const sum = (part: string) => starts.reduce((s, t) => s + (points(part).get(t) ?? 0), 0);
    /** The window's quantile: its one point (the earliest, if the period was split). */
    const over = (part: string) => {
      const m = points(part);
      const first = [...m.keys()].sort((a, b) => a - b)[0];
      return first === undefined ? null : (m.get(first) as number);
    };
    const version = String(v.version);
    series.push({
      key: seriesKey(v.model, version),
      model: v.model,
      version,
      requestsPerSec: rate('req'),
      clientErrorsPerSec: rate('cli'),
      serverErrorsPerSec: rate('srv'),
      p50Ms: quantile('p50'),
      p90Ms: quantile('p90'),
      p99Ms: quantile('p99'),
      totals: {
        requests: sum('req'),
        clientErrors: sum('cli'),
        serverErrors: sum('srv'),
        p50Ms: over('t50'),
        p90Ms: over('t90'),
        p99Ms: over('t99'),
      },
    });
  });
  return {
    source: 'cloudwatch',
    times: starts.map((t) => t + p),
    periodSeconds: window.periodSeconds,
    totalsOver: 'window',
    series: series.sort(compareSeries),
  };
}

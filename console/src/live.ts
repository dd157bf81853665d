/**
 * The Live page's figures (no DOM). Locally: scrapes of the local `/metrics` (Prometheus text) summed per model and
 * version, and per interval between two scrapes: requests, client and server errors per second, latency p50, p90
 * and p99 from the histogram buckets of the interval — turned into the {@link LiveMetrics} that `maas console`
 * answers from CloudWatch against a stack, so the page draws both alike.
 */
import { histogramQuantile, parsePrometheusText } from '../../functions/cli/prometheus';
import { prometheusName, UNRESOLVED_MODEL } from '../../functions/contract/observability';
import {
  compareSeries,
  type LiveMetrics,
  type LiveSeries,
  seriesKey,
} from '../../functions/domain/metric-series';

export { seriesKey };

/** The cumulative figures of one model version at one scrape. */
export interface Totals {
  requests: number;
  clientErrors: number;
  serverErrors: number;
  /** Cumulative count per latency bucket bound (ms, `+Inf` included). */
  buckets: Map<number, number>;
}

/** One scrape: its time and the totals per `model@vN`. */
export interface Scrape {
  readonly at: number;
  readonly series: ReadonlyMap<string, Totals>;
}

/** The figures of one series over one interval (null: no request in it, for latency; nothing known, in a gap). */
export interface Point {
  readonly requestsPerSec: number | null;
  readonly clientErrorsPerSec: number | null;
  readonly serverErrorsPerSec: number | null;
  readonly p50Ms: number | null;
  readonly p90Ms: number | null;
  readonly p99Ms: number | null;
}

const REQUESTS = prometheusName('Requests');
const CLIENT_ERRORS = prometheusName('ClientErrors');
const SERVER_ERRORS = prometheusName('ServerErrors');
const LATENCY_BUCKET = `${prometheusName('Latency')}_bucket`;

/**
 * The totals per model version of a `/metrics` text. Left out: the registry's `operation` series, and requests
 * answered before a version was chosen (an unknown model, counted under `UNRESOLVED_MODEL`, or an unknown alias or
 * version of a known one: no `version`), which are no model version's figures — CloudWatch's have none either.
 */
export function scrape(text: string, at: number): Scrape {
  const series = new Map<string, Totals>();
  for (const s of parsePrometheusText(text)) {
    const { model, version, operation } = s.labels;
    if (operation !== undefined || !model || model === UNRESOLVED_MODEL || !version) continue;
    const isBucket = s.name === LATENCY_BUCKET;
    if (!isBucket && s.name !== REQUESTS && s.name !== CLIENT_ERRORS && s.name !== SERVER_ERRORS) continue;
    const key = seriesKey(model, version);
    let t = series.get(key);
    if (!t) {
      t = { requests: 0, clientErrors: 0, serverErrors: 0, buckets: new Map() };
      series.set(key, t);
    }
    if (s.name === REQUESTS) t.requests += s.value;
    else if (isBucket) {
      const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
      if (!Number.isNaN(le)) t.buckets.set(le, (t.buckets.get(le) ?? 0) + s.value);
    } else if (s.name === CLIENT_ERRORS) t.clientErrors += s.value;
    else t.serverErrors += s.value;
  }
  return { at, series };
}

/** A counter's growth between two scrapes (a counter that went down restarted: its new value is the growth). */
const growth = (now: number, before: number | undefined): number =>
  before === undefined || now < before ? now : now - before;

/** A quantile of histogram buckets, null when it has none (no request). */
const quantile = (q: number, buckets: readonly { le: number; count: number }[]): number | null => {
  const v = histogramQuantile(q, buckets);
  return Number.isFinite(v) ? v : null;
};

/** The figures of `key` between two scrapes. */
export function pointBetween(before: Scrape, after: Scrape, key: string): Point {
  const a = after.series.get(key);
  const b = before.series.get(key);
  const seconds = Math.max((after.at - before.at) / 1000, 0.001);
  if (!a) {
    return {
      requestsPerSec: 0,
      clientErrorsPerSec: 0,
      serverErrorsPerSec: 0,
      p50Ms: null,
      p90Ms: null,
      p99Ms: null,
    };
  }
  const requests = growth(a.requests, b?.requests);
  const restarted = b !== undefined && a.requests < b.requests;
  const buckets = [...a.buckets].map(([le, count]) => ({
    le,
    count: restarted ? count : growth(count, b?.buckets.get(le)),
  }));
  const q = (p: number) => (requests === 0 ? null : quantile(p, buckets));
  return {
    requestsPerSec: requests / seconds,
    clientErrorsPerSec: growth(a.clientErrors, b?.clientErrors) / seconds,
    serverErrorsPerSec: growth(a.serverErrors, b?.serverErrors) / seconds,
    p50Ms: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
  };
}

/** The latency quantile of a series' totals since its start (null without requests). */
export const totalQuantile = (t: Totals, q: number): number | null =>
  t.requests
    ? quantile(
        q,
        [...t.buckets].map(([le, count]) => ({ le, count })),
      )
    : null;

/** Time between two scrapes of `/metrics` while the Live page is open (ms). */
export const SCRAPE_EVERY_MS = 2000;

/** How far back the local Live page draws (ms): scrapes older than this before the latest are dropped. */
export const SCRAPE_WINDOW_MS = 10 * 60_000;

/**
 * The longest time between two scrapes that still makes a point (ms). A longer one (the page was left, or its tab
 * slept) is a gap: its average would join the lines across time nobody watched, so it is drawn as none. Each
 * scrape starts `SCRAPE_EVERY_MS` after the one before has answered, so a slow `/metrics` (a busy server)
 * stretches the time between two: five times the interval leaves room for that.
 */
export const SCRAPE_MAX_GAP_MS = 5 * SCRAPE_EVERY_MS;

/** The scrapes within `windowMs` before the latest one (all of them when none is older). */
export function recentScrapes<S extends Scrape>(scrapes: readonly S[], windowMs = SCRAPE_WINDOW_MS): S[] {
  const latest = scrapes.at(-1);
  if (!latest) return [];
  const from = scrapes.findIndex((s) => s.at >= latest.at - windowMs);
  return scrapes.slice(from);
}

/** The point of an interval nothing is known about. */
const GAP: Point = {
  requestsPerSec: null,
  clientErrorsPerSec: null,
  serverErrorsPerSec: null,
  p50Ms: null,
  p90Ms: null,
  p99Ms: null,
};

/**
 * The {@link LiveMetrics} of a run of scrapes (oldest first): those within `windowMs` of the latest, one point per
 * pair of consecutive scrapes (at the later one's time) — every figure null when the two are more than `maxGapMs`
 * apart, which breaks the lines — one series per model version seen in any of them, its totals those of the last
 * scrape (since the service started).
 */
export function liveFromScrapes(
  all: readonly Scrape[],
  {
    windowMs = SCRAPE_WINDOW_MS,
    maxGapMs = SCRAPE_MAX_GAP_MS,
  }: { windowMs?: number; maxGapMs?: number } = {},
): LiveMetrics {
  const scrapes = recentScrapes(all, windowMs);
  const keys = [...new Set(scrapes.flatMap((s) => [...s.series.keys()]))];
  const pairs = scrapes.slice(1).map((s, i) => [scrapes[i] as Scrape, s] as const);
  const steady = pairs.filter(([a, b]) => b.at - a.at <= maxGapMs);
  const latest = scrapes.at(-1);
  const series = keys.map((key): LiveSeries => {
    const at = key.lastIndexOf('@v');
    const points = pairs.map(([a, b]) => (b.at - a.at > maxGapMs ? GAP : pointBetween(a, b, key)));
    const t = latest?.series.get(key);
    return {
      key,
      model: key.slice(0, at),
      version: key.slice(at + 2),
      requestsPerSec: points.map((p) => p.requestsPerSec),
      clientErrorsPerSec: points.map((p) => p.clientErrorsPerSec),
      serverErrorsPerSec: points.map((p) => p.serverErrorsPerSec),
      p50Ms: points.map((p) => p.p50Ms),
      p90Ms: points.map((p) => p.p90Ms),
      p99Ms: points.map((p) => p.p99Ms),
      totals: {
        requests: t?.requests ?? 0,
        clientErrors: t?.clientErrors ?? 0,
        serverErrors: t?.serverErrors ?? 0,
        p50Ms: t ? totalQuantile(t, 0.5) : null,
        p90Ms: t ? totalQuantile(t, 0.9) : null,
        p99Ms: t ? totalQuantile(t, 0.99) : null,
      },
    };
  });
  return {
    source: 'prometheus',
    times: pairs.map(([, s]) => s.at),
    periodSeconds: steady.length
      ? Math.round(steady.reduce((sum, [a, b]) => sum + b.at - a.at, 0) / steady.length) / 1000
      : 0,
    totalsOver: 'service',
    series: series.sort(compareSeries),
  };
}

/** The errors per second (4xx and 5xx) of each point of a series; null where neither is known. */
export const errorsPerSec = (s: LiveSeries): (number | null)[] =>
  s.requestsPerSec.map((_, i) => {
    const c = s.clientErrorsPerSec[i] ?? null;
    const e = s.serverErrorsPerSec[i] ?? null;
    return c === null && e === null ? null : (c ?? 0) + (e ?? 0);
  });

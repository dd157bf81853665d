/**
 * The Live page's figures (no DOM): scrapes of the local `/metrics` (Prometheus text) summed per model and
 * version, and per interval between two scrapes: requests and errors per second, latency p50 and p99 from the
 * histogram buckets of the interval.
 */
import { histogramQuantile, parsePrometheusText } from '../../functions/cli/prometheus';
import { prometheusName } from '../../functions/contract/observability';

/** The cumulative figures of one model version at one scrape. */
export interface Totals {
  requests: number;
  errors: number;
  /** Cumulative count per latency bucket bound (ms, `+Inf` included). */
  buckets: Map<number, number>;
}

/** One scrape: its time and the totals per `model@vN`. */
export interface Scrape {
  readonly at: number;
  readonly series: ReadonlyMap<string, Totals>;
}

/** The figures of one series over one interval (null: no request in it, for latency). */
export interface Point {
  readonly requestsPerSec: number;
  readonly errorsPerSec: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

const REQUESTS = prometheusName('Requests');
const CLIENT_ERRORS = prometheusName('ClientErrors');
const SERVER_ERRORS = prometheusName('ServerErrors');
const LATENCY_BUCKET = `${prometheusName('Latency')}_bucket`;

/** The key of a model version's series. */
export const seriesKey = (model: string, version: string): string => `${model}@v${version}`;

/** The totals per model version of a `/metrics` text (the registry's `operation` series left out). */
export function scrape(text: string, at: number): Scrape {
  const series = new Map<string, Totals>();
  for (const s of parsePrometheusText(text)) {
    const { model, version, operation } = s.labels;
    if (model === undefined || operation !== undefined) continue;
    const isBucket = s.name === LATENCY_BUCKET;
    if (!isBucket && s.name !== REQUESTS && s.name !== CLIENT_ERRORS && s.name !== SERVER_ERRORS) continue;
    const key = seriesKey(model, version ?? '?');
    let t = series.get(key);
    if (!t) {
      t = { requests: 0, errors: 0, buckets: new Map() };
      series.set(key, t);
    }
    if (s.name === REQUESTS) t.requests += s.value;
    else if (isBucket) {
      const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
      if (!Number.isNaN(le)) t.buckets.set(le, (t.buckets.get(le) ?? 0) + s.value);
    } else t.errors += s.value;
  }
  return { at, series };
}

/** A counter's growth between two scrapes (a counter that went down restarted: its new value is the growth). */
const growth = (now: number, before: number | undefined): number =>
  before === undefined || now < before ? now : now - before;

/** The figures of `key` between two scrapes. */
export function pointBetween(before: Scrape, after: Scrape, key: string): Point {
  const a = after.series.get(key);
  const b = before.series.get(key);
  const seconds = Math.max((after.at - before.at) / 1000, 0.001);
  if (!a) return { requestsPerSec: 0, errorsPerSec: 0, p50Ms: null, p99Ms: null };
  const requests = growth(a.requests, b?.requests);
  const restarted = b !== undefined && a.requests < b.requests;
  const buckets = [...a.buckets].map(([le, count]) => ({
    le,
    count: restarted ? count : growth(count, b?.buckets.get(le)),
  }));
  const q = (p: number) => {
    if (requests === 0) return null;
    const v = histogramQuantile(p, buckets);
    return Number.isFinite(v) ? v : null;
  };
  return {
    requestsPerSec: requests / seconds,
    errorsPerSec: growth(a.errors, b?.errors) / seconds,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
  };
}

/** The latency quantile of a series' totals since its start (NaN without requests). */
export const totalQuantile = (t: Totals, q: number): number =>
  histogramQuantile(
    q,
    [...t.buckets].map(([le, count]) => ({ le, count })),
  );

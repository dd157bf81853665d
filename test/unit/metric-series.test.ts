import { describe, expect, it } from 'vitest';
import { INFERENCE_DIMENSION_SETS, METRICS, METRICS_NAMESPACE } from '../../functions/contract/observability';
import {
  compareSeries,
  LIVE_PERIOD_SECONDS,
  liveQueries,
  liveWindow,
  QUERIES_PER_VERSION,
  type QueryResult,
  shapeLive,
  VERSION_DIMENSIONS,
} from '../../functions/domain/metric-series';

const MIN = 60_000;
/** 2026-01-01T10:00:00Z */
const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);

describe('liveWindow', () => {
  it('ends at the start of the minute in progress and spans whole minutes', () => {
    expect(liveWindow(T0 + 5 * MIN + 42_123, 10)).toEqual({
      start: T0 - 5 * MIN,
      end: T0 + 5 * MIN,
      periodSeconds: 60,
    });
    expect(liveWindow(T0, 3)).toEqual({ start: T0 - 3 * MIN, end: T0, periodSeconds: 60 });
  });
});

describe('liveQueries', () => {
  it("asks the contract's namespace, metrics and {model, version} dimensions, per minute and over the window", () => {
    expect(VERSION_DIMENSIONS).toEqual(INFERENCE_DIMENSION_SETS.find((s) => s.join() === 'model,version'));
    const window = liveWindow(T0, 10);
    const qs = liveQueries(
      [
        { model: 'iris', version: 3 },
        { model: 'wine', version: 12 },
      ],
      window,
    );
    expect(qs).toHaveLength(2 * QUERIES_PER_VERSION);
    expect(new Set(qs.map((q) => q.id)).size).toBe(qs.length);
    for (const q of qs) {
      expect(q.id).toMatch(/^[a-z][a-zA-Z0-9_]*$/);
      expect(q.namespace).toBe(METRICS_NAMESPACE);
      expect(Object.keys(METRICS)).toContain(q.metric);
      expect(q.dimensions.map((d) => d.name)).toEqual([...VERSION_DIMENSIONS]);
    }
    expect(qs.filter((q) => q.id.startsWith('v1_')).map((q) => q.dimensions.map((d) => d.value))).toEqual(
      Array.from({ length: QUERIES_PER_VERSION }, () => ['wine', '12']),
    );
    const of = (periodSeconds: number) =>
      qs
        .filter((q) => q.id.startsWith('v0_') && q.periodSeconds === periodSeconds)
        .map((q) => [q.metric, q.stat]);
    expect(of(LIVE_PERIOD_SECONDS)).toEqual([
      ['Requests', 'Sum'],
      ['ClientErrors', 'Sum'],
      ['ServerErrors', 'Sum'],
      ['Latency', 'p50'],
      ['Latency', 'p90'],
      ['Latency', 'p99'],
    ]);
    expect(of(600)).toEqual([
      ['Latency', 'p50'],
      ['Latency', 'p90'],
      ['Latency', 'p99'],
    ]);
  });
});

describe('shapeLive', () => {
  const window = liveWindow(T0 + 30_000, 5); // minutes T0-5 … T0-1
  const at = (i: number) => window.start + i * MIN;
  const r = (id: string, points: [number, number][]): QueryResult => ({
    id,
    timestamps: points.map(([t]) => t),
    values: points.map(([, v]) => v),
  });

  it('aligns every series on the minutes of the window: 0 for a minute without requests, null once no figure is in', () => {
    const versions = [
      { model: 'iris', version: 1 },
      { model: 'iris', version: 2 },
    ];
    const shaped = shapeLive(
      versions,
      [
        // Out of order, as a merged answer may be.
        r('v0_req', [
          [at(2), 30],
          [at(0), 60],
        ]),
        r('v0_srv', [[at(0), 6]]),
        r('v0_p99', [
          [at(0), 12.5],
          [at(2), 40],
        ]),
        r('v0_t99', [[window.start, 33]]),
        r('v1_req', [[at(3), 3]]),
      ],
      window,
    );
    expect(shaped.source).toBe('cloudwatch');
    expect(shaped.totalsOver).toBe('window');
    expect(shaped.periodSeconds).toBe(60);
    expect(shaped.times).toEqual([1, 2, 3, 4, 5].map(at));
    const [v1, v2] = shaped.series;
    expect(v1?.key).toBe('iris@v1');
    expect(v1?.requestsPerSec).toEqual([1, 0, 0.5, 0, null]);
    expect(v1?.serverErrorsPerSec).toEqual([0.1, 0, 0, 0, null]);
    expect(v1?.clientErrorsPerSec).toEqual([0, 0, 0, 0, null]);
    expect(v1?.p99Ms).toEqual([12.5, null, 40, null, null]);
    expect(v1?.p50Ms).toEqual([null, null, null, null, null]);
    expect(v1?.totals).toEqual({
      requests: 90,
      clientErrors: 0,
      serverErrors: 6,
      p50Ms: null,
      p90Ms: null,
      p99Ms: 33,
    });
    expect(v2?.requestsPerSec).toEqual([0, 0, 0, 0.05, null]);
  });

  it('leaves out versions without a figure, points outside the window and values that are not numbers', () => {
    const shaped = shapeLive(
      [
        { model: 'iris', version: 1 },
        { model: 'iris', version: 2 },
      ],
      [
        r('v0_req', [
          [at(-1), 1000],
          [at(1), 60],
          [window.end, 1000],
          [at(2), Number.NaN],
        ]),
        r('v1_req', []),
      ],
      window,
    );
    expect(shaped.series.map((s) => s.key)).toEqual(['iris@v1']);
    expect(shaped.series[0]?.requestsPerSec).toEqual([0, 1, null, null, null]);
    expect(shaped.series[0]?.totals.requests).toBe(60);
  });

  it('does not let the window quantiles decide which minutes have been reported', () => {
    const shaped = shapeLive(
      [{ model: 'iris', version: 1 }],
      [r('v0_req', [[at(0), 60]]), r('v0_t50', [[window.start, 7]])],
      window,
    );
    expect(shaped.series[0]?.requestsPerSec).toEqual([1, null, null, null, null]);
    expect(shaped.series[0]?.totals.p50Ms).toBe(7);
  });

  it('answers no series for no versions, on the same grid', () => {
    expect(shapeLive([], [], window)).toEqual({
      source: 'cloudwatch',
      times: [1, 2, 3, 4, 5].map(at),
      periodSeconds: 60,
      totalsOver: 'window',
      series: [],
    });
  });

  it('sorts series by model, then by version number', () => {
    const keys = [
      { model: 'wine', version: '1' },
      { model: 'iris', version: '10' },
      { model: 'iris', version: '2' },
    ]
      .sort(compareSeries)
      .map((s) => `${s.model}@v${s.version}`);
    expect(keys).toEqual(['iris@v2', 'iris@v10', 'wine@v1']);
  });
});

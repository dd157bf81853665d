/**
 * The Live page's local source: `/metrics` scrapes turned into the same LiveMetrics that `maas console` answers from
 * CloudWatch (no browser).
 */
import { describe, expect, it } from 'vitest';
import { errorsPerSec, liveFromScrapes, recentScrapes, scrape } from '../../console/src/live';
import { PROMETHEUS, prometheusName, UNRESOLVED_MODEL } from '../../functions/contract/observability';

/** A `/metrics` text of iris v1 through `prod` (and a registry series the page leaves out). */
function text(requests: number, client: number, server: number, latencies: readonly number[]): string {
  const labels = 'model="iris",version="1",alias="prod",route="stable"';
  const bucket = prometheusName('Latency');
  const lines = [
    `${prometheusName('Requests')}{${labels}} ${requests}`,
    `${prometheusName('ClientErrors')}{${labels}} ${client}`,
    `${prometheusName('ServerErrors')}{${labels}} ${server}`,
    `${prometheusName('Requests')}{operation="moveAlias"} 4`,
  ];
  for (const le of [...PROMETHEUS.latencyBucketsMs, Number.POSITIVE_INFINITY]) {
    const count = latencies.filter((l) => l <= le).length;
    lines.push(`${bucket}_bucket{${labels},le="${le === Number.POSITIVE_INFINITY ? '+Inf' : le}"} ${count}`);
  }
  lines.push(`${bucket}_count{${labels}} ${latencies.length}`);
  return `${lines.join('\n')}\n`;
}

describe('liveFromScrapes', () => {
  it('gives one point per interval between scrapes, per model version, with the totals since the start', () => {
    const a = scrape(text(10, 1, 0, Array(10).fill(3)), 1_000);
    const b = scrape(text(30, 3, 1, [...Array(10).fill(3), ...Array(20).fill(40)]), 3_000);
    const c = scrape(text(30, 3, 1, [...Array(10).fill(3), ...Array(20).fill(40)]), 5_000);
    const live = liveFromScrapes([a, b, c]);
    expect(live.source).toBe('prometheus');
    expect(live.totalsOver).toBe('service');
    expect(live.times).toEqual([3_000, 5_000]);
    expect(live.periodSeconds).toBe(2);
    expect(live.series).toHaveLength(1);
    const s = live.series[0];
    expect(s).toMatchObject({ key: 'iris@v1', model: 'iris', version: '1' });
    expect(s?.requestsPerSec).toEqual([10, 0]);
    expect(s?.clientErrorsPerSec).toEqual([1, 0]);
    expect(s?.serverErrorsPerSec).toEqual([0.5, 0]);
    // The second interval's 20 requests all took 40 ms: bucket (25, 50].
    expect(s?.p50Ms?.[0]).toBeGreaterThan(25);
    expect(s?.p50Ms?.[0]).toBeLessThanOrEqual(50);
    expect(s?.p99Ms?.[1]).toBeNull();
    expect(s?.totals.requests).toBe(30);
    expect(s?.totals.clientErrors).toBe(3);
    expect(s?.totals.serverErrors).toBe(1);
    expect(s?.totals.p50Ms).toBeGreaterThan(25);
    expect(errorsPerSec(s as NonNullable<typeof s>)).toEqual([1.5, 0]);
  });

  it('leaves out requests answered before a version was chosen (unknown model, alias or version)', () => {
    const junk = [
      `${prometheusName('Requests')}{model="${UNRESOLVED_MODEL}",version="",alias="",route="stable"} 5`,
      `${prometheusName('ClientErrors')}{model="${UNRESOLVED_MODEL}",version="",alias="",route="stable"} 5`,
      `${prometheusName('Requests')}{model="iris",version="",alias="",route="stable"} 2`,
      `${prometheusName('ClientErrors')}{model="iris",version="",alias="",route="stable"} 2`,
      `${prometheusName('Latency')}_bucket{model="iris",version="",alias="",route="stable",le="+Inf"} 2`,
      '',
    ].join('\n');
    const at = (ms: number, n: number) => scrape(`${text(n, 0, 0, Array(n).fill(3))}${junk}`, ms);
    const live = liveFromScrapes([at(1_000, 2), at(3_000, 4)]);
    expect(live.series.map((s) => [s.key, s.model, s.version, s.totals.requests])).toEqual([
      ['iris@v1', 'iris', '1', 4],
    ]);
  });

  it('breaks the lines where the page was not open, rather than drawing the gap as an average', () => {
    // 5 req/s while the page is open, then 20 s without a scrape (another page), then the page again.
    const at = (ms: number) => scrape(text(ms / 200, 0, 0, Array(ms / 200).fill(3)), ms);
    const live = liveFromScrapes([at(2_000), at(4_000), at(6_000), at(26_000), at(28_000), at(30_000)]);
    expect(live.times).toEqual([4_000, 6_000, 26_000, 28_000, 30_000]);
    expect(live.periodSeconds).toBe(2);
    const s = live.series[0] as NonNullable<(typeof live.series)[0]>;
    expect(s.requestsPerSec).toEqual([5, 5, null, 5, 5]);
    expect(s.clientErrorsPerSec).toEqual([0, 0, null, 0, 0]);
    expect(errorsPerSec(s)).toEqual([0, 0, null, 0, 0]);
    expect(s.p99Ms[2]).toBeNull();
    expect(s.totals.requests).toBe(150);
    // Slow answers of /metrics (each scrape starts 2 s after the one before answered) are still points, up to five
    // times the scrape interval.
    const slow = liveFromScrapes([at(2_000), at(6_000), at(12_000), at(14_000)]);
    expect(slow.series[0]?.requestsPerSec).toEqual([5, 5, 5]);
  });

  it('keeps the last 10 minutes of scrapes, not a number of them', () => {
    const at = (ms: number, n: number) => scrape(text(n, 0, 0, Array(n).fill(3)), ms);
    const minute = 60_000;
    // Left 15 minutes ago, back for the last 4 s.
    const live = liveFromScrapes([
      at(0, 0),
      at(2_000, 10),
      at(15 * minute, 100),
      at(15 * minute + 2_000, 110),
    ]);
    expect(live.times).toEqual([15 * minute + 2_000]);
    expect(live.series[0]?.requestsPerSec).toEqual([5]);
    expect(recentScrapes([at(0, 0), at(5 * minute, 1), at(10 * minute, 2)]).map((s) => s.at)).toEqual([
      0,
      5 * minute,
      10 * minute,
    ]);
    expect(recentScrapes([at(0, 0), at(5 * minute, 1), at(10 * minute + 1, 2)]).map((s) => s.at)).toEqual([
      5 * minute,
      10 * minute + 1,
    ]);
    expect(recentScrapes([])).toEqual([]);
  });

  it('has series but no point after one scrape, and nothing before any', () => {
    expect(liveFromScrapes([]).series).toEqual([]);
    const one = liveFromScrapes([scrape(text(2, 0, 0, [1, 1]), 1_000)]);
    expect(one.times).toEqual([]);
    expect(one.series.map((s) => [s.key, s.requestsPerSec, s.totals.requests])).toEqual([['iris@v1', [], 2]]);
  });
});

/**
 * Live: requests, errors and latency per model version over the last minutes, from the local service's
 * `/metrics` scraped every few seconds while the page is open (uPlot charts, and a table of the totals).
 * Against a deployed stack it says what it would need.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { type ConsoleConfig, metricsText } from '../api';
import { ErrorBox } from '../components';
import { num } from '../format';
import { pointBetween, type Scrape, scrape, totalQuantile } from '../live';

/** Seconds between scrapes. */
const EVERY_MS = 2000;
/** Scrapes kept (10 minutes). */
const KEEP = 300;

/** Scrapes survive leaving the page (not a reload). */
const scrapes: Scrape[] = [];

/** Line colours (each at least 4.5:1 against white), then dashes when there are more series. */
const COLORS = ['#0b57d0', '#b3261e', '#146c2e', '#7d3c98', '#8a4b00', '#00696f', '#5f6368', '#a0006b'];

interface ChartProps {
  readonly title: string;
  readonly unit: string;
  readonly keys: readonly string[];
  readonly xs: readonly number[];
  readonly ys: readonly (readonly (number | null)[])[];
}

/** One uPlot chart in a figure; recreated when its series change, given new data otherwise. */
function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const keysId = props.keys.join('|');
  const data = (): uPlot.AlignedData => [props.xs as number[], ...(props.ys as (number | null)[][])];
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 280),
      height: 200,
      scales: { x: { time: true } },
      axes: [{ stroke: '#3c4043' }, { stroke: '#3c4043', label: props.unit, size: 60 }],
      series: [
        { label: 'time' },
        ...props.keys.map((k, i) => ({
          label: k,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          ...(i >= COLORS.length ? { dash: [6, 4] } : {}),
          spanGaps: false,
        })),
      ],
      legend: { live: true },
    };
    const p = new uPlot(opts, data(), el);
    plot.current = p;
    const resize = new ResizeObserver(() => p.setSize({ width: Math.max(el.clientWidth, 280), height: 200 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      p.destroy();
      plot.current = undefined;
    };
  }, [keysId]);
  useEffect(() => {
    plot.current?.setData(data());
  }, [props.xs, props.ys]);
  return (
    <figure class="chart">
      <figcaption>{props.title}</figcaption>
      <div
        ref={box}
        class="chart-box"
        role="img"
        aria-label={`${props.title}: line chart, see the table below`}
      />
    </figure>
  );
}

export function LivePage(props: { config: ConsoleConfig }) {
  const [tick, setTick] = useState(0);
  const [error, setError] = useState<unknown>();
  const [model, setModel] = useState('');

  useEffect(() => {
    if (!props.config.metrics) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const text = await metricsText();
        scrapes.push(scrape(text, Date.now()));
        if (scrapes.length > KEEP) scrapes.splice(0, scrapes.length - KEEP);
        setError(undefined);
      } catch (e) {
        setError(e);
      }
      if (!stopped) {
        setTick((t) => t + 1);
        timer = setTimeout(poll, EVERY_MS);
      }
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [props.config.metrics]);

  if (!props.config.metrics) {
    return (
      <section aria-labelledby="live-title">
        <h1 id="live-title" tabIndex={-1}>
          Live
        </h1>
        <div class="explain" data-explain="no-metrics">
          <p>
            The live charts read <code>GET /metrics</code>, the Prometheus text that only the local service (
            <code>maas dev</code>) serves. The deployed stack at <code>{props.config.endpoint}</code> writes
            the same figures to CloudWatch instead (namespace <code>maas</code>: <code>Requests</code>,{' '}
            <code>ClientErrors</code>, <code>ServerErrors</code>, <code>Latency</code> per <code>model</code>{' '}
            and <code>version</code>).
          </p>
          <p>
            Charting them here needs <code>maas console</code> to read them with CloudWatch{' '}
            <code>GetMetricData</code> (and your credentials to allow <code>cloudwatch:GetMetricData</code>),
            which it does not do yet. Until then, open the stack's CloudWatch dashboard (the{' '}
            <code>DashboardName</code> output of the stack).
          </p>
        </div>
      </section>
    );
  }

  const latest = scrapes.at(-1);
  const allKeys = [...new Set(scrapes.flatMap((s) => [...s.series.keys()]))].sort();
  const models = [...new Set(allKeys.map((k) => k.slice(0, k.lastIndexOf('@'))))].sort();
  const keys = model ? allKeys.filter((k) => k.startsWith(`${model}@`)) : allKeys;
  const pairs = scrapes.slice(1).map((s, i) => [scrapes[i] as Scrape, s] as const);
  const xs = pairs.map(([, s]) => s.at / 1000);
  const points = keys.map((k) => pairs.map(([a, b]) => pointBetween(a, b, k)));
  const rate = points.map((ps) => ps.map((p) => p.requestsPerSec));
  const errors = points.map((ps) => ps.map((p) => p.errorsPerSec));
  const p99 = points.map((ps) => ps.map((p) => p.p99Ms));

  return (
    <section aria-labelledby="live-title" data-tick={tick}>
      <h1 id="live-title" tabIndex={-1}>
        Live
      </h1>
      <p class="muted">
        From <code>/metrics</code> every {EVERY_MS / 1000} s while this page is open; the last{' '}
        {(KEEP * (EVERY_MS / 1000)) / 60} minutes are kept. Each line is one model version (all its aliases
        and routes).
      </p>
      {error ? <ErrorBox error={error} title="The metrics could not be read" /> : null}
      <div class="field inline">
        <label for="live-model">Model</label>
        <select
          id="live-model"
          value={model}
          onChange={(e) => setModel((e.target as HTMLSelectElement).value)}
        >
          <option value="">all models</option>
          {models.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
      </div>
      {keys.length === 0 ? (
        <p role="status">
          No inference request yet{model ? ` to ${model}` : ''}: the charts start with the first one.
        </p>
      ) : (
        <div class="charts">
          <Chart title="Requests per second" unit="req/s" keys={keys} xs={xs} ys={rate} />
          <Chart title="Errors per second (4xx and 5xx)" unit="err/s" keys={keys} xs={xs} ys={errors} />
          <Chart title="Latency p99 (ms)" unit="ms" keys={keys} xs={xs} ys={p99} />
        </div>
      )}
      {latest && keys.length ? (
        <table class="live-totals">
          <caption>Totals since the service started</caption>
          <thead>
            <tr>
              <th scope="col">Model version</th>
              <th scope="col">Requests</th>
              <th scope="col">Errors</th>
              <th scope="col">p50 ms</th>
              <th scope="col">p99 ms</th>
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => {
              const t = latest.series.get(k);
              return (
                <tr key={k} data-series={k}>
                  <th scope="row">{k}</th>
                  <td class="requests">{t ? t.requests : 0}</td>
                  <td>{t ? t.errors : 0}</td>
                  <td>{t?.requests ? num(totalQuantile(t, 0.5)) : '–'}</td>
                  <td>{t?.requests ? num(totalQuantile(t, 0.99)) : '–'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

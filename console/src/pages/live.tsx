/**
 * Live: requests, errors and latency per model version over the last minutes (uPlot charts, and a table of the
 * totals), from the local service's `/metrics` scraped every few seconds while the page is open, or — against a
 * deployed stack, through `maas console` — from CloudWatch, one point per minute. Both sources give the page the
 * same {@link LiveMetrics}.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { METRICS_NAMESPACE } from '../../../functions/contract/observability';
import type { LiveMetrics } from '../../../functions/domain/metric-series';
import { ApiError, type ConsoleConfig, listModels, liveMetrics, metricsText } from '../api';
import { ErrorBox, Loading } from '../components';
import { num } from '../format';
import {
  errorsPerSec,
  liveFromScrapes,
  recentScrapes,
  SCRAPE_EVERY_MS,
  SCRAPE_WINDOW_MS,
  type Scrape,
  scrape,
} from '../live';

/** Seconds between reads of CloudWatch (its figures are per minute). */
const CLOUDWATCH_EVERY_MS = 30_000;
/** The windows the page offers against CloudWatch (minutes). */
const WINDOWS = [10, 30, 60, 180] as const;

/** Scrapes survive leaving the page (not a reload); those older than the window are dropped. */
let scrapes: Scrape[] = [];

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

/** What a source gives the page: its latest figures, its last error, and a count of reads. */
interface Feed {
  readonly data?: LiveMetrics;
  readonly error?: unknown;
  readonly tick: number;
}

/** Polls `read` every `everyMs` while `enabled`, starting again when `deps` change. */
function usePoll(
  enabled: boolean,
  everyMs: number,
  read: () => Promise<LiveMetrics>,
  deps: readonly unknown[],
): Feed {
  const [feed, setFeed] = useState<Feed>({ tick: 0 });
  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      let next: Partial<Feed>;
      try {
        next = { data: await read(), error: undefined };
      } catch (e) {
        next = { error: e };
      }
      if (stopped) return;
      setFeed((f) => ({ ...f, ...next, tick: f.tick + 1 }));
      timer = setTimeout(poll, everyMs);
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [enabled, ...deps]);
  return feed;
}

/** The scrapes of the local `/metrics` as {@link LiveMetrics}. */
async function readPrometheus(): Promise<LiveMetrics> {
  const text = await metricsText();
  scrapes = recentScrapes([...scrapes, scrape(text, Date.now())]);
  return liveFromScrapes(scrapes);
}

/** What to do about a refusal of CloudWatch. */
function CloudWatchHelp(props: { code: string }) {
  if (props.code === 'CLOUDWATCH_ACCESS_DENIED') {
    return (
      <div class="explain" data-explain="cloudwatch-permission">
        <p>
          Allow <code>cloudwatch:GetMetricData</code> to the credentials <code>maas console</code> runs with
          (it takes no resource: <code>"Resource": "*"</code>), for example:
        </p>
        <pre>{'{"Effect": "Allow", "Action": "cloudwatch:GetMetricData", "Resource": "*"}'}</pre>
        <p>
          Or open the stack's CloudWatch dashboard (the <code>DashboardName</code> output of the stack).
        </p>
      </div>
    );
  }
  if (props.code === 'CLOUDWATCH_CREDENTIALS' || props.code === 'CLOUDWATCH_NO_REGION') {
    return (
      <p class="explain">
        <code>maas console</code> reads CloudWatch with the AWS credentials and region of its environment (
        <code>AWS_PROFILE</code>, <code>AWS_ACCESS_KEY_ID</code>…, <code>AWS_REGION</code>), as the CLI signs
        its requests.
      </p>
    );
  }
  return null;
}

export function LivePage(props: { config: ConsoleConfig }) {
  const source = props.config.live ?? (props.config.metrics ? 'prometheus' : 'none');
  const [model, setModel] = useState('');
  const [minutes, setMinutes] = useState<number>(WINDOWS[0]);
  const [listed, setListed] = useState<readonly string[]>([]);

  const local = usePoll(source === 'prometheus', SCRAPE_EVERY_MS, readPrometheus, []);
  const remote = usePoll(
    source === 'cloudwatch',
    CLOUDWATCH_EVERY_MS,
    () => liveMetrics(minutes, model || undefined),
    [minutes, model],
  );
  useEffect(() => {
    if (source !== 'cloudwatch') return;
    listModels().then(
      (ms) => setListed(ms.map((m) => m.name)),
      () => undefined, // the selector then offers the models that have figures
    );
  }, [source]);

  if (source === 'none') {
    return (
      <section aria-labelledby="live-title">
        <h1 id="live-title" tabIndex={-1}>
          Live
        </h1>
        <div class="explain" data-explain="no-metrics">
          <p>
            The live charts read <code>GET /metrics</code>, the Prometheus text of the local service, and this
            service serves none. <code>maas dev</code> (<code>npm start</code>) serves it; against a deployed
            stack, <code>maas console</code> reads the same figures from CloudWatch.
          </p>
        </div>
      </section>
    );
  }

  const feed = source === 'cloudwatch' ? remote : local;
  const data = feed.data;
  const all = data?.series ?? [];
  const models = [...new Set([...listed, ...all.map((s) => s.model), ...(model ? [model] : [])])].sort();
  const series = model ? all.filter((s) => s.model === model) : all;
  const keys = series.map((s) => s.key);
  const xs = (data?.times ?? []).map((t) => t / 1000);
  const errorCode = feed.error instanceof ApiError ? feed.error.code : '';

  return (
    <section aria-labelledby="live-title" data-tick={feed.tick} data-source={source}>
      <h1 id="live-title" tabIndex={-1}>
        Live
      </h1>
      {source === 'cloudwatch' ? (
        <p class="muted">
          From CloudWatch (namespace <code>{METRICS_NAMESPACE}</code>
          {props.config.region ? (
            <>
              {' '}
              in <code>{props.config.region}</code>
            </>
          ) : null}
          ), read by <code>maas console</code> with <code>GetMetricData</code> every{' '}
          {CLOUDWATCH_EVERY_MS / 1000} s while this page is open: one point per minute over the last {minutes}{' '}
          minutes, the minute in progress left out (CloudWatch has a minute's figures a minute or two after
          it). Each line is one model version (all its aliases and routes).
        </p>
      ) : (
        <p class="muted">
          From <code>/metrics</code> every {SCRAPE_EVERY_MS / 1000} s while this page is open; the last{' '}
          {SCRAPE_WINDOW_MS / 60_000} minutes are kept, and the lines break where the page was not open. Each
          line is one model version (all its aliases and routes).
        </p>
      )}
      {feed.error ? (
        <ErrorBox error={feed.error} title="The metrics could not be read">
          <CloudWatchHelp code={errorCode} />
        </ErrorBox>
      ) : null}
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
        {source === 'cloudwatch' ? (
          <>
            <label for="live-window">Window</label>
            <select
              id="live-window"
              value={String(minutes)}
              onChange={(e) => setMinutes(Number((e.target as HTMLSelectElement).value))}
            >
              {WINDOWS.map((w) => (
                <option key={w} value={String(w)}>
                  last {w} minutes
                </option>
              ))}
            </select>
          </>
        ) : null}
      </div>
      {data?.truncated ? (
        <p class="muted" data-truncated="true">
          {model
            ? 'This model has more READY versions than one read covers: those its aliases and splits serve are shown, then the newest.'
            : 'More model versions serve than one read covers: those of the first models are shown (what their aliases and splits serve first, then the newest). Choose a model to see more of its versions.'}
        </p>
      ) : null}
      {!data ? (
        feed.error ? null : (
          <Loading what="the metrics" />
        )
      ) : keys.length === 0 ? (
        feed.error ? null : (
          <p role="status">
            No inference request yet{model ? ` to ${model}` : ''}: the charts start with the first one
            {source === 'cloudwatch' ? ` (in the last ${minutes} minutes)` : ''}.
          </p>
        )
      ) : (
        <div class="charts">
          <Chart
            title="Requests per second"
            unit="req/s"
            keys={keys}
            xs={xs}
            ys={series.map((s) => s.requestsPerSec)}
          />
          <Chart
            title="Errors per second (4xx and 5xx)"
            unit="err/s"
            keys={keys}
            xs={xs}
            ys={series.map(errorsPerSec)}
          />
          <Chart title="Latency p99 (ms)" unit="ms" keys={keys} xs={xs} ys={series.map((s) => s.p99Ms)} />
        </div>
      )}
      {data && keys.length ? (
        <table class="live-totals">
          <caption>
            {data.totalsOver === 'service'
              ? 'Totals since the service started'
              : `Totals over the last ${minutes} minutes`}
          </caption>
          <thead>
            <tr>
              <th scope="col">Model version</th>
              <th scope="col">Requests</th>
              <th scope="col">4xx</th>
              <th scope="col">5xx</th>
              <th scope="col">p50 ms</th>
              <th scope="col">p90 ms</th>
              <th scope="col">p99 ms</th>
            </tr>
          </thead>
          <tbody>
            {series.map((s) => (
              <tr key={s.key} data-series={s.key}>
                <th scope="row">{s.key}</th>
                <td class="requests">{s.totals.requests}</td>
                <td class="client-errors">{s.totals.clientErrors}</td>
                <td class="server-errors">{s.totals.serverErrors}</td>
                <td class="p50">{s.totals.p50Ms === null ? '–' : num(s.totals.p50Ms)}</td>
                <td class="p90">{s.totals.p90Ms === null ? '–' : num(s.totals.p90Ms)}</td>
                <td class="p99">{s.totals.p99Ms === null ? '–' : num(s.totals.p99Ms)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

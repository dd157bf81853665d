/**
 * The web console's contract with the servers that serve it (the local server and `maas console`): its paths, the
 * header its page sends, and what `/console/config.json` says. The page (console/src) and its server
 * (functions/local/console-server.ts) both read it.
 */

/** Where the console is served. */
export const CONSOLE_PATH = '/console';

/** What the page is told about the API behind it ({@link ConsoleConfig}). */
export const CONSOLE_CONFIG_PATH = `${CONSOLE_PATH}/config.json`;

/**
 * The Live page's figures from CloudWatch (`?minutes=` the window, `&model=` one model): a `LiveMetrics`, or
 * `{"error","code"}`. Only `maas console` against a stack without `/metrics` answers it.
 */
export const LIVE_METRICS_PATH = `${CONSOLE_PATH}/metrics.json`;

/**
 * The header the console's page sends with every API call (value `1`); `maas console` forwards nothing without it,
 * and a cross-site request cannot set it without the server's consent, which it never gives.
 */
export const CONSOLE_HEADER = 'x-maas-console';

/** What the page is told about the API (`/console/config.json`). */
export interface ConsoleConfig {
  /** `local`: the local service itself; `remote`: `maas console` forwarding to a deployed stack. */
  readonly mode: 'local' | 'remote';
  /** The API's URL, as a client outside the console calls it. */
  readonly endpoint: string;
  /** How `maas console` authorizes the calls it forwards. */
  readonly auth: 'none' | 'sigv4' | 'bearer';
  /** The SigV4 signing region. */
  readonly region?: string;
  /** Whether `GET /metrics` (the local service's Prometheus text) is served on the console's origin. */
  readonly metrics: boolean;
  /**
   * Where the Live page reads its figures: `prometheus` from `/metrics`, `cloudwatch` from
   * {@link LIVE_METRICS_PATH} (CloudWatch through `maas console`), `none` nowhere (a local service that serves no
   * `/metrics`).
   */
  readonly live: 'prometheus' | 'cloudwatch' | 'none';
}

/**
 * A stand-in for Amazon CloudWatch's `GetMetricData`, on the wire protocol the installed SDK client speaks: AWS JSON
 * 1.0 (`POST /`, `X-Amz-Target: GraniteServiceVersion20100801.GetMetricData`, `application/x-amz-json-1.0`,
 * timestamps as epoch seconds), with the awsQuery-compatible error header (`x-amzn-query-error: Code;Sender`).
 * Every request's SigV4 signature for `monitoring` is checked (sigv4.ts); data points are stored per metric,
 * dimensions, statistic and period, and answered for the queries' time range.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sigV4Region } from './sigv4';

export const GET_METRIC_DATA_TARGET = 'GraniteServiceVersion20100801.GetMetricData';

/** One `MetricDataQuery` as it arrives. */
export interface WireQuery {
  readonly Id: string;
  readonly MetricStat: {
    readonly Metric: {
      readonly Namespace: string;
      readonly MetricName: string;
      readonly Dimensions: readonly { Name: string; Value: string }[];
    };
    readonly Period: number;
    readonly Stat: string;
  };
  readonly ReturnData?: boolean;
}

/** One request received: its headers, its JSON body and the region of its valid signature (undefined: invalid). */
export interface SeenCall {
  readonly headers: IncomingHttpHeaders;
  readonly body: {
    readonly MetricDataQueries: readonly WireQuery[];
    readonly StartTime: number;
    readonly EndTime: number;
    readonly NextToken?: string;
  };
  readonly region: string | undefined;
}

/** An error CloudWatch answers (the JSON `__type`, the query-compatible code, the HTTP status). */
export interface FakeError {
  readonly status: number;
  readonly type: string;
  readonly code: string;
  readonly message: string;
}

export const ACCESS_DENIED: FakeError = {
  status: 403,
  type: 'com.amazon.coral.service#AccessDeniedException',
  code: 'AccessDenied',
  message:
    'User: arn:aws:iam::123456789012:user/console is not authorized to perform: cloudwatch:GetMetricData because no identity-based policy allows the cloudwatch:GetMetricData action',
};

export interface FakeCloudWatch {
  readonly url: string;
  readonly seen: SeenCall[];
  /** Stores one data point (`at` epoch ms) of a metric on dimensions (in their order), a statistic and period. */
  put(
    metric: { namespace: string; name: string; dimensions: Record<string, string> },
    stat: string,
    periodSeconds: number,
    at: number,
    value: number,
  ): void;
  /** Answers every request with this error until it is set to undefined. */
  fail: FakeError | undefined;
  stop(): Promise<void>;
}

const keyOf = (
  namespace: string,
  name: string,
  dims: readonly { Name: string; Value: string }[],
  stat: string,
  period: number,
) => JSON.stringify([namespace, name, dims.map((d) => [d.Name, d.Value]), stat, period]);

export async function startFakeCloudWatch(): Promise<FakeCloudWatch> {
  const points = new Map<string, Map<number, number>>();
  const seen: SeenCall[] = [];
  const fake: Omit<FakeCloudWatch, 'url' | 'stop'> & { fail: FakeError | undefined } = {
    seen,
    fail: undefined,
    put(metric, stat, periodSeconds, at, value) {
      const dims = Object.entries(metric.dimensions).map(([Name, Value]) => ({ Name, Value }));
      const key = keyOf(metric.namespace, metric.name, dims, stat, periodSeconds);
      let m = points.get(key);
      if (!m) {
        m = new Map();
        points.set(key, m);
      }
      m.set(at, value);
    },
  };
  const error = (res: import('node:http').ServerResponse, e: FakeError) => {
    res.writeHead(e.status, {
      'content-type': 'application/x-amz-json-1.0',
      'x-amzn-query-error': `${e.code};Sender`,
      'x-amzn-requestid': 'b9a4a0f2-0000-4000-8000-000000000000',
    });
    res.end(JSON.stringify({ __type: e.type, Message: e.message }));
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const region = sigV4Region('monitoring', req.method ?? 'POST', req.url ?? '/', req.headers, raw);
      let body: SeenCall['body'];
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = { MetricDataQueries: [], StartTime: 0, EndTime: 0 };
      }
      seen.push({ headers: req.headers, body, region });
      if (!region) {
        return error(res, {
          status: 403,
          type: 'com.amazon.coral.service#IncompleteSignatureException',
          code: 'SignatureDoesNotMatch',
          message: 'The request signature we calculated does not match the signature you provided.',
        });
      }
      if (req.method !== 'POST' || req.headers['x-amz-target'] !== GET_METRIC_DATA_TARGET) {
        return error(res, {
          status: 400,
          type: 'com.amazon.coral.service#UnknownOperationException',
          code: 'UnknownOperation',
          message: `this stand-in answers only ${GET_METRIC_DATA_TARGET}`,
        });
      }
      if (fake.fail) return error(res, fake.fail);
      const start = body.StartTime * 1000;
      const end = body.EndTime * 1000;
      const results = body.MetricDataQueries.map((q) => {
        const m = q.MetricStat.Metric;
        const stored = points.get(
          keyOf(m.Namespace, m.MetricName, m.Dimensions, q.MetricStat.Stat, q.MetricStat.Period),
        );
        const inRange = [...(stored ?? [])]
          .filter(([t]) => t >= start && t < end)
          .sort((a, b) => a[0] - b[0]);
        return {
          Id: q.Id,
          Label: m.MetricName,
          Timestamps: inRange.map(([t]) => t / 1000),
          Values: inRange.map(([, v]) => v),
          StatusCode: 'Complete',
        };
      });
      res.writeHead(200, {
        'content-type': 'application/x-amz-json-1.0',
        'x-amzn-requestid': 'b9a4a0f2-0000-4000-8000-000000000001',
      });
      res.end(JSON.stringify({ MetricDataResults: results, Messages: [] }));
    });
  });
  const url = await new Promise<string>((r) =>
    server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
  return Object.assign(fake, {
    url,
    stop: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  });
}

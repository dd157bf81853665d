/**
 * Reads metric figures from Amazon CloudWatch with `GetMetricData`: the queries of domain/metric-series.ts (one
 * metric, its dimensions, a statistic and a period each), at most 500 per call (the API's limit), every page of the
 * answer followed. `maas console`'s server uses it for the Live page against a deployed stack (docs/console.md).
 *
 * A refusal is a {@link CloudWatchReadError} that says what went wrong in terms the caller can act on: a missing
 * permission (`cloudwatch:GetMetricData`), credentials that are missing or refused, throttling, CloudWatch
 * unreachable, a query it rejected.
 */
import {
  type CloudWatchClient,
  GetMetricDataCommand,
  type GetMetricDataCommandOutput,
  type MetricDataQuery,
} from '@aws-sdk/client-cloudwatch';
import type { MetricQuery, QueryResult } from '../domain/metric-series';

/** Queries per GetMetricData call (the API's most). */
export const GET_METRIC_DATA_MAX_QUERIES = 500;

/** The IAM action the reader needs. */
export const GET_METRIC_DATA_ACTION = 'cloudwatch:GetMetricData';

/** Why a read failed. */
export type CloudWatchFailure =
  | 'access-denied'
  | 'credentials'
  | 'throttled'
  | 'unavailable'
  | 'invalid'
  | 'failed';

export class CloudWatchReadError extends Error {
  constructor(
    readonly kind: CloudWatchFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CloudWatchReadError';
  }
}

const ACCESS_DENIED = new Set(['AccessDenied', 'AccessDeniedException']);
const CREDENTIALS = new Set([
  'CredentialsProviderError',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'InvalidAccessKeyId',
]);
const THROTTLED = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'LimitExceeded',
  'LimitExceededException',
]);
const INVALID = new Set([
  'InvalidParameterValue',
  'InvalidParameterValueException',
  'InvalidParameterCombination',
  'InvalidParameterCombinationException',
  'MissingParameter',
  'MissingRequiredParameterException',
  'InvalidNextToken',
  'ValidationError',
]);
const UNAVAILABLE = new Set([
  'UnavailableError',
  'TimeoutError',
  'RequestTimeout',
  'InternalServiceFault',
  'InternalServiceError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
]);

/** The {@link CloudWatchReadError} of whatever a GetMetricData call threw. */
export function cloudWatchReadError(e: unknown): CloudWatchReadError {
  if (e instanceof CloudWatchReadError) return e;
  const err = (e ?? {}) as { name?: unknown; message?: unknown; code?: unknown; $fault?: unknown };
  const name = typeof err.name === 'string' ? err.name : '';
  const message = typeof err.message === 'string' && err.message ? err.message : String(e);
  const code = typeof err.code === 'string' ? err.code : '';
  const kind: CloudWatchFailure = ACCESS_DENIED.has(name)
    ? 'access-denied'
    : CREDENTIALS.has(name)
      ? 'credentials'
      : THROTTLED.has(name)
        ? 'throttled'
        : INVALID.has(name)
          ? 'invalid'
          : UNAVAILABLE.has(name) || NETWORK_CODES.has(code) || err.$fault === 'server'
            ? 'unavailable'
            : 'failed';
  return new CloudWatchReadError(kind, name && !message.startsWith(name) ? `${name}: ${message}` : message, {
    cause: e,
  });
}

const toQuery = (q: MetricQuery): MetricDataQuery => ({
  Id: q.id,
  MetricStat: {
    Metric: {
      Namespace: q.namespace,
      MetricName: q.metric,
      Dimensions: q.dimensions.map((d) => ({ Name: d.name, Value: d.value })),
    },
    Period: q.periodSeconds,
    Stat: q.stat,
  },
  ReturnData: true,
});

export class CloudWatchMetricsReader {
  constructor(private readonly client: Pick<CloudWatchClient, 'send'>) {}

  /**
   * The data points of `queries` between `start` and `end` (epoch ms), one result per query id (points of every
   * page merged). Rejects with a {@link CloudWatchReadError}.
   */
  async read(queries: readonly MetricQuery[], start: number, end: number): Promise<QueryResult[]> {
    const points = new Map<string, { timestamps: number[]; values: number[] }>();
    for (const q of queries) points.set(q.id, { timestamps: [], values: [] });
    for (let i = 0; i < queries.length; i += GET_METRIC_DATA_MAX_QUERIES) {
      const chunk = queries.slice(i, i + GET_METRIC_DATA_MAX_QUERIES).map(toQuery);
      let token: string | undefined;
      do {
        let out: GetMetricDataCommandOutput;
        try {
          out = await this.client.send(
            new GetMetricDataCommand({
              MetricDataQueries: chunk,
              StartTime: new Date(start),
              EndTime: new Date(end),
              ScanBy: 'TimestampAscending',
              ...(token ? { NextToken: token } : {}),
            }),
          );
        } catch (e) {
          throw cloudWatchReadError(e);
        }
        for (const r of out.MetricDataResults ?? []) {
          const into = r.Id === undefined ? undefined : points.get(r.Id);
          if (!into) continue;
          const ts = r.Timestamps ?? [];
          const vs = r.Values ?? [];
          for (let j = 0; j < Math.min(ts.length, vs.length); j++) {
            into.timestamps.push((ts[j] as Date).getTime());
            into.values.push(vs[j] as number);
          }
        }
        token = out.NextToken;
      } while (token);
    }
    return [...points].map(([id, p]) => ({ id, ...p }));
  }
}

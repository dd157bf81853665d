import type { GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { describe, expect, it } from 'vitest';
import {
  CloudWatchMetricsReader,
  CloudWatchReadError,
  cloudWatchReadError,
  GET_METRIC_DATA_MAX_QUERIES,
} from '../../functions/adapters/cloudwatch-metrics-reader';
import { liveQueries, liveWindow, type MetricQuery } from '../../functions/domain/metric-series';

const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);

/** A client whose `send` records each command's input and answers from `answer`. */
function fakeClient(answer: (input: GetMetricDataCommand['input'], call: number) => unknown) {
  const inputs: GetMetricDataCommand['input'][] = [];
  return {
    inputs,
    client: {
      send: async (command: unknown) => {
        const input = (command as GetMetricDataCommand).input;
        inputs.push(input);
        const out = answer(input, inputs.length - 1);
        if (out instanceof Error) throw out;
        return out;
      },
    } as never,
  };
}

describe('CloudWatchMetricsReader', () => {
  it('sends the queries as MetricStats over the window and merges the pages of each answer', async () => {
    const window = liveWindow(T0, 10);
    const queries = liveQueries([{ model: 'iris', version: 1 }], window);
    const { inputs, client } = fakeClient((_input, call) => ({
      MetricDataResults: [
        {
          Id: 'v0_req',
          Timestamps: [new Date(window.start + call * 60_000)],
          Values: [10 + call],
          StatusCode: call === 0 ? 'PartialData' : 'Complete',
        },
        { Id: 'unknown', Timestamps: [new Date(window.start)], Values: [1] },
      ],
      ...(call === 0 ? { NextToken: 'page-2' } : {}),
    }));
    const results = await new CloudWatchMetricsReader(client).read(queries, window.start, window.end);
    expect(inputs).toHaveLength(2);
    expect(inputs[1]?.NextToken).toBe('page-2');
    expect(inputs[0]?.StartTime).toEqual(new Date(window.start));
    expect(inputs[0]?.EndTime).toEqual(new Date(window.end));
    expect(inputs[0]?.MetricDataQueries?.[0]).toEqual({
      Id: 'v0_req',
      MetricStat: {
        Metric: {
          Namespace: 'maas',
          MetricName: 'Requests',
          Dimensions: [
            { Name: 'model', Value: 'iris' },
            { Name: 'version', Value: '1' },
          ],
        },
        Period: 60,
        Stat: 'Sum',
      },
      ReturnData: true,
    });
    expect(results.find((r) => r.id === 'v0_req')).toEqual({
      id: 'v0_req',
      timestamps: [window.start, window.start + 60_000],
      values: [10, 11],
    });
    expect(results.map((r) => r.id)).toEqual(queries.map((q) => q.id));
    expect(results.find((r) => r.id === 'v0_p99')).toEqual({ id: 'v0_p99', timestamps: [], values: [] });
  });

  it(`splits more than ${GET_METRIC_DATA_MAX_QUERIES} queries into calls of at most that many`, async () => {
    const queries: MetricQuery[] = Array.from({ length: 1001 }, (_, i) => ({
      id: `q${i}`,
      namespace: 'maas',
      metric: 'Requests',
      dimensions: [],
      stat: 'Sum',
      periodSeconds: 60,
    }));
    const { inputs, client } = fakeClient(() => ({ MetricDataResults: [] }));
    await new CloudWatchMetricsReader(client).read(queries, T0 - 600_000, T0);
    expect(inputs.map((i) => i.MetricDataQueries?.length)).toEqual([500, 500, 1]);
  });

  it('turns what the SDK throws into a CloudWatchReadError that says why', async () => {
    const named = (name: string, message: string, extra: object = {}) =>
      Object.assign(new Error(message), { name, ...extra });
    const { client } = fakeClient(() => named('AccessDenied', 'User: u is not authorized to perform: x'));
    const failed = await new CloudWatchMetricsReader(client)
      .read(liveQueries([{ model: 'iris', version: 1 }], liveWindow(T0, 1)), T0 - 60_000, T0)
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(CloudWatchReadError);
    expect(failed).toMatchObject({
      kind: 'access-denied',
      message: 'AccessDenied: User: u is not authorized to perform: x',
    });

    const kinds = [
      [named('AccessDeniedException', 'no'), 'access-denied'],
      [named('CredentialsProviderError', 'Could not load credentials from any providers'), 'credentials'],
      [named('ExpiredToken', 'The security token included in the request is expired'), 'credentials'],
      [named('InvalidClientTokenId', 'bad key'), 'credentials'],
      [named('Throttling', 'Rate exceeded'), 'throttled'],
      [named('InvalidParameterValue', 'bad period'), 'invalid'],
      [named('UnavailableError', 'cloudwatch did not answer within 3000 ms'), 'unavailable'],
      [named('Error', 'connect ECONNREFUSED 127.0.0.1:1', { code: 'ECONNREFUSED' }), 'unavailable'],
      [named('InternalFailure', 'oops', { $fault: 'server' }), 'unavailable'],
      [named('SomethingElse', 'odd'), 'failed'],
    ] as const;
    for (const [error, kind] of kinds) expect(cloudWatchReadError(error).kind, error.name).toBe(kind);
    expect(cloudWatchReadError('text').message).toBe('text');
  });
});

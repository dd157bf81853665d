/** The local service's handlers over a test's own table and bucket (functions/local/compose.ts), as `maas dev` wires them. */
import { composeLocal, type LocalResources, type LocalServices } from '../../functions/local/compose';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { createTestAwsEnv, type TestAwsEnv } from './aws-env';

export function composeTestServices(
  aws: TestAwsEnv,
  extra: Partial<Omit<LocalResources, 'doc' | 's3' | 'endpoints' | 'table' | 'bucket'>> = {},
): LocalServices {
  return composeLocal({
    doc: aws.doc,
    s3: aws.s3,
    endpoints: { dynamodb: aws.dynamoEndpoint, s3: aws.s3Endpoint },
    table: aws.table,
    bucket: aws.bucket,
    log: () => {},
    ...extra,
  });
}

/** An answer of the local HTTP server: its status and its JSON body. */
export interface LocalAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** The local service over HTTP on a fresh table and bucket, as `maas dev` serves it, alarms settable. */
export interface TestLocalService {
  readonly services: LocalServices;
  readonly server: RunningLocalServer;
  /** Sends `body` (if any) as JSON to `path` and reads the JSON answer. */
  call(method: string, path: string, body?: unknown): Promise<LocalAnswer>;
  /** The canary weight and reason of each change of the model's `prod` alias after its creation, oldest first. */
  canaryHistory(name: string): Promise<(number | string | undefined)[][]>;
  /** Stops the server, the services, and drops the table. */
  close(): Promise<void>;
}

/**
 * Starts the local service (actor `local:tester`, `POST /local/alarms/{name}` wired to the services' alarms) on a
 * random port over a fresh table and bucket named after `prefix`.
 */
export async function startTestLocalService(prefix: string): Promise<TestLocalService> {
  const aws = await createTestAwsEnv(prefix);
  let services: LocalServices | undefined;
  try {
    const composed = composeTestServices(aws);
    services = composed;
    const server = await startLocalServer({
      port: 0,
      handlers: composed.handlers,
      actor: 'local:tester',
      alarms: (name, state) => composed.setAlarm(name, state),
    });
    const call = async (method: string, path: string, body?: unknown): Promise<LocalAnswer> => {
      const res = await fetch(`${server.url}${path}`, {
        method,
        ...(body !== undefined
          ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
          : {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    return {
      services: composed,
      server,
      call,
      async canaryHistory(name) {
        const h = await call('GET', `/models/${name}/aliases/prod/history`);
        return (h.body.history as { reason?: string; routing?: { canary?: { weight: number } } }[])
          .slice()
          .reverse()
          .slice(1)
          .map((e) => [e.routing?.canary?.weight, e.reason]);
      },
      async close() {
        await server.close();
        await composed.close();
        await aws.dispose();
      },
    };
  } catch (err) {
    await services?.close();
    await aws.dispose();
    throw err;
  }
}

/**
 * A local service for the console's tests, as `maas dev` serves it (its `/metrics` too) over a fresh table and
 * bucket, with the sample model registered three times through the CLI: `iris` v1 (prod), v2 and v3.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../functions/cli/program';
import type { LocalServices } from '../../functions/local/compose';
import { buildIrisModel, SAMPLE_MODEL } from '../../functions/local/sample-model';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { createTestAwsEnv } from '../helpers/aws-env';
import { captureIo } from '../helpers/cli-io';
import { composeTestServices } from '../helpers/local-services';

export interface ConsoleTarget {
  readonly services: LocalServices;
  readonly server: RunningLocalServer;
  readonly url: string;
  /** A JSON request to the API: its status and parsed body. */
  // biome-ignore lint/suspicious/noExplicitAny: the tests read the answers field by field.
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startConsoleTarget(prefix: string): Promise<ConsoleTarget> {
  const aws = await createTestAwsEnv(prefix);
  const services = composeTestServices(aws);
  const server = await startLocalServer({
    port: 0,
    handlers: services.handlers,
    actor: 'local:tester',
    metrics: () => services.metrics.text(),
  });
  const close = async () => {
    await server.close();
    await services.close();
    await aws.dispose();
  };
  try {
    const dir = mkdtempSync(join(tmpdir(), 'maas-console-'));
    const file = join(dir, 'iris.onnx');
    writeFileSync(file, buildIrisModel());
    for (const description of [SAMPLE_MODEL.description, 'refit with more rows', 'candidate']) {
      const io = captureIo();
      const args = ['register', file, '--name', 'iris', '--labels', SAMPLE_MODEL.labels.join(',')];
      args.push('--postprocess', JSON.stringify(SAMPLE_MODEL.postprocess), '--description', description);
      const code = await run(['node', 'maas', '--endpoint', server.url, ...args], io);
      if (code !== 0) throw new Error(`maas register failed: ${io.stderr()}`);
    }
    return {
      services,
      server,
      url: server.url,
      async call(method, path, body) {
        const res = await fetch(`${server.url}${path}`, {
          method,
          ...(body !== undefined
            ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
            : {}),
        });
        const text = await res.text();
        return { status: res.status, body: text ? JSON.parse(text) : undefined };
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

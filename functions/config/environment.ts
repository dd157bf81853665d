/**
 * The one reader of the environment (docs/ARCHITECTURE.md, "Environment"). Modelled on Powertools'
 * `EnvironmentVariablesService`: `EnvironmentVariables` holds one record of variables — the process's own unless a
 * test or a caller hands another — and offers typed getters over it, with the names from the contract
 * (functions/contract/env.ts). The service touches `process.env` here only: composition roots read what they need
 * once and hand typed values (or a record) to the adapters they build.
 */
import { ENV, MAX_RECEIVE_COUNT_RANGE } from '../contract/env';
import { QUEUE } from '../contract/events';
import { LIMITS } from '../contract/limits';
import { type PreloadEntry, parsePreload } from '../domain/names';

/** Environment variables by name: the process's, or a record a test or a caller builds. */
export type EnvRecord = Readonly<Record<string, string | undefined>>;

/** The region of AWS clients when the environment names none. */
export const DEFAULT_REGION = 'us-east-1';

/** The memory size assumed outside Lambda: the size at which Lambda gives a function one full vCPU. */
const DEFAULT_MEMORY_MB = 1769;

/** The Lambda initialization type of a sandbox started for a request. */
const ON_DEMAND = 'on-demand';

/** The configuration of a function, read once at INIT. */
export interface MaasConfig {
  readonly table: string;
  readonly bucket: string;
  readonly aliasTtlMs: number;
  /** Explicit ORT intra-op thread count; undefined = derived from memory. */
  readonly ortThreads?: number;
  /** `name@ref` entries to load during INIT. */
  readonly preload: readonly PreloadEntry[];
  readonly maxBodyBytes: number;
  readonly memoryMb: number;
  readonly queueUrl?: string;
  /** The batch queue (parts and aggregations of batch jobs). */
  readonly batchQueueUrl?: string;
  /** The dead-letter queues the worker consumes (ARNs; none: no delivery is of dead letters). */
  readonly deadLetterQueueArns: readonly string[];
  /**
   * Receives before the queues dead-letter a message (`MAAS_MAX_RECEIVE_COUNT`): the worker's last receive is this
   * one. @default QUEUE.maxReceiveCount
   */
  readonly maxReceiveCount: number;
  readonly eventBus?: string;
}

/**
 * The process's own environment. Hand it on whole (a child process's environment, the CLI's io) or wrap it in
 * `EnvironmentVariables`; read single variables through the latter's getters.
 */
export function processEnv(): NodeJS.ProcessEnv {
  return process.env;
}

/**
 * Sets variables of the process environment (`maas dev` publishes the local service's table, bucket, endpoints
 * and credentials there, for anything that reads them and for child processes).
 */
export function setProcessEnv(vars: Readonly<Record<string, string>>): void {
  Object.assign(process.env, vars);
}

/** Sets the variables of `vars` that the process environment does not set yet (an explicit setting wins). */
export function setProcessEnvDefaults(vars: Readonly<Record<string, string>>): void {
  for (const [name, value] of Object.entries(vars)) process.env[name] ??= value;
}

/**
 * Runs `load` with `name` removed from the process environment, and puts its value back once the returned
 * promise settles. `maas dev` imports the handler modules this way without `MAAS_TABLE`, so that none of them
 * builds its Lambda default at module scope.
 */
export function withoutProcessEnv<T>(name: string, load: () => Promise<T>): Promise<T> {
  const saved = process.env[name];
  delete process.env[name];
  const restore = () => {
    if (saved !== undefined) process.env[name] = saved;
  };
  let pending: Promise<T>;
  try {
    pending = load();
  } catch (e) {
    restore();
    throw e;
  }
  return pending.finally(restore);
}

/** Typed reads of one record of environment variables. */
export class EnvironmentVariables {
  readonly #env: EnvRecord;

  /** @param env the variables to read. @default the process environment */
  constructor(env: EnvRecord = processEnv()) {
    this.#env = env;
  }

  /** The value of `name`; undefined when it is not set. */
  get(name: string): string | undefined {
    return this.#env[name];
  }

  /** Whether `name` is `true`, in any letter case (as the AWS SDK reads its boolean settings). */
  isTrue(name: string): boolean {
    return this.#env[name]?.toLowerCase() === 'true';
  }

  /**
   * `name` as a non-negative integer; `fallback` when it is unset or empty. Anything else throws
   * `<name> must be a non-negative integer, got '<value>'`.
   */
  nonNegativeInteger(name: string, fallback: number): number {
    const raw = this.#env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0)
      throw new Error(`${name} must be a non-negative integer, got '${raw}'`);
    return n;
  }

  // --- AWS -------------------------------------------------------------------------------------------------

  /** The region the environment names: `AWS_REGION`, then `AWS_DEFAULT_REGION`; undefined when neither is set. */
  configuredRegion(): string | undefined {
    return this.#env[ENV.region] ?? this.#env[ENV.defaultRegion];
  }

  /** The region of AWS clients, the one rule every server-side client follows: the configured one, else us-east-1. */
  region(): string {
    return this.configuredRegion() ?? DEFAULT_REGION;
  }

  /**
   * The endpoint configured for `service` (its signing name, e.g. `dynamodb`, `s3`): `AWS_ENDPOINT_URL_<SERVICE>`,
   * else `AWS_ENDPOINT_URL`; none when both are unset or empty, or when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`.
   */
  configuredEndpoint(service: string): string | undefined {
    if (this.isTrue(ENV.ignoreConfiguredEndpoints)) return undefined;
    return (this.#env[`${ENV.endpoint}_${service.toUpperCase()}`] ?? this.#env[ENV.endpoint]) || undefined;
  }

  /** `AWS_USE_FIPS_ENDPOINT=true`: regional endpoints are the FIPS ones. */
  useFipsEndpoint(): boolean {
    return this.isTrue(ENV.useFipsEndpoint);
  }

  /** `AWS_USE_DUALSTACK_ENDPOINT=true`: regional endpoints are the dual-stack (IPv4 and IPv6) ones. */
  useDualstackEndpoint(): boolean {
    return this.isTrue(ENV.useDualstackEndpoint);
  }

  // --- Lambda ----------------------------------------------------------------------------------------------

  /** The function's memory size in MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; 1769 outside Lambda). */
  memoryMb(): number {
    return this.nonNegativeInteger(ENV.memoryMb, DEFAULT_MEMORY_MB);
  }

  /**
   * Whether the sandbox was initialized ahead of its requests (`AWS_LAMBDA_INITIALIZATION_TYPE` other than
   * `on-demand`: provisioned concurrency, SnapStart), so it may be frozen right after INIT.
   */
  initializedAhead(): boolean {
    return (this.#env[ENV.initializationType] ?? ON_DEMAND) !== ON_DEMAND;
  }

  /** Whether the function runs with active X-Ray tracing (Lambda then names the daemon's address). */
  tracingActive(): boolean {
    return Boolean(this.#env[ENV.xrayDaemonAddress]);
  }

  /** The function's handler setting (`_HANDLER`, e.g. `index.handler`); `handler` outside Lambda. */
  lambdaHandler(): string {
    return this.#env[ENV.lambdaHandler] || 'handler';
  }

  // --- maas ------------------------------------------------------------------------------------------------

  /**
   * `MAAS_MAX_RECEIVE_COUNT`: receives before the queues dead-letter a message, a whole number in
   * MAX_RECEIVE_COUNT_RANGE (1 to 1000, SQS's range for a redrive policy). Anything else throws, naming the variable:
   * a worker that took another receive than the queue's last for its last would end messages SQS still delivers, or
   * never end one on the receive before its dead-letter queue.
   * @default QUEUE.maxReceiveCount
   */
  maxReceiveCount(): number {
    const raw = this.#env[ENV.maxReceiveCount];
    if (raw === undefined || raw === '') return QUEUE.maxReceiveCount;
    const n = Number(raw);
    const { min, max } = MAX_RECEIVE_COUNT_RANGE;
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`${ENV.maxReceiveCount} must be a whole number from ${min} to ${max}, got '${raw}'`);
    }
    return n;
  }

  /** Whether `MAAS_TABLE` is set: a function's Lambda default is built only then. */
  hasTable(): boolean {
    return Boolean(this.#env[ENV.table]);
  }

  /** `MAAS_PRELOAD` (see `parsePreload`); a bad entry is an error naming the variable and the entry. */
  preload(): readonly PreloadEntry[] {
    try {
      return parsePreload(this.#env[ENV.preload]);
    } catch (e) {
      throw new Error(`${ENV.preload}: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * The function's configuration. Throws when `MAAS_TABLE` or `MAAS_BUCKET` is not set (`<name> is not set`), a
   * number is no non-negative integer, or `MAAS_MAX_RECEIVE_COUNT` is out of its range.
   */
  config(): MaasConfig {
    const table = this.#env[ENV.table];
    const bucket = this.#env[ENV.bucket];
    if (!table) throw new Error(`${ENV.table} is not set`);
    if (!bucket) throw new Error(`${ENV.bucket} is not set`);
    const threads = this.#env[ENV.ortThreads];
    const queueUrl = this.#env[ENV.queueUrl];
    const batchQueueUrl = this.#env[ENV.batchQueueUrl];
    const deadLetterQueueArns = (this.#env[ENV.deadLetterQueueArns] ?? '')
      .split(',')
      .map((arn) => arn.trim())
      .filter((arn) => arn !== '');
    const eventBus = this.#env[ENV.eventBus];
    return {
      table,
      bucket,
      aliasTtlMs: this.nonNegativeInteger(ENV.aliasTtlMs, LIMITS.defaultAliasTtlMs),
      ...(threads ? { ortThreads: this.nonNegativeInteger(ENV.ortThreads, 1) } : {}),
      preload: this.preload(),
      maxBodyBytes: this.nonNegativeInteger(ENV.maxBodyBytes, LIMITS.maxBodyBytes),
      memoryMb: this.memoryMb(),
      ...(queueUrl ? { queueUrl } : {}),
      ...(batchQueueUrl ? { batchQueueUrl } : {}),
      deadLetterQueueArns,
      maxReceiveCount: this.maxReceiveCount(),
      ...(eventBus ? { eventBus } : {}),
    };
  }

  /**
   * The rollout controller's configuration: `MAAS_TABLE` (required: `<name> is not set` otherwise) and the event
   * bus when set. It reads no bucket.
   */
  rolloutControllerConfig(): Pick<MaasConfig, 'table' | 'eventBus'> {
    const table = this.#env[ENV.table];
    if (!table) throw new Error(`${ENV.table} is not set`);
    const eventBus = this.#env[ENV.eventBus];
    return { table, ...(eventBus ? { eventBus } : {}) };
  }

  // --- developer tools -------------------------------------------------------------------------------------

  /**
   * `MAAS_ROLLOUT_TICK_MS`: how often `maas dev` runs the rollout controller (a positive integer);
   * @default LIMITS.defaultRolloutTickMs
   */
  rolloutTickMs(): number {
    const ms = this.nonNegativeInteger(ENV.rolloutTickMs, LIMITS.defaultRolloutTickMs);
    if (ms < 1) throw new Error(`${ENV.rolloutTickMs} must be a positive integer, got '0'`);
    return ms;
  }

  /** `MAAS_HOME`, where `maas dev` keeps its data and `endpoints.json` (relative to the working directory); default `.maas`. */
  home(): string {
    return this.#env[ENV.home] || '.maas';
  }

  /** `PORT` as a number (not validated here: the `dev` command refuses a bad one as a usage error); undefined when unset or empty. */
  port(): number | undefined {
    const raw = this.#env[ENV.port];
    return raw ? Number(raw) : undefined;
  }

  /** `MAAS_ENDPOINT`, where the CLI sends requests; undefined when unset or empty. */
  cliEndpoint(): string | undefined {
    return this.#env[ENV.cliEndpoint] || undefined;
  }

  /** `MAAS_TOKEN`, the bearer token the CLI sends instead of SigV4 signing; undefined when unset or empty. */
  cliToken(): string | undefined {
    return this.#env[ENV.cliToken]?.trim() || undefined;
  }
}

/** The configuration of a function from `env` (@default the process environment); see `EnvironmentVariables.config`. */
export function readConfig(env?: EnvRecord): MaasConfig {
  return new EnvironmentVariables(env).config();
}

/**
 * The region rule of the service: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then us-east-1, read from `env`
 * (@default the process environment).
 */
export function awsRegion(env?: EnvRecord): string {
  return new EnvironmentVariables(env).region();
}

/**
 * The region `env` (@default the process environment) names, without the us-east-1 fallback: for callers that must
 * know the region or refuse (the CLI signs for it).
 */
export function configuredRegion(env?: EnvRecord): string | undefined {
  return new EnvironmentVariables(env).configuredRegion();
}

/**
 * Intra-op threads of onnxruntime: `MAAS_ORT_THREADS` when set, else clamp(floor(memoryMB / 1769), 1, 6)
 * (docs/ARCHITECTURE.md, "Runtime caches").
 */
export function ortThreadCount(cfg: Pick<MaasConfig, 'ortThreads' | 'memoryMb'>): number {
  if (cfg.ortThreads && cfg.ortThreads > 0) return cfg.ortThreads;
  return Math.min(6, Math.max(1, Math.floor(cfg.memoryMb / 1769)));
}

/** Options of the process-wide onnxruntime engine: threads, and a session cache within the memory budget. */
export function ortEngineOptions(cfg: Pick<MaasConfig, 'ortThreads' | 'memoryMb'>): {
  threads: number;
  memoryBudgetBytes: number;
} {
  return {
    threads: ortThreadCount(cfg),
    memoryBudgetBytes: cfg.memoryMb * 1024 * 1024 * LIMITS.sessionCacheMemoryFraction,
  };
}

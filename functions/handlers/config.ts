/** Reads the environment (ARCHITECTURE §5) in one place. */
import { ENV } from '../contract/env';
import { LIMITS } from '../contract/limits';

export interface MaasConfig {
  readonly table: string;
  readonly bucket: string;
  readonly aliasTtlMs: number;
  /** Explicit ORT intra-op thread count; undefined = derived from memory. */
  readonly ortThreads?: number;
  /** `name@ref` entries to load during INIT. */
  readonly preload: readonly { name: string; ref?: string }[];
  readonly maxBodyBytes: number;
  readonly memoryMb: number;
  readonly queueUrl?: string;
  readonly eventBus?: string;
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got '${raw}'`);
  return n;
}

export function parsePreload(raw: string | undefined): { name: string; ref?: string }[] {
  if (!raw) return [];
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [name, ref] = entry.split('@');
      return ref ? { name: name!, ref } : { name: name! };
    });
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): MaasConfig {
  const table = env[ENV.table];
  const bucket = env[ENV.bucket];
  if (!table) throw new Error(`${ENV.table} is not set`);
  if (!bucket) throw new Error(`${ENV.bucket} is not set`);
  const threads = env[ENV.ortThreads];
  return {
    table,
    bucket,
    aliasTtlMs: int(env, ENV.aliasTtlMs, LIMITS.defaultAliasTtlMs),
    ...(threads ? { ortThreads: int(env, ENV.ortThreads, 1) } : {}),
    preload: parsePreload(env[ENV.preload]),
    maxBodyBytes: int(env, ENV.maxBodyBytes, LIMITS.maxBodyBytes),
    memoryMb: int(env, ENV.memoryMb, 1769),
    ...(env[ENV.queueUrl] ? { queueUrl: env[ENV.queueUrl] } : {}),
    ...(env[ENV.eventBus] ? { eventBus: env[ENV.eventBus] } : {}),
  };
}

/** ARCHITECTURE §4: clamp(floor(memoryMB / 1769), 1, 6) unless configured. */
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

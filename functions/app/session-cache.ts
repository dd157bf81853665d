/**
 * The session cache: sessions of model artifacts keyed by the artifact's sha256, over any InferenceEngine.
 *
 * - least recently used sessions are released to stay within a memory budget (a session's memory is estimated
 *   as artifact bytes × `sizeFactor`); the session just loaded is never the one released;
 * - concurrent loads of one artifact share one fetch and one session;
 * - the bytes are checked against the sha256 before the engine sees them, so a tampered artifact never becomes
 *   a session (`ArtifactIntegrityError`; nothing is cached and the next load fetches again).
 *
 * It lives for the process (module scope in a Lambda sandbox): see docs/ARCHITECTURE.md, "Runtime caches".
 */
import { createHash } from 'node:crypto';
import { TRACE_SPANS } from '../contract/observability';
import { ArtifactIntegrityError } from '../domain/errors';
import type { HashedArtifact, InferenceEngine, ModelSession } from '../ports/inference';
import type { Tracer } from '../ports/telemetry';

export interface SessionCacheOptions {
  /** The engine sessions are created, run and released with. */
  readonly engine: InferenceEngine;
  /** Budget for cached sessions, in bytes. @default 512 MiB */
  readonly memoryBudgetBytes?: number;
  /** Estimated session memory = artifact bytes × this factor. @default 2 */
  readonly sizeFactor?: number;
  /**
   * Puts the integrity check of a loaded artifact in a `Sha256` span (the digest itself is computed while the
   * artifact streams in when the store can, within its download). @default none
   */
  readonly tracer?: Tracer;
}

/** A cached session: the engine's session of the artifact with digest `sha256`. */
export interface CachedSession {
  readonly sha256: string;
  readonly session: ModelSession;
}

interface Entry extends CachedSession {
  /** Estimated bytes the session holds. */
  readonly cost: number;
  lastUsed: number;
}

/** Lower-case hex sha256 of bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Sessions by artifact sha256 within a memory budget (see the module comment). */
export class SessionCache {
  /** The engine the sessions belong to (callers run them with it). */
  readonly engine: InferenceEngine;
  private readonly sessions = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private readonly budget: number;
  private readonly sizeFactor: number;
  private readonly tracer: Tracer | undefined;
  private used = 0;
  private tick = 0;
  private count = 0;

  constructor(opts: SessionCacheOptions) {
    this.engine = opts.engine;
    this.budget = opts.memoryBudgetBytes ?? 512 * 1024 * 1024;
    this.sizeFactor = opts.sizeFactor ?? 2;
    this.tracer = opts.tracer?.enabled ? opts.tracer : undefined;
  }

  /** Number of sessions created so far (observability and tests). */
  get created(): number {
    return this.count;
  }

  /** Estimated bytes held by cached sessions. */
  get usedBytes(): number {
    return this.used;
  }

  /** True when a session for `sha256` is cached (loaded and not evicted). */
  has(sha256: string): boolean {
    return this.sessions.has(sha256);
  }

  /**
   * The cached session of `sha256` without loading (marks it recently used); undefined when not cached. The
   * warm path: one lookup, no promise.
   */
  cached(sha256: string): CachedSession | undefined {
    const hit = this.sessions.get(sha256);
    if (!hit) return undefined;
    hit.lastUsed = ++this.tick;
    return hit;
  }

  /**
   * The session of artifact `sha256`, loaded on first use: `fetch` is called only when the session is not
   * cached, its bytes are verified against `sha256` before a session is created (mismatch:
   * `ArtifactIntegrityError`, nothing cached), and concurrent calls for one sha256 share one load. A fetch that
   * hashed the bytes while they arrived returns them with their digest, which is then compared instead.
   */
  load(sha256: string, fetch: () => Promise<Uint8Array | HashedArtifact>): Promise<CachedSession> {
    const hit = this.cached(sha256);
    if (hit) return Promise.resolve(hit);
    let pending = this.loading.get(sha256);
    if (!pending) {
      pending = this.create(sha256, fetch).finally(() => this.loading.delete(sha256));
      this.loading.set(sha256, pending);
    }
    return pending;
  }

  private async create(sha256: string, fetch: () => Promise<Uint8Array | HashedArtifact>): Promise<Entry> {
    // The engine's one-time load overlaps the download (its failure surfaces from createSession).
    this.engine.init?.().catch(() => {});
    const fetched = await fetch();
    const bytes = fetched instanceof Uint8Array ? fetched : fetched.bytes;
    const digest = () => (fetched instanceof Uint8Array ? sha256Hex(bytes) : fetched.sha256);
    const actual = this.tracer ? await this.tracer.span(TRACE_SPANS.sha256, async () => digest()) : digest();
    if (actual !== sha256) {
      throw new ArtifactIntegrityError(
        `the stored artifact of this model version failed its integrity check (sha256 ${actual.slice(0, 12)}… instead of ${sha256.slice(0, 12)}…); it was not loaded`,
      );
    }
    const session = await this.engine.createSession(bytes);
    this.count++;
    const entry: Entry = {
      sha256,
      session,
      cost: bytes.byteLength * this.sizeFactor,
      lastUsed: ++this.tick,
    };
    this.sessions.set(sha256, entry);
    this.used += entry.cost;
    this.evict(sha256);
    return entry;
  }

  /** Releases least recently used sessions until the budget holds (never the one just loaded). */
  private evict(keep: string): void {
    while (this.used > this.budget) {
      let victim: Entry | undefined;
      for (const entry of this.sessions.values()) {
        if (entry.sha256 !== keep && (!victim || entry.lastUsed < victim.lastUsed)) victim = entry;
      }
      if (!victim) break;
      this.sessions.delete(victim.sha256);
      this.used -= victim.cost;
      // The engine frees it once runs still in progress on it end.
      this.engine.release(victim.session).catch(() => {});
    }
  }

  /** Releases every cached session. */
  async close(): Promise<void> {
    const entries = [...this.sessions.values()];
    this.sessions.clear();
    this.used = 0;
    await Promise.all(entries.map((e) => this.engine.release(e.session).catch(() => {})));
  }
}

let shared: SessionCache | undefined;

/**
 * One session cache per process (module scope), so that every entry point of the process shares its sessions.
 * The first call creates it; later calls return it (their options are not used).
 */
export function sharedSessionCache(opts: SessionCacheOptions): SessionCache {
  shared ??= new SessionCache(opts);
  return shared;
}

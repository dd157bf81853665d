/**
 * The session cache over an in-memory engine: LRU within the memory budget, one load per artifact for
 * concurrent callers, the sha256 check before any session exists, and release of evicted sessions only once
 * their runs end (the engine's part of the contract, exercised through the cache).
 */
import { describe, expect, it } from 'vitest';
import { SessionCache, sha256Hex } from '../../functions/app/session-cache';
import type { Tensor } from '../../functions/domain/tensor';
import type { HashedArtifact, InferenceEngine, ModelSession } from '../../functions/ports/inference';

/** A session of the fake engine: the model is its bytes; runs echo their feeds. */
interface FakeSession extends ModelSession {
  readonly id: number;
}

/** An engine that keeps sessions in memory and records what happens to them. */
class FakeEngine implements InferenceEngine {
  readonly live = new Set<number>();
  readonly released: number[] = [];
  initCalls = 0;
  private next = 0;
  private readonly byHandle = new Map<ModelSession, FakeSession>();
  private readonly running = new Map<number, number>();
  private readonly pendingRelease = new Set<number>();
  /** While set, runs wait for it. */
  gate: Promise<void> | undefined;

  async init(): Promise<void> {
    this.initCalls++;
  }

  async createSession(_bytes: Uint8Array): Promise<ModelSession> {
    const session: FakeSession = { id: ++this.next, inputNames: ['x'], outputNames: ['x'] };
    this.byHandle.set(session, session);
    this.live.add(session.id);
    return session;
  }

  async run(
    session: ModelSession,
    feeds: Readonly<Record<string, Tensor>>,
    _outputNames: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const s = this.sessionOf(session);
    this.running.set(s.id, (this.running.get(s.id) ?? 0) + 1);
    try {
      await this.gate;
      return { ...feeds };
    } finally {
      const n = (this.running.get(s.id) ?? 1) - 1;
      this.running.set(s.id, n);
      if (n === 0 && this.pendingRelease.delete(s.id)) this.free(s.id);
    }
  }

  async release(session: ModelSession): Promise<void> {
    const s = this.sessionOf(session);
    if ((this.running.get(s.id) ?? 0) > 0) this.pendingRelease.add(s.id);
    else this.free(s.id);
  }

  private free(id: number): void {
    this.live.delete(id);
    this.released.push(id);
  }

  /** The id of one of this engine's sessions. */
  idOf(session: ModelSession): number {
    return this.sessionOf(session).id;
  }

  private sessionOf(session: ModelSession): FakeSession {
    const s = this.byHandle.get(session);
    if (!s) throw new Error('not a session of this engine');
    return s;
  }
}

const artifact = (size: number, fill: number): { bytes: Uint8Array; sha: string } => {
  const bytes = new Uint8Array(size).fill(fill);
  return { bytes, sha: sha256Hex(bytes) };
};

describe('SessionCache', () => {
  it('loads once, then serves the cached session without fetching', async () => {
    const engine = new FakeEngine();
    const cache = new SessionCache({ engine });
    const a = artifact(10, 1);
    let fetches = 0;
    const fetch = async () => {
      fetches++;
      return a.bytes;
    };
    const first = await cache.load(a.sha, fetch);
    const again = await cache.load(a.sha, fetch);
    expect(again).toBe(first);
    expect(cache.cached(a.sha)).toBe(first);
    expect(fetches).toBe(1);
    expect(cache.created).toBe(1);
    expect(cache.has(a.sha)).toBe(true);
    expect(cache.usedBytes).toBe(20);
    expect(engine.initCalls).toBe(1);
    expect(cache.cached(artifact(10, 2).sha)).toBeUndefined();
  });

  it('shares one in-flight load among concurrent callers', async () => {
    const engine = new FakeEngine();
    const cache = new SessionCache({ engine });
    const a = artifact(10, 1);
    let fetches = 0;
    let arrive: (bytes: Uint8Array) => void = () => {};
    const fetch = () => {
      fetches++;
      return new Promise<Uint8Array>((resolve) => {
        arrive = resolve;
      });
    };
    const loads = [cache.load(a.sha, fetch), cache.load(a.sha, fetch), cache.load(a.sha, fetch)];
    await Promise.resolve();
    arrive(a.bytes);
    const [x, y, z] = await Promise.all(loads);
    expect(y).toBe(x);
    expect(z).toBe(x);
    expect(fetches).toBe(1);
    expect(cache.created).toBe(1);
    expect(engine.live.size).toBe(1);
  });

  it('creates no session for bytes whose sha256 does not match, and fetches again next time', async () => {
    const engine = new FakeEngine();
    const cache = new SessionCache({ engine });
    const good = artifact(10, 1);
    const tampered = artifact(10, 2);
    await expect(cache.load(good.sha, async () => tampered.bytes)).rejects.toMatchObject({
      code: 'ARTIFACT_INTEGRITY',
    });
    expect(cache.created).toBe(0);
    expect(engine.live.size).toBe(0);
    expect(cache.has(good.sha)).toBe(false);
    expect(cache.usedBytes).toBe(0);
    // A digest computed by the fetcher is compared instead of hashing again.
    const hashed: HashedArtifact = { bytes: good.bytes, sha256: tampered.sha };
    await expect(cache.load(good.sha, async () => hashed)).rejects.toMatchObject({
      code: 'ARTIFACT_INTEGRITY',
    });
    expect(engine.live.size).toBe(0);
    const loaded = await cache.load(good.sha, async () => ({ bytes: good.bytes, sha256: good.sha }));
    expect(cache.created).toBe(1);
    expect(cache.cached(good.sha)).toBe(loaded);
  });

  it('evicts the least recently used sessions to stay within the budget, never the one just loaded', async () => {
    const engine = new FakeEngine();
    // Each 10-byte artifact costs 20 bytes: two fit in 45.
    const cache = new SessionCache({ engine, memoryBudgetBytes: 45 });
    const [a, b, c] = [artifact(10, 1), artifact(10, 2), artifact(10, 3)];
    const sa = await cache.load(a.sha, async () => a.bytes);
    const sb = await cache.load(b.sha, async () => b.bytes);
    cache.cached(a.sha); // a is now more recently used than b
    await cache.load(c.sha, async () => c.bytes);
    expect(cache.has(a.sha)).toBe(true);
    expect(cache.has(b.sha)).toBe(false);
    expect(cache.has(c.sha)).toBe(true);
    expect(cache.usedBytes).toBe(40);
    expect(engine.released).toEqual([engine.idOf(sb.session)]);
    // A session larger than the whole budget is still kept (it was just loaded); everything else goes.
    const big = artifact(100, 4);
    await cache.load(big.sha, async () => big.bytes);
    expect(cache.has(big.sha)).toBe(true);
    expect(cache.has(a.sha)).toBe(false);
    expect(cache.has(c.sha)).toBe(false);
    expect(cache.usedBytes).toBe(200);
    expect(engine.released).toContain(engine.idOf(sa.session));
  });

  it('an evicted session that is running is released only when its run ends', async () => {
    const engine = new FakeEngine();
    const cache = new SessionCache({ engine, memoryBudgetBytes: 25 });
    const [a, b] = [artifact(10, 1), artifact(10, 2)];
    const sa = await cache.load(a.sha, async () => a.bytes);
    let open: () => void = () => {};
    engine.gate = new Promise((resolve) => {
      open = resolve;
    });
    const feeds: Record<string, Tensor> = { x: { datatype: 'FP32', shape: [1], data: Float32Array.of(1) } };
    const running = engine.run(sa.session, feeds, ['x']);
    await cache.load(b.sha, async () => b.bytes);
    expect(cache.has(a.sha)).toBe(false);
    expect(engine.live.has(engine.idOf(sa.session))).toBe(true);
    open();
    expect(await running).toEqual(feeds);
    expect(engine.live.has(engine.idOf(sa.session))).toBe(false);
  });

  it('close releases every cached session', async () => {
    const engine = new FakeEngine();
    const cache = new SessionCache({ engine });
    const [a, b] = [artifact(10, 1), artifact(10, 2)];
    await cache.load(a.sha, async () => a.bytes);
    await cache.load(b.sha, async () => b.bytes);
    await cache.close();
    expect(engine.live.size).toBe(0);
    expect(cache.has(a.sha)).toBe(false);
    expect(cache.usedBytes).toBe(0);
  });
});

/**
 * InferenceEngine on onnxruntime-node. Sessions are cached by artifact sha256 in an LRU bounded by a memory
 * budget (estimated as artifact bytes × `sizeFactor`); concurrent loads of one artifact share one promise;
 * artifact bytes are verified against their sha256 before `InferenceSession.create`, so a tampered artifact
 * never becomes a session. Sessions run sequentially with a fixed intra-op thread pool and spinning off
 * (a Lambda sandbox serves one request at a time; spinning threads only burn the CPU share).
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as ort from 'onnxruntime-node';
import { ArtifactIntegrityError, BadRequestError } from '../domain/errors';
import { type Tensor, type TensorData, toHalfBits } from '../domain/tensor-codec';
import type { Datatype } from '../domain/types';
import type { HashedArtifact, InferenceEngine, ModelSession } from '../ports/inference';

export interface OrtEngineOptions {
  /** Intra-op threads per session (see `ortThreadCount()` in handlers/config.ts). @default 1 */
  readonly threads?: number;
  /** Budget for cached sessions, in bytes. @default 512 MiB */
  readonly memoryBudgetBytes?: number;
  /** Estimated session memory = artifact bytes × this factor. @default 2 */
  readonly sizeFactor?: number;
  /**
   * ORT's CPU memory arena: faster repeated runs at the price of memory held until the session is released.
   * @default true
   */
  readonly enableCpuMemArena?: boolean;
}

const TO_ORT: Record<Datatype, ort.Tensor.Type> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};

const FROM_ORT: Partial<Record<ort.Tensor.Type, Datatype>> = Object.fromEntries(
  Object.entries(TO_ORT).map(([k, v]) => [v, k as Datatype]),
);

/** Maps an onnxruntime element type name to the OIP datatype (undefined for types OIP cannot carry). */
export function datatypeOfOrtType(type: string): Datatype | undefined {
  return FROM_ORT[type as ort.Tensor.Type];
}

interface Entry {
  readonly handle: OrtSession;
  readonly session: ort.InferenceSession;
  readonly cost: number;
  inUse: number;
  lastUsed: number;
  evicted: boolean;
}

interface OrtSession extends ModelSession {
  readonly entry: Entry;
}

/** Hex sha256 of bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

type OrtModule = typeof import('onnxruntime-node');
let ortModule: OrtModule | undefined;
let ortLoading: Promise<OrtModule> | undefined;
const requireModule = createRequire(import.meta.url);

/**
 * Loads onnxruntime-node once per process. Loading is lazy, and deferred by one turn of the event loop, so that
 * requests issued right after INIT go out before the native library's (synchronous) load, which then overlaps
 * with waiting for their answers. `require` (the package is CommonJS; Lambda resolves it from the layer through
 * NODE_PATH) skips the ES module loader's scan of its sources.
 */
export function loadOnnxRuntime(): Promise<OrtModule> {
  ortLoading ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
    ortModule = requireModule('onnxruntime-node') as OrtModule;
    return ortModule;
  });
  return ortLoading;
}

/**
 * The smallest ONNX model: `y = Identity(x)`, FP32 `[1]` (88 bytes, built by `warmUpModel()` of
 * functions/local/onnx-builder.ts; test/integration/ort-warm-up.test.ts checks the two agree). Creating a session of it initializes what
 * onnxruntime sets up once per process (its environment, kernel registries, thread pools): about 20-25 ms that
 * the first real model would otherwise pay on the critical path.
 */
export const WARM_UP_MODEL = Uint8Array.from(
  Buffer.from(
    'CAgSBG1hYXMaATE6RQoeCgF4EgF5GgpJZGVudGl0eV8wIghJZGVudGl0eToAEgF3Wg8KAXgSCgoICAESBAoCCAFiDwoBeRIKCggIARIECgIIAUIECgAQEQ==',
    'base64',
  ),
);

function toOrtTensor(t: Tensor): ort.Tensor {
  const type = TO_ORT[t.datatype];
  // Tensor's overloads are keyed by element type; the codec guarantees the data/type pairing.
  return new ortModule!.Tensor(type, t.data as never, t.shape as number[]);
}

function fromOrtTensor(name: string, t: ort.Tensor): Tensor {
  const datatype = datatypeOfOrtType(t.type);
  if (!datatype) throw new Error(`output '${name}' has element type ${t.type}, which OIP cannot represent`);
  let data = t.data as TensorData;
  if (datatype === 'FP16' && !(data instanceof Uint16Array)) {
    // Runtimes with a native Float16Array hand out values, not bits.
    data = Uint16Array.from(data as unknown as ArrayLike<number>, toHalfBits);
  }
  return { datatype, shape: t.dims, data };
}

/** onnxruntime-node implementation of the InferenceEngine port. */
export class OrtEngine implements InferenceEngine {
  private readonly sessions = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<OrtSession>>();
  private readonly options: ort.InferenceSession.SessionOptions;
  private readonly budget: number;
  private readonly sizeFactor: number;
  private used = 0;
  private tick = 0;
  /** Number of sessions created so far (observability and tests). */
  created = 0;

  constructor(opts: OrtEngineOptions = {}) {
    this.budget = opts.memoryBudgetBytes ?? 512 * 1024 * 1024;
    this.sizeFactor = opts.sizeFactor ?? 2;
    this.options = {
      executionMode: 'sequential',
      intraOpNumThreads: Math.max(1, opts.threads ?? 1),
      interOpNumThreads: 1,
      enableCpuMemArena: opts.enableCpuMemArena ?? true,
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    };
  }

  /**
   * Loads onnxruntime and initializes it with a session of `WARM_UP_MODEL` (INIT starts it; the first session
   * load awaits the load). Resolves when done; rejects when onnxruntime cannot load. Nothing is cached: the
   * warm-up session is released.
   */
  async warmUp(): Promise<void> {
    const runtime = await loadOnnxRuntime();
    const session = await runtime.InferenceSession.create(WARM_UP_MODEL, this.options);
    await session.release();
  }

  /** The session options every session is created with. */
  get sessionOptions(): Readonly<ort.InferenceSession.SessionOptions> {
    return this.options;
  }

  has(sha256: string): boolean {
    return this.sessions.has(sha256);
  }

  /** Estimated bytes held by cached sessions. */
  get usedBytes(): number {
    return this.used;
  }

  cachedSession(sha256: string): ModelSession | undefined {
    const hit = this.sessions.get(sha256);
    if (!hit) return undefined;
    hit.lastUsed = ++this.tick;
    return hit.handle;
  }

  loadSession(sha256: string, fetch: () => Promise<Uint8Array | HashedArtifact>): Promise<ModelSession> {
    const hit = this.cachedSession(sha256);
    if (hit) return Promise.resolve(hit);
    let pending = this.loading.get(sha256);
    if (!pending) {
      pending = this.create(sha256, fetch).finally(() => this.loading.delete(sha256));
      this.loading.set(sha256, pending);
    }
    return pending;
  }

  private async create(
    sha256: string,
    fetch: () => Promise<Uint8Array | HashedArtifact>,
  ): Promise<OrtSession> {
    const runtimeLoading = loadOnnxRuntime();
    runtimeLoading.catch(() => {});
    const fetched = await fetch();
    const bytes = fetched instanceof Uint8Array ? fetched : fetched.bytes;
    const actual = fetched instanceof Uint8Array ? sha256Hex(bytes) : fetched.sha256;
    if (actual !== sha256) {
      throw new ArtifactIntegrityError(
        `the stored artifact of this model version failed its integrity check (sha256 ${actual.slice(0, 12)}… instead of ${sha256.slice(0, 12)}…); it was not loaded`,
      );
    }
    const runtime = await runtimeLoading;
    const session = await runtime.InferenceSession.create(bytes, this.options);
    this.created++;
    const entry = {
      session,
      cost: bytes.byteLength * this.sizeFactor,
      inUse: 0,
      lastUsed: ++this.tick,
      evicted: false,
    } as Entry;
    const handle: OrtSession = {
      sha256,
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      entry,
    };
    (entry as { handle: OrtSession }).handle = handle;
    this.sessions.set(sha256, entry);
    this.used += entry.cost;
    this.evict(sha256);
    return handle;
  }

  /** Drops least recently used sessions until the budget holds (never the one just loaded). */
  private evict(keep: string): void {
    while (this.used > this.budget) {
      let victim: [string, Entry] | undefined;
      for (const pair of this.sessions) {
        if (pair[0] !== keep && (!victim || pair[1].lastUsed < victim[1].lastUsed)) victim = pair;
      }
      if (!victim) break;
      const [sha, entry] = victim;
      this.sessions.delete(sha);
      this.used -= entry.cost;
      entry.evicted = true;
      if (entry.inUse === 0) void entry.session.release().catch(() => {});
    }
  }

  async run(
    session: ModelSession,
    feeds: Readonly<Record<string, Tensor>>,
    outputNames: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const entry = (session as OrtSession).entry;
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name in feeds) ortFeeds[name] = toOrtTensor(feeds[name]!);
    entry.inUse++;
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await entry.session.run(ortFeeds, outputNames as string[]);
    } catch (e) {
      throw new BadRequestError(
        `the model could not run on this input: ${conciseOrtMessage((e as Error).message)}`,
        'INFERENCE_FAILED',
      );
    } finally {
      entry.inUse--;
      if (entry.evicted && entry.inUse === 0) void entry.session.release().catch(() => {});
    }
    const out: Record<string, Tensor> = {};
    for (const name of outputNames) {
      const t = results[name];
      if (t) out[name] = fromOrtTensor(name, t);
    }
    return out;
  }

  /** The onnxruntime session behind a handle (benchmarks and diagnostics run it directly). */
  ortSession(session: ModelSession): ort.InferenceSession {
    return (session as OrtSession).entry.session;
  }

  /** Releases every cached session. */
  async close(): Promise<void> {
    const entries = [...this.sessions.values()];
    this.sessions.clear();
    this.used = 0;
    await Promise.all(entries.map((e) => e.session.release().catch(() => {})));
  }
}

function conciseOrtMessage(message: string): string {
  const m = message.replace(/\s+/g, ' ').trim();
  return m.length > 500 ? `${m.slice(0, 500)}…` : m;
}

let shared: OrtEngine | undefined;

/** One engine per process (module scope), so every handler in the process shares the session cache. */
export function sharedOrtEngine(opts: OrtEngineOptions = {}): OrtEngine {
  shared ??= new OrtEngine(opts);
  return shared;
}

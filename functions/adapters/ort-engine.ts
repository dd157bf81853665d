/**
 * InferenceEngine on onnxruntime-node: onnxruntime's lazy load, its session options, and the conversion of
 * domain tensors to and from onnxruntime tensors. Sessions run sequentially with a fixed intra-op thread pool
 * and spinning off (a Lambda sandbox serves one request at a time; spinning threads only burn the CPU share).
 * Which sessions stay loaded is the app's session cache (functions/app/session-cache.ts).
 */
import { createRequire } from 'node:module';
import type * as ort from 'onnxruntime-node';
import { BadRequestError } from '../domain/errors';
import { unknownCategoryRefusal } from '../domain/preprocess-spec';
import type { Tensor, TensorData } from '../domain/tensor';
import type { Datatype } from '../domain/types';
import type { InferenceEngine, ModelSession } from '../ports/inference';

export interface OrtEngineOptions {
  /** Intra-op threads per session (see `ortThreadCount()` in config/environment.ts). @default 1 */
  readonly threads?: number;
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

/**
 * The session class of onnxruntime-node's native binding (`onnxruntime-node/dist/binding`), as its own JavaScript
 * backend (`dist/backend.js`) uses it: `loadModel` from bytes, names from its metadata, and `run`, which is
 * synchronous and answers onnxruntime-common Tensors (the binding is initialised with that Tensor class).
 */
interface NativeSession {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: object): void;
  readonly inputMetadata: readonly { readonly name: string }[];
  readonly outputMetadata: readonly { readonly name: string }[];
  run(
    feeds: Record<string, ort.Tensor>,
    fetches: Record<string, null>,
    options: object,
  ): Record<string, ort.Tensor>;
  dispose(): void;
}

interface NativeBinding {
  readonly binding: { readonly InferenceSession: new () => NativeSession };
  /** Initialises onnxruntime's environment once per process (log level from onnxruntime-common's `env`). */
  initOrt(): void;
}

/** A session of this engine: the native session behind it. */
interface OrtSession extends ModelSession {
  readonly native: NativeSession;
}

/**
 * The native run's `fetches` (`{ [outputName]: null }`) per array of output names. Callers pass the same array
 * for the same outputs (the predict path's output plan is kept per served version), so it is built once.
 */
const fetchesOf = new WeakMap<readonly string[], Record<string, null>>();

function fetches(outputNames: readonly string[]): Record<string, null> {
  let f = fetchesOf.get(outputNames);
  if (!f) {
    f = Object.fromEntries(outputNames.map((n) => [n, null] as const));
    fetchesOf.set(outputNames, f);
  }
  return f;
}

type OrtModule = typeof import('onnxruntime-node');
let ortModule: OrtModule | undefined;
let nativeBinding: NativeBinding | undefined;
let ortLoading: Promise<OrtModule> | undefined;
const requireModule = createRequire(import.meta.url);

/**
 * Loads onnxruntime-node once per process. Loading is lazy, and deferred by one turn of the event loop, so that
 * requests issued right after INIT go out before the native library's (synchronous) load, which then overlaps
 * with waiting for their answers. `require` (the package is CommonJS; Lambda resolves it from the layer through
 * NODE_PATH) skips the ES module loader's scan of its sources. Its native binding (the very module the package's
 * backend requires, from the same cache) is what sessions run on: see `OrtEngine.run`.
 */
export function loadOnnxRuntime(): Promise<OrtModule> {
  ortLoading ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
    ortModule = requireModule('onnxruntime-node') as OrtModule;
    nativeBinding = requireModule('onnxruntime-node/dist/binding') as NativeBinding;
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

/**
 * FP16 and Node.js >= 23 (a global `Float16Array`; Lambda's nodejs24.x): onnxruntime-common then stores float16
 * tensor data as `Float16Array`, and its Tensor constructor turns a `Uint16Array` of half bits into a
 * `Float16Array` view of the same memory. The native binding accepts that view but takes its byte length from
 * node-addon-api's element-size table, which has no entry for Float16Array: 0 bytes, and onnxruntime refuses the
 * input ("not enough space: expected 8, got 0"). The binding's own type for float16 data is `Uint16Array`, so an
 * FP16 input keeps its half bits as `data` (an own property over the getter; the binding reads `data`), and an
 * FP16 output, handed back as such a view, is read as the `Uint16Array` of its bits. Both are views, never a
 * copy or a conversion of values: every bit pattern (NaN payloads, -0) goes through as it is. Without a global
 * `Float16Array` (Node.js 20) nothing changes: onnxruntime-common keeps the `Uint16Array`.
 */
function toOrtTensor(t: Tensor): ort.Tensor {
  const type = TO_ORT[t.datatype];
  // Tensor's overloads are keyed by element type; the decoder (domain/oip-decode.ts) guarantees the pairing.
  const tensor = new ortModule!.Tensor(type, t.data as never, t.shape as number[]);
  if (type === 'float16' && !(tensor.data instanceof Uint16Array)) {
    Object.defineProperty(tensor, 'data', { value: t.data, enumerable: true });
  }
  return tensor;
}

/**
 * The domain tensor of an onnxruntime output (an `ort.Tensor`, or its type, dims and data as the thread engine
 * receives them).
 */
export function fromOrtTensor(
  name: string,
  t: Pick<ort.Tensor, 'type' | 'dims'> & { readonly data: unknown },
): Tensor {
  const datatype = datatypeOfOrtType(t.type);
  if (!datatype) throw new Error(`output '${name}' has element type ${t.type}, which OIP cannot represent`);
  let data = t.data as TensorData;
  if (datatype === 'FP16' && !(data instanceof Uint16Array)) {
    // A Float16Array over the output's half bits: the same memory read as bits, not its values re-rounded.
    const view = data as unknown as ArrayBufferView & { readonly length: number };
    data = new Uint16Array(view.buffer, view.byteOffset, view.length);
  }
  return { datatype, shape: t.dims, data };
}

/** The session options of every session an engine of `opts` creates. */
export function ortSessionOptions(opts: OrtEngineOptions): ort.InferenceSession.SessionOptions {
  return {
    executionMode: 'sequential',
    intraOpNumThreads: Math.max(1, opts.threads ?? 1),
    interOpNumThreads: 1,
    enableCpuMemArena: opts.enableCpuMemArena ?? true,
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/** The onnxruntime element type name of an OIP datatype. */
export function ortTypeOf(datatype: Datatype): ort.Tensor.Type {
  return TO_ORT[datatype];
}

/** onnxruntime-node implementation of the InferenceEngine port. */
export class OrtEngine implements InferenceEngine {
  private readonly options: ort.InferenceSession.SessionOptions;

  constructor(opts: OrtEngineOptions = {}) {
    this.options = ortSessionOptions(opts);
  }

  /**
   * Loads onnxruntime and initializes it with a session of `WARM_UP_MODEL` (INIT starts it; the first session
   * load awaits the load). Resolves when done; rejects when onnxruntime cannot load. The warm-up session is
   * released.
   */
  async warmUp(): Promise<void> {
    await this.release(await this.createSession(WARM_UP_MODEL));
  }

  /** The session options every session is created with. */
  get sessionOptions(): Readonly<ort.InferenceSession.SessionOptions> {
    return this.options;
  }

  /** Loads onnxruntime (once per process; see `loadOnnxRuntime`). */
  async init(): Promise<void> {
    await loadOnnxRuntime();
  }

  async createSession(bytes: Uint8Array): Promise<ModelSession> {
    await loadOnnxRuntime();
    // One turn as onnxruntime's own backend takes before its (synchronous) load, so callers awaiting several
    // loads interleave as they did.
    await new Promise<void>((resolve) => setImmediate(resolve));
    nativeBinding!.initOrt();
    const native = new nativeBinding!.binding.InferenceSession();
    native.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, this.options);
    const handle: OrtSession = {
      inputNames: native.inputMetadata.map((m) => m.name),
      outputNames: native.outputMetadata.map((m) => m.name),
      native,
    };
    return handle;
  }

  /**
   * Runs `session` on `feeds` with the native session's synchronous `run`: the run happens during this call and the
   * returned promise is already settled. onnxruntime's public `InferenceSession.run` does the same native run one
   * turn of the event loop later, after checking feeds and fetches that the decoder has already checked, and wraps
   * each output once more: 3.5–5 µs per request that this saves (docs/performance.md, "The native session").
   * A conversion failure rejects as it is; a run failure rejects mapped (`runFailed`).
   */
  run(
    session: ModelSession,
    feeds: Readonly<Record<string, Tensor>>,
    outputNames: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const s = session as OrtSession;
    let results: Record<string, ort.Tensor>;
    try {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const name in feeds) ortFeeds[name] = toOrtTensor(feeds[name]!);
      try {
        results = s.native.run(ortFeeds, fetches(outputNames), {});
      } catch (e) {
        throw runFailed(e);
      }
      const out: Record<string, Tensor> = {};
      for (const name of outputNames) {
        const t = results[name];
        if (t) out[name] = fromOrtTensor(name, t);
      }
      return Promise.resolve(out);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Frees the session's native memory. A run is synchronous, so none is ever in progress when this is called. */
  release(session: ModelSession): Promise<void> {
    try {
      (session as OrtSession).native.dispose();
    } catch {
      // Already disposed: nothing left to free.
    }
    return Promise.resolve();
  }

  /**
   * onnxruntime's public `InferenceSession` over the native session behind a handle, with the handler its own
   * backend (`dist/backend.js`) builds: `run` one turn later, `dispose` for `release`. Benchmarks measure "raw
   * onnxruntime" through it on the very weights the engine serves; releasing it releases the handle's session.
   */
  ortSession(session: ModelSession): ort.InferenceSession {
    const s = session as OrtSession;
    const metadata = (list: NativeSession['inputMetadata']) => list.map((m) => ({ ...m }));
    const handler = {
      inputNames: s.inputNames,
      outputNames: s.outputNames,
      inputMetadata: metadata(s.native.inputMetadata),
      outputMetadata: metadata(s.native.outputMetadata),
      run: (feeds: Record<string, ort.Tensor>, fetches: Record<string, null>, options: object) =>
        new Promise((resolve, reject) => {
          setImmediate(() => {
            try {
              resolve(s.native.run(feeds, fetches, options));
            } catch (e) {
              reject(e);
            }
          });
        }),
      dispose: async () => s.native.dispose(),
      startProfiling: () => {},
      endProfiling: () => {},
    };
    // The class's constructor takes a session handler (what `InferenceSession.create` builds); its type is not public.
    const Session = ortModule!.InferenceSession as unknown as new (h: typeof handler) => ort.InferenceSession;
    return new Session(handler);
  }
}

/**
 * A failed run as the caller sees it: a category a `oneHot` pre-processing with `handleUnknown: 'error'` does not
 * know (400 UNKNOWN_CATEGORY, naming the input), else the model could not run on this input (400 INFERENCE_FAILED).
 */
export function runFailed(e: unknown): BadRequestError {
  const message = String((e as Error)?.message ?? e);
  return (
    unknownCategoryRefusal(message) ??
    new BadRequestError(
      `the model could not run on this input: ${conciseOrtMessage(message)}`,
      'INFERENCE_FAILED',
    )
  );
}

/**
 * Where in onnxruntime's sources a message was raised (`…/reshape_helper.h:91`, then the C++ function it is in when
 * named with its parameters, its return type too when given: `void* onnxruntime::BFCArena::AllocateRawInternal(…)`):
 * its internals, not the caller's business.
 */
const SOURCE_LOCATION =
  /(?:[\w.-]*\/)*[\w.-]+\.(?:h|hpp|cc|cpp):\d+\s+(?:(?:[\w:<>]+[*&]*\s+)?[\w~<>]+(?:::[\w~<>]+)+\([^()]*\)(?:\s*const)?\s+)?/g;

function conciseOrtMessage(message: string): string {
  const m = message.replace(SOURCE_LOCATION, '').replace(/\s+/g, ' ').trim();
  return m.length > 500 ? `${m.slice(0, 500)}…` : m;
}

let shared: OrtEngine | undefined;

/** One engine per process (module scope): every entry point of the process creates its sessions with it. */
export function sharedOrtEngine(opts: OrtEngineOptions = {}): OrtEngine {
  shared ??= new OrtEngine(opts);
  return shared;
}

/**
 * InferenceEngine on onnxruntime-node in a thread of its own (`worker_threads`): sessions are created and run
 * there, so the main thread reads and writes rows while a run is in progress. Batch parts use it
 * (functions/app/batch-score.ts keeps chunks in flight): the row scanner and the answers' text take about as long
 * as the model itself, and the worker function (3 008 MB: 1.7 vCPUs) can run both at once (docs/performance.md,
 * "The scoring thread"). The predict path keeps the synchronous engine (functions/adapters/ort-engine.ts): one
 * request at a time has nothing to overlap, and a message to a thread and back would be added to each request.
 *
 * The thread's code is the short script below, run with `eval`: it needs no file of its own in a function's
 * bundle, and it loads onnxruntime-node from where the main thread resolves it (the layer, on Lambda). Session
 * options, tensor types and error mapping are the synchronous engine's. Inputs are copied once into buffers that
 * are moved to the thread (the caller's arrays stay its own); outputs come back as copies.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import type { Tensor, TensorData } from '../domain/tensor';
import type { InferenceEngine, ModelSession } from '../ports/inference';
import {
  fromOrtTensor,
  type OrtEngineOptions,
  ortSessionOptions,
  ortTypeOf,
  runFailed,
  WARM_UP_MODEL,
} from './ort-engine';

/**
 * The thread: onnxruntime-node's native binding (as `OrtEngine` uses it), one message per operation, answered
 * with the message's id. A run's failure is answered as `{ error, run: true }` (mapped by the caller as the
 * synchronous engine maps it); any other failure as `{ error }`. FP16 data goes as the `Uint16Array` of its bits
 * both ways (see `toOrtTensor` in ort-engine.ts for why).
 */
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ort);
const native = require(workerData.binding);
native.initOrt();
const sessions = new Map();
const tensorOf = (f) => {
  const t = new ort.Tensor(f.type, f.data, f.dims);
  if (f.type === 'float16' && !(t.data instanceof Uint16Array)) {
    Object.defineProperty(t, 'data', { value: f.data, enumerable: true });
  }
  return t;
};
const dataOf = (t) => {
  const d = t.data;
  return t.type === 'float16' && !(d instanceof Uint16Array) ? new Uint16Array(d.buffer, d.byteOffset, d.length) : d;
};
parentPort.on('message', (m) => {
  let phase = 'prepare';
  try {
    if (m.op === 'load') {
      const s = new native.binding.InferenceSession();
      s.loadModel(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength, m.options);
      sessions.set(m.sid, s);
      parentPort.postMessage({
        id: m.id,
        inputNames: s.inputMetadata.map((x) => x.name),
        outputNames: s.outputMetadata.map((x) => x.name),
      });
    } else if (m.op === 'run') {
      const s = sessions.get(m.sid);
      if (!s) throw new Error('session ' + m.sid + ' was released');
      const feeds = {};
      for (const f of m.feeds) feeds[f.name] = tensorOf(f);
      const fetches = {};
      for (const n of m.outputNames) fetches[n] = null;
      phase = 'run';
      const results = s.run(feeds, fetches, {});
      phase = 'answer';
      const outputs = [];
      for (const n of m.outputNames) {
        const t = results[n];
        if (t) outputs.push({ name: n, type: t.type, dims: t.dims, data: dataOf(t) });
      }
      // The inputs' buffers go back to the main thread, which reuses them: left here, they would wait for this
      // thread's collector, which runs seldom (it allocates little), and the process would hold every run's input.
      const back = [];
      for (const f of m.feeds) if (ArrayBuffer.isView(f.data) && !back.includes(f.data.buffer)) back.push(f.data.buffer);
      parentPort.postMessage({ id: m.id, outputs, back }, back);
    } else if (m.op === 'close') {
      for (const s of sessions.values()) s.dispose();
      sessions.clear();
      parentPort.close();
    } else if (m.op === 'release') {
      const s = sessions.get(m.sid);
      sessions.delete(m.sid);
      if (s) s.dispose();
      parentPort.postMessage({ id: m.id });
    } else {
      parentPort.postMessage({ id: m.id });
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.message) || e), run: phase === 'run' });
  }
});
`;

interface ThreadSession extends ModelSession {
  readonly sid: number;
  /** The thread it lives in (`OrtThreadEngine.generation` when it was created). */
  readonly generation: number;
}

interface Answer {
  readonly id: number;
  readonly error?: string;
  readonly run?: boolean;
  readonly inputNames?: string[];
  readonly outputNames?: string[];
  readonly outputs?: { name: string; type: ort.Tensor.Type; dims: number[]; data: TensorData }[];
  /** A run's input buffers, given back. */
  readonly back?: ArrayBuffer[];
}

/** Input buffers given back by the thread and kept for the next runs' copies (a chunk's runs need a few). */
const SPARE_BUFFERS = 8;

interface Pending {
  resolve(a: Answer): void;
  reject(e: Error): void;
}

const requireModule = createRequire(import.meta.url);

/**
 * A copy of exactly a view's bytes, in a buffer of its own, as the same kind of array (a Node.js Buffer as a
 * Uint8Array: its `slice` is a view, not a copy).
 */
function ownCopy<T extends ArrayBufferView>(view: T, spare?: ArrayBuffer): T {
  const buffer = spare ?? new ArrayBuffer(view.byteLength);
  new Uint8Array(buffer, 0, view.byteLength).set(
    new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
  );
  const Kind = (Buffer.isBuffer(view) ? Uint8Array : view.constructor) as new (
    b: ArrayBuffer,
    offset: number,
    length: number,
  ) => T;
  const perElement = (view as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
  return new Kind(buffer, 0, view.byteLength / perElement);
}

/** onnxruntime-node in a thread of its own: the InferenceEngine port, each call answered by the thread. */
export class OrtThreadEngine implements InferenceEngine {
  private readonly options: object;
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Input buffers the thread gave back, for the next copies. */
  private readonly spare: ArrayBuffer[] = [];
  /** Counts the threads started: a handle of a thread that stopped is refused, not run on another. */
  private generation = 0;

  constructor(opts: OrtEngineOptions = {}) {
    this.options = ortSessionOptions(opts);
  }

  /** Starts the thread and loads onnxruntime there (once; again after the thread stopped). */
  init(): Promise<void> {
    this.ready ??= this.call({ op: 'init' }).then(() => undefined);
    return this.ready;
  }

  /** Loads onnxruntime in the thread and initializes it with a session of `WARM_UP_MODEL`, released after. */
  async warmUp(): Promise<void> {
    await this.release(await this.createSession(WARM_UP_MODEL));
  }

  async createSession(bytes: Uint8Array): Promise<ModelSession> {
    await this.init();
    const generation = this.generation;
    const sid = this.nextId++;
    // The thread gets a copy: the caller's bytes stay where they are (the session cache keeps no reference).
    const copy = ownCopy(bytes);
    const a = await this.call({ op: 'load', sid, bytes: copy, options: this.options }, [
      copy.buffer as ArrayBuffer,
    ]);
    const handle: ThreadSession = {
      inputNames: a.inputNames ?? [],
      outputNames: a.outputNames ?? [],
      sid,
      generation,
    };
    return handle;
  }

  async run(
    session: ModelSession,
    feeds: Readonly<Record<string, Tensor>>,
    outputNames: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const s = session as ThreadSession;
    if (s.generation !== this.generation) {
      throw new Error('onnxruntime thread: the session was lost with the thread that held it');
    }
    const message: { name: string; type: string; dims: readonly number[]; data: TensorData }[] = [];
    const moved: ArrayBuffer[] = [];
    for (const name in feeds) {
      const t = feeds[name]!;
      let data = t.data;
      if (ArrayBuffer.isView(data)) {
        // A copy of exactly the view (a view's own buffer may be far larger: a chunk's stacked rows), moved.
        const copy = ownCopy(data, this.spareBuffer(data.byteLength));
        moved.push(copy.buffer as ArrayBuffer);
        data = copy as TensorData;
      }
      message.push({ name, type: ortTypeOf(t.datatype), dims: t.shape, data });
    }
    const a = await this.call(
      { op: 'run', sid: s.sid, feeds: message, outputNames: [...outputNames] },
      moved,
    );
    for (const b of a.back ?? []) if (this.spare.length < SPARE_BUFFERS) this.spare.push(b);
    const out: Record<string, Tensor> = {};
    for (const o of a.outputs ?? []) out[o.name] = fromOrtTensor(o.name, o);
    return out;
  }

  /** Frees the session in the thread, after the runs sent before (the thread answers in order). */
  async release(session: ModelSession): Promise<void> {
    const s = session as ThreadSession;
    if (this.worker === undefined || s.generation !== this.generation) return;
    await this.call({ op: 'release', sid: s.sid }).catch(() => undefined);
  }

  /**
   * Stops the thread once what was sent before is answered: it frees its sessions and ends. A later call starts a
   * new thread. Not `terminate()`: a thread stopped during a native run aborts the process (the binding's answer
   * fails in a thread being torn down, and node-addon-api's exception escapes).
   */
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.ref();
    w.postMessage({ op: 'close', id: 0 });
    await exited;
  }

  /** A spare buffer of at least `byteLength` bytes (taken from the spares), else undefined. */
  private spareBuffer(byteLength: number): ArrayBuffer | undefined {
    const i = this.spare.findIndex((b) => b.byteLength >= byteLength);
    return i < 0 ? undefined : this.spare.splice(i, 1)[0];
  }

  private call(message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Answer> {
    const worker = this.thread();
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ ...message, id }, transfer);
    }).then((a) => {
      if (a.error === undefined) return a;
      throw a.run ? runFailed(new Error(a.error)) : new Error(`onnxruntime thread: ${a.error}`);
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: {
        ort: requireModule.resolve('onnxruntime-node'),
        binding: requireModule.resolve('onnxruntime-node/dist/binding'),
      },
    });
    worker.unref();
    worker.on('message', (a: Answer) => {
      const p = this.pending.get(a.id);
      if (!p) return;
      this.pending.delete(a.id);
      if (this.pending.size === 0) worker.unref();
      p.resolve(a);
    });
    const stopped = (e: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.ready = undefined;
      this.generation++;
      const pending = [...this.pending.values()];
      this.pending.clear();
      for (const p of pending) p.reject(e);
    };
    worker.on('error', (e) => stopped(e));
    worker.on('exit', (code) => stopped(new Error(`onnxruntime thread stopped (exit code ${code})`)));
    this.worker = worker;
    return worker;
  }
}

let shared: OrtThreadEngine | undefined;

/** One thread engine per process: every batch part of the process runs its sessions in the same thread. */
export function sharedOrtThreadEngine(opts: OrtEngineOptions = {}): OrtThreadEngine {
  shared ??= new OrtThreadEngine(opts);
  return shared;
}

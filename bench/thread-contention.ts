/**
 * `npx tsx bench/thread-contention.ts [rounds]` — whether this machine's second vCPU runs the batch worker's scoring
 * thread at full speed while the main thread works (not a test). `batchOverRaw` (bench/batch.ts) assumes the two
 * threads of a part, the main thread reading rows and the scoring thread running the model
 * (functions/adapters/ort-thread-engine.ts), each have a core of their own.
 *
 * Times the bench MLP (bench/batch.ts's) on 4 096 rows, 256 rows a run (BATCH.ortBatchRows), median µs a row over
 * the rounds, interleaved:
 *   - `raw`: onnxruntime's public `session.run` on this thread;
 *   - `thread`: the same runs in the scoring thread (`OrtThreadEngine`, three in flight), this thread idle;
 *   - `threadWhileSpinning`: the same while this thread does integer arithmetic only (no memory traffic);
 *   - `threadWhileStreaming`: the same while this thread reads 64 MiB over and over (one byte per cache line);
 *   - `threadWhileAllocating`: the same while this thread makes short-lived objects (the young generation's
 *     collections run partly in V8's helper threads).
 * `slowdownSpinning`, `slowdownStreaming` and `slowdownAllocating` are the last three over `thread`: about 1 where
 * the threads have a core each; above it where they share one core's execution units, caches or power budget.
 */
import ort from 'onnxruntime-node';
import { ortSessionOptions } from '../functions/adapters/ort-engine';
import { OrtThreadEngine } from '../functions/adapters/ort-thread-engine';
import { BATCH } from '../functions/contract/events';
import type { Tensor } from '../functions/domain/tensor';
import { buildMlp } from '../functions/local/onnx-builder';
import { BENCH_MLP, batchRows } from './batch';

const rounds = Number(process.argv[2] ?? 8);
const ROWS = 4096;
const IN_FLIGHT = 3;

const bytes = buildMlp(BENCH_MLP);
const data = batchRows(ROWS);
const n = BATCH.ortBatchRows;
const slices: Float32Array[] = [];
for (let r = 0; r < data.rows; r += n)
  slices.push(data.values.subarray(r * data.inFeatures, (r + n) * data.inFeatures));
const rawFeeds = slices.map((s) => ({
  input: new ort.Tensor('float32', s, [s.length / data.inFeatures, data.inFeatures]),
}));
const feeds: Record<string, Tensor>[] = slices.map((s) => ({
  input: { datatype: 'FP32', shape: [s.length / data.inFeatures, data.inFeatures], data: s },
}));

const session = await ort.InferenceSession.create(bytes, ortSessionOptions({ threads: 1 }));
const engine = new OrtThreadEngine({ threads: 1 });
const threadSession = await engine.createSession(bytes);

async function raw(): Promise<number> {
  const t0 = performance.now();
  for (const f of rawFeeds) await session.run(f);
  return performance.now() - t0;
}

async function thread(): Promise<number> {
  const t0 = performance.now();
  const pending: Promise<unknown>[] = [];
  for (const f of feeds) {
    pending.push(engine.run(threadSession, f, threadSession.outputNames));
    if (pending.length >= IN_FLIGHT) await pending.shift();
  }
  await Promise.all(pending);
  return performance.now() - t0;
}

const memory = new Uint8Array(64 << 20).fill(1);
let sink = 0;

/** `thread()` while this thread keeps busy (`spin` or `stream`), yielding between slices so that answers arrive. */
async function threadWhile(work: 'spin' | 'stream' | 'allocate'): Promise<number> {
  let done = false;
  const timed = thread().then((ms) => {
    done = true;
    return ms;
  });
  while (!done) {
    if (work === 'spin') {
      let x = 1;
      for (let i = 0; i < 2_000_000; i++) x = (x * 1_103_515_245 + 12_345) | 0;
      sink ^= x;
    } else if (work === 'stream') {
      for (let i = 0; i < memory.length; i += 64) sink += memory[i]!;
    } else {
      let kept: { a: number; b: string; c: Float32Array } | undefined;
      for (let i = 0; i < 20_000; i++) kept = { a: i, b: `row ${i}`, c: new Float32Array(16) };
      sink ^= kept?.a ?? 0;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return timed;
}

const variants = {
  raw,
  thread,
  threadWhileSpinning: () => threadWhile('spin'),
  threadWhileStreaming: () => threadWhile('stream'),
  threadWhileAllocating: () => threadWhile('allocate'),
};
type Variant = keyof typeof variants;
const names = Object.keys(variants) as Variant[];
for (const name of names) await variants[name]();
const runs = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<Variant, number[]>;
for (let r = 0; r < rounds; r++) {
  // Each round in another order, so that none always follows the same one.
  for (let k = 0; k < names.length; k++) {
    const name = names[(k + r) % names.length]!;
    runs[name].push(((await variants[name]()) * 1000) / ROWS);
  }
}
await engine.close();
await session.release();

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const round = (x: number) => Math.round(x * 1000) / 1000;
const usPerRow = Object.fromEntries(names.map((name) => [name, round(median(runs[name]))])) as Record<
  Variant,
  number
>;
console.log(
  JSON.stringify({
    usPerRow,
    slowdownSpinning: round(usPerRow.threadWhileSpinning / usPerRow.thread),
    slowdownStreaming: round(usPerRow.threadWhileStreaming / usPerRow.thread),
    slowdownAllocating: round(usPerRow.threadWhileAllocating / usPerRow.thread),
    sink: sink & 1,
  }),
);
process.exit(0);

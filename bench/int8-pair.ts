/**
 * The int8 MLP against its FP32 parent, raw `session.run` of each (bench/run.ts's `int8OverFp32`, bench/quantize.ts):
 * the two sessions alternate, in a seeded random order each round, untimed rounds first. Each run follows a run
 * of either model as often, so neither finds the CPU caches warmer with its own weights than the other does. In
 * a rotation with the handler's variants, which all run the FP32 weights, the FP32 run would follow its own
 * weights most of the time and the int8 run never (measured: the int8 run took 96–150 µs there against 53 µs
 * alternating with FP32 alone, the FP32 run 128–139 against 109 µs; docs/performance.md, "int8").
 */
import type ort from 'onnxruntime-node';
import { seededRandom } from '../functions/local/onnx-builder';

export interface PairSamples {
  /** Milliseconds per run, in the order measured. */
  readonly fp32: number[];
  readonly int8: number[];
}

export async function measureInt8Pair(
  sessions: { readonly fp32: ort.InferenceSession; readonly int8: ort.InferenceSession },
  feeds: Record<string, ort.Tensor>,
  opts: { readonly seed: number; readonly warmup: number; readonly iterations: number },
): Promise<PairSamples> {
  const samples: PairSamples = { fp32: [], int8: [] };
  const order: ('fp32' | 'int8')[] = ['fp32', 'int8'];
  const shuffle = seededRandom(opts.seed);
  for (let i = 0; i < opts.warmup + opts.iterations; i++) {
    if (shuffle() < 0.5) order.reverse();
    for (const v of order) {
      const t = performance.now();
      await sessions[v].run(feeds);
      const ms = performance.now() - t;
      if (i >= opts.warmup) samples[v].push(ms);
    }
  }
  return samples;
}

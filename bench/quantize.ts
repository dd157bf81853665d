/**
 * `npx tsx bench/quantize.ts [--json]` — int8 against FP32 on the bench MLP (512-1024-512-10, the model of
 * bench/run.ts): raw `session.run` p50 of the int8 version (`quantizeInt8`, the architecture's default range,
 * per-tensor) over that of the FP32 one, at batch 1 and 32, in the same run, with the predict path's session
 * options (`OrtEngine`, one intra-op thread as bench/run.ts); and the int8 model's size over the FP32 one's.
 * Method of bench/run.ts's int8 figures (`measureInt8Pair`, bench/int8-pair.ts): the two alternate in a seeded order,
 * untimed rounds first. `--threads N` sets the intra-op threads; `--per-channel`
 * quantises per output column. Also reports whether onnxruntime fused the quantised graph (its optimised graph
 * at the session's level, `DynamicQuantizeMatMul` from com.microsoft).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { OrtEngine } from '../functions/adapters/ort-engine';
import { buildMlp, seededRandom } from '../functions/local/onnx-builder';
import { decodeModel } from '../functions/transforms/onnx-model';
import { defaultReduceRange, quantizeInt8 } from '../functions/transforms/quantize';
import { measureInt8Pair } from './int8-pair';

const asJson = process.argv.includes('--json');
const perChannel = process.argv.includes('--per-channel');
const threadsArg = process.argv.indexOf('--threads');
const threads = threadsArg > 0 ? Number(process.argv[threadsArg + 1]) : 1;
const progress = (msg: string) => process.stderr.write(`${msg}\n`);

const IN_FEATURES = 512;
const round = (ms: number) => Math.round(ms * 10000) / 10000;
const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;

function p50(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  return round(s[Math.floor(0.5 * (s.length - 1))]!);
}

/** The operators of the graph onnxruntime runs for a model at the given session options. */
async function optimizedOps(
  model: Uint8Array,
  options: ort.InferenceSession.SessionOptions,
): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'maas-quantize-'));
  try {
    const file = join(dir, 'optimized.onnx');
    const s = await ort.InferenceSession.create(model, {
      ...options,
      optimizedModelFilePath: file,
      logSeverityLevel: 3,
    });
    await s.release();
    return (decodeModel(readFileSync(file)).graph?.node ?? []).map((n) =>
      n.domain ? `${n.domain}.${n.opType}` : (n.opType ?? ''),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const fp32 = buildMlp({ inFeatures: IN_FEATURES, layers: [1024, 512, 10], seed: 2 });
  const reduceRange = defaultReduceRange();
  const int8 = quantizeInt8(fp32, { reduceRange, perChannel });
  const options = new OrtEngine({ threads }).sessionOptions;
  const sessions = {
    fp32: await ort.InferenceSession.create(fp32, options),
    int8: await ort.InferenceSession.create(int8.model, options),
  };
  const result: Record<string, number> = {};
  for (const batch of [1, 32]) {
    progress(`bench/quantize: batch ${batch}`);
    const rand = seededRandom(batch * 1000 + IN_FEATURES);
    const data = Float32Array.from({ length: batch * IN_FEATURES }, () => rand() * 2 - 1);
    const feeds = { input: new ort.Tensor('float32', data, [batch, IN_FEATURES]) };
    const samples = await measureInt8Pair(sessions, feeds, {
      seed: batch * 7919 + IN_FEATURES,
      warmup: 1000,
      iterations: batch === 1 ? 2000 : 600,
    });
    const suffix = batch === 1 ? '' : `Batch${batch}`;
    result[`fp32P50Ms${suffix}`] = p50(samples.fp32);
    result[`int8P50Ms${suffix}`] = p50(samples.int8);
    result[`int8OverFp32${suffix}`] = ratio(p50(samples.int8), p50(samples.fp32));
  }
  await sessions.fp32.release();
  await sessions.int8.release();
  const ops = await optimizedOps(int8.model, options);
  const summary = {
    model: 'mlp 512-1024-512-10 (1.06M parameters), raw session.run p50',
    int8OverFp32: result.int8OverFp32,
    int8OverFp32Batch32: result.int8OverFp32Batch32,
    int8SizeRatio: ratio(int8.model.length, fp32.length),
    fp32Bytes: fp32.length,
    int8Bytes: int8.model.length,
    timingsMs: result,
    reduceRange,
    perChannel,
    intraOpThreads: threads,
    graphOptimizationLevel: options.graphOptimizationLevel,
    fusedOps: ops,
  };
  if (asJson) {
    console.log(JSON.stringify(summary));
    return;
  }
  console.log(
    `int8 (${reduceRange ? '7-bit' : '8-bit'} weights, ${perChannel ? 'per column' : 'per tensor'})`,
  );
  console.log(
    `batch 1:  fp32 ${result.fp32P50Ms} ms  int8 ${result.int8P50Ms} ms  ratio ${summary.int8OverFp32}`,
  );
  console.log(
    `batch 32: fp32 ${result.fp32P50MsBatch32} ms  int8 ${result.int8P50MsBatch32} ms  ratio ${summary.int8OverFp32Batch32}`,
  );
  console.log(`size: ${fp32.length} -> ${int8.model.length} bytes (${summary.int8SizeRatio})`);
  console.log(`onnxruntime runs: ${ops.join(' ')}`);
}

await main();

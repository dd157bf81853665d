/**
 * `quantizeInt8`: the rewritten graph (operators, names, opset, int8 weights and their scales, Gemm's transB,
 * alpha, beta and C, what is left alone) and its results under onnxruntime against the FP32 model, within the
 * error bound its scales allow.
 */
import type onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../functions/domain/errors';
import {
  buildModel,
  ElemType,
  type InitializerSpec,
  type NodeSpec,
  seededRandom,
  type ValueSpec,
} from '../../functions/local/onnx-builder';
import {
  DataType,
  decodeModel,
  defaultOpset,
  dimsOf,
  encodeModel,
  intAttribute,
  type ModelProto,
  readFloat32,
  type TensorProto,
} from '../../functions/transforms/onnx-model';
import { defaultReduceRange, quantizeInt8, quantizeWeights } from '../../functions/transforms/quantize';

const F = ElemType.FLOAT;

function randomMatrix(seed: number, length: number, scale = 1): Float32Array {
  const rand = seededRandom(seed);
  return Float32Array.from({ length }, () => (rand() * 2 - 1) * scale);
}

function model(opts: {
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  nodes: NodeSpec[];
  initializers?: InitializerSpec[];
  opset?: number;
}): Uint8Array {
  return buildModel({ name: 'q', ...opts });
}

/** y = Relu(x · W), x [batch, 8], W [8, 4]; a second output z = Sigmoid(x) the rewrite must leave alone. */
function matmulModel(w = randomMatrix(1, 32), opset?: number): Uint8Array {
  return model({
    inputs: [{ name: 'x', elemType: F, shape: ['batch', 8] }],
    outputs: [
      { name: 'y', elemType: F, shape: ['batch', 4] },
      { name: 'z', elemType: F, shape: ['batch', 8] },
    ],
    nodes: [
      { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['mm'], name: 'mm' },
      { opType: 'Relu', inputs: ['mm'], outputs: ['y'], name: 'relu' },
      { opType: 'Sigmoid', inputs: ['x'], outputs: ['z'], name: 'sigmoid' },
    ],
    initializers: [{ name: 'W', elemType: F, dims: [8, 4], floats: w }],
    opset,
  });
}

/** The nodes and initializers of a decoded model (protobuf class instances: their repeated fields are set). */
const nodesOf = (m: ModelProto) => m.graph!.node as onnxProto.onnx.NodeProto[];
const initializersOf = (m: ModelProto) => m.graph!.initializer as onnxProto.onnx.TensorProto[];
const ops = (m: ModelProto) => nodesOf(m).map((n) => n.opType);
const init = (m: ModelProto, name: string): TensorProto | undefined =>
  initializersOf(m).find((t) => t.name === name);
const int8Of = (t: TensorProto) =>
  new Int8Array(t.rawData!.buffer, t.rawData!.byteOffset, t.rawData!.byteLength);
const nodeOf = (m: ModelProto, opType: string) => nodesOf(m).filter((n) => n.opType === opType);
const absMax = (v: ArrayLike<number>) => Array.from(v).reduce((a, b) => Math.max(a, Math.abs(b)), 0);

async function run(bytes: Uint8Array, feeds: Record<string, { data: Float32Array; dims: number[] }>) {
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  try {
    const out = await session.run(
      Object.fromEntries(
        Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.dims)]),
      ),
    );
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}

/**
 * The worst-case error of y = a · W (a [M, K], W [K, N]) quantised as the model does: weights to within half
 * their scale s_w[j]; activations (DynamicQuantizeLinear over the whole tensor, scale s_a = range / 255, zero
 * point rounded) to within one s_a; so |Δy_ij| <= Σ_k |a_ik| s_w[j] / 2 + |w_kj| s_a + s_a s_w[j] / 2.
 */
function errorBound(a: Float32Array, m: number, k: number, w: Float32Array, n: number, sw: Float32Array) {
  const lo = Math.min(0, ...a);
  const hi = Math.max(0, ...a);
  const sa = (hi - lo) / 255;
  const bound = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const s = sw.length === 1 ? sw[0]! : sw[j]!;
      let e = 0;
      for (let x = 0; x < k; x++)
        e += (Math.abs(a[i * k + x]!) * s) / 2 + Math.abs(w[x * n + j]!) * sa + (sa * s) / 2;
      bound[i * n + j] = e;
    }
  }
  return bound;
}

function matmul(a: Float32Array, m: number, k: number, w: Float32Array, n: number): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let x = 0; x < k; x++) for (let j = 0; j < n; j++) y[i * n + j]! += a[i * k + x]! * w[x * n + j]!;
  return y;
}

describe('quantizeInt8: MatMul', () => {
  it('rewrites a MatMul with constant weights as DynamicQuantizeLinear, MatMulInteger, Cast and two Mul, keeping its output name', () => {
    const { model: bytes, quantized } = quantizeInt8(matmulModel(), { reduceRange: true });
    const m = decodeModel(bytes);
    expect(quantized).toEqual(['MatMul mm (W [8×4])']);
    expect(ops(m)).toEqual([
      'DynamicQuantizeLinear',
      'MatMulInteger',
      'Cast',
      'Mul',
      'Mul',
      'Relu',
      'Sigmoid',
    ]);
    const [dql] = nodeOf(m, 'DynamicQuantizeLinear');
    const [mmi] = nodeOf(m, 'MatMulInteger');
    const [cast] = nodeOf(m, 'Cast');
    const [scales, out] = nodeOf(m, 'Mul');
    expect(dql!.input).toEqual(['x']);
    expect(mmi!.input).toEqual([dql!.output[0], 'W_quantized', dql!.output[2], 'W_zero_point']);
    expect(cast!.input).toEqual(mmi!.output);
    expect(intAttribute(cast!, 'to', 0)).toBe(DataType.FLOAT);
    expect(scales!.input).toEqual([dql!.output[1], 'W_quantized_scale']);
    expect(out!.input).toEqual([cast!.output[0], scales!.output[0]]);
    expect(out!.output).toEqual(['mm']);
    // Every node but the rewritten one is the same, same names in and out.
    expect(nodeOf(m, 'Relu')[0]).toMatchObject({ name: 'relu', input: ['mm'], output: ['y'] });
    expect(nodeOf(m, 'Sigmoid')[0]).toMatchObject({ name: 'sigmoid', input: ['x'], output: ['z'] });
    expect(nodesOf(m).every((n) => !n.domain)).toBe(true);
    expect(defaultOpset(m)).toBe(17);
  });

  it('replaces the FP32 weights by int8 ones, symmetric (zero point 0), scale max|w| / 64 in reduced range', () => {
    const w = randomMatrix(3, 32, 0.7);
    const m = decodeModel(quantizeInt8(matmulModel(w), { reduceRange: true }).model);
    expect(init(m, 'W')).toBeUndefined();
    const q = init(m, 'W_quantized')!;
    expect(q.dataType).toBe(DataType.INT8);
    expect(dimsOf(q)).toEqual([8, 4]);
    expect(q.rawData!.byteLength).toBe(32);
    const zp = init(m, 'W_zero_point')!;
    expect([zp.dataType, dimsOf(zp), Array.from(int8Of(zp))]).toEqual([DataType.INT8, [], [0]]);
    const scale = readFloat32(init(m, 'W_quantized_scale')!)!;
    expect(scale.length).toBe(1);
    expect(scale[0]).toBeCloseTo(absMax(w) / 64, 7);
    const values = int8Of(q);
    expect(Math.max(...Array.from(values, Math.abs))).toBe(64);
    for (let i = 0; i < 32; i++)
      expect(Math.abs(values[i]! * scale[0]! - w[i]!)).toBeLessThanOrEqual(scale[0]! / 2 + 1e-7);
  });

  it('uses the full symmetric range [-127, 127] without reduced range', () => {
    const w = randomMatrix(4, 32);
    const m = decodeModel(quantizeInt8(matmulModel(w), { reduceRange: false }).model);
    expect(readFloat32(init(m, 'W_quantized_scale')!)![0]).toBeCloseTo(absMax(w) / 127, 7);
    expect(Math.max(...Array.from(int8Of(init(m, 'W_quantized')!), Math.abs))).toBe(127);
  });

  it('per channel: one scale and one zero point per output column', () => {
    const w = randomMatrix(5, 32);
    for (let k = 0; k < 8; k++) w[k * 4 + 2]! *= 0.01; // a column of small weights keeps its own precision
    const m = decodeModel(quantizeInt8(matmulModel(w), { reduceRange: false, perChannel: true }).model);
    const scale = readFloat32(init(m, 'W_quantized_scale')!)!;
    expect(dimsOf(init(m, 'W_quantized_scale')!)).toEqual([4]);
    expect(dimsOf(init(m, 'W_zero_point')!)).toEqual([4]);
    expect(Array.from(int8Of(init(m, 'W_zero_point')!))).toEqual([0, 0, 0, 0]);
    for (let j = 0; j < 4; j++) {
      const column = Array.from({ length: 8 }, (_, k) => w[k * 4 + j]!);
      expect(scale[j]).toBeCloseTo(absMax(column) / 127, 9);
    }
    const q = int8Of(init(m, 'W_quantized')!);
    expect(Math.max(...Array.from({ length: 8 }, (_, k) => Math.abs(q[k * 4 + 2]!)))).toBe(127);
  });

  it('raises a lower default opset to 11 when every operator keeps its meaning there', () => {
    const m = decodeModel(quantizeInt8(matmulModel(undefined, 9), { reduceRange: true }).model);
    expect(defaultOpset(m)).toBe(11);
  });

  it('refuses a model below opset 11 whose operators may change meaning when the opset is raised', () => {
    const bytes = model({
      inputs: [{ name: 'x', elemType: F, shape: [1, 8] }],
      outputs: [{ name: 'y', elemType: F, shape: [1, 4] }],
      nodes: [
        { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['mm'] },
        { opType: 'Clip', inputs: ['mm'], outputs: ['y'], attributes: { min: 0.5, max: 1.5 } },
      ],
      initializers: [{ name: 'W', elemType: F, dims: [8, 4], floats: randomMatrix(1, 32) }],
      opset: 9,
    });
    expect(() => quantizeInt8(bytes)).toThrow(BadRequestError);
    expect(() => quantizeInt8(bytes)).toThrow(/opset is 9.*Clip/);
  });

  it('reads weights stored as float_data as well as raw_data', () => {
    const w = randomMatrix(6, 32);
    const m = decodeModel(matmulModel(w));
    const t = init(m, 'W')!;
    t.floatData = Array.from(w);
    t.rawData = new Uint8Array(0);
    const fromFloats = quantizeInt8(encodeModel(m), { reduceRange: true }).model;
    const fromRaw = quantizeInt8(matmulModel(w), { reduceRange: true }).model;
    expect(int8Of(init(decodeModel(fromFloats), 'W_quantized')!)).toEqual(
      int8Of(init(decodeModel(fromRaw), 'W_quantized')!),
    );
  });

  it('leaves alone a MatMul whose B is not a constant 2-D FP32 initializer', () => {
    const bytes = model({
      inputs: [
        { name: 'x', elemType: F, shape: [2, 8] },
        { name: 'b', elemType: F, shape: [8, 4] },
        { name: 'V', elemType: F, shape: [8, 4] },
      ],
      outputs: [
        { name: 'y', elemType: F, shape: [2, 4] },
        { name: 'u', elemType: F, shape: [2, 4] },
        { name: 'v', elemType: F, shape: [2, 4] },
      ],
      nodes: [
        { opType: 'MatMul', inputs: ['x', 'b'], outputs: ['y'] }, // B is an input
        { opType: 'MatMul', inputs: ['x', 'V'], outputs: ['u'] }, // an initializer a caller may override
        { opType: 'MatMul', inputs: ['x', 'W3'], outputs: ['v'] }, // 1-D weights
      ],
      initializers: [
        { name: 'V', elemType: F, dims: [8, 4], floats: randomMatrix(1, 32) },
        { name: 'W3', elemType: F, dims: [8], floats: randomMatrix(2, 8) },
      ],
    });
    const r = quantizeInt8(bytes);
    expect(r.quantized).toEqual([]);
    expect(ops(decodeModel(r.model))).toEqual(['MatMul', 'MatMul', 'MatMul']);
  });

  it('quantises a weight read by two MatMuls once, and an activation read by two once', () => {
    const bytes = model({
      inputs: [{ name: 'x', elemType: F, shape: [2, 8] }],
      outputs: [
        { name: 'y', elemType: F, shape: [2, 4] },
        { name: 'u', elemType: F, shape: [2, 4] },
      ],
      nodes: [
        { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'], name: 'a' },
        { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['u'], name: 'b' },
      ],
      initializers: [{ name: 'W', elemType: F, dims: [8, 4], floats: randomMatrix(1, 32) }],
    });
    const r = quantizeInt8(bytes, { reduceRange: true });
    const m = decodeModel(r.model);
    expect(r.quantized).toHaveLength(2);
    expect(nodeOf(m, 'DynamicQuantizeLinear')).toHaveLength(1);
    expect(
      initializersOf(m)
        .map((t) => t.name)
        .sort(),
    ).toEqual(['W_quantized', 'W_quantized_scale', 'W_zero_point']);
  });
});

/** Y = alpha · x · op(B) + beta · C, x [batch, 6], B [6, 5] or [5, 6] (transB), C [5] or an input. */
function gemmModel(opts: {
  transB?: number;
  transA?: number;
  alpha?: number;
  beta?: number;
  cInput?: boolean;
}) {
  const b = randomMatrix(11, 30);
  const c = randomMatrix(12, 5);
  const attributes: Record<string, number> = {};
  if (opts.transA !== undefined) attributes.transA = opts.transA;
  if (opts.transB !== undefined) attributes.transB = opts.transB;
  if (opts.alpha !== undefined) attributes.alpha = opts.alpha;
  if (opts.beta !== undefined) attributes.beta = opts.beta;
  const bytes = model({
    inputs: [
      { name: 'x', elemType: F, shape: opts.transA ? [6, 'batch'] : ['batch', 6] },
      ...(opts.cInput ? [{ name: 'C', elemType: F, shape: [5] }] : []),
    ],
    outputs: [{ name: 'y', elemType: F, shape: ['batch', 5] }],
    nodes: [{ opType: 'Gemm', inputs: ['x', 'B', 'C'], outputs: ['y'], name: 'gemm', attributes }],
    initializers: [
      { name: 'B', elemType: F, dims: opts.transB ? [5, 6] : [6, 5], floats: b },
      ...(opts.cInput ? [] : [{ name: 'C', elemType: F, dims: [5], floats: c }]),
    ],
  });
  return { bytes, b, c };
}

describe('quantizeInt8: Gemm', () => {
  it('rewrites a Gemm as the quantised MatMul followed by Add of C, removing the FP32 weights', () => {
    const { bytes } = gemmModel({});
    const r = quantizeInt8(bytes, { reduceRange: true });
    const m = decodeModel(r.model);
    expect(r.quantized).toEqual(['Gemm gemm (B [6×5])']);
    expect(ops(m)).toEqual(['DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Mul', 'Add']);
    const [add] = nodeOf(m, 'Add');
    expect(add!.input).toEqual([nodeOf(m, 'Mul')[1]!.output[0], 'C']);
    expect(add!.output).toEqual(['y']);
    expect(init(m, 'B')).toBeUndefined();
    expect(init(m, 'C')).toBeDefined();
  });

  it('transB: quantises the transposed weights; alpha: folded into the weight scale; beta: scales a constant C', () => {
    const { bytes, b, c } = gemmModel({ transB: 1, alpha: 0.5, beta: 2.5 });
    const m = decodeModel(quantizeInt8(bytes, { reduceRange: false }).model);
    const q = init(m, 'B_quantized')!;
    expect(dimsOf(q)).toEqual([6, 5]);
    const scaleName = nodeOf(m, 'Mul')[0]!.input[1]!;
    const scale = readFloat32(init(m, scaleName)!)![0]!;
    expect(scale).toBeCloseTo((0.5 * absMax(b)) / 127, 7);
    const values = int8Of(q);
    // B is [5, 6] (transB): q[k][n] stands for B[n][k].
    for (let k = 0; k < 6; k++) {
      for (let n = 0; n < 5; n++) {
        expect(Math.abs((values[k * 5 + n]! * scale) / 0.5 - b[n * 6 + k]!)).toBeLessThanOrEqual(
          scale / 0.5 / 2 + 1e-7,
        );
      }
    }
    const bias = nodeOf(m, 'Add')[0]!.input[1]!;
    expect(Array.from(readFloat32(init(m, bias)!)!)).toEqual(Array.from(c, (v) => Math.fround(v * 2.5)));
    expect(init(m, 'C')).toBeUndefined(); // only beta·C is read now
    expect(init(m, 'B')).toBeUndefined();
  });

  it('beta on a C that is not constant: a Mul by beta before the Add', () => {
    const { bytes } = gemmModel({ beta: 3.5, cInput: true });
    const m = decodeModel(quantizeInt8(bytes, { reduceRange: true }).model);
    expect(ops(m)).toEqual(['DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Mul', 'Mul', 'Add']);
    const betaMul = nodeOf(m, 'Mul')[2]!;
    expect(betaMul.input[0]).toBe('C');
    expect(Array.from(readFloat32(init(m, betaMul.input[1]!)!)!)).toEqual([3.5]);
    expect(nodeOf(m, 'Add')[0]!.input[1]).toBe(betaMul.output[0]);
  });

  it('beta 0: no Add (C is not read)', () => {
    const { bytes } = gemmModel({ beta: 0 });
    const m = decodeModel(quantizeInt8(bytes, { reduceRange: true }).model);
    expect(ops(m)).toEqual(['DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Mul']);
    expect(nodeOf(m, 'Mul')[1]!.output).toEqual(['y']);
    expect(init(m, 'C')).toBeUndefined();
  });

  it('leaves a Gemm with transA = 1 as it is', () => {
    const { bytes } = gemmModel({ transA: 1 });
    const r = quantizeInt8(bytes);
    expect(r.quantized).toEqual([]);
    const m = decodeModel(r.model);
    expect(ops(m)).toEqual(['Gemm']);
    expect(init(m, 'B')!.dataType).toBe(DataType.FLOAT);
  });
});

describe('quantizeInt8 under onnxruntime', () => {
  const M = 16;
  const x = randomMatrix(21, M * 8, 2);

  for (const perChannel of [false, true]) {
    it(`MatMul (${perChannel ? 'per column' : 'per tensor'}): within the error bound of its scales`, async () => {
      const w = randomMatrix(22, 32, 0.5);
      const fp32 = matmulModel(w);
      const q = quantizeInt8(fp32, { reduceRange: true, perChannel });
      const m = decodeModel(q.model);
      const sw = readFloat32(init(m, 'W_quantized_scale')!)!;
      const feeds = { x: { data: x, dims: [M, 8] } };
      const [ref, got] = [await run(fp32, feeds), await run(q.model, feeds)];
      const exact = matmul(x, M, 8, w, 4);
      const bound = errorBound(x, M, 8, w, 4, sw);
      // Relu is 1-Lipschitz: the bound on the MatMul holds after it.
      for (let i = 0; i < M * 4; i++) {
        expect(Math.abs(ref.y![i]! - Math.max(0, exact[i]!))).toBeLessThan(1e-4);
        expect(Math.abs(got.y![i]! - ref.y![i]!)).toBeLessThanOrEqual(bound[i]! * 1.001 + 1e-5);
      }
      // The bound is tight enough to mean something: a few percent of the outputs' range.
      expect(Math.max(...bound)).toBeLessThan(0.06 * absMax(exact));
      expect(got.z).toEqual(ref.z); // the untouched branch is bit for bit the same
    });
  }

  it('Gemm with transB, alpha and beta: within the error bound of its scales', async () => {
    const alpha = 0.75;
    const beta = 1.5;
    const { bytes, b, c } = gemmModel({ transB: 1, alpha, beta });
    const q = quantizeInt8(bytes, { reduceRange: true });
    const m = decodeModel(q.model);
    const scaleName = nodeOf(m, 'Mul')[0]!.input[1]!;
    const sw = Float32Array.of(readFloat32(init(m, scaleName)!)![0]! / alpha);
    const xs = randomMatrix(23, M * 6, 3);
    const feeds = { x: { data: xs, dims: [M, 6] } };
    const [ref, got] = [await run(bytes, feeds), await run(q.model, feeds)];
    const w = new Float32Array(30);
    for (let k = 0; k < 6; k++) for (let n = 0; n < 5; n++) w[k * 5 + n] = b[n * 6 + k]!;
    const product = matmul(xs, M, 6, w, 5);
    const bound = errorBound(xs, M, 6, w, 5, sw);
    for (let i = 0; i < M * 5; i++) {
      expect(Math.abs(ref.y![i]! - (alpha * product[i]! + beta * c[i % 5]!))).toBeLessThan(1e-4);
      expect(Math.abs(got.y![i]! - ref.y![i]!)).toBeLessThanOrEqual(alpha * bound[i]! * 1.001 + 1e-5);
    }
    expect(Math.max(...bound)).toBeLessThan(0.06 * absMax(product));
  });
});

describe('quantizeWeights and defaultReduceRange', () => {
  it('an all-zero matrix gets scale 1 and zero weights', () => {
    const { q, scales } = quantizeWeights(new Float32Array(6), 2, 3, {
      reduceRange: false,
      perChannel: false,
    });
    expect(Array.from(scales)).toEqual([1]);
    expect(Array.from(q)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('rounds half to even and keeps the extremes at ±qmax', () => {
    // max|w| = 127 -> scale 1: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -2.5 -> -2, -127 -> -127
    const w = Float32Array.of(0.5, 1.5, 2.5, -2.5, -127, 127);
    const { q } = quantizeWeights(w, 1, 6, { reduceRange: false, perChannel: false });
    expect(Array.from(q)).toEqual([0, 2, 2, -2, -127, 127]);
  });

  it('reduced range on x86_64, the full range elsewhere', () => {
    expect(defaultReduceRange('x64')).toBe(true);
    expect(defaultReduceRange('x86_64')).toBe(true);
    expect(defaultReduceRange('arm64')).toBe(false);
    expect(defaultReduceRange()).toBe(process.arch === 'x64' || process.arch === 'ia32');
  });
});

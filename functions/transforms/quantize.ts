/**
 * `quantize: int8` — dynamic int8 quantisation as onnxruntime's `quantize_dynamic` does it (its "IntegerOps"
 * form), as a pure rewrite of the ONNX graph:
 *
 *   MatMul(A, W)  ->  DynamicQuantizeLinear(A) -> (A_q uint8, A_scale, A_zp)
 *                     MatMulInteger(A_q, W_q, A_zp, W_zp) -> INT32 -> Cast(FLOAT)
 *                     Mul(., Mul(A_scale, W_scale))            (the MatMul's output name, so consumers are unchanged)
 *
 * for every MatMul whose B is a constant 2-D FP32 initializer, and for every Gemm with such a B and transA = 0,
 * rewritten as that MatMul (transB: the weights are transposed; alpha: folded into W_scale) followed by
 * `Add(., beta × C)`. Weights are int8, symmetric (zero point 0): scale = max|w| / 127, or max|w| / 64 with
 * reduced range (values in [-64, 64], onnxruntime's reduced range for int8), per tensor or per output column.
 * Activations are quantised at run time by DynamicQuantizeLinear (uint8, asymmetric). Everything else is left
 * as it is; only standard ONNX operators are added; the default opset is raised to 11 (DynamicQuantizeLinear)
 * when lower; the FP32 weights the rewrite no longer reads are removed.
 *
 * Reduced range: onnxruntime's u8×s8 kernels on x86 CPUs without VNNI add pairs of u8×s8 products into 16-bit
 * lanes (`pmaddubsw`), which saturate when both products are large (2 × 255 × 127 > 32767); 7-bit weights keep
 * every pair within range (2 × 255 × 64 = 32640). `defaultReduceRange()` tells which to use for an architecture.
 */
import { BadRequestError } from '../domain/errors';
import {
  DataType,
  decodeModel,
  defaultOpset,
  dimsOf,
  encodeModel,
  floatAttribute,
  intAttribute,
  makeNode,
  makeTensor,
  type NodeProto,
  namesReadBy,
  raiseDefaultOpset,
  readFloat32,
  type TensorProto,
  uniqueNamer,
} from './onnx-model';

/** Options of `quantizeInt8`. */
export interface QuantizeInt8Options {
  /**
   * 7-bit weights ([-64, 64]) instead of 8-bit ([-127, 127]): no saturation in u8×s8 kernels without VNNI.
   * @default defaultReduceRange() (true on x86_64, false elsewhere)
   */
  readonly reduceRange?: boolean;
  /** One scale per output column of each weight matrix instead of one per matrix. @default false */
  readonly perChannel?: boolean;
}

/** The quantised model and what was rewritten. */
export interface QuantizeInt8Result {
  /** The quantised model's bytes. */
  readonly model: Uint8Array;
  /** One line per rewritten node: `<op> <node name> (<weight> [K×N])`. Empty when nothing could be quantised. */
  readonly quantized: string[];
}

/** The opset that defines DynamicQuantizeLinear (MatMulInteger is 10). */
export const QUANTIZE_MIN_OPSET = 11;

/**
 * Operators whose meaning does not change between opsets 7 and 11 for models valid at their own opset: a model
 * below opset 11 made only of these can have its opset raised for the quantised operators. Others (Clip, Pad,
 * Resize, BatchNormalization, ...) changed their inputs or attributes; such models must be converted first.
 */
const OPSET_RAISE_SAFE = new Set([
  'Abs',
  'Add',
  'ArgMax',
  'ArgMin',
  'Cast',
  'Concat',
  'Constant',
  'Div',
  'Elu',
  'Exp',
  'Flatten',
  'Gather',
  'Gemm',
  'Identity',
  'LeakyRelu',
  'Log',
  'LogSoftmax',
  'MatMul',
  'Max',
  'Min',
  'Mul',
  'Neg',
  'Relu',
  'Reshape',
  'Selu',
  'Shape',
  'Sigmoid',
  'Softmax',
  'Sqrt',
  'Sub',
  'Sum',
  'Tanh',
  'Transpose',
]);

/**
 * Whether int8 weights should use the reduced (7-bit) range on an architecture (a Node.js `process.arch` or a
 * Lambda architecture name): true on x86_64, false elsewhere (ARM's int8 dot products do not saturate).
 */
export function defaultReduceRange(arch: string = process.arch): boolean {
  return arch === 'x64' || arch === 'x86_64' || arch === 'ia32';
}

/** Rounds half to even, as numpy's `rint` (the rounding onnxruntime's quantiser uses). */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

interface QuantizedWeight {
  /** int8 weights initializer, [K, N]. */
  readonly q: string;
  /** int8 zero point(s): scalar or [N]. */
  readonly zp: string;
  /** FP32 scale(s) of the weights before any alpha: scalar or [N]. */
  readonly scales: Float32Array;
  readonly k: number;
  readonly n: number;
}

/**
 * Symmetric int8 quantisation of a [K, N] matrix (row-major), per tensor or per column: scale = max|w| / qmax,
 * q = clamp(rint(w / scale), -qmax, qmax); an all-zero matrix or column gets scale 1 (as onnxruntime's).
 */
export function quantizeWeights(
  w: Float32Array,
  k: number,
  n: number,
  opts: { reduceRange: boolean; perChannel: boolean },
): { q: Int8Array; scales: Float32Array } {
  const qmax = opts.reduceRange ? 64 : 127;
  const groups = opts.perChannel ? n : 1;
  const absmax = new Float64Array(groups);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < n; j++) {
      const g = opts.perChannel ? j : 0;
      const a = Math.abs(w[i * n + j]!);
      if (a > absmax[g]!) absmax[g] = a;
    }
  }
  const scales = Float32Array.from(absmax, (m) => (m > 0 ? m / qmax : 1));
  const q = new Int8Array(k * n);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < n; j++) {
      const s = scales[opts.perChannel ? j : 0]!;
      q[i * n + j] = Math.max(-qmax, Math.min(qmax, rint(w[i * n + j]! / s)));
    }
  }
  return { q, scales };
}

/** Row-major [rows, cols] -> [cols, rows]. */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = w[i * cols + j]!;
  return t;
}

/**
 * Dynamic int8 quantisation of the MatMul and Gemm nodes of a model that have constant FP32 weights (see the
 * module comment). Throws a BadRequestError (`NOT_QUANTIZABLE`) when the model's opset is below 11 and it holds
 * operators whose meaning may change when the opset is raised. A model with nothing to quantise comes back
 * re-encoded, with `quantized` empty.
 */
export function quantizeInt8(bytes: Uint8Array, opts: QuantizeInt8Options = {}): QuantizeInt8Result {
  const reduceRange = opts.reduceRange ?? defaultReduceRange();
  const perChannel = opts.perChannel ?? false;
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (!graph) throw new BadRequestError('the model has no graph', 'NOT_QUANTIZABLE');
  const fresh = uniqueNamer(model);

  const graphInputs = new Set((graph.input ?? []).map((v) => v.name));
  const initializers = new Map<string, TensorProto>();
  for (const t of graph.initializer ?? []) if (t.name) initializers.set(t.name, t);
  /** A constant 2-D FP32 initializer (not overridable as a graph input) and its values, or undefined. */
  const constantMatrix = (name: string | undefined) => {
    if (!name || graphInputs.has(name)) return undefined;
    const t = initializers.get(name);
    if (!t || dimsOf(t).length !== 2) return undefined;
    const values = readFloat32(t);
    return values ? { values, dims: dimsOf(t) as [number, number] } : undefined;
  };
  const eligible = (node: NodeProto) => {
    if (node.domain && node.domain !== 'ai.onnx') return false;
    if (node.opType === 'MatMul') return constantMatrix(node.input?.[1]) !== undefined;
    if (node.opType === 'Gemm') {
      return intAttribute(node, 'transA', 0) === 0 && constantMatrix(node.input?.[1]) !== undefined;
    }
    return false;
  };
  const nodes = graph.node ?? [];
  if (!nodes.some(eligible)) return { model: encodeModel(model), quantized: [] };

  const opset = defaultOpset(model) ?? QUANTIZE_MIN_OPSET;
  if (opset < QUANTIZE_MIN_OPSET) {
    const unsafe = [...new Set(nodes.map((n) => n.opType ?? ''))].filter((op) => !OPSET_RAISE_SAFE.has(op));
    if (opset < 7 || unsafe.length > 0) {
      throw new BadRequestError(
        `the model's opset is ${opset}; int8 quantisation needs opset ${QUANTIZE_MIN_OPSET}, and ${
          opset < 7 ? 'opsets below 7' : `${unsafe.join(', ')}`
        } may change meaning when it is raised: convert the model to opset ${QUANTIZE_MIN_OPSET} or later first`,
        'NOT_QUANTIZABLE',
      );
    }
  }

  const readBefore = namesReadBy(graph);
  const added: TensorProto[] = [];
  const weights = new Map<string, QuantizedWeight>();
  /** The int8 form of a weight initializer ([K, N] after the optional transpose), made once per form. */
  const weightFor = (name: string, transposed: boolean): QuantizedWeight => {
    const key = `${name}\u0000${transposed}`;
    const known = weights.get(key);
    if (known) return known;
    const m = constantMatrix(name)!;
    const [rows, cols] = m.dims;
    const [k, n] = transposed ? [cols, rows] : [rows, cols];
    const w = transposed ? transpose(m.values, rows, cols) : m.values;
    const { q, scales } = quantizeWeights(w, k, n, { reduceRange, perChannel });
    const qName = fresh(`${name}_quantized`);
    const zpName = fresh(`${name}_zero_point`);
    added.push(makeTensor(qName, DataType.INT8, [k, n], q));
    added.push(makeTensor(zpName, DataType.INT8, perChannel ? [n] : [], new Int8Array(perChannel ? n : 1)));
    const made = { q: qName, zp: zpName, scales, k, n };
    weights.set(key, made);
    return made;
  };
  /** One scale initializer per (weight, alpha). */
  const scaleNames = new Map<string, string>();
  const scaleFor = (weight: QuantizedWeight, alpha: number): string => {
    const key = `${weight.q}\u0000${alpha}`;
    const known = scaleNames.get(key);
    if (known) return known;
    const name = fresh(alpha === 1 ? `${weight.q}_scale` : `${weight.q}_scale_alpha`);
    const values = Float32Array.from(weight.scales, (s) => s * alpha);
    added.push(makeTensor(name, DataType.FLOAT, perChannel ? [weight.n] : [], values));
    scaleNames.set(key, name);
    return name;
  };
  /** DynamicQuantizeLinear of an activation, once per activation. */
  const activations = new Map<string, { q: string; scale: string; zp: string }>();

  const out: NodeProto[] = [];
  const quantized: string[] = [];
  for (const node of nodes) {
    if (!eligible(node)) {
      out.push(node);
      continue;
    }
    const gemm = node.opType === 'Gemm';
    const label = node.name || fresh(`${node.opType}`);
    const [a, b, c] = [node.input![0]!, node.input![1]!, node.input?.[2]];
    const y = node.output![0]!;
    const transB = gemm && intAttribute(node, 'transB', 0) !== 0;
    const alpha = gemm ? floatAttribute(node, 'alpha', 1) : 1;
    const beta = gemm ? floatAttribute(node, 'beta', 1) : 1;
    const weight = weightFor(b, transB);

    let act = activations.get(a);
    if (!act) {
      act = { q: fresh(`${a}_quantized`), scale: fresh(`${a}_scale`), zp: fresh(`${a}_zero_point`) };
      out.push(
        makeNode('DynamicQuantizeLinear', [a], [act.q, act.scale, act.zp], fresh(`${a}_QuantizeLinear`)),
      );
      activations.set(a, act);
    }
    const integer = fresh(`${y}_MatMulInteger`);
    const asFloat = fresh(`${y}_MatMulInteger_cast`);
    const scales = fresh(`${label}_scales_mul`);
    const hasBias = gemm && !!c && beta !== 0;
    const product = hasBias ? fresh(`${y}_MatMul`) : y;
    out.push(
      makeNode('MatMulInteger', [act.q, weight.q, act.zp, weight.zp], [integer], fresh(`${label}_quant`)),
    );
    out.push(makeNode('Cast', [integer], [asFloat], fresh(`${label}_cast`), { to: { i: DataType.FLOAT } }));
    out.push(makeNode('Mul', [act.scale, scaleFor(weight, alpha)], [scales], fresh(`${label}_scales`)));
    out.push(makeNode('Mul', [asFloat, scales], [product], fresh(`${label}_output_scale_mul`)));
    if (hasBias) {
      let bias = c!;
      if (beta !== 1) {
        const constant = initializers.get(c!);
        const values = constant && !graphInputs.has(c!) ? readFloat32(constant) : undefined;
        if (values) {
          bias = fresh(`${c}_beta`);
          added.push(
            makeTensor(
              bias,
              DataType.FLOAT,
              dimsOf(constant!),
              values.map((v) => v * beta),
            ),
          );
        } else {
          const betaName = fresh(`${label}_beta`);
          added.push(makeTensor(betaName, DataType.FLOAT, [], Float32Array.of(beta)));
          bias = fresh(`${c}_beta`);
          out.push(makeNode('Mul', [c!, betaName], [bias], fresh(`${label}_beta_mul`)));
        }
      }
      out.push(makeNode('Add', [product, bias], [y], fresh(`${label}_bias_add`)));
    }
    quantized.push(`${node.opType} ${label} (${b} [${weight.k}×${weight.n}])`);
  }

  graph.node = out;
  raiseDefaultOpset(model, QUANTIZE_MIN_OPSET);
  // FP32 weights (and unscaled biases) the rewrite made unread go; the int8 ones and their scales come in.
  const read = namesReadBy(graph);
  const dropped = (t: TensorProto) => readBefore.has(t.name!) && !read.has(t.name!);
  graph.initializer = [...(graph.initializer ?? []).filter((t) => !dropped(t)), ...added];
  return { model: encodeModel(model), quantized };
}

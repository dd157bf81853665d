/**
 * A small ONNX graph builder on top of the official protobuf schema (onnx-proto). The project builds
 * its sample model, test fixtures and benchmark models with it instead of shipping opaque binaries.
 */
import onnxProto from 'onnx-proto';
import { seededUniform } from '../domain/derive';

const { onnx } = onnxProto;

export const ElemType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
} as const;
export type ElemTypeCode = (typeof ElemType)[keyof typeof ElemType];

export interface ValueSpec {
  readonly name: string;
  readonly elemType: ElemTypeCode;
  /** Numbers are fixed dims; strings are symbolic (dynamic) dims; null declares no shape at all (any rank). */
  readonly shape: readonly (number | string)[] | null;
}

export type AttributeValue =
  | number
  | string
  | number[]
  | { ints: number[] }
  | { floats: number[] }
  /** A tensor attribute (e.g. Constant's `value`, ConstantOfShape's `value`). */
  | { tensor: InitializerSpec };

export interface NodeSpec {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes?: Record<string, AttributeValue>;
  readonly name?: string;
  readonly domain?: string;
}

export interface InitializerSpec {
  readonly name: string;
  readonly elemType: ElemTypeCode;
  readonly dims: readonly number[];
  /** Raw little-endian bytes of the tensor. */
  readonly raw?: Uint8Array;
  /** Float32 values (converted to raw bytes). */
  readonly floats?: ArrayLike<number>;
  /** Int64 values. */
  readonly int64s?: ArrayLike<number | bigint>;
  /** Marks the tensor as stored in an external file (for negative tests). */
  readonly externalLocation?: string;
}

export interface GraphSpec {
  readonly name?: string;
  readonly inputs: readonly ValueSpec[];
  readonly outputs: readonly ValueSpec[];
  readonly nodes: readonly NodeSpec[];
  readonly initializers?: readonly InitializerSpec[];
  readonly opset?: number;
}

function valueInfo(v: ValueSpec) {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: v.elemType,
        ...(v.shape === null
          ? {}
          : {
              shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
            }),
      },
    },
  };
}

function attribute(name: string, value: AttributeValue) {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: A.INT, i: value } : { name, type: A.FLOAT, f: value };
  }
  if (typeof value === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: A.INTS, ints: value };
  if ('tensor' in value) return { name, type: A.TENSOR, t: initializer(value.tensor) };
  if ('ints' in value) return { name, type: A.INTS, ints: value.ints };
  return { name, type: A.FLOATS, floats: value.floats };
}

function initializer(t: InitializerSpec) {
  const base = { name: t.name, dataType: t.elemType, dims: [...t.dims] };
  if (t.externalLocation) {
    return {
      ...base,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: t.externalLocation },
        { key: 'offset', value: '0' },
        { key: 'length', value: String(t.dims.reduce((a, b) => a * b, 1) * 4) },
      ],
    };
  }
  if (t.raw) return { ...base, rawData: t.raw };
  if (t.floats) return { ...base, rawData: new Uint8Array(Float32Array.from(t.floats).buffer) };
  if (t.int64s) {
    return {
      ...base,
      rawData: new Uint8Array(BigInt64Array.from(Array.from(t.int64s, (v) => BigInt(v))).buffer),
    };
  }
  throw new Error(`initializer ${t.name} has no data`);
}

/** Serializes a graph to ONNX model bytes (IR version 8, default opset 17). */
export function buildModel(g: GraphSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'maas',
    producerVersion: '1',
    opsetImport: [{ domain: '', version: g.opset ?? 17 }],
    graph: {
      name: g.name ?? 'graph',
      input: g.inputs.map(valueInfo),
      output: g.outputs.map(valueInfo),
      initializer: (g.initializers ?? []).map(initializer),
      node: g.nodes.map((n, i) => ({
        name: n.name ?? `${n.opType}_${i}`,
        opType: n.opType,
        domain: n.domain ?? '',
        input: [...n.inputs],
        output: [...n.outputs],
        attribute: Object.entries(n.attributes ?? {}).map(([k, v]) => attribute(k, v)),
      })),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Deterministic pseudo-random numbers (mulberry32) for reproducible weights: the generator of the derive gate's rows. */
export const seededRandom: (seed: number) => () => number = seededUniform;

/**
 * The smallest useful model, `y = Identity(x)` on FP32 `[1]` (88 bytes): the onnxruntime engine creates a session
 * of it at INIT to initialize the runtime (`WARM_UP_MODEL` in functions/adapters/ort-engine.ts holds these bytes).
 */
export function warmUpModel(): Uint8Array {
  return buildModel({
    name: 'w',
    inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: [1] }],
    outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: [1] }],
    nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
  });
}

/** A dense (Gemm) classifier/regressor: `[batch, inFeatures]` -> `[batch, layers.at(-1)]`, ReLU between layers. */
export function buildMlp(opts: {
  inFeatures: number;
  layers: readonly number[];
  seed?: number;
  inputName?: string;
  outputName?: string;
  softmax?: boolean;
  weights?: readonly { w: ArrayLike<number>; b: ArrayLike<number> }[];
}): Uint8Array {
  const rand = seededRandom(opts.seed ?? 42);
  const inputName = opts.inputName ?? 'input';
  const outputName = opts.outputName ?? 'output';
  const nodes: NodeSpec[] = [];
  const inits: InitializerSpec[] = [];
  let prev = inputName;
  let width = opts.inFeatures;
  opts.layers.forEach((units, i) => {
    const given = opts.weights?.[i];
    const scale = Math.sqrt(2 / width);
    const w = given?.w ?? Float32Array.from({ length: width * units }, () => (rand() * 2 - 1) * scale);
    const b = given?.b ?? Float32Array.from({ length: units }, () => (rand() * 2 - 1) * 0.01);
    inits.push({ name: `W${i}`, elemType: ElemType.FLOAT, dims: [width, units], floats: w });
    inits.push({ name: `B${i}`, elemType: ElemType.FLOAT, dims: [units], floats: b });
    const last = i === opts.layers.length - 1;
    const gemmOut = last && !opts.softmax ? outputName : `gemm${i}`;
    nodes.push({ opType: 'Gemm', inputs: [prev, `W${i}`, `B${i}`], outputs: [gemmOut] });
    prev = gemmOut;
    if (!last) {
      nodes.push({ opType: 'Relu', inputs: [gemmOut], outputs: [`relu${i}`] });
      prev = `relu${i}`;
    } else if (opts.softmax) {
      nodes.push({ opType: 'Softmax', inputs: [gemmOut], outputs: [outputName], attributes: { axis: -1 } });
    }
    width = units;
  });
  return buildModel({
    name: 'mlp',
    inputs: [{ name: inputName, elemType: ElemType.FLOAT, shape: ['batch', opts.inFeatures] }],
    outputs: [{ name: outputName, elemType: ElemType.FLOAT, shape: ['batch', width] }],
    nodes,
    initializers: inits,
  });
}

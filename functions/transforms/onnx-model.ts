/**
 * Helpers for graph rewrites on ONNX models (onnx-proto): decoding and encoding, reading FP32 initializers,
 * making initializers and nodes, the default-domain opset, and fresh names that clash with nothing in the model.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** A decoded ONNX model (the generated protobuf class). */
export type ModelProto = onnxProto.onnx.ModelProto;
/** A graph node. */
export type NodeProto = onnxProto.onnx.INodeProto;
/** A tensor (initializer). */
export type TensorProto = onnxProto.onnx.ITensorProto;
/** A node attribute. */
export type AttributeProto = onnxProto.onnx.IAttributeProto;

/** TensorProto.DataType codes used by the transforms. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
} as const;

/** A protobuf int64 (number or Long) as a number. */
export function num(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/** Decodes ONNX model bytes. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

/** Encodes a model to ONNX bytes. */
export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** The dims of a tensor, as numbers. */
export function dimsOf(t: TensorProto): number[] {
  return (t.dims ?? []).map((d) => num(d));
}

/** The tensor's data lives outside the model file (external data): its values cannot be read here. */
export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
}

/**
 * The values of an FP32 tensor (`float_data` or little-endian `raw_data`), or undefined when the tensor is not
 * FP32, is stored externally, or its data does not match its dims.
 */
export function readFloat32(t: TensorProto): Float32Array | undefined {
  if (t.dataType !== DataType.FLOAT || isExternal(t)) return undefined;
  const count = dimsOf(t).reduce((a, b) => a * b, 1);
  const raw = t.rawData;
  if (raw && raw.length > 0) {
    if (raw.length !== count * 4) return undefined;
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  const floats = t.floatData ?? [];
  if (floats.length !== count) return undefined;
  return Float32Array.from(floats);
}

/** An initializer with raw little-endian data of the given element type. */
export function makeTensor(
  name: string,
  dataType: number,
  dims: readonly number[],
  data: Float32Array | Int8Array | Uint8Array | Int32Array,
): TensorProto {
  const bytes = new Uint8Array(data.byteLength);
  if (data instanceof Float32Array || data instanceof Int32Array) {
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < data.length; i++) {
      if (data instanceof Float32Array) view.setFloat32(i * 4, data[i]!, true);
      else view.setInt32(i * 4, data[i]!, true);
    }
  } else {
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return onnx.TensorProto.create({ name, dataType, dims: [...dims], rawData: bytes });
}

/** Attribute values a rewrite sets: integers, floats (non-integer numbers need `{ f }`), strings. */
export type SimpleAttribute = { i: number } | { f: number } | { s: string };

/** A node of the default domain. */
export function makeNode(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  name: string,
  attributes: Record<string, SimpleAttribute> = {},
): NodeProto {
  const A = onnx.AttributeProto.AttributeType;
  return onnx.NodeProto.create({
    opType,
    name,
    domain: '',
    input: [...inputs],
    output: [...outputs],
    attribute: Object.entries(attributes).map(([key, v]) =>
      'i' in v
        ? { name: key, type: A.INT, i: v.i }
        : 'f' in v
          ? { name: key, type: A.FLOAT, f: v.f }
          : { name: key, type: A.STRING, s: new TextEncoder().encode(v.s) },
    ),
  });
}

/** The value of an INT attribute of a node, or `fallback`. */
export function intAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute?.find((x) => x.name === name);
  return a ? num(a.i) : fallback;
}

/** The value of a FLOAT attribute of a node, or `fallback`. */
export function floatAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute?.find((x) => x.name === name);
  return a ? (a.f ?? fallback) : fallback;
}

/** The default-domain (`''` or `ai.onnx`) opset the model imports, or undefined when it imports none. */
export function defaultOpset(model: ModelProto): number | undefined {
  const entry = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  return entry ? num(entry.version) : undefined;
}

/** Raises the default-domain opset import to at least `min` (adds the import when missing); returns the new one. */
export function raiseDefaultOpset(model: ModelProto, min: number): number {
  const entry = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!entry) {
    model.opsetImport.push(onnx.OperatorSetIdProto.create({ domain: '', version: min }));
    return min;
  }
  const current = num(entry.version);
  if (current < min) entry.version = min;
  return Math.max(current, min);
}

/** Every name a node reads, in the graph and in the subgraphs of its attributes (If, Loop, Scan bodies). */
export function namesReadBy(graph: onnxProto.onnx.IGraphProto): Set<string> {
  const used = new Set<string>();
  const walk = (g: onnxProto.onnx.IGraphProto) => {
    for (const n of g.node ?? []) {
      for (const i of n.input ?? []) if (i) used.add(i);
      for (const a of n.attribute ?? []) {
        if (a.g) walk(a.g);
        for (const sub of a.graphs ?? []) walk(sub);
      }
    }
    for (const o of g.output ?? []) if (o.name) used.add(o.name);
  };
  walk(graph);
  return used;
}

/** Every name the model already uses (values, initializers, nodes, subgraphs included). */
function namesIn(graph: onnxProto.onnx.IGraphProto, into: Set<string>): void {
  for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
    if (v.name) into.add(v.name);
  }
  for (const t of graph.initializer ?? []) if (t.name) into.add(t.name);
  for (const n of graph.node ?? []) {
    if (n.name) into.add(n.name);
    for (const x of [...(n.input ?? []), ...(n.output ?? [])]) if (x) into.add(x);
    for (const a of n.attribute ?? []) {
      if (a.g) namesIn(a.g, into);
      for (const sub of a.graphs ?? []) namesIn(sub, into);
    }
  }
}

/** Makes names that clash with no name of the model nor with any name it made before. */
export function uniqueNamer(model: ModelProto): (base: string) => string {
  const taken = new Set<string>();
  if (model.graph) namesIn(model.graph, taken);
  return (base) => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };
}

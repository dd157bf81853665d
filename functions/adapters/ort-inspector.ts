/**
 * ModelInspector on onnxruntime-node: proves an artifact is a loadable ONNX model and reads its
 * signature. Before ORT sees the bytes, the protobuf is parsed (onnx-proto) and a model with any tensor in
 * an external data file, wherever the tensor lives, is rejected: a registered artifact must be self-contained, and
 * ORT must never be asked to open files next to the process (it reads a relative location from its working
 * directory). A model whose constant nodes would make ORT build more than `LIMITS.maxFoldedConstantBytes` when it
 * folds constants at load is refused before ORT sees it (`foldedConstants`). An input declared with no shape (any
 * rank) is refused too: the protocol's metadata cannot describe it, and ORT reports it as a scalar, so every other
 * request would be refused.
 */
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { LIMITS } from '../contract/limits';
import { UnprocessableModelError } from '../domain/errors';
import type { Datatype, ModelSignature, TensorSpec } from '../domain/types';
import type { ModelInspector } from '../ports';

const { onnx } = onnxProto;

/** ORT tensor type names -> Open Inference Protocol datatypes. */
export const ORT_TO_OIP: Readonly<Record<string, Datatype>> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
  string: 'BYTES',
};

type Model = InstanceType<typeof onnx.ModelProto>;
type Attribute = InstanceType<typeof onnx.AttributeProto>;

/**
 * The default attribute values of the model's functions (`FunctionProto.attribute_proto`, field 11 of each
 * `ModelProto.functions` entry, field 25). onnx-proto's schema (ONNX 1.10) predates the field and its decoder
 * drops it, while onnxruntime reads it: it is read from the wire here, so that its tensors are checked too.
 */
export function functionAttributeDefaults(bytes: Uint8Array): Attribute[] {
  const found: Attribute[] = [];
  for (const fn of lengthDelimited(bytes, 25)) {
    for (const attribute of lengthDelimited(fn, 11)) found.push(onnx.AttributeProto.decode(attribute));
  }
  return found;
}

/** The values of one length-delimited field of a protobuf message's bytes (a minimal wire-format reader). */
function lengthDelimited(bytes: Uint8Array, field: number): Uint8Array[] {
  const values: Uint8Array[] = [];
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= bytes.length || shift > 63) throw new Error('truncated or malformed varint');
      const b = bytes[pos++] as number;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  };
  while (pos < bytes.length) {
    const tag = varint();
    const wire = tag % 8;
    if (wire === 0) varint();
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const length = varint();
      if (pos + length > bytes.length) throw new Error('truncated length-delimited field');
      if (Math.floor(tag / 8) === field) values.push(bytes.subarray(pos, pos + length));
      pos += length;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  if (pos > bytes.length) throw new Error('truncated field');
  return values;
}

/**
 * Names of the tensors stored outside the model bytes (`data_location` EXTERNAL or `external_data` entries), wherever
 * a TensorProto can live: every field of the decoded tree is walked, at any depth — initializers and sparse
 * initializers, node attributes (tensor, sparse tensor and their lists), subgraphs of If/Loop/Scan, function bodies,
 * training graphs — and so are the functions' default attribute values (`functionAttributeDefaults`).
 */
export function externalDataTensors(model: Model, extra: readonly Attribute[] = []): string[] {
  const found: string[] = [];
  const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;
  const isMessage = (v: object) =>
    typeof (v as { constructor?: { encode?: unknown } }).constructor?.encode === 'function';
  const stack: object[] = [model, ...extra];
  for (let v = stack.pop(); v !== undefined; v = stack.pop()) {
    if (v instanceof onnx.TensorProto) {
      if (v.dataLocation === EXTERNAL || (v.externalData?.length ?? 0) > 0) found.push(v.name || '(unnamed)');
      continue;
    }
    for (const field of Object.values(v)) {
      if (field === null || typeof field !== 'object' || ArrayBuffer.isView(field)) continue;
      if (!Array.isArray(field)) {
        if (isMessage(field)) stack.push(field);
      } else if (
        field.length > 0 &&
        typeof field[0] === 'object' &&
        field[0] !== null &&
        isMessage(field[0])
      ) {
        for (const item of field) stack.push(item);
      }
    }
  }
  return found;
}

type Node = InstanceType<typeof onnx.NodeProto>;
type Tensor = InstanceType<typeof onnx.TensorProto>;

/** Bytes of one element of each ONNX element type as onnxruntime holds it (a string: its `std::string`). */
const ELEMENT_BYTES: Readonly<Record<number, number>> = {
  1: 4,
  2: 1,
  3: 1,
  4: 2,
  5: 2,
  6: 4,
  7: 8,
  8: 32,
  9: 1,
  10: 2,
  11: 8,
  12: 4,
  13: 8,
  14: 8,
  15: 16,
  16: 2,
};

/** A tensor known before the model runs: its dims, element type and, when small, its values. */
interface Known {
  readonly dims: readonly number[];
  readonly dataType: number;
  readonly values?: readonly number[];
  /** Constant (computed from constants only, so folded at load), but its dims and values are not worked out. */
  readonly opaque?: true;
}

/** A constant whose dims and values are not worked out. */
const OPAQUE: Known = { dims: [], dataType: 0, opaque: true };

/** One node whose output onnxruntime would build when it folds constants. */
export interface FoldedConstant {
  readonly node: string;
  readonly opType: string;
  readonly dims: readonly number[];
  /** What it builds; undefined when its inputs are constants whose values are not worked out. */
  readonly bytes: number | undefined;
}

const toNumber = (v: unknown): number =>
  typeof v === 'object' && v !== null && 'toNumber' in v
    ? (v as { toNumber(): number }).toNumber()
    : Number(v);

/** The values of a small tensor (a shape, repeats, a scalar) of a numeric type; undefined otherwise. */
function valuesOf(t: Tensor): number[] | undefined {
  const count = (t.dims ?? []).reduce<number>((a, d) => a * toNumber(d), 1);
  if (!(count <= 64)) return undefined;
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  const read = (
    size: number,
    get: (at: number) => number | bigint,
    listed: ArrayLike<unknown> | undefined,
  ) => {
    if (view) {
      if (view.byteLength < count * size) return undefined;
      return Array.from({ length: count }, (_, i) => Number(get(i * size)));
    }
    return listed && listed.length >= count
      ? Array.from({ length: count }, (_, i) => toNumber(listed[i]))
      : undefined;
  };
  switch (t.dataType) {
    case 1:
      return read(4, (at) => view!.getFloat32(at, true), t.floatData);
    case 6:
      return read(4, (at) => view!.getInt32(at, true), t.int32Data);
    case 7:
      return read(8, (at) => view!.getBigInt64(at, true), t.int64Data);
    case 11:
      return read(8, (at) => view!.getFloat64(at, true), t.doubleData);
    case 13:
      return read(8, (at) => view!.getBigUint64(at, true), t.uint64Data);
    default:
      return undefined;
  }
}

function knownTensor(t: Tensor): Known {
  return { dims: (t.dims ?? []).map(toNumber), dataType: t.dataType ?? 0, values: valuesOf(t) };
}

/** The tensor a Constant node outputs, as far as its attribute tells. */
function constantValue(node: Node): Known | undefined {
  const a = node.attribute?.[0];
  if (!a) return undefined;
  switch (a.name) {
    case 'value':
      return a.t ? knownTensor(a.t as Tensor) : undefined;
    case 'value_int':
      return { dims: [], dataType: 7, values: [toNumber(a.i)] };
    case 'value_ints':
      return { dims: [a.ints?.length ?? 0], dataType: 7, values: (a.ints ?? []).map(toNumber) };
    case 'value_float':
      return { dims: [], dataType: 1, values: [a.f ?? 0] };
    case 'value_floats':
      return { dims: [a.floats?.length ?? 0], dataType: 1, values: [...(a.floats ?? [])] };
    case 'sparse_value':
      return {
        dims: (a.sparseTensor?.dims ?? []).map(toNumber),
        dataType: a.sparseTensor?.values?.dataType ?? 0,
      };
    default:
      return undefined;
  }
}

/** The output (dims, element type) of a ConstantOfShape, Expand, Tile or Range node whose inputs are all known. */
function foldedOutput(node: Node, input: (i: number) => Known | undefined): Known | 'unsized' | undefined {
  const nonNegative = (d: number) => (d > 0 ? d : 0);
  const inputs = node.input ?? [];
  const sized = new Set(['ConstantOfShape', 'Expand', 'Tile', 'Range']);
  // A node of these whose inputs are all constant is folded at load, whatever they are: one whose size hangs on a
  // constant whose values are not worked out here cannot be bounded.
  if (
    sized.has(node.opType ?? '') &&
    inputs.length > 0 &&
    inputs.every((name, i) => name === '' || input(i) !== undefined) &&
    inputs.some((name, i) => name !== '' && input(i)?.opaque)
  ) {
    return 'unsized';
  }
  switch (node.opType) {
    case 'ConstantOfShape': {
      const shape = input(0)?.values;
      if (!shape) return undefined;
      const value = node.attribute?.find((a) => a.name === 'value')?.t;
      return { dims: shape.map(nonNegative), dataType: value?.dataType ?? 1 };
    }
    case 'Expand': {
      const [data, shape] = [input(0), input(1)?.values];
      if (!data || !shape) return undefined;
      const rank = Math.max(data.dims.length, shape.length);
      const at = (dims: readonly number[], i: number) => dims[dims.length - rank + i] ?? 1;
      const dims = Array.from({ length: rank }, (_, i) =>
        Math.max(at(data.dims, i), nonNegative(at(shape, i))),
      );
      return { dims, dataType: data.dataType };
    }
    case 'Tile': {
      const [data, repeats] = [input(0), input(1)?.values];
      if (!data || !repeats) return undefined;
      return { dims: data.dims.map((d, i) => d * nonNegative(repeats[i] ?? 1)), dataType: data.dataType };
    }
    case 'Range': {
      const [start, limit, delta] = [input(0), input(1)?.values?.[0], input(2)?.values?.[0]];
      const from = start?.values?.[0];
      if (from === undefined || limit === undefined || !delta) return undefined;
      return { dims: [nonNegative(Math.ceil((limit - from) / delta))], dataType: start?.dataType ?? 1 };
    }
    default:
      return undefined;
  }
}

/**
 * The output of any other node whose inputs are all constant (onnxruntime folds it too): the values of the ops that
 * only carry a small tensor on — Identity, Cast, Unsqueeze, Squeeze, Reshape, Flatten (the values, flattened), Concat
 * of tensors with values, Shape of a tensor of known dims — and otherwise a constant whose values are not worked
 * out. Undefined when an input is not constant (the node runs with the model's inputs).
 */
function passedConstant(node: Node, input: (i: number) => Known | undefined): Known | undefined {
  const inputs = node.input ?? [];
  if (inputs.length === 0) return undefined;
  const known: (Known | undefined)[] = inputs.map((name, i) => (name === '' ? undefined : input(i)));
  if (inputs.some((name, i) => name !== '' && known[i] === undefined)) return undefined;
  const first = known[0];
  if (!first || first.opaque) return OPAQUE;
  const flat = (values: readonly number[] | undefined, dataType: number): Known =>
    values ? { dims: [values.length], dataType, values } : OPAQUE;
  switch (node.opType) {
    case 'Identity':
      return first;
    case 'Cast': {
      const to = node.attribute?.find((a) => a.name === 'to')?.i;
      return { ...first, dataType: to === undefined || to === null ? first.dataType : toNumber(to) };
    }
    case 'Unsqueeze':
    case 'Squeeze':
    case 'Reshape':
    case 'Flatten':
      return flat(first.values, first.dataType);
    case 'Concat': {
      const parts = known.filter((k): k is Known => k !== undefined);
      if (parts.some((k) => !k.values)) return OPAQUE;
      return flat(
        parts.flatMap((k) => k.values ?? []),
        first.dataType,
      );
    }
    case 'Shape':
      return { dims: [first.dims.length], dataType: 7, values: first.dims };
    default:
      return OPAQUE;
  }
}

/**
 * The tensors onnxruntime would build when it folds constants at session creation (graph optimisation), as far as
 * they are known without running anything: each ConstantOfShape, Expand, Tile or Range node whose inputs are all
 * constant — initializers, Constant nodes, or outputs of such nodes (of those only their dims are known) — in the
 * graph, its subgraphs at any depth (which see their outer graphs' constants) and the functions' bodies (each
 * counted once). Any other node is not evaluated: a size that depends on another op's folded result is not seen.
 */
export function foldedConstants(model: Model): FoldedConstant[] {
  const found: FoldedConstant[] = [];
  type Scope = { readonly known: Map<string, Known>; readonly parent?: Scope };
  const lookup = (scope: Scope | undefined, name: string): Known | undefined => {
    for (let s = scope; s; s = s.parent) {
      const k = s.known.get(name);
      if (k) return k;
    }
    return undefined;
  };
  const work: { nodes: readonly Node[]; initializers: readonly Tensor[]; parent?: Scope }[] = [];
  if (model.graph) {
    work.push({
      nodes: (model.graph.node ?? []) as Node[],
      initializers: (model.graph.initializer ?? []) as Tensor[],
    });
  }
  for (const f of model.functions ?? []) work.push({ nodes: (f.node ?? []) as Node[], initializers: [] });
  for (let item = work.pop(); item; item = work.pop()) {
    const scope: Scope = { known: new Map(), parent: item.parent };
    for (const t of item.initializers) scope.known.set(t.name ?? '', knownTensor(t));
    for (const node of item.nodes) {
      const output = node.output?.[0];
      if (node.opType === 'Constant' && (node.domain ?? '') === '' && output) {
        const value = constantValue(node);
        if (value) scope.known.set(output, value);
      } else if ((node.domain ?? '') === '' && output) {
        const inputs = node.input ?? [];
        const input = (i: number) => (inputs[i] ? lookup(scope, inputs[i]) : undefined);
        const folded = foldedOutput(node, input);
        if (folded === 'unsized') {
          found.push({ node: node.name || output, opType: node.opType ?? '', dims: [], bytes: undefined });
          scope.known.set(output, OPAQUE);
        } else if (folded) {
          const elements = folded.dims.reduce((a, d) => a * d, 1);
          const bytes = elements * (ELEMENT_BYTES[folded.dataType] ?? 8);
          found.push({ node: node.name || output, opType: node.opType ?? '', dims: folded.dims, bytes });
          scope.known.set(output, { dims: folded.dims, dataType: folded.dataType });
        } else {
          const passed = passedConstant(node, input);
          if (passed) for (const o of node.output ?? []) if (o) scope.known.set(o, passed);
        }
      }
      for (const a of node.attribute ?? []) {
        for (const g of [a.g, ...(a.graphs ?? [])]) {
          if (g)
            work.push({
              nodes: (g.node ?? []) as Node[],
              initializers: (g.initializer ?? []) as Tensor[],
              parent: scope,
            });
        }
      }
    }
  }
  return found;
}

/**
 * Names of the graph's tensor inputs declared with no shape at all (any rank: `tensor_type.shape` absent), which
 * onnxruntime reports as rank 0, like a scalar. An output declared so is not refused: it is listed with `shape: []`
 * (its rank unknown), and the answers carry the dims of what the model computed.
 */
export function unknownRankInputs(model: Model): Set<string> {
  const found = new Set<string>();
  for (const info of model.graph?.input ?? []) {
    const tensor = info.type?.tensorType;
    if (tensor && tensor.shape == null) found.add(info.name ?? '');
  }
  return found;
}

function toSpec(
  m: ort.InferenceSession.ValueMetadata,
  kind: 'input' | 'output',
  unknownRank: ReadonlySet<string>,
): TensorSpec {
  if (!m.isTensor) {
    throw new UnprocessableModelError(
      `${kind} '${m.name}' is not a tensor (sequences and maps are not supported by the inference protocol)`,
    );
  }
  const datatype = ORT_TO_OIP[m.type];
  if (!datatype) throw new UnprocessableModelError(`${kind} '${m.name}' has unsupported type '${m.type}'`);
  // The protocol's metadata gives every tensor a rank: an input of any rank would be advertised (and requests
  // validated) as a scalar.
  if (kind === 'input' && unknownRank.has(m.name)) {
    throw new UnprocessableModelError(
      `${kind} '${m.name}' declares no shape (any rank), which the inference protocol cannot describe; ` +
        'declare its shape in the model, with a symbolic dimension (e.g. "batch") for each one that varies',
    );
  }
  return {
    name: m.name,
    datatype,
    shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
  };
}

export class OrtModelInspector implements ModelInspector {
  /** Loads the bytes in onnxruntime-node; UnprocessableModelError when they are not a usable model. */
  async inspect(bytes: Uint8Array): Promise<ModelSignature> {
    let model: Model;
    try {
      model = onnx.ModelProto.decode(bytes);
    } catch (e) {
      throw new UnprocessableModelError(`the artifact is not an ONNX model: ${(e as Error).message}`);
    }
    if (!model.graph) throw new UnprocessableModelError('the artifact is not an ONNX model: it has no graph');
    let external: string[];
    try {
      external = externalDataTensors(model, functionAttributeDefaults(bytes));
    } catch (e) {
      throw new UnprocessableModelError(`the artifact is not an ONNX model: ${(e as Error).message}`);
    }
    if (external.length > 0) {
      throw new UnprocessableModelError(
        `the model references external data files (tensors: ${external.slice(0, 5).join(', ')}); ` +
          'register a self-contained model (save it without external data)',
      );
    }
    const folded = foldedConstants(model);
    const unsized = folded.filter((f) => f.bytes === undefined);
    if (unsized.length > 0) {
      const named = unsized.slice(0, 3).map((f) => `${f.opType} '${f.node}'`);
      throw new UnprocessableModelError(
        `onnxruntime would build the output of ${named.join(', ')}${unsized.length > 3 ? ', …' : ''} from ` +
          'constants when it loads the model (constant folding), of a size that cannot be bounded before; fold the ' +
          "model's constants when exporting it (or compute the tensor from the model's inputs)",
      );
    }
    const foldedBytes = folded.reduce((a, f) => a + (f.bytes ?? 0), 0);
    if (foldedBytes > LIMITS.maxFoldedConstantBytes) {
      const largest = [...folded].sort((a, b) => (b.bytes ?? 0) - (a.bytes ?? 0)).slice(0, 3);
      const named = largest.map((f) => `${f.opType} '${f.node}' [${f.dims.join(', ')}] ${mib(f.bytes ?? 0)}`);
      throw new UnprocessableModelError(
        `the model would make onnxruntime build ${mib(foldedBytes)} of constant tensors when it loads ` +
          `(constant folding: ${named.join(', ')}${folded.length > 3 ? ', …' : ''}), more than the ` +
          `${mib(LIMITS.maxFoldedConstantBytes)} allowed; compute large tensors from the model's inputs instead`,
      );
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes);
    } catch (e) {
      throw new UnprocessableModelError(
        `onnxruntime cannot load the model: ${firstLine((e as Error).message)}`,
      );
    }
    const unknownRank = unknownRankInputs(model);
    try {
      return {
        inputs: session.inputMetadata.map((m) => toSpec(m, 'input', unknownRank)),
        outputs: session.outputMetadata.map((m) => toSpec(m, 'output', unknownRank)),
      };
    } finally {
      await session.release().catch(() => {});
    }
  }
}

function firstLine(s: string): string {
  const line = s.split('\n')[0] ?? s;
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

function mib(bytes: number): string {
  return `${Number.isFinite(bytes) ? Math.round((bytes / 2 ** 20) * 10) / 10 : bytes} MiB`;
}

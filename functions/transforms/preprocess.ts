/**
 * `preprocess` — compiles a declared pre-processing (functions/domain/preprocess-spec) into ONNX nodes placed in
 * front of the graph, so that the new model takes raw features and runs the same wherever onnxruntime runs it.
 *
 * A preprocessed input X keeps its name: the graph input X becomes the raw input (its datatype and shape from
 * `planPreprocess`), the graph's readers of X read the steps' last value instead. Steps compile to:
 *
 * | step            | nodes                                                                                 |
 * |-----------------|---------------------------------------------------------------------------------------|
 * | `normalize`     | `Sub(x, mean)` → `Div(., std)`                                                        |
 * | `minmax`        | `Sub(x, min)` → `Div(., max - min)` (the range is rounded to the input's float type)  |
 * | `fillMissing`   | `Where(IsNaN(x), value, x)`                                                           |
 * | `clip`          | `Max(x, min)` → `Min(., max)`                                                         |
 * | `stringToIndex` | `ai.onnx.ml` `LabelEncoder` (opset 2: `keys_strings` → `values_int64s`, `default_int64`) |
 * | `oneHot`        | `ai.onnx.ml` `OneHotEncoder` (`[b, 1]` → `[b, 1, K]`, `zeros` from `handleUnknown`) → `Squeeze(axis 1)` |
 *
 * followed by a `Cast` when the graph expects another numeric datatype. Constants are initializers of the
 * input's float type. The `ai.onnx.ml` opset import is added (2) when a step needs it; a model that already imports
 * `ai.onnx.ml` below 2 and uses LabelEncoder itself is refused (raising the import would change its meaning). The
 * default-domain opset must be 9 or later (IsNaN, Where).
 */
import onnxProto from 'onnx-proto';
import { BadRequestError, UnprocessableModelError } from '../domain/errors';
import {
  INVALID_PREPROCESS,
  oneHotNodeName,
  type PlannedInput,
  type PlannedStep,
  type PreprocessSpec,
  pairValues,
  planPreprocess,
  unknownCategoryRefusal,
} from '../domain/preprocess-spec';
import type { Datatype, ModelSignature, TensorSpec } from '../domain/types';
import {
  decodeModel,
  defaultOpset,
  encodeModel,
  type ModelProto,
  type NodeProto,
  num,
  uniqueNamer,
} from './onnx-model';

const { onnx } = onnxProto;
type Graph = onnxProto.onnx.IGraphProto;
type ValueInfo = onnxProto.onnx.IValueInfoProto;

/** The operator domain of the traditional-ML operators (LabelEncoder, OneHotEncoder). */
export const ML_DOMAIN = 'ai.onnx.ml';
/** The `ai.onnx.ml` opset the compiled steps need (LabelEncoder with string keys and int64 values). */
export const ML_OPSET = 2;
/** The oldest default-domain opset the compiled steps run on (IsNaN and Where are 9). */
export const PREPROCESS_MIN_OPSET = 9;

const ELEM_TYPE: Readonly<Record<Datatype, number>> = {
  FP32: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  BYTES: 8,
  BOOL: 9,
  FP16: 10,
  FP64: 11,
  UINT32: 12,
  UINT64: 13,
};
const DATATYPE_OF = new Map<number, Datatype>(Object.entries(ELEM_TYPE).map(([d, e]) => [e, d as Datatype]));

const bad = (why: string) => new BadRequestError(`preprocess ${why}`, INVALID_PREPROCESS);

/**
 * Whether an inference error is onnxruntime failing a `oneHot` step declared with `handleUnknown: 'error'` on a
 * category it does not know (OneHotEncoder with `zeros = 0`). The caller sent a bad value: answer 400, not 500.
 */
export function isUnknownCategoryError(e: unknown): boolean {
  return e instanceof Error && unknownCategoryRefusal(e.message) !== undefined;
}

/** The tensor inputs of a decoded model's graph (initializers that are also inputs excluded), as a signature. */
function graphInputs(model: ModelProto): Map<string, { spec: TensorSpec; info: ValueInfo }> {
  const graph = model.graph;
  if (!graph) throw new UnprocessableModelError('the model has no graph');
  const initialized = new Set((graph.initializer ?? []).map((t) => t.name));
  const out = new Map<string, { spec: TensorSpec; info: ValueInfo }>();
  for (const info of graph.input ?? []) {
    const name = info.name ?? '';
    const tensor = info.type?.tensorType;
    if (initialized.has(name) || !tensor) continue;
    const datatype = DATATYPE_OF.get(tensor.elemType ?? 0);
    if (!datatype) continue;
    const shape = (tensor.shape?.dim ?? []).map((d) =>
      d.dimValue != null && num(d.dimValue) > 0 ? num(d.dimValue) : -1,
    );
    out.set(name, { spec: { name, datatype, shape }, info });
  }
  return out;
}

/** Renames reads of `from` to `to` in a graph and in the subgraphs that do not define `from` themselves. */
function renameReads(graph: Graph, from: string, to: string): void {
  for (const node of graph.node ?? []) {
    node.input = (node.input ?? []).map((i) => (i === from ? to : i));
    for (const a of node.attribute ?? []) {
      for (const sub of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) {
        const defines =
          (sub.input ?? []).some((v) => v.name === from) ||
          (sub.initializer ?? []).some((t) => t.name === from) ||
          (sub.node ?? []).some((n) => (n.output ?? []).includes(from));
        if (defines) continue;
        renameReads(sub, from, to);
        for (const o of sub.output ?? []) if (o.name === from) o.name = to;
      }
    }
  }
  for (const v of graph.valueInfo ?? []) if (v.name === from) v.name = to;
}

function stringsAttr(name: string, values: readonly string[]) {
  const enc = new TextEncoder();
  return { name, type: onnx.AttributeProto.AttributeType.STRINGS, strings: values.map((v) => enc.encode(v)) };
}
function intsAttr(name: string, values: readonly number[]) {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...values] };
}
function intAttr(name: string, value: number) {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}

/** A float constant of the input's float type (FP32 or FP64): a scalar for one value, `[n]` for n. */
function floatTensor(name: string, datatype: Datatype, values: readonly number[]) {
  const dims = values.length === 1 ? [] : [values.length];
  const raw =
    datatype === 'FP64'
      ? new Uint8Array(Float64Array.from(values).buffer)
      : new Uint8Array(Float32Array.from(values).buffer);
  return onnx.TensorProto.create({ name, dataType: ELEM_TYPE[datatype], dims, rawData: raw });
}

function int64Tensor(name: string, values: readonly number[]) {
  return onnx.TensorProto.create({
    name,
    dataType: ELEM_TYPE.INT64,
    dims: [values.length],
    rawData: new Uint8Array(BigInt64Array.from(values, (v) => BigInt(v)).buffer),
  });
}

interface Emitter {
  readonly nodes: NodeProto[];
  readonly initializers: onnxProto.onnx.ITensorProto[];
  readonly fresh: (base: string) => string;
  readonly opset: number;
  usesMl: boolean;
  usesLabelEncoder: boolean;
}

function node(
  e: Emitter,
  opType: string,
  inputs: readonly string[],
  output: string,
  attribute: onnxProto.onnx.IAttributeProto[] = [],
  domain = '',
  name = `preprocess_${opType}`,
): string {
  e.nodes.push(
    onnx.NodeProto.create({
      opType,
      domain,
      name: e.fresh(name),
      input: [...inputs],
      output: [output],
      attribute,
    }),
  );
  return output;
}

function constant(e: Emitter, base: string, datatype: Datatype, values: readonly number[]): string {
  const name = e.fresh(base);
  e.initializers.push(floatTensor(name, datatype, values));
  return name;
}

/** Emits the nodes of one step reading `x`; the step's value is named `out`. */
function emitStep(e: Emitter, input: string, p: PlannedStep, x: string, out: string): void {
  const s = p.step;
  const t = p.inType;
  const tmp = () => e.fresh(`${input}_preprocess`);
  if ('normalize' in s) {
    const pairs = pairValues(s.normalize.mean, s.normalize.std);
    const mean = constant(
      e,
      `${input}_mean`,
      t,
      pairs.map(([m]) => m),
    );
    const std = constant(
      e,
      `${input}_std`,
      t,
      pairs.map(([, d]) => d),
    );
    node(e, 'Div', [node(e, 'Sub', [x, mean], tmp()), std], out);
  } else if ('minmax' in s) {
    const pairs = pairValues(s.minmax.min, s.minmax.max);
    const min = constant(
      e,
      `${input}_min`,
      t,
      pairs.map(([lo]) => lo),
    );
    const range = constant(
      e,
      `${input}_range`,
      t,
      pairs.map(([lo, hi]) => hi - lo),
    );
    node(e, 'Div', [node(e, 'Sub', [x, min], tmp()), range], out);
  } else if ('fillMissing' in s) {
    const value = constant(e, `${input}_fill`, t, [s.fillMissing.value]);
    node(e, 'Where', [node(e, 'IsNaN', [x], tmp()), value, x], out);
  } else if ('clip' in s) {
    let v = x;
    const { min, max } = s.clip;
    if (min !== undefined) {
      const lo = constant(e, `${input}_clip_min`, t, typeof min === 'number' ? [min] : min);
      v = node(e, 'Max', [v, lo], max === undefined ? out : tmp());
    }
    if (max !== undefined) {
      const hi = constant(e, `${input}_clip_max`, t, typeof max === 'number' ? [max] : max);
      node(e, 'Min', [v, hi], out);
    }
  } else if ('stringToIndex' in s) {
    const { vocabulary, oov } = s.stringToIndex;
    e.usesMl = true;
    e.usesLabelEncoder = true;
    node(
      e,
      'LabelEncoder',
      [x],
      out,
      [
        stringsAttr('keys_strings', vocabulary),
        intsAttr(
          'values_int64s',
          vocabulary.map((_, i) => i),
        ),
        intAttr('default_int64', oov),
      ],
      ML_DOMAIN,
    );
  } else {
    const { categories, handleUnknown } = s.oneHot;
    e.usesMl = true;
    const cats =
      typeof categories[0] === 'string'
        ? stringsAttr('cats_strings', categories as readonly string[])
        : intsAttr('cats_int64s', categories as readonly number[]);
    const encoded = node(
      e,
      'OneHotEncoder',
      [x],
      tmp(),
      [cats, intAttr('zeros', handleUnknown === 'ignore' ? 1 : 0)],
      ML_DOMAIN,
      // onnxruntime's error on an unknown category names the node: its name names the input.
      oneHotNodeName(input),
    );
    // [b, 1] -> [b, 1, K] -> [b, K]
    if (e.opset >= 13) {
      const axes = e.fresh(`${input}_squeeze_axes`);
      e.initializers.push(int64Tensor(axes, [1]));
      node(e, 'Squeeze', [encoded, axes], out);
    } else {
      node(e, 'Squeeze', [encoded], out, [intsAttr('axes', [1])]);
    }
  }
}

function rawValueInfo(plan: PlannedInput, original: ValueInfo): ValueInfo {
  const originalDims = original.type?.tensorType?.shape?.dim;
  const dims = plan.raw.shape.map((d, i) => {
    if (d >= 0) return { dimValue: d };
    const o = originalDims?.[i];
    return o && o.dimValue == null ? { ...(o.dimParam ? { dimParam: o.dimParam } : {}) } : {};
  });
  return onnx.ValueInfoProto.create({
    name: plan.raw.name,
    ...(original.docString ? { docString: original.docString } : {}),
    type: {
      tensorType: {
        elemType: ELEM_TYPE[plan.raw.datatype],
        ...(originalDims === undefined && plan.raw.shape.length === 0 ? {} : { shape: { dim: dims } }),
      },
    },
  });
}

function ensureMlOpset(model: ModelProto, needsLabelEncoder: boolean): void {
  const entry = model.opsetImport.find((o) => o.domain === ML_DOMAIN);
  const need = needsLabelEncoder ? ML_OPSET : 1;
  if (!entry) {
    model.opsetImport.push(onnx.OperatorSetIdProto.create({ domain: ML_DOMAIN, version: ML_OPSET }));
    return;
  }
  const current = num(entry.version);
  if (current >= need) return;
  const hasOwn = (g: Graph): boolean =>
    (g.node ?? []).some(
      (n) =>
        (n.domain === ML_DOMAIN && n.opType === 'LabelEncoder') ||
        (n.attribute ?? []).some((a) => (a.g && hasOwn(a.g)) || (a.graphs ?? []).some(hasOwn)),
    );
  if (model.graph && hasOwn(model.graph)) {
    throw bad(
      `stringToIndex needs ${ML_DOMAIN} opset ${ML_OPSET}; the model imports ${current} and has LabelEncoder nodes of that version`,
    );
  }
  entry.version = ML_OPSET;
}

/**
 * The inputs of an ONNX model's graph as a signature (initializers listed as inputs excluded; inputs of a type
 * the service does not speak left out). What {@link applyPreprocess} plans against.
 */
export function graphSignature(model: Uint8Array): ModelSignature {
  const decoded = decode(model);
  return { inputs: [...graphInputs(decoded).values()].map((i) => i.spec), outputs: [] };
}

function decode(model: Uint8Array): ModelProto {
  try {
    return decodeModel(model);
  } catch (e) {
    throw new UnprocessableModelError('the artifact is not an ONNX model', { cause: e });
  }
}

/**
 * Returns a model that takes the raw inputs of `spec` (validated by `parsePreprocessSpec`): the steps compiled
 * into nodes in front of the graph, each preprocessed input keeping its name. 400 `INVALID_PREPROCESS` when the
 * declaration does not fit the model (`planPreprocess`), when a preprocessed input is also a graph output, or the
 * model's opset is older than {@link PREPROCESS_MIN_OPSET}; 422 when the bytes are no ONNX model.
 */
export function applyPreprocess(model: Uint8Array, spec: PreprocessSpec): Uint8Array {
  const decoded = decode(model);
  const inputs = graphInputs(decoded);
  const plans = planPreprocess(spec, { inputs: [...inputs.values()].map((i) => i.spec), outputs: [] });
  const graph = decoded.graph!;
  const opset = defaultOpset(decoded) ?? 1;
  if (opset < PREPROCESS_MIN_OPSET) {
    throw bad(`needs the model's ONNX opset to be ${PREPROCESS_MIN_OPSET} or later; it is ${opset}`);
  }
  const e: Emitter = {
    nodes: [],
    initializers: [],
    fresh: uniqueNamer(decoded),
    opset,
    usesMl: false,
    usesLabelEncoder: false,
  };
  for (const plan of plans) {
    const name = plan.raw.name;
    if ((graph.output ?? []).some((o) => o.name === name)) {
      throw bad(`of '${name}': the input is also a graph output, which cannot be preprocessed`);
    }
    const internal = e.fresh(`${name}_preprocessed`);
    renameReads(graph, name, internal);
    let x = name;
    plan.steps.forEach((step, i) => {
      const last = i === plan.steps.length - 1 && plan.castTo === undefined;
      const out = last ? internal : e.fresh(`${name}_step${i + 1}`);
      emitStep(e, name, step, x, out);
      x = out;
    });
    if (plan.castTo !== undefined) node(e, 'Cast', [x], internal, [intAttr('to', ELEM_TYPE[plan.castTo])]);
    const original = inputs.get(name)!.info;
    graph.input = (graph.input ?? []).map((v) => (v === original ? rawValueInfo(plan, original) : v));
  }
  // Before the new nodes join the graph: only the model's own LabelEncoders decide whether the import may rise.
  if (e.usesMl) ensureMlOpset(decoded, e.usesLabelEncoder);
  graph.node = [...e.nodes, ...(graph.node ?? [])];
  graph.initializer = [...(graph.initializer ?? []), ...e.initializers];
  return encodeModel(decoded);
}

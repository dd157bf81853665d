/**
 * Optional per-version post-processing (declared at registration), returned as extra named outputs.
 * Everything works on the last axis of the source output (the class axis); leading axes are rows.
 *
 * | declared            | extra outputs                                                          |
 * |---------------------|------------------------------------------------------------------------|
 * | `softmax: true`     | `softmax` FP32, same shape as the source                               |
 * | `argmax: true`      | `argmax` INT64, source shape without the last axis                     |
 * | `topK: k`           | `topk_indices` INT64 and `topk_scores` FP32, last axis k (best first); |
 * |                     | k may not exceed a fixed class count, and is clamped to a dynamic one  |
 * | `labels` (version)  | `label` BYTES (name of the argmax class; implies argmax) and, with     |
 * |                     | `topK`, `topk_labels` BYTES                                            |
 *
 * `topk_scores` are softmax probabilities when `softmax` is declared, raw source values otherwise.
 * Pure.
 */
import { fromHalfBits, type Tensor } from './tensor';
import type { ModelSignature, PostprocessSpec, TensorSpec } from './types';

export const POSTPROCESS_OUTPUTS = {
  softmax: 'softmax',
  argmax: 'argmax',
  topkIndices: 'topk_indices',
  topkScores: 'topk_scores',
  label: 'label',
  topkLabels: 'topk_labels',
} as const;

const NUMERIC_SOURCE = new Set([
  'FP16',
  'FP32',
  'FP64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
]);

/** The names of the extra outputs a version's post-processing produces, in a stable order. */
export function postprocessOutputNames(
  spec: PostprocessSpec | undefined,
  labels?: readonly string[],
): string[] {
  const names: string[] = [];
  const hasLabels = labels !== undefined && labels.length > 0;
  if (spec?.softmax) names.push(POSTPROCESS_OUTPUTS.softmax);
  if (spec?.argmax) names.push(POSTPROCESS_OUTPUTS.argmax);
  if (hasLabels) names.push(POSTPROCESS_OUTPUTS.label);
  if (spec?.topK !== undefined) {
    names.push(POSTPROCESS_OUTPUTS.topkIndices, POSTPROCESS_OUTPUTS.topkScores);
    if (hasLabels) names.push(POSTPROCESS_OUTPUTS.topkLabels);
  }
  return names;
}

/** The model output post-processing reads: `spec.output`, else the model's first output. */
export function postprocessSource(
  spec: PostprocessSpec | undefined,
  signature: ModelSignature,
): string | undefined {
  return spec?.output ?? signature.outputs[0]?.name;
}

/**
 * Returns why a post-processing declaration cannot work with `signature` (undefined when it can). The
 * registry calls this at registration so that predict never meets an impossible declaration.
 */
export function checkPostprocess(
  spec: PostprocessSpec | undefined,
  labels: readonly string[] | undefined,
  signature: ModelSignature,
): string | undefined {
  const names = postprocessOutputNames(spec, labels);
  if (names.length === 0) return undefined;
  const source = postprocessSource(spec, signature);
  const out = signature.outputs.find((o) => o.name === source);
  if (!out) return `post-processing reads output '${source}', which the model does not have`;
  if (!NUMERIC_SOURCE.has(out.datatype)) {
    return `post-processing needs a numeric output; '${out.name}' is ${out.datatype}`;
  }
  if (spec?.topK !== undefined && !(Number.isInteger(spec.topK) && spec.topK >= 1)) {
    return `topK must be a positive integer, got ${spec.topK}`;
  }
  const clash = names.find((n) => signature.outputs.some((o) => o.name === n));
  if (clash) return `the model already has an output named '${clash}'; post-processing cannot add it`;
  // Where the class count is fixed, topK cannot exceed it: the metadata would advertise a width (k) that no
  // answer has (topK() clamps to the classes). Where it is dynamic, the clamp applies and the width is -1.
  const fixedClasses = classCount(out);
  if (spec?.topK !== undefined && fixedClasses !== undefined && spec.topK > fixedClasses) {
    return `topK ${spec.topK} exceeds the ${fixedClasses} class${fixedClasses === 1 ? '' : 'es'} of output '${out.name}' (its last dimension); give a topK of at most ${fixedClasses}`;
  }
  // One name per class: where the class count is fixed (the last dimension), a list of another length is a mistake
  // (classes without a name would be answered as their index, names without a class never).
  if (
    labels !== undefined &&
    labels.length > 0 &&
    fixedClasses !== undefined &&
    fixedClasses > 0 &&
    labels.length !== fixedClasses
  ) {
    return `labels lists ${labels.length} name(s), but output '${out.name}' has ${fixedClasses} classes (its last dimension); give one label per class`;
  }
  return undefined;
}

/**
 * The number of classes of a source output when its signature fixes it (its last dimension), undefined when that
 * dimension is dynamic (-1) or the output's rank is unknown (shape `[]`, "any rank").
 */
function classCount(source: TensorSpec): number | undefined {
  const last = source.shape.length > 0 ? source.shape[source.shape.length - 1]! : -1;
  return last >= 0 ? last : undefined;
}

function toFloat64(t: Tensor): Float64Array {
  const d = t.data;
  if (d instanceof Float64Array) return d;
  if (t.datatype === 'FP16') return Float64Array.from(d as Uint16Array, fromHalfBits);
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float64Array.from(d, Number);
  if (Array.isArray(d)) throw new Error(`post-processing needs a numeric output, got ${t.datatype}`);
  return Float64Array.from(d as ArrayLike<number>);
}

function rowsOf(shape: readonly number[]): { rows: number; classes: number; rowShape: number[] } {
  const classes = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  const rowShape = shape.slice(0, -1);
  const rows = rowShape.reduce((a, b) => a * b, 1);
  return { rows, classes, rowShape };
}

/** Softmax over the last axis (numerically stable). */
export function softmax(source: Tensor): Tensor {
  const x = toFloat64(source);
  const { rows, classes } = rowsOf(source.shape);
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < classes; c++) max = Math.max(max, x[base + c]!);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(x[base + c]! - max);
    for (let c = 0; c < classes; c++) out[base + c] = Math.exp(x[base + c]! - max) / sum;
  }
  return { datatype: 'FP32', shape: [...source.shape], data: out };
}

/** Index of the largest value along the last axis (first one on ties). */
export function argmax(source: Tensor): Tensor {
  const x = toFloat64(source);
  const { rows, classes, rowShape } = rowsOf(source.shape);
  const out = new BigInt64Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    let best = 0;
    for (let c = 1; c < classes; c++) if (x[base + c]! > x[base + best]!) best = c;
    out[r] = BigInt(best);
  }
  return { datatype: 'INT64', shape: rowShape, data: out };
}

/** The k largest values along the last axis, best first (k is clamped to the axis length). */
export function topK(source: Tensor, k: number): { indices: Tensor; scores: Tensor } {
  const x = toFloat64(source);
  const { rows, classes, rowShape } = rowsOf(source.shape);
  const kk = Math.max(0, Math.min(k, classes));
  const indices = new BigInt64Array(rows * kk);
  const scores = new Float32Array(rows * kk);
  const order = Array.from({ length: classes }, (_, i) => i);
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    order.sort((a, b) => x[base + b]! - x[base + a]! || a - b);
    for (let j = 0; j < kk; j++) {
      const c = order[j]!;
      indices[r * kk + j] = BigInt(c);
      scores[r * kk + j] = x[base + c]!;
    }
    for (let i = 0; i < classes; i++) order[i] = i;
  }
  const shape = [...rowShape, kk];
  return {
    indices: { datatype: 'INT64', shape, data: indices },
    scores: { datatype: 'FP32', shape: [...shape], data: scores },
  };
}

/** Maps class indices to label names (an index without a label becomes its decimal string). */
export function decodeLabels(indices: Tensor, labels: readonly string[]): Tensor {
  const idx = indices.data as BigInt64Array;
  const out: string[] = new Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const n = Number(idx[i]);
    out[i] = labels[n] ?? String(n);
  }
  return { datatype: 'BYTES', shape: [...indices.shape], data: out };
}

/**
 * Computes the extra outputs of a version's post-processing from its source output tensor. Only the names in
 * `wanted` are computed (all when undefined).
 */
export function applyPostprocess(
  spec: PostprocessSpec | undefined,
  labels: readonly string[] | undefined,
  source: Tensor,
  wanted?: ReadonlySet<string>,
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const want = (n: string) => wanted === undefined || wanted.has(n);
  const hasLabels = labels !== undefined && labels.length > 0;
  let probs: Tensor | undefined;
  if (spec?.softmax && (want(POSTPROCESS_OUTPUTS.softmax) || want(POSTPROCESS_OUTPUTS.topkScores))) {
    probs = softmax(source);
    if (want(POSTPROCESS_OUTPUTS.softmax)) out.set(POSTPROCESS_OUTPUTS.softmax, probs);
  }
  const needArgmax =
    (spec?.argmax && want(POSTPROCESS_OUTPUTS.argmax)) || (hasLabels && want(POSTPROCESS_OUTPUTS.label));
  if (needArgmax) {
    const am = argmax(source);
    if (spec?.argmax && want(POSTPROCESS_OUTPUTS.argmax)) out.set(POSTPROCESS_OUTPUTS.argmax, am);
    if (hasLabels && want(POSTPROCESS_OUTPUTS.label))
      out.set(POSTPROCESS_OUTPUTS.label, decodeLabels(am, labels));
  }
  if (spec?.topK !== undefined) {
    const needTop =
      want(POSTPROCESS_OUTPUTS.topkIndices) ||
      want(POSTPROCESS_OUTPUTS.topkScores) ||
      (hasLabels && want(POSTPROCESS_OUTPUTS.topkLabels));
    if (needTop) {
      const { indices, scores } = topK(probs ?? source, spec.topK);
      if (want(POSTPROCESS_OUTPUTS.topkIndices)) out.set(POSTPROCESS_OUTPUTS.topkIndices, indices);
      if (want(POSTPROCESS_OUTPUTS.topkScores)) out.set(POSTPROCESS_OUTPUTS.topkScores, scores);
      if (hasLabels && want(POSTPROCESS_OUTPUTS.topkLabels)) {
        out.set(POSTPROCESS_OUTPUTS.topkLabels, decodeLabels(indices, labels));
      }
    }
  }
  return out;
}

/**
 * OIP metadata of the extra outputs (shapes derived from the source output; -1 = dynamic). The top-k outputs'
 * last axis is k clamped to the class count when that is fixed (registration refuses a larger k), -1 when it is
 * dynamic (the answer's width is then min(k, classes), known only at run time).
 */
export function postprocessOutputSpecs(
  spec: PostprocessSpec | undefined,
  labels: readonly string[] | undefined,
  signature: ModelSignature,
): TensorSpec[] {
  const names = postprocessOutputNames(spec, labels);
  const source = signature.outputs.find((o) => o.name === postprocessSource(spec, signature));
  if (names.length === 0 || !source) return [];
  const full = [...source.shape];
  const rows = full.slice(0, -1);
  const classes = classCount(source);
  const k = classes === undefined ? -1 : Math.min(spec?.topK ?? 0, classes);
  // A source of any rank (`[]`) gives top-k outputs of any rank too, like the others derived from it.
  const topShape = full.length === 0 ? [] : [...rows, k];
  const specOf = (name: string): TensorSpec => {
    switch (name) {
      case POSTPROCESS_OUTPUTS.softmax:
        return { name, datatype: 'FP32', shape: full };
      case POSTPROCESS_OUTPUTS.argmax:
        return { name, datatype: 'INT64', shape: rows };
      case POSTPROCESS_OUTPUTS.label:
        return { name, datatype: 'BYTES', shape: rows };
      case POSTPROCESS_OUTPUTS.topkIndices:
        return { name, datatype: 'INT64', shape: topShape };
      case POSTPROCESS_OUTPUTS.topkScores:
        return { name, datatype: 'FP32', shape: [...topShape] };
      default:
        return { name, datatype: 'BYTES', shape: [...topShape] };
    }
  };
  return names.map(specOf);
}

/**
 * Every output a caller of the version can receive, as OIP metadata: the model's own outputs, then those of its
 * post-processing (the version's `outputs` metadata, and the names a request may ask for).
 */
export function servedOutputSpecs(
  spec: PostprocessSpec | undefined,
  labels: readonly string[] | undefined,
  signature: ModelSignature,
): TensorSpec[] {
  return [...signature.outputs, ...postprocessOutputSpecs(spec, labels, signature)];
}

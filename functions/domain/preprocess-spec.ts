/**
 * Declared pre-processing (pure): what a version does to raw features before its graph sees them. The
 * declaration is per model input, one step or a list of steps applied in order:
 *
 * ```json
 * { "features": [{ "fillMissing": { "value": 0 } }, { "normalize": { "mean": [5.8, 3.0], "std": [0.8, 0.4] } }],
 *   "color":    { "oneHot": { "categories": ["red", "green", "blue"], "handleUnknown": "ignore" } },
 *   "tokens":   { "stringToIndex": { "vocabulary": ["the", "cat"], "oov": 2 } } }
 * ```
 *
 * | step            | takes                    | gives                  | computes                                        |
 * |-----------------|--------------------------|------------------------|-------------------------------------------------|
 * | `normalize`     | FP32/FP64                | same                   | `(x - mean) / std` (scalars or per last axis)   |
 * | `minmax`        | FP32/FP64                | same                   | `(x - min) / (max - min)`; not clipped          |
 * | `fillMissing`   | FP32/FP64                | same                   | NaN → `value`                                   |
 * | `clip`          | FP32/FP64                | same                   | `min(max(x, min), max)`                         |
 * | `stringToIndex` | BYTES                    | INT64, same shape      | position in `vocabulary`, else `oov`            |
 * | `oneHot`        | BYTES or INT64 `[b, 1]`  | FP32 `[b, K]`          | K = number of categories                        |
 *
 * The raw input keeps the input's name; its datatype is BYTES when the first step is `stringToIndex` or a
 * `oneHot` over string categories, INT64 for a first `oneHot` over integer categories, else the input's own
 * float type. When the last step's type differs from what the graph expects (INT64 indices for an FP32 input,
 * FP32 one-hot for an FP64 input), a cast is added. `oneHot` with `handleUnknown: 'error'` fails the inference on
 * a category it does not know (the service answers 400); `'ignore'` gives an all-zeros row.
 *
 * {@link parsePreprocessSpec} checks a declaration on its own, {@link planPreprocess} against a model's inputs
 * (both 400 `INVALID_PREPROCESS`), and {@link preprocessRawInputs} gives the inputs a preprocessed version
 * accepts (for its model metadata). No onnxruntime, no ONNX: the graph is built by functions/transforms/preprocess.
 */
import { LIMITS } from '../contract/limits';
import { BadRequestError } from './errors';
import { hasLoneSurrogate, quoted } from './names';
import { nestsDeeperThan } from './nesting';
import { isStorableNumber, STORABLE_NUMBER } from './stored-numbers';
import type { Datatype, ModelSignature, TensorSpec } from './types';

/** Machine code of a refused declaration (every error of parsing and planning). */
export const INVALID_PREPROCESS = 'INVALID_PREPROCESS';

/** Machine code of an inference refused for a category that a `oneHot` with `handleUnknown: 'error'` does not know. */
export const UNKNOWN_CATEGORY = 'UNKNOWN_CATEGORY';

/** Bounds of a declaration. */
export const PREPROCESS_LIMITS = {
  /** Entries of a `oneHot` category list or a `stringToIndex` vocabulary (4 096 short ones fit `maxBytes`). */
  maxCategories: 4_096,
  /** Characters of one category or vocabulary entry. */
  maxCategoryLength: 1024,
  /** Values of a per-feature parameter (`mean`, `std`, `min`, `max`). */
  maxFeatures: 10_000,
  /** Steps declared for one input. */
  maxSteps: 16,
  /** Inputs one declaration may name. */
  maxInputs: 64,
  /** Characters of an input name. */
  maxInputNameLength: 256,
  /**
   * Serialized size of a whole declaration. It is stored twice in the version's DynamoDB item (its `transforms`,
   * and its signature's input `parameters`, which model metadata lists), next to labels of up to
   * `LIMITS.maxLabelsBytes` (300 KB), tags and description, and an item holds at most 400 KB: 2 × 32 KiB leaves
   * room for the rest.
   */
  maxBytes: 32 * 1024,
} as const;

/** A number, or one number per position of the last axis. */
export type PerFeature = number | readonly number[];

/** `(x - mean) / std`; every `std` > 0. */
export interface NormalizeStep {
  readonly normalize: { readonly mean: PerFeature; readonly std: PerFeature };
}
/** `(x - min) / (max - min)`; every `max` > its `min`. Values outside `[min, max]` map outside `[0, 1]`. */
export interface MinMaxStep {
  readonly minmax: { readonly min: PerFeature; readonly max: PerFeature };
}
/** One column (`[batch, 1]`) of categories → `[batch, K]` FP32 indicators. */
export interface OneHotStep {
  readonly oneHot: {
    readonly categories: readonly string[] | readonly number[];
    /** `error` (default): an unknown category fails the request (400); `ignore`: an all-zeros row. */
    readonly handleUnknown: 'error' | 'ignore';
  };
}
/** Strings → INT64 positions in `vocabulary`; a string not in it → `oov`. */
export interface StringToIndexStep {
  readonly stringToIndex: { readonly vocabulary: readonly string[]; readonly oov: number };
}
/** NaN → `value`. */
export interface FillMissingStep {
  readonly fillMissing: { readonly value: number };
}
/** Bounds values to `[min, max]` (either may be left out). */
export interface ClipStep {
  readonly clip: { readonly min?: PerFeature; readonly max?: PerFeature };
}

export type PreprocessStep =
  | NormalizeStep
  | MinMaxStep
  | OneHotStep
  | StringToIndexStep
  | FillMissingStep
  | ClipStep;

/** The name of a step's kind (its only key). */
export type PreprocessStepKind = 'normalize' | 'minmax' | 'oneHot' | 'stringToIndex' | 'fillMissing' | 'clip';

const STEP_KINDS: readonly PreprocessStepKind[] = [
  'normalize',
  'minmax',
  'oneHot',
  'stringToIndex',
  'fillMissing',
  'clip',
];

/** A validated declaration: every input maps to a non-empty list of steps (a single step is listed). */
export type PreprocessSpec = Readonly<Record<string, readonly PreprocessStep[]>>;

/** The kind of a validated step. */
export function stepKind(step: PreprocessStep): PreprocessStepKind {
  return Object.keys(step)[0] as PreprocessStepKind;
}

const bad = (why: string) => new BadRequestError(`preprocess ${why}`, INVALID_PREPROCESS);

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

function fields(
  where: string,
  value: unknown,
  allowed: readonly string[],
  required: readonly string[],
): Record<string, unknown> {
  if (!isRecord(value)) throw bad(`${where} must be an object {${allowed.join(', ')}}`);
  const unknown = Object.keys(value).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw bad(`${where} has unknown field(s): ${unknown.map((k) => quoted(k, 40)).join(', ')}`);
  }
  const missing = required.filter((k) => value[k] === undefined);
  if (missing.length > 0) throw bad(`${where} needs ${missing.join(', ')}`);
  return value;
}

function finite(where: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${where} must be a finite number`);
  if (!isStorableNumber(v)) throw bad(`${where} is ${v}; it must be ${STORABLE_NUMBER}`);
  return v;
}

function perFeature(where: string, v: unknown): PerFeature {
  if (!Array.isArray(v)) return finite(where, v);
  if (v.length === 0 || v.length > PREPROCESS_LIMITS.maxFeatures) {
    throw bad(`${where} must be a number or 1 to ${PREPROCESS_LIMITS.maxFeatures} numbers`);
  }
  return v.map((x, i) => finite(`${where}[${i}]`, x));
}

/** The values of a per-feature parameter as a list (a number is a list of one). */
export function featureValues(p: PerFeature): readonly number[] {
  return typeof p === 'number' ? [p] : p;
}

/** Length of two per-feature parameters broadcast together; throws when both are lists of different lengths. */
function pairLength(where: string, a: PerFeature, b: PerFeature, names: [string, string]): number {
  const la = featureValues(a).length;
  const lb = featureValues(b).length;
  if (la > 1 && lb > 1 && la !== lb) {
    throw bad(
      `${where}: ${names[0]} has ${la} values and ${names[1]} ${lb}; give as many, or a single number`,
    );
  }
  return Math.max(la, lb);
}

/** Pairs the values of two per-feature parameters (broadcast to their common length). */
export function pairValues(a: PerFeature, b: PerFeature): [number, number][] {
  const va = featureValues(a);
  const vb = featureValues(b);
  const n = Math.max(va.length, vb.length);
  return Array.from({ length: n }, (_, i) => [va[va.length === 1 ? 0 : i]!, vb[vb.length === 1 ? 0 : i]!]);
}

function categoryList(where: string, v: unknown, what: string, numbersToo: boolean): string[] | number[] {
  const max = PREPROCESS_LIMITS.maxCategories;
  if (!Array.isArray(v) || v.length === 0 || v.length > max) {
    throw bad(`${where} must list 1 to ${max} ${what}`);
  }
  const strings = v.every((c) => typeof c === 'string');
  const ints = numbersToo && v.every((c) => typeof c === 'number' && Number.isSafeInteger(c));
  if (!strings && !ints) {
    throw bad(
      numbersToo
        ? `${where} must be all strings or all integers`
        : `${where} must be strings (${what} of a BYTES input)`,
    );
  }
  if (strings) {
    const long = (v as string[]).findIndex((c) => c.length > PREPROCESS_LIMITS.maxCategoryLength);
    if (long >= 0) {
      throw bad(`${where}[${long}] is longer than ${PREPROCESS_LIMITS.maxCategoryLength} characters`);
    }
    // Compiled into the model as UTF-8, a lone surrogate would become U+FFFD: an entry no request could reach.
    const lone = (v as string[]).findIndex(hasLoneSurrogate);
    if (lone >= 0) {
      throw bad(`${where}[${lone}] is not well-formed text (a lone UTF-16 surrogate has no UTF-8 form)`);
    }
  }
  const seen = new Set<string | number>();
  for (const c of v as (string | number)[]) {
    if (seen.has(c)) throw bad(`${where} lists '${quoted(String(c), 40)}' twice`);
    seen.add(c);
  }
  return v as string[] | number[];
}

function parseStep(where: string, raw: unknown): PreprocessStep {
  if (!isRecord(raw) || Object.keys(raw).length !== 1) {
    throw bad(`${where} must be an object with one of: ${STEP_KINDS.join(', ')}`);
  }
  const kind = Object.keys(raw)[0]!;
  const body = raw[kind];
  const at = `${where} (${quoted(kind, 40)})`;
  switch (kind) {
    case 'normalize': {
      const f = fields(at, body, ['mean', 'std'], ['mean', 'std']);
      const mean = perFeature(`${at} mean`, f.mean);
      const std = perFeature(`${at} std`, f.std);
      pairLength(at, mean, std, ['mean', 'std']);
      if (featureValues(std).some((s) => !(s > 0))) throw bad(`${at}: every std must be > 0`);
      return { normalize: { mean, std } };
    }
    case 'minmax': {
      const f = fields(at, body, ['min', 'max'], ['min', 'max']);
      const min = perFeature(`${at} min`, f.min);
      const max = perFeature(`${at} max`, f.max);
      pairLength(at, min, max, ['min', 'max']);
      if (pairValues(min, max).some(([lo, hi]) => !(hi > lo)))
        throw bad(`${at}: every max must be > its min`);
      return { minmax: { min, max } };
    }
    case 'clip': {
      const f = fields(at, body, ['min', 'max'], []);
      if (f.min === undefined && f.max === undefined) throw bad(`${at} needs min, max or both`);
      const min = f.min === undefined ? undefined : perFeature(`${at} min`, f.min);
      const max = f.max === undefined ? undefined : perFeature(`${at} max`, f.max);
      if (min !== undefined && max !== undefined) {
        pairLength(at, min, max, ['min', 'max']);
        if (pairValues(min, max).some(([lo, hi]) => lo > hi))
          throw bad(`${at}: every min must be <= its max`);
      }
      return { clip: { ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}) } };
    }
    case 'fillMissing': {
      const f = fields(at, body, ['value'], ['value']);
      return { fillMissing: { value: finite(`${at} value`, f.value) } };
    }
    case 'oneHot': {
      const f = fields(at, body, ['categories', 'handleUnknown'], ['categories']);
      const categories = categoryList(`${at} categories`, f.categories, 'categories', true);
      const handleUnknown = f.handleUnknown ?? 'error';
      if (handleUnknown !== 'error' && handleUnknown !== 'ignore') {
        throw bad(`${at} handleUnknown must be 'error' or 'ignore'`);
      }
      return { oneHot: { categories, handleUnknown } };
    }
    case 'stringToIndex': {
      const f = fields(at, body, ['vocabulary', 'oov'], ['vocabulary', 'oov']);
      const vocabulary = categoryList(`${at} vocabulary`, f.vocabulary, 'strings', false) as string[];
      if (typeof f.oov !== 'number' || !Number.isSafeInteger(f.oov))
        throw bad(`${at} oov must be an integer`);
      return { stringToIndex: { vocabulary, oov: f.oov } };
    }
    default:
      throw bad(`${where}: unknown step '${quoted(kind, 40)}'; use one of: ${STEP_KINDS.join(', ')}`);
  }
}

/** UTF-8 bytes of a declaration as JSON: what `PREPROCESS_LIMITS.maxBytes` bounds. */
const serializedBytes = (v: unknown): number => new TextEncoder().encode(JSON.stringify(v)).length;

/**
 * Validates a declaration from a request body: `{ [inputName]: step | step[] }`. 400 `INVALID_PREPROCESS` with
 * the input, step number and field at fault. Whether it fits a model is {@link planPreprocess}'s concern.
 */

export function parsePreprocessSpec(value: unknown): PreprocessSpec {
  if (!isRecord(value)) throw bad('must be an object mapping input names to a step or a list of steps');
  const names = Object.keys(value);
  if (names.length === 0) throw bad('names no input');
  if (names.length > PREPROCESS_LIMITS.maxInputs) {
    throw bad(`names ${names.length} inputs; at most ${PREPROCESS_LIMITS.maxInputs} are allowed`);
  }
  if (nestsDeeperThan(value, LIMITS.maxNesting)) throw bad(`nests deeper than ${LIMITS.maxNesting} levels`);
  const size = serializedBytes(value);
  if (size > PREPROCESS_LIMITS.maxBytes) {
    throw bad(`is ${size} bytes serialized; at most ${PREPROCESS_LIMITS.maxBytes} are allowed`);
  }
  const out: Record<string, PreprocessStep[]> = {};
  for (const name of names) {
    if (name.length === 0 || name.length > PREPROCESS_LIMITS.maxInputNameLength) {
      throw bad(
        `input name '${quoted(name, 40)}' must have 1 to ${PREPROCESS_LIMITS.maxInputNameLength} characters`,
      );
    }
    // As a key of the object the declaration becomes, it would set that object's prototype and vanish.
    if (name === '__proto__') throw bad(`input name '__proto__' is not allowed`);
    const raw = value[name];
    const list = Array.isArray(raw) ? raw : [raw];
    if (list.length === 0 || list.length > PREPROCESS_LIMITS.maxSteps) {
      throw bad(`of '${quoted(name, 40)}' must have 1 to ${PREPROCESS_LIMITS.maxSteps} steps`);
    }
    out[name] = list.map((s, i) => parseStep(`of '${quoted(name, 40)}' step ${i + 1}`, s));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Fitting a declaration to a model's inputs

const FLOATS: ReadonlySet<Datatype> = new Set(['FP32', 'FP64']);

/** One step with the datatype and shape of the value it reads and of the value it gives (-1: dynamic). */
export interface PlannedStep {
  readonly step: PreprocessStep;
  readonly inType: Datatype;
  readonly outType: Datatype;
  readonly inShape: readonly number[];
  readonly outShape: readonly number[];
}

/** How one input is preprocessed: its raw form, the steps, and the cast (if any) to the graph's datatype. */
export interface PlannedInput {
  /** What callers send (same name as the graph input). */
  readonly raw: TensorSpec;
  /** What the graph expects. */
  readonly target: TensorSpec;
  readonly steps: readonly PlannedStep[];
  /** Set when the last step's datatype differs from the target's: a Cast to it ends the steps. */
  readonly castTo?: Datatype;
}

function rawTypeOf(first: PreprocessStep, target: TensorSpec): Datatype {
  if ('stringToIndex' in first) return 'BYTES';
  if ('oneHot' in first) return typeof first.oneHot.categories[0] === 'string' ? 'BYTES' : 'INT64';
  return FLOATS.has(target.datatype) ? target.datatype : 'FP32';
}

function outTypeOf(where: string, step: PreprocessStep, t: Datatype): Datatype {
  const kind = stepKind(step);
  if ('stringToIndex' in step) {
    if (t !== 'BYTES') throw bad(`${where} (stringToIndex) needs strings (BYTES), but gets ${t}`);
    return 'INT64';
  }
  if ('oneHot' in step) {
    const strings = typeof step.oneHot.categories[0] === 'string';
    if (strings && t !== 'BYTES') {
      throw bad(`${where} (oneHot) has string categories, but gets ${t}; use integer categories`);
    }
    if (!strings && !(t === 'INT64' || FLOATS.has(t))) {
      throw bad(`${where} (oneHot) has integer categories, but gets ${t}; use string categories`);
    }
    return 'FP32';
  }
  if (!FLOATS.has(t)) throw bad(`${where} (${kind}) needs FP32 or FP64 values, but gets ${t}`);
  return t;
}

/**
 * A step on FP32 values has its constants written as FP32 (the graph's own type): a `std` or a `minmax` range that
 * is > 0 as a double but rounds to 0 as FP32 would divide by zero, answering NaN for every row.
 */
function checkFp32Constants(where: string, step: PreprocessStep): void {
  if ('normalize' in step) {
    const s = featureValues(step.normalize.std).find((d) => !(Math.fround(d) > 0));
    if (s !== undefined)
      throw bad(`${where} (normalize): std ${s} is 0 as FP32, the input's type; use a larger std`);
  }
  if ('minmax' in step) {
    const p = pairValues(step.minmax.min, step.minmax.max).find(([lo, hi]) => !(Math.fround(hi - lo) > 0));
    if (p !== undefined) {
      throw bad(
        `${where} (minmax): the range ${p[0]} to ${p[1]} is 0 as FP32, the input's type; use a wider range`,
      );
    }
  }
}

function checkFeatures(where: string, shape: number[], n: number): void {
  if (n <= 1) return;
  if (shape.length === 0) throw bad(`${where} has ${n} values per feature, but the input is a scalar`);
  const last = shape.length - 1;
  if (shape[last] === -1) shape[last] = n;
  else if (shape[last] !== n) {
    throw bad(`${where} has ${n} values per feature, but the input's last axis has ${shape[last]}`);
  }
}

function featureCount(step: PreprocessStep): number {
  if ('normalize' in step) return pairValues(step.normalize.mean, step.normalize.std).length;
  if ('minmax' in step) return pairValues(step.minmax.min, step.minmax.max).length;
  if ('clip' in step) {
    return Math.max(featureValues(step.clip.min ?? 0).length, featureValues(step.clip.max ?? 0).length);
  }
  return 1;
}

function planInput(name: string, steps: readonly PreprocessStep[], target: TensorSpec): PlannedInput {
  const where = (i: number) => `of '${quoted(name, 40)}' step ${i + 1}`;
  // Datatypes flow forward from the raw input.
  const types: Datatype[] = [rawTypeOf(steps[0]!, target)];
  steps.forEach((s, i) => {
    types.push(outTypeOf(where(i), s, types[i]!));
    if (types[i] === 'FP32') checkFp32Constants(where(i), s);
  });
  const last = types[types.length - 1]!;
  let castTo: Datatype | undefined;
  if (last !== target.datatype) {
    if (last === 'BYTES' || target.datatype === 'BYTES') {
      throw bad(`of '${quoted(name, 40)}' gives ${last}, but the input is ${target.datatype}`);
    }
    castTo = target.datatype;
  }
  // Shapes flow backward from what the graph expects (only oneHot changes a shape).
  const shapes: number[][] = new Array(steps.length + 1);
  shapes[steps.length] = [...target.shape];
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i]!;
    const out = shapes[i + 1]!;
    if ('oneHot' in s) {
      const k = s.oneHot.categories.length;
      if (out.length !== 2) {
        throw bad(`${where(i)} (oneHot) gives [batch, ${k}], but the input has shape [${out.join(', ')}]`);
      }
      if (out[1] === -1) out[1] = k;
      else if (out[1] !== k) {
        throw bad(`${where(i)} (oneHot) gives ${k} columns, but the input's last axis has ${out[1]}`);
      }
      shapes[i] = [out[0]!, 1];
    } else {
      // Same array: a dimension a step fixes (its per-feature length) is fixed for the values before it too.
      checkFeatures(`${where(i)} (${stepKind(s)})`, out, featureCount(s));
      shapes[i] = out;
    }
  }
  return {
    raw: { name, datatype: types[0]!, shape: shapes[0]! },
    target,
    steps: steps.map((step, i) => ({
      step,
      inType: types[i]!,
      outType: types[i + 1]!,
      inShape: shapes[i]!,
      outShape: shapes[i + 1]!,
    })),
    ...(castTo !== undefined ? { castTo } : {}),
  };
}

/**
 * Fits a validated declaration to the inputs of a model: every named input must exist, the steps' datatypes
 * must chain, and per-feature parameters and one-hot widths must match the input's shape. Returns one plan per
 * preprocessed input, in the signature's order; 400 `INVALID_PREPROCESS` otherwise.
 */
export function planPreprocess(spec: PreprocessSpec, signature: ModelSignature): PlannedInput[] {
  const unknown = Object.keys(spec).filter((n) => !signature.inputs.some((i) => i.name === n));
  if (unknown.length > 0) {
    const known = signature.inputs.map((i) => i.name).join(', ');
    throw bad(
      `names ${unknown.map((n) => `'${quoted(n, 40)}'`).join(', ')}, which the model does not have (inputs: ${known})`,
    );
  }
  return signature.inputs
    .filter((i) => spec[i.name] !== undefined)
    .map((i) => planInput(i.name, spec[i.name]!, i));
}

/**
 * The name of the node a `oneHot` step of `input` compiles to (the compiler may suffix it `_n` to keep it unique):
 * onnxruntime's error names the node, so the refusal of an unknown category can name the input.
 */
export function oneHotNodeName(input: string): string {
  return `preprocess_oneHot[${input}]`;
}

const UNKNOWN_CATEGORY_MESSAGE = /Unknown Category and zeros = 0/;
const ONE_HOT_NODE = /Name:'preprocess_oneHot\[(.*)\](?:_\d+)?' Status Message/s;

/**
 * The 400 `UNKNOWN_CATEGORY` of an inference that onnxruntime failed (`message`) because a `oneHot` step declared
 * with `handleUnknown: 'error'` met a category it does not know, naming the input when the message names its node;
 * undefined for any other failure.
 */
export function unknownCategoryRefusal(message: string): BadRequestError | undefined {
  if (!UNKNOWN_CATEGORY_MESSAGE.test(message)) return undefined;
  const input = ONE_HOT_NODE.exec(message)?.[1];
  const which = input !== undefined ? `input '${quoted(input, 40)}'` : 'an input';
  return new BadRequestError(
    `${which} has a category its oneHot pre-processing does not know (handleUnknown: 'error'): send one of its declared categories`,
    UNKNOWN_CATEGORY,
  );
}

/**
 * Refuses (400 `INVALID_PREPROCESS`) a declaration that, stacked on the pre-processing a version already has (its
 * inputs' `parameters.preprocess`, which a derived version keeps and extends), would be more than
 * `PREPROCESS_LIMITS.maxBytes` serialized: the stacked declaration is what the new version's item stores, and past
 * that size it may not fit DynamoDB's 400 KB (the derivation would then fail only after its retries).
 */
export function assertStackedPreprocessFits(parent: ModelSignature, declaration: unknown): void {
  const existing = parent.inputs.flatMap((i) =>
    i.parameters?.preprocess === undefined ? [] : [[i.name, i.parameters.preprocess]],
  );
  if (existing.length === 0) return;
  const size = serializedBytes(Object.fromEntries(existing)) + serializedBytes(declaration);
  if (size > PREPROCESS_LIMITS.maxBytes) {
    throw bad(
      `stacked on the pre-processing the version already has, is ${size} bytes serialized; at most ${PREPROCESS_LIMITS.maxBytes} are allowed: derive from a version with less pre-processing`,
    );
  }
}

/**
 * `signature` (a preprocessed model's, whose inputs are already the raw ones) with each preprocessed input saying
 * what is applied to it: `parameters: { preprocess: [steps] }`, as the version's model metadata lists it.
 */
export function withPreprocessParameters(signature: ModelSignature, spec: PreprocessSpec): ModelSignature {
  return {
    ...signature,
    inputs: signature.inputs.map((i) =>
      spec[i.name] !== undefined ? { ...i, parameters: { ...i.parameters, preprocess: spec[i.name]! } } : i,
    ),
  };
}

/**
 * The inputs a version with this pre-processing accepts, in the model's order: a preprocessed input is replaced
 * by its raw form (same name), the others are unchanged. This is what the version's model metadata lists.
 */
export function preprocessRawInputs(spec: PreprocessSpec, signature: ModelSignature): TensorSpec[] {
  const plans = new Map(planPreprocess(spec, signature).map((p) => [p.raw.name, p.raw]));
  return signature.inputs.map((i) => plans.get(i.name) ?? i);
}

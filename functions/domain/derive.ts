/**
 * Derived versions (pure): the request of `POST /models/{name}/versions/{v}/derive` (a list of transforms, the
 * accuracy gate's thresholds, an optional validation sample), the work message that completes a derived version,
 * the inputs the gate generates from a signature, and the gate's figures and verdict.
 *
 * The accuracy gate runs the parent and the transformed model on the same rows and compares their outputs:
 * - Rows: the rows of a generated batch (`rows`, default `DERIVE_DEFAULTS.rows`), or every row of the user's sample
 *   (a JSONL of OIP requests) as given.
 * - Generated rows: each numeric input gets zero-centred values (standard normal; integers rounded, unsigned
 *   ones folded to their absolute value, BOOL random 0/1), seeded (`seed`), the first dimension the batch and every
 *   other dynamic dimension 1. A generated row whose parent output is a near-tie (its top-2 gap below
 *   `nearTieMargin` of its range, max − min, on the decision output) is left out and replaced, so `rows` rows that
 *   are not near-ties are compared; a user sample is used as given (no row is left out). The margin is relative so
 *   that one default holds for logits of any scale and for probabilities alike.
 * - Decision outputs: the outputs of rank ≥ 2 whose last dimension is ≥ 2 (class scores, probabilities); the first
 *   one is the one whose top-2 gap decides near-ties.
 * - `argmaxAgreement`: the lowest share of agreeing rows over the decision outputs (1 without any); per output
 *   `maxAbsDiff` (the largest |parent − child| over its elements) and `maxRelDiff` (`maxAbsDiff` over the largest
 *   |parent| element of the output: the difference relative to the output's range).
 * - Passed: `argmaxAgreement ≥ minAgreement`, and every output within `maxAbsDiff` / `maxRelDiff` when given. A
 *   model without decision outputs (a regressor) is held to `maxRelDiff`, `DERIVE_DEFAULTS.maxRelDiffWithoutArgmax`
 *   unless given. Generated rows pass only when enough of them were compared (`minComparedRows`): a gate that
 *   found near-ties almost everywhere has compared too few rows to say anything.
 * - Bounds: `maxRelDiff` at most 1 (a derived model answering zeros is within 1 already) and `nearTieMargin` at
 *   most 0.5 (above it, rows whose runner-up is nearer the lowest score than the winner would be left out: no
 *   near-ties), so that no gate passes anything.
 */
import { z } from 'zod';
import { compareOutput } from './divergence';
import { BadRequestError } from './errors';
import { compileSignature, validateInferenceRequest } from './inference-validation';
import { isModelName, quoted } from './names';
import { INVALID_PREPROCESS, parsePreprocessSpec } from './preprocess-spec';
import { descriptionSchema, refusingProtoKey, tagsSchema } from './registry';
import { isStorableNumber, STORABLE_NUMBER } from './stored-numbers';
import type { Tensor, TensorData } from './tensor';
import type { ModelSignature, TensorSpec } from './types';

/** The documented defaults of the accuracy gate. */
export const DERIVE_DEFAULTS = {
  /** Smallest share of rows whose argmax must agree with the parent's. */
  minAgreement: 0.99,
  /** Rows generated from the signature when no sample is given (near-ties excluded). */
  rows: 1000,
  /**
   * A generated row whose parent top-2 gap (decision output) is below this share of the row's range (max − min) is
   * a near-tie, left out.
   */
  nearTieMargin: 0.02,
  /** The bound on `maxRelDiff` of a model without decision outputs, unless `maxRelDiff` is given. */
  maxRelDiffWithoutArgmax: 0.05,
  /** Seed of the generated inputs. */
  seed: 1,
} as const;

/** Limits of a derive request. */
export const DERIVE_LIMITS = {
  /** Generated rows at most. */
  maxRows: 10_000,
  /** Candidate rows generated at most, per kept row, before the gate gives up finding rows that are not near-ties. */
  candidatesPerRow: 20,
  /** Lines of a sample at most. */
  maxSampleLines: 10_000,
  /** Bytes of a sample at most. */
  maxSampleBytes: 64 * 1024 * 1024,
  /** Rows run in one batch when generated. */
  batchRows: 250,
  /**
   * Largest `maxRelDiff`: a difference as large as the parent's largest |value| (a derived model answering zeros
   * is within 1) bounds nothing.
   */
  maxRelDiff: 1,
  /**
   * Largest `nearTieMargin`: a row whose top-2 gap is at least half its range has its runner-up nearer the lowest
   * score than the winner, which is no near-tie; a larger margin would leave out clear decisions.
   */
  maxNearTieMargin: 0.5,
  /** Share of the generated rows asked for (`rows`) that must be compared for the gate to pass. */
  minComparedShare: 0.5,
  /** Generated rows that must be compared for the gate to pass (all of them when fewer are asked for). */
  minComparedRows: 100,
} as const;

// ---------------------------------------------------------------------------------------------
// Request

const quantizeSchema = z.strictObject({
  quantize: z.literal('int8'),
  /** 7-bit weights (the remedy for u8×s8 saturation on x86 without VNNI); default: the transformer's. */
  reduceRange: z.boolean().optional(),
  /** A scale per output column of each weight instead of one per tensor. */
  perChannel: z.boolean().optional(),
});
const optimizeSchema = z.strictObject({ optimize: z.literal('basic') });
/** The preprocessing declaration; its full check is the transformer's (a refused one ends the version FAILED). */
const preprocessSchema = z.strictObject({
  preprocess: refusingProtoKey(z.record(z.string(), z.unknown()), 'model input name'),
});

/** One transform of a derive request. */
export const transformSchema = z.union([quantizeSchema, optimizeSchema, preprocessSchema]);
export type TransformSpec = z.infer<typeof transformSchema>;
export type QuantizeTransform = z.infer<typeof quantizeSchema>;
export type PreprocessTransform = z.infer<typeof preprocessSchema>;

/** A gate threshold, stored with the version's evaluation: a number the registry can store. */
const threshold = () => z.number().refine(isStorableNumber, { message: `must be ${STORABLE_NUMBER}` });

/** A gate threshold from `min` to `max`, refused with a message that gives the range. */
const bounded = (min: number, max: number) => {
  const range = { message: `must be from ${min} to ${max}` };
  return threshold().min(min, range).max(max, range);
};

/**
 * The gate's thresholds as a request may give them. `maxAbsDiff` has no upper bound: it is in the output's own
 * units, and it only ever adds a condition to the others.
 */
export const gateSchema = z.strictObject({
  minAgreement: bounded(0, 1).optional(),
  maxAbsDiff: threshold().min(0).optional(),
  maxRelDiff: bounded(0, DERIVE_LIMITS.maxRelDiff).optional(),
  rows: z.number().int().min(1).max(DERIVE_LIMITS.maxRows).optional(),
  nearTieMargin: bounded(0, DERIVE_LIMITS.maxNearTieMargin).optional(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
});

/** The gate's thresholds, defaults applied (recorded with the evaluation). */
export interface GateThresholds {
  readonly minAgreement: number;
  readonly maxAbsDiff?: number;
  readonly maxRelDiff?: number;
  readonly rows: number;
  readonly nearTieMargin: number;
  readonly seed: number;
}

/** `POST /models/{name}/versions/{v}/derive`. */
export const deriveBodySchema = z.strictObject({
  transforms: z.array(transformSchema).min(1).max(3),
  description: descriptionSchema.optional(),
  tags: tagsSchema.optional(),
  /** A JSONL of OIP requests uploaded through `POST /models/{name}/uploads`: the gate's rows, as given. */
  sample: z
    .strictObject({
      uploadId: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be 1-64 characters A-Z a-z 0-9 -'),
    })
    .optional(),
  gate: gateSchema.optional(),
});
export type DeriveBody = z.infer<typeof deriveBodySchema>;

/** The kind of a transform (`quantize`, `optimize`, `preprocess`). */
export function transformKind(t: TransformSpec): 'quantize' | 'optimize' | 'preprocess' {
  if ('quantize' in t) return 'quantize';
  if ('optimize' in t) return 'optimize';
  return 'preprocess';
}

/** A transform in a few words (`quantize int8 (per-channel, reduced range)`, `optimize basic`, `preprocess a, b`). */
export function describeTransform(t: TransformSpec): string {
  if ('quantize' in t) {
    const opts = [
      ...(t.perChannel ? ['per-channel'] : []),
      ...(t.reduceRange === true ? ['reduced range'] : t.reduceRange === false ? ['full range'] : []),
    ];
    return `quantize ${t.quantize}${opts.length ? ` (${opts.join(', ')})` : ''}`;
  }
  if ('optimize' in t) return `optimize ${t.optimize}`;
  return `preprocess ${Object.keys(t.preprocess).join(', ')}`;
}

/**
 * Checks a derive request's transforms: each kind at most once, and `preprocess` last (it changes the inputs,
 * so the gate compares the parent with the model before it), 400 `INVALID_TRANSFORMS` otherwise; a `preprocess`
 * must be a declaration (`parsePreprocessSpec`, 400 `INVALID_PREPROCESS`).
 */
export function checkTransforms(transforms: readonly TransformSpec[]): void {
  const kinds = transforms.map(transformKind);
  const twice = kinds.find((k, i) => kinds.indexOf(k) !== i);
  if (twice) throw new BadRequestError(`transform '${twice}' is given more than once`, 'INVALID_TRANSFORMS');
  const at = kinds.indexOf('preprocess');
  if (at >= 0 && at !== kinds.length - 1) {
    throw new BadRequestError('preprocess must be the last transform', 'INVALID_TRANSFORMS');
  }
  // A declaration that is not one is refused now (400 INVALID_PREPROCESS); whether it fits the model, later.
  for (const t of transforms) if ('preprocess' in t) parsePreprocessSpec(t.preprocess);
}

/**
 * Refuses (400 `INVALID_PREPROCESS`) a `preprocess` transform naming an input that `signature` (the parent's) does
 * not have, naming them and the inputs it has: checked before a derived version is written, rather than ending it
 * FAILED. Whether the steps fit the inputs it names is the transformer's check, on the parent's graph.
 */
export function assertPreprocessInputsExist(
  transforms: readonly TransformSpec[],
  signature: ModelSignature,
  label: string,
): void {
  for (const t of transforms) {
    if (!('preprocess' in t)) continue;
    const unknown = Object.keys(t.preprocess).filter((n) => !signature.inputs.some((i) => i.name === n));
    if (unknown.length === 0) continue;
    const known = signature.inputs.map((i) => `'${quoted(i.name, 40)}'`).join(', ');
    throw new BadRequestError(
      `preprocess names ${unknown.map((n) => `'${quoted(n, 40)}'`).join(', ')}, which ${label} does not have (inputs: ${known})`,
      INVALID_PREPROCESS,
    );
  }
}

/** The thresholds of a request with the documented defaults applied. */
export function gateThresholds(gate: DeriveBody['gate'] = {}): GateThresholds {
  return {
    minAgreement: gate.minAgreement ?? DERIVE_DEFAULTS.minAgreement,
    ...(gate.maxAbsDiff !== undefined ? { maxAbsDiff: gate.maxAbsDiff } : {}),
    ...(gate.maxRelDiff !== undefined ? { maxRelDiff: gate.maxRelDiff } : {}),
    rows: gate.rows ?? DERIVE_DEFAULTS.rows,
    nearTieMargin: gate.nearTieMargin ?? DERIVE_DEFAULTS.nearTieMargin,
    seed: gate.seed ?? DERIVE_DEFAULTS.seed,
  };
}

/** Splits transforms into those the gate checks (numeric) and the preprocessing applied after it. */
export function splitTransforms(transforms: readonly TransformSpec[]): {
  gated: TransformSpec[];
  preprocess?: PreprocessTransform;
} {
  const pre = transforms.find((t): t is PreprocessTransform => 'preprocess' in t);
  return { gated: transforms.filter((t) => !('preprocess' in t)), ...(pre ? { preprocess: pre } : {}) };
}

/**
 * Whether the gate can generate rows for `signature`: every input is numeric or BOOL. A model with a BYTES input
 * needs a sample (400 `SAMPLE_REQUIRED`).
 */
export function assertGeneratable(signature: ModelSignature): void {
  const other = signature.inputs.find((i) => i.datatype === 'BYTES' || i.datatype === 'FP16');
  if (other) {
    throw new BadRequestError(
      `input '${other.name}' is ${other.datatype}: the accuracy gate does not generate it; give a sample (a JSONL of OIP requests)`,
      'SAMPLE_REQUIRED',
    );
  }
}

/** One request of a validation sample: its line in the file (from 1) and its inputs. */
export interface SampleRow {
  readonly line: number;
  readonly feeds: Record<string, Tensor>;
}

/**
 * The rows of a validation sample: one OIP request per non-blank line, each checked against the parent's
 * `signature` as the predict path checks a request (400 naming the line otherwise), at most
 * `DERIVE_LIMITS.maxSampleLines`. Each request is one run of the gate, its rows used as given.
 */
export function parseSample(text: string, signature: ModelSignature, label: string): SampleRow[] {
  const sig = compileSignature(signature, label);
  const feeds: SampleRow[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    if (feeds.length >= DERIVE_LIMITS.maxSampleLines) {
      throw new BadRequestError(
        `the sample has more than ${DERIVE_LIMITS.maxSampleLines} requests`,
        'INVALID_SAMPLE',
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(line);
    } catch {
      throw new BadRequestError(`sample line ${i + 1} is not JSON`, 'INVALID_SAMPLE');
    }
    try {
      feeds.push({ line: i + 1, feeds: validateInferenceRequest(body, sig).feeds });
    } catch (e) {
      throw new BadRequestError(`sample line ${i + 1}: ${(e as Error).message}`, 'INVALID_SAMPLE');
    }
  }
  if (feeds.length === 0) throw new BadRequestError('the sample has no request', 'INVALID_SAMPLE');
  return feeds;
}

// ---------------------------------------------------------------------------------------------
// Work message

/** The work message that completes PENDING derived version `version` of `name` (the worker's `runDerive`). */
export const DeriveMessageSchema = z.object({
  type: z.literal('derive'),
  name: z.string().refine(isModelName, 'not a model name'),
  version: z.number().int().min(1),
  /** The gate's thresholds, defaults applied. */
  gate: z.object({
    minAgreement: z.number(),
    maxAbsDiff: z.number().optional(),
    maxRelDiff: z.number().optional(),
    rows: z.number().int(),
    nearTieMargin: z.number(),
    seed: z.number().int(),
  }),
  /** The key of the validation sample in the bucket (absent: rows generated from the signature). */
  sampleKey: z.string().min(1).optional(),
});
export type DeriveMessage = z.output<typeof DeriveMessageSchema>;

// ---------------------------------------------------------------------------------------------
// Evaluation

/** How one output of the derived version differs from the parent's. */
export interface OutputEvaluation {
  readonly name: string;
  /** Share of agreeing rows (decision outputs only). */
  readonly argmaxAgreement?: number;
  readonly maxAbsDiff: number;
  readonly maxRelDiff: number;
}

/** The accuracy gate's figures and verdict, recorded on the derived version as `evaluation`. */
export interface Evaluation {
  /** Rows compared. */
  readonly rows: number;
  /** Where the rows came from: generated from the signature, or the user's sample. */
  readonly source: 'generated' | 'sample';
  /** Generated rows left out as near-ties (0 for a sample). */
  readonly nearTiesExcluded: number;
  /** The lowest agreement over the decision outputs (1 without any). */
  readonly argmaxAgreement: number;
  readonly perOutput: readonly OutputEvaluation[];
  readonly passed: boolean;
  readonly thresholds: GateThresholds;
}

/** Running figures of one output over the batches compared so far. */
interface OutputTally {
  rows: number;
  agreeing: number;
  decision: boolean;
  maxAbsDiff: number;
  maxParentAbs: number;
}

/** Accumulates the figures of the gate over batches of parent and child outputs. */
export class GateTally {
  private readonly outputs = new Map<string, OutputTally>();
  private rowCount = 0;
  private excluded = 0;

  constructor(private readonly source: Evaluation['source']) {}

  /** Rows compared so far (of the decision output; of the first output without one). */
  get rows(): number {
    return this.rowCount;
  }

  /** Counts `n` generated rows left out as near-ties. */
  exclude(n: number): void {
    this.excluded += n;
  }

  /** Adds one batch: the parent's and the child's outputs on the same rows (outputs by name, parent's order). */
  add(parent: Readonly<Record<string, Tensor>>, child: Readonly<Record<string, Tensor>>): void {
    const counted = decisionOutput(parent) ?? Object.keys(parent)[0];
    for (const [name, p] of Object.entries(parent)) {
      const c = child[name];
      const d = compareOutput(
        { name, shape: p.shape, datatype: p.datatype, data: p.data },
        c
          ? { name, shape: c.shape, datatype: c.datatype, data: c.data }
          : { name, shape: [], datatype: p.datatype, data: [] },
      );
      const t = this.outputs.get(name) ?? {
        rows: 0,
        agreeing: 0,
        decision: isDecisionOutput(p.shape),
        maxAbsDiff: 0,
        maxParentAbs: 0,
      };
      t.rows += d.rows;
      t.agreeing += d.agreeingRows ?? 0;
      t.maxAbsDiff = Math.max(t.maxAbsDiff, d.maxAbsDiff);
      t.maxParentAbs = Math.max(t.maxParentAbs, maxAbs(p.data));
      this.outputs.set(name, t);
      if (name === counted) this.rowCount += d.rows;
    }
  }

  /** The figures and the verdict against `thresholds`. */
  evaluate(thresholds: GateThresholds): Evaluation {
    const perOutput: OutputEvaluation[] = [];
    let agreement = 1;
    let anyDecision = false;
    for (const [name, t] of this.outputs) {
      const maxRelDiff = relative(t.maxAbsDiff, t.maxParentAbs);
      const o: OutputEvaluation = {
        name,
        ...(t.decision ? { argmaxAgreement: t.rows > 0 ? t.agreeing / t.rows : 1 } : {}),
        maxAbsDiff: t.maxAbsDiff,
        maxRelDiff,
      };
      if (o.argmaxAgreement !== undefined) {
        anyDecision = true;
        agreement = Math.min(agreement, o.argmaxAgreement);
      }
      perOutput.push(o);
    }
    const maxRel =
      thresholds.maxRelDiff ?? (anyDecision ? undefined : DERIVE_DEFAULTS.maxRelDiffWithoutArgmax);
    const passed =
      this.rowCount > 0 &&
      !tooFewCompared(this.source, this.rowCount, thresholds) &&
      agreement >= thresholds.minAgreement &&
      perOutput.every(
        (o) =>
          (thresholds.maxAbsDiff === undefined || o.maxAbsDiff <= thresholds.maxAbsDiff) &&
          (maxRel === undefined || o.maxRelDiff <= maxRel),
      );
    return {
      rows: this.rowCount,
      source: this.source,
      nearTiesExcluded: this.excluded,
      argmaxAgreement: agreement,
      perOutput,
      passed,
      thresholds,
    };
  }
}

/**
 * Generated rows the gate must compare to pass, of `rows` asked for: at least `DERIVE_LIMITS.minComparedShare` of
 * them and at least `DERIVE_LIMITS.minComparedRows` (all of them when fewer are asked for). With 1 000 rows, 500.
 */
export function minComparedRows(rows: number): number {
  const share = Math.ceil(rows * DERIVE_LIMITS.minComparedShare);
  return Math.min(rows, Math.max(share, DERIVE_LIMITS.minComparedRows));
}

/** Whether a gate compared too few of the rows it generated (a sample's rows are all compared, as given). */
function tooFewCompared(source: Evaluation['source'], compared: number, t: GateThresholds): boolean {
  return source === 'generated' && compared < minComparedRows(t.rows);
}

/** Why an evaluation failed, with its figures (a FAILED version's `failureReason`). */
export function gateFailure(e: Evaluation): string {
  const t = e.thresholds;
  const problems: string[] = [];
  if (e.rows === 0) problems.push('no rows were compared');
  else if (tooFewCompared(e.source, e.rows, t)) {
    problems.push(
      `only ${e.rows} of the ${t.rows} rows asked for were compared (${e.nearTiesExcluded} near-ties left out); at least ${minComparedRows(t.rows)} must be`,
    );
  }
  if (e.argmaxAgreement < t.minAgreement) {
    problems.push(`argmax agreement ${fmt(e.argmaxAgreement)} < ${t.minAgreement}`);
  }
  const anyDecision = e.perOutput.some((o) => o.argmaxAgreement !== undefined);
  const maxRel = t.maxRelDiff ?? (anyDecision ? undefined : DERIVE_DEFAULTS.maxRelDiffWithoutArgmax);
  for (const o of e.perOutput) {
    if (t.maxAbsDiff !== undefined && o.maxAbsDiff > t.maxAbsDiff) {
      problems.push(`output '${o.name}' max abs diff ${fmt(o.maxAbsDiff)} > ${t.maxAbsDiff}`);
    }
    if (maxRel !== undefined && o.maxRelDiff > maxRel) {
      problems.push(`output '${o.name}' max rel diff ${fmt(o.maxRelDiff)} > ${maxRel}`);
    }
  }
  const figures = e.perOutput
    .map((o) => `${o.name}: max abs diff ${fmt(o.maxAbsDiff)}, max rel diff ${fmt(o.maxRelDiff)}`)
    .join('; ');
  return `the accuracy gate failed on ${e.rows} ${e.source} rows: ${problems.join(', ')} (${figures})`;
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(4));

/** `abs / scale`, 0 when both are 0, `abs` itself when the parent output is all zeros. */
function relative(abs: number, scale: number): number {
  if (abs === 0) return 0;
  return scale > 0 ? abs / scale : abs;
}

/** An output of rank ≥ 2 whose last dimension is ≥ 2 (class scores): its argmax is a decision. */
export function isDecisionOutput(shape: readonly number[]): boolean {
  return shape.length >= 2 && (shape[shape.length - 1] as number) >= 2;
}

function maxAbs(data: TensorData): number {
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const v = Number(data[i]);
    if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Generated rows

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
export function seededUniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded standard normal generator (Box–Muller over `seededUniform`). */
export function seededNormal(seed: number): () => number {
  const u = seededUniform(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u1 = Math.max(u(), Number.MIN_VALUE);
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u();
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };
}

/**
 * Whether rows can be batched: every input has a dynamic first dimension. Otherwise each row is one request of
 * the inputs' fixed shapes.
 */
export function batchable(signature: ModelSignature): boolean {
  return signature.inputs.every((i) => i.shape.length >= 1 && i.shape[0] === -1);
}

/** The shape of a generated input of `rows` rows (batchable) or its fixed shape (dynamic dimensions 1). */
export function generatedShape(spec: TensorSpec, rows: number, batched: boolean): number[] {
  return spec.shape.map((d, i) => (i === 0 && batched ? rows : d < 0 ? 1 : d));
}

/**
 * Feeds of `rows` generated rows for `signature` (one row when the model cannot batch): zero-centred values per
 * input datatype (see the module comment), drawn from `normal`. BYTES inputs cannot be generated (see
 * `assertGeneratable`).
 */
export function generateFeeds(
  signature: ModelSignature,
  rows: number,
  normal: () => number,
): Record<string, Tensor> {
  const batched = batchable(signature);
  const feeds: Record<string, Tensor> = {};
  for (const spec of signature.inputs) {
    const shape = generatedShape(spec, batched ? rows : 1, batched);
    const n = shape.reduce((a, b) => a * b, 1);
    feeds[spec.name] = { datatype: spec.datatype, shape, data: generatedData(spec, n, normal) };
  }
  return feeds;
}

function generatedData(spec: TensorSpec, n: number, normal: () => number): TensorData {
  const ints = (f: (v: number) => number) => Array.from({ length: n }, () => f(normal()));
  switch (spec.datatype) {
    case 'FP32':
      return Float32Array.from({ length: n }, normal);
    case 'FP64':
      return Float64Array.from({ length: n }, normal);
    case 'FP16':
      throw new BadRequestError(
        `input '${spec.name}' is FP16: the accuracy gate does not generate it; give a sample`,
        'SAMPLE_REQUIRED',
      );
    case 'BOOL':
      return Uint8Array.from(ints((v) => (v > 0 ? 1 : 0)));
    case 'INT8':
      return Int8Array.from(ints(Math.round));
    case 'INT16':
      return Int16Array.from(ints(Math.round));
    case 'INT32':
      return Int32Array.from(ints(Math.round));
    case 'INT64':
      return BigInt64Array.from(ints(Math.round), (v) => BigInt(v));
    case 'UINT8':
      return Uint8Array.from(ints((v) => Math.round(Math.abs(v))));
    case 'UINT16':
      return Uint16Array.from(ints((v) => Math.round(Math.abs(v))));
    case 'UINT32':
      return Uint32Array.from(ints((v) => Math.round(Math.abs(v))));
    case 'UINT64':
      return BigUint64Array.from(
        ints((v) => Math.round(Math.abs(v))),
        (v) => BigInt(v),
      );
    case 'BYTES':
      throw new BadRequestError(
        `input '${spec.name}' is BYTES: the accuracy gate cannot generate it; give a sample`,
        'SAMPLE_REQUIRED',
      );
  }
}

/**
 * The rows of a batch whose top-2 gap on `output` (the parent's decision output) is at least `margin` of the
 * row's range (`relativeTopGap`), by index. Every row when the output is not a decision output.
 */
export function rowsAboveMargin(output: Tensor, margin: number): number[] {
  const shape = output.shape;
  const rows = shape[0] ?? 1;
  if (!isDecisionOutput(shape)) return Array.from({ length: rows }, (_, i) => i);
  const per = shape.slice(1).reduce((a, b) => a * b, 1);
  const last = shape[shape.length - 1] as number;
  const kept: number[] = [];
  for (let r = 0; r < rows; r++) {
    let ok = true;
    // A row of rank > 2 outputs holds several vectors: every one of them must be clear.
    for (let from = r * per; from < (r + 1) * per && ok; from += last) {
      if (relativeTopGap(output.data, from, last) < margin) ok = false;
    }
    if (ok) kept.push(r);
  }
  return kept;
}

/** The gap between the largest and the second largest of `data[from … from + n)`. */
export function topGap(data: TensorData, from: number, n: number): number {
  let first = Number.NEGATIVE_INFINITY;
  let second = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const v = Number(data[from + i]);
    if (v > first) {
      second = first;
      first = v;
    } else if (v > second) {
      second = v;
    }
  }
  return first - second;
}

/**
 * The top-2 gap of `data[from … from + n)` over its range (largest − smallest): 0 for a tie, 1 when one value stands
 * alone above all the others; 0 when every value is equal.
 */
export function relativeTopGap(data: TensorData, from: number, n: number): number {
  let low = Number.POSITIVE_INFINITY;
  let high = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const v = Number(data[from + i]);
    if (v < low) low = v;
    if (v > high) high = v;
  }
  const range = high - low;
  return range > 0 ? topGap(data, from, n) / range : 0;
}

/** The rows `indices` (along the first dimension) of a tensor. */
export function takeRows(t: Tensor, indices: readonly number[]): Tensor {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const shape = [indices.length, ...t.shape.slice(1)];
  const src = t.data;
  if (Array.isArray(src)) {
    return { datatype: t.datatype, shape, data: indices.flatMap((r) => src.slice(r * per, (r + 1) * per)) };
  }
  const typed = src as Exclude<TensorData, string[]>;
  const Ctor = typed.constructor as new (n: number) => typeof typed;
  const out = new Ctor(indices.length * per);
  indices.forEach((r, i) => {
    // biome-ignore lint/suspicious/noExplicitAny: one typed array into another of the same kind
    (out as any).set(typed.subarray(r * per, (r + 1) * per), i * per);
  });
  return { datatype: t.datatype, shape, data: out };
}

/** The first decision output of a signature's outputs (by name), if any. */
export function decisionOutput(outputs: Readonly<Record<string, Tensor>>): string | undefined {
  return Object.entries(outputs).find(([, t]) => isDecisionOutput(t.shape))?.[0];
}

/**
 * Shadow traffic's comparison (docs/ARCHITECTURE.md, "Progressive delivery"): how far the answer of a shadow
 * version is from the answer the caller got, output by output. Pure: OIP response outputs in, figures out.
 *
 * Rows: an output of rank ≥ 2 has one row per vector along its last dimension (`[N, C]`: N rows of C values;
 * `[N, T, C]`: N × T rows); rank 1 has `shape[0]` rows; a scalar one.
 * - `argmaxAgreement`: the share of rows whose argmax agree, for outputs of rank ≥ 2 whose last dimension is ≥ 2
 *   (class scores, probabilities). A row agrees when the shadow's value at the stable argmax is within
 *   `ARGMAX_TIE_TOLERANCE` of the shadow row's largest value (a near-tie does not flip on float noise); ties of
 *   the stable row go to its first index.
 * - `maxAbsDiff`: the largest |stable − shadow| over all elements (BOOL as 0/1, 64-bit integers beyond 2^53 as the
 *   nearest number). A value JSON could not carry (null: NaN or ±Infinity) equals another null and differs from any
 *   number by `MISMATCH_ABS_DIFF`. BYTES (or any string element) are compared by equality: 0 when all are equal, else 1.
 * - `klDivergence`: the mean over rows of KL(stable ‖ shadow) (natural log), only when every row of both is a
 *   probability distribution (non-negative, summing to 1 within `PROBABILITY_TOLERANCE`); both rows are smoothed
 *   by `KL_EPSILON` first (`(p + ε) / (1 + Cε)`), so a zero the other side lacks gives a large, finite figure.
 * - Nested `data` is flattened (row-major). Different shapes, or data whose length is not the product of its shape
 *   (on either side), are a disagreement: `agreeingRows` 0 (when argmax applies), `maxAbsDiff` `MISMATCH_ABS_DIFF`,
 *   no KL; `rows` is then the stable shape's.
 * - Post-processing outputs (`argmax`, `label`, `topk_*`, `softmax`: functions/domain/postprocess.ts), named by the
 *   caller, are derived from the model's outputs: they are marked `postprocess` and have no argmax rows (the argmax
 *   of a class index, or of scores sorted best first, says nothing), only `maxAbsDiff` (a class index, a label: an
 *   exact-match figure) — except `softmax`, which is the source's scores as probabilities, class by class, and
 *   keeps its KL divergence. A rollout judges the model's own outputs (functions/domain/rollout.ts).
 */
import { POSTPROCESS_OUTPUTS } from './postprocess';
import type { OipTensor } from './tensor';

/** An output of an OIP response as JSON carries it (`data` flat, row-major). */
export type OipOutput = Pick<OipTensor, 'name' | 'shape' | 'datatype' | 'data'>;

/** How one output of the shadow differs from the stable answer's. */
export interface OutputDivergence {
  readonly output: string;
  readonly rows: number;
  /** Rows whose argmax (over the last dimension, when it is >= 2) agree; absent otherwise. */
  readonly agreeingRows?: number;
  /** `agreeingRows / rows` (1 for an output without rows). */
  readonly argmaxAgreement?: number;
  /** Max |a − b| over all elements (numeric outputs; BYTES compared by equality: 0/1). */
  readonly maxAbsDiff: number;
  /** Mean over rows of KL(stable ‖ shadow), only when every row of both is a probability distribution. */
  readonly klDivergence?: number;
  /** An output of the version's post-processing, derived from a model output (no argmax rows). */
  readonly postprocess?: true;
}

/** One mirrored request, compared. */
export interface ShadowComparison {
  readonly model: string;
  readonly alias: string;
  readonly servedVersion: number;
  readonly shadowVersion: number;
  readonly inferenceId: string;
  /**
   * When the caller was answered (ISO 8601, the mirror message's `at`): a comparison of a request answered before
   * a rollout started is not that rollout's. Always set by the worker.
   */
  readonly at?: string;
  readonly outputs: readonly OutputDivergence[];
  /** True when the shadow failed (its error code in `error`); `outputs` is then empty. */
  readonly failed?: boolean;
  readonly error?: string;
}

/** How far a probability row may sum from 1. */
export const PROBABILITY_TOLERANCE = 1e-3;
/** The smoothing of KL divergence. */
export const KL_EPSILON = 1e-9;
/**
 * The `maxAbsDiff` of a mismatch (different shapes, a null against a number, an infinite difference): larger than
 * any meaningful bound, yet within CloudWatch's range of values (±2^360), which `Number.MAX_VALUE` is not.
 */
export const MISMATCH_ABS_DIFF = 1e100;
/**
 * How close (absolute, scaled by the row's largest magnitude when it is over 1) the shadow's value at the stable
 * argmax must be to the shadow row's largest value for the row to agree: `1e-6`, float noise of FP32 scores.
 */
export const ARGMAX_TIE_TOLERANCE = 1e-6;

/**
 * Compares the outputs both answers have (by name, in the stable answer's order); those named in `postprocess` (the
 * post-processing outputs of either version) as post-processing outputs.
 */
export function compareOutputs(
  stable: readonly OipOutput[],
  shadow: readonly OipOutput[],
  postprocess: ReadonlySet<string> = new Set(),
): OutputDivergence[] {
  const byName = new Map(shadow.map((o) => [o.name, o]));
  const out: OutputDivergence[] = [];
  for (const s of stable) {
    const t = byName.get(s.name);
    if (t) out.push(compareOutput(s, t, postprocess.has(s.name)));
  }
  return out;
}

/** One output of both answers, compared (`postprocess`: an output of the version's post-processing). */
export function compareOutput(stable: OipOutput, shadow: OipOutput, postprocess = false): OutputDivergence {
  const d = compareValues(stable, shadow);
  if (!postprocess) return d;
  const { agreeingRows: _r, argmaxAgreement: _a, klDivergence, ...rest } = d;
  return {
    ...rest,
    // The softmax of the source is its scores as probabilities, class by class: its KL is the model's.
    ...(klDivergence !== undefined && stable.name === POSTPROCESS_OUTPUTS.softmax ? { klDivergence } : {}),
    postprocess: true,
  };
}

/** One output of both answers, compared as figures (whatever it is derived from). */
function compareValues(stable: OipOutput, shadow: OipOutput): OutputDivergence {
  const a = flatData(stable.data);
  const b = flatData(shadow.data);
  const shape = stable.shape;
  const rank = shape.length;
  const last = rank >= 1 ? (shape[rank - 1] as number) : 1;
  const size = shape.reduce((n, d) => n * d, 1);
  const rows = rank >= 2 ? (last > 0 ? size / last : 0) : rank === 1 ? (shape[0] as number) : 1;
  const argmax = rank >= 2 && last >= 2;
  const sameShape =
    shape.length === shadow.shape.length &&
    shape.every((d, i) => d === shadow.shape[i]) &&
    a.length === size &&
    b.length === size;
  if (!sameShape) {
    return {
      output: stable.name,
      rows,
      ...(argmax ? { agreeingRows: 0, argmaxAgreement: 0 } : {}),
      maxAbsDiff: MISMATCH_ABS_DIFF,
    };
  }
  if (stable.datatype === 'BYTES' || a.some((v) => typeof v === 'string' && !isIntegerText(v))) {
    return { output: stable.name, rows, maxAbsDiff: a.every((v, i) => v === b[i]) ? 0 : 1 };
  }
  const x = a.map(toNumber);
  const y = b.map(toNumber);
  let maxAbsDiff = 0;
  for (let i = 0; i < x.length; i++)
    maxAbsDiff = Math.max(maxAbsDiff, absDiff(x[i] as number, y[i] as number));
  const result: { -readonly [K in keyof OutputDivergence]: OutputDivergence[K] } = {
    output: stable.name,
    rows,
    maxAbsDiff,
  };
  if (argmax) {
    let agreeing = 0;
    for (let r = 0; r < rows; r++) if (argmaxAgrees(x, y, r * last, last)) agreeing++;
    result.agreeingRows = agreeing;
    result.argmaxAgreement = rows > 0 ? agreeing / rows : 1;
    if (rows > 0 && isProbabilityRows(x, rows, last) && isProbabilityRows(y, rows, last)) {
      let sum = 0;
      for (let r = 0; r < rows; r++) sum += klRow(x, y, r * last, last);
      result.klDivergence = sum / rows;
    }
  }
  return result;
}

/** `data` as a flat array (nested arrays flattened row-major; anything else is empty). */
function flatData(data: unknown): unknown[] {
  if (!Array.isArray(data)) return ArrayBuffer.isView(data) ? Array.from(data as Float64Array) : [];
  return data.some(Array.isArray) ? (data as unknown[]).flat(Number.POSITIVE_INFINITY) : data;
}

/**
 * Whether the rows at `from` agree: the shadow's value at the stable argmax is within `ARGMAX_TIE_TOLERANCE` of the
 * shadow row's largest value. A row whose stable side has no number (all NaN) agrees only with a shadow without one.
 */
function argmaxAgrees(x: readonly number[], y: readonly number[], from: number, n: number): boolean {
  const s = argmaxOf(x, from, n);
  const t = argmaxOf(y, from, n);
  if (s < 0 || t < 0) return s === t;
  if (s === t) return true;
  const max = y[from + t] as number;
  const at = y[from + s] as number;
  return at >= max - ARGMAX_TIE_TOLERANCE * Math.max(1, Math.abs(max));
}

const INTEGER_TEXT = /^-?\d+$/;
const isIntegerText = (v: string) => INTEGER_TEXT.test(v);

/** A JSON element as a number: booleans 0/1, integer text (64-bit beyond 2^53) its number, null NaN. */
function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') return Number(v);
  return Number.NaN;
}

function absDiff(a: number, b: number): number {
  const na = Number.isNaN(a);
  const nb = Number.isNaN(b);
  if (na || nb) return na && nb ? 0 : MISMATCH_ABS_DIFF;
  const d = Math.abs(a - b);
  return Number.isFinite(d) ? Math.min(d, MISMATCH_ABS_DIFF) : MISMATCH_ABS_DIFF;
}

/** The index of the largest value of `v[from … from + n)` (the first of ties; NaN never wins). */
function argmaxOf(v: readonly number[], from: number, n: number): number {
  let best = -1;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const x = v[from + i] as number;
    if (x > max || best < 0) {
      if (Number.isNaN(x)) continue;
      max = x;
      best = i;
    }
  }
  return best;
}

function isProbabilityRows(v: readonly number[], rows: number, n: number): boolean {
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const x = v[r * n + i] as number;
      if (!(x >= 0)) return false;
      sum += x;
    }
    if (Math.abs(sum - 1) > PROBABILITY_TOLERANCE) return false;
  }
  return true;
}

/** KL(p ‖ q) of one row, both smoothed by `KL_EPSILON`. */
function klRow(p: readonly number[], q: readonly number[], from: number, n: number): number {
  const norm = 1 + n * KL_EPSILON;
  let kl = 0;
  for (let i = 0; i < n; i++) {
    const pi = ((p[from + i] as number) + KL_EPSILON) / norm;
    const qi = ((q[from + i] as number) + KL_EPSILON) / norm;
    kl += pi * Math.log(pi / qi);
  }
  return Math.max(0, kl);
}

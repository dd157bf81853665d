import { describe, expect, it } from 'vitest';
import {
  ARGMAX_TIE_TOLERANCE,
  compareOutput,
  compareOutputs,
  MISMATCH_ABS_DIFF,
  type OipOutput,
} from '../../functions/domain/divergence';

const fp32 = (name: string, shape: number[], data: unknown[]): OipOutput => ({
  name,
  shape,
  datatype: 'FP32',
  data,
});

describe('compareOutputs', () => {
  it('scores: argmax agreement per row, max abs diff, no KL when rows are not probabilities', () => {
    // Row 0: argmax 2 vs 2 (agree); row 1: argmax 0 vs 1 (disagree); row 2: argmax 1 vs 1 (agree).
    const stable = fp32('scores', [3, 3], [0.1, 0.2, 3.0, 5.0, 1.0, 0.0, -1.0, 2.0, 1.5]);
    const shadow = fp32('scores', [3, 3], [0.1, 0.25, 2.5, 1.0, 4.0, 0.0, -1.0, 2.0, 1.5]);
    // |diffs|: 0, 0.05, 0.5, 4.0, 3.0, 0, 0, 0, 0 -> max 4.
    expect(compareOutput(stable, shadow)).toEqual({
      output: 'scores',
      rows: 3,
      agreeingRows: 2,
      argmaxAgreement: 2 / 3,
      maxAbsDiff: 4,
    });
  });

  it('KL(stable ‖ shadow) averaged over probability rows', () => {
    // Row 0: KL([0.5,0.5] ‖ [0.9,0.1]) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = 0.5108256…
    // Row 1: identical rows: 0. Mean: 0.2554128…
    const stable = fp32('p', [2, 2], [0.5, 0.5, 0.2, 0.8]);
    const shadow = fp32('p', [2, 2], [0.9, 0.1, 0.2, 0.8]);
    const d = compareOutput(stable, shadow);
    expect(d.klDivergence).toBeCloseTo((0.5 * Math.log(0.5 / 0.9) + 0.5 * Math.log(0.5 / 0.1)) / 2, 6);
    expect(d.klDivergence).toBeCloseTo(0.2554128, 6);
    expect(d.maxAbsDiff).toBeCloseTo(0.4, 6);
    // Row 0 argmax: 0 (first of the tie) vs 0; row 1: 1 vs 1.
    expect(d).toMatchObject({ rows: 2, agreeingRows: 2, argmaxAgreement: 1 });
    // Identical distributions: 0.
    expect(compareOutput(stable, stable).klDivergence).toBeCloseTo(0, 9);
  });

  it('no KL when one side is not a distribution (negative, or a sum off by more than 1e-3)', () => {
    const p = fp32('p', [1, 2], [0.5, 0.5]);
    expect(compareOutput(p, fp32('p', [1, 2], [0.6, 0.5])).klDivergence).toBeUndefined();
    expect(compareOutput(p, fp32('p', [1, 2], [1.1, -0.1])).klDivergence).toBeUndefined();
    expect(compareOutput(p, fp32('p', [1, 2], [0.6, 0.4005])).klDivergence).toBeGreaterThan(0);
  });

  it('a zero the other side lacks gives a large, finite KL (epsilon smoothing)', () => {
    const kl = compareOutput(fp32('p', [1, 2], [0, 1]), fp32('p', [1, 2], [1, 0])).klDivergence!;
    expect(Number.isFinite(kl)).toBe(true);
    expect(kl).toBeGreaterThan(15);
  });

  it('no argmax for a rank-1 output or a last dimension of 1; rows as the first dimension', () => {
    expect(compareOutput(fp32('y', [4], [1, 2, 3, 4]), fp32('y', [4], [1, 2, 3.5, 4]))).toEqual({
      output: 'y',
      rows: 4,
      maxAbsDiff: 0.5,
    });
    expect(compareOutput(fp32('y', [2, 1], [1, 2]), fp32('y', [2, 1], [1, 2]))).toEqual({
      output: 'y',
      rows: 2,
      maxAbsDiff: 0,
    });
  });

  it('rank 3: one row per vector along the last dimension', () => {
    const a = fp32('t', [1, 2, 2], [1, 0, 0, 1]);
    const b = fp32('t', [1, 2, 2], [1, 0, 1, 0]);
    expect(compareOutput(a, b)).toMatchObject({
      rows: 2,
      agreeingRows: 1,
      argmaxAgreement: 0.5,
      maxAbsDiff: 1,
    });
  });

  it('BYTES by equality: 0 when all are equal, else 1; no argmax, no KL', () => {
    const labels = (data: string[]): OipOutput => ({ name: 'label', shape: [2], datatype: 'BYTES', data });
    expect(compareOutput(labels(['setosa', 'virginica']), labels(['setosa', 'virginica']))).toEqual({
      output: 'label',
      rows: 2,
      maxAbsDiff: 0,
    });
    expect(compareOutput(labels(['setosa', 'virginica']), labels(['setosa', 'versicolor']))).toEqual({
      output: 'label',
      rows: 2,
      maxAbsDiff: 1,
    });
  });

  it('a shape mismatch is a disagreement: agreeingRows 0, maxAbsDiff MISMATCH_ABS_DIFF', () => {
    const a = fp32('s', [2, 2], [1, 0, 0, 1]);
    expect(compareOutput(a, fp32('s', [1, 2], [1, 0]))).toEqual({
      output: 's',
      rows: 2,
      agreeingRows: 0,
      argmaxAgreement: 0,
      maxAbsDiff: MISMATCH_ABS_DIFF,
    });
    // Same shape, different data length (a malformed answer): also a disagreement.
    expect(compareOutput(a, fp32('s', [2, 2], [1, 0, 0])).maxAbsDiff).toBe(MISMATCH_ABS_DIFF);
  });

  it('nulls (non-finite values) equal each other and differ from numbers by MISMATCH_ABS_DIFF; BOOL and int64 text', () => {
    expect(compareOutput(fp32('n', [2], [null, 1]), fp32('n', [2], [null, 1])).maxAbsDiff).toBe(0);
    expect(compareOutput(fp32('n', [2], [null, 1]), fp32('n', [2], [0, 1])).maxAbsDiff).toBe(
      MISMATCH_ABS_DIFF,
    );
    const bool = (data: boolean[]): OipOutput => ({ name: 'b', shape: [1, 2], datatype: 'BOOL', data });
    expect(compareOutput(bool([true, false]), bool([false, true]))).toMatchObject({
      maxAbsDiff: 1,
      agreeingRows: 0,
    });
    const i64 = (data: unknown[]): OipOutput => ({ name: 'i', shape: [2], datatype: 'INT64', data });
    expect(compareOutput(i64(['9007199254740993', 3]), i64(['9007199254740993', 5])).maxAbsDiff).toBe(2);
  });

  it('the mismatch figure is within CloudWatch range (±2^360), larger than any real difference', () => {
    expect(MISMATCH_ABS_DIFF).toBeLessThan(2 ** 360);
    expect(MISMATCH_ABS_DIFF).toBeGreaterThanOrEqual(1e100);
    // An infinite difference of finite values (overflow) is the mismatch figure too.
    expect(compareOutput(fp32('o', [2], [-1.7e308, 0]), fp32('o', [2], [1.7e308, 0])).maxAbsDiff).toBe(
      MISMATCH_ABS_DIFF,
    );
  });

  it('a near-tie agrees: the shadow value at the stable argmax within the tolerance of its max', () => {
    // Stable argmax 0 (first of a tie); the shadow favours index 1 by float noise only.
    const near = compareOutput(
      fp32('p', [1, 3], [0.4, 0.4, 0.2]),
      fp32('p', [1, 3], [0.4, 0.4000001, 0.1999999]),
    );
    expect(near).toMatchObject({ agreeingRows: 1, argmaxAgreement: 1 });
    // Beyond the tolerance it is a disagreement.
    const far = compareOutput(
      fp32('p', [1, 3], [0.4, 0.4, 0.2]),
      fp32('p', [1, 3], [0.4, 0.4 + 100 * ARGMAX_TIE_TOLERANCE, 0.2 - 100 * ARGMAX_TIE_TOLERANCE]),
    );
    expect(far).toMatchObject({ agreeingRows: 0, argmaxAgreement: 0 });
  });

  it('data whose length is not the product of its shape is a mismatch, never more rows than the shape has', () => {
    const bad = compareOutput(fp32('y', [2, 3], [0.2, 0.8, 0, 0.5]), fp32('y', [2, 3], [0.2, 0.8, 0, 0.5]));
    expect(bad).toEqual({
      output: 'y',
      rows: 2,
      agreeingRows: 0,
      argmaxAgreement: 0,
      maxAbsDiff: MISMATCH_ABS_DIFF,
    });
    const ragged = compareOutput(
      fp32('y', [2, 3], [1, 0, 0, 0, 1, 0]),
      fp32('y', [2, 3], [1, 0, 0, 0, 1, 0, 0]),
    );
    expect(ragged).toMatchObject({ rows: 2, agreeingRows: 0, maxAbsDiff: MISMATCH_ABS_DIFF });
  });

  it('nested data is flattened row-major', () => {
    const nested = compareOutput(
      fp32(
        'y',
        [2, 2],
        [
          [0.2, 0.8],
          [0.6, 0.4],
        ],
      ),
      fp32('y', [2, 2], [0.2, 0.8, 0.4, 0.6]),
    );
    expect(nested).toMatchObject({ rows: 2, agreeingRows: 1, argmaxAgreement: 0.5 });
    expect(nested.maxAbsDiff).toBeCloseTo(0.2, 10);
  });

  it('post-processing outputs: marked, no argmax rows, softmax alone keeps its KL', () => {
    // Two rows of class scores; row 1 a near-tie that flips (its probabilities move 0.131).
    const probs = (data: number[]) => fp32('probs', [2, 3], data);
    const i64 = (name: string, shape: number[], data: number[]): OipOutput => ({
      name,
      shape,
      datatype: 'INT64',
      data,
    });
    const bytes = (name: string, shape: number[], data: string[]): OipOutput => ({
      name,
      shape,
      datatype: 'BYTES',
      data,
    });
    const stable = [
      probs([0.7, 0.2, 0.1, 0.4655, 0.4345, 0.1]),
      i64('argmax', [2], [0, 0]),
      bytes('label', [2], ['a', 'a']),
      fp32('topk_scores', [2, 2], [0.7, 0.2, 0.4655, 0.4345]),
      i64('topk_indices', [2, 2], [0, 1, 0, 1]),
      fp32('softmax', [2, 3], [0.7, 0.2, 0.1, 0.4655, 0.4345, 0.1]),
    ];
    const shadow = [
      probs([0.7, 0.2, 0.1, 0.4, 0.5, 0.1]),
      i64('argmax', [2], [0, 1]),
      bytes('label', [2], ['a', 'b']),
      fp32('topk_scores', [2, 2], [0.7, 0.2, 0.5, 0.4]),
      i64('topk_indices', [2, 2], [0, 1, 1, 0]),
      fp32('softmax', [2, 3], [0.7, 0.2, 0.1, 0.4, 0.5, 0.1]),
    ];
    const derived = new Set(['argmax', 'label', 'topk_scores', 'topk_indices', 'softmax']);
    const out = compareOutputs(stable, shadow, derived);
    expect(out[0]).toMatchObject({ output: 'probs', rows: 2, agreeingRows: 1 });
    expect(out[0]?.postprocess).toBeUndefined();
    expect(out[0]?.maxAbsDiff).toBeCloseTo(0.0655, 6);
    for (const o of out.slice(1)) {
      expect(o.postprocess).toBe(true);
      expect(o.agreeingRows).toBeUndefined();
      expect(o.argmaxAgreement).toBeUndefined();
    }
    expect(out.map((o) => o.output)).toEqual(['probs', ...derived]);
    expect(out[1]).toEqual({ output: 'argmax', rows: 2, maxAbsDiff: 1, postprocess: true });
    expect(out[2]).toEqual({ output: 'label', rows: 2, maxAbsDiff: 1, postprocess: true });
    // Sorted scores: no KL either (they are ranks, not classes); the softmax of the scores keeps it.
    expect(out[3]?.klDivergence).toBeUndefined();
    expect(out[5]?.klDivergence).toBeCloseTo(out[0]!.klDivergence!, 9);
    // Without the names, every output is a model output (as before).
    expect(compareOutputs(stable, shadow)[3]).toMatchObject({ agreeingRows: 2 });
  });

  it('compares the outputs both answers have, in the stable order', () => {
    const out = compareOutputs(
      [fp32('a', [1], [1]), fp32('b', [1], [2]), fp32('c', [1], [3])],
      [fp32('c', [1], [3.25]), fp32('a', [1], [1])],
    );
    expect(out.map((o) => [o.output, o.maxAbsDiff])).toEqual([
      ['a', 0],
      ['c', 0.25],
    ]);
  });
});

/** The pure rollout rules: parsing specs and CLI steps, decide, the desired split, divergence counting. */
import { describe, expect, it } from 'vitest';
import type { ShadowComparison } from '../../functions/domain/divergence';
import { BadRequestError } from '../../functions/domain/errors';
import {
  addCounters,
  awaitingSamples,
  checkRolloutVersion,
  clearedRouting,
  decide,
  desiredRouting,
  divergenceBreach,
  divergenceDelta,
  hasClassScores,
  keptShadowConflict,
  parseRolloutSpec,
  parseSteps,
  type Rollout,
  rolloutView,
  sameRouting,
  stepReason,
  ZERO_DIVERGENCE,
} from '../../functions/domain/rollout';
import type { TensorSpec } from '../../functions/domain/types';
import { newRollout } from '../helpers/rollout-repository-contract';

const invalid = (body: unknown): string => {
  try {
    parseRolloutSpec(body);
  } catch (e) {
    expect(e).toBeInstanceOf(BadRequestError);
    expect((e as BadRequestError).code).toBe('INVALID_ROLLOUT');
    return (e as Error).message;
  }
  throw new Error('accepted');
};

const ok = { version: 3, steps: [{ weight: 10, bakeSeconds: 60 }, { weight: 100 }] };

describe('parseRolloutSpec', () => {
  it('accepts a full spec and fills defaults', () => {
    expect(parseRolloutSpec(ok)).toEqual({
      version: 3,
      steps: [
        { weight: 10, bakeSeconds: 60 },
        { weight: 100, bakeSeconds: 0 },
      ],
      alarms: [],
    });
    expect(
      parseRolloutSpec({
        ...ok,
        alarms: ['a', 'b', 'a'],
        maxDivergence: { minArgmaxAgreement: 0.99, maxAbsDiff: 0.5, minSamples: 10, shadowPercent: 20 },
        keyParameter: 'user_id',
      }),
    ).toMatchObject({
      alarms: ['a', 'b'],
      maxDivergence: { minArgmaxAgreement: 0.99, maxAbsDiff: 0.5, minSamples: 10, shadowPercent: 20 },
      keyParameter: 'user_id',
    });
  });

  it.each([
    ['not an object', [1], /must be an object/],
    ['an unknown field', { ...ok, speed: 1 }, /unknown field\(s\): speed/],
    ['no version', { steps: ok.steps }, /version must be/],
    ['version 0', { ...ok, version: 0 }, /version must be/],
    ['no steps', { version: 3 }, /steps must be an array of 1-20/],
    ['empty steps', { version: 3, steps: [] }, /steps must be an array of 1-20/],
    ['21 steps', { version: 3, steps: Array.from({ length: 21 }, (_, i) => ({ weight: i + 1 })) }, /1-20/],
    [
      'weight 0',
      { version: 3, steps: [{ weight: 0 }] },
      /steps\[0\]\.weight must be a number from 0.1 to 100/,
    ],
    ['weight 100.5', { version: 3, steps: [{ weight: 100.5 }] }, /steps\[0\]\.weight/],
    ['weight 0.05', { version: 3, steps: [{ weight: 0.05 }] }, /in steps of 0.1/],
    [
      'weights not increasing',
      { version: 3, steps: [{ weight: 50 }, { weight: 50 }] },
      /steps\[1\]\.weight must be more than the step before \(50\)/,
    ],
    [
      'a negative bake',
      { version: 3, steps: [{ weight: 5, bakeSeconds: -1 }] },
      /bakeSeconds must be an integer/,
    ],
    ['a fractional bake', { version: 3, steps: [{ weight: 5, bakeSeconds: 1.5 }] }, /bakeSeconds/],
    [
      'a null bake',
      { version: 3, steps: [{ weight: 5, bakeSeconds: null }] },
      /steps\[0\]\.bakeSeconds must be an integer/,
    ],
    [
      'a step with an unknown field',
      { version: 3, steps: [{ weight: 5, wait: 3 }] },
      /steps\[0\] has unknown field\(s\): wait/,
    ],
    ['alarms not an array', { ...ok, alarms: 'x' }, /alarms must be an array/],
    ['11 alarms', { ...ok, alarms: Array.from({ length: 11 }, (_, i) => `a${i}`) }, /at most 10/],
    ['an empty alarm name', { ...ok, alarms: [''] }, /1-255 characters/],
    ['an alarm name of 256', { ...ok, alarms: ['x'.repeat(256)] }, /1-255 characters/],
    ['maxDivergence without a bound', { ...ok, maxDivergence: { minSamples: 5 } }, /names no bound/],
    ['agreement over 1', { ...ok, maxDivergence: { minArgmaxAgreement: 1.5 } }, /from 0 to 1/],
    ['negative maxAbsDiff', { ...ok, maxDivergence: { maxAbsDiff: -1 } }, /maxAbsDiff must be a number >= 0/],
    ['shadowPercent 0', { ...ok, maxDivergence: { maxAbsDiff: 1, shadowPercent: 0 } }, /shadowPercent/],
    ['minSamples 0', { ...ok, maxDivergence: { maxAbsDiff: 1, minSamples: 0 } }, /minSamples/],
    [
      'an unknown bound',
      { ...ok, maxDivergence: { maxAbs: 1 } },
      /maxDivergence has unknown field\(s\): maxAbs/,
    ],
    ['a bad key parameter', { ...ok, keyParameter: 'a b' }, /keyParameter/],
    // Only multiples of 0.1 (a number near 0 is no step; 1e-300 is one DynamoDB cannot store).
    ['weight 1e-300', { version: 3, steps: [{ weight: 1e-300 }] }, /weight must be .* \(0\.1, 0\.2 … 100\)/],
    ['weight 1e-11', { version: 3, steps: [{ weight: 1e-11 }] }, /steps\[0\]\.weight .*in steps of 0\.1/],
    ['weight 0.1 + 0.2', { version: 3, steps: [{ weight: 0.1 + 0.2 }] }, /steps\[0\]\.weight/],
    [
      'a later weight 1e-11 above 10',
      { version: 3, steps: [{ weight: 10 }, { weight: 10 + 1e-11 }] },
      /steps\[1\]\.weight .*in steps of 0\.1/,
    ],
    [
      'shadowPercent 1e-200',
      { ...ok, maxDivergence: { maxAbsDiff: 1, shadowPercent: 1e-200 } },
      /shadowPercent must be .* \(0\.1, 0\.2 … 100\)/,
    ],
  ])('refuses %s with 400 INVALID_ROLLOUT', (_what, body, message) => {
    expect(invalid(body)).toMatch(message);
  });

  // The free-form bounds are stored with the rollout: the derive gate's rule (0 or 1e-130 to 2^53 − 1).
  it.each([
    ['maxAbsDiff', 1e300],
    ['maxAbsDiff', 1e-300],
    ['maxAbsDiff', 2 ** 53],
    ['maxKlDivergence', 1e-300],
    ['maxKlDivergence', 1e200],
    ['minArgmaxAgreement', 1e-300],
    ['maxShadowErrorRate', 1e-300],
  ])('refuses maxDivergence.%s %d, one the registry cannot store, saying the range', (bound, value) => {
    const message = invalid({ ...ok, maxDivergence: { maxAbsDiff: 1, [bound]: value } });
    expect(message).toContain(`maxDivergence.${bound} must be a number`);
    expect(message).toContain(`(got ${value})`);
    expect(message).toContain('within ±9007199254740991, and 0 or at least 1e-130 in magnitude');
  });

  it('accepts bounds at the edges of the stored range', () => {
    const bounds = {
      minArgmaxAgreement: 1e-130,
      maxAbsDiff: Number.MAX_SAFE_INTEGER,
      maxKlDivergence: 0,
      maxShadowErrorRate: 1e-130,
    };
    expect(parseRolloutSpec({ ...ok, maxDivergence: bounds }).maxDivergence).toEqual(bounds);
  });
});

describe('parseSteps', () => {
  it('reads weight[:bake] with s, m and h, a bare bake in seconds, no bake as 0', () => {
    expect(parseSteps('10:5m,50:10m,100')).toEqual([
      { weight: 10, bakeSeconds: 300 },
      { weight: 50, bakeSeconds: 600 },
      { weight: 100, bakeSeconds: 0 },
    ]);
    expect(parseSteps('0.5:30s, 2:1h,3:45')).toEqual([
      { weight: 0.5, bakeSeconds: 30 },
      { weight: 2, bakeSeconds: 3600 },
      { weight: 3, bakeSeconds: 45 },
    ]);
  });

  it.each([
    ['10:5d'],
    ['x'],
    ['10:5m:1'],
    [''],
    ['50,10'],
    ['10:-5m'],
    // Not plain decimals: hex, exponent, leading zeros, signs, padding within a step.
    ['0x10:1m'],
    ['1e1'],
    ['10,1e2'],
    ['010:5m'],
    ['+10'],
    ['10.'],
    ['.5'],
    ['10 :5m'],
    ['10: 5m'],
    ['10:05m'],
    ['10:0x10'],
  ])('refuses %j', (text) => {
    expect(() => parseSteps(text)).toThrow(BadRequestError);
  });
});

const at = (iso: string) => new Date(iso);

describe('decide', () => {
  const r = newRollout('m');

  it('waits out the bake, then advances, then promotes after the last step', () => {
    // (Its divergence bound was met: minSamples rows compared, all agreeing; see below for fewer.)
    const compared: Rollout = {
      ...r,
      divergence: { ...ZERO_DIVERGENCE, requests: 100, rows: 100, agreeingRows: 100 },
    };
    expect(decide(compared, at('2026-01-01T00:00:59.999Z'), [])).toEqual({ type: 'none' });
    expect(decide(compared, at('2026-01-01T00:01:00.000Z'), [])).toEqual({ type: 'advance', step: 1 });
    // (Its divergence bound was met: minSamples rows compared, all agreeing.)
    const last: Rollout = {
      ...r,
      step: 1,
      divergence: { ...ZERO_DIVERGENCE, requests: 100, rows: 100, agreeingRows: 100 },
    };
    expect(decide(last, at('2026-01-01T00:00:00.000Z'), [])).toEqual({ type: 'promote' });
  });

  it('rolls back running and paused rollouts on their alarms only', () => {
    expect(decide(r, at('2026-01-01T00:00:00Z'), ['other'])).toEqual({ type: 'none' });
    expect(decide(r, at('2026-01-01T00:00:00Z'), ['errors'])).toEqual({
      type: 'rollback',
      reason: 'alarm:errors',
    });
    const paused: Rollout = { ...r, status: 'paused' };
    expect(decide(paused, at('2026-01-01T00:00:00Z'), ['errors'])).toMatchObject({ type: 'rollback' });
    // A paused rollout does not advance, however long it waited.
    expect(decide(paused, at('2027-01-01T00:00:00Z'), [])).toEqual({ type: 'none' });
  });

  it('rolls back on divergence once enough rows were compared', () => {
    const few = { ...ZERO_DIVERGENCE, requests: 5, rows: 50, agreeingRows: 10 };
    expect(decide({ ...r, divergence: few }, at('2026-01-01T00:00:00Z'), [])).toEqual({ type: 'none' });
    const many = { ...few, rows: 100, agreeingRows: 89 };
    expect(decide({ ...r, divergence: many }, at('2026-01-01T00:00:00Z'), [])).toEqual({
      type: 'rollback',
      reason: 'divergence:argmaxAgreement',
    });
    expect(
      decide({ ...r, divergence: { ...many, agreeingRows: 90 } }, at('2026-01-01T00:00:00Z'), []),
    ).toEqual({
      type: 'none',
    });
  });

  it('enters a step of 100 % only once minSamples rows were compared: after it, nothing is mirrored', () => {
    // r: 10 % for 60 s, then 100 %; bounds divergence (default minSamples 100); no row compared yet.
    expect(decide(r, at('2027-01-01T00:00:00Z'), [])).toEqual({ type: 'none' });
    expect(rolloutView(r).awaitingSamples).toBe(true);
    const three: Rollout = {
      ...r,
      steps: [
        { weight: 10, bakeSeconds: 60 },
        { weight: 50, bakeSeconds: 60 },
        { weight: 100, bakeSeconds: 0 },
      ],
    };
    // Into 50 % it goes (the stable version still answers half), into 100 % it waits.
    expect(decide(three, at('2027-01-01T00:00:00Z'), [])).toEqual({ type: 'advance', step: 1 });
    expect(rolloutView(three).awaitingSamples).toBeUndefined();
    expect(decide({ ...three, step: 1 }, at('2027-01-01T00:00:00Z'), [])).toEqual({ type: 'none' });
    const rows = { ...ZERO_DIVERGENCE, requests: 100, rows: 100, agreeingRows: 100 };
    expect(decide({ ...three, step: 1, divergence: rows }, at('2027-01-01T00:00:00Z'), [])).toEqual({
      type: 'advance',
      step: 2,
    });
    // Without divergence bounds nothing waits.
    const { maxDivergence: _, ...plain } = r;
    expect(decide(plain, at('2027-01-01T00:00:00Z'), [])).toEqual({ type: 'advance', step: 1 });
  });

  it('promotes a rollout that bounds divergence only once minSamples rows were compared', () => {
    const last: Rollout = {
      ...r,
      step: 1,
      maxDivergence: { maxAbsDiff: 0.5, minSamples: 40 },
      divergence: { ...ZERO_DIVERGENCE, requests: 10, rows: 39 },
    };
    expect(decide(last, at('2027-01-01T00:00:00Z'), [])).toEqual({ type: 'none' });
    expect(rolloutView(last).awaitingSamples).toBe(true);
    const enough: Rollout = { ...last, divergence: { ...last.divergence, rows: 40 } };
    expect(decide(enough, at('2027-01-01T00:00:00Z'), [])).toEqual({ type: 'promote' });
    expect(rolloutView(enough).awaitingSamples).toBeUndefined();
  });

  it('does nothing for a rollout that is over', () => {
    for (const status of ['completed', 'rolled_back', 'aborted'] as const) {
      expect(decide({ ...r, status }, at('2027-01-01T00:00:00Z'), ['errors'])).toEqual({ type: 'none' });
    }
  });
});

describe('divergence', () => {
  const bounds = { maxAbsDiff: 0.5, maxKlDivergence: 0.1 };
  const comparison = {
    model: 'm',
    alias: 'prod',
    servedVersion: 1,
    shadowVersion: 2,
    inferenceId: 'i',
    outputs: [
      {
        output: 'probs',
        rows: 4,
        agreeingRows: 3,
        argmaxAgreement: 0.75,
        maxAbsDiff: 0.2,
        klDivergence: 0.2,
      },
      { output: 'raw', rows: 4, maxAbsDiff: 0.7 },
    ],
  };

  it('counts argmax rows, and comparisons over the bounds', () => {
    expect(divergenceDelta(comparison, bounds)).toEqual({
      requests: 1,
      rows: 4,
      agreeingRows: 3,
      overMaxAbs: 1,
      overKl: 1,
      shadowErrors: 0,
    });
    expect(divergenceDelta(comparison, { minArgmaxAgreement: 0.5 })).toMatchObject({
      overMaxAbs: 0,
      overKl: 0,
    });
    expect(divergenceDelta({ ...comparison, failed: true, outputs: [] }, bounds)).toEqual({
      ...ZERO_DIVERGENCE,
      requests: 1,
      shadowErrors: 1,
    });
  });

  it("judges the model's own outputs: post-processing outputs feed neither maxAbsDiff nor the rows", () => {
    // A near-tie flipped: the probabilities moved 0.131, the class index by 1, the label by 1 (exact match).
    const pp: ShadowComparison = {
      ...comparison,
      outputs: [
        { output: 'probs', rows: 4, agreeingRows: 3, argmaxAgreement: 0.75, maxAbsDiff: 0.131 },
        { output: 'argmax', rows: 4, maxAbsDiff: 1, postprocess: true },
        { output: 'label', rows: 4, maxAbsDiff: 1, postprocess: true },
        { output: 'topk_scores', rows: 4, maxAbsDiff: 0.05, postprocess: true },
        { output: 'topk_indices', rows: 4, maxAbsDiff: 2, postprocess: true },
        { output: 'softmax', rows: 4, maxAbsDiff: 0.2, klDivergence: 0.3, postprocess: true },
      ],
    };
    expect(divergenceDelta(pp, { minArgmaxAgreement: 0.5, maxAbsDiff: 0.5 })).toEqual({
      requests: 1,
      rows: 4,
      agreeingRows: 3,
      overMaxAbs: 0,
      overKl: 0,
      shadowErrors: 0,
    });
    // The softmax of the model's scores keeps its KL (a model answering logits has no other probabilities).
    expect(divergenceDelta(pp, { maxKlDivergence: 0.1 }).overKl).toBe(1);
  });

  it('counts the rows of a model without class scores toward minSamples, so its rollout is promoted', () => {
    // A regression [N, 1] and a rank-1 output: no argmax rows, yet compared rows.
    const regression: ShadowComparison = {
      ...comparison,
      outputs: [
        { output: 'y', rows: 30, maxAbsDiff: 0.01 },
        { output: 'z', rows: 30, maxAbsDiff: 0.02 },
      ],
    };
    const bounds = { maxAbsDiff: 0.5, minSamples: 100 };
    const delta = divergenceDelta(regression, bounds);
    expect(delta).toMatchObject({ requests: 1, rows: 60, agreeingRows: 0, overMaxAbs: 0 });
    const last: Rollout = { ...newRollout('m'), step: 1, maxDivergence: bounds };
    const once = { ...last, divergence: delta };
    expect(awaitingSamples(once)).toBe(true);
    const twice = { ...last, divergence: addCounters(delta, delta) };
    expect(awaitingSamples(twice)).toBe(false);
    expect(decide(twice, at('2027-01-01T00:00:00Z'), [])).toEqual({ type: 'promote' });
  });

  it('refuses minArgmaxAgreement for a version without class scores', () => {
    const version = (outputs: TensorSpec[]) => ({
      signature: { inputs: [], outputs },
    });
    const regression = version([
      { name: 'y', datatype: 'FP32', shape: [-1, 1] },
      { name: 'z', datatype: 'FP32', shape: [-1] },
      { name: 'names', datatype: 'BYTES', shape: [-1, 3] },
    ]);
    expect(hasClassScores(regression)).toBe(false);
    expect(hasClassScores(version([{ name: 'p', datatype: 'FP32', shape: [-1, 3] }]))).toBe(true);
    expect(hasClassScores(version([{ name: 'p', datatype: 'FP32', shape: [-1, -1] }]))).toBe(true);
    expect(hasClassScores(version([{ name: 'p', datatype: 'FP32', shape: [] }]))).toBe(true);
    const spec = parseRolloutSpec({ ...ok, maxDivergence: { minArgmaxAgreement: 0.9 } });
    const e = (() => {
      try {
        checkRolloutVersion(spec, regression);
      } catch (err) {
        return err as BadRequestError;
      }
    })();
    expect(e).toBeInstanceOf(BadRequestError);
    expect(e?.code).toBe('INVALID_ROLLOUT');
    expect(e?.message).toMatch(/minArgmaxAgreement needs class scores.*version 3/);
    // Bounds a regression can be judged by are accepted.
    expect(() =>
      checkRolloutVersion(parseRolloutSpec({ ...ok, maxDivergence: { maxAbsDiff: 0.1 } }), regression),
    ).not.toThrow();
  });

  it('names the bound a count breaks', () => {
    expect(divergenceBreach(bounds, { ...ZERO_DIVERGENCE, overMaxAbs: 1 })).toBe('divergence:maxAbsDiff');
    expect(divergenceBreach(bounds, { ...ZERO_DIVERGENCE, overKl: 1 })).toBe('divergence:klDivergence');
    expect(divergenceBreach({ maxAbsDiff: 1 }, { ...ZERO_DIVERGENCE, overKl: 3 })).toBeUndefined();
    expect(divergenceBreach(undefined, { ...ZERO_DIVERGENCE, overKl: 3 })).toBeUndefined();
  });

  it('rolls back a version whose shadow runs fail, once enough requests were mirrored', () => {
    const failing = { ...ZERO_DIVERGENCE, requests: 1000, shadowErrors: 1000 };
    expect(divergenceBreach(bounds, failing)).toBe('divergence:shadowErrors');
    // Judged from 20 mirrored requests; above 5 % by default, or the rollout's own share.
    expect(divergenceBreach(bounds, { ...ZERO_DIVERGENCE, requests: 19, shadowErrors: 19 })).toBeUndefined();
    expect(divergenceBreach(bounds, { ...ZERO_DIVERGENCE, requests: 20, shadowErrors: 1 })).toBeUndefined();
    expect(divergenceBreach(bounds, { ...ZERO_DIVERGENCE, requests: 20, shadowErrors: 2 })).toBe(
      'divergence:shadowErrors',
    );
    expect(
      divergenceBreach(
        { ...bounds, maxShadowErrorRate: 0.5 },
        { ...ZERO_DIVERGENCE, requests: 20, shadowErrors: 2 },
      ),
    ).toBeUndefined();
    expect(invalid({ ...ok, maxDivergence: { maxAbsDiff: 1, maxShadowErrorRate: 2 } })).toMatch(
      /maxShadowErrorRate must be a number from 0 to 1/,
    );
    expect(
      parseRolloutSpec({ ...ok, maxDivergence: { maxAbsDiff: 1, maxShadowErrorRate: 0 } }).maxDivergence,
    ).toEqual({
      maxAbsDiff: 1,
      maxShadowErrorRate: 0,
    });
  });
});

describe('desiredRouting', () => {
  it('is the canary at the step weight, a shadow with divergence bounds, the key parameter kept', () => {
    const r = newRollout('m', { step: 1 });
    expect(desiredRouting(r, { keyParameter: 'user' })).toEqual({
      canary: { version: 2, weight: 100 },
      shadow: { version: 2, percent: 10 },
      keyParameter: 'user',
    });
    const { maxDivergence: _m, ...plain } = r;
    expect(desiredRouting({ ...plain, keyParameter: 'k' }, { keyParameter: 'user' })).toEqual({
      canary: { version: 2, weight: 100 },
      keyParameter: 'k',
    });
    expect(desiredRouting({ ...r, status: 'completed' })).toBeUndefined();
  });

  it('compares and clears splits', () => {
    expect(sameRouting({ canary: { version: 2, weight: 10 } }, { canary: { version: 2, weight: 10 } })).toBe(
      true,
    );
    expect(sameRouting({ canary: { version: 2, weight: 10 } }, { canary: { version: 2, weight: 50 } })).toBe(
      false,
    );
    expect(sameRouting(undefined, null)).toBe(true);
    expect(clearedRouting({ canary: { version: 2, weight: 10 }, keyParameter: 'k' }, 2)).toEqual({
      keyParameter: 'k',
    });
    expect(clearedRouting({ canary: { version: 2, weight: 10 } }, 2)).toBeNull();
    // The rollout's own shadow goes; another version's (the alias's own experiment) stays.
    expect(
      clearedRouting({ canary: { version: 2, weight: 10 }, shadow: { version: 2, percent: 10 } }, 2),
    ).toBeNull();
    expect(
      clearedRouting(
        { canary: { version: 2, weight: 10 }, shadow: { version: 4, percent: 20 }, keyParameter: 'k' },
        2,
      ),
    ).toEqual({ shadow: { version: 4, percent: 20 }, keyParameter: 'k' });
  });

  it("keeps the alias's own shadow when the rollout needs none; the rollout's shadow wins when it bounds divergence", () => {
    const r = newRollout('m');
    const { maxDivergence: _m, ...plain } = r;
    const current = { shadow: { version: 4, percent: 20 } };
    expect(desiredRouting(plain, current)).toEqual({
      canary: { version: 2, weight: 10 },
      shadow: { version: 4, percent: 20 },
    });
    expect(desiredRouting(plain, { ...current, canary: { version: 3, weight: 5 } })).toEqual({
      canary: { version: 2, weight: 10 },
      shadow: { version: 4, percent: 20 },
    });
    expect(desiredRouting(r, current)).toEqual({
      canary: { version: 2, weight: 10 },
      shadow: { version: 2, percent: 10 },
    });
  });

  it('refuses to keep a shadow that could not shadow the version once promoted', () => {
    const sig = (outputs: TensorSpec[]) => ({
      signature: { inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, 2] }], outputs },
    });
    const v2 = sig([
      { name: 'p', datatype: 'FP32', shape: [-1, 2] },
      { name: 'extra', datatype: 'FP32', shape: [-1] },
    ]);
    const v4 = { version: 4, ...sig([{ name: 'p', datatype: 'FP32', shape: [-1, 2] }]) };
    const r = newRollout('m');
    const e = keptShadowConflict(r, v2, v4);
    expect(e?.code).toBe('SHADOW_INCOMPATIBLE');
    expect(e?.message).toMatch(/shadow of version 4.*could not shadow version 2 once promoted/);
    expect(keptShadowConflict(r, v4, v4)).toBeUndefined();
  });

  it('describes steps and shows the weight and the next step time', () => {
    const r = newRollout('m', { id: '1234567890ab' });
    expect(stepReason(r)).toBe('rollout 12345678: step 1/2, canary v2 at 10%');
    expect(rolloutView(r)).toMatchObject({ weight: 10, nextStepAt: '2026-01-01T00:01:00.000Z' });
    expect(rolloutView({ ...r, status: 'paused' }).nextStepAt).toBeUndefined();
  });
});

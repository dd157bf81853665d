/** The human renderings of derived versions (functions/cli/format-derive.ts): the gate's lines and the lineage. */
import { describe, expect, it } from 'vitest';
import { formatDerived, formatEvaluation, lineage } from '../../functions/cli/format-derive';
import { type Evaluation, gateThresholds } from '../../functions/domain/derive';

const evaluation = (over: Partial<Evaluation> = {}): Evaluation => ({
  rows: 1000,
  source: 'generated',
  nearTiesExcluded: 0,
  argmaxAgreement: 0.999,
  perOutput: [{ name: 'probabilities', argmaxAgreement: 0.999, maxAbsDiff: 0.0756, maxRelDiff: 0.0756 }],
  passed: true,
  thresholds: gateThresholds(),
  ...over,
});

describe('formatEvaluation', () => {
  it('counts the near-ties left out, one in the singular', () => {
    const gate = (n: number) => formatEvaluation(evaluation({ nearTiesExcluded: n }))[0];
    expect(gate(1)).toBe(
      '  gate         passed: argmax agreement 0.9990 (min 0.99) on 1000 generated rows, 1 near-tie left out',
    );
    expect(gate(0)).toMatch(/, 0 near-ties left out$/);
    expect(gate(2)).toMatch(/, 2 near-ties left out$/);
  });

  it("names none for a sample (its rows are used as given), and gives each output's figures", () => {
    const lines = formatEvaluation(evaluation({ source: 'sample', rows: 150, passed: false }));
    expect(lines).toEqual([
      '  gate         FAILED: argmax agreement 0.9990 (min 0.99) on 150 sample rows',
      '  output       probabilities: max abs diff 0.07560, max rel diff 0.07560, agreement 0.9990',
    ]);
  });
});

describe('the lineage', () => {
  const applied = [{ quantize: 'int8' as const, reduceRange: true, perChannel: false }];

  it('says which int8 range a completed version got', () => {
    expect(lineage({ derivedFrom: 1, transforms: applied })).toBe('v1: quantize int8 (reduced range)');
    expect(
      lineage({ derivedFrom: 2, transforms: [{ quantize: 'int8', reduceRange: false, perChannel: true }] }),
    ).toBe('v2: quantize int8 (per-channel, full range)');
    // A PENDING one records the request as given.
    expect(lineage({ derivedFrom: 1, transforms: [{ quantize: 'int8' }] })).toBe('v1: quantize int8');
    expect(lineage({ transforms: [{ preprocess: { features: {} } }] })).toBe('preprocess features');
    expect(lineage({})).toBe('');
  });

  it('maas derive prints the transforms as applied', () => {
    const text = formatDerived({
      name: 'iris',
      version: 2,
      status: 'READY',
      sha256: 'ab'.repeat(32),
      sizeBytes: 844,
      derivedFrom: 1,
      transforms: applied,
      evaluation: evaluation({ nearTiesExcluded: 1 }),
    });
    expect(text.split('\n').slice(0, 5)).toEqual([
      'derived iris version 2 from version 1 (READY)',
      '  transforms   quantize int8 (reduced range)',
      `  sha256       ${'ab'.repeat(32)}`,
      '  size         844 B',
      '  gate         passed: argmax agreement 0.9990 (min 0.99) on 1000 generated rows, 1 near-tie left out',
    ]);
  });
});

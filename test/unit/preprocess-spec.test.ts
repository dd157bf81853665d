import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../functions/domain/errors';
import {
  assertStackedPreprocessFits,
  PREPROCESS_LIMITS,
  parsePreprocessSpec,
  planPreprocess,
  preprocessRawInputs,
} from '../../functions/domain/preprocess-spec';
import type { ModelSignature } from '../../functions/domain/types';

/** The 400 a call throws (fails the test when it does not throw one). */
function rejection(f: () => unknown): BadRequestError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BadRequestError);
    expect((e as BadRequestError).code).toBe('INVALID_PREPROCESS');
    return e as BadRequestError;
  }
  throw new Error('expected INVALID_PREPROCESS');
}

const signature: ModelSignature = {
  inputs: [
    { name: 'features', datatype: 'FP32', shape: [-1, 4] },
    { name: 'color', datatype: 'FP32', shape: [-1, 3] },
    { name: 'tokens', datatype: 'INT64', shape: [-1, 8] },
    { name: 'wide', datatype: 'FP64', shape: [-1, -1] },
  ],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
};

describe('parsePreprocessSpec', () => {
  it('accepts every step, lists a single step, and defaults handleUnknown to error', () => {
    const spec = parsePreprocessSpec({
      features: [
        { fillMissing: { value: 0 } },
        { normalize: { mean: [1, 2, 3, 4], std: 2 } },
        { clip: { min: -3, max: 3 } },
      ],
      color: { oneHot: { categories: ['red', 'green', 'blue'] } },
      tokens: { stringToIndex: { vocabulary: ['a', 'b'], oov: 2 } },
      wide: { minmax: { min: 0, max: [10, 20] } },
    });
    expect(spec.features).toHaveLength(3);
    expect(spec.color).toEqual([
      { oneHot: { categories: ['red', 'green', 'blue'], handleUnknown: 'error' } },
    ]);
    expect(spec.tokens).toEqual([{ stringToIndex: { vocabulary: ['a', 'b'], oov: 2 } }]);
    expect(spec.wide).toEqual([{ minmax: { min: 0, max: [10, 20] } }]);
  });

  it.each([
    ['a non-object', [1], /must be an object mapping input names/],
    ['no input', {}, /names no input/],
    ['an unknown step', { x: { standardize: {} } }, /unknown step 'standardize'; use one of: normalize/],
    [
      'two kinds in one step',
      { x: { normalize: { mean: 0, std: 1 }, clip: { min: 0 } } },
      /one of: normalize/,
    ],
    [
      'an unknown field',
      { x: { normalize: { mean: 0, std: 1, eps: 1 } } },
      /step 1 \(normalize\) has unknown field\(s\): eps/,
    ],
    ['a missing field', { x: { normalize: { mean: 0 } } }, /needs std/],
    ['std 0', { x: { normalize: { mean: 0, std: [1, 0] } } }, /every std must be > 0/],
    ['a negative std', { x: { normalize: { mean: 0, std: -1 } } }, /every std must be > 0/],
    [
      'mean and std of different lengths',
      { x: { normalize: { mean: [0, 1], std: [1, 1, 1] } } },
      /mean has 2 values and std 3/,
    ],
    ['a string mean', { x: { normalize: { mean: '0', std: 1 } } }, /mean must be a finite number/],
    ['an empty mean', { x: { normalize: { mean: [], std: 1 } } }, /mean must be a number or 1 to/],
    ['max equal to min', { x: { minmax: { min: [0, 1], max: [1, 1] } } }, /every max must be > its min/],
    ['a clip without bounds', { x: { clip: {} } }, /needs min, max or both/],
    ['a clip with min above max', { x: { clip: { min: 2, max: 1 } } }, /every min must be <= its max/],
    [
      'a fillMissing without a number',
      { x: { fillMissing: { value: null } } },
      /value must be a finite number/,
    ],
    ['no categories', { x: { oneHot: { categories: [] } } }, /categories must list 1 to 4096/],
    ['mixed categories', { x: { oneHot: { categories: ['a', 1] } } }, /all strings or all integers/],
    ['fractional categories', { x: { oneHot: { categories: [1, 1.5] } } }, /all strings or all integers/],
    ['a repeated category', { x: { oneHot: { categories: ['a', 'b', 'a'] } } }, /lists 'a' twice/],
    [
      'another policy',
      { x: { oneHot: { categories: ['a'], handleUnknown: 'zero' } } },
      /handleUnknown must be 'error' or 'ignore'/,
    ],
    [
      'a numeric vocabulary',
      { x: { stringToIndex: { vocabulary: [1, 2], oov: 0 } } },
      /vocabulary must be strings/,
    ],
    ['a fractional oov', { x: { stringToIndex: { vocabulary: ['a'], oov: 0.5 } } }, /oov must be an integer/],
    ['no oov', { x: { stringToIndex: { vocabulary: ['a'] } } }, /needs oov/],
    ['an empty step list', { x: [] }, /must have 1 to 16 steps/],
    ['an empty input name', { '': { fillMissing: { value: 0 } } }, /input name '' must have 1 to 256/],
  ])('refuses %s', (_what, value, message) => {
    expect(rejection(() => parsePreprocessSpec(value)).message).toMatch(message);
  });

  it('names the input and the step at fault', () => {
    const e = rejection(() =>
      parsePreprocessSpec({ age: [{ fillMissing: { value: 0 } }, { normalize: { mean: 1, std: 0 } }] }),
    );
    expect(e.message).toBe("preprocess of 'age' step 2 (normalize): every std must be > 0");
  });

  it('bounds categories, vocabularies, steps and size', () => {
    const many = Array.from({ length: PREPROCESS_LIMITS.maxCategories }, (_, i) => `c${i}`);
    expect(parsePreprocessSpec({ x: { oneHot: { categories: many } } }).x).toHaveLength(1);
    expect(
      rejection(() => parsePreprocessSpec({ x: { oneHot: { categories: [...many, 'one more'] } } })).message,
    ).toMatch(/categories must list 1 to 4096 categories/);
    expect(
      rejection(() =>
        parsePreprocessSpec({ x: { stringToIndex: { vocabulary: [...many, 'more'], oov: 0 } } }),
      ).message,
    ).toMatch(/vocabulary must list 1 to 4096/);
    const steps = Array.from({ length: PREPROCESS_LIMITS.maxSteps + 1 }, () => ({ clip: { min: 0 } }));
    expect(rejection(() => parsePreprocessSpec({ x: steps })).message).toMatch(/must have 1 to 16 steps/);
    // 40 entries of 1 000 characters: under the category bounds, over the 32 KiB a declaration may take.
    const long = Array.from({ length: 40 }, (_, i) => `${'w'.repeat(1000)}${i}`);
    expect(
      rejection(() => parsePreprocessSpec({ x: { stringToIndex: { vocabulary: long, oov: 0 } } })).message,
    ).toMatch(/bytes serialized; at most 32768/);
    expect(
      rejection(() => parsePreprocessSpec({ x: { oneHot: { categories: ['a'.repeat(1025)] } } })).message,
    ).toMatch(/longer than 1024 characters/);
  });
});

describe('planPreprocess and preprocessRawInputs', () => {
  it('gives numeric steps the input itself, fixing a dynamic last axis from per-feature values', () => {
    const spec = parsePreprocessSpec({
      wide: [{ fillMissing: { value: 0 } }, { normalize: { mean: [1, 2, 3], std: 1 } }],
    });
    const [plan] = planPreprocess(spec, signature);
    expect(plan!.raw).toEqual({ name: 'wide', datatype: 'FP64', shape: [-1, 3] });
    expect(plan!.steps.map((s) => [s.inType, s.outType])).toEqual([
      ['FP64', 'FP64'],
      ['FP64', 'FP64'],
    ]);
    expect(plan!.castTo).toBeUndefined();
  });

  it('takes a BYTES column for string one-hot and INT64 for integer one-hot', () => {
    const strings = planPreprocess(
      parsePreprocessSpec({ color: { oneHot: { categories: ['r', 'g', 'b'] } } }),
      signature,
    );
    expect(strings[0]!.raw).toEqual({ name: 'color', datatype: 'BYTES', shape: [-1, 1] });
    expect(strings[0]!.steps[0]!.outShape).toEqual([-1, 3]);
    const ints = planPreprocess(
      parsePreprocessSpec({ color: { oneHot: { categories: [3, 5, 7] } } }),
      signature,
    );
    expect(ints[0]!.raw).toEqual({ name: 'color', datatype: 'INT64', shape: [-1, 1] });
  });

  it('takes strings of the input shape for stringToIndex, and casts where the graph expects another type', () => {
    const tokens = planPreprocess(
      parsePreprocessSpec({ tokens: { stringToIndex: { vocabulary: ['a'], oov: 1 } } }),
      signature,
    );
    expect(tokens[0]!.raw).toEqual({ name: 'tokens', datatype: 'BYTES', shape: [-1, 8] });
    expect(tokens[0]!.castTo).toBeUndefined();
    const asFloat = planPreprocess(
      parsePreprocessSpec({ features: { stringToIndex: { vocabulary: ['a'], oov: 1 } } }),
      signature,
    );
    expect(asFloat[0]!.castTo).toBe('FP32');
    const chained = planPreprocess(
      parsePreprocessSpec({
        wide: [
          { stringToIndex: { vocabulary: ['lo', 'hi'], oov: 2 } },
          { oneHot: { categories: [0, 1, 2] } },
        ],
      }),
      signature,
    );
    expect(chained[0]!.raw).toEqual({ name: 'wide', datatype: 'BYTES', shape: [-1, 1] });
    expect(chained[0]!.steps.map((s) => s.outType)).toEqual(['INT64', 'FP32']);
    expect(chained[0]!.castTo).toBe('FP64');
  });

  it.each([
    [
      'an input the model lacks',
      { nope: { fillMissing: { value: 0 } } },
      /names 'nope', which the model does not have \(inputs: features, color, tokens, wide\)/,
    ],
    [
      'per-feature values of the wrong length',
      { features: { normalize: { mean: [1, 2, 3], std: 1 } } },
      /has 3 values per feature, but the input's last axis has 4/,
    ],
    [
      'a one-hot of the wrong width',
      { features: { oneHot: { categories: ['a', 'b'] } } },
      /gives 2 columns, but the input's last axis has 4/,
    ],
    [
      'a float step on strings',
      {
        color: [
          { oneHot: { categories: ['a', 'b', 'c'] } },
          { clip: { min: 0 } },
          { stringToIndex: { vocabulary: ['a'], oov: 0 } },
        ],
      },
      /step 3 \(stringToIndex\) needs strings \(BYTES\), but gets FP32/,
    ],
    [
      'a numeric step on strings',
      { tokens: [{ stringToIndex: { vocabulary: ['a'], oov: 0 } }, { normalize: { mean: 0, std: 1 } }] },
      /step 2 \(normalize\) needs FP32 or FP64 values, but gets INT64/,
    ],
    [
      'string categories after indices',
      {
        color: [
          { stringToIndex: { vocabulary: ['a'], oov: 0 } },
          { oneHot: { categories: ['a', 'b', 'c'] } },
        ],
      },
      /has string categories, but gets INT64/,
    ],
  ])('refuses %s', (_what, value, message) => {
    expect(rejection(() => planPreprocess(parsePreprocessSpec(value), signature)).message).toMatch(message);
  });

  it('refuses a one-hot into an input that is not [batch, K]', () => {
    const seq: ModelSignature = {
      inputs: [{ name: 'seq', datatype: 'FP32', shape: [-1, 5, 3] }],
      outputs: [],
    };
    const spec = parsePreprocessSpec({ seq: { oneHot: { categories: ['a', 'b', 'c'] } } });
    expect(rejection(() => planPreprocess(spec, seq)).message).toBe(
      "preprocess of 'seq' step 1 (oneHot) gives [batch, 3], but the input has shape [-1, 5, 3]",
    );
  });

  it('lists the raw inputs in the model order, the others unchanged', () => {
    const spec = parsePreprocessSpec({
      tokens: { stringToIndex: { vocabulary: ['a', 'b'], oov: 2 } },
      color: { oneHot: { categories: ['r', 'g', 'b'], handleUnknown: 'ignore' } },
    });
    expect(preprocessRawInputs(spec, signature)).toEqual([
      { name: 'features', datatype: 'FP32', shape: [-1, 4] },
      { name: 'color', datatype: 'BYTES', shape: [-1, 1] },
      { name: 'tokens', datatype: 'BYTES', shape: [-1, 8] },
      { name: 'wide', datatype: 'FP64', shape: [-1, -1] },
    ]);
  });
});

describe('assertStackedPreprocessFits', () => {
  const clip = (n: number) => ({ clip: { min: Array.from({ length: n }, () => 0.125) } });
  const parent = (steps: unknown): ModelSignature => ({
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4], parameters: { preprocess: steps as never } }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
  });
  it('refuses a declaration that, stacked on the version’s own, passes the size of one declaration', () => {
    const half = clip(2600); // about 16 KB serialized
    expect(() => assertStackedPreprocessFits(parent([half]), { x: half })).not.toThrow();
    const e = (() => {
      try {
        assertStackedPreprocessFits(parent([half, half]), { x: half });
      } catch (x) {
        return x as BadRequestError;
      }
    })();
    expect(e?.code).toBe('INVALID_PREPROCESS');
    expect(e?.message).toMatch(
      /stacked on the pre-processing the version already has, is \d+ bytes serialized/,
    );
    // A version without pre-processing takes any declaration parsePreprocessSpec takes.
    const plain: ModelSignature = { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], outputs: [] };
    expect(() => assertStackedPreprocessFits(plain, { x: clip(4000) })).not.toThrow();
  });
});

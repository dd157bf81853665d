import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';
import { BadRequestError } from '../../functions/domain/errors';
import { compileSignature, validateInferenceRequest } from '../../functions/domain/inference-validation';
import type { ModelSignature } from '../../functions/domain/types';

const signature: ModelSignature = {
  inputs: [
    { name: 'features', datatype: 'FP32', shape: [-1, 4] },
    { name: 'mask', datatype: 'BOOL', shape: [-1] },
  ],
  outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 3] }],
};
const sig = compileSignature(signature, "model 'iris' version 2", ['softmax']);

const good = () => ({
  id: 'r1',
  inputs: [
    { name: 'features', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
    { name: 'mask', datatype: 'BOOL', shape: [1], data: [true] },
  ],
});

function rejection(body: unknown): BadRequestError {
  try {
    validateInferenceRequest(body, sig);
  } catch (e) {
    expect(e).toBeInstanceOf(BadRequestError);
    return e as BadRequestError;
  }
  throw new Error('expected a rejection');
}

describe('validateInferenceRequest', () => {
  it('decodes a valid request into feeds', () => {
    const v = validateInferenceRequest(good(), sig);
    expect(v.id).toBe('r1');
    expect(Array.from(v.feeds.features!.data as Float32Array)).toEqual([1, 2, 3, 4]);
    expect(v.feeds.mask!.shape).toEqual([1]);
    expect(v.outputs).toBeUndefined();
  });

  it('keeps the requested outputs (model and post-processing); one asked twice is DUPLICATE_OUTPUT', () => {
    const v = validateInferenceRequest(
      { ...good(), outputs: [{ name: 'softmax' }, { name: 'logits' }] },
      sig,
    );
    expect(v.outputs).toEqual(['softmax', 'logits']);
    const e = rejection({
      ...good(),
      outputs: [{ name: 'softmax' }, { name: 'logits' }, { name: 'softmax' }],
    });
    expect(e.code).toBe('DUPLICATE_OUTPUT');
    expect(e.message).toContain("'softmax'");
  });

  it('names an unknown input and lists the expected ones', () => {
    const body = good();
    body.inputs[1]!.name = 'maks';
    const e = rejection(body);
    expect(e.code).toBe('UNKNOWN_INPUT');
    expect(e.message).toContain("'maks'");
    expect(e.message).toContain("'mask'");
  });

  it('names a missing input with its datatype and shape', () => {
    const body = good();
    body.inputs.pop();
    const e = rejection(body);
    expect(e.code).toBe('MISSING_INPUT');
    expect(e.message).toContain("'mask' (BOOL [-1])");
  });

  it('rejects a duplicate input', () => {
    const body = good();
    body.inputs.push({ ...body.inputs[1]! });
    expect(rejection(body).code).toBe('DUPLICATE_INPUT');
  });

  it('rejects a wrong datatype naming both', () => {
    const body = good();
    body.inputs[0]!.datatype = 'FP64';
    const e = rejection(body);
    expect(e.code).toBe('DATATYPE_MISMATCH');
    expect(e.message).toMatch(/'features' has datatype FP64; .* expects FP32/);
  });

  it('rejects a wrong rank and a wrong fixed dimension', () => {
    const rank = good();
    rank.inputs[0]!.shape = [4];
    expect(rejection(rank).code).toBe('SHAPE_MISMATCH');
    const dim = good();
    dim.inputs[0]!.shape = [2, 2];
    const e = rejection(dim);
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toContain('dimension 1 must be 4');
  });

  it('rejects a data length that does not match the shape', () => {
    const body = good();
    body.inputs[0]!.shape = [2, 4];
    expect(rejection(body).code).toBe('DATA_LENGTH_MISMATCH');
  });

  it('rejects an unknown output', () => {
    const e = rejection({ ...good(), outputs: [{ name: 'probs' }] });
    expect(e.code).toBe('UNKNOWN_OUTPUT');
    expect(e.message).toContain("'logits'");
  });

  it.each([
    [null, 'INVALID_REQUEST'],
    [[], 'INVALID_REQUEST'],
    [{ inputs: [] }, 'INVALID_REQUEST'],
    [{ inputs: {} }, 'INVALID_REQUEST'],
    [{ id: 3, inputs: good().inputs }, 'INVALID_REQUEST'],
    [
      { inputs: [{ name: 'features', datatype: 'FLOAT', shape: [1, 4], data: [1, 2, 3, 4] }] },
      'INVALID_DATATYPE',
    ],
    [{ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, -4], data: [] }] }, 'INVALID_SHAPE'],
    [{ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4] }] }, 'INVALID_DATA'],
    [{ inputs: good().inputs, outputs: 'logits' }, 'INVALID_REQUEST'],
  ])('rejects malformed request %j with %s', (body, code) => {
    expect(rejection(body).code).toBe(code);
  });

  const withInputParameters = (parameters: unknown) => {
    const [features, mask] = good().inputs;
    return { inputs: [{ ...features, parameters }, mask] };
  };
  it.each([
    ['a string', 'x'],
    ['an array', []],
    ['a number', 3],
    ['a boolean', true],
    ['null', null],
  ])('rejects parameters that are %s on the request, an input or an output', (got, parameters) => {
    const cases: [unknown, string][] = [
      [{ ...good(), parameters }, "'parameters' must be an object"],
      [withInputParameters(parameters), "input 'features': 'parameters' must be an object"],
      [
        { ...good(), outputs: [{ name: 'logits', parameters }] },
        "output 'logits': 'parameters' must be an object",
      ],
    ];
    for (const [body, message] of cases) {
      const e = rejection(body);
      expect(e.code).toBe('INVALID_PARAMETERS');
      expect(e.message).toBe(`${message}, got ${got}`);
    }
  });

  it.each([
    ['yes', '"yes"'],
    [1, '1'],
    [null, 'null'],
    [{}, 'an object'],
  ])('rejects binary data flags that are not booleans (%j), before the request runs', (flag, shown) => {
    for (const [body, message] of [
      [{ ...good(), parameters: { binary_data_output: flag } }, "'parameters': 'binary_data_output'"],
      [
        { ...good(), outputs: [{ name: 'logits', parameters: { binary_data: flag } }] },
        "output 'logits': 'binary_data'",
      ],
    ] as const) {
      const e = rejection(body);
      expect(e.code).toBe('INVALID_PARAMETERS');
      expect(e.message).toBe(`${message} must be true or false, got ${shown}`);
    }
  });

  it('says an input with binary_data_size but no data needs the binary form', () => {
    const [features, mask] = good().inputs;
    const e = rejection({
      inputs: [{ ...features, data: undefined, parameters: { binary_data_size: 32 } }, mask],
    });
    expect(e.code).toBe('INVALID_BINARY_DATA');
    expect(e.message).toContain('Inference-Header-Content-Length');
  });

  it('accepts object parameters on the request, an input and an output', () => {
    const body = {
      ...withInputParameters({ content_type: 'np' }),
      parameters: { priority: 1 },
      outputs: [{ name: 'logits', parameters: { binary_data: false } }],
    };
    expect(validateInferenceRequest(body, sig).outputs).toEqual(['logits']);
  });
});

describe('refusals that quote what the caller sent', () => {
  /** JSON text of an array nested `depth` levels (too deep for a recursive stringify). */
  const deep = (depth: number) => JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`) as unknown;

  it('name a deeply nested datatype or data element by its kind, as a 400', () => {
    const datatype = rejection({
      inputs: [{ name: 'features', shape: [1, 4], datatype: deep(5000), data: [1, 2, 3, 4] }],
    });
    expect(datatype.code).toBe('INVALID_DATATYPE');
    expect(datatype.message).toMatch(/^input 'features': datatype an array is not one of /);
    const element = rejection({
      inputs: [{ ...good().inputs[0]!, data: [1, deep(5000), 3, 4] }, good().inputs[1]],
    });
    expect(element.code).toBe('INVALID_DATA');
    expect(element.message).toMatch(/data\[1\] is an array; expected/);
    const object = rejection({
      inputs: [{ ...good().inputs[0]!, data: [1, { a: 1 }, 3, 4] }, good().inputs[1]],
    });
    expect(object.message).toMatch(/data\[1\] is an object; expected/);
  });

  it('quote a long string shortened, and no message is longer than LIMITS.maxErrorMessageChars', () => {
    const datatype = rejection({
      inputs: [{ name: 'features', shape: [1, 4], datatype: '"'.repeat(1_000_000), data: [1, 2, 3, 4] }],
    });
    expect(datatype.code).toBe('INVALID_DATATYPE');
    expect(datatype.message).toContain(`datatype "${'\\"'.repeat(80)}…" is not one of`);
    const named = rejection({
      inputs: [{ name: 'n'.repeat(1_000_000), shape: [1, 4], datatype: 'FP33', data: [1, 2, 3, 4] }],
    });
    expect(named.message.length).toBe(LIMITS.maxErrorMessageChars + 1);
    expect(named.message.endsWith('…')).toBe(true);
    expect(new BadRequestError('x'.repeat(LIMITS.maxErrorMessageChars)).message).toBe(
      'x'.repeat(LIMITS.maxErrorMessageChars),
    );
  });
});

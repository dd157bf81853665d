import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../functions/domain/errors';
import { parsePreprocessSpec, preprocessRawInputs } from '../../functions/domain/preprocess-spec';
import { buildMlp, buildModel, ElemType, type ValueSpec } from '../../functions/local/onnx-builder';
import {
  applyPreprocess,
  graphSignature,
  isUnknownCategoryError,
  ML_DOMAIN,
} from '../../functions/transforms/preprocess';

const f32 = Math.fround;

/** `y = Identity(x)`: the preprocessed model answers the steps' result itself. */
function identity(x: ValueSpec, opset?: number): Uint8Array {
  return buildModel({
    inputs: [x],
    outputs: [{ ...x, name: 'y' }],
    nodes: [{ opType: 'Identity', inputs: [x.name], outputs: ['y'] }],
    ...(opset !== undefined ? { opset } : {}),
  });
}

async function run(
  model: Uint8Array,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model);
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

const floats = (t: ort.Tensor | undefined) => Array.from(t!.data as Float32Array);
const preprocess = (model: Uint8Array, spec: unknown) => applyPreprocess(model, parsePreprocessSpec(spec));

describe('applyPreprocess', () => {
  it('normalizes per feature: (x - mean) / std in FP32', async () => {
    const model = preprocess(identity({ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 3] }), {
      x: { normalize: { mean: [1, -2, 0.5], std: [2, 0.3, 4] } },
    });
    const x = [3, 4.5, -1, 0.1, -2, 7.25];
    const out = await run(model, { x: new ort.Tensor('float32', Float32Array.from(x), [2, 3]) });
    const mean = [1, -2, 0.5];
    const std = [2, 0.3, 4];
    const expected = x.map((v, i) => f32(f32(f32(v) - f32(mean[i % 3]!)) / f32(std[i % 3]!)));
    expect(out.y!.dims).toEqual([2, 3]);
    expect(floats(out.y)).toEqual(expected);
  });

  it('min-max scales to [0, 1] on the declared range, values outside it outside [0, 1]', async () => {
    const model = preprocess(identity({ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 2] }), {
      x: { minmax: { min: [10, 0], max: [20, 0.5] } },
    });
    const out = await run(model, {
      x: new ort.Tensor('float32', Float32Array.from([15, 0.25, 25, -0.5]), [2, 2]),
    });
    expect(floats(out.y)).toEqual([0.5, 0.5, 1.5, -1]);
  });

  it('one-hot encodes a BYTES column; an unknown category is an all-zeros row with ignore', async () => {
    const model = preprocess(identity({ name: 'color', elemType: ElemType.FLOAT, shape: ['batch', 3] }), {
      color: { oneHot: { categories: ['red', 'green', 'blue'], handleUnknown: 'ignore' } },
    });
    expect(graphSignature(model).inputs).toEqual([{ name: 'color', datatype: 'BYTES', shape: [-1, 1] }]);
    const out = await run(model, { color: new ort.Tensor('string', ['blue', 'purple', 'red'], [3, 1]) });
    expect(out.y!.dims).toEqual([3, 3]);
    expect(floats(out.y)).toEqual([0, 0, 1, 0, 0, 0, 1, 0, 0]);
  });

  it('fails the run on an unknown category with handleUnknown error, recognisably', async () => {
    const model = preprocess(identity({ name: 'color', elemType: ElemType.FLOAT, shape: ['batch', 3] }), {
      color: { oneHot: { categories: ['red', 'green', 'blue'], handleUnknown: 'error' } },
    });
    const known = await run(model, { color: new ort.Tensor('string', ['green'], [1, 1]) });
    expect(floats(known.y)).toEqual([0, 1, 0]);
    const failure = await run(model, { color: new ort.Tensor('string', ['green', 'purple'], [2, 1]) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(Error);
    expect(isUnknownCategoryError(failure)).toBe(true);
    expect(isUnknownCategoryError(new Error('Got invalid dimensions for input'))).toBe(false);
  });

  it('one-hot encodes an INT64 column of integer categories', async () => {
    const model = preprocess(identity({ name: 'code', elemType: ElemType.FLOAT, shape: ['batch', 3] }), {
      code: { oneHot: { categories: [3, 5, 7], handleUnknown: 'ignore' } },
    });
    expect(graphSignature(model).inputs).toEqual([{ name: 'code', datatype: 'INT64', shape: [-1, 1] }]);
    const out = await run(model, { code: new ort.Tensor('int64', BigInt64Array.from([7n, 4n]), [2, 1]) });
    expect(floats(out.y)).toEqual([0, 0, 1, 0, 0, 0]);
  });

  it('squeezes the one-hot axis with the attribute form on opset 11', async () => {
    const model = preprocess(identity({ name: 'c', elemType: ElemType.FLOAT, shape: ['batch', 2] }, 11), {
      c: { oneHot: { categories: ['a', 'b'] } },
    });
    const out = await run(model, { c: new ort.Tensor('string', ['b', 'a'], [2, 1]) });
    expect(out.y!.dims).toEqual([2, 2]);
    expect(floats(out.y)).toEqual([0, 1, 1, 0]);
  });

  it('maps a string column to vocabulary indices feeding an embedding (Gather), oov for unknown words', async () => {
    const dim = 2;
    const table = [0.1, 0.2, 1.1, 1.2, 2.1, 2.2, -9, -9];
    const embedding = buildModel({
      inputs: [{ name: 'tokens', elemType: ElemType.INT64, shape: ['batch', 3] }],
      outputs: [{ name: 'vectors', elemType: ElemType.FLOAT, shape: ['batch', 3, dim] }],
      nodes: [
        { opType: 'Gather', inputs: ['table', 'tokens'], outputs: ['vectors'], attributes: { axis: 0 } },
      ],
      initializers: [{ name: 'table', elemType: ElemType.FLOAT, dims: [4, dim], floats: table }],
    });
    const vocabulary = ['the', 'cat', 'sat'];
    const model = preprocess(embedding, { tokens: { stringToIndex: { vocabulary, oov: 3 } } });
    const words = ['the', 'dog', 'sat', 'cat', 'cat', ''];
    const out = await run(model, { tokens: new ort.Tensor('string', words, [2, 3]) });
    const expected = words.flatMap((w) => {
      const i = vocabulary.includes(w) ? vocabulary.indexOf(w) : 3;
      return table.slice(i * dim, i * dim + dim).map(f32);
    });
    expect(out.vectors!.dims).toEqual([2, 3, dim]);
    expect(floats(out.vectors)).toEqual(expected);
  });

  it('chains stringToIndex and an integer one-hot, the oov index as its own category', async () => {
    const model = preprocess(identity({ name: 'size', elemType: ElemType.FLOAT, shape: ['batch', 4] }), {
      size: [
        { stringToIndex: { vocabulary: ['S', 'M', 'L'], oov: 3 } },
        { oneHot: { categories: [0, 1, 2, 3] } },
      ],
    });
    const out = await run(model, { size: new ort.Tensor('string', ['L', 'XXL'], [2, 1]) });
    expect(floats(out.y)).toEqual([0, 0, 1, 0, 0, 0, 0, 1]);
  });

  it('casts indices to the FP32 the graph expects', async () => {
    const model = preprocess(identity({ name: 'ids', elemType: ElemType.FLOAT, shape: ['batch', 2] }), {
      ids: { stringToIndex: { vocabulary: ['a', 'b'], oov: -1 } },
    });
    const out = await run(model, { ids: new ort.Tensor('string', ['b', 'z'], [1, 2]) });
    expect(out.y!.type).toBe('float32');
    expect(floats(out.y)).toEqual([1, -1]);
  });

  it('fills NaN, then normalizes, then clips (steps in order)', async () => {
    const model = preprocess(identity({ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 2] }), {
      x: [
        { fillMissing: { value: 4 } },
        { normalize: { mean: [2, 0], std: [2, 0.5] } },
        { clip: { min: -1, max: [1.5, 3] } },
      ],
    });
    const x = [Number.NaN, 0.25, 100, Number.NaN, -7, 1];
    const out = await run(model, { x: new ort.Tensor('float32', Float32Array.from(x), [3, 2]) });
    const mean = [2, 0];
    const std = [2, 0.5];
    const hi = [1.5, 3];
    const expected = x.map((v, i) => {
      const filled = Number.isNaN(v) ? 4 : f32(v);
      const z = f32(f32(filled - mean[i % 2]!) / std[i % 2]!);
      return Math.min(Math.max(z, -1), hi[i % 2]!);
    });
    expect(expected).toEqual([1, 0.5, 1.5, 3, -1, 2]);
    expect(floats(out.y)).toEqual(expected);
  });

  it('keeps FP64 inputs in FP64', async () => {
    const model = preprocess(identity({ name: 'x', elemType: ElemType.DOUBLE, shape: ['batch', 1] }), {
      x: [{ fillMissing: { value: 0.1 } }, { normalize: { mean: 0.3, std: 3 } }],
    });
    expect(graphSignature(model).inputs).toEqual([{ name: 'x', datatype: 'FP64', shape: [-1, 1] }]);
    const out = await run(model, {
      x: new ort.Tensor('float64', Float64Array.from([Number.NaN, 1]), [2, 1]),
    });
    expect(Array.from(out.y!.data as Float64Array)).toEqual([(0.1 - 0.3) / 3, (1 - 0.3) / 3]);
  });

  it('preprocesses one input of two, the other unchanged, and lists the raw inputs the session sees', async () => {
    const base = buildModel({
      inputs: [
        { name: 'num', elemType: ElemType.FLOAT, shape: ['batch', 2] },
        { name: 'cat', elemType: ElemType.FLOAT, shape: ['batch', 3] },
        { name: 'other', elemType: ElemType.FLOAT, shape: ['batch', 1] },
      ],
      outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', 6] }],
      nodes: [{ opType: 'Concat', inputs: ['num', 'cat', 'other'], outputs: ['y'], attributes: { axis: 1 } }],
    });
    const spec = parsePreprocessSpec({
      num: { normalize: { mean: [10, 20], std: [5, 10] } },
      cat: { oneHot: { categories: ['x', 'y', 'z'], handleUnknown: 'ignore' } },
    });
    const model = applyPreprocess(base, spec);
    const session = await ort.InferenceSession.create(model);
    try {
      const seen = session.inputMetadata.map((m) => ({
        name: m.name,
        type: m.isTensor ? m.type : undefined,
        shape: m.isTensor ? m.shape.map((d) => (typeof d === 'number' ? d : -1)) : undefined,
      }));
      const described = preprocessRawInputs(spec, graphSignature(base));
      expect(seen).toEqual([
        { name: 'num', type: 'float32', shape: [-1, 2] },
        { name: 'cat', type: 'string', shape: [-1, 1] },
        { name: 'other', type: 'float32', shape: [-1, 1] },
      ]);
      expect(described.map((d) => [d.name, d.datatype, d.shape])).toEqual([
        ['num', 'FP32', [-1, 2]],
        ['cat', 'BYTES', [-1, 1]],
        ['other', 'FP32', [-1, 1]],
      ]);
      const out = (await session.run({
        num: new ort.Tensor('float32', Float32Array.from([15, 0, 10, 40]), [2, 2]),
        cat: new ort.Tensor('string', ['z', 'x'], [2, 1]),
        other: new ort.Tensor('float32', Float32Array.from([7, -7]), [2, 1]),
      })) as Record<string, ort.Tensor>;
      expect(floats(out.y)).toEqual([1, -2, 0, 0, 1, 7, 0, 2, 1, 0, 0, -7]);
    } finally {
      await session.release();
    }
  });

  it('feeds an MLP exactly what it gets from hand-normalized inputs', async () => {
    const mlp = buildMlp({ inFeatures: 4, layers: [8, 3], seed: 7 });
    const mean = [5.8, 3.0, 3.7, 1.2];
    const std = [0.8, 0.4, 1.8, 0.8];
    const model = preprocess(mlp, { input: { normalize: { mean, std } } });
    const raw = [5.1, 3.5, 1.4, 0.2, 6.7, 3.1, 4.7, 1.5];
    const normalized = raw.map((v, i) => f32(f32(f32(v) - f32(mean[i % 4]!)) / f32(std[i % 4]!)));
    const viaPreprocess = await run(model, {
      input: new ort.Tensor('float32', Float32Array.from(raw), [2, 4]),
    });
    const byHand = await run(mlp, {
      input: new ort.Tensor('float32', Float32Array.from(normalized), [2, 4]),
    });
    expect(floats(viaPreprocess.output)).toEqual(floats(byHand.output));
  });

  it('renames the reads of a preprocessed input inside subgraphs (If branches) too', async () => {
    const { onnx } = onnxProto;
    const A = onnx.AttributeProto.AttributeType;
    const info = (name: string, elemType: number, dims: (number | string)[]) => ({
      name,
      type: {
        tensorType: {
          elemType,
          shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    });
    const branch = (name: string, opType: string) => ({
      name,
      node: [{ opType, input: ['x'], output: [`${name}_out`] }],
      output: [info(`${name}_out`, ElemType.FLOAT, ['batch', 2])],
    });
    const model = onnx.ModelProto.encode(
      onnx.ModelProto.create({
        irVersion: 8,
        opsetImport: [{ domain: '', version: 17 }],
        graph: {
          name: 'branches',
          input: [info('x', ElemType.FLOAT, ['batch', 2]), info('flag', ElemType.BOOL, [])],
          output: [info('y', ElemType.FLOAT, ['batch', 2])],
          node: [
            {
              opType: 'If',
              input: ['flag'],
              output: ['y'],
              attribute: [
                { name: 'then_branch', type: A.GRAPH, g: branch('then', 'Identity') },
                { name: 'else_branch', type: A.GRAPH, g: branch('else', 'Neg') },
              ],
            },
          ],
        },
      }),
    ).finish();
    const preprocessed = preprocess(model, { x: { minmax: { min: 0, max: 4 } } });
    const x = new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2]);
    const flag = (v: boolean) => new ort.Tensor('bool', Uint8Array.of(v ? 1 : 0), []);
    expect(floats((await run(preprocessed, { x, flag: flag(true) })).y)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(floats((await run(preprocessed, { x, flag: flag(false) })).y)).toEqual([-0.25, -0.5, -0.75, -1]);
  });

  it('raises an ai.onnx.ml import of 1 to 2 for stringToIndex when the model has no LabelEncoder of its own', async () => {
    const decoded = onnxProto.onnx.ModelProto.decode(
      identity({ name: 'x', elemType: ElemType.INT64, shape: ['batch', 1] }),
    );
    decoded.opsetImport.push(onnxProto.onnx.OperatorSetIdProto.create({ domain: ML_DOMAIN, version: 1 }));
    const model = preprocess(onnxProto.onnx.ModelProto.encode(decoded).finish(), {
      x: { stringToIndex: { vocabulary: ['p', 'q'], oov: 9 } },
    });
    const ml = onnxProto.onnx.ModelProto.decode(model).opsetImport.find((o) => o.domain === ML_DOMAIN);
    expect(Number(ml?.version)).toBe(2);
    const out = await run(model, { x: new ort.Tensor('string', ['q', 'r'], [2, 1]) });
    expect(Array.from(out.y!.data as BigInt64Array)).toEqual([1n, 9n]);
    decoded.graph!.node!.push(
      onnxProto.onnx.NodeProto.create({
        opType: 'LabelEncoder',
        domain: ML_DOMAIN,
        input: ['s'],
        output: ['t'],
      }),
    );
    expect(() =>
      preprocess(onnxProto.onnx.ModelProto.encode(decoded).finish(), {
        x: { stringToIndex: { vocabulary: ['p'], oov: 1 } },
      }),
    ).toThrow(/needs ai.onnx.ml opset 2; the model imports 1 and has LabelEncoder nodes of that version/);
  });

  it('adds the ai.onnx.ml opset import when a step needs it, and only then', () => {
    const x = { name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 2] } as const;
    const imports = (m: Uint8Array) =>
      onnxProto.onnx.ModelProto.decode(m).opsetImport.map((o) => [o.domain, Number(o.version)]);
    expect(imports(preprocess(identity(x), { x: { clip: { min: 0 } } }))).toEqual([['', 17]]);
    expect(imports(preprocess(identity(x), { x: { oneHot: { categories: ['a', 'b'] } } }))).toEqual([
      ['', 17],
      [ML_DOMAIN, 2],
    ]);
  });

  it('refuses what the model cannot take: unknown inputs, an input that is also an output, an old opset', () => {
    const x = { name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 2] } as const;
    const refusal = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(BadRequestError);
        return (e as BadRequestError).message;
      }
      throw new Error('expected a refusal');
    };
    expect(refusal(() => preprocess(identity(x), { z: { clip: { min: 0 } } }))).toMatch(
      /names 'z', which the model does not have \(inputs: x\)/,
    );
    const passThrough = buildModel({
      inputs: [x],
      outputs: [x, { ...x, name: 'y' }],
      nodes: [{ opType: 'Relu', inputs: ['x'], outputs: ['y'] }],
    });
    expect(refusal(() => preprocess(passThrough, { x: { clip: { min: 0 } } }))).toMatch(
      /also a graph output/,
    );
    expect(refusal(() => preprocess(identity(x, 8), { x: { fillMissing: { value: 0 } } }))).toMatch(
      /opset to be 9 or later; it is 8/,
    );
  });
});

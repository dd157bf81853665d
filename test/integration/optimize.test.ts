/**
 * `optimize: basic` through onnxruntime-node: the saved model answers as its source does, constant folding shows in
 * the stored graph, and the hardware-specific levels are refused.
 */
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { BadRequestError, UnprocessableModelError } from '../../functions/domain/errors';
import { parsePreprocessSpec } from '../../functions/domain/preprocess-spec';
import { buildMlp, buildModel, ElemType, seededRandom } from '../../functions/local/onnx-builder';
import { optimizeBasic, optimizeModel, parseOptimizeLevel } from '../../functions/transforms/optimize';
import { applyPreprocess } from '../../functions/transforms/preprocess';

/** Runs a model as stored: no optimisation by the loading session. */
async function runAsStored(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled' });
  try {
    const out = await session.run(feeds);
    return out[session.outputNames[0]!]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

const decode = (m: Uint8Array) => onnxProto.onnx.ModelProto.decode(m);
const opTypes = (m: Uint8Array) => (decode(m).graph?.node ?? []).map((n) => n.opType);

function randomInput(rows: number, cols: number, seed: number): ort.Tensor {
  const rand = seededRandom(seed);
  return new ort.Tensor(
    'float32',
    Float32Array.from({ length: rows * cols }, () => rand() * 4 - 2),
    [rows, cols],
  );
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** `y = x * ((c1 + c2) * c3)`: everything but the last Mul is constant. */
function foldable(): Uint8Array {
  const width = 64;
  const rand = seededRandom(3);
  const values = () => Float32Array.from({ length: width }, () => rand() * 2 - 1);
  return buildModel({
    name: 'foldable',
    inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', width] }],
    outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', width] }],
    nodes: [
      { opType: 'Add', inputs: ['c1', 'c2'], outputs: ['sum'] },
      { opType: 'Mul', inputs: ['sum', 'c3'], outputs: ['scale'] },
      { opType: 'Identity', inputs: ['x'], outputs: ['x_copy'] },
      { opType: 'Mul', inputs: ['x_copy', 'scale'], outputs: ['y'] },
    ],
    initializers: ['c1', 'c2', 'c3'].map((name) => ({
      name,
      elemType: ElemType.FLOAT,
      dims: [width],
      floats: values(),
    })),
  });
}

describe('optimizeBasic', () => {
  it('keeps an MLP answering as before (within 1e-6), no larger and with no more nodes', async () => {
    const mlp = buildMlp({ inFeatures: 32, layers: [64, 64, 10], seed: 11 });
    const optimized = await optimizeBasic(mlp);
    expect(opTypes(optimized).length).toBeLessThanOrEqual(opTypes(mlp).length);
    expect(optimized.byteLength).toBeLessThanOrEqual(mlp.byteLength);
    const x = randomInput(16, 32, 5);
    const before = await runAsStored(mlp, { input: x });
    const after = await runAsStored(optimized, { input: x });
    expect(maxAbsDiff(before, after)).toBeLessThanOrEqual(1e-6);
  });

  it('folds constant subgraphs into initializers: fewer nodes, fewer bytes, same answers', async () => {
    const model = foldable();
    const optimized = await optimizeBasic(model);
    expect(opTypes(model)).toEqual(['Add', 'Mul', 'Identity', 'Mul']);
    expect(opTypes(optimized)).toEqual(['Mul']);
    expect(decode(optimized).graph?.initializer).toHaveLength(1);
    expect(optimized.byteLength).toBeLessThan(model.byteLength);
    const x = randomInput(8, 64, 9);
    expect(
      maxAbsDiff(await runAsStored(model, { x }), await runAsStored(optimized, { x })),
    ).toBeLessThanOrEqual(1e-6);
  });

  it('stores only standard operators, imports only the opsets it uses, and keeps the inputs and outputs', async () => {
    const optimized = decode(await optimizeBasic(foldable()));
    const domains = new Set((optimized.graph?.node ?? []).map((n) => n.domain ?? ''));
    expect([...domains].every((d) => d === '' || d === 'ai.onnx')).toBe(true);
    expect(optimized.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    expect(optimized.graph?.input?.map((i) => i.name)).toEqual(['x']);
    expect(optimized.graph?.output?.map((o) => o.name)).toEqual(['y']);
  });

  it('keeps a preprocessed model (ai.onnx.ml one-hot on a BYTES input) and its ai.onnx.ml import', async () => {
    const mlp = buildMlp({ inFeatures: 3, layers: [4, 2], seed: 2 });
    const spec = parsePreprocessSpec({
      input: { oneHot: { categories: ['a', 'b', 'c'], handleUnknown: 'ignore' } },
    });
    const preprocessed = applyPreprocess(mlp, spec);
    const optimized = await optimizeBasic(preprocessed);
    expect(decode(optimized).opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([
      ['', 17],
      ['ai.onnx.ml', 2],
    ]);
    const input = new ort.Tensor('string', ['c', 'a', 'zz'], [3, 1]);
    expect(
      maxAbsDiff(await runAsStored(preprocessed, { input }), await runAsStored(optimized, { input })),
    ).toBe(0);
  });

  it('leaves no temporary file behind', async () => {
    const ours = async () => (await readdir(tmpdir())).filter((f) => f.startsWith('maas-optimize-'));
    const before = await ours();
    await optimizeBasic(foldable());
    await expect(optimizeBasic(Uint8Array.of(1, 2, 3))).rejects.toBeInstanceOf(UnprocessableModelError);
    expect(await ours()).toEqual(before);
  });
});

describe('optimize levels', () => {
  it.each(['all', 'extended', 'layout'])("refuses '%s' as hardware-specific", async (level) => {
    const refusal = await optimizeModel(foldable(), level).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refusal).toBeInstanceOf(BadRequestError);
    expect((refusal as BadRequestError).code).toBe('INVALID_TRANSFORM');
    expect((refusal as BadRequestError).message).toMatch(
      new RegExp(`optimize level '${level}' is hardware-specific .* use 'basic'`),
    );
  });

  it('refuses anything that is not a level, and optimises at basic', async () => {
    expect(() => parseOptimizeLevel('disabled')).toThrow(/optimize level must be 'basic', got 'disabled'/);
    expect(() => parseOptimizeLevel(2)).toThrow(/optimize level must be 'basic', got number/);
    expect(opTypes(await optimizeModel(foldable(), 'basic'))).toEqual(['Mul']);
  });
});

/**
 * Derived versions served like any other, on DynamoDB Local + s3rver + onnxruntime-node, through the registry
 * handler, the worker's `runDerive` and the predict handler:
 *
 * - an int8 version is aliased, promoted and rolled back, and the predict path follows each move (by alias, with
 *   no ref once `prod` moves, and back); a version derived from it is served in turn;
 * - a version derived with `preprocess` answers raw features (normalised and clipped floats, a one-hot of BYTES
 *   categories with multi-byte UTF-8, a vocabulary index) exactly as a hand-computed reference, in JSON and in
 *   binary, an unknown category per its policy (an all-zeros row, the `oov` index; 400 `UNKNOWN_CATEGORY` naming
 *   the input under `handleUnknown: 'error'`), and lists its raw inputs in its model metadata;
 * - int8 then preprocess answers raw features exactly as the int8 version answers the hand-preprocessed ones.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxModelTransformer } from '../../functions/adapters/onnx-transformer';
import { sharedOrtEngine } from '../../functions/adapters/ort-engine';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { type DeriveDeps, runDerive } from '../../functions/app/derive';
import { S3_KEYS } from '../../functions/contract/env';
import { type DeriveMessage, DeriveMessageSchema } from '../../functions/domain/derive';
import type { HttpEvent } from '../../functions/handlers/http';
import { createRegistryHandler } from '../../functions/handlers/registry';
import { buildMlp, buildModel, ElemType } from '../../functions/local/onnx-builder';
import { defaultReduceRange } from '../../functions/transforms/quantize';
import { type ApiEventOptions, apiEvent, parseResult } from '../helpers/apigw';
import { createPredictTestEnv, type PredictTestEnv } from '../helpers/predict-env';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected loosely in assertions
type Json = Record<string, any>;

const f32 = Math.fround;
/** `{quantize: 'int8'}` as the worker records it once applied: the range of this architecture, per tensor. */
const INT8_AS_APPLIED = { quantize: 'int8', reduceRange: defaultReduceRange(), perChannel: false };

let env: PredictTestEnv;
let deps: DeriveDeps;
const sent: DeriveMessage[] = [];

beforeAll(async () => {
  env = await createPredictTestEnv();
  deps = {
    repo: env.repo,
    store: env.store,
    inspector: new OrtModelInspector(),
    transformer: new OnnxModelTransformer(),
    engine: sharedOrtEngine(),
  };
});
afterAll(() => env?.dispose());

const registry = async (method: string, path: string, opts: ApiEventOptions = {}) =>
  parseResult<Json>(
    await createRegistryHandler({
      repo: deps.repo,
      store: deps.store,
      inspector: deps.inspector,
      queue: {
        send: async (m) => {
          sent.push(DeriveMessageSchema.parse(m));
          return `m-${sent.length}`;
        },
      },
    })(apiEvent(method, path, opts)),
  );

/** Derives the next version of `name` from `from` and completes it as the worker does; its registry view. */
async function derive(name: string, from: number, body: Json): Promise<Json> {
  const r = await registry('POST', `/models/${name}/versions/${from}/derive`, { body });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  expect(await runDerive(deps, sent.at(-1)!)).toBe('READY');
  const v = (await registry('GET', `/models/${name}/versions/${r.body.version}`)).body;
  expect(v).toMatchObject({ status: 'READY', derivedFrom: from });
  return v;
}

const infer = (path: string, body: unknown) => env.call<Json>('POST', path, body);
/** Moves the predict path's clock past the alias TTL (5 s in the test env). */
const pastAliasTtl = () => {
  env.now += 5001;
};

describe('a derived version is aliased, promoted and rolled back like any other, and served each time', () => {
  const X = {
    inputs: [
      {
        name: 'input',
        datatype: 'FP32',
        shape: [2, 8],
        data: Array.from({ length: 16 }, (_, i) => Math.sin(i + 1)),
      },
    ],
  };

  it('staging, then prod, then rolled back: the predict path follows each move', {
    timeout: 120_000,
  }, async () => {
    await env.register('life', buildMlp({ inFeatures: 8, layers: [32, 4], seed: 3 }));
    const v2 = await derive('life', 1, { transforms: [{ quantize: 'int8' }] });
    const byNumber = async (v: number) => {
      const r = await infer(`/v2/models/life/versions/${v}/infer`, X);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body.outputs[0].data as number[];
    };
    const fp32 = await byNumber(1);
    const int8 = await byNumber(2);
    // The two answer differently (int8 is not FP32), so which one answers is seen in the numbers.
    expect(int8).not.toEqual(fp32);
    expect(Math.max(...int8.map((y, i) => Math.abs(y - fp32[i]!)))).toBeLessThan(0.05);

    const staging = await registry('PUT', '/models/life/aliases/staging', { body: { version: 2 } });
    expect(staging.status, JSON.stringify(staging.body)).toBe(200);
    const viaStaging = await infer('/v2/models/life/versions/staging/infer', X);
    expect([viaStaging.status, viaStaging.body.model_version]).toEqual([200, '2']);
    expect(viaStaging.body.outputs[0].data).toEqual(int8);

    // prod is version 1 until promoted.
    expect((await infer('/v2/models/life/infer', X)).body).toMatchObject({ model_version: '1' });
    const promoted = await registry('PUT', '/models/life/aliases/prod', {
      body: { version: 2, expectedVersion: 1, reason: 'int8' },
    });
    expect(promoted.body).toMatchObject({ alias: 'prod', version: 2, previousVersion: 1 });
    pastAliasTtl();
    const served = await infer('/v2/models/life/infer', X);
    expect([served.status, served.body.model_version]).toEqual([200, '2']);
    expect(served.body.outputs[0].data).toEqual(int8);
    const meta = await env.call<Json>('GET', '/v2/models/life');
    expect(meta.body).toMatchObject({ name: 'life', versions: ['2'] });
    expect(meta.body.inputs).toEqual(v2.signature.inputs);

    const back = await registry('POST', '/models/life/aliases/prod/rollback', { body: { reason: 'undo' } });
    expect(back.body).toMatchObject({ alias: 'prod', version: 1, previousVersion: 2 });
    pastAliasTtl();
    const restored = await infer('/v2/models/life/infer', X);
    expect([restored.status, restored.body.model_version]).toEqual([200, '1']);
    expect(restored.body.outputs[0].data).toEqual(fp32);
    const history = await registry('GET', '/models/life/aliases/prod/history');
    expect(history.status).toBe(200);

    // A version derived from the derived one is served in turn, its lineage pointing at it.
    const v3 = await derive('life', 2, { transforms: [{ optimize: 'basic' }], gate: { rows: 200 } });
    expect(v3.transforms).toEqual([{ optimize: 'basic' }]);
    const opt = await infer('/v2/models/life/versions/3/infer', X);
    expect([opt.status, opt.body.model_version]).toEqual([200, '3']);
    const optimized = opt.body.outputs[0].data as number[];
    expect(Math.max(...optimized.map((y, i) => Math.abs(y - int8[i]!)))).toBeLessThan(1e-4);
  });
});

// ---------------------------------------------------------------------------------------------
// Preprocessing

/** `y = Concat(num, color, word)`: the model answers its preprocessed inputs themselves. */
function concatModel(): Uint8Array {
  return buildModel({
    inputs: [
      { name: 'num', elemType: ElemType.FLOAT, shape: ['batch', 2] },
      { name: 'color', elemType: ElemType.FLOAT, shape: ['batch', 3] },
      { name: 'word', elemType: ElemType.FLOAT, shape: ['batch', 1] },
    ],
    outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', 6] }],
    nodes: [{ opType: 'Concat', inputs: ['num', 'color', 'word'], outputs: ['y'], attributes: { axis: 1 } }],
  });
}

const MEAN = [10, -1];
const STD = [4, 0.25];
const CLIP = { min: -2, max: 2 };
/** Categories with 2- and 3-byte UTF-8 characters. */
const COLORS = ['red', 'gr\u00fcn', '\u9752'];
const VOCABULARY = ['the', 'cat', 'sat'];
const OOV = 7;
const PREPROCESS = {
  num: [{ normalize: { mean: MEAN, std: STD } }, { clip: CLIP }],
  color: { oneHot: { categories: COLORS, handleUnknown: 'ignore' } },
  word: { stringToIndex: { vocabulary: VOCABULARY, oov: OOV } },
};

/**
 * The reference, by hand: `(x - mean) / std` in float32 (Sub, then Div, as onnxruntime computes it), clipped to
 * [-2, 2]; the one-hot row (all zeros for an unknown color); the word's vocabulary index, `oov` when unknown.
 */
function reference(num: number[], colors: string[], words: string[]): number[] {
  return colors.flatMap((c, row) => [
    ...[0, 1].map((j) => {
      const z = f32(f32(f32(num[row * 2 + j]!) - f32(MEAN[j]!)) / f32(STD[j]!));
      return Math.min(CLIP.max, Math.max(CLIP.min, z));
    }),
    ...COLORS.map((k) => (k === c ? 1 : 0)),
    VOCABULARY.includes(words[row]!) ? VOCABULARY.indexOf(words[row]!) : OOV,
  ]);
}

const NUM = [12, -1.5, 30, 0, 9.5, -1.125, -50, 1];
const COLOR_ROWS = ['gr\u00fcn', 'purple', '\u9752', 'red'];
const WORDS = ['cat', 'dog', 'the', ''];

const rawRequest = (num: number[], colors: string[], words: string[]) => ({
  inputs: [
    { name: 'num', datatype: 'FP32', shape: [colors.length, 2], data: num },
    { name: 'color', datatype: 'BYTES', shape: [colors.length, 1], data: colors },
    { name: 'word', datatype: 'BYTES', shape: [words.length, 1], data: words },
  ],
});

/** BYTES elements as the binary extension carries them: each a 4-byte little-endian length, then its UTF-8. */
function bytesElements(values: readonly string[]): Buffer {
  return Buffer.concat(
    values.map((v) => {
      const b = Buffer.from(v, 'utf8');
      const n = Buffer.alloc(4);
      n.writeUInt32LE(b.length);
      return Buffer.concat([n, b]);
    }),
  );
}

describe('a version derived with preprocess answers raw features as a hand-computed reference', () => {
  let v: Json;
  beforeAll(async () => {
    await env.register('raw', concatModel());
    v = await derive('raw', 1, { transforms: [{ preprocess: PREPROCESS }] });
  }, 120_000);

  it('in JSON: normalised and clipped floats, one-hot of BYTES categories, vocabulary indices, unknowns per policy', async () => {
    const r = await infer('/v2/models/raw/versions/2/infer', rawRequest(NUM, COLOR_ROWS, WORDS));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.model_version).toBe('2');
    expect(r.body.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [4, 6], data: reference(NUM, COLOR_ROWS, WORDS) },
    ]);
    // The unknown color is an all-zeros row, the unknown word the oov index.
    expect(r.body.outputs[0].data.slice(6, 12)).toEqual([2, 2, 0, 0, 0, OOV]);
  });

  it('in binary: BYTES elements as length-prefixed UTF-8, the same answer as bytes', async () => {
    const num = Buffer.from(Float32Array.from(NUM).buffer);
    const colors = bytesElements(COLOR_ROWS);
    const words = bytesElements(WORDS);
    const header = Buffer.from(
      JSON.stringify({
        inputs: [
          { name: 'num', datatype: 'FP32', shape: [4, 2], parameters: { binary_data_size: num.length } },
          {
            name: 'color',
            datatype: 'BYTES',
            shape: [4, 1],
            parameters: { binary_data_size: colors.length },
          },
          { name: 'word', datatype: 'BYTES', shape: [4, 1], parameters: { binary_data_size: words.length } },
        ],
        parameters: { binary_data_output: true },
      }),
    );
    const event = apiEvent('POST', '/v2/models/raw/versions/2/infer', {
      headers: { 'Inference-Header-Content-Length': String(header.length) },
    }) as HttpEvent & { body?: string; isBase64Encoded: boolean };
    event.body = Buffer.concat([header, num, colors, words]).toString('base64');
    event.isBase64Encoded = true;
    const r = await env.handler(event);
    expect(r.statusCode, String(r.body)).toBe(200);
    const body = Buffer.from(r.body as string, 'base64');
    const length = Number((r.headers as Record<string, string>)['inference-header-content-length']);
    const answer = JSON.parse(body.subarray(0, length).toString('utf8'));
    expect(answer.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [4, 6], parameters: { binary_data_size: 96 } },
    ]);
    expect(body.length).toBe(length + 96);
    const y = Array.from({ length: 24 }, (_, i) => body.readFloatLE(length + i * 4));
    expect(y).toEqual(reference(NUM, COLOR_ROWS, WORDS));
  });

  it('lists its raw inputs in its model metadata, each saying what is applied to it', async () => {
    expect(v.signature.inputs).toEqual([
      { name: 'num', datatype: 'FP32', shape: [-1, 2], parameters: { preprocess: PREPROCESS.num } },
      { name: 'color', datatype: 'BYTES', shape: [-1, 1], parameters: { preprocess: [PREPROCESS.color] } },
      { name: 'word', datatype: 'BYTES', shape: [-1, 1], parameters: { preprocess: [PREPROCESS.word] } },
    ]);
    const meta = await env.call<Json>('GET', '/v2/models/raw/versions/2');
    expect(meta.status).toBe(200);
    expect(meta.body.inputs).toEqual(v.signature.inputs);
    // The parent still takes the prepared tensors.
    const parent = await env.call<Json>('GET', '/v2/models/raw/versions/1');
    expect(parent.body.inputs.map((i: Json) => [i.name, i.datatype])).toEqual([
      ['num', 'FP32'],
      ['color', 'FP32'],
      ['word', 'FP32'],
    ]);
  });

  it("under handleUnknown 'error', an unknown category is 400 UNKNOWN_CATEGORY naming the input", {
    timeout: 60_000,
  }, async () => {
    await env.register('strict', concatModel());
    await derive('strict', 1, {
      transforms: [
        { preprocess: { ...PREPROCESS, color: { oneHot: { categories: COLORS, handleUnknown: 'error' } } } },
      ],
    });
    const known = await infer(
      '/v2/models/strict/versions/2/infer',
      rawRequest([10, -1], ['\u9752'], ['sat']),
    );
    expect(known.status, JSON.stringify(known.body)).toBe(200);
    expect(known.body.outputs[0].data).toEqual(reference([10, -1], ['\u9752'], ['sat']));
    // 'grun' is not 'grün': categories are compared as the exact UTF-8 bytes.
    const unknown = await infer(
      '/v2/models/strict/versions/2/infer',
      rawRequest([10, -1, 0, 0], ['red', 'grun'], ['the', 'cat']),
    );
    expect(unknown.status).toBe(400);
    expect(unknown.body.code).toBe('UNKNOWN_CATEGORY');
    expect(unknown.body.error).toMatch(/^input 'color' /);
    // An unknown word is not refused: stringToIndex maps it to its oov index.
    const word = await infer('/v2/models/strict/versions/2/infer', rawRequest([10, -1], ['red'], ['dog']));
    expect(word.status).toBe(200);
    expect(word.body.outputs[0].data.at(-1)).toBe(OOV);
  });
});

/** Concat(num, color) -> MatMul W [5, 4] -> Add b: a classifier over the prepared features. */
function classifier(): Uint8Array {
  const w = Array.from({ length: 20 }, (_, i) => Math.cos(i * 1.7) * 0.8);
  return buildModel({
    inputs: [
      { name: 'num', elemType: ElemType.FLOAT, shape: ['batch', 2] },
      { name: 'color', elemType: ElemType.FLOAT, shape: ['batch', 3] },
    ],
    outputs: [{ name: 'logits', elemType: ElemType.FLOAT, shape: ['batch', 4] }],
    nodes: [
      { opType: 'Concat', inputs: ['num', 'color'], outputs: ['x'], attributes: { axis: 1 } },
      { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['z'] },
      { opType: 'Add', inputs: ['z', 'b'], outputs: ['logits'] },
    ],
    initializers: [
      { name: 'W', elemType: ElemType.FLOAT, dims: [5, 4], floats: w },
      { name: 'b', elemType: ElemType.FLOAT, dims: [4], floats: [0.1, -0.2, 0.05, 0] },
    ],
  });
}

describe('int8 then preprocess', () => {
  it('answers raw features exactly as the int8 version answers the hand-preprocessed ones', {
    timeout: 120_000,
  }, async () => {
    await env.register('both', classifier());
    const int8 = await derive('both', 1, { transforms: [{ quantize: 'int8' }], gate: { minAgreement: 0.9 } });
    const spec = { num: PREPROCESS.num, color: PREPROCESS.color };
    const both = await derive('both', 1, {
      transforms: [{ quantize: 'int8' }, { preprocess: spec }],
      gate: { minAgreement: 0.9 },
    });
    expect(both.transforms).toEqual([INT8_AS_APPLIED, { preprocess: spec }]);
    expect(both.evaluation).toMatchObject({ passed: true });

    const raw = await infer(`/v2/models/both/versions/${both.version}/infer`, {
      inputs: [
        { name: 'num', datatype: 'FP32', shape: [4, 2], data: NUM },
        { name: 'color', datatype: 'BYTES', shape: [4, 1], data: COLOR_ROWS },
      ],
    });
    expect(raw.status, JSON.stringify(raw.body)).toBe(200);
    // The features by hand: the reference without the word column.
    const prepared = reference(NUM, COLOR_ROWS, WORDS);
    const rows = [0, 1, 2, 3].map((r) => prepared.slice(r * 6, r * 6 + 5));
    const byHand = await infer(`/v2/models/both/versions/${int8.version}/infer`, {
      inputs: [
        { name: 'num', datatype: 'FP32', shape: [4, 2], data: rows.flatMap((r) => r.slice(0, 2)) },
        { name: 'color', datatype: 'FP32', shape: [4, 3], data: rows.flatMap((r) => r.slice(2)) },
      ],
    });
    expect(byHand.status, JSON.stringify(byHand.body)).toBe(200);
    expect(raw.body.outputs).toEqual(byHand.body.outputs);
    expect(raw.body.outputs[0].shape).toEqual([4, 4]);
  });
});

describe('a version derived from one with pre-processing takes the same raw inputs, and says so', () => {
  it("int8 and optimize keep the parent's parameters.preprocess; a preprocess transform adds its own steps first", {
    timeout: 180_000,
  }, async () => {
    // Version 1: registered with num normalised and clipped; color takes the prepared one-hot floats.
    const v1 = await env.register('keep', classifier(), { preprocess: { num: PREPROCESS.num } });
    const numSteps = v1.signature.inputs[0]?.parameters?.preprocess;
    expect(numSteps).toEqual(PREPROCESS.num);
    const v2 = await derive('keep', 1, { transforms: [{ quantize: 'int8' }], gate: { minAgreement: 0.9 } });
    expect(v2.transforms).toEqual([INT8_AS_APPLIED]);
    expect(v2.signature.inputs).toEqual(v1.signature.inputs);
    const v3 = await derive('keep', 2, { transforms: [{ optimize: 'basic' }], gate: { rows: 200 } });
    expect(v3.signature.inputs).toEqual(v1.signature.inputs);
    const meta3 = await env.call<Json>('GET', '/v2/models/keep/versions/3');
    expect(meta3.body.inputs).toEqual(v1.signature.inputs);

    // Version 4: derived with preprocess on color; num keeps its registered steps.
    const v4 = await derive('keep', 1, { transforms: [{ preprocess: { color: PREPROCESS.color } }] });
    const withColor = [
      { name: 'num', datatype: 'FP32', shape: [-1, 2], parameters: { preprocess: numSteps } },
      { name: 'color', datatype: 'BYTES', shape: [-1, 1], parameters: { preprocess: [PREPROCESS.color] } },
    ];
    expect(v4.signature.inputs).toEqual(withColor);
    // Its int8 (gated on a sample, its color being BYTES) keeps both, and answers raw features.
    const line = JSON.stringify({
      inputs: [
        { name: 'num', datatype: 'FP32', shape: [4, 2], data: NUM },
        { name: 'color', datatype: 'BYTES', shape: [4, 1], data: COLOR_ROWS },
      ],
    });
    await deps.store.putObject(S3_KEYS.upload('keep', 'rows'), new TextEncoder().encode(`${line}\n`));
    const v5 = await derive('keep', 4, {
      transforms: [{ quantize: 'int8' }],
      sample: { uploadId: 'rows' },
      gate: { minAgreement: 0.5 },
    });
    expect(v5.evaluation).toMatchObject({ source: 'sample', rows: 4 });
    expect(v5.signature.inputs).toEqual(withColor);
    expect((await env.call<Json>('GET', '/v2/models/keep/versions/5')).body.inputs).toEqual(withColor);
    const raw = await infer('/v2/models/keep/versions/5/infer', JSON.parse(line));
    expect(raw.status, JSON.stringify(raw.body)).toBe(200);

    // Version 6: a step in front of num's registered ones; the input lists them in the order they apply.
    const v6 = await derive('keep', 1, { transforms: [{ preprocess: { num: { clip: { min: 0 } } } }] });
    expect(v6.signature.inputs[0]).toEqual({
      name: 'num',
      datatype: 'FP32',
      shape: [-1, 2],
      parameters: { preprocess: [{ clip: { min: 0 } }, ...(numSteps ?? [])] },
    });
    const request = (num: number[]) => ({
      inputs: [
        { name: 'num', datatype: 'FP32', shape: [2, 2], data: num },
        { name: 'color', datatype: 'FP32', shape: [2, 3], data: [1, 0, 0, 0, 0, 1] },
      ],
    });
    const stacked = await infer('/v2/models/keep/versions/6/infer', request([12, -1.5, -3, 0.5]));
    const byHand = await infer('/v2/models/keep/versions/1/infer', request([12, 0, 0, 0.5]));
    expect(stacked.status, JSON.stringify(stacked.body)).toBe(200);
    expect(stacked.body.outputs).toEqual(byHand.body.outputs);
  });
});

/**
 * Registration with `preprocess` on DynamoDB Local + s3rver + onnxruntime-node: the registered version is the
 * uploaded model with its pre-processing compiled in (recorded as `transforms`, its signature the raw inputs, each
 * saying what is applied), it answers raw features through the predict handler exactly as a hand-computed reference,
 * its model metadata lists the raw inputs with `parameters.preprocess`, the worker's completion of a PENDING
 * registration compiles it in too, and a declaration that is not one or does not fit the model is refused 400
 * `INVALID_PREPROCESS` with nothing written.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { completePendingVersion } from '../../functions/app/registration';
import { S3_KEYS } from '../../functions/contract/env';
import { createRegistryHandler, type RegistryHandlerDeps } from '../../functions/handlers/registry';
import { buildModel, ElemType } from '../../functions/local/onnx-builder';
import type { RegistryEvent } from '../../functions/ports';
import { type ApiEventOptions, apiEvent, parseResult } from '../helpers/apigw';
import { createPredictTestEnv, type PredictTestEnv } from '../helpers/predict-env';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected loosely in assertions
type Json = Record<string, any>;

const f32 = Math.fround;

/** `y = Concat(num, color)`: the model answers its preprocessed inputs themselves. */
function concatModel(): Uint8Array {
  return buildModel({
    inputs: [
      { name: 'num', elemType: ElemType.FLOAT, shape: ['batch', 2] },
      { name: 'color', elemType: ElemType.FLOAT, shape: ['batch', 3] },
    ],
    outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', 5] }],
    nodes: [{ opType: 'Concat', inputs: ['num', 'color'], outputs: ['y'], attributes: { axis: 1 } }],
  });
}

const CATEGORIES = ['red', 'green', 'blue'];
const MEAN = [1.5, -2];
const STD = [0.5, 4];
const PREPROCESS = {
  num: { normalize: { mean: MEAN, std: STD } },
  color: { oneHot: { categories: CATEGORIES, handleUnknown: 'ignore' } },
};

/** The reference: `(x - mean) / std` in float32 as onnxruntime computes it (Sub, then Div), then the one-hot row. */
function reference(num: number[], colors: string[]): number[] {
  return colors.flatMap((c, row) => [
    ...[0, 1].map((j) => f32(f32(f32(num[row * 2 + j]!) - f32(MEAN[j]!)) / f32(STD[j]!))),
    ...CATEGORIES.map((k) => (k === c ? 1 : 0)),
  ]);
}

describe('registration with preprocess (DynamoDB Local, s3rver, onnxruntime)', () => {
  let env: PredictTestEnv;
  const events: RegistryEvent[] = [];
  const queued: unknown[] = [];

  beforeAll(async () => {
    env = await createPredictTestEnv();
  });
  afterAll(() => env?.dispose());

  const registryDeps = (extra: Partial<RegistryHandlerDeps> = {}): RegistryHandlerDeps => ({
    repo: env.repo,
    store: env.store,
    inspector: new OrtModelInspector(),
    events: { publish: async (e) => void events.push(e) },
    ...extra,
  });
  const call = async (method: string, path: string, opts: ApiEventOptions = {}, extra = {}) =>
    parseResult<Json>(await createRegistryHandler(registryDeps(extra))(apiEvent(method, path, opts)));
  let uploads = 0;
  const upload = async (name: string, bytes: Uint8Array) => {
    const id = `u-${++uploads}`;
    await env.store.putObject(S3_KEYS.upload(name, id), bytes);
    return id;
  };
  const modelObjects = async (name: string) =>
    (
      await env.aws.s3.send(
        new ListObjectsV2Command({
          Bucket: env.aws.bucket,
          Prefix: S3_KEYS.model(name, '').replace(/\.onnx$/, ''),
        }),
      )
    ).Contents ?? [];

  it('registers the model with its pre-processing compiled in; it answers raw features as the reference', {
    timeout: 60_000,
  }, async () => {
    const r = await call('POST', '/models/raw/versions', {
      body: { uploadId: await upload('raw', concatModel()), preprocess: PREPROCESS },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body).toMatchObject({ version: 1, status: 'READY' });
    expect(r.body.derivedFrom).toBeUndefined();
    // Recorded as the version's transforms (the declaration as parsed: each input a list of steps).
    expect(r.body.transforms).toEqual([{ preprocess: { num: [PREPROCESS.num], color: [PREPROCESS.color] } }]);
    expect(r.body.signature.inputs).toEqual([
      { name: 'num', datatype: 'FP32', shape: [-1, 2], parameters: { preprocess: [PREPROCESS.num] } },
      { name: 'color', datatype: 'BYTES', shape: [-1, 1], parameters: { preprocess: [PREPROCESS.color] } },
    ]);
    // The stored artifact is the preprocessed model: its own sha256, under its content-addressed key.
    const stored = await env.repo.getVersion('raw', 1);
    expect(stored?.s3Key).toBe(S3_KEYS.model('raw', r.body.sha256));
    expect((await env.store.getObject(stored!.s3Key)).byteLength).toBe(r.body.sizeBytes);
    expect(events.map((e) => e.type)).toContain('ModelVersionRegistered');

    // The registry's view shows the transforms.
    const view = await call('GET', '/models/raw/versions/1');
    expect(view.body.transforms).toEqual(r.body.transforms);

    // Raw features through the predict handler: normalised floats and one-hot (an unknown category all zeros).
    const num = [2, -2, 1.5, 6, 0.25, -10.5];
    const colors = ['blue', 'purple', 'red'];
    const answer = await env.call<Json>('POST', '/v2/models/raw/versions/1/infer', {
      inputs: [
        { name: 'num', datatype: 'FP32', shape: [3, 2], data: num },
        { name: 'color', datatype: 'BYTES', shape: [3, 1], data: colors },
      ],
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const y = answer.body.outputs.find((o: Json) => o.name === 'y');
    expect(y.shape).toEqual([3, 5]);
    expect(y.data).toEqual(reference(num, colors));

    // Model metadata lists the raw inputs, each saying what is applied to it.
    const meta = await env.call<Json>('GET', '/v2/models/raw/versions/1');
    expect(meta.status).toBe(200);
    expect(meta.body.inputs).toEqual(r.body.signature.inputs);
    expect(meta.body.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [-1, 5] }]);
  });

  it('an unknown category under handleUnknown error is 400 UNKNOWN_CATEGORY naming the input', {
    timeout: 60_000,
  }, async () => {
    const r = await call('POST', '/models/strict/versions', {
      body: {
        uploadId: await upload('strict', concatModel()),
        preprocess: { ...PREPROCESS, color: { oneHot: { categories: CATEGORIES, handleUnknown: 'error' } } },
      },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const infer = (color: string) =>
      env.call<Json>('POST', '/v2/models/strict/versions/1/infer', {
        inputs: [
          { name: 'num', datatype: 'FP32', shape: [1, 2], data: [1, 2] },
          { name: 'color', datatype: 'BYTES', shape: [1, 1], data: [color] },
        ],
      });
    const known = await infer('green');
    expect(known.status).toBe(200);
    expect(known.body.outputs[0].data).toEqual(reference([1, 2], ['green']));
    const unknown = await infer('purple');
    expect(unknown.status).toBe(400);
    expect(unknown.body.code).toBe('UNKNOWN_CATEGORY');
    expect(unknown.body.error).toMatch(/input 'color'/);
  });

  it('the worker completing a PENDING registration compiles its pre-processing in', {
    timeout: 60_000,
  }, async () => {
    const r = await call(
      'POST',
      '/models/later/versions',
      { body: { uploadId: await upload('later', concatModel()), preprocess: PREPROCESS } },
      // No time for the synchronous part: the registration continues on the queue.
      {
        registrationBudgetMs: 0,
        queue: { send: async (m: unknown) => `m-${queued.push(m)}` },
      },
    );
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body).toMatchObject({ version: 1, status: 'PENDING' });
    expect(r.body.transforms).toEqual([{ preprocess: { num: [PREPROCESS.num], color: [PREPROCESS.color] } }]);
    expect(queued.at(-1)).toEqual({ type: 'register-complete', name: 'later', version: 1 });

    // The worker's dependencies carry no transformer: the registry compiles the declaration itself.
    const outcome = await completePendingVersion(
      { repo: env.repo, store: env.store, inspector: new OrtModelInspector() },
      'later',
      1,
    );
    expect(outcome).toBe('READY');
    const done = (await call('GET', '/models/later/versions/1')).body;
    expect(done.signature.inputs.map((i: Json) => [i.name, i.datatype])).toEqual([
      ['num', 'FP32'],
      ['color', 'BYTES'],
    ]);
    expect(done.transforms).toEqual(r.body.transforms);
    const answer = await env.call<Json>('POST', '/v2/models/later/infer', {
      inputs: [
        { name: 'num', datatype: 'FP32', shape: [1, 2], data: [0, 0] },
        { name: 'color', datatype: 'BYTES', shape: [1, 1], data: ['red'] },
      ],
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.outputs[0].data).toEqual(reference([0, 0], ['red']));
  });

  it.each([
    ['a step that is not one', { num: { squash: {} } }, /unknown step 'squash'/],
    [
      'an input the model does not have',
      { age: { clip: { min: 0 } } },
      /'age', which the model does not have/,
    ],
    [
      'one-hot columns that do not fit the input',
      { color: { oneHot: { categories: ['a', 'b'], handleUnknown: 'ignore' } } },
      /gives 2 columns, but the input's last axis has 3/,
    ],
  ])(
    'refuses %s: 400 INVALID_PREPROCESS, nothing written',
    { timeout: 60_000 },
    async (_what, spec, message) => {
      const name = `bad-${uploads + 1}`;
      const r = await call('POST', `/models/${name}/versions`, {
        body: { uploadId: await upload(name, concatModel()), preprocess: spec },
      });
      expect([r.status, r.body.code], JSON.stringify(r.body)).toEqual([400, 'INVALID_PREPROCESS']);
      expect(r.body.error).toMatch(message);
      expect(await env.repo.getModel(name)).toBeUndefined();
      expect(await modelObjects(name)).toEqual([]);
    },
  );
});

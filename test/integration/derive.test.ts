/**
 * Derived versions on DynamoDB Local + s3rver + onnxruntime-node with the real ONNX transforms: the derive route
 * answers a PENDING version, the worker's use case completes it READY with its evaluation and lineage, or FAILED
 * with the figures when a transform breaks the model; the int8 range recorded is the one the weights got; a sample
 * is used as given; a derived version is aliased, promoted and rolled back like any other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { OnnxModelTransformer } from '../../functions/adapters/onnx-transformer';
import { sharedOrtEngine } from '../../functions/adapters/ort-engine';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { S3ArtifactStore } from '../../functions/adapters/s3-artifact-store';
import { type DeriveDeps, runDerive } from '../../functions/app/derive';
import { S3_KEYS } from '../../functions/contract/env';
import { type DeriveMessage, DeriveMessageSchema, type TransformSpec } from '../../functions/domain/derive';
import { createRegistryHandler } from '../../functions/handlers/registry';
import { buildMlp } from '../../functions/local/onnx-builder';
import type { RegistryEvent } from '../../functions/ports';
import type { DeriveTransformer } from '../../functions/ports/derive';
import { decodeModel, encodeModel, makeTensor, readFloat32 } from '../../functions/transforms/onnx-model';
import { defaultReduceRange } from '../../functions/transforms/quantize';
import { type ApiEventOptions, apiEvent, parseResult } from '../helpers/apigw';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected loosely in assertions
type Json = Record<string, any>;

/**
 * The real transformer, then a forced bad scale: the first weight scale of the quantised model negated, as a
 * quantiser bug writing a wrong scale would leave it.
 */
class BadScaleTransformer implements DeriveTransformer {
  constructor(private readonly real: DeriveTransformer) {}
  resolve(transforms: readonly TransformSpec[]): TransformSpec[] {
    return this.real.resolve(transforms);
  }
  async apply(model: Uint8Array, transforms: readonly TransformSpec[]): Promise<Uint8Array> {
    const decoded = decodeModel(await this.real.apply(model, transforms));
    const inits = decoded.graph?.initializer ?? [];
    const at = inits.findIndex((t) => /_scale$/.test(t.name ?? '') && readFloat32(t) !== undefined);
    if (at < 0) throw new Error('no weight scale to corrupt');
    const t = inits[at]!;
    const values = readFloat32(t)!.map((s) => -3 * s);
    inits[at] = makeTensor(t.name ?? '', t.dataType ?? 1, (t.dims ?? []).map(Number), values);
    return encodeModel(decoded);
  }
}

describe('derived versions (DynamoDB Local, s3rver, onnxruntime)', () => {
  let env: TestAwsEnv;
  let deps: DeriveDeps;
  const sent: DeriveMessage[] = [];
  const events: RegistryEvent[] = [];
  const real = new OnnxModelTransformer();
  const bench = buildMlp({ inFeatures: 512, layers: [1024, 512, 10], seed: 2 });
  const small = buildMlp({ inFeatures: 8, layers: [32, 4], seed: 3 });

  beforeAll(async () => {
    env = await createTestAwsEnv('derive');
    deps = {
      repo: new DynamoRegistryRepository({ doc: env.doc, table: env.table }),
      store: new S3ArtifactStore({ s3: env.s3, bucket: env.bucket }),
      inspector: new OrtModelInspector(),
      events: { publish: async (e) => void events.push(e) },
      transformer: real,
      engine: sharedOrtEngine(),
    };
  });
  afterAll(() => env.dispose());

  const handler = () =>
    createRegistryHandler({
      repo: deps.repo,
      store: deps.store,
      inspector: deps.inspector,
      ...(deps.events ? { events: deps.events } : {}),
      queue: {
        send: async (m) => {
          sent.push(DeriveMessageSchema.parse(m));
          return `m-${sent.length}`;
        },
      },
    });
  const call = async (method: string, path: string, opts: ApiEventOptions = {}) =>
    parseResult<Json>(await handler()(apiEvent(method, path, opts)));
  let uploads = 0;
  const upload = async (name: string, bytes: Uint8Array) => {
    const id = `u-${++uploads}`;
    await deps.store.putObject(S3_KEYS.upload(name, id), bytes);
    return id;
  };
  const register = async (name: string, bytes: Uint8Array) => {
    const r = await call('POST', `/models/${name}/versions`, {
      body: { uploadId: await upload(name, bytes) },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body;
  };
  /** Runs the last queued derive message as the worker does. */
  const work = (d: DeriveDeps = deps) => runDerive(d, sent.at(-1)!);

  it('int8 of the bench MLP: 202 PENDING, then READY with its evaluation, lineage and own artifact', {
    timeout: 120_000,
  }, async () => {
    const parent = await register('bench', bench);
    const r = await call('POST', '/models/bench/versions/1/derive', {
      body: { transforms: [{ quantize: 'int8' }] },
      actor: 'arn:aws:iam::1:user/ops',
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body).toMatchObject({
      version: 2,
      status: 'PENDING',
      derivedFrom: 1,
      transforms: [{ quantize: 'int8' }],
      createdBy: 'arn:aws:iam::1:user/ops',
    });
    expect(r.body.s3Key).toBeUndefined();
    expect(sent.at(-1)).toMatchObject({ type: 'derive', name: 'bench', version: 2 });

    expect(await work()).toBe('READY');
    const v = (await call('GET', '/models/bench/versions/2')).body;
    // The transforms as applied: int8's range is that of the architecture, written out with per-tensor scales.
    expect(v).toMatchObject({ status: 'READY', derivedFrom: 1 });
    expect(v.transforms).toEqual([
      { quantize: 'int8', reduceRange: defaultReduceRange(process.arch), perChannel: false },
    ]);
    expect(v.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(v.sha256).not.toBe(parent.sha256);
    expect(v.signature).toEqual(parent.signature);
    expect(v.sizeBytes / parent.sizeBytes).toBeLessThanOrEqual(0.3);
    expect(v.evaluation).toMatchObject({ rows: 1000, source: 'generated', passed: true });
    expect(v.evaluation.argmaxAgreement).toBeGreaterThanOrEqual(0.99);
    expect(v.evaluation.thresholds).toMatchObject({ minAgreement: 0.99, rows: 1000 });
    expect(v.evaluation.perOutput[0]).toMatchObject({ name: 'output' });
    expect(v.evaluation.perOutput[0].maxRelDiff).toBeGreaterThan(0);
    // Its own content-addressed artifact, the bytes it was hashed from.
    const stored = await deps.store.headObject(S3_KEYS.model('bench', v.sha256));
    expect(stored?.sizeBytes).toBe(v.sizeBytes);
    expect(events).toContainEqual({
      type: 'ModelVersionRegistered',
      detail: { name: 'bench', version: 2, sha256: v.sha256 },
    });
    // A redelivered message leaves it alone.
    expect(await work()).toBe('READY');
    const listed = (await call('GET', '/models/bench/versions')).body.versions;
    expect(listed.map((x: Json) => [x.version, x.status, x.derivedFrom])).toEqual([
      [2, 'READY', 1],
      [1, 'READY', undefined],
    ]);
  });

  it('a transform that breaks the model (forced bad scale) fails the gate: FAILED with the figures', {
    timeout: 60_000,
  }, async () => {
    await register('broken', small);
    const r = await call('POST', '/models/broken/versions/1/derive', {
      body: { transforms: [{ quantize: 'int8', perChannel: true }], gate: { rows: 500 } },
    });
    expect(r.status).toBe(202);
    expect(await work({ ...deps, transformer: new BadScaleTransformer(real) })).toBe('FAILED');
    const v = (await call('GET', '/models/broken/versions/2')).body;
    expect(v.status).toBe('FAILED');
    expect(v.transforms).toEqual([
      { quantize: 'int8', reduceRange: defaultReduceRange(process.arch), perChannel: true },
    ]);
    expect(v.failureReason).toMatch(
      /^the accuracy gate failed on 500 generated rows: argmax agreement 0\.\d+ < 0\.99 .*output: max abs diff/,
    );
    expect(v.evaluation).toMatchObject({ rows: 500, passed: false });
    expect(v.evaluation.argmaxAgreement).toBeLessThan(0.99);
    expect(events.some((e) => e.type === 'ModelVersionFailed' && e.detail.name === 'broken')).toBe(true);
    // A FAILED version cannot be aliased nor derived from.
    expect((await call('PUT', '/models/broken/aliases/staging', { body: { version: 2 } })).status).toBe(409);
    const again = await call('POST', '/models/broken/versions/2/derive', {
      body: { transforms: [{ quantize: 'int8' }] },
    });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('VERSION_NOT_READY');
  });

  it('records the int8 range the weights got: 7-bit on x86_64, 8-bit on arm64, as asked when asked', {
    timeout: 60_000,
  }, async () => {
    await register('range', small);
    /** The largest |int8 weight| of the derived version's artifact. */
    const widest = async (version: number) => {
      const v = (await call('GET', `/models/range/versions/${version}`)).body;
      const model = decodeModel(await deps.store.getObject(S3_KEYS.model('range', v.sha256)));
      let max = 0;
      for (const t of model.graph?.initializer ?? []) {
        if (t.dataType !== 3) continue; // INT8
        for (const b of t.rawData ?? []) max = Math.max(max, Math.abs((b << 24) >> 24));
      }
      return { v, max };
    };
    const derived = async (arch: string, transform: TransformSpec) => {
      const r = await call('POST', '/models/range/versions/1/derive', {
        body: { transforms: [transform], gate: { rows: 200, minAgreement: 0.9 } },
      });
      expect(r.body.transforms).toEqual([transform]);
      expect(await work({ ...deps, transformer: new OnnxModelTransformer(arch) })).toBe('READY');
      return widest(r.body.version);
    };
    const x64 = await derived('x64', { quantize: 'int8' });
    expect(x64.v.transforms).toEqual([{ quantize: 'int8', reduceRange: true, perChannel: false }]);
    expect(x64.v.description).toBe('derived from version 1: quantize int8');
    expect(x64.max).toBeLessThanOrEqual(64);
    const arm = await derived('arm64', { quantize: 'int8' });
    expect(arm.v.transforms).toEqual([{ quantize: 'int8', reduceRange: false, perChannel: false }]);
    expect(arm.max).toBeGreaterThan(64);
    const asked = await derived('arm64', { quantize: 'int8', reduceRange: true, perChannel: true });
    expect(asked.v.transforms).toEqual([{ quantize: 'int8', reduceRange: true, perChannel: true }]);
    expect(asked.max).toBeLessThanOrEqual(64);
  });

  it('a user sample is used as given: its rows, none left out', { timeout: 60_000 }, async () => {
    await register('sampled', small);
    const lines = Array.from({ length: 7 }, (_, i) =>
      JSON.stringify({
        inputs: [
          {
            name: 'input',
            datatype: 'FP32',
            shape: [3, 8],
            data: Array.from({ length: 24 }, (_, j) => Math.sin(i * 24 + j)),
          },
        ],
      }),
    );
    const uploadId = await upload('sampled', new TextEncoder().encode(`${lines.join('\n')}\n`));
    const r = await call('POST', '/models/sampled/versions/1/derive', {
      body: { transforms: [{ quantize: 'int8' }], sample: { uploadId }, gate: { minAgreement: 0.9 } },
    });
    expect(r.status).toBe(202);
    expect(sent.at(-1)?.sampleKey).toBe(S3_KEYS.upload('sampled', uploadId));
    expect(await work()).toBe('READY');
    const v = (await call('GET', '/models/sampled/versions/2')).body;
    expect(v.evaluation).toMatchObject({
      rows: 21,
      source: 'sample',
      nearTiesExcluded: 0,
      thresholds: { minAgreement: 0.9 },
    });

    // A sample that does not fit the parent's inputs is a deterministic failure.
    const bad = await upload(
      'sampled',
      new TextEncoder().encode('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}'),
    );
    await call('POST', '/models/sampled/versions/1/derive', {
      body: { transforms: [{ quantize: 'int8' }], sample: { uploadId: bad } },
    });
    expect(await work()).toBe('FAILED');
    expect((await call('GET', '/models/sampled/versions/3')).body.failureReason).toMatch(
      /^sample line 1: input 'x' is not an input/,
    );
  });

  it('refuses at once: unknown parent (404), missing sample (400), bad transforms (400)', async () => {
    await register('refused', small);
    const derive = (path: string, body: unknown) => call('POST', path, { body });
    expect(
      (await derive('/models/refused/versions/9/derive', { transforms: [{ quantize: 'int8' }] })).status,
    ).toBe(404);
    const missing = await derive('/models/refused/versions/1/derive', {
      transforms: [{ quantize: 'int8' }],
      sample: { uploadId: 'nothing-here' },
    });
    expect([missing.status, missing.body.code]).toEqual([400, 'SAMPLE_NOT_FOUND']);
    const twice = await derive('/models/refused/versions/1/derive', {
      transforms: [{ quantize: 'int8' }, { quantize: 'int8' }],
    });
    expect([twice.status, twice.body.code]).toEqual([400, 'INVALID_TRANSFORMS']);
    const unknown = await derive('/models/refused/versions/1/derive', { transforms: [{ quantize: 'int4' }] });
    expect([unknown.status, unknown.body.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect((await call('GET', '/models/refused/versions')).body.versions).toHaveLength(1);
  });

  it('refuses at once a preprocess naming an input the parent does not have, and gate bounds: nothing written', async () => {
    await register('unnamed', small);
    const versions = async () => (await call('GET', '/models/unnamed/versions')).body.versions;
    const before = await versions();
    const queued = sent.length;
    const derive = (body: unknown) => call('POST', '/models/unnamed/versions/1/derive', { body });
    const r = await derive({
      transforms: [{ quantize: 'int8' }, { preprocess: { age: { normalize: { mean: 40, std: 12 } } } }],
    });
    expect(r).toMatchObject({
      status: 400,
      body: {
        error: "preprocess names 'age', which version 1 of model 'unnamed' does not have (inputs: 'input')",
        code: 'INVALID_PREPROCESS',
      },
    });
    for (const [gate, field, range] of [
      [{ maxRelDiff: 2 }, 'maxRelDiff', '0 to 1'],
      [{ nearTieMargin: 0.9 }, 'nearTieMargin', '0 to 0.5'],
    ] as const) {
      const g = await derive({ transforms: [{ quantize: 'int8' }], gate });
      expect(g).toMatchObject({
        status: 400,
        body: { error: `invalid request: gate.${field}: must be from ${range}`, code: 'VALIDATION_ERROR' },
      });
    }
    expect(await versions()).toEqual(before);
    expect(sent.length).toBe(queued);
  });

  it('optimize basic then int8: READY, the lineage in order', { timeout: 60_000 }, async () => {
    await register('opt', small);
    const r = await call('POST', '/models/opt/versions/1/derive', {
      body: { transforms: [{ optimize: 'basic' }, { quantize: 'int8' }], gate: { rows: 400 } },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.description).toBe('derived from version 1: optimize basic, quantize int8');
    expect(await work()).toBe('READY');
    const v = (await call('GET', '/models/opt/versions/2')).body;
    expect(v.transforms).toEqual([
      { optimize: 'basic' },
      { quantize: 'int8', reduceRange: defaultReduceRange(process.arch), perChannel: false },
    ]);
    expect(v.evaluation).toMatchObject({ rows: 400, passed: true });
  });

  it('preprocess: the version takes the raw inputs (a BYTES category column), its signature says so', {
    timeout: 60_000,
  }, async () => {
    await register('raw', buildMlp({ inFeatures: 3, layers: [8, 2], seed: 4 }));
    const r = await call('POST', '/models/raw/versions/1/derive', {
      body: {
        transforms: [
          {
            preprocess: {
              input: { oneHot: { categories: ['red', 'green', 'blue'], handleUnknown: 'ignore' } },
            },
          },
        ],
      },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(await work()).toBe('READY');
    const v = (await call('GET', '/models/raw/versions/2')).body;
    // The raw input, saying what is applied to it (model metadata lists the signature's inputs as they are).
    expect(v.signature.inputs).toEqual([
      {
        name: 'input',
        datatype: 'BYTES',
        shape: [-1, 1],
        parameters: {
          preprocess: [{ oneHot: { categories: ['red', 'green', 'blue'], handleUnknown: 'ignore' } }],
        },
      },
    ]);
    expect(v).toMatchObject({ derivedFrom: 1, transforms: r.body.transforms });
    expect(v.signature.outputs).toEqual((await call('GET', '/models/raw/versions/1')).body.signature.outputs);
    // The gate compared the parent with the model before its preprocessing: the same model.
    expect(v.evaluation).toMatchObject({ argmaxAgreement: 1, passed: true });
    // A declaration that is not one is refused at once.
    const bad = await call('POST', '/models/raw/versions/1/derive', {
      body: { transforms: [{ preprocess: { input: { squash: {} } } }] },
    });
    expect([bad.status, bad.body.code]).toEqual([400, 'INVALID_PREPROCESS']);
  });

  it('a derived version is aliased, promoted and rolled back like any other', {
    timeout: 60_000,
  }, async () => {
    await register('life', small);
    await call('POST', '/models/life/versions/1/derive', { body: { transforms: [{ quantize: 'int8' }] } });
    expect(await work()).toBe('READY');
    const staging = await call('PUT', '/models/life/aliases/staging', { body: { version: 2 } });
    expect(staging.status, JSON.stringify(staging.body)).toBe(200);
    const promote = await call('PUT', '/models/life/aliases/prod', {
      body: { version: 2, expectedVersion: 1, reason: 'int8' },
    });
    expect(promote.body).toMatchObject({ alias: 'prod', version: 2, previousVersion: 1 });
    expect((await call('GET', '/models/life')).body.aliases).toEqual({ prod: 2, staging: 2 });
    const back = await call('POST', '/models/life/aliases/prod/rollback', { body: { reason: 'undo' } });
    expect(back.body).toMatchObject({ alias: 'prod', version: 1, previousVersion: 2 });
    // A derived version can be derived from in turn.
    const next = await call('POST', '/models/life/versions/2/derive', {
      body: { transforms: [{ quantize: 'int8' }] },
    });
    expect(next.status).toBe(202);
    expect(next.body.derivedFrom).toBe(2);
  });
});

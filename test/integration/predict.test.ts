/**
 * The predict path end to end: APIGW v2 events -> handler -> registry in DynamoDB Local -> artifacts in
 * s3rver -> onnxruntime-node.
 */
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryReader } from '../../functions/adapters/dynamodb-registry-reader';
import { createPredictor } from '../../functions/app/predict';
import { SessionCache, sha256Hex } from '../../functions/app/session-cache';
import { keys } from '../../functions/contract/table';
import { createPredictHandler } from '../../functions/handlers/predict';
import { localClientOptions } from '../../functions/local/emulators';
import { buildMlp, buildModel, ElemType } from '../../functions/local/onnx-builder';
import { version as packageVersion } from '../../package.json';
import { apiEvent, parseResult } from '../helpers/apigw';
import {
  addConstant,
  addTwoInputs,
  createPredictTestEnv,
  type ELEM_OF,
  identityAllTypes,
  type PredictTestEnv,
} from '../helpers/predict-env';
import { silentLogger } from '../helpers/recording-logger';

type Out = { name: string; datatype: string; shape: number[]; data: unknown[] };
type InferBody = { model_name: string; model_version: string; id?: string; outputs: Out[] };
type ErrorBody = { error: string; code: string };

let env: PredictTestEnv;

beforeAll(async () => {
  env = await createPredictTestEnv();
  await env.register('identity', identityAllTypes());
  await env.register('router', addConstant(1));
  await env.register('router', addConstant(2));
  await env.moveAlias('router', 'staging', 2);
  await env.register('classifier', buildMlp({ inFeatures: 4, layers: [8, 3], seed: 7 }), {
    postprocess: { softmax: true, argmax: true, topK: 2 },
    labels: ['setosa', 'versicolor', 'virginica'],
  });
  await env.register('add-two', addTwoInputs());
});
afterAll(async () => {
  await env?.dispose();
});

/** Two rows of each datatype, including the edges of every range. */
const ROWS: Record<keyof typeof ELEM_OF, [unknown, unknown, unknown, unknown]> = {
  BOOL: [true, false, false, true],
  UINT8: [0, 255, 7, 128],
  UINT16: [0, 65535, 1, 2],
  UINT32: [0, 4294967295, 3, 4],
  UINT64: [0, '18446744073709551615', '9007199254740993', 9007199254740991],
  INT8: [-128, 127, 0, -1],
  INT16: [-32768, 32767, 0, 1],
  INT32: [-2147483648, 2147483647, 0, 5],
  INT64: ['-9223372036854775808', '9223372036854775807', -9007199254740991, 42],
  FP16: [0.5, -65504, 65504, 0.0001220703125],
  FP32: [0.10000000149011612, -3.4028234663852886e38, 1.401298464324817e-45, 2],
  FP64: [0.1, -1.7976931348623157e308, 5e-324, 1e300],
  BYTES: ['héllo', '', 'a"b\\c', '日本'],
};
const DATATYPES = Object.keys(ROWS) as (keyof typeof ROWS)[];

describe('server routes', () => {
  it('answers live, ready and server metadata', async () => {
    expect(await env.call('GET', '/v2/health/live')).toMatchObject({ status: 200, body: { live: true } });
    expect(await env.call('GET', '/v2/health/ready')).toMatchObject({ status: 200, body: { ready: true } });
    const server = await env.call('GET', '/v2');
    expect(server.status).toBe(200);
    expect(server.body).toMatchObject({ name: 'maas', version: packageVersion });
    expect(Array.isArray(server.body.extensions)).toBe(true);
  });

  it('is not ready (503 + Retry-After) when the registry is unreachable', async () => {
    const broken = createPredictHandler({
      repo: new DynamoRegistryReader({
        ...localClientOptions(env.aws.dynamoEndpoint),
        table: 'no-such-table',
      }),
      store: env.artifacts,
      sessions: env.sessions,
      logger: silentLogger,
    });
    const r = parseResult<ErrorBody>(await broken(apiEvent('GET', '/v2/health/ready')));
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBeDefined();
    expect(r.body.code).toBe('UNAVAILABLE');
  });
});

describe('every datatype round-trips', () => {
  const request = (nested: boolean) => ({
    id: nested ? 'nested' : 'flat',
    inputs: DATATYPES.map((dt) => {
      const [a, b, c, d] = ROWS[dt];
      return {
        name: `x_${dt}`,
        datatype: dt,
        shape: [2, 2],
        data: nested
          ? [
              [a, b],
              [c, d],
            ]
          : [a, b, c, d],
      };
    }),
  });

  it.each([false, true])('with nested data: %s', async (nested) => {
    const r = await env.call<InferBody>('POST', '/v2/models/identity/infer', request(nested));
    expect(r.status).toBe(200);
    expect(r.body.id).toBe(nested ? 'nested' : 'flat');
    expect(r.body.model_name).toBe('identity');
    expect(r.body.model_version).toBe('1');
    expect(r.body.outputs.map((o) => o.name)).toEqual(DATATYPES.map((dt) => `y_${dt}`));
    for (const dt of DATATYPES) {
      const out = r.body.outputs.find((o) => o.name === `y_${dt}`)!;
      expect(out.datatype).toBe(dt);
      expect(out.shape).toEqual([2, 2]);
      expect(out.data).toEqual(ROWS[dt]);
    }
  });

  it('keeps INT64/UINT64 values beyond 2^53 exact when sent as bare JSON numbers', async () => {
    const body = `{"inputs":[${DATATYPES.map((dt) =>
      dt === 'INT64'
        ? '{"name":"x_INT64","datatype":"INT64","shape":[1,2],"data":[-9223372036854775808,9007199254740993]}'
        : dt === 'UINT64'
          ? '{"name":"x_UINT64","datatype":"UINT64","shape":[1,2],"data":[18446744073709551615,1]}'
          : JSON.stringify({ name: `x_${dt}`, datatype: dt, shape: [1, 2], data: ROWS[dt].slice(0, 2) }),
    ).join(',')}],"outputs":[{"name":"y_INT64"},{"name":"y_UINT64"}]}`;
    const r = await env.call<InferBody>('POST', '/v2/models/identity/infer', body);
    expect(r.status).toBe(200);
    expect(r.body.outputs).toEqual([
      {
        name: 'y_INT64',
        datatype: 'INT64',
        shape: [1, 2],
        data: ['-9223372036854775808', '9007199254740993'],
      },
      { name: 'y_UINT64', datatype: 'UINT64', shape: [1, 2], data: ['18446744073709551615', 1] },
    ]);
  });

  it('returns only the selected outputs, in the requested order', async () => {
    const r = await env.call<InferBody>('POST', '/v2/models/identity/infer', {
      ...request(false),
      outputs: [{ name: 'y_BYTES' }, { name: 'y_FP16' }],
    });
    expect(r.status).toBe(200);
    expect(r.body.outputs.map((o) => o.name)).toEqual(['y_BYTES', 'y_FP16']);
  });
});

/** The predict path's registry reads, recorded in order. */
function countingRepo() {
  const reads: string[] = [];
  const counting = {
    getAlias(n: string, a: string) {
      reads.push(`alias ${a}`);
      return env.reader.getAlias(n, a);
    },
    getVersion(n: string, v: number) {
      reads.push(`version ${v}`);
      return env.reader.getVersion(n, v);
    },
    getModel(n: string) {
      reads.push('model');
      return env.reader.getModel(n);
    },
  };
  return { reads, counting };
}

describe('routing by alias, number and no ref', () => {
  const x = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [10, 20] }] };
  it.each([
    ['/v2/models/router/infer', '1', [11, 21]],
    ['/v2/models/router/versions/prod/infer', '1', [11, 21]],
    ['/v2/models/router/versions/1/infer', '1', [11, 21]],
    ['/v2/models/router/versions/2/infer', '2', [12, 22]],
    ['/v2/models/router/versions/staging/infer', '2', [12, 22]],
  ])('%s serves version %s', async (path, version, y) => {
    const r = await env.call<InferBody>('POST', path, x);
    expect(r.status).toBe(200);
    expect(r.body.model_version).toBe(version);
    expect(r.body.outputs[0]!.data).toEqual(y);
  });

  it.each([
    ['/v2/models/nope/infer', 404, 'MODEL_NOT_FOUND'],
    ['/v2/models/router/versions/9/infer', 404, 'VERSION_NOT_FOUND'],
    ['/v2/models/router/versions/canary/infer', 404, 'ALIAS_NOT_FOUND'],
    ['/v2/models/router/versions/0/infer', 400, 'INVALID_VERSION'],
  ])('%s -> %s %s', async (path, status, code) => {
    const r = await env.call<ErrorBody>('POST', path, x);
    expect(r.status).toBe(status);
    expect(r.body.code).toBe(code);
  });

  it('serves model metadata and readiness with and without a ref', async () => {
    const meta = await env.call('GET', '/v2/models/router');
    expect(meta.status).toBe(200);
    expect(meta.body).toEqual({
      name: 'router',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
    });
    expect((await env.call('GET', '/v2/models/router/versions/staging')).body.versions).toEqual(['2']);
    expect(await env.call('GET', '/v2/models/router/ready')).toMatchObject({
      status: 200,
      body: { name: 'router', ready: true },
    });
    expect(await env.call('GET', '/v2/models/router/versions/2/ready')).toMatchObject({
      status: 200,
      body: { name: 'router', ready: true, version: '2' },
    });
    expect((await env.call('GET', '/v2/models/nope/ready')).status).toBe(404);
    expect((await env.call('GET', '/v2/models/router/versions/7')).status).toBe(404);
  });

  it('resolves an alias with one registry read: the alias item carries the version it points at', async () => {
    const { reads, counting } = countingRepo();
    const predictor = createPredictor({ repo: counting, store: env.artifacts, sessions: env.sessions });
    // prod was set by the first registration, staging by an alias move.
    expect((await predictor.infer('router', undefined, x)).model_version).toBe('1');
    expect((await predictor.infer('router', 'staging', x)).outputs[0]!.data).toEqual([12, 22]);
    expect(reads).toEqual(['alias prod', 'alias staging']);
    const alias = await env.repo.getAlias('router', 'staging');
    expect(alias?.target).toMatchObject({ name: 'router', version: 2, status: 'READY' });
    expect(alias?.target?.sha256).toBe((await env.repo.getVersion('router', 2))?.sha256);
  });

  it('resolves an alias item without the version copy through the version item', async () => {
    await env.aws.doc.send(
      new PutCommand({
        TableName: env.aws.table,
        Item: {
          pk: keys.modelPk('router'),
          sk: keys.aliasSk('legacy'),
          name: 'router',
          alias: 'legacy',
          version: 2,
          revision: 1,
          updatedAt: '2026-01-01T00:00:00.000Z',
        },
      }),
    );
    const { reads, counting } = countingRepo();
    const predictor = createPredictor({ repo: counting, store: env.artifacts, sessions: env.sessions });
    expect((await predictor.infer('router', 'legacy', x)).model_version).toBe('2');
    expect(reads).toEqual(['alias legacy', 'version 2']);
  });

  it('sees an alias move only after the alias TTL', async () => {
    await env.register('mover', addConstant(100));
    await env.register('mover', addConstant(200));
    const version = async () =>
      (await env.call<InferBody>('POST', '/v2/models/mover/infer', x)).body.model_version;
    expect(await version()).toBe('1');
    await env.moveAlias('mover', 'prod', 2);
    env.now += 1000;
    expect(await version()).toBe('1');
    env.now += 4001;
    expect(await version()).toBe('2');
  });
});

describe('version status', () => {
  it('stops serving a version asked for by number once it is ARCHIVED (after the TTL)', async () => {
    const x = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [10, 20] }] };
    await env.register('retiring', addConstant(1));
    await env.register('retiring', addConstant(2));
    const call = () => env.call<InferBody | ErrorBody>('POST', '/v2/models/retiring/versions/2/infer', x);
    expect((await call()).status).toBe(200);
    await env.repo.updateVersion('retiring', 2, { status: 'ARCHIVED' });
    env.now += 1000;
    expect((await call()).status).toBe(200);
    env.now += 4001;
    const refused = await call();
    expect(refused.status).toBe(409);
    expect((refused.body as ErrorBody).code).toBe('VERSION_NOT_READY');
    await env.repo.deleteVersion('retiring', 2);
    const gone = await call();
    expect(gone.status).toBe(404);
    expect((gone.body as ErrorBody).code).toBe('VERSION_NOT_FOUND');
  });
});

/** The classifier's own output, then its post-processing outputs, in the order they are answered. */
const CLASSIFIER_OUTPUTS = [
  'output',
  'softmax',
  'argmax',
  'label',
  'topk_indices',
  'topk_scores',
  'topk_labels',
];

describe('post-processing', () => {
  const features = {
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [2, 4], data: [5.1, 3.5, 1.4, 0.2, 6.7, 3, 5.2, 2.3] },
    ],
  };

  it('adds softmax, argmax, labels and topK outputs', async () => {
    const r = await env.call<InferBody>('POST', '/v2/models/classifier/infer', features);
    expect(r.status).toBe(200);
    const by = Object.fromEntries(r.body.outputs.map((o) => [o.name, o]));
    expect(Object.keys(by)).toEqual(CLASSIFIER_OUTPUTS);
    const logits = by.output!.data as number[];
    const probs = by.softmax!.data as number[];
    const labels = ['setosa', 'versicolor', 'virginica'];
    for (let row = 0; row < 2; row++) {
      const l = logits.slice(row * 3, row * 3 + 3);
      const p = probs.slice(row * 3, row * 3 + 3);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      const best = l.indexOf(Math.max(...l));
      expect(by.argmax!.data[row]).toBe(best);
      expect(by.label!.data[row]).toBe(labels[best]);
      expect(by.topk_indices!.data[row * 2]).toBe(best);
      expect(by.topk_scores!.data[row * 2]).toBeCloseTo(Math.max(...p), 6);
      expect(by.topk_labels!.data[row * 2]).toBe(labels[best]);
    }
    expect(by.argmax).toMatchObject({ datatype: 'INT64', shape: [2] });
    expect(by.label).toMatchObject({ datatype: 'BYTES', shape: [2] });
    expect(by.topk_scores).toMatchObject({ datatype: 'FP32', shape: [2, 2] });
  });

  it('selects post-processing outputs like any other', async () => {
    const r = await env.call<InferBody>('POST', '/v2/models/classifier/infer', {
      ...features,
      outputs: [{ name: 'label' }],
    });
    expect(r.body.outputs.map((o) => o.name)).toEqual(['label']);
  });

  it('lists the extra outputs in the model metadata', async () => {
    const meta = await env.call<{ outputs: { name: string }[] }>('GET', '/v2/models/classifier');
    expect(meta.body.outputs.map((o) => o.name)).toEqual(CLASSIFIER_OUTPUTS);
  });
});

describe('an output declared with no shape (any rank)', () => {
  // y = Reshape(x, s): the model declares no shape for y, and onnxruntime cannot infer its rank (s's length varies).
  const shapeless = () =>
    buildModel({
      inputs: [
        { name: 'x', elemType: ElemType.FLOAT, shape: ['n'] },
        { name: 's', elemType: ElemType.INT64, shape: ['k'] },
      ],
      outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: null }],
      nodes: [{ opType: 'Reshape', inputs: ['x', 's'], outputs: ['y'] }],
    });
  const request = (x: number[], s: number[], id?: string) => ({
    ...(id ? { id } : {}),
    inputs: [
      { name: 'x', datatype: 'FP32', shape: [x.length], data: x },
      { name: 's', datatype: 'INT64', shape: [s.length], data: s },
    ],
  });
  const rows = request([1, 3, 2, 0, -1, 5], [2, 3]);

  it('is listed with shape [] and answered with the dims the model computed', async () => {
    const v = await env.register('no-rank-out', shapeless());
    expect(v.signature.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [] }]);
    const meta = await env.call<{ outputs: unknown[] }>('GET', '/v2/models/no-rank-out');
    expect(meta.body.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [] }]);
    const r = await env.call<InferBody>('POST', '/v2/models/no-rank-out/infer', rows);
    expect(r.status).toBe(200);
    expect(r.body.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [2, 3], data: [1, 3, 2, 0, -1, 5] },
    ]);
  });

  it('post-processes the computed tensor on its last axis', async () => {
    await env.register('no-rank-pp', shapeless(), {
      postprocess: { softmax: true, topK: 2 },
      labels: ['a', 'b', 'c'],
    });
    const r = await env.call<InferBody>('POST', '/v2/models/no-rank-pp/infer', rows);
    expect(r.status).toBe(200);
    const by = Object.fromEntries(r.body.outputs.map((o) => [o.name, o]));
    expect(by.softmax).toMatchObject({ shape: [2, 3] });
    expect(by.label).toMatchObject({ shape: [2], data: ['b', 'c'] });
    expect(by.topk_indices).toMatchObject({ shape: [2, 2], data: [1, 2, 2, 0] });
    expect(by.topk_labels).toMatchObject({ shape: [2, 2], data: ['b', 'c', 'c', 'a'] });
  });

  it('is not stacked with other requests in a batch: each runs alone and gets its own answer', async () => {
    const predictor = createPredictor({ repo: env.reader, store: env.artifacts, sessions: env.sessions });
    const items = await predictor.inferBatch('no-rank-out', undefined, [
      request([1, 2, 3], [3], 'a'),
      request([1, 2, 3, 4, 5, 6], [3, 2], 'b'),
    ]);
    expect(items.map((i) => (i.ok ? i.response.outputs[0] : i))).toEqual([
      { name: 'y', datatype: 'FP32', shape: [3], data: [1, 2, 3] },
      { name: 'y', datatype: 'FP32', shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
    ]);
  });
});

describe('validation errors name the input and what was expected', () => {
  const infer = (body: unknown, path = '/v2/models/router/infer') => env.call<ErrorBody>('POST', path, body);
  const x = (over: Record<string, unknown>) => ({
    inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2], ...over }],
  });

  it.each([
    ['unknown input', x({ name: 'z' }), 'UNKNOWN_INPUT', /'z'.*expected 'x'/],
    [
      'missing input',
      { inputs: [{ name: 'a', datatype: 'FP32', shape: [1], data: [1] }] },
      'MISSING_INPUT',
      /'b' \(FP32 \[-1\]\)/,
    ],
    ['wrong datatype', x({ datatype: 'FP64' }), 'DATATYPE_MISMATCH', /'x' has datatype FP64; .*expects FP32/],
    ['wrong rank', x({ shape: [2], data: [1, 2] }), 'SHAPE_MISMATCH', /'x' .*rank 1.*expects rank 2/],
    ['fixed dim mismatch', x({ shape: [1, 3], data: [1, 2, 3] }), 'SHAPE_MISMATCH', /dimension 1 must be 2/],
    [
      'data length',
      x({ shape: [2, 2] }),
      'DATA_LENGTH_MISMATCH',
      /'x': data has 2 elements; shape \[2,2\] needs 4/,
    ],
    ['non-finite', x({ data: [1, 1e39] }), 'NON_FINITE', /'x': data\[1\]/],
    [
      'wrong element type',
      x({ data: [1, 'two'] }),
      'INVALID_DATA',
      /'x': data\[1\] is 'two'; expected a finite number/,
    ],
    ['unknown output', { ...x({}), outputs: [{ name: 'logits' }] }, 'UNKNOWN_OUTPUT', /'logits'.*'y'/],
  ])('%s', async (_what, body, code, message) => {
    const r = await infer(body, code === 'MISSING_INPUT' ? '/v2/models/add-two/infer' : undefined);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe(code);
    expect(r.body.error).toMatch(message);
  });

  it('answers an onnxruntime error caused by the request with 400', async () => {
    const r = await infer(
      {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [2], data: [1, 2] },
          { name: 'b', datatype: 'FP32', shape: [3], data: [1, 2, 3] },
        ],
      },
      '/v2/models/add-two/infer',
    );
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('INFERENCE_FAILED');
  });

  it('answers an oversized body with 413', async () => {
    const small = await createPredictTestEnv({ maxBodyBytes: 64 });
    try {
      const r = await small.call<ErrorBody>(
        'POST',
        '/v2/models/router/infer',
        x({ data: [1.00000001, 2.00000002] }),
      );
      expect(r.status).toBe(413);
      expect(r.body.code).toBe('PAYLOAD_TOO_LARGE');
    } finally {
      await small.dispose();
    }
  });
});

describe('artifact integrity', () => {
  it('refuses a tampered artifact: 500 ARTIFACT_INTEGRITY and no session', async () => {
    const v = await env.register('tamper', addConstant(5));
    const original = await env.store.getObject(v.s3Key);
    await env.aws.s3.send(
      new PutObjectCommand({ Bucket: env.aws.bucket, Key: v.s3Key, Body: addConstant(6) }),
    );
    const created = env.sessions.created;
    const x = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [0, 0] }] };
    const r = await env.call<ErrorBody>('POST', '/v2/models/tamper/infer', x);
    expect(r.status).toBe(500);
    expect(r.body.code).toBe('ARTIFACT_INTEGRITY');
    expect(env.sessions.has(v.sha256)).toBe(false);
    expect(env.sessions.created).toBe(created);
    // The failed load is not cached: once the artifact is intact again, the version serves.
    await env.aws.s3.send(new PutObjectCommand({ Bucket: env.aws.bucket, Key: v.s3Key, Body: original }));
    const ok = await env.call<InferBody>('POST', '/v2/models/tamper/infer', x);
    expect(ok.status).toBe(200);
    expect(ok.body.outputs[0]!.data).toEqual([5, 5]);
    expect(env.sessions.has(v.sha256)).toBe(true);
  });
});

describe('model readiness', () => {
  it('loads the version: not ready (409 VERSION_NOT_READY) while its artifact is missing or tampered, ready once it loads; a warm probe reads nothing', async () => {
    const v = await env.register('unready', addConstant(3));
    const original = await env.store.getObject(v.s3Key);
    let fetches = 0;
    const sessions = new SessionCache({ engine: env.sessions.engine });
    const handler = createPredictHandler({
      repo: env.reader,
      store: {
        getObject: (key) => {
          fetches++;
          return env.artifacts.getObject(key);
        },
        getObjectHashed: (key) => {
          fetches++;
          return env.artifacts.getObjectHashed(key);
        },
      },
      sessions,
      logger: silentLogger,
    });
    const ready = async (path: string) => parseResult<ErrorBody>(await handler(apiEvent('GET', path)));
    try {
      await env.aws.s3.send(new DeleteObjectCommand({ Bucket: env.aws.bucket, Key: v.s3Key }));
      expect(await ready('/v2/models/unready/ready')).toMatchObject({
        status: 409,
        body: { code: 'VERSION_NOT_READY', error: expect.stringMatching(/version 1 is not ready.*missing/) },
      });
      await env.aws.s3.send(
        new PutObjectCommand({ Bucket: env.aws.bucket, Key: v.s3Key, Body: addConstant(4) }),
      );
      expect(await ready('/v2/models/unready/versions/1/ready')).toMatchObject({
        status: 409,
        body: { code: 'VERSION_NOT_READY', error: expect.stringMatching(/integrity check/) },
      });
      expect(sessions.has(v.sha256)).toBe(false);

      await env.aws.s3.send(new PutObjectCommand({ Bucket: env.aws.bucket, Key: v.s3Key, Body: original }));
      expect(await ready('/v2/models/unready/ready')).toMatchObject({
        status: 200,
        body: { name: 'unready', version: '1', ready: true },
      });
      expect(sessions.has(v.sha256)).toBe(true);
      // Warm: version and session cached, the probe fetches nothing.
      const before = fetches;
      expect((await ready('/v2/models/unready/versions/1/ready')).status).toBe(200);
      expect(fetches).toBe(before);
    } finally {
      await sessions.close();
    }
  });
});

describe('artifact download', () => {
  it('hashes the artifact while it streams in: same bytes as getObject, digest of those bytes', async () => {
    const bytes = buildMlp({ inFeatures: 256, layers: [512, 4], seed: 3 });
    await env.store.putObject('models/streamed/a.onnx', bytes);
    const fetched = await env.artifacts.getObjectHashed('models/streamed/a.onnx');
    expect(Buffer.from(fetched.bytes).equals(Buffer.from(bytes))).toBe(true);
    expect(fetched.sha256).toBe(sha256Hex(bytes));
    await expect(env.artifacts.getObjectHashed('models/streamed/missing.onnx')).rejects.toMatchObject({
      code: 'ARTIFACT_NOT_FOUND',
    });
  });
});

describe('predictor reuse (batch and async paths)', () => {
  it('inferBatch answers each request in order, batching compatible rows, isolating bad ones', async () => {
    const predictor = createPredictor({ repo: env.reader, store: env.artifacts, sessions: env.sessions });
    const req = (id: string, rows: number[][]) => ({
      id,
      inputs: [{ name: 'x', datatype: 'FP32', shape: [rows.length, 2], data: rows }],
    });
    const requests = [
      req('a', [[1, 2]]),
      req('b', [
        [3, 4],
        [5, 6],
      ]),
      { id: 'bad', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] },
      req('c', [[7, 8]]),
    ];
    const items = await predictor.inferBatch('router', 'staging', requests);
    expect(items.map((i) => i.ok)).toEqual([true, true, false, true]);
    for (const [i, expected] of [
      [0, [3, 4]],
      [1, [5, 6, 7, 8]],
      [3, [9, 10]],
    ] as const) {
      const item = items[i]!;
      if (!item.ok) throw new Error('expected an answer');
      const single = await predictor.infer('router', 'staging', requests[i]);
      expect(item.response).toEqual(single);
      expect(item.response.outputs[0]!.data).toEqual(expected);
    }
    expect(items[2]).toMatchObject({ ok: false, status: 400, code: 'SHAPE_MISMATCH' });
  });
});

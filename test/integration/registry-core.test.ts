/**
 * Registry use cases on DynamoDB Local + s3rver + onnxruntime-node: registration, FAILED versions, the size
 * limit, automatic `prod`, concurrent registrations, and the artifact written before the version. What the
 * repository guarantees by itself (version allocation and alias moves under concurrency, history, rollback,
 * archive and delete rules, pagination) is the contract suite's (test/helpers/registry-repository-contract.ts),
 * run on DynamoDB Local by dynamodb-registry.test.ts and in memory by test/unit/memory-registry.test.ts.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { S3ArtifactStore } from '../../functions/adapters/s3-artifact-store';
import { aliasHistory, type RegistryDeps, registerVersion } from '../../functions/app/registry';
import { S3_KEYS } from '../../functions/contract/env';
import { PayloadTooLargeError, UnprocessableModelError } from '../../functions/domain/errors';
import { buildMlp, buildModel, ElemType } from '../../functions/local/onnx-builder';
import type { RegistryEvent } from '../../functions/ports';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';

describe('registry use cases (DynamoDB Local + s3rver + onnxruntime-node)', () => {
  let env: TestAwsEnv;
  let deps: RegistryDeps;
  const events: RegistryEvent[] = [];
  const mlp = buildMlp({ inFeatures: 4, layers: [8, 3], softmax: true });

  beforeAll(async () => {
    env = await createTestAwsEnv('reg-core');
    deps = {
      repo: new DynamoRegistryRepository({ doc: env.doc, table: env.table }),
      store: new S3ArtifactStore({ s3: env.s3, bucket: env.bucket }),
      inspector: new OrtModelInspector(),
      events: { publish: async (e) => void events.push(e) },
    };
  });
  afterAll(() => env.dispose());

  const upload = async (name: string, bytes: Uint8Array, id = 'u1') => {
    const key = S3_KEYS.upload(name, id);
    await deps.store.putObject(key, bytes);
    return key;
  };

  it('registers a loadable model: READY, content-addressed copy, signature, prod alias', async () => {
    const sourceKey = await upload('iris', mlp);
    const v = await registerVersion(deps, {
      name: 'iris',
      sourceKey,
      description: 'first',
      tags: { team: 'ml' },
      labels: ['a', 'b', 'c'],
      postprocess: { softmax: false, argmax: true },
      actor: 'arn:aws:iam::1:user/alice',
    });
    const sha256 = createHash('sha256').update(mlp).digest('hex');
    expect(v).toMatchObject({
      name: 'iris',
      version: 1,
      status: 'READY',
      sha256,
      sizeBytes: mlp.byteLength,
      s3Key: `models/iris/${sha256}.onnx`,
      description: 'first',
      tags: { team: 'ml' },
      labels: ['a', 'b', 'c'],
      postprocess: { softmax: false, argmax: true },
      createdBy: 'arn:aws:iam::1:user/alice',
      signature: {
        inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
        outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 3] }],
      },
    });
    const copied = await deps.store.getObject(v.s3Key);
    expect(Buffer.from(copied).equals(Buffer.from(mlp))).toBe(true);
    expect(await deps.repo.getVersion('iris', 1)).toEqual(v);
    expect(await deps.repo.getAlias('iris', 'prod')).toMatchObject({
      alias: 'prod',
      version: 1,
      revision: 1,
    });
    const model = await deps.repo.getModel('iris');
    expect(model).toMatchObject({ name: 'iris', latestVersion: 1, aliases: { prod: 1 } });
    const history = await aliasHistory(deps, 'iris', 'prod', 10);
    expect(history.items).toEqual([
      expect.objectContaining({
        alias: 'prod',
        version: 1,
        previousVersion: null,
        actor: 'arn:aws:iam::1:user/alice',
      }),
    ]);
    expect(events).toContainEqual({
      type: 'ModelVersionRegistered',
      detail: { name: 'iris', version: 1, sha256 },
    });

    // A second READY version does not take prod.
    const v2 = await registerVersion(deps, { name: 'iris', sourceKey });
    expect(v2.version).toBe(2);
    expect((await deps.repo.getModel('iris'))?.aliases).toEqual({ prod: 1 });
  });

  it('records corrupt bytes as FAILED (number consumed), throws 422, and never aliases them', async () => {
    const sourceKey = await upload('broken', new Uint8Array([8, 1, 18, 3, 1, 2, 3, 255, 255]));
    const err = await registerVersion(deps, { name: 'broken', sourceKey }).catch((e) => e);
    expect(err).toBeInstanceOf(UnprocessableModelError);
    expect(err.status).toBe(422);
    const v1 = await deps.repo.getVersion('broken', 1);
    expect(v1).toMatchObject({ status: 'FAILED', failureReason: expect.any(String) });
    expect(await deps.repo.getAlias('broken', 'prod')).toBeUndefined();
    expect(events.some((e) => e.type === 'ModelVersionFailed' && e.detail.name === 'broken')).toBe(true);

    // The next good version is 2 and becomes the first READY one: it gets prod.
    const good = await upload('broken', mlp, 'u2');
    const v2 = await registerVersion(deps, { name: 'broken', sourceKey: good });
    expect(v2).toMatchObject({ version: 2, status: 'READY' });
    expect((await deps.repo.getModel('broken'))?.aliases).toEqual({ prod: 2 });
  });

  it('rejects a model whose initializer references an external data file', async () => {
    const bytes = buildModel({
      inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: [2] }],
      outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: [2] }],
      nodes: [{ opType: 'Add', inputs: ['x', 'W'], outputs: ['y'] }],
      initializers: [{ name: 'W', elemType: ElemType.FLOAT, dims: [2], externalLocation: 'weights.bin' }],
    });
    const sourceKey = await upload('external', bytes);
    const err = await registerVersion(deps, { name: 'external', sourceKey }).catch((e) => e);
    expect(err).toBeInstanceOf(UnprocessableModelError);
    expect(err.message).toMatch(/external data/);
    expect(await deps.repo.getVersion('external', 1)).toMatchObject({ status: 'FAILED' });
    expect(await deps.repo.getAlias('external', 'prod')).toBeUndefined();
  });

  it('enforces the size limit before anything is recorded (413)', async () => {
    const sourceKey = await upload('big', mlp);
    const err = await registerVersion(
      { ...deps, maxModelBytes: mlp.byteLength - 1 },
      { name: 'big', sourceKey },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(await deps.repo.getModel('big')).toBeUndefined();
  });

  it('concurrent registrations of the same bytes all succeed, with numbers 1..n and one shared artifact', {
    timeout: 180_000,
  }, async () => {
    // Version allocation under contention is the repository's (see the contract suite); this is the use case
    // around it: every registration writes the same content-addressed key at once.
    const sourceKey = await upload('busy', mlp);
    const n = 20;
    const results = await Promise.all(
      Array.from({ length: n }, () => registerVersion(deps, { name: 'busy', sourceKey })),
    );
    const numbers = results.map((v) => v.version).sort((a, b) => a - b);
    expect(numbers).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(new Set(results.map((v) => v.s3Key)).size).toBe(1);
    const copied = await deps.store.getObject(results[0]!.s3Key);
    expect(Buffer.from(copied).equals(Buffer.from(mlp))).toBe(true);
    expect((await deps.repo.getModel('busy'))?.aliases).toEqual({ prod: expect.any(Number) });
    expect(
      events.filter((e) => e.type === 'ModelVersionRegistered' && e.detail.name === 'busy'),
    ).toHaveLength(n);
  });

  it('a failed artifact write records nothing (no READY version without its artifact)', async () => {
    const sourceKey = await upload('nocopy', mlp);
    const failing = {
      ...deps,
      store: Object.assign(Object.create(deps.store), {
        headObject: deps.store.headObject.bind(deps.store),
        getObject: deps.store.getObject.bind(deps.store),
        putObject: async () => {
          throw new Error('S3 unavailable');
        },
      }),
    };
    await expect(registerVersion(failing, { name: 'nocopy', sourceKey })).rejects.toThrow('S3 unavailable');
    expect(await deps.repo.getModel('nocopy')).toBeUndefined();
  });
});

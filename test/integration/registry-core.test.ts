/**
 * Registry use cases on DynamoDB Local + s3rver + onnxruntime-node: registration, versions,
 * automatic `prod`, and concurrency of version allocation and alias moves.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { S3ArtifactStore } from '../../functions/adapters/s3-artifact-store';
import {
  aliasHistory,
  deleteAlias,
  deleteVersion,
  moveAlias,
  type RegistryDeps,
  registerVersion,
  rollbackAlias,
} from '../../functions/app/registry';
import { S3_KEYS } from '../../functions/contract/env';
import {
  PayloadTooLargeError,
  PreconditionFailedError,
  UnprocessableModelError,
} from '../../functions/domain/errors';
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

  it('allocates versions 1..50 to 50 concurrent registrations, no duplicates, no gaps', {
    timeout: 180_000,
  }, async () => {
    const sourceKey = await upload('busy', mlp);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => registerVersion(deps, { name: 'busy', sourceKey })),
    );
    const numbers = results.map((v) => v.version).sort((a, b) => a - b);
    expect(numbers).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect((await deps.repo.getModel('busy'))?.latestVersion).toBe(50);
    const stored = await deps.repo.listVersions('busy', 100);
    expect(stored.items.map((v) => v.version)).toEqual(Array.from({ length: 50 }, (_, i) => 50 - i));
    // Exactly one of them took prod (version 1 is not guaranteed to commit first, but one did).
    const model = await deps.repo.getModel('busy');
    expect(Object.keys(model?.aliases ?? {})).toEqual(['prod']);
    const prodHistory = await deps.repo.aliasHistory('busy', 'prod', 10);
    expect(prodHistory.items).toHaveLength(1);
  });

  it('50 concurrent alias moves with the same expectedVersion: one winner, 49 × 412', {
    timeout: 180_000,
  }, async () => {
    const sourceKey = await upload('race', mlp);
    for (let i = 0; i < 3; i++) await registerVersion(deps, { name: 'race', sourceKey });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        moveAlias(deps, {
          name: 'race',
          alias: 'prod',
          version: 2 + (i % 2),
          expectedVersion: 1,
          actor: `user-${i}`,
        }),
      ),
    );
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(49);
    for (const l of lost) expect(l.reason).toBeInstanceOf(PreconditionFailedError);
    const winner = (won[0] as PromiseFulfilledResult<{ version: number; revision: number }>).value;
    expect(winner.revision).toBe(2);
    expect(await deps.repo.getAlias('race', 'prod')).toMatchObject({ version: winner.version, revision: 2 });
    const history = await deps.repo.aliasHistory('race', 'prod', 10);
    expect(history.items.map((h) => [h.version, h.previousVersion])).toEqual([
      [winner.version, 1],
      [1, null],
    ]);

    // Rollback goes back to 1, and the alias set of the versions follows.
    const back = await rollbackAlias(deps, { name: 'race', alias: 'prod', actor: 'ops' });
    expect(back).toMatchObject({ alias: 'prod', version: 1, previousVersion: winner.version, revision: 3 });
    expect((await deps.repo.getModel('race'))?.aliases).toEqual({ prod: 1 });
  });

  it('a delete racing an alias move to the same version: never both succeed', async () => {
    const sourceKey = await upload('racedel', mlp);
    for (let i = 0; i < 2; i++) await registerVersion(deps, { name: 'racedel', sourceKey });
    for (let round = 0; round < 5; round++) {
      const target = round + 2;
      if (round > 0) await registerVersion(deps, { name: 'racedel', sourceKey });
      const [del, mv] = await Promise.allSettled([
        deleteVersion(deps, 'racedel', target),
        moveAlias(deps, { name: 'racedel', alias: 'canary', version: target, actor: 'x' }),
      ]);
      const stored = await deps.repo.getVersion('racedel', target);
      const alias = await deps.repo.getAlias('racedel', 'canary');
      if (del.status === 'fulfilled') {
        expect(mv.status).toBe('rejected');
        expect(stored).toBeUndefined();
        expect(alias?.version).not.toBe(target);
      } else {
        expect((del.reason as Error).name).toBe('ConflictError');
        expect(mv.status).toBe('fulfilled');
        expect(stored).toBeDefined();
        expect(alias?.version).toBe(target);
      }
      // Move canary away so the next round starts clean.
      if (alias) await deleteAlias(deps, { name: 'racedel', alias: 'canary', actor: 'x' });
    }
  });

  it('re-pointing an alias at its current version bumps the revision and records history', async () => {
    const sourceKey = await upload('same', mlp);
    await registerVersion(deps, { name: 'same', sourceKey });
    const r = await moveAlias(deps, {
      name: 'same',
      alias: 'prod',
      version: 1,
      expectedVersion: 1,
      actor: 'x',
    });
    expect(r).toEqual({ alias: 'prod', version: 1, previousVersion: 1, revision: 2 });
    // The alias set of version 1 still holds prod: it cannot be deleted.
    await expect(deleteVersion(deps, 'same', 1)).rejects.toThrow(/aliased/);
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

  it('concurrent moves without expectedVersion all apply, in one unbroken history chain', {
    timeout: 180_000,
  }, async () => {
    const sourceKey = await upload('chain', mlp);
    for (let i = 0; i < 4; i++) await registerVersion(deps, { name: 'chain', sourceKey });
    const n = 20;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        moveAlias(deps, { name: 'chain', alias: 'staging', version: 1 + (i % 4), actor: `u${i}` }),
      ),
    );
    expect(results.map((r) => r.revision).sort((a, b) => a - b)).toEqual(
      Array.from({ length: n }, (_, i) => i + 1),
    );
    const history = (await deps.repo.aliasHistory('chain', 'staging', 100)).items;
    expect(history).toHaveLength(n);
    // Newest first: each entry's previousVersion is the version of the entry before it in time.
    for (let i = 0; i < history.length - 1; i++) {
      expect(history[i]?.previousVersion).toBe(history[i + 1]?.version);
    }
    expect(history.at(-1)?.previousVersion).toBeNull();
    const alias = await deps.repo.getAlias('chain', 'staging');
    expect(alias).toMatchObject({ version: history[0]?.version, revision: n });
    expect((await deps.repo.getModel('chain'))?.aliases.staging).toBe(history[0]?.version);
    // Only the current target carries the alias: every other version can be deleted... except prod's.
    for (const v of [1, 2, 3, 4]) {
      const aliased = v === alias?.version || v === 1;
      const outcome = await deleteVersion(deps, 'chain', v).then(
        () => 'deleted',
        (e: Error) => e.name,
      );
      expect(outcome).toBe(aliased ? 'ConflictError' : 'deleted');
    }
  });

  it("keeps history in move order when a writer's clock lags behind", async () => {
    const sourceKey = await upload('skew', mlp);
    for (let i = 0; i < 3; i++) await registerVersion(deps, { name: 'skew', sourceKey });
    const lagging = new DynamoRegistryRepository({
      doc: env.doc,
      table: env.table,
      clock: { now: () => new Date(Date.now() - 3_600_000) },
    });
    await deps.repo.moveAlias({ name: 'skew', alias: 'prod', version: 2, actor: 'on-time' });
    await lagging.moveAlias({ name: 'skew', alias: 'prod', version: 3, actor: 'late' });
    const history = (await deps.repo.aliasHistory('skew', 'prod', 10)).items;
    expect(history.map((h) => [h.actor, h.version, h.previousVersion])).toEqual([
      ['late', 3, 2],
      ['on-time', 2, 1],
      [expect.any(String), 1, null],
    ]);
    const rolled = await rollbackAlias(deps, { name: 'skew', alias: 'prod', actor: 'ops' });
    expect(rolled).toMatchObject({ version: 2, previousVersion: 3 });
  });

  it('surfaces an item DynamoDB rejects (ValidationException) instead of retrying it', async () => {
    const huge = {
      inputs: [{ name: 'x'.repeat(450_000), datatype: 'FP32' as const, shape: [1] }],
      outputs: [],
    };
    const err = await deps.repo
      .createVersion({
        name: 'huge-item',
        sha256: 'x',
        sizeBytes: 1,
        s3Key: 'k',
        signature: huge,
        status: 'READY',
      })
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('ValidationException');
    expect(await deps.repo.getModel('huge-item')).toBeUndefined();
  });
});

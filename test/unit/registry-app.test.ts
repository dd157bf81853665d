/** registerVersion and the alias use cases on the in-memory repository and a fake store (no emulators). */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import {
  createUpload,
  type RegistryDeps,
  registerVersion,
  rollbackAlias,
  updateAlias,
} from '../../functions/app/registry';
import { LIMITS } from '../../functions/contract/limits';
import {
  BadRequestError,
  ConflictError,
  PayloadTooLargeError,
  UnprocessableModelError,
} from '../../functions/domain/errors';
import type {
  AliasMove,
  AliasMoveResult,
  ModelSignature,
  ModelVersion,
  NewVersion,
} from '../../functions/domain/types';
import type { RegistryEvent } from '../../functions/ports';
import { MemoryArtifactStore } from '../helpers/memory-artifact-store';

const SIG: ModelSignature = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
};

/** The in-memory repository, recording the versions it is asked to create and the moves it is asked to make. */
class RecordingRepository extends MemoryRegistryRepository {
  readonly created: NewVersion[] = [];
  readonly moves: AliasMove[] = [];
  override createVersion(v: NewVersion): Promise<ModelVersion> {
    this.created.push(v);
    return super.createVersion(v);
  }
  override moveAlias(m: AliasMove): Promise<AliasMoveResult> {
    this.moves.push(m);
    return super.moveAlias(m);
  }
}

function fakes(objects: Record<string, Uint8Array> = {}) {
  const store = new MemoryArtifactStore(new Map(Object.entries(objects)));
  const repo = new RecordingRepository();
  const events: RegistryEvent[] = [];
  return { store, repo, created: repo.created, moves: repo.moves, events };
}

/** `n` READY versions of `name` in the repository (the first becomes prod). */
async function registered(repo: RecordingRepository, name: string, n: number) {
  for (let i = 0; i < n; i++) {
    await repo.createVersion({
      name,
      sha256: sha,
      sizeBytes: 4,
      s3Key: `models/${name}/${sha}.onnx`,
      signature: SIG,
      status: 'READY',
    });
  }
  repo.created.length = 0;
}

const bytes = new Uint8Array([1, 2, 3, 4]);
const sha = createHash('sha256').update(bytes).digest('hex');

describe('registerVersion', () => {
  it('hashes, inspects, writes the bytes to models/{name}/{sha256}.onnx, then writes READY and publishes', async () => {
    const f = fakes({ 'uploads/m/u.onnx': bytes });
    const deps: RegistryDeps = {
      repo: f.repo,
      store: f.store,
      inspector: { inspect: async () => SIG },
      events: { publish: async (e) => void f.events.push(e) },
    };
    const v = await registerVersion(deps, { name: 'm', sourceKey: 'uploads/m/u.onnx', actor: 'bob' });
    expect(f.store.writes).toEqual([`models/m/${sha}.onnx`]);
    expect(f.store.objects.get(`models/m/${sha}.onnx`)).toEqual(bytes);
    expect(f.created[0]).toMatchObject({
      name: 'm',
      status: 'READY',
      sha256: sha,
      sizeBytes: 4,
      s3Key: `models/m/${sha}.onnx`,
      signature: SIG,
      createdBy: 'bob',
    });
    expect(v.version).toBe(1);
    expect(await f.repo.getVersion('m', 1)).toEqual(v);
    expect(f.events).toEqual([
      { type: 'ModelVersionRegistered', detail: { name: 'm', version: 1, sha256: sha } },
    ]);
  });

  it('stores the bytes it verified even when the source is overwritten meanwhile', async () => {
    const f = fakes({ 'uploads/m/u.onnx': bytes });
    const inspector = {
      inspect: async () => {
        f.store.objects.set('uploads/m/u.onnx', new Uint8Array([9, 9, 9, 9, 9]));
        return SIG;
      },
    };
    const v = await registerVersion(
      { repo: f.repo, store: f.store, inspector },
      { name: 'm', sourceKey: 'uploads/m/u.onnx' },
    );
    expect(v.sha256).toBe(sha);
    expect(f.store.objects.get(`models/m/${sha}.onnx`)).toEqual(bytes);
  });

  it('skips the copy when the content-addressed artifact already exists', async () => {
    const f = fakes({ 'incoming/m/a.onnx': bytes, [`models/m/${sha}.onnx`]: bytes });
    const deps = { repo: f.repo, store: f.store, inspector: { inspect: async () => SIG } };
    await registerVersion(deps, { name: 'm', sourceKey: 'incoming/m/a.onnx' });
    expect(f.store.writes).toEqual([]);
  });

  it('records FAILED with the reason and throws 422 when the inspector rejects the bytes', async () => {
    const f = fakes({ 'uploads/m/u.onnx': bytes });
    const deps: RegistryDeps = {
      repo: f.repo,
      store: f.store,
      inspector: {
        inspect: async () => {
          throw new UnprocessableModelError('protobuf parsing failed');
        },
      },
      events: { publish: async (e) => void f.events.push(e) },
    };
    const err = await registerVersion(deps, { name: 'm', sourceKey: 'uploads/m/u.onnx' }).catch((e) => e);
    expect(err).toBeInstanceOf(UnprocessableModelError);
    expect(err.message).toContain('protobuf parsing failed');
    expect(f.created).toEqual([
      expect.objectContaining({
        status: 'FAILED',
        failureReason: 'protobuf parsing failed',
        s3Key: 'uploads/m/u.onnx',
      }),
    ]);
    expect(f.store.writes).toEqual([]);
    expect(f.events).toEqual([
      { type: 'ModelVersionFailed', detail: { name: 'm', version: 1, reason: 'protobuf parsing failed' } },
    ]);
    expect(await f.repo.getVersion('m', 1)).toMatchObject({ status: 'FAILED', s3Key: 'uploads/m/u.onnx' });
    expect(await f.repo.getAlias('m', 'prod')).toBeUndefined();
  });

  it('records nothing when the inspector fails for another reason', async () => {
    const f = fakes({ 'uploads/m/u.onnx': bytes });
    const boom = new Error('out of memory');
    const deps = {
      repo: f.repo,
      store: f.store,
      inspector: {
        inspect: async () => {
          throw boom;
        },
      },
    };
    await expect(registerVersion(deps, { name: 'm', sourceKey: 'uploads/m/u.onnx' })).rejects.toBe(boom);
    expect(f.created).toEqual([]);
    expect(await f.repo.getModel('m')).toBeUndefined();
  });

  it('413 from the HEAD size before reading; 400 for a missing artifact or a bad name', async () => {
    const f = fakes({ 'uploads/m/u.onnx': bytes });
    const deps = { repo: f.repo, store: f.store, inspector: { inspect: async () => SIG }, maxModelBytes: 3 };
    await expect(registerVersion(deps, { name: 'm', sourceKey: 'uploads/m/u.onnx' })).rejects.toBeInstanceOf(
      PayloadTooLargeError,
    );
    await expect(
      registerVersion(deps, { name: 'm', sourceKey: 'uploads/m/none.onnx' }),
    ).rejects.toBeInstanceOf(BadRequestError);
    await expect(registerVersion(deps, { name: 'M!', sourceKey: 'uploads/m/u.onnx' })).rejects.toBeInstanceOf(
      BadRequestError,
    );
    expect(f.created).toEqual([]);
  });

  it('400 INVALID_S3_KEY for a source key with a dot segment, a control character or over 1024 bytes', async () => {
    const other = `models/other/${sha}.onnx`;
    const f = fakes({ [other]: bytes });
    const deps = { repo: f.repo, store: f.store, inspector: { inspect: async () => SIG } };
    for (const sourceKey of [
      `uploads/../${other}`,
      `uploads/m/../../${other}`,
      'uploads/m/a\u0000b.onnx',
      `uploads/m/${'a'.repeat(1100)}.onnx`,
    ]) {
      const err = await registerVersion(deps, { name: 'm', sourceKey }).catch((e) => e);
      expect(err, sourceKey).toBeInstanceOf(BadRequestError);
      expect(err.code).toBe('INVALID_S3_KEY');
    }
    expect(f.created).toEqual([]);
  });

  it('does not fail a committed registration when publishing the event fails', async () => {
    const f = fakes({ 'uploads/m/u.onnx': bytes });
    const warnings: string[] = [];
    const deps: RegistryDeps = {
      repo: f.repo,
      store: f.store,
      inspector: { inspect: async () => SIG },
      events: {
        publish: async () => {
          throw new Error('bus down');
        },
      },
      logger: { warn: (m) => void warnings.push(m) },
    };
    await expect(registerVersion(deps, { name: 'm', sourceKey: 'uploads/m/u.onnx' })).resolves.toMatchObject({
      status: 'READY',
    });
    expect(warnings).toEqual(['event not published']);
  });
});

describe('rollbackAlias', () => {
  it('moves to the previous version conditionally on the current one', async () => {
    const f = fakes();
    await registered(f.repo, 'm', 3);
    // prod: 1 -> 2 -> 3; the latest entry says 3, previously 2.
    await f.repo.moveAlias({ name: 'm', alias: 'prod', version: 2, actor: 'a' });
    await f.repo.moveAlias({ name: 'm', alias: 'prod', version: 3, actor: 'a' });
    f.moves.length = 0;
    const r = await rollbackAlias({ repo: f.repo }, { name: 'm', alias: 'prod', actor: 'ops' });
    expect(f.moves).toEqual([
      expect.objectContaining({ name: 'm', alias: 'prod', version: 2, expectedVersion: 3, actor: 'ops' }),
    ]);
    expect(r).toMatchObject({ version: 2 });
  });

  it('passes over split changes to the latest move', async () => {
    const f = fakes();
    await registered(f.repo, 'm', 3);
    await f.repo.moveAlias({ name: 'm', alias: 'prod', version: 2, actor: 'a' });
    for (const weight of [1, 5, 10]) {
      await f.repo.setAliasRouting({
        name: 'm',
        alias: 'prod',
        routing: { canary: { version: 3, weight } },
        actor: 'a',
      });
    }
    f.moves.length = 0;
    const r = await rollbackAlias({ repo: f.repo }, { name: 'm', alias: 'prod', actor: 'ops' });
    expect(f.moves).toEqual([
      expect.objectContaining({ version: 1, expectedVersion: 2, reason: 'rollback from 2 to 1' }),
    ]);
    expect(r).toMatchObject({ version: 1, previousVersion: 2, revision: 6 });
    // The split stays (1 is not its canary).
    expect((await f.repo.getAlias('m', 'prod'))?.routing).toEqual({ canary: { version: 3, weight: 10 } });
  });

  it('409 when the latest move created the alias', async () => {
    const f = fakes();
    await registered(f.repo, 'm', 1);
    expect((await f.repo.aliasHistory('m', 'prod', 10)).items).toEqual([
      expect.objectContaining({ alias: 'prod', version: 1, previousVersion: null }),
    ]);
    await expect(
      rollbackAlias({ repo: f.repo }, { name: 'm', alias: 'prod', actor: 'ops' }),
    ).rejects.toBeInstanceOf(ConflictError);
    expect(f.moves).toEqual([]);
  });
});

describe('createUpload', () => {
  it('presigns uploads/{name}/{uploadId}.onnx with the TTL and the declared size', async () => {
    const f = fakes();
    const clock = { now: () => new Date('2026-01-01T00:00:00.000Z') };
    const r = await createUpload({ store: f.store, clock }, 'm', 1234, 60);
    expect(r.uploadId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.url).toBe(`https://s3.example/uploads/m/${r.uploadId}.onnx?ttl=60&size=1234`);
    expect(r.expiresAt).toBe('2026-01-01T00:01:00.000Z');
  });

  it('refuses a declared size over the model limit with 413, before presigning', async () => {
    const f = fakes();
    await expect(createUpload({ store: f.store }, 'm', LIMITS.maxModelBytes + 1)).rejects.toMatchObject({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    });
  });
});

describe('updateAlias', () => {
  it('changes the split and the capture in one call; answers the alias without the serving copies', async () => {
    const f = fakes();
    await registered(f.repo, 'm', 2);
    const a = await updateAlias(
      { repo: f.repo },
      {
        name: 'm',
        alias: 'prod',
        routing: { canary: { version: 2, weight: 20 } },
        capture: { samplePercent: 3, input: true, output: true },
        expectedRevision: 1,
        actor: 'ops',
      },
    );
    expect(a).toEqual({
      alias: 'prod',
      version: 1,
      revision: 2,
      updatedAt: expect.any(String),
      routing: { canary: { version: 2, weight: 20 } },
      capture: { samplePercent: 3, input: true, output: true },
    });
    expect((await f.repo.getAlias('m', 'prod'))?.canaryTarget).toMatchObject({ version: 2 });
    // A refused split leaves the capture as it was.
    await expect(
      updateAlias(
        { repo: f.repo },
        {
          name: 'm',
          alias: 'prod',
          routing: { canary: { version: 1, weight: 1 } },
          capture: null,
          actor: 'ops',
        },
      ),
    ).rejects.toMatchObject({ code: 'CANARY_IS_STABLE' });
    expect((await f.repo.getAlias('m', 'prod'))?.capture).toEqual({
      samplePercent: 3,
      input: true,
      output: true,
    });
    const cleared = await updateAlias(
      { repo: f.repo },
      { name: 'm', alias: 'prod', routing: null, actor: 'ops' },
    );
    expect(cleared).toMatchObject({ revision: 3 });
    expect(cleared.routing).toBeUndefined();
  });
});

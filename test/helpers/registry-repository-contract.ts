/**
 * The RegistryRepository contract, one suite for every implementation (DynamoDB, in memory) so they cannot
 * drift: version allocation (also under concurrency), the first READY version as `prod`, alias moves with
 * their preconditions and history, rollback, archive and delete rules, capture declarations (of aliases and of
 * versions, and the copy of a version's in the targets of its aliases), and pagination.
 *
 * Call `registryRepositoryContract(setup)` inside a test file; every test uses its own model names, so the
 * repositories of one suite may share their store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rollbackAlias } from '../../functions/app/registry';
import { LIMITS } from '../../functions/contract/limits';
import type { CaptureConfig } from '../../functions/domain/capture';
import {
  BadRequestError,
  ConflictError,
  NotFoundError,
  PreconditionFailedError,
} from '../../functions/domain/errors';
import type { ModelSignature, NewVersion } from '../../functions/domain/types';
import type { Clock, RegistryRepository } from '../../functions/ports';
import { registryShadowContract } from './registry-shadow-contract';

/** What the contract needs of an implementation. */
export interface RegistryRepositoryHarness {
  /** A repository over the suite's store; repositories of one harness share their data. */
  repository(clock?: Clock): RegistryRepository;
  dispose?(): Promise<void>;
}

const SIG: ModelSignature = {
  inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 3] }],
};
const SHA = 'ab'.repeat(32);

/** A READY version of `name` unless `extra` says otherwise. */
export function newVersion(name: string, extra: Partial<NewVersion> = {}): NewVersion {
  return {
    name,
    sha256: SHA,
    sizeBytes: 1234,
    s3Key: `models/${name}/${SHA}.onnx`,
    signature: SIG,
    status: 'READY',
    ...extra,
  };
}

const codeOf = (e: unknown) => (e as { code?: string }).code;

/** Declares the contract's tests for the repositories `setup` builds. */
export function registryRepositoryContract(setup: () => Promise<RegistryRepositoryHarness>): void {
  let harness: RegistryRepositoryHarness;
  let repo: RegistryRepository;

  beforeAll(async () => {
    harness = await setup();
    repo = harness.repository();
  });
  afterAll(async () => {
    await harness?.dispose?.();
  });

  /** Registers `n` versions of `name` one after the other. */
  const register = async (name: string, n: number, extra: Partial<NewVersion> = {}) => {
    for (let i = 0; i < n; i++) await repo.createVersion(newVersion(name, extra));
  };

  /** Every page of a listing, following the tokens. */
  const allPages = async <T>(list: (token?: string) => Promise<{ items: T[]; nextToken?: string }>) => {
    const pages: T[][] = [];
    let token: string | undefined;
    do {
      const p = await list(token);
      pages.push(p.items);
      token = p.nextToken;
    } while (token && pages.length < 100);
    expect(token).toBeUndefined();
    return pages;
  };

  describe('versions', () => {
    it('numbers versions from 1 and reads them back as written', async () => {
      const full = newVersion('written', {
        description: 'first',
        tags: { team: 'ml' },
        labels: ['a', 'b', 'c'],
        postprocess: { softmax: false, argmax: true },
        createdBy: 'arn:aws:iam::1:user/alice',
        registrationKey: 'b'.repeat(64),
      });
      const v1 = await repo.createVersion(full);
      expect(v1).toEqual({
        name: 'written',
        version: 1,
        status: 'READY',
        sha256: SHA,
        sizeBytes: 1234,
        s3Key: `models/written/${SHA}.onnx`,
        signature: SIG,
        description: 'first',
        tags: { team: 'ml' },
        labels: ['a', 'b', 'c'],
        postprocess: { softmax: false, argmax: true },
        createdBy: 'arn:aws:iam::1:user/alice',
        registrationKey: 'b'.repeat(64),
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      });
      expect(await repo.getVersion('written', 1)).toEqual(v1);
      expect((await repo.listVersions('written', 10)).items.at(-1)).toEqual(v1);
      // Optional fields that are not given are absent, not undefined.
      const v2 = await repo.createVersion(newVersion('written', { description: undefined }));
      expect(v2.version).toBe(2);
      expect(Object.keys(v2).sort()).toEqual(
        ['name', 'version', 'status', 'sha256', 'sizeBytes', 's3Key', 'signature', 'createdAt'].sort(),
      );
      expect(await repo.getVersion('written', 2)).toEqual(v2);
      expect(await repo.getVersion('written', 3)).toBeUndefined();
      expect(await repo.getVersion('nobody', 1)).toBeUndefined();
      expect(await repo.getModel('written')).toEqual({
        name: 'written',
        latestVersion: 2,
        aliases: { prod: 1 },
        createdAt: v1.createdAt,
        updatedAt: expect.any(String),
      });
      expect(await repo.getModel('nobody')).toBeUndefined();
    });

    it('the first READY version becomes prod (revision 1, a history entry); later ones do not', async () => {
      const v1 = await repo.createVersion(newVersion('iris', { createdBy: 'arn:aws:iam::1:user/alice' }));
      expect(await repo.getAlias('iris', 'prod')).toEqual({
        alias: 'prod',
        version: 1,
        revision: 1,
        updatedAt: v1.createdAt,
        // The serving fields of the version only.
        target: {
          name: 'iris',
          version: 1,
          status: 'READY',
          sha256: SHA,
          sizeBytes: 1234,
          s3Key: `models/iris/${SHA}.onnx`,
          signature: SIG,
          createdAt: v1.createdAt,
        },
      });
      expect(await repo.getModel('iris')).toMatchObject({
        name: 'iris',
        latestVersion: 1,
        aliases: { prod: 1 },
      });
      expect((await repo.aliasHistory('iris', 'prod', 10)).items).toEqual([
        {
          alias: 'prod',
          version: 1,
          previousVersion: null,
          at: v1.createdAt,
          actor: 'arn:aws:iam::1:user/alice',
          reason: 'first READY version',
          revision: 1,
        },
      ]);

      // A second READY version does not take prod.
      const v2 = await repo.createVersion(newVersion('iris'));
      expect(v2.version).toBe(2);
      expect((await repo.getModel('iris'))?.aliases).toEqual({ prod: 1 });
      expect((await repo.aliasHistory('iris', 'prod', 10)).items).toHaveLength(1);

      // Without a creator the first entry's actor is the system.
      await repo.createVersion(newVersion('anon'));
      expect((await repo.aliasHistory('anon', 'prod', 10)).items[0]?.actor).toBe('system');
    });

    it('a FAILED version consumes its number and is never aliased; the next READY one takes prod', async () => {
      const failed = await repo.createVersion(
        newVersion('broken', {
          status: 'FAILED',
          failureReason: 'protobuf parsing failed',
          s3Key: 'uploads/x',
        }),
      );
      expect(failed).toMatchObject({
        version: 1,
        status: 'FAILED',
        failureReason: 'protobuf parsing failed',
      });
      expect(await repo.getVersion('broken', 1)).toMatchObject({
        status: 'FAILED',
        failureReason: expect.any(String),
      });
      expect(await repo.getAlias('broken', 'prod')).toBeUndefined();
      expect((await repo.getModel('broken'))?.aliases).toEqual({});
      await expect(
        repo.moveAlias({ name: 'broken', alias: 'prod', version: 1, actor: 'x' }),
      ).rejects.toMatchObject({ status: 409, code: 'VERSION_NOT_READY' });

      const v2 = await repo.createVersion(newVersion('broken'));
      expect(v2).toMatchObject({ version: 2, status: 'READY' });
      expect((await repo.getModel('broken'))?.aliases).toEqual({ prod: 2 });
      expect(await repo.getAlias('broken', 'prod')).toMatchObject({ version: 2, revision: 1 });
    });

    it('allocates versions 1..50 to 50 concurrent registrations, no duplicates, no gaps', {
      timeout: 180_000,
    }, async () => {
      const results = await Promise.all(
        Array.from({ length: 50 }, () => repo.createVersion(newVersion('busy'))),
      );
      const numbers = results.map((v) => v.version).sort((a, b) => a - b);
      expect(numbers).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect((await repo.getModel('busy'))?.latestVersion).toBe(50);
      const stored = await repo.listVersions('busy', 100);
      expect(stored.items.map((v) => v.version)).toEqual(Array.from({ length: 50 }, (_, i) => 50 - i));
      // Exactly one of them took prod (version 1 is not guaranteed to commit first, but one did).
      const model = await repo.getModel('busy');
      expect(Object.keys(model?.aliases ?? {})).toEqual(['prod']);
      const prodHistory = await repo.aliasHistory('busy', 'prod', 10);
      expect(prodHistory.items).toHaveLength(1);
    });
  });

  describe('pending versions', () => {
    const pending = (name: string) =>
      newVersion(name, {
        status: 'PENDING',
        sha256: '',
        s3Key: `uploads/${name}/u.onnx`,
        signature: { inputs: [], outputs: [] },
        description: 'big one',
        createdBy: 'alice',
      });
    const ready = {
      status: 'READY' as const,
      sha256: SHA,
      sizeBytes: 99,
      s3Key: 'models/x.onnx',
      signature: SIG,
    };

    it('a PENDING version holds its number, is never aliased, and completes READY as the first READY (prod)', async () => {
      const p = await repo.createVersion(pending('slow'));
      expect(p).toMatchObject({ version: 1, status: 'PENDING', description: 'big one' });
      expect(await repo.getAlias('slow', 'prod')).toBeUndefined();
      expect((await repo.listVersions('slow', 10)).items.map((v) => v.status)).toEqual(['PENDING']);
      await expect(repo.moveAlias({ name: 'slow', alias: 'prod', version: 1, actor: 'a' })).rejects.toSatisfy(
        (e) => e instanceof ConflictError && codeOf(e) === 'VERSION_NOT_READY',
      );

      const done = await repo.completeVersion('slow', 1, { ...ready, s3Key: 'models/slow/ab.onnx' });
      expect(done).toMatchObject({
        version: 1,
        status: 'READY',
        sha256: SHA,
        sizeBytes: 99,
        s3Key: 'models/slow/ab.onnx',
        description: 'big one',
        createdBy: 'alice',
        createdAt: p.createdAt,
      });
      expect(await repo.getVersion('slow', 1)).toEqual(done);
      expect((await repo.getModel('slow'))?.aliases).toEqual({ prod: 1 });
      expect(await repo.getAlias('slow', 'prod')).toMatchObject({
        version: 1,
        revision: 1,
        target: { status: 'READY' },
      });
      expect((await repo.aliasHistory('slow', 'prod', 10)).items).toEqual([
        expect.objectContaining({ version: 1, previousVersion: null, actor: 'alice' }),
      ]);
      // Completed once: a second completion is a 409, whatever it says.
      await expect(
        repo.completeVersion('slow', 1, { status: 'FAILED', failureReason: 'x' }),
      ).rejects.toSatisfy((e) => e instanceof ConflictError && codeOf(e) === 'VERSION_NOT_PENDING');
      await expect(repo.completeVersion('slow', 7, ready)).rejects.toBeInstanceOf(NotFoundError);
    });

    it('a version registered READY while another is PENDING takes prod; the PENDING one then does not', async () => {
      await repo.createVersion(pending('overtaken'));
      await repo.createVersion(newVersion('overtaken'));
      const done = await repo.completeVersion('overtaken', 1, ready);
      expect(done.status).toBe('READY');
      expect((await repo.getModel('overtaken'))?.aliases).toEqual({ prod: 2 });
      expect((await repo.aliasHistory('overtaken', 'prod', 10)).items).toHaveLength(1);
    });

    it('completes FAILED with the reason (never aliased); the next READY version takes prod', async () => {
      await repo.createVersion(pending('doomed'));
      const failed = await repo.completeVersion('doomed', 1, { status: 'FAILED', failureReason: 'not ONNX' });
      expect(failed).toMatchObject({ version: 1, status: 'FAILED', failureReason: 'not ONNX' });
      expect((await repo.getModel('doomed'))?.aliases).toEqual({});
      await repo.createVersion(newVersion('doomed'));
      expect((await repo.getModel('doomed'))?.aliases).toEqual({ prod: 2 });
    });

    it('a change of a PENDING version made while it completes is kept, and the alias it takes copies its capture', async () => {
      const HALF: CaptureConfig = { samplePercent: 50, input: true, output: false };
      const names = Array.from({ length: 6 }, (_, i) => `patched-${i}`);
      for (const name of names) await repo.createVersion(pending(name));
      await Promise.all(
        names.map(async (name) => {
          // The change lands after the completion has read the version (before its write, in memory always).
          const completing = repo.completeVersion(name, 1, ready);
          const patch = { description: 'set meanwhile', tags: { by: 'patch' }, capture: HALF };
          expect(await repo.updateVersion(name, 1, patch)).toMatchObject(patch);
          await completing;
          expect(await repo.getVersion(name, 1)).toMatchObject({ status: 'READY', sha256: SHA, ...patch });
          expect((await repo.getAlias(name, 'prod'))?.target?.capture).toEqual(HALF);
        }),
      );
    });

    it('concurrent completions of one PENDING version: exactly one applies, the others get 409', {
      timeout: 60_000,
    }, async () => {
      await repo.createVersion(pending('racing'));
      const outcomes = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          i % 2
            ? repo.completeVersion('racing', 1, ready)
            : repo.completeVersion('racing', 1, { status: 'FAILED', failureReason: `r${i}` }),
        ),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      for (const o of outcomes) {
        if (o.status === 'rejected') expect(codeOf(o.reason)).toBe('VERSION_NOT_PENDING');
      }
      const stored = await repo.getVersion('racing', 1);
      const model = await repo.getModel('racing');
      expect(model?.aliases).toEqual(stored?.status === 'READY' ? { prod: 1 } : {});
    });
  });

  describe('alias moves', () => {
    it('checks expectedVersion (0 = absent) and expectedRevision (412), then moves and chains history', async () => {
      await register('shop', 3);
      await expect(
        repo.moveAlias({ name: 'shop', alias: 'staging', version: 2, expectedVersion: 1, actor: 'a' }),
      ).rejects.toBeInstanceOf(PreconditionFailedError);
      const created = await repo.moveAlias({
        name: 'shop',
        alias: 'staging',
        version: 2,
        expectedVersion: 0,
        reason: 'try 2',
        actor: 'alice',
      });
      expect(created).toEqual({ alias: 'staging', version: 2, previousVersion: null, revision: 1 });
      await expect(
        repo.moveAlias({ name: 'shop', alias: 'prod', version: 3, expectedVersion: 2, actor: 'a' }),
      ).rejects.toBeInstanceOf(PreconditionFailedError);
      await expect(
        repo.moveAlias({ name: 'shop', alias: 'prod', version: 3, expectedRevision: 7, actor: 'a' }),
      ).rejects.toBeInstanceOf(PreconditionFailedError);
      const moved = await repo.moveAlias({
        name: 'shop',
        alias: 'prod',
        version: 3,
        expectedVersion: 1,
        expectedRevision: 1,
        reason: 'promote 3',
        actor: 'alice',
      });
      expect(moved).toEqual({ alias: 'prod', version: 3, previousVersion: 1, revision: 2 });
      // Without expectedVersion the move applies to whatever is current.
      const again = await repo.moveAlias({ name: 'shop', alias: 'prod', version: 2, actor: 'bob' });
      expect(again).toEqual({ alias: 'prod', version: 2, previousVersion: 3, revision: 3 });

      const history = (await repo.aliasHistory('shop', 'prod', 10)).items;
      expect(history).toEqual([
        { alias: 'prod', version: 2, previousVersion: 3, at: expect.any(String), actor: 'bob', revision: 3 },
        {
          alias: 'prod',
          version: 3,
          previousVersion: 1,
          at: expect.any(String),
          actor: 'alice',
          reason: 'promote 3',
          revision: 2,
        },
        {
          alias: 'prod',
          version: 1,
          previousVersion: null,
          at: expect.any(String),
          actor: 'system',
          reason: 'first READY version',
          revision: 1,
        },
      ]);
      const ats = history.map((h) => h.at);
      expect([...ats].sort().reverse()).toEqual(ats);
      const alias = await repo.getAlias('shop', 'prod');
      expect(alias).toMatchObject({ alias: 'prod', version: 2, revision: 3, updatedAt: history[0]?.at });
      expect(alias?.target).toMatchObject({ name: 'shop', version: 2, status: 'READY' });
      const model = await repo.getModel('shop');
      expect(model?.aliases).toEqual({ prod: 2, staging: 2 });
      expect(model?.updatedAt).toBe(history[0]?.at);
    });

    it('404 for an unknown model or version, 409 for a version that is not READY, 404 removing no alias', async () => {
      await register('strict', 1);
      await repo.createVersion(newVersion('strict', { status: 'FAILED', failureReason: 'bad' }));
      const refusal = (move: Parameters<RegistryRepository['moveAlias']>[0]) =>
        repo.moveAlias(move).then(
          () => undefined,
          (e: unknown) => [(e as Error).constructor.name, codeOf(e)],
        );
      expect(await refusal({ name: 'ghost', alias: 'prod', version: 1, actor: 'a' })).toEqual([
        NotFoundError.name,
        'MODEL_NOT_FOUND',
      ]);
      expect(await refusal({ name: 'strict', alias: 'canary', version: 9, actor: 'a' })).toEqual([
        NotFoundError.name,
        'VERSION_NOT_FOUND',
      ]);
      expect(await refusal({ name: 'strict', alias: 'canary', version: 2, actor: 'a' })).toEqual([
        ConflictError.name,
        'VERSION_NOT_READY',
      ]);
      expect(await refusal({ name: 'strict', alias: 'canary', version: null, actor: 'a' })).toEqual([
        NotFoundError.name,
        'ALIAS_NOT_FOUND',
      ]);
      // Nothing was written by the refused moves.
      expect(await repo.getAlias('strict', 'canary')).toBeUndefined();
      expect((await repo.aliasHistory('strict', 'canary', 10)).items).toEqual([]);
      expect((await repo.getModel('strict'))?.aliases).toEqual({ prod: 1 });
    });

    it('50 concurrent alias moves with the same expectedVersion: one winner, 49 × 412', {
      timeout: 180_000,
    }, async () => {
      await register('race', 3);
      const outcomes = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          repo.moveAlias({
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
      expect(await repo.getAlias('race', 'prod')).toMatchObject({ version: winner.version, revision: 2 });
      const history = await repo.aliasHistory('race', 'prod', 10);
      expect(history.items.map((h) => [h.version, h.previousVersion])).toEqual([
        [winner.version, 1],
        [1, null],
      ]);

      // Rollback goes back to 1, and the alias set of the versions follows.
      const back = await rollbackAlias({ repo }, { name: 'race', alias: 'prod', actor: 'ops' });
      expect(back).toMatchObject({ alias: 'prod', version: 1, previousVersion: winner.version, revision: 3 });
      expect((await repo.getModel('race'))?.aliases).toEqual({ prod: 1 });
      await expect(repo.deleteVersion('race', 1)).rejects.toBeInstanceOf(ConflictError);
      await expect(repo.deleteVersion('race', winner.version)).resolves.toBeUndefined();
    });

    it('re-pointing an alias at its current version bumps the revision and records history', async () => {
      await register('same', 1);
      const r = await repo.moveAlias({
        name: 'same',
        alias: 'prod',
        version: 1,
        expectedVersion: 1,
        actor: 'x',
      });
      expect(r).toEqual({ alias: 'prod', version: 1, previousVersion: 1, revision: 2 });
      expect((await repo.aliasHistory('same', 'prod', 10)).items[0]).toMatchObject({
        version: 1,
        previousVersion: 1,
        actor: 'x',
      });
      // The alias set of version 1 still holds prod: it cannot be deleted.
      await expect(repo.deleteVersion('same', 1)).rejects.toThrow(/aliased/);
    });

    it('concurrent moves without expectedVersion all apply, in one unbroken history chain', {
      timeout: 180_000,
    }, async () => {
      await register('chain', 4);
      const n = 20;
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          repo.moveAlias({ name: 'chain', alias: 'staging', version: 1 + (i % 4), actor: `u${i}` }),
        ),
      );
      expect(results.map((r) => r.revision).sort((a, b) => a - b)).toEqual(
        Array.from({ length: n }, (_, i) => i + 1),
      );
      const history = (await repo.aliasHistory('chain', 'staging', 100)).items;
      expect(history).toHaveLength(n);
      // Newest first: each entry's previousVersion is the version of the entry before it in time.
      for (let i = 0; i < history.length - 1; i++) {
        expect(history[i]?.previousVersion).toBe(history[i + 1]?.version);
      }
      expect(history.at(-1)?.previousVersion).toBeNull();
      const alias = await repo.getAlias('chain', 'staging');
      expect(alias).toMatchObject({ version: history[0]?.version, revision: n });
      expect((await repo.getModel('chain'))?.aliases.staging).toBe(history[0]?.version);
      // Only the current target carries the alias: every other version can be deleted... except prod's.
      for (const v of [1, 2, 3, 4]) {
        const aliased = v === alias?.version || v === 1;
        const outcome = await repo.deleteVersion('chain', v).then(
          () => 'deleted',
          (e: Error) => e.name,
        );
        expect(outcome).toBe(aliased ? 'ConflictError' : 'deleted');
      }
    });

    it("keeps history in move order when a writer's clock lags behind", async () => {
      await register('skew', 3);
      const lagging = harness.repository({ now: () => new Date(Date.now() - 3_600_000) });
      await repo.moveAlias({ name: 'skew', alias: 'prod', version: 2, actor: 'on-time' });
      await lagging.moveAlias({ name: 'skew', alias: 'prod', version: 3, actor: 'late' });
      const history = (await repo.aliasHistory('skew', 'prod', 10)).items;
      expect(history.map((h) => [h.actor, h.version, h.previousVersion])).toEqual([
        ['late', 3, 2],
        ['on-time', 2, 1],
        [expect.any(String), 1, null],
      ]);
      expect(history[0]?.at).toBe(history[1]?.at);
      const rolled = await rollbackAlias({ repo }, { name: 'skew', alias: 'prod', actor: 'ops' });
      expect(rolled).toMatchObject({ version: 2, previousVersion: 3 });
    });

    it('keeps a re-created alias after its removal in the history, within the same millisecond, and its revision going up', async () => {
      await register('again', 2);
      const frozen = harness.repository({ now: () => new Date('2026-12-02T10:00:00.000Z') });
      await frozen.moveAlias({ name: 'again', alias: 'staging', version: 2, actor: 'a' });
      await frozen.moveAlias({ name: 'again', alias: 'staging', version: null, actor: 'b' });
      // Created again: after the removal, at the revision after the removal's (2).
      const back = await frozen.moveAlias({ name: 'again', alias: 'staging', version: 1, actor: 'c' });
      expect(back).toMatchObject({ version: 1, previousVersion: null, revision: 3 });
      expect(await repo.getAlias('again', 'staging')).toMatchObject({ revision: 3 });
      // A caller who read revision 1 of the removed alias cannot change the new one.
      await expect(
        repo.moveAlias({ name: 'again', alias: 'staging', version: 2, expectedRevision: 1, actor: 'd' }),
      ).rejects.toBeInstanceOf(PreconditionFailedError);
      await expect(
        repo.setAliasRouting({
          name: 'again',
          alias: 'staging',
          routing: { canary: { version: 2, weight: 5 } },
          expectedRevision: 1,
          actor: 'd',
        }),
      ).rejects.toBeInstanceOf(PreconditionFailedError);
      const history = (await repo.aliasHistory('again', 'staging', 10)).items;
      expect(history.map((h) => [h.actor, h.version, h.at])).toEqual([
        ['c', 1, '2026-12-02T10:00:00.001Z'],
        ['b', null, '2026-12-02T10:00:00.000Z'],
        ['a', 2, '2026-12-02T10:00:00.000Z'],
      ]);
      // Its latest move is the one that created it again: nothing to roll back to.
      await expect(
        rollbackAlias({ repo: frozen }, { name: 'again', alias: 'staging', actor: 'ops' }),
      ).rejects.toMatchObject({ code: 'NO_ROLLBACK_TARGET' });
    });

    it('removes an alias (history kept, a null entry); a rollback restores it', async () => {
      await register('gone', 2);
      await repo.moveAlias({ name: 'gone', alias: 'staging', version: 2, actor: 'a' });
      const removed = await repo.moveAlias({ name: 'gone', alias: 'staging', version: null, actor: 'alice' });
      expect(removed).toEqual({ alias: 'staging', version: null, previousVersion: 2, revision: 2 });
      expect(await repo.getAlias('gone', 'staging')).toBeUndefined();
      expect((await repo.getModel('gone'))?.aliases).toEqual({ prod: 1 });
      expect((await repo.aliasHistory('gone', 'staging', 10)).items[0]).toEqual({
        alias: 'staging',
        version: null,
        previousVersion: 2,
        at: expect.any(String),
        actor: 'alice',
        revision: 2,
      });
      // Version 2 lost the alias with it.
      await expect(repo.updateVersion('gone', 2, { status: 'ARCHIVED' })).resolves.toMatchObject({
        status: 'ARCHIVED',
      });
      await expect(
        rollbackAlias({ repo }, { name: 'gone', alias: 'staging', actor: 'ops' }),
      ).rejects.toMatchObject({ code: 'VERSION_NOT_READY' });
      await repo.updateVersion('gone', 2, { status: 'READY' });
      const restored = await rollbackAlias({ repo }, { name: 'gone', alias: 'staging', actor: 'ops' });
      expect(restored).toMatchObject({ alias: 'staging', version: 2, previousVersion: null, revision: 3 });
      expect((await repo.aliasHistory('gone', 'staging', 1)).items[0]).toMatchObject({
        version: 2,
        previousVersion: null,
        reason: 'rollback from none to 2',
      });
    });

    it('rollback: 404 for an alias that never existed, 409 when its latest move created it', async () => {
      await register('rb', 2);
      await expect(
        rollbackAlias({ repo }, { name: 'rb', alias: 'canary', actor: 'ops' }),
      ).rejects.toMatchObject({
        status: 404,
        code: 'ALIAS_NOT_FOUND',
      });
      await expect(
        rollbackAlias({ repo }, { name: 'rb', alias: 'prod', actor: 'ops' }),
      ).rejects.toMatchObject({
        status: 409,
        code: 'NO_ROLLBACK_TARGET',
      });
      await repo.moveAlias({ name: 'rb', alias: 'prod', version: 2, actor: 'a' });
      const back = await rollbackAlias(
        { repo },
        { name: 'rb', alias: 'prod', actor: 'ops', reason: 'bad deploy' },
      );
      expect(back).toEqual({ alias: 'prod', version: 1, previousVersion: 2, revision: 3 });
      expect((await repo.aliasHistory('rb', 'prod', 1)).items[0]).toMatchObject({
        version: 1,
        previousVersion: 2,
        actor: 'ops',
        reason: 'bad deploy',
      });
    });

    it("rollback on the caller's expectedVersion / expectedRevision: 412 and nothing moved when the alias moved since", async () => {
      await register('seen', 3);
      // The caller saw prod at 2 (revision 2), its last move from 1; someone else moves it to 3 meanwhile.
      await repo.moveAlias({ name: 'seen', alias: 'prod', version: 2, actor: 'a' });
      await repo.moveAlias({ name: 'seen', alias: 'prod', version: 3, actor: 'someone else' });
      const history = async () => (await repo.aliasHistory('seen', 'prod', 10)).items;
      const before = await history();
      const rollback = (pre: { expectedVersion?: number; expectedRevision?: number }) =>
        rollbackAlias({ repo }, { name: 'seen', alias: 'prod', actor: 'ops', ...pre });
      // Without the caller's precondition the rollback would undo the other move (3 -> 2).
      await expect(rollback({ expectedVersion: 2 })).rejects.toMatchObject({
        status: 412,
        code: 'PRECONDITION_FAILED',
        message: expect.stringContaining('points at version 3'),
      });
      await expect(rollback({ expectedVersion: 0 })).rejects.toBeInstanceOf(PreconditionFailedError);
      // Moved back to 2 (revision 4): the version the caller saw, but not the alias it saw (its last move is 3 -> 2).
      await repo.moveAlias({ name: 'seen', alias: 'prod', version: 2, actor: 'someone else' });
      await expect(rollback({ expectedVersion: 2, expectedRevision: 2 })).rejects.toMatchObject({
        status: 412,
        message: expect.stringContaining('revision 4, not 2'),
      });
      expect(await repo.getAlias('seen', 'prod')).toMatchObject({ version: 2, revision: 4 });
      expect((await history()).slice(1)).toEqual(before);
      // What the caller sees now holds: the rollback applies.
      await expect(rollback({ expectedVersion: 2, expectedRevision: 4 })).resolves.toEqual({
        alias: 'prod',
        version: 3,
        previousVersion: 2,
        revision: 5,
      });
    });

    it("rollback: the caller's expectedRevision is checked by the move's conditional write, not by an earlier read", async () => {
      await register('raced-rollback', 3);
      await repo.moveAlias({ name: 'raced-rollback', alias: 'prod', version: 2, actor: 'a' });
      // A split change (no move: the rollback target stays 1) lands between the rollback's read of the history and
      // its move.
      const aliasHistory: RegistryRepository['aliasHistory'] = async (...args) => {
        const page = await repo.aliasHistory(...args);
        await repo.setAliasRouting({
          name: 'raced-rollback',
          alias: 'prod',
          routing: { canary: { version: 3, weight: 5 } },
          actor: 'controller',
        });
        return page;
      };
      const racing = new Proxy(repo, {
        get: (target, key) => {
          if (key === 'aliasHistory') return aliasHistory;
          const value = Reflect.get(target, key, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      await expect(
        rollbackAlias(
          { repo: racing },
          { name: 'raced-rollback', alias: 'prod', actor: 'ops', expectedVersion: 2, expectedRevision: 2 },
        ),
      ).rejects.toBeInstanceOf(PreconditionFailedError);
      expect(await repo.getAlias('raced-rollback', 'prod')).toMatchObject({ version: 2, revision: 3 });
    });
  });

  describe('archive and delete', () => {
    it('archives READY versions only while unaliased; description and tags stay editable', async () => {
      await register('arch', 2);
      await repo.createVersion(newVersion('arch', { status: 'FAILED', failureReason: 'bad' }));
      await expect(repo.updateVersion('arch', 1, { status: 'ARCHIVED' })).rejects.toMatchObject({
        status: 409,
        code: 'VERSION_ALIASED',
        message: expect.stringContaining('aliased (prod)'),
      });
      const patched = await repo.updateVersion('arch', 2, {
        status: 'ARCHIVED',
        description: 'old',
        tags: { k: 'v' },
      });
      expect(patched).toMatchObject({ version: 2, status: 'ARCHIVED', description: 'old', tags: { k: 'v' } });
      expect(await repo.getVersion('arch', 2)).toEqual(patched);
      // ARCHIVED -> ARCHIVED is a no-op; archived versions cannot be aliased.
      await expect(repo.updateVersion('arch', 2, { status: 'ARCHIVED' })).resolves.toMatchObject({
        status: 'ARCHIVED',
      });
      await expect(
        repo.moveAlias({ name: 'arch', alias: 'canary', version: 2, actor: 'a' }),
      ).rejects.toMatchObject({
        status: 409,
        code: 'VERSION_NOT_READY',
      });
      const desc = await repo.updateVersion('arch', 1, { description: 'the first', tags: { a: 'b' } });
      expect(desc).toMatchObject({ version: 1, status: 'READY', description: 'the first', tags: { a: 'b' } });
      // Nothing to change: the version as it is.
      expect(await repo.updateVersion('arch', 1, {})).toEqual(desc);
      await expect(repo.updateVersion('arch', 3, { status: 'ARCHIVED' })).rejects.toMatchObject({
        status: 409,
        code: 'INVALID_STATUS_CHANGE',
      });
      for (const patch of [{ description: 'x' }, {}, { status: 'ARCHIVED' as const }]) {
        await expect(repo.updateVersion('arch', 99, patch)).rejects.toMatchObject({
          status: 404,
          code: 'VERSION_NOT_FOUND',
        });
      }
    });

    it('deletes versions only while no alias points at them (409), then 404; numbers are never reused', async () => {
      await register('del', 2);
      await repo.moveAlias({ name: 'del', alias: 'staging', version: 2, actor: 'a' });
      await expect(repo.deleteVersion('del', 1)).rejects.toMatchObject({
        status: 409,
        code: 'VERSION_ALIASED',
      });
      await expect(repo.deleteVersion('del', 2)).rejects.toMatchObject({
        status: 409,
        code: 'VERSION_ALIASED',
        message: expect.stringContaining('aliased (staging)'),
      });
      await repo.moveAlias({ name: 'del', alias: 'staging', version: 1, actor: 'a' });
      await expect(repo.deleteVersion('del', 1)).rejects.toThrow(/aliased \(prod, staging\)/);
      await repo.deleteVersion('del', 2);
      expect(await repo.getVersion('del', 2)).toBeUndefined();
      await expect(repo.deleteVersion('del', 2)).rejects.toMatchObject({
        status: 404,
        code: 'VERSION_NOT_FOUND',
      });
      await expect(
        repo.moveAlias({ name: 'del', alias: 'prod', version: 2, actor: 'a' }),
      ).rejects.toMatchObject({
        status: 404,
        code: 'VERSION_NOT_FOUND',
      });
      expect((await repo.listVersions('del', 10)).items.map((v) => v.version)).toEqual([1]);
      expect((await repo.createVersion(newVersion('del'))).version).toBe(3);
      expect((await repo.getModel('del'))?.latestVersion).toBe(3);
    });

    it('a delete racing an alias move to the same version: never both succeed', async () => {
      await register('racedel', 2);
      for (let round = 0; round < 5; round++) {
        const target = round + 2;
        if (round > 0) await register('racedel', 1);
        const [del, mv] = await Promise.allSettled([
          repo.deleteVersion('racedel', target),
          repo.moveAlias({ name: 'racedel', alias: 'canary', version: target, actor: 'x' }),
        ]);
        const stored = await repo.getVersion('racedel', target);
        const alias = await repo.getAlias('racedel', 'canary');
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
        if (alias) await repo.moveAlias({ name: 'racedel', alias: 'canary', version: null, actor: 'x' });
      }
    });
  });

  describe('capture', () => {
    const TEN: CaptureConfig = { samplePercent: 10, input: true, output: true };
    const HALF_IN: CaptureConfig = { samplePercent: 50.25, input: true, output: false };
    const ALL_OUT: CaptureConfig = { samplePercent: 100, input: false, output: true };

    it('an alias declares its own capture: set, replace, clear; no move, no history; 404 for an unknown alias or model', async () => {
      await register('cap-alias', 1);
      const before = await repo.getAlias('cap-alias', 'prod');
      const set = await repo.setAliasCapture('cap-alias', 'prod', TEN);
      expect(set).toEqual({ ...before, capture: TEN });
      expect(await repo.getAlias('cap-alias', 'prod')).toEqual({ ...before, capture: TEN });
      const replaced = await repo.setAliasCapture('cap-alias', 'prod', HALF_IN);
      expect(replaced.capture).toEqual(HALF_IN);
      expect(replaced.revision).toBe(before?.revision);
      const cleared = await repo.setAliasCapture('cap-alias', 'prod', null);
      expect(cleared).toEqual(before);
      expect(await repo.getAlias('cap-alias', 'prod')).toEqual(before);
      // Clearing what is not set is a no-op.
      expect(await repo.setAliasCapture('cap-alias', 'prod', null)).toEqual(before);
      expect((await repo.aliasHistory('cap-alias', 'prod', 10)).items).toHaveLength(1);
      // The version's own declaration is untouched.
      expect((await repo.getVersion('cap-alias', 1))?.capture).toBeUndefined();
      await expect(repo.setAliasCapture('cap-alias', 'staging', TEN)).rejects.toMatchObject({
        status: 404,
        code: 'ALIAS_NOT_FOUND',
      });
      await expect(repo.setAliasCapture('cap-ghost', 'prod', TEN)).rejects.toMatchObject({
        status: 404,
        code: 'MODEL_NOT_FOUND',
      });
      await expect(repo.setAliasCapture('cap-ghost', 'prod', null)).rejects.toBeInstanceOf(NotFoundError);
      // Nothing was created by the refusals.
      expect(await repo.getAlias('cap-alias', 'staging')).toBeUndefined();
      expect(await repo.getModel('cap-ghost')).toBeUndefined();
    });

    it('a version declares capture: set (with other fields), read back, listed, cleared; 404 for an unknown version', async () => {
      await register('cap-ver', 2);
      const v2 = await repo.getVersion('cap-ver', 2);
      const set = await repo.updateVersion('cap-ver', 2, { capture: ALL_OUT, description: 'watched' });
      expect(set).toEqual({ ...v2, capture: ALL_OUT, description: 'watched' });
      expect(await repo.getVersion('cap-ver', 2)).toEqual(set);
      expect((await repo.listVersions('cap-ver', 10)).items.find((v) => v.version === 2)).toEqual(set);
      // Other changes leave it alone.
      expect(await repo.updateVersion('cap-ver', 2, { tags: { a: 'b' } })).toEqual({
        ...set,
        tags: { a: 'b' },
      });
      const cleared = await repo.updateVersion('cap-ver', 2, { capture: null });
      expect(cleared).toEqual({ ...v2, description: 'watched', tags: { a: 'b' } });
      expect(await repo.getVersion('cap-ver', 2)).toEqual(cleared);
      // Capture and archive in one change (version 2 is not aliased).
      const archived = await repo.updateVersion('cap-ver', 2, { capture: TEN, status: 'ARCHIVED' });
      expect(archived).toMatchObject({ status: 'ARCHIVED', capture: TEN });
      expect(await repo.getVersion('cap-ver', 2)).toEqual(archived);
      await expect(
        repo.updateVersion('cap-ver', 1, { capture: TEN, status: 'ARCHIVED' }),
      ).rejects.toMatchObject({ status: 409, code: 'VERSION_ALIASED' });
      expect((await repo.getVersion('cap-ver', 1))?.capture).toBeUndefined();
      for (const capture of [TEN, null]) {
        await expect(repo.updateVersion('cap-ver', 9, { capture })).rejects.toMatchObject({
          status: 404,
          code: 'VERSION_NOT_FOUND',
        });
      }
    });

    it("a move keeps the alias's own capture and takes the new target version's", async () => {
      await register('cap-move', 2);
      await repo.updateVersion('cap-move', 2, { capture: HALF_IN });
      await repo.setAliasCapture('cap-move', 'prod', TEN);
      expect((await repo.getAlias('cap-move', 'prod'))?.target?.capture).toBeUndefined();
      await repo.moveAlias({ name: 'cap-move', alias: 'prod', version: 2, actor: 'a' });
      const moved = await repo.getAlias('cap-move', 'prod');
      expect(moved).toMatchObject({ version: 2, revision: 2, capture: TEN });
      expect(moved?.target).toMatchObject({ version: 2, capture: HALF_IN });
      // Back to version 1, which declares none.
      await repo.moveAlias({ name: 'cap-move', alias: 'prod', version: 1, actor: 'a' });
      const back = await repo.getAlias('cap-move', 'prod');
      expect(back).toMatchObject({ version: 1, revision: 3, capture: TEN });
      expect(back?.target).toMatchObject({ version: 1 });
      expect(back?.target?.capture).toBeUndefined();
      // A new alias starts without a declaration of its own, with its target's.
      await repo.moveAlias({ name: 'cap-move', alias: 'shadow', version: 2, actor: 'a' });
      const shadow = await repo.getAlias('cap-move', 'shadow');
      expect(shadow?.capture).toBeUndefined();
      expect(shadow?.target?.capture).toEqual(HALF_IN);
      // Removing an alias drops its declaration: re-created, it has none.
      await repo.setAliasCapture('cap-move', 'shadow', ALL_OUT);
      await repo.moveAlias({ name: 'cap-move', alias: 'shadow', version: null, actor: 'a' });
      await repo.moveAlias({ name: 'cap-move', alias: 'shadow', version: 2, actor: 'a' });
      expect((await repo.getAlias('cap-move', 'shadow'))?.capture).toBeUndefined();
    });

    it("a version's capture change reaches target.capture of every alias pointing at it, and only those", async () => {
      await register('cap-fan', 2);
      await repo.moveAlias({ name: 'cap-fan', alias: 'staging', version: 1, actor: 'a' });
      await repo.moveAlias({ name: 'cap-fan', alias: 'canary', version: 2, actor: 'a' });
      await repo.setAliasCapture('cap-fan', 'staging', ALL_OUT);
      const revisions = async () =>
        Object.fromEntries(
          await Promise.all(
            ['prod', 'staging', 'canary'].map(async (a) => [
              a,
              (await repo.getAlias('cap-fan', a))?.revision,
            ]),
          ),
        );
      const revs = await revisions();
      const prodBefore = await repo.getAlias('cap-fan', 'prod');
      await repo.updateVersion('cap-fan', 1, { capture: TEN });
      const prod = await repo.getAlias('cap-fan', 'prod');
      const staging = await repo.getAlias('cap-fan', 'staging');
      const canary = await repo.getAlias('cap-fan', 'canary');
      expect(prod?.target?.capture).toEqual(TEN);
      expect(prod?.capture).toBeUndefined();
      expect(staging?.target?.capture).toEqual(TEN);
      expect(staging?.capture).toEqual(ALL_OUT);
      expect(canary?.target?.capture).toBeUndefined();
      // The rest of the target is untouched; no alias moved.
      expect(prod?.target).toEqual({ ...prodBefore?.target, capture: TEN });
      expect(await revisions()).toEqual(revs);
      await repo.updateVersion('cap-fan', 1, { capture: HALF_IN });
      expect((await repo.getAlias('cap-fan', 'staging'))?.target?.capture).toEqual(HALF_IN);
      await repo.updateVersion('cap-fan', 1, { capture: null });
      expect((await repo.getAlias('cap-fan', 'prod'))?.target?.capture).toBeUndefined();
      expect((await repo.getAlias('cap-fan', 'staging'))?.target?.capture).toBeUndefined();
      expect((await repo.getAlias('cap-fan', 'staging'))?.capture).toEqual(ALL_OUT);
      expect((await repo.aliasHistory('cap-fan', 'prod', 10)).items).toHaveLength(1);
    });

    it('capture changes racing alias moves: every alias ends carrying the capture of the version it points at', {
      timeout: 180_000,
    }, async () => {
      await register('cap-race', 2);
      await repo.updateVersion('cap-race', 2, { capture: ALL_OUT });
      const captures = [TEN, HALF_IN, null, ALL_OUT, TEN, null, HALF_IN, TEN];
      const ops: Promise<unknown>[] = [];
      for (let i = 0; i < captures.length; i++) {
        ops.push(repo.updateVersion('cap-race', 1, { capture: captures[i] ?? null }));
        ops.push(
          repo.moveAlias({ name: 'cap-race', alias: 'prod', version: 1 + ((i + 1) % 2), actor: `m${i}` }),
        );
        ops.push(
          repo.moveAlias({ name: 'cap-race', alias: 'staging', version: 1 + (i % 2), actor: `s${i}` }),
        );
        ops.push(repo.setAliasCapture('cap-race', 'prod', i % 2 ? TEN : HALF_IN));
      }
      const outcomes = await Promise.allSettled(ops);
      expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
      for (const a of ['prod', 'staging']) {
        const alias = await repo.getAlias('cap-race', a);
        const version = await repo.getVersion('cap-race', alias!.version);
        expect(alias?.target?.version).toBe(alias?.version);
        expect(alias?.target?.capture, a).toEqual(version?.capture);
      }
      // The alias's own declaration is one of those set (concurrent writes land in any order), never lost to a move;
      // set once more, on its own, it is that one.
      expect([TEN, HALF_IN]).toContainEqual((await repo.getAlias('cap-race', 'prod'))?.capture);
      await repo.setAliasCapture('cap-race', 'prod', TEN);
      await repo.moveAlias({ name: 'cap-race', alias: 'prod', version: 1, actor: 'last' });
      expect((await repo.getAlias('cap-race', 'prod'))?.capture).toEqual(TEN);
    });
  });

  describe('pagination', () => {
    it('pages through versions, newest first, with limit and nextToken', async () => {
      await register('page-v', 5);
      const pages = await allPages((token) => repo.listVersions('page-v', 2, token));
      expect(pages.flat().map((v) => v.version)).toEqual([5, 4, 3, 2, 1]);
      expect(pages.length).toBeGreaterThanOrEqual(3);
      for (const p of pages) expect(p.length).toBeLessThanOrEqual(2);
      // A page that ends on the last version may carry a token; it leads to an empty last page.
      const exact = await repo.listVersions('page-v', 5);
      expect(exact.items).toHaveLength(5);
      if (exact.nextToken)
        expect(await repo.listVersions('page-v', 5, exact.nextToken)).toEqual({ items: [] });
      expect(await repo.listVersions('page-none', 5)).toEqual({ items: [] });
    });

    it('pages through models, each once', async () => {
      const names = ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'];
      for (const n of names) await register(n, 1);
      const pages = await allPages((token) => repo.listModels(2, token));
      const seen = pages.flat();
      for (const m of seen) {
        expect(m).toEqual(
          expect.objectContaining({
            name: expect.any(String),
            latestVersion: expect.any(Number),
            aliases: expect.any(Object),
          }),
        );
      }
      for (const n of names) expect(seen.map((m) => m.name)).toContain(n);
      expect(new Set(seen.map((m) => m.name)).size).toBe(seen.length);
      expect(pages.length).toBeGreaterThanOrEqual(3);
      expect(seen.find((m) => m.name === 'page-a')).toEqual(await repo.getModel('page-a'));
    });

    it('pages through the history of an alias, newest first', async () => {
      await register('page-h', 3);
      for (const v of [2, 3, 1, 2])
        await repo.moveAlias({ name: 'page-h', alias: 'prod', version: v, actor: 'a' });
      const pages = await allPages((token) => repo.aliasHistory('page-h', 'prod', 2, token));
      expect(pages.flat().map((h) => h.version)).toEqual([2, 1, 3, 2, 1]);
      const latest = await repo.aliasHistory('page-h', 'prod', 1);
      expect(latest.items).toEqual([expect.objectContaining({ version: 2, previousVersion: 1 })]);
      expect(latest.nextToken).toEqual(expect.any(String));
      expect(await repo.aliasHistory('page-h', 'canary', 10)).toEqual({ items: [] });
    });

    it('rejects garbage, tampered and foreign tokens with 400 INVALID_TOKEN', async () => {
      await register('tok-a', 3);
      await register('tok-b', 3);
      await repo.moveAlias({ name: 'tok-a', alias: 'prod', version: 2, actor: 'a' });
      const versionsToken = (await repo.listVersions('tok-a', 1)).nextToken!;
      const historyToken = (await repo.aliasHistory('tok-a', 'prod', 1)).nextToken!;
      const modelsToken = (await repo.listModels(1)).nextToken!;
      for (const t of [versionsToken, historyToken, modelsToken]) expect(t).toEqual(expect.any(String));
      const tampered = (token: string) => {
        const key = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
        return Buffer.from(JSON.stringify({ ...key, extra: 'x' })).toString('base64url');
      };
      const invalid = async (p: Promise<unknown>) => {
        const e = await p.then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(e).toBeInstanceOf(BadRequestError);
        expect(codeOf(e)).toBe('INVALID_TOKEN');
      };
      for (const garbage of ['garbage!', Buffer.from('{"pk":1').toString('base64url'), '', 'W10', 'e30']) {
        await invalid(repo.listVersions('tok-a', 1, garbage));
        await invalid(repo.listModels(1, garbage));
        await invalid(repo.aliasHistory('tok-a', 'prod', 1, garbage));
      }
      // A key attribute emptied (DynamoDB refuses empty key values).
      const emptied = (token: string) => {
        const key = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
        return Object.keys(key)
          .filter((k) => typeof key[k] === 'string')
          .map((k) => Buffer.from(JSON.stringify({ ...key, [k]: '' })).toString('base64url'));
      };
      for (const t of emptied(versionsToken)) await invalid(repo.listVersions('tok-a', 1, t));
      for (const t of emptied(modelsToken)) await invalid(repo.listModels(1, t));
      for (const t of emptied(historyToken)) await invalid(repo.aliasHistory('tok-a', 'prod', 1, t));
      await invalid(repo.listVersions('tok-a', 1, tampered(versionsToken)));
      await invalid(repo.listModels(1, tampered(modelsToken)));
      await invalid(repo.aliasHistory('tok-a', 'prod', 1, tampered(historyToken)));
      // A token of another model, alias or listing.
      await invalid(repo.listVersions('tok-b', 1, versionsToken));
      await invalid(repo.aliasHistory('tok-b', 'prod', 1, historyToken));
      await invalid(repo.aliasHistory('tok-a', 'staging', 1, historyToken));
      await invalid(repo.listVersions('tok-a', 1, historyToken));
      await invalid(repo.listVersions('tok-a', 1, modelsToken));
      await invalid(repo.aliasHistory('tok-a', 'prod', 1, versionsToken));
      await invalid(repo.listModels(1, versionsToken));
      // The real tokens still work.
      expect((await repo.listVersions('tok-a', 1, versionsToken)).items.map((v) => v.version)).toEqual([2]);
      expect((await repo.aliasHistory('tok-a', 'prod', 1, historyToken)).items).toEqual([
        expect.objectContaining({ version: 1, previousVersion: null }),
      ]);
      expect((await repo.listModels(1, modelsToken)).items).toHaveLength(1);
    });
  });

  describe('routing (traffic splits)', () => {
    const TEN: CaptureConfig = { samplePercent: 10, input: true, output: true };
    const split = (version: number, weight: number, keyParameter?: string) => ({
      canary: { version, weight },
      ...(keyParameter !== undefined ? { keyParameter } : {}),
    });

    it('sets, changes and clears a split: revision + 1, a history entry each, canaryTarget the canary copy', async () => {
      await register('rt-set', 3);
      const before = await repo.getAlias('rt-set', 'prod');
      const set = await repo.setAliasRouting({
        name: 'rt-set',
        alias: 'prod',
        routing: split(3, 10, 'user'),
        actor: 'alice',
      });
      const v3 = await repo.getVersion('rt-set', 3);
      const { description: _d, tags: _t, createdBy: _c, ...serving } = v3!;
      expect(set).toEqual({
        ...before,
        revision: 2,
        updatedAt: expect.any(String),
        routing: split(3, 10, 'user'),
        canaryTarget: serving,
      });
      expect(await repo.getAlias('rt-set', 'prod')).toEqual(set);
      const history = (await repo.aliasHistory('rt-set', 'prod', 10)).items;
      expect(history[0]).toEqual({
        alias: 'prod',
        version: 1,
        previousVersion: 1,
        at: set.updatedAt,
        actor: 'alice',
        reason: "canary v3 at 10% (key parameter 'user')",
        revision: set.revision,
        routing: split(3, 10, 'user'),
      });
      expect((await repo.getModel('rt-set')) as unknown).toMatchObject({
        aliases: { prod: 1 },
        splits: { prod: split(3, 10, 'user') },
      });
      // Weight 0 keeps the canary declared; another canary releases the first.
      const zero = await repo.setAliasRouting({
        name: 'rt-set',
        alias: 'prod',
        routing: split(3, 0),
        actor: 'a',
      });
      expect(zero).toMatchObject({ revision: 3, routing: split(3, 0), canaryTarget: { version: 3 } });
      const two = await repo.setAliasRouting({
        name: 'rt-set',
        alias: 'prod',
        routing: split(2, 50),
        actor: 'a',
        reason: 'half',
      });
      expect(two).toMatchObject({ revision: 4, routing: split(2, 50), canaryTarget: { version: 2 } });
      expect((await repo.aliasHistory('rt-set', 'prod', 1)).items[0]).toMatchObject({ reason: 'half' });
      // Version 3 is free again (deletable); version 2 is held.
      await repo.deleteVersion('rt-set', 3);
      await expect(repo.deleteVersion('rt-set', 2)).rejects.toMatchObject({
        status: 409,
        code: 'VERSION_ALIASED',
      });
      const cleared = await repo.setAliasRouting({
        name: 'rt-set',
        alias: 'prod',
        routing: null,
        actor: 'bob',
      });
      expect(cleared).toEqual({ ...before, revision: 5, updatedAt: expect.any(String) });
      expect(await repo.getAlias('rt-set', 'prod')).toEqual(cleared);
      expect((await repo.aliasHistory('rt-set', 'prod', 1)).items[0]).toEqual({
        alias: 'prod',
        version: 1,
        previousVersion: 1,
        at: cleared.updatedAt,
        actor: 'bob',
        reason: 'split cleared',
        revision: cleared.revision,
      });
      expect(((await repo.getModel('rt-set')) as { splits?: unknown }).splits).toBeUndefined();
      await repo.deleteVersion('rt-set', 2);
      // A key parameter alone is a split without canary.
      const keyOnly = await repo.setAliasRouting({
        name: 'rt-set',
        alias: 'prod',
        routing: { keyParameter: 'session' },
        actor: 'a',
      });
      expect(keyOnly.routing).toEqual({ keyParameter: 'session' });
      expect(keyOnly.canaryTarget).toBeUndefined();
    });

    it('refuses: unknown model or alias (404), canary unknown (404), not READY (409), the stable version (409), stale revision (412)', async () => {
      await register('rt-no', 1);
      await repo.createVersion(newVersion('rt-no', { status: 'FAILED', failureReason: 'bad' }));
      await register('rt-no', 1);
      const change = (extra: object) => ({
        name: 'rt-no',
        alias: 'prod',
        routing: split(3, 5),
        actor: 'a',
        ...extra,
      });
      const refused = async (extra: object, status: number, code: string) =>
        expect(repo.setAliasRouting(change(extra))).rejects.toMatchObject({ status, code });
      await refused({ name: 'rt-ghost' }, 404, 'MODEL_NOT_FOUND');
      await refused({ alias: 'staging' }, 404, 'ALIAS_NOT_FOUND');
      await refused({ routing: split(9, 5) }, 404, 'VERSION_NOT_FOUND');
      await refused({ routing: split(2, 5) }, 409, 'VERSION_NOT_READY');
      await refused({ routing: split(1, 5) }, 409, 'CANARY_IS_STABLE');
      await refused({ expectedRevision: 7 }, 412, 'PRECONDITION_FAILED');
      expect(await repo.getAlias('rt-no', 'prod')).toMatchObject({ revision: 1 });
      expect((await repo.aliasHistory('rt-no', 'prod', 10)).items).toHaveLength(1);
      const ok = await repo.setAliasRouting(change({ expectedRevision: 1 }));
      expect(ok.revision).toBe(2);
      await expect(repo.setAliasRouting(change({ expectedRevision: 1 }))).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
    });

    it('refuses (409 ALIAS_TOO_LARGE) a canary or a move that would pair two serving copies too large for one alias; nothing is written', async () => {
      // Labels of 275 001 bytes each (at most LIMITS.maxLabelsBytes): one version fits an alias, two do not (DynamoDB
      // would refuse the ALIAS item past 400 KB).
      const labels = Array.from({ length: 25_000 }, (_, i) => `lab${String(i).padStart(5, '0')}`);
      await register('rt-big', 3, { labels });
      await register('rt-big', 1);
      const refused = { status: 409, code: 'ALIAS_TOO_LARGE' };
      await expect(
        repo.setAliasRouting({ name: 'rt-big', alias: 'prod', routing: split(2, 10), actor: 'a' }),
      ).rejects.toMatchObject(refused);
      expect(await repo.getAlias('rt-big', 'prod')).toMatchObject({ version: 1, revision: 1 });
      expect((await repo.aliasHistory('rt-big', 'prod', 10)).items).toHaveLength(1);
      await repo.deleteVersion('rt-big', 2);
      // A small stable version leaves room for a big canary; a move keeping it to another big version is refused.
      await repo.moveAlias({ name: 'rt-big', alias: 'prod', version: 4, actor: 'a' });
      await repo.setAliasRouting({ name: 'rt-big', alias: 'prod', routing: split(3, 10), actor: 'a' });
      await expect(
        repo.moveAlias({ name: 'rt-big', alias: 'prod', version: 1, actor: 'a' }),
      ).rejects.toMatchObject(refused);
      expect(await repo.getAlias('rt-big', 'prod')).toMatchObject({ version: 4, revision: 3 });
      // Promoting the canary leaves one copy: it fits.
      expect(await repo.moveAlias({ name: 'rt-big', alias: 'prod', version: 3, actor: 'a' })).toMatchObject({
        version: 3,
        revision: 4,
      });
    });

    it('stores a canary whose copy and the stable one fit the alias as the table counts them (many short labels)', async () => {
      // 28 000 labels of 4 characters: 196 001 bytes of JSON each, 140 003 as DynamoDB counts them.
      const labels = Array.from({ length: 28_000 }, (_, i) => i.toString(36).padStart(4, '0'));
      await register('rt-short', 2, { labels });
      const routed = await repo.setAliasRouting({
        name: 'rt-short',
        alias: 'prod',
        routing: split(2, 10),
        actor: 'a',
      });
      expect(routed).toMatchObject({ version: 1, revision: 2, routing: split(2, 10) });
      const stored = await repo.getAlias('rt-short', 'prod');
      expect(stored?.target?.labels).toEqual(labels);
      expect(stored?.canaryTarget?.labels).toEqual(labels);
    });

    it('refuses (409 TOO_MANY_ALIASES) one alias more than a model may have; a capture change then reaches every one', async () => {
      await register('al-many', 2);
      const have = Object.keys((await repo.getModel('al-many'))?.aliases ?? {}).length;
      for (let i = have; i < LIMITS.maxAliasesPerModel - 1; i++) {
        await repo.moveAlias({ name: 'al-many', alias: `a${i}`, version: 1, actor: 'a' });
      }
      // The last two places: two creations at once for one place, one wins.
      const raced = await Promise.allSettled([
        repo.moveAlias({ name: 'al-many', alias: 'x1', version: 1, actor: 'a' }),
        repo.moveAlias({ name: 'al-many', alias: 'x2', version: 2, actor: 'a' }),
      ]);
      expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const refusal = raced.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refusal.reason).toMatchObject({ status: 409, code: 'TOO_MANY_ALIASES' });
      await expect(
        repo.moveAlias({ name: 'al-many', alias: 'one-more', version: 1, actor: 'a' }),
      ).rejects.toMatchObject({ status: 409, code: 'TOO_MANY_ALIASES' });
      expect(await repo.getAlias('al-many', 'one-more')).toBeUndefined();
      expect(Object.keys((await repo.getModel('al-many'))?.aliases ?? {})).toHaveLength(
        LIMITS.maxAliasesPerModel,
      );
      // Moving an existing alias is not creating one.
      await repo.moveAlias({ name: 'al-many', alias: 'a1', version: 2, actor: 'a' });
      // Every alias on version 1 takes its capture change, in one transaction.
      await repo.updateVersion('al-many', 1, { capture: { samplePercent: 5, input: true, output: true } });
      expect((await repo.getAlias('al-many', 'a2'))?.target?.capture).toEqual({
        samplePercent: 5,
        input: true,
        output: true,
      });
      // A removed alias frees its place.
      await repo.moveAlias({ name: 'al-many', alias: 'a2', version: null, actor: 'a' });
      await repo.moveAlias({ name: 'al-many', alias: 'one-more', version: 1, actor: 'a' });
    });

    it('holds the canary version: no archive, no delete while it takes traffic (weight 0 included)', async () => {
      await register('rt-hold', 2);
      await repo.setAliasRouting({ name: 'rt-hold', alias: 'prod', routing: split(2, 0), actor: 'a' });
      await expect(repo.updateVersion('rt-hold', 2, { status: 'ARCHIVED' })).rejects.toMatchObject({
        status: 409,
        code: 'VERSION_ALIASED',
      });
      await expect(repo.deleteVersion('rt-hold', 2)).rejects.toBeInstanceOf(ConflictError);
      expect((await repo.getVersion('rt-hold', 2))?.status).toBe('READY');
    });

    it('a move to the canary promotes it (canary cleared, key parameter kept); another move keeps the split', async () => {
      await register('rt-move', 4);
      await repo.setAliasRouting({
        name: 'rt-move',
        alias: 'prod',
        routing: split(3, 20, 'user'),
        actor: 'a',
      });
      // Another move: the split stays.
      await repo.moveAlias({ name: 'rt-move', alias: 'prod', version: 2, actor: 'a' });
      const moved = await repo.getAlias('rt-move', 'prod');
      expect(moved).toMatchObject({
        version: 2,
        revision: 3,
        routing: split(3, 20, 'user'),
        canaryTarget: { version: 3 },
      });
      expect((await repo.aliasHistory('rt-move', 'prod', 1)).items[0]).toMatchObject({
        version: 2,
        previousVersion: 1,
        routing: split(3, 20, 'user'),
      });
      await repo.deleteVersion('rt-move', 1);
      // Promotion.
      await repo.moveAlias({ name: 'rt-move', alias: 'prod', version: 3, actor: 'a', reason: 'promote' });
      const promoted = await repo.getAlias('rt-move', 'prod');
      expect(promoted).toMatchObject({ version: 3, revision: 4, routing: { keyParameter: 'user' } });
      expect(promoted?.canaryTarget).toBeUndefined();
      expect((await repo.aliasHistory('rt-move', 'prod', 1)).items[0]).toMatchObject({
        version: 3,
        previousVersion: 2,
        routing: { keyParameter: 'user' },
      });
      expect((await repo.getModel('rt-move')) as unknown).toMatchObject({
        aliases: { prod: 3 },
        splits: { prod: { keyParameter: 'user' } },
      });
      // Version 3 is still held (now as stable), version 2 is free.
      await expect(repo.deleteVersion('rt-move', 3)).rejects.toBeInstanceOf(ConflictError);
      await repo.deleteVersion('rt-move', 2);
      // Promotion without key parameter clears the split; rollback keeps a new canary.
      await repo.setAliasRouting({ name: 'rt-move', alias: 'prod', routing: split(4, 1), actor: 'a' });
      await repo.moveAlias({ name: 'rt-move', alias: 'prod', version: 4, actor: 'a' });
      const plain = await repo.getAlias('rt-move', 'prod');
      expect(plain?.routing).toBeUndefined();
      expect(plain?.canaryTarget).toBeUndefined();
      expect(((await repo.getModel('rt-move')) as { splits?: unknown }).splits).toBeUndefined();
      // Rolling back to the stable version before: 3, no split to keep.
      await rollbackAlias({ repo }, { name: 'rt-move', alias: 'prod', actor: 'a' });
      expect(await repo.getAlias('rt-move', 'prod')).toMatchObject({ version: 3 });
    });

    it('removing the alias removes its split and frees the canary; a capture change reaches canaryTarget', async () => {
      await register('rt-rm', 2);
      await repo.moveAlias({ name: 'rt-rm', alias: 'staging', version: 1, actor: 'a' });
      await repo.setAliasRouting({ name: 'rt-rm', alias: 'staging', routing: split(2, 30), actor: 'a' });
      const rev = (await repo.getAlias('rt-rm', 'staging'))?.revision;
      await repo.updateVersion('rt-rm', 2, { capture: TEN });
      const staging = await repo.getAlias('rt-rm', 'staging');
      expect(staging?.canaryTarget?.capture).toEqual(TEN);
      expect(staging?.target?.capture).toBeUndefined();
      expect(staging?.revision).toBe(rev);
      await repo.updateVersion('rt-rm', 2, { capture: null });
      expect((await repo.getAlias('rt-rm', 'staging'))?.canaryTarget?.capture).toBeUndefined();
      // A new canary copies the version's capture as it is.
      await repo.updateVersion('rt-rm', 2, { capture: TEN });
      await repo.setAliasRouting({ name: 'rt-rm', alias: 'prod', routing: split(2, 5), actor: 'a' });
      expect((await repo.getAlias('rt-rm', 'prod'))?.canaryTarget?.capture).toEqual(TEN);
      await repo.setAliasRouting({ name: 'rt-rm', alias: 'prod', routing: null, actor: 'a' });
      await repo.moveAlias({ name: 'rt-rm', alias: 'staging', version: null, actor: 'a' });
      expect(await repo.getAlias('rt-rm', 'staging')).toBeUndefined();
      expect(((await repo.getModel('rt-rm')) as { splits?: unknown }).splits).toBeUndefined();
      await repo.deleteVersion('rt-rm', 2);
      // Re-created, the alias has no split.
      await repo.moveAlias({ name: 'rt-rm', alias: 'staging', version: 1, actor: 'a' });
      expect((await repo.getAlias('rt-rm', 'staging'))?.routing).toBeUndefined();
    });

    it("capture changes racing split changes and moves: every canary copy ends carrying its version's capture", {
      timeout: 180_000,
    }, async () => {
      const TEN_C: CaptureConfig = { samplePercent: 10, input: true, output: true };
      const HALF: CaptureConfig = { samplePercent: 50, input: true, output: false };
      await register('rt-cap-race', 4);
      await repo.moveAlias({ name: 'rt-cap-race', alias: 'staging', version: 2, actor: 'a' });
      const captures = [TEN_C, null, HALF, TEN_C, null, HALF];
      const ops: Promise<unknown>[] = [];
      for (let i = 0; i < captures.length; i++) {
        ops.push(repo.updateVersion('rt-cap-race', 3 + (i % 2), { capture: captures[i] ?? null }));
        ops.push(
          repo.setAliasRouting({
            name: 'rt-cap-race',
            alias: 'prod',
            routing: split(3 + ((i + 1) % 2), i),
            actor: `p${i}`,
          }),
        );
        ops.push(
          repo.setAliasRouting({
            name: 'rt-cap-race',
            alias: 'staging',
            routing: split(3 + (i % 2), i),
            actor: `s${i}`,
          }),
        );
        ops.push(
          repo.moveAlias({ name: 'rt-cap-race', alias: 'prod', version: 1 + (i % 2), actor: `m${i}` }),
        );
      }
      const outcomes = await Promise.allSettled(ops);
      expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
      for (const a of ['prod', 'staging']) {
        const alias = await repo.getAlias('rt-cap-race', a);
        const canary = alias?.routing?.canary?.version;
        expect(alias?.canaryTarget?.version, a).toBe(canary);
        expect(alias?.canaryTarget?.capture, a).toEqual(
          (await repo.getVersion('rt-cap-race', canary!))?.capture,
        );
      }
    });

    it('concurrent split changes and moves of one alias all commit, each at its own revision', async () => {
      await register('rt-race', 4);
      const ops = Array.from({ length: 12 }, (_, i) =>
        i % 3 === 0
          ? repo.moveAlias({ name: 'rt-race', alias: 'prod', version: 1 + (i % 2), actor: 'a' })
          : repo.setAliasRouting({
              name: 'rt-race',
              alias: 'prod',
              routing: split(3 + (i % 2), i),
              actor: 'a',
            }),
      );
      await Promise.all(ops);
      const alias = await repo.getAlias('rt-race', 'prod');
      expect(alias?.revision).toBe(13);
      const history = await allPages((t) => repo.aliasHistory('rt-race', 'prod', 50, t));
      expect(history.flat()).toHaveLength(13);
      // Only the canary of the final split is held.
      const canary = alias?.routing?.canary?.version;
      const other = canary === 3 ? 4 : 3;
      await expect(repo.deleteVersion('rt-race', canary!)).rejects.toBeInstanceOf(ConflictError);
      await repo.deleteVersion('rt-race', other);
    });
  });

  registryShadowContract(() => repo);

  it('answers the readiness probe', async () => {
    await expect(repo.ping()).resolves.toBeUndefined();
  });
}

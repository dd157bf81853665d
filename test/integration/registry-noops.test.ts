/**
 * Split changes that change nothing, and rollbacks to a version that is gone, on both registries (in memory and on
 * DynamoDB Local) through the use cases: a split set to the one the alias has writes nothing (no revision, no
 * history entry, no event) yet answers a stale `expectedRevision` with 412 as any change; a rollback to a deleted
 * version is a 409 `NO_ROLLBACK_TARGET` naming it, to an archived one a 409 `VERSION_NOT_READY`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import { type RegistryDeps, rollbackAlias, updateAlias } from '../../functions/app/registry';
import type { AliasRouting } from '../../functions/domain/types';
import type { RegistryEvent, RegistryRepository } from '../../functions/ports';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { newVersion } from '../helpers/registry-repository-contract';

interface Harness {
  readonly repo: RegistryRepository;
  dispose?(): Promise<void>;
}

const registries: [string, () => Promise<Harness>][] = [
  ['in memory', async () => ({ repo: new MemoryRegistryRepository() })],
  [
    'DynamoDB Local',
    async () => {
      const env: TestAwsEnv = await createTestAwsEnv('reg-noop');
      return {
        repo: new DynamoRegistryRepository({ doc: env.doc, table: env.table }),
        dispose: () => env.dispose(),
      };
    },
  ],
];

describe.each(registries)('registry (%s)', (_label, setup) => {
  let harness: Harness;
  let repo: RegistryRepository;
  const events: RegistryEvent[] = [];
  let deps: Pick<RegistryDeps, 'repo' | 'events'>;

  beforeAll(async () => {
    harness = await setup();
    repo = harness.repo;
    deps = { repo, events: { publish: async (e) => void events.push(e) } };
  });
  afterAll(async () => {
    await harness?.dispose?.();
  });

  const register = async (name: string, n: number) => {
    for (let i = 0; i < n; i++) await repo.createVersion(newVersion(name));
  };
  const history = async (name: string, alias = 'prod') => (await repo.aliasHistory(name, alias, 100)).items;
  const setSplit = (name: string, routing: AliasRouting | null, extra: object = {}) =>
    updateAlias(deps, { name, alias: 'prod', routing, actor: 'a', ...extra });
  const splitEvents = (name: string) =>
    events.filter((e) => e.type === 'AliasRoutingChanged' && e.detail.name === name);

  describe('a split change that changes nothing', () => {
    it('clearing a split the alias does not have writes nothing: same revision, no history entry, no event', async () => {
      await register('noop-clear', 1);
      const before = await repo.getAlias('noop-clear', 'prod');
      const entries = await history('noop-clear');
      for (const routing of [null, {}, null] as const) {
        const r = await setSplit('noop-clear', routing, { reason: 'off' });
        const { target: _t, ...alias } = before!;
        expect(r).toEqual(alias);
      }
      expect(await repo.getAlias('noop-clear', 'prod')).toEqual(before);
      expect(await history('noop-clear')).toEqual(entries);
      expect(splitEvents('noop-clear')).toEqual([]);
      // With the revision the caller saw it is answered as well; with a stale one, 412 as any change.
      expect(await setSplit('noop-clear', null, { expectedRevision: 1 })).toMatchObject({ revision: 1 });
      await expect(setSplit('noop-clear', null, { expectedRevision: 7 })).rejects.toMatchObject({
        status: 412,
        code: 'PRECONDITION_FAILED',
      });
      // The repository itself answers the alias as it is.
      expect(
        await repo.setAliasRouting({ name: 'noop-clear', alias: 'prod', routing: null, actor: 'a' }),
      ).toEqual(before);
      expect(await history('noop-clear')).toEqual(entries);
    });

    it('setting the split the alias has writes nothing; canary --off twice then shadow --off leave one entry', async () => {
      await register('noop-same', 3);
      const routing = {
        canary: { version: 2, weight: 10 },
        shadow: { version: 3, percent: 20 },
        keyParameter: 'u',
      };
      const set = await setSplit('noop-same', routing);
      expect(set.revision).toBe(2);
      const stored = await repo.getAlias('noop-same', 'prod');
      // The same split again, its fields in another order.
      const again = await setSplit('noop-same', {
        keyParameter: 'u',
        shadow: { percent: 20, version: 3 },
        canary: { weight: 10, version: 2 },
      });
      expect(again).toEqual(set);
      expect(await repo.getAlias('noop-same', 'prod')).toEqual(stored);
      expect((await history('noop-same')).map((h) => h.revision)).toEqual([2, 1]);
      // Another weight is a change.
      expect((await setSplit('noop-same', { ...routing, canary: { version: 2, weight: 20 } })).revision).toBe(
        3,
      );
      // `maas canary --off` twice, then `maas shadow --off`: two changes, not three.
      const off = { shadow: { version: 3, percent: 20 }, keyParameter: 'u' };
      expect((await setSplit('noop-same', off)).revision).toBe(4);
      expect((await setSplit('noop-same', off)).revision).toBe(4);
      expect((await setSplit('noop-same', { keyParameter: 'u' })).revision).toBe(5);
      expect((await setSplit('noop-same', { keyParameter: 'u' })).revision).toBe(5);
      expect((await history('noop-same')).map((h) => h.revision)).toEqual([5, 4, 3, 2, 1]);
      expect(splitEvents('noop-same')).toHaveLength(4);
    });

    it('a PATCH that changes the capture only leaves the revision and the history as they are', async () => {
      await register('noop-capture', 1);
      const capture = { samplePercent: 5, input: true, output: true };
      const r = await updateAlias(deps, {
        name: 'noop-capture',
        alias: 'prod',
        routing: null,
        capture,
        actor: 'a',
      });
      expect(r).toMatchObject({ revision: 1, capture });
      expect(r.routing).toBeUndefined();
      expect(await history('noop-capture')).toHaveLength(1);
    });
  });

  describe('rollback to a version that is gone', () => {
    it('409 NO_ROLLBACK_TARGET naming the deleted version; nothing moves', async () => {
      await register('rb-deleted', 8);
      await repo.moveAlias({ name: 'rb-deleted', alias: 'tmp', version: 8, actor: 'a' });
      await repo.moveAlias({ name: 'rb-deleted', alias: 'tmp', version: 5, actor: 'a' });
      await repo.deleteVersion('rb-deleted', 8);
      const before = await repo.getAlias('rb-deleted', 'tmp');
      const err = await rollbackAlias(deps, { name: 'rb-deleted', alias: 'tmp', actor: 'a' }).catch(
        (e: Error) => e,
      );
      expect(err).toMatchObject({ status: 409, code: 'NO_ROLLBACK_TARGET' });
      expect((err as Error).message).toContain('version 8');
      expect((err as Error).message).toContain('deleted');
      expect(await repo.getAlias('rb-deleted', 'tmp')).toEqual(before);
      expect(await history('rb-deleted', 'tmp')).toHaveLength(2);
    });

    it('409 VERSION_NOT_READY for an archived one', async () => {
      await register('rb-archived', 3);
      await repo.moveAlias({ name: 'rb-archived', alias: 'tmp', version: 3, actor: 'a' });
      await repo.moveAlias({ name: 'rb-archived', alias: 'tmp', version: 2, actor: 'a' });
      await repo.updateVersion('rb-archived', 3, { status: 'ARCHIVED' });
      await expect(
        rollbackAlias(deps, { name: 'rb-archived', alias: 'tmp', actor: 'a' }),
      ).rejects.toMatchObject({ status: 409, code: 'VERSION_NOT_READY' });
      expect(await repo.getAlias('rb-archived', 'tmp')).toMatchObject({ version: 2, revision: 2 });
    });
  });
});

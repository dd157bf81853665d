/**
 * The RegistryRepository contract of shadow splits (`routing.shadow`), run by `registryRepositoryContract` on
 * every implementation: validation (404, 409 not READY, SHADOW_IS_STABLE, SHADOW_INCOMPATIBLE), a shadow equal to
 * the canary, the history entry, the model's splits, the shadow version not held, and what moves do to it.
 */
import { describe, expect, it } from 'vitest';
import type { AliasRouting, NewVersion } from '../../functions/domain/types';
import type { RegistryRepository } from '../../functions/ports';
import { newVersion } from './registry-repository-contract';

/** Declares the shadow tests over the contract's repository (`repo()` once the suite's `beforeAll` ran). */
export function registryShadowContract(repo: () => RegistryRepository): void {
  const register = async (name: string, n: number, extra: Partial<NewVersion> = {}) => {
    for (let i = 0; i < n; i++) await repo().createVersion(newVersion(name, extra));
  };
  /** Sets the split of the model's `prod` alias (actor `a`). */
  const setRouting = (name: string, routing: AliasRouting | null) =>
    repo().setAliasRouting({ name, alias: 'prod', routing, actor: 'a' });
  const shadowOf = (version: number, percent: number, extra: Partial<AliasRouting> = {}): AliasRouting => ({
    ...extra,
    shadow: { version, percent },
  });

  describe('routing: shadow', () => {
    it('sets a shadow alone: revision + 1, history entry with the routing, model splits; no copy, not held', async () => {
      await register('sh-set', 2);
      const before = await repo().getAlias('sh-set', 'prod');
      const set = await repo().setAliasRouting({
        name: 'sh-set',
        alias: 'prod',
        routing: shadowOf(2, 20),
        actor: 'alice',
      });
      expect(set).toEqual({
        ...before,
        revision: 2,
        updatedAt: expect.any(String),
        routing: { shadow: { version: 2, percent: 20 } },
      });
      expect(set.canaryTarget).toBeUndefined();
      expect(await repo().getAlias('sh-set', 'prod')).toEqual(set);
      expect((await repo().aliasHistory('sh-set', 'prod', 1)).items[0]).toEqual({
        alias: 'prod',
        version: 1,
        previousVersion: 1,
        at: set.updatedAt,
        actor: 'alice',
        reason: 'shadow v2 at 20%',
        routing: { shadow: { version: 2, percent: 20 } },
        revision: 2,
      });
      expect(await repo().getModel('sh-set')).toMatchObject({
        splits: { prod: { shadow: { version: 2, percent: 20 } } },
      });
      // Not held: the shadow version can be archived (its mirrors then fail; callers never notice).
      await repo().updateVersion('sh-set', 2, { status: 'ARCHIVED' });
      expect((await repo().getVersion('sh-set', 2))?.status).toBe('ARCHIVED');
      expect((await repo().getAlias('sh-set', 'prod'))?.routing).toEqual(shadowOf(2, 20));
      // Cleared with the split.
      const cleared = await setRouting('sh-set', null);
      expect(cleared.routing).toBeUndefined();
      expect((await repo().getModel('sh-set'))?.splits).toBeUndefined();
    });

    it('canary and shadow together, and a shadow that is the canary', async () => {
      await register('sh-both', 3);
      const both = await setRouting('sh-both', {
        canary: { version: 2, weight: 10 },
        shadow: { version: 3, percent: 5.5 },
        keyParameter: 'u',
      });
      expect(both).toMatchObject({
        routing: {
          canary: { version: 2, weight: 10 },
          shadow: { version: 3, percent: 5.5 },
          keyParameter: 'u',
        },
        canaryTarget: { version: 2 },
      });
      expect((await repo().aliasHistory('sh-both', 'prod', 1)).items[0]?.reason).toBe(
        "canary v2 at 10%, shadow v3 at 5.5% (key parameter 'u')",
      );
      // Version 3 (shadow only) is not held; version 2 (canary) is.
      await expect(repo().deleteVersion('sh-both', 2)).rejects.toMatchObject({ code: 'VERSION_ALIASED' });
      const same = await setRouting('sh-both', {
        canary: { version: 3, weight: 10 },
        shadow: { version: 3, percent: 100 },
      });
      expect(same).toMatchObject({
        routing: { canary: { version: 3, weight: 10 }, shadow: { version: 3, percent: 100 } },
        canaryTarget: { version: 3 },
      });
      expect(await repo().getAlias('sh-both', 'prod')).toEqual(same);
      await repo().deleteVersion('sh-both', 2);
    });

    it('refuses: shadow unknown (404), not READY (409), the stable version (409), incompatible (409)', async () => {
      await register('sh-no', 1);
      await repo().createVersion(newVersion('sh-no', { status: 'FAILED', failureReason: 'bad' }));
      await register('sh-no', 1, {
        signature: {
          inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
          outputs: [{ name: 'other', datatype: 'FP32', shape: [-1, 3] }],
        },
      });
      const refused = async (routing: AliasRouting, status: number, code: string) =>
        expect(setRouting('sh-no', routing)).rejects.toMatchObject({ status, code });
      await refused(shadowOf(9, 5), 404, 'VERSION_NOT_FOUND');
      await refused(shadowOf(2, 5), 409, 'VERSION_NOT_READY');
      await refused(shadowOf(1, 5), 409, 'SHADOW_IS_STABLE');
      await refused(shadowOf(3, 5), 409, 'SHADOW_INCOMPATIBLE');
      expect(await repo().getAlias('sh-no', 'prod')).toMatchObject({ revision: 1 });
      expect((await repo().aliasHistory('sh-no', 'prod', 10)).items).toHaveLength(1);
    });

    it('moves: a promotion keeps the shadow; a move to the shadow version clears it (the canary stays)', async () => {
      await register('sh-move', 4);
      await setRouting('sh-move', {
        canary: { version: 2, weight: 30 },
        shadow: { version: 3, percent: 10 },
        keyParameter: 'u',
      });
      // Promotion of the canary: canary cleared, shadow and key parameter kept.
      await repo().moveAlias({ name: 'sh-move', alias: 'prod', version: 2, actor: 'a' });
      const promoted = await repo().getAlias('sh-move', 'prod');
      expect(promoted).toMatchObject({
        version: 2,
        routing: { shadow: { version: 3, percent: 10 }, keyParameter: 'u' },
      });
      expect(promoted?.routing?.canary).toBeUndefined();
      expect(promoted?.canaryTarget).toBeUndefined();
      expect((await repo().aliasHistory('sh-move', 'prod', 1)).items[0]?.routing).toEqual({
        shadow: { version: 3, percent: 10 },
        keyParameter: 'u',
      });
      expect((await repo().getModel('sh-move'))?.splits).toEqual({
        prod: { shadow: { version: 3, percent: 10 }, keyParameter: 'u' },
      });
      // A new canary, then a move to the shadow version: the shadow goes, the canary and its copy stay.
      await setRouting('sh-move', { canary: { version: 4, weight: 5 }, shadow: { version: 3, percent: 10 } });
      await repo().moveAlias({ name: 'sh-move', alias: 'prod', version: 3, actor: 'a' });
      const moved = await repo().getAlias('sh-move', 'prod');
      expect(moved).toMatchObject({
        version: 3,
        routing: { canary: { version: 4, weight: 5 } },
        canaryTarget: { version: 4 },
      });
      expect(moved?.routing?.shadow).toBeUndefined();
      expect((await repo().getModel('sh-move'))?.splits).toEqual({
        prod: { canary: { version: 4, weight: 5 } },
      });
      // The canary that is also the shadow, promoted: both cleared, no split left.
      await setRouting('sh-move', {
        canary: { version: 4, weight: 50 },
        shadow: { version: 4, percent: 10 },
      });
      await repo().moveAlias({ name: 'sh-move', alias: 'prod', version: 4, actor: 'a' });
      const done = await repo().getAlias('sh-move', 'prod');
      expect(done?.routing).toBeUndefined();
      expect(done?.canaryTarget).toBeUndefined();
      expect((await repo().getModel('sh-move'))?.splits).toBeUndefined();
      // Another move keeps a shadow as it is.
      await setRouting('sh-move', shadowOf(2, 1));
      await repo().moveAlias({ name: 'sh-move', alias: 'prod', version: 1, actor: 'a' });
      expect((await repo().getAlias('sh-move', 'prod'))?.routing).toEqual(shadowOf(2, 1));
    });
  });
}

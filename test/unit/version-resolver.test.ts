/**
 * The resolver's split of an alias (`split()`), over the in-memory registry: a canary, a shadow, both, a shadow
 * alone, a canary that cannot be served (the shadow still stands); no I/O once resolved.
 */
import { describe, expect, it } from 'vitest';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import { createVersionResolver } from '../../functions/app/version-resolver';
import type { AliasRouting } from '../../functions/domain/types';
import { newVersion } from '../helpers/registry-repository-contract';

async function setup(routing: AliasRouting) {
  const repo = new MemoryRegistryRepository();
  for (let i = 0; i < 3; i++) await repo.createVersion(newVersion('m'));
  await repo.setAliasRouting({ name: 'm', alias: 'prod', routing, actor: 't' });
  let reads = 0;
  const counted = {
    getAlias: (n: string, a: string) => {
      reads++;
      return repo.getAlias(n, a);
    },
    getVersion: (n: string, v: number) => {
      reads++;
      return repo.getVersion(n, v);
    },
    getModel: (n: string) => {
      reads++;
      return repo.getModel(n);
    },
  };
  const resolver = createVersionResolver({ repo: counted, aliasTtlMs: 60_000 });
  return { repo, resolver, reads: () => reads };
}

describe('VersionResolver.split', () => {
  it('a shadow alone: a split without canary (weight 0), the shadow and the key parameter; no I/O after', async () => {
    const { resolver, reads } = await setup({ shadow: { version: 3, percent: 20 }, keyParameter: 'u' });
    expect(resolver.split('m', undefined)).toBeUndefined();
    await resolver.resolve('m');
    const before = reads();
    const split = resolver.split('m', undefined);
    expect(split).toEqual({ weight: 0, keyParameter: 'u', shadow: { version: 3, percent: 20 } });
    expect(split?.canary).toBeUndefined();
    expect(resolver.split('m', 'prod')).toBe(split);
    expect(resolver.split('m', '1')).toBeUndefined();
    expect(reads()).toBe(before);
  });

  it('a canary with a shadow (the same version too)', async () => {
    const { resolver } = await setup({
      canary: { version: 2, weight: 10 },
      shadow: { version: 2, percent: 5 },
    });
    await resolver.resolve('m');
    const split = resolver.split('m', undefined);
    expect(split?.canary?.version.version).toBe(2);
    expect(split).toMatchObject({ weight: 10, shadow: { version: 2, percent: 5 } });
  });

  it('a canary alone is unchanged: no shadow field', async () => {
    const { resolver } = await setup({ canary: { version: 2, weight: 10 } });
    await resolver.resolve('m');
    const split = resolver.split('m', undefined)!;
    expect(split.canary?.version.version).toBe(2);
    expect('shadow' in split).toBe(false);
  });

  it('a key parameter alone is no split', async () => {
    const { resolver } = await setup({ keyParameter: 'u' });
    await resolver.resolve('m');
    expect(resolver.split('m', undefined)).toBeUndefined();
  });
});

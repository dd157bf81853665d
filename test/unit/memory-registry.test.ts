/** The RegistryRepository contract on the in-memory repository. */
import { describe } from 'vitest';
import { MemoryRegistryRepository, MemoryRegistryStore } from '../../functions/adapters/memory-registry';
import { registryRepositoryContract } from '../helpers/registry-repository-contract';

describe('MemoryRegistryRepository', () => {
  registryRepositoryContract(async () => {
    const store = new MemoryRegistryStore();
    return { repository: (clock) => new MemoryRegistryRepository({ store, ...(clock ? { clock } : {}) }) };
  });
});

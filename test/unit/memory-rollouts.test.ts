/** The RolloutRepository contract on the in-memory repository. */
import { describe } from 'vitest';
import { MemoryRolloutRepository } from '../../functions/adapters/memory-rollouts';
import { rolloutRepositoryContract } from '../helpers/rollout-repository-contract';

describe('MemoryRolloutRepository', () => {
  rolloutRepositoryContract(async () => ({ repository: new MemoryRolloutRepository() }));
});

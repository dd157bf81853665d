/** The RolloutRepository contract on DynamoDB Local (the registry table's ROLLOUT items and their sparse gsi1 listing). */
import { describe } from 'vitest';
import { DynamoRolloutRepository } from '../../functions/adapters/dynamodb-rollouts';
import { createTestAwsEnv } from '../helpers/aws-env';
import { rolloutRepositoryContract } from '../helpers/rollout-repository-contract';

describe('DynamoRolloutRepository (DynamoDB Local)', () => {
  rolloutRepositoryContract(async () => {
    const env = await createTestAwsEnv('rollouts');
    return {
      repository: new DynamoRolloutRepository({ doc: env.doc, table: env.table }),
      dispose: () => env.dispose(),
    };
  });
});

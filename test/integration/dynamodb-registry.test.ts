/** The RegistryRepository contract on DynamoDB Local, and what only the DynamoDB repository does. */
import { describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { createTestAwsEnv } from '../helpers/aws-env';
import { newVersion, registryRepositoryContract } from '../helpers/registry-repository-contract';

describe('DynamoRegistryRepository (DynamoDB Local)', () => {
  let repo: DynamoRegistryRepository;

  registryRepositoryContract(async () => {
    const env = await createTestAwsEnv('reg-repo');
    repo = new DynamoRegistryRepository({ doc: env.doc, table: env.table });
    return {
      repository: (clock) =>
        new DynamoRegistryRepository({ doc: env.doc, table: env.table, ...(clock ? { clock } : {}) }),
      dispose: () => env.dispose(),
    };
  });

  it('surfaces an item DynamoDB rejects (ValidationException) instead of retrying it', async () => {
    const huge = {
      inputs: [{ name: 'x'.repeat(450_000), datatype: 'FP32' as const, shape: [1] }],
      outputs: [],
    };
    const err = await repo
      .createVersion({ ...newVersion('huge-item'), sha256: 'x', sizeBytes: 1, s3Key: 'k', signature: huge })
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('ValidationException');
    expect(await repo.getModel('huge-item')).toBeUndefined();
  });
});

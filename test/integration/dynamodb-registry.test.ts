/** The RegistryRepository contract on DynamoDB Local, and what only the DynamoDB repository does. */
import {
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { rollbackAlias } from '../../functions/app/registry';
import { keys, TABLE } from '../../functions/contract/table';
import { ConflictError } from '../../functions/domain/errors';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { newVersion, registryRepositoryContract } from '../helpers/registry-repository-contract';

describe('DynamoRegistryRepository (DynamoDB Local)', () => {
  let env: TestAwsEnv;
  let repo: DynamoRegistryRepository;

  registryRepositoryContract(async () => {
    env = await createTestAwsEnv('reg-repo');
    repo = new DynamoRegistryRepository({ doc: env.doc, table: env.table });
    return {
      repository: (clock) =>
        new DynamoRegistryRepository({ doc: env.doc, table: env.table, ...(clock ? { clock } : {}) }),
      dispose: () => env.dispose(),
    };
  });

  it("a completion whose write follows another writer's change of the PENDING version plans again: the change is kept", async () => {
    const SIG = {
      inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [1] }],
      outputs: [{ name: 'y', datatype: 'FP32' as const, shape: [1] }],
    };
    await repo.createVersion(
      newVersion('pend', { status: 'PENDING', sha256: '', signature: { inputs: [], outputs: [] } }),
    );
    // Another caller's change lands between the completion's read of the version and its write.
    let writes = 0;
    const doc = {
      send: async (cmd: { constructor: unknown }) => {
        if (cmd instanceof TransactWriteCommand && writes++ === 0) {
          await repo.updateVersion('pend', 1, {
            description: 'set meanwhile',
            capture: { samplePercent: 50, input: true, output: true },
          });
        }
        return env.doc.send(cmd as TransactWriteCommand);
      },
    } as unknown as DynamoDBDocumentClient;
    const done = await new DynamoRegistryRepository({ doc, table: env.table }).completeVersion('pend', 1, {
      status: 'READY',
      sha256: 'abc',
      sizeBytes: 1,
      s3Key: 'models/pend/abc.onnx',
      signature: SIG,
    });
    expect(writes).toBe(2);
    const expected = {
      status: 'READY',
      sha256: 'abc',
      description: 'set meanwhile',
      capture: { samplePercent: 50 },
    };
    expect(done).toMatchObject(expected);
    expect(await repo.getVersion('pend', 1)).toMatchObject(expected);
    expect(await repo.getAlias('pend', 'prod')).toMatchObject({ target: { capture: { samplePercent: 50 } } });
  });

  it('queries the table strongly consistent (versions, history: rollback, re-creation), the models index not', async () => {
    const queries: QueryCommandInput[] = [];
    const doc = {
      send: (cmd: { constructor: unknown }) => {
        if (cmd instanceof QueryCommand) queries.push(cmd.input);
        return env.doc.send(cmd as QueryCommand);
      },
    } as unknown as DynamoDBDocumentClient;
    const recorded = new DynamoRegistryRepository({ doc, table: env.table });
    await recorded.createVersion(newVersion('consistent'));
    await recorded.createVersion(newVersion('consistent'));
    await recorded.moveAlias({ name: 'consistent', alias: 'prod', version: 2, actor: 'a' });
    const consistency = async (read: () => Promise<unknown>) => {
      queries.length = 0;
      await read();
      return queries.map((q) => [q.IndexName, q.ConsistentRead]);
    };
    const table = [undefined, true];
    // A rollback right after a move reads the history the move wrote.
    expect(
      await consistency(() =>
        rollbackAlias({ repo: recorded }, { name: 'consistent', alias: 'prod', actor: 'a' }),
      ),
    ).toEqual([table]);
    expect(await consistency(() => recorded.aliasHistory('consistent', 'prod', 1))).toEqual([table]);
    expect(await consistency(() => recorded.listVersions('consistent', 1))).toEqual([table]);
    // A re-created alias's first entry follows the history of the removed one.
    await recorded.moveAlias({ name: 'consistent', alias: 'staging', version: 1, actor: 'a' });
    await recorded.moveAlias({ name: 'consistent', alias: 'staging', version: null, actor: 'a' });
    expect(
      await consistency(() =>
        recorded.moveAlias({ name: 'consistent', alias: 'staging', version: 2, actor: 'a' }),
      ),
    ).toEqual([table]);
    // DynamoDB offers no consistent read of a global secondary index.
    expect(await consistency(() => recorded.listModels(1))).toEqual([[TABLE.modelsIndex.name, undefined]]);
  });

  it('answers an item DynamoDB refuses as too large (ValidationException) with 409 ITEM_TOO_LARGE, not retried', async () => {
    const huge = {
      inputs: [{ name: 'x'.repeat(450_000), datatype: 'FP32' as const, shape: [1] }],
      outputs: [],
    };
    const err = await repo
      .createVersion({ ...newVersion('huge-item'), sha256: 'x', sizeBytes: 1, s3Key: 'k', signature: huge })
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ code: 'ITEM_TOO_LARGE', cause: { name: 'ValidationException' } });
    expect((err as Error).message).toMatch(/registering a version of 'huge-item' .*400 KB/);
    expect(await repo.getModel('huge-item')).toBeUndefined();
  });

  it('answers a transaction cancelled for an item an update makes too large with 409 ITEM_TOO_LARGE; nothing is written', async () => {
    await repo.createVersion(newVersion('grown'));
    await repo.createVersion(newVersion('grown', { labels: ['x'.repeat(150_000)] }));
    // An ALIAS item grown by other means: the planner's bound on the serving copies cannot see what it carries.
    await env.doc.send(
      new PutCommand({
        TableName: env.table,
        Item: {
          ...(await repo.getAlias('grown', 'prod')),
          pk: keys.modelPk('grown'),
          sk: keys.aliasSk('prod'),
          name: 'grown',
          padding: 'p'.repeat(300_000),
        },
      }),
    );
    const err = await repo
      .setAliasRouting({
        name: 'grown',
        alias: 'prod',
        routing: { canary: { version: 2, weight: 10 } },
        actor: 'a',
      })
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ code: 'ITEM_TOO_LARGE', cause: { name: 'TransactionCanceledException' } });
    expect(await repo.getAlias('grown', 'prod')).toMatchObject({ revision: 1 });
    expect((await repo.aliasHistory('grown', 'prod', 10)).items).toHaveLength(1);
  });
});

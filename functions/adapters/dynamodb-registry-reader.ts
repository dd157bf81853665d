/**
 * The registry reads of the predict path — a version, an alias (with its serving snapshot), a model, and the
 * readiness probe — as DynamoDB GetItem calls signed and sent by `AwsHttpClient` (see aws-http.ts for why the
 * predict function does without the generated DynamoDB client). The items are the repository's
 * (dynamodb-registry.ts): same keys from the contract, same unmarshalling (the SDK's util-dynamodb), same
 * mapping to domain objects (dynamodb-items.ts), strongly consistent like the repository's reads.
 */
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { keys, TABLE } from '../contract/table';
import { UnavailableError } from '../domain/errors';
import type { AliasState, Model, ModelVersion } from '../domain/types';
import type { RegistryRepository } from '../ports';
import { AwsHttpClient, type AwsHttpOptions, readBody } from './aws-http';
import { type Item, toAlias, toModel, toVersion } from './dynamodb-items';

export interface DynamoRegistryReaderOptions extends Omit<AwsHttpOptions, 'service'> {
  readonly table: string;
  /** A client to use instead of one built from the other options. */
  readonly client?: AwsHttpClient;
}

/** A consistent read of an item that a transaction is writing can be refused; it is safe to retry. */
const CONTENTION = ['TransactionConflictException', 'TransactionInProgressException'];

export class DynamoRegistryReader
  implements Pick<RegistryRepository, 'getVersion' | 'getAlias' | 'getModel' | 'ping'>
{
  private readonly client: AwsHttpClient;
  private readonly table: string;

  constructor(o: DynamoRegistryReaderOptions) {
    this.table = o.table;
    this.client =
      o.client ??
      new AwsHttpClient({ maxAttempts: 5, retryableCodes: CONTENTION, ...o, service: 'dynamodb' });
  }

  async getVersion(name: string, version: number): Promise<ModelVersion | undefined> {
    const item = await this.getItem(keys.modelPk(name), keys.versionSk(version));
    return item ? toVersion(item) : undefined;
  }

  async getAlias(name: string, alias: string): Promise<AliasState | undefined> {
    const item = await this.getItem(keys.modelPk(name), keys.aliasSk(alias));
    return item ? toAlias(item) : undefined;
  }

  async getModel(name: string): Promise<Model | undefined> {
    const item = await this.getItem(keys.modelPk(name), keys.modelSk);
    return item ? toModel(item) : undefined;
  }

  /** Reachability of the table (the item need not exist), as the repository's `ping`. */
  async ping(): Promise<void> {
    await this.getItem(keys.modelPk('.ping'), keys.modelSk, false);
  }

  private async getItem(pk: string, sk: string, consistent = true): Promise<Item | undefined> {
    const body = JSON.stringify({
      TableName: this.table,
      Key: { [TABLE.partitionKey]: { S: pk }, [TABLE.sortKey]: { S: sk } },
      ConsistentRead: consistent,
    });
    try {
      return await this.send(body);
    } catch (e) {
      // Still refused after the retries: the caller may retry later (503), as with the repository's reads.
      if (CONTENTION.includes((e as { name?: string })?.name ?? '')) {
        throw new UnavailableError('reading the registry did not succeed under contention; retry');
      }
      throw e;
    }
  }

  private send(body: string): Promise<Item | undefined> {
    return this.client.send(
      {
        method: 'POST',
        path: '/',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': 'DynamoDB_20120810.GetItem',
        },
        body,
      },
      async (response) => {
        const out = JSON.parse((await readBody(response)).toString('utf8')) as {
          Item?: Parameters<typeof unmarshall>[0];
        };
        // Registry items hold no binary (B/BS) attributes, which this would leave as base64 text.
        return out.Item ? (unmarshall(out.Item) as Item) : undefined;
      },
    );
  }
}

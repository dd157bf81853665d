/**
 * IdempotencyGuard over Powertools idempotency with its DynamoDB persistence layer, kept in the registry
 * table: partition key `pk` = a static value, sort key `sk` = `{prefix}#{hash of the key}`, expiry in the
 * table's TTL attribute. The in-progress lock expires with the Lambda invocation's remaining time, so a
 * crashed invocation does not block redeliveries for long.
 *
 * With `validatePayload`, a key is `{ key, payload }`: only `key` identifies the work, and the hash of `payload`
 * is stored with the record, so the same key with another payload is refused (Powertools'
 * IdempotencyValidationError, answered as a 409 `IDEMPOTENCY_KEY_REUSED`) instead of replaying an answer to a
 * different request.
 */

import {
  IdempotencyAlreadyInProgressError,
  IdempotencyConfig,
  IdempotencyValidationError,
  makeIdempotent,
} from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { IDEMPOTENCY } from '../contract/events';
import { TABLE } from '../contract/table';
import { ConflictError } from '../domain/errors';
import { AlreadyInProgressError, type IdempotencyGuard, type TimeBudget } from '../ports/events';

export interface DynamoIdempotencyOptions {
  /** DynamoDB client (a document client works: it forwards low-level commands). */
  readonly client: DynamoDBClient | DynamoDBDocumentClient;
  readonly tableName: string;
  /** Namespace of the keys (one per kind of work). */
  readonly keyPrefix: string;
  /** @default IDEMPOTENCY.expiresAfterSeconds */
  readonly expiresAfterSeconds?: number;
  /** Keys are `{ key, payload }`: the work is identified by `key`, and `payload` must match it again. @default false */
  readonly validatePayload?: boolean;
}

export class DynamoIdempotencyGuard implements IdempotencyGuard {
  private readonly config: IdempotencyConfig;
  private readonly run: (key: Record<string, string>, work: () => Promise<unknown>) => Promise<unknown>;

  constructor(opts: DynamoIdempotencyOptions) {
    const persistenceStore = new DynamoDBPersistenceLayer({
      tableName: opts.tableName,
      awsSdkV3Client: opts.client as DynamoDBClient,
      keyAttr: TABLE.partitionKey,
      sortKeyAttr: TABLE.sortKey,
      staticPkValue: IDEMPOTENCY.staticPk,
      expiryAttr: TABLE.ttlAttribute,
      statusAttr: IDEMPOTENCY.statusAttr,
      inProgressExpiryAttr: IDEMPOTENCY.inProgressExpiryAttr,
      dataAttr: IDEMPOTENCY.dataAttr,
    });
    this.config = new IdempotencyConfig({
      expiresAfterSeconds: opts.expiresAfterSeconds ?? IDEMPOTENCY.expiresAfterSeconds,
      ...(opts.validatePayload ? { eventKeyJmesPath: 'key', payloadValidationJmesPath: 'payload' } : {}),
    });
    this.run = makeIdempotent((_key: Record<string, string>, work: () => Promise<unknown>) => work(), {
      persistenceStore,
      config: this.config,
      keyPrefix: opts.keyPrefix,
      dataIndexArgument: 0,
    });
  }

  async once<T>(key: Record<string, string>, work: () => Promise<T>, budget?: TimeBudget): Promise<T> {
    if (budget) {
      // Powertools reads 0 ms as "unknown"; an exhausted budget still locks for a moment.
      const context = { getRemainingTimeInMillis: () => Math.max(1, budget.getRemainingTimeInMillis()) };
      this.config.registerLambdaContext(context as Context);
    }
    try {
      return (await this.run(key, work)) as T;
    } catch (e) {
      if (e instanceof IdempotencyAlreadyInProgressError) throw new AlreadyInProgressError(e.message);
      if (e instanceof IdempotencyValidationError) {
        throw new ConflictError(
          'this idempotency key was used with a different request; use a new key for a new request',
          'IDEMPOTENCY_KEY_REUSED',
          { cause: e },
        );
      }
      throw e;
    }
  }
}

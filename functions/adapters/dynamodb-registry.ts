/**
 * RegistryRepository on one DynamoDB table (ARCHITECTURE §3).
 *
 * Items of a model share the partition `MODEL#{name}`:
 * - `MODEL`: `latestVersion` (the version counter), `aliases` (map alias -> version, kept in step
 *   with the ALIAS items so listings need no extra reads), `firstReadyVersion`, timestamps, and
 *   `gsi1pk`/`gsi1sk` for the models index.
 * - `VERSION#{000000003}`: the immutable version; `aliases` is a string set of the aliases pointing at
 *   it, maintained by every alias move in the same transaction. It lets "delete/archive only while no
 *   alias points here" and "alias only READY versions" be plain condition expressions on this item.
 * - `ALIAS#{alias}`: `version`, `revision` (+1 per move), `updatedAt`, and `target`: the serving fields of
 *   the VERSION item it points at, written by the same transaction, so the predict path resolves an alias in
 *   one read.
 * - `HISTORY#{alias}#{iso}#{revision-id}`: append-only moves.
 *
 * Version numbers: each registration reads the MODEL item (strongly consistent) and writes, in one
 * TransactWriteItems, `latestVersion = n + 1` conditioned on `latestVersion = n` (or on the item not
 * existing) together with the VERSION item (`attribute_not_exists`). Either both happen or neither,
 * so a number is only ever consumed by a written version: no duplicates and no gaps. The alternative
 * (an atomic `ADD latestVersion 1` and then a separate Put) is cheaper under contention but leaves a
 * gap whenever the process dies or the Put fails between the two writes, so it was not chosen.
 * Losers of a race (ConditionalCheckFailed or TransactionConflict) re-read and retry with full-jitter
 * exponential backoff; the attempt budget is sized so that 50 simultaneous registrations of one model
 * all succeed.
 */
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { DEFAULT_ALIAS } from '../contract/limits';
import { keys, TABLE } from '../contract/table';
import { ConflictError, NotFoundError, PreconditionFailedError, UnavailableError } from '../domain/errors';
import {
  assertAliasable,
  decodePageToken,
  encodePageToken,
  isPageKeyOf,
  type PageKey,
} from '../domain/registry-rules';
import type { AliasState, HistoryEntry, Model, ModelVersion, Page, VersionStatus } from '../domain/types';
import {
  type AliasMove,
  type AliasMoveResult,
  type Clock,
  type NewVersion,
  type RegistryRepository,
  systemClock,
} from '../ports';
import { type Item, toAlias, toModel, toVersion } from './dynamodb-items';

/** The table's key attributes: what a page key of a table query carries. */
const TABLE_KEYS = [TABLE.partitionKey, TABLE.sortKey] as const;

export interface DynamoRegistryRepositoryOptions {
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  /** @default systemClock */
  readonly clock?: Clock;
  /**
   * Attempts of one write under contention before giving up with a 503.
   * @default 200
   */
  readonly maxAttempts?: number;
}

type TxItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

interface CancellationReason {
  Code?: string;
  /** The item as it was, in wire format, when ReturnValuesOnConditionCheckFailure = ALL_OLD. */
  Item?: Record<string, { N?: string; S?: string }>;
}

/** Cancellation reasons of a failed transaction, aligned with its items; undefined for other errors. */
function cancellationReasons(e: unknown): CancellationReason[] | undefined {
  const err = e as { name?: string; CancellationReasons?: CancellationReason[] };
  if (err?.name !== 'TransactionCanceledException') return undefined;
  return err.CancellationReasons ?? [];
}

/** The counter fields of a MODEL item that failed the version-allocation condition. */
type ModelCounter = Item & { latestVersion: number; firstReadyVersion?: number };

function modelCounterOf(reason: CancellationReason | undefined): ModelCounter | undefined {
  const latest = reason?.Code === 'ConditionalCheckFailed' ? reason.Item?.latestVersion?.N : undefined;
  if (latest === undefined) return undefined;
  const firstReady = reason?.Item?.firstReadyVersion?.N;
  return {
    latestVersion: Number(latest),
    ...(firstReady !== undefined ? { firstReadyVersion: Number(firstReady) } : {}),
  };
}

/** Cancellation codes that a new attempt can overcome (anything else, e.g. ValidationError, cannot). */
const RETRYABLE_CANCELLATIONS = new Set([
  'None',
  'ConditionalCheckFailed',
  'TransactionConflict',
  'ThrottlingError',
  'ProvisionedThroughputExceeded',
]);

/** Errors that mean "someone else is writing the same items right now; try again". */
export function isContention(e: unknown): boolean {
  const name = (e as { name?: string })?.name;
  if (name === 'TransactionCanceledException') {
    return (cancellationReasons(e) ?? []).every((r) => RETRYABLE_CANCELLATIONS.has(r.Code ?? 'None'));
  }
  return (
    name === 'TransactionConflictException' ||
    name === 'TransactionInProgressException' ||
    name === 'ConditionalCheckFailedException'
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class DynamoRegistryRepository implements RegistryRepository {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly clock: Clock;
  private readonly maxAttempts: number;

  constructor(opts: DynamoRegistryRepositoryOptions) {
    this.doc = opts.doc;
    this.table = opts.table;
    this.clock = opts.clock ?? systemClock;
    this.maxAttempts = opts.maxAttempts ?? 200;
  }

  // -------------------------------------------------------------------------------------------
  // Versions

  async createVersion(v: NewVersion): Promise<ModelVersion> {
    const pk = keys.modelPk(v.name);
    // Set when an ALIAS#prod item exists although the model never had a READY version (only
    // possible with data written by other means): then registration must not fail on it forever.
    let prodTaken = false;
    // The MODEL item as last seen: read, or taken from a failed condition check (ALL_OLD), which
    // saves a round trip per lost race.
    let seen: ModelCounter | undefined;
    for (let attempt = 1; ; attempt++) {
      const model = seen ?? (await this.get(pk, keys.modelSk));
      seen = undefined;
      const current = (model?.latestVersion as number | undefined) ?? 0;
      const version = current + 1;
      const now = this.clock.now().toISOString();
      const autoProd = v.status === 'READY' && model?.firstReadyVersion === undefined && !prodTaken;
      const firstReady = v.status === 'READY' && model?.firstReadyVersion === undefined;

      const items: TxItem[] = [];
      if (!model) {
        items.push({
          Put: {
            TableName: this.table,
            Item: {
              pk,
              sk: keys.modelSk,
              [TABLE.modelsIndex.partitionKey]: keys.modelsGsiPk,
              [TABLE.modelsIndex.sortKey]: v.name,
              name: v.name,
              latestVersion: version,
              aliases: autoProd ? { [DEFAULT_ALIAS]: version } : {},
              ...(firstReady ? { firstReadyVersion: version } : {}),
              createdAt: now,
              updatedAt: now,
            },
            ConditionExpression: 'attribute_not_exists(pk)',
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          },
        });
      } else {
        const sets = ['latestVersion = :next', 'updatedAt = :now'];
        const names: Record<string, string> = {};
        const values: Record<string, unknown> = { ':next': version, ':cur': current, ':now': now };
        if (firstReady) sets.push('firstReadyVersion = :next');
        if (autoProd) {
          sets.push('aliases.#alias = :next');
          names['#alias'] = DEFAULT_ALIAS;
        }
        items.push({
          Update: {
            TableName: this.table,
            Key: { pk, sk: keys.modelSk },
            UpdateExpression: `SET ${sets.join(', ')}`,
            ConditionExpression: 'latestVersion = :cur',
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            ExpressionAttributeValues: values,
            ...(Object.keys(names).length ? { ExpressionAttributeNames: names } : {}),
          },
        });
      }
      const versionItem: Item = {
        pk,
        sk: keys.versionSk(version),
        name: v.name,
        version,
        status: v.status,
        sha256: v.sha256,
        sizeBytes: v.sizeBytes,
        s3Key: v.s3Key,
        signature: v.signature,
        description: v.description,
        tags: v.tags,
        labels: v.labels,
        postprocess: v.postprocess,
        createdAt: now,
        createdBy: v.createdBy,
        failureReason: v.failureReason,
        ...(autoProd ? { aliases: new Set([DEFAULT_ALIAS]) } : {}),
      };
      items.push({
        Put: { TableName: this.table, Item: versionItem, ConditionExpression: 'attribute_not_exists(pk)' },
      });
      const aliasIndex = items.length;
      if (autoProd) {
        items.push({
          Put: {
            TableName: this.table,
            Item: this.aliasItem(v.name, DEFAULT_ALIAS, version, 1, now, versionItem),
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        });
        items.push({
          Put: {
            TableName: this.table,
            Item: this.historyItem(v.name, {
              alias: DEFAULT_ALIAS,
              version,
              previousVersion: null,
              at: now,
              actor: v.createdBy ?? 'system',
              reason: 'first READY version',
              revision: 1,
            }),
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        });
      }
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
        return toVersion(versionItem);
      } catch (e) {
        const reasons = cancellationReasons(e);
        if (autoProd && reasons?.[aliasIndex]?.Code === 'ConditionalCheckFailed') prodTaken = true;
        seen = modelCounterOf(reasons?.[0]);
        await this.backoffOrThrow(e, attempt, `registering a version of '${v.name}'`);
      }
    }
  }

  async getVersion(name: string, version: number): Promise<ModelVersion | undefined> {
    const item = await this.get(keys.modelPk(name), keys.versionSk(version));
    return item ? toVersion(item) : undefined;
  }

  async listVersions(name: string, limit: number, nextToken?: string): Promise<Page<ModelVersion>> {
    const pk = keys.modelPk(name);
    return this.queryPage(
      {
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': pk, ':prefix': keys.versionSkPrefix },
        ScanIndexForward: false,
      },
      limit,
      nextToken,
      (k) => isPageKeyOf(k, TABLE_KEYS) && k.pk === pk && String(k.sk).startsWith(keys.versionSkPrefix),
      toVersion,
    );
  }

  /**
   * Changes description, tags and/or status. ARCHIVED is only reachable from READY (or is a no-op
   * on ARCHIVED) and only while no alias points at the version: aliases serve READY versions only.
   */
  async updateVersion(
    name: string,
    version: number,
    patch: { description?: string; tags?: Record<string, string>; status?: VersionStatus },
  ): Promise<ModelVersion> {
    const sets: string[] = [];
    const values: Record<string, unknown> = {};
    const names: Record<string, string> = {};
    if (patch.description !== undefined) {
      sets.push('description = :description');
      values[':description'] = patch.description;
    }
    if (patch.tags !== undefined) {
      sets.push('tags = :tags');
      values[':tags'] = patch.tags;
    }
    const conditions = ['attribute_exists(pk)'];
    if (patch.status !== undefined) {
      names['#status'] = 'status';
      sets.push('#status = :status');
      values[':status'] = patch.status;
      if (patch.status === 'ARCHIVED') {
        conditions.push('#status IN (:ready, :archived)', 'attribute_not_exists(aliases)');
        values[':ready'] = 'READY';
        values[':archived'] = 'ARCHIVED';
      }
    }
    if (sets.length === 0) {
      const current = await this.getVersion(name, version);
      if (!current) throw versionNotFound(name, version);
      return current;
    }
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: keys.modelPk(name), sk: keys.versionSk(version) },
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: conditions.join(' AND '),
          ExpressionAttributeValues: values,
          ...(Object.keys(names).length ? { ExpressionAttributeNames: names } : {}),
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toVersion(out.Attributes as Item);
    } catch (e) {
      if ((e as Error).name !== 'ConditionalCheckFailedException') throw e;
      const item = await this.get(keys.modelPk(name), keys.versionSk(version));
      if (!item) throw versionNotFound(name, version);
      const aliases = aliasSet(item);
      if (aliases.length > 0) {
        throw new ConflictError(
          `version ${version} of model '${name}' is aliased (${aliases.join(', ')}); move the alias first`,
          'VERSION_ALIASED',
        );
      }
      throw new ConflictError(
        `version ${version} of model '${name}' is ${String(item.status)}; only READY versions can be archived`,
        'INVALID_STATUS_CHANGE',
      );
    }
  }

  /**
   * Deletes a version with one conditional DeleteItem: it must exist and no alias may point at it.
   * Alias moves add the alias to the target VERSION item in their transaction, so the check and the
   * delete cannot interleave with a move. The artifact stays in S3 (content-addressed, possibly shared).
   */
  async deleteVersion(name: string, version: number): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { pk: keys.modelPk(name), sk: keys.versionSk(version) },
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(aliases)',
        }),
      );
    } catch (e) {
      if ((e as Error).name !== 'ConditionalCheckFailedException') throw e;
      const item = await this.get(keys.modelPk(name), keys.versionSk(version));
      if (!item) throw versionNotFound(name, version);
      throw new ConflictError(
        `version ${version} of model '${name}' is aliased (${aliasSet(item).join(', ')}); move or delete the alias first`,
        'VERSION_ALIASED',
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Models

  async getModel(name: string): Promise<Model | undefined> {
    const item = await this.get(keys.modelPk(name), keys.modelSk);
    return item ? toModel(item) : undefined;
  }

  async listModels(limit: number, nextToken?: string): Promise<Page<Model>> {
    const idx = TABLE.modelsIndex;
    return this.queryPage(
      {
        IndexName: idx.name,
        KeyConditionExpression: '#gpk = :gpk',
        ExpressionAttributeNames: { '#gpk': idx.partitionKey },
        ExpressionAttributeValues: { ':gpk': keys.modelsGsiPk },
      },
      limit,
      nextToken,
      (k) =>
        isPageKeyOf(k, [...TABLE_KEYS, idx.partitionKey, idx.sortKey]) &&
        k[idx.partitionKey] === keys.modelsGsiPk &&
        k.sk === keys.modelSk,
      toModel,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Aliases

  async getAlias(name: string, alias: string): Promise<AliasState | undefined> {
    const item = await this.get(keys.modelPk(name), keys.aliasSk(alias));
    return item ? toAlias(item) : undefined;
  }

  /**
   * Moves (or removes, `version: null`) an alias. One transaction writes the ALIAS item (conditioned
   * on the revision read, so no update is lost), the HISTORY entry, the alias set of the old and new
   * VERSION items (the new one conditioned on READY) and the MODEL's alias map.
   *
   * `expectedVersion`: when given, the alias must currently point at it (0 = the alias must not
   * exist); otherwise PreconditionFailedError (412). When omitted the move applies to whatever the
   * alias points at, and concurrent moves are serialized by retrying on the revision.
   */
  async moveAlias(move: AliasMove): Promise<AliasMoveResult> {
    const pk = keys.modelPk(move.name);
    for (let attempt = 1; ; attempt++) {
      const [model, aliasItem] = await Promise.all([
        this.get(pk, keys.modelSk),
        this.get(pk, keys.aliasSk(move.alias)),
      ]);
      if (!model) throw modelNotFound(move.name);
      const current = (aliasItem?.version as number | undefined) ?? null;
      const revision = (aliasItem?.revision as number | undefined) ?? 0;
      if (move.expectedVersion !== undefined && (current ?? 0) !== move.expectedVersion) {
        throw new PreconditionFailedError(
          current === null
            ? `alias '${move.alias}' of model '${move.name}' does not exist; expectedVersion ${move.expectedVersion} does not hold`
            : `alias '${move.alias}' of model '${move.name}' points at version ${current}, not ${move.expectedVersion}`,
        );
      }
      if (move.expectedRevision !== undefined && revision !== move.expectedRevision) {
        throw new PreconditionFailedError(
          `alias '${move.alias}' of model '${move.name}' is at revision ${revision}, not ${move.expectedRevision}`,
        );
      }
      if (move.version === null && !aliasItem) throw aliasNotFound(move.name, move.alias);
      let target: Item | undefined;
      if (move.version !== null) {
        target = await this.get(pk, keys.versionSk(move.version));
        if (!target) throw versionNotFound(move.name, move.version);
        assertAliasable(toVersion(target));
      }

      // History is ordered by time: never stamp a move earlier than the one it follows, even if
      // this writer's clock lags the previous writer's.
      const clockNow = this.clock.now().toISOString();
      const prevAt = aliasItem?.updatedAt as string | undefined;
      const now = prevAt !== undefined && prevAt > clockNow ? prevAt : clockNow;
      const nextRevision = revision + 1;
      const items: TxItem[] = [];
      const aliasKey = { pk, sk: keys.aliasSk(move.alias) };
      const aliasCondition = aliasItem
        ? { ConditionExpression: 'revision = :rev', ExpressionAttributeValues: { ':rev': revision } }
        : { ConditionExpression: 'attribute_not_exists(pk)' };
      if (move.version === null) {
        items.push({ Delete: { TableName: this.table, Key: aliasKey, ...aliasCondition } });
      } else {
        items.push({
          Put: {
            TableName: this.table,
            Item: this.aliasItem(move.name, move.alias, move.version, nextRevision, now, target),
            ...aliasCondition,
          },
        });
      }
      items.push({
        Put: {
          TableName: this.table,
          Item: this.historyItem(move.name, {
            alias: move.alias,
            version: move.version,
            previousVersion: current,
            at: now,
            actor: move.actor,
            ...(move.reason !== undefined ? { reason: move.reason } : {}),
            revision: nextRevision,
          }),
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      });
      const aliasSetValue = new Set([move.alias]);
      if (move.version !== null) {
        const readyCondition = {
          ConditionExpression: '#status = :ready',
          ExpressionAttributeNames: { '#status': 'status' },
        };
        if (move.version === current) {
          items.push({
            ConditionCheck: {
              TableName: this.table,
              Key: { pk, sk: keys.versionSk(move.version) },
              ...readyCondition,
              ExpressionAttributeValues: { ':ready': 'READY' },
            },
          });
        } else {
          items.push({
            Update: {
              TableName: this.table,
              Key: { pk, sk: keys.versionSk(move.version) },
              UpdateExpression: 'ADD aliases :alias',
              ...readyCondition,
              ExpressionAttributeValues: { ':ready': 'READY', ':alias': aliasSetValue },
            },
          });
        }
      }
      if (current !== null && current !== move.version) {
        items.push({
          Update: {
            TableName: this.table,
            Key: { pk, sk: keys.versionSk(current) },
            UpdateExpression: 'DELETE aliases :alias',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeValues: { ':alias': aliasSetValue },
          },
        });
      }
      items.push({
        Update: {
          TableName: this.table,
          Key: { pk, sk: keys.modelSk },
          UpdateExpression:
            move.version === null
              ? 'REMOVE aliases.#alias SET updatedAt = :now'
              : 'SET aliases.#alias = :version, updatedAt = :now',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { '#alias': move.alias },
          ExpressionAttributeValues:
            move.version === null ? { ':now': now } : { ':now': now, ':version': move.version },
        },
      });
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
        return { alias: move.alias, version: move.version, previousVersion: current, revision: nextRevision };
      } catch (e) {
        // Whatever failed (the revision moved on, the target stopped being READY or vanished, or a
        // transaction conflict), the next round re-reads and either answers 412/404/409 or retries.
        await this.backoffOrThrow(e, attempt, `moving alias '${move.alias}' of '${move.name}'`);
      }
    }
  }

  async aliasHistory(
    name: string,
    alias: string,
    limit: number,
    nextToken?: string,
  ): Promise<Page<HistoryEntry>> {
    const pk = keys.modelPk(name);
    const prefix = keys.historySkPrefix(alias);
    return this.queryPage(
      {
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': pk, ':prefix': prefix },
        ScanIndexForward: false,
      },
      limit,
      nextToken,
      (k) => isPageKeyOf(k, TABLE_KEYS) && k.pk === pk && String(k.sk).startsWith(prefix),
      toHistory,
    );
  }

  async ping(): Promise<void> {
    await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { pk: keys.modelPk('.ping'), sk: keys.modelSk } }),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private async get(pk: string, sk: string): Promise<Item | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await this.doc.send(
          new GetCommand({ TableName: this.table, Key: { pk, sk }, ConsistentRead: true }),
        );
        return out.Item;
      } catch (e) {
        // A read of an item inside a running transaction can be refused; it is safe to retry.
        await this.backoffOrThrow(e, attempt, 'reading the registry');
      }
    }
  }

  private async backoffOrThrow(e: unknown, attempt: number, what: string): Promise<void> {
    if (!isContention(e)) throw e;
    if (attempt >= this.maxAttempts) {
      throw new UnavailableError(`${what} did not succeed after ${attempt} attempts under contention; retry`);
    }
    // Full jitter, 5 ms doubling up to 250 ms.
    await sleep(Math.random() * Math.min(250, 5 * 2 ** Math.min(attempt, 10)));
  }

  private async queryPage<T>(
    input: Omit<QueryCommandInput, 'TableName' | 'Limit' | 'ExclusiveStartKey'>,
    limit: number,
    nextToken: string | undefined,
    accept: (key: PageKey) => boolean,
    map: (item: Item) => T,
  ): Promise<Page<T>> {
    const start = nextToken === undefined ? undefined : decodePageToken(nextToken, accept);
    const out = await this.doc.send(
      new QueryCommand({
        ...input,
        TableName: this.table,
        Limit: limit,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    const items = (out.Items ?? []).map(map);
    const last = out.LastEvaluatedKey as PageKey | undefined;
    return last ? { items, nextToken: encodePageToken(last) } : { items };
  }

  /**
   * The ALIAS item. `target` (the VERSION item it points at) is copied in as `target` with its serving
   * fields only, so `getAlias` answers the predict path in one read (see `AliasState.target`).
   */
  private aliasItem(
    name: string,
    alias: string,
    version: number,
    revision: number,
    now: string,
    target?: Item,
  ): Item {
    return {
      pk: keys.modelPk(name),
      sk: keys.aliasSk(alias),
      name,
      alias,
      version,
      revision,
      updatedAt: now,
      ...(target ? { target: servingSnapshot(target) } : {}),
    };
  }

  private historyItem(name: string, h: HistoryEntry & { revision: number }): Item {
    const id = `${String(h.revision).padStart(9, '0')}-${Math.random().toString(36).slice(2, 8)}`;
    return { pk: keys.modelPk(name), sk: keys.historySk(h.alias, h.at, id), name, ...h };
  }
}

// ---------------------------------------------------------------------------------------------
// Item <-> domain

function aliasSet(item: Item): string[] {
  const a = item.aliases;
  return a instanceof Set ? [...(a as Set<string>)].sort() : [];
}

/** Fields of a VERSION item that never change while an alias points at it (description and tags may). */
const SERVING_FIELDS = [
  'name',
  'version',
  'status',
  'sha256',
  'sizeBytes',
  's3Key',
  'signature',
  'labels',
  'postprocess',
  'createdAt',
] as const;

function servingSnapshot(item: Item): Item {
  const snapshot: Item = {};
  for (const k of SERVING_FIELDS) {
    if (item[k] !== undefined && item[k] !== null) snapshot[k] = item[k];
  }
  return snapshot;
}

function toHistory(item: Item): HistoryEntry {
  return {
    alias: item.alias as string,
    version: (item.version as number | null | undefined) ?? null,
    previousVersion: (item.previousVersion as number | null | undefined) ?? null,
    at: item.at as string,
    actor: item.actor as string,
    ...(typeof item.reason === 'string' ? { reason: item.reason } : {}),
  };
}

function modelNotFound(name: string): NotFoundError {
  return new NotFoundError(`model '${name}' not found`, 'MODEL_NOT_FOUND');
}

function versionNotFound(name: string, version: number): NotFoundError {
  return new NotFoundError(`version ${version} of model '${name}' not found`, 'VERSION_NOT_FOUND');
}

function aliasNotFound(name: string, alias: string): NotFoundError {
  return new NotFoundError(`alias '${alias}' of model '${name}' not found`, 'ALIAS_NOT_FOUND');
}

/**
 * RegistryRepository on one DynamoDB table (docs/ARCHITECTURE.md, "Data: table keys and S3 layout").
 *
 * Items of a model share the partition `MODEL#{name}`:
 * - `MODEL`: `latestVersion` (the version counter), `aliases` (map alias -> version, kept in step
 *   with the ALIAS items so listings need no extra reads), `splits` (map alias -> traffic split, likewise;
 *   created by the model's first split), `firstReadyVersion`, timestamps, and `gsi1pk`/`gsi1sk` for the
 *   models index.
 * - `VERSION#{000000003}`: the immutable version; `aliases` is a string set of the aliases pointing at
 *   it, maintained by every alias move in the same transaction. It lets "delete/archive only while no
 *   alias points here" and "alias only READY versions" be plain condition expressions on this item.
 * - `ALIAS#{alias}`: `version`, `revision` (+1 per move), `updatedAt`, `capture` (the alias's own
 *   declaration, kept by moves), and `target`: the serving fields of the VERSION item it points at (its
 *   `capture` included), written by the same transaction, so the predict path resolves an alias in one read.
 *   A change of a version's capture rewrites `target.capture` of the aliases pointing at it in one transaction.
 *   A split adds `routing` (`{canary?: {version, weight}, shadow?: {version, percent}, keyParameter?}`; the
 *   shadow version is neither copied nor held) and `canaryTarget` (the canary
 *   version's serving fields, as `target`; its `capture` rewritten like `target.capture`); the canary VERSION
 *   item has the alias in its alias set while the split names it.
 * - `HISTORY#{alias}#{iso}#{revision-id}`: append-only moves.
 *
 * The decisions are the domain planners' (../domain/registry-plans): this adapter reads the items a planner
 * needs, writes its plan as one (transactional or conditional) write whose condition expressions are the
 * plan's conditions, and plans again on a lost race (./dynamodb-contention retries with backoff).
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
import { LIMITS } from '../contract/limits';
import { keys, TABLE } from '../contract/table';
import type { CaptureConfig } from '../domain/capture';
import {
  type AliasMovePlan,
  type AliasRoutingChange,
  type AliasRoutingPlan,
  aliasCaptureRefusal,
  assertVersionUpdate,
  PATCHABLE_VERSION_FIELDS,
  patchedVersion,
  planAliasMove,
  planAliasRouting,
  planVersionCompletion,
  planVersionCreation,
  planVersionUpdate,
  recanariedAliases,
  retargetedAliases,
  type VersionCompletionPlan,
  type VersionCounter,
  type VersionCreationPlan,
  type VersionUpdatePlan,
  versionDeletionRefusal,
  versionNotFound,
  versionUpdateRefusal,
} from '../domain/registry-plans';
import { decodePageToken, encodePageToken, isPageKeyOf, type PageKey } from '../domain/registry-rules';
import type {
  AliasMove,
  AliasMoveResult,
  AliasRouting,
  AliasState,
  HistoryEntry,
  Model,
  ModelVersion,
  NewVersion,
  Page,
  VersionCompletion,
  VersionPatch,
} from '../domain/types';
import { type Clock, type RegistryRepository, systemClock } from '../ports';
import {
  ContentionRetry,
  failedConditionAt,
  isConditionFailure,
  itemAtFailedCondition,
} from './dynamodb-contention';
import {
  aliasItem,
  historyItem,
  type Item,
  toAlias,
  toCounter,
  toHistory,
  toModel,
  toVersion,
  toVersionState,
  versionItem,
} from './dynamodb-items';

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

export class DynamoRegistryRepository implements RegistryRepository {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly clock: Clock;
  private readonly retry: ContentionRetry;

  constructor(opts: DynamoRegistryRepositoryOptions) {
    this.doc = opts.doc;
    this.table = opts.table;
    this.clock = opts.clock ?? systemClock;
    this.retry = new ContentionRetry(opts.maxAttempts ?? 200);
  }

  // -------------------------------------------------------------------------------------------
  // Versions

  async createVersion(v: NewVersion): Promise<ModelVersion> {
    const pk = keys.modelPk(v.name);
    // Set when an ALIAS#prod item exists although the model never had a READY version (only
    // possible with data written by other means): then registration must not fail on it forever.
    let defaultAliasTaken = false;
    // The counter as last seen: read, or taken from a failed condition check (ALL_OLD), which
    // saves a round trip per lost race.
    let seen: VersionCounter | undefined;
    return this.retry.run(`registering a version of '${v.name}'`, async () => {
      let counter = seen;
      seen = undefined;
      if (!counter) {
        const model = await this.get(pk, keys.modelSk);
        counter = model ? toCounter(model) : undefined;
      }
      const plan = planVersionCreation(v, { counter, defaultAliasTaken }, this.clock.now().toISOString());
      const { items, aliasIndex } = this.creationItems(plan);
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
        return plan.version;
      } catch (e) {
        if (plan.alias && failedConditionAt(e, aliasIndex)) defaultAliasTaken = true;
        const old = itemAtFailedCondition(e, 0);
        seen = typeof old?.latestVersion === 'number' ? toCounter(old) : undefined;
        throw e;
      }
    });
  }

  /**
   * Completes a PENDING version: one transaction puts the completed VERSION item (conditioned on it still being
   * PENDING with the description, tags and capture read, so that a change made meanwhile is planned in, not lost) and, for the model's first READY version, sets `firstReadyVersion` on the MODEL item (conditioned
   * on it being unset) and writes the default ALIAS item and its first HISTORY entry. A lost race re-reads and
   * plans again (404 / 409 `VERSION_NOT_PENDING` once another writer completed or deleted it).
   */
  async completeVersion(name: string, version: number, completion: VersionCompletion): Promise<ModelVersion> {
    const pk = keys.modelPk(name);
    let defaultAliasTaken = false;
    return this.retry.run(`completing version ${version} of '${name}'`, async () => {
      const [model, stored] = await Promise.all([
        this.get(pk, keys.modelSk),
        this.get(pk, keys.versionSk(version)),
      ]);
      const plan = planVersionCompletion(
        name,
        version,
        completion,
        {
          stored: stored ? toVersion(stored) : undefined,
          counter: model ? toCounter(model) : undefined,
          defaultAliasTaken,
        },
        this.clock.now().toISOString(),
      );
      const { items, aliasIndex } = this.completionItems(plan, stored as Item);
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
        return plan.version;
      } catch (e) {
        if (plan.alias && failedConditionAt(e, aliasIndex)) defaultAliasTaken = true;
        throw e;
      }
    });
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
   * One conditional UpdateItem; on a failed condition the VERSION item is read again to say why. A change of
   * capture is a transaction instead (see `updateCapture`).
   */
  async updateVersion(name: string, version: number, patch: VersionPatch): Promise<ModelVersion> {
    const plan = planVersionUpdate(patch);
    if (plan.set.capture !== undefined) return this.updateCapture(name, version, plan);
    const { sets, values, names, conditions } = this.versionUpdate(plan);
    if (sets.length === 0) {
      const current = await this.getVersion(name, version);
      if (!current) throw versionNotFound(name, version);
      return current;
    }
    return this.retry.run(`updating version ${version} of '${name}'`, async () => {
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
        if (!isConditionFailure(e)) throw e;
        const item = await this.get(keys.modelPk(name), keys.versionSk(version));
        throw versionUpdateRefusal(name, version, item ? toVersionState(item) : undefined);
      }
    });
  }

  /**
   * A change that includes the version's capture: one transaction updates the VERSION item — conditioned on its
   * alias set being the one read — and `target.capture` of every ALIAS item pointing at the version —
   * conditioned on its revision being the one read. An alias moving to or away from the version meanwhile
   * (which changes both) makes the transaction fail; it is read and planned again (./dynamodb-contention), and
   * a move that read the version before this change fails its own condition on the version's capture.
   */
  private updateCapture(name: string, version: number, plan: VersionUpdatePlan): Promise<ModelVersion> {
    const pk = keys.modelPk(name);
    const capture = plan.set.capture;
    return this.retry.run(`updating version ${version} of '${name}'`, async () => {
      const item = await this.get(pk, keys.versionSk(version));
      const state = item ? toVersionState(item) : undefined;
      assertVersionUpdate(plan, name, version, state);
      const stored = toVersion(item as Item);
      const aliasItems = await Promise.all(state!.aliases.map((a) => this.get(pk, keys.aliasSk(a))));
      const read = aliasItems.filter((a): a is Item => a !== undefined).map(toAlias);
      const retarget = retargetedAliases(version, read);
      // The aliases whose canary the version is carry a copy too (`canaryTarget`).
      const recanary = recanariedAliases(version, read);
      const { sets, values, names, conditions } = this.versionUpdate(plan);
      if (state!.aliases.length === 0) {
        conditions.push('attribute_not_exists(aliases)');
      } else {
        conditions.push(`size(aliases) = :aliasCount`);
        values[':aliasCount'] = state!.aliases.length;
        state!.aliases.forEach((a, i) => {
          conditions.push(`contains(aliases, :alias${i})`);
          values[`:alias${i}`] = a;
        });
      }
      const items: TxItem[] = [
        {
          Update: {
            TableName: this.table,
            Key: { pk, sk: keys.versionSk(version) },
            UpdateExpression: [
              sets.length ? `SET ${sets.join(', ')}` : '',
              capture === null ? 'REMOVE #capture' : '',
            ]
              .filter(Boolean)
              .join(' '),
            ConditionExpression: conditions.join(' AND '),
            ...(Object.keys(values).length ? { ExpressionAttributeValues: values } : {}),
            ExpressionAttributeNames: names,
          },
        },
      ];
      // The serving copies of the version in the aliases pointing at it (`target`) or splitting to it (`canaryTarget`)
      // take the new capture, each conditional on the alias revision read.
      const copyUpdate = (
        a: { alias: string; revision: number },
        copy: 'target' | 'canaryTarget',
      ): TxItem => ({
        Update: {
          TableName: this.table,
          Key: { pk, sk: keys.aliasSk(a.alias) },
          UpdateExpression: capture ? 'SET #copy.#capture = :capture' : 'REMOVE #copy.#capture',
          ConditionExpression: '#revision = :revision',
          ExpressionAttributeNames: { '#copy': copy, '#capture': 'capture', '#revision': 'revision' },
          ExpressionAttributeValues: {
            ':revision': a.revision,
            ...(capture ? { ':capture': capture } : {}),
          },
        },
      });
      for (const a of retarget) items.push(copyUpdate(a, 'target'));
      for (const a of recanary) items.push(copyUpdate(a, 'canaryTarget'));
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
      return patchedVersion(stored, plan);
    });
  }

  /** The SET clauses, values, names and conditions of a version update plan. */
  private versionUpdate(plan: VersionUpdatePlan) {
    const sets: string[] = [];
    const values: Record<string, unknown> = {};
    const names: Record<string, string> = {};
    if (plan.set.description !== undefined) {
      sets.push('description = :description');
      values[':description'] = plan.set.description;
    }
    if (plan.set.tags !== undefined) {
      sets.push('tags = :tags');
      values[':tags'] = plan.set.tags;
    }
    if (plan.set.status !== undefined) {
      names['#status'] = 'status';
      sets.push('#status = :status');
      values[':status'] = plan.set.status;
    }
    if (plan.set.capture !== undefined) {
      names['#capture'] = 'capture';
      if (plan.set.capture !== null) {
        sets.push('#capture = :capture');
        values[':capture'] = plan.set.capture;
      }
    }
    const conditions = ['attribute_exists(pk)'];
    if (plan.archive) {
      names['#status'] = 'status';
      conditions.push('#status IN (:ready, :archived)', 'attribute_not_exists(aliases)');
      values[':ready'] = 'READY';
      values[':archived'] = 'ARCHIVED';
    }
    return { sets, values, names, conditions };
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
      if (!isConditionFailure(e)) throw e;
      const item = await this.get(keys.modelPk(name), keys.versionSk(version));
      throw versionDeletionRefusal(name, version, item ? toVersionState(item) : undefined);
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
        k.pk === keys.modelPk(String(k[idx.sortKey])) &&
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
    // Whatever failed (the revision moved on, the target stopped being READY or vanished, or a
    // transaction conflict), the next round re-reads and either answers 412/404/409 or retries.
    return this.retry.run(`moving alias '${move.alias}' of '${move.name}'`, async () => {
      const [model, alias, target] = await Promise.all([
        this.get(pk, keys.modelSk),
        this.get(pk, keys.aliasSk(move.alias)),
        move.version === null ? undefined : this.get(pk, keys.versionSk(move.version)),
      ]);
      // A re-created alias continues from the last entry of its removed past (one query, creations only).
      const lastHistory =
        alias === undefined && target !== undefined
          ? await this.lastHistory(move.name, move.alias)
          : undefined;
      const current = alias ? toAlias(alias) : undefined;
      // The shadow's version, which the alias carries no copy of: the move must not leave one that cannot answer.
      const shadowVersion = current?.routing?.shadow?.version;
      const shadow =
        shadowVersion !== undefined && target !== undefined && shadowVersion !== move.version
          ? await this.get(pk, keys.versionSk(shadowVersion))
          : undefined;
      const plan = planAliasMove(
        move,
        {
          modelExists: model !== undefined,
          aliasCount: Object.keys((model?.aliases as Record<string, unknown> | undefined) ?? {}).length,
          alias: current,
          target: target ? toVersion(target) : undefined,
          ...(shadow ? { shadow: toVersion(shadow) } : {}),
          ...(lastHistory ? { lastHistory } : {}),
        },
        this.clock.now().toISOString(),
      );
      await this.doc.send(new TransactWriteCommand({ TransactItems: this.moveItems(plan) }));
      return plan.result;
    });
  }

  /**
   * Sets or removes the alias's own `capture` with one conditional UpdateItem on its ALIAS item. The revision
   * stays (a capture change is not a move), and moves leave the attribute alone, so the two never clobber each
   * other. On a failed condition the MODEL item is read to tell 404 `MODEL_NOT_FOUND` from `ALIAS_NOT_FOUND`.
   */
  async setAliasCapture(name: string, alias: string, capture: CaptureConfig | null): Promise<AliasState> {
    const pk = keys.modelPk(name);
    return this.retry.run(`changing the capture of alias '${alias}' of '${name}'`, async () => {
      try {
        const out = await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { pk, sk: keys.aliasSk(alias) },
            UpdateExpression: capture ? 'SET #capture = :capture' : 'REMOVE #capture',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeNames: { '#capture': 'capture' },
            ...(capture ? { ExpressionAttributeValues: { ':capture': capture } } : {}),
            ReturnValues: 'ALL_NEW',
          }),
        );
        return toAlias(out.Attributes as Item);
      } catch (e) {
        if (!isConditionFailure(e)) throw e;
        const model = await this.get(pk, keys.modelSk);
        throw aliasCaptureRefusal(name, alias, model !== undefined);
      }
    });
  }

  /**
   * Sets or removes the alias's traffic split: one transaction updates the ALIAS item (revision + 1, `routing`,
   * `canaryTarget`; conditioned on the revision read), appends the HISTORY entry, adds the alias to the new canary
   * VERSION item's alias set (conditioned on READY and on the capture copied) or checks the kept one, removes it
   * from the canary it leaves, and keeps the MODEL item's `splits` map in step. A lost race plans again. The split
   * the alias has already (an `unchanged` plan) writes nothing.
   */
  async setAliasRouting(change: AliasRoutingChange): Promise<AliasState> {
    const pk = keys.modelPk(change.name);
    const canary = change.routing?.canary?.version;
    // The shadow version is read for validation only (not held): once when it is the canary too.
    const shadow = change.routing?.shadow?.version;
    const readShadow = shadow !== undefined && shadow !== canary;
    return this.retry.run(`changing the split of alias '${change.alias}' of '${change.name}'`, async () => {
      const [model, alias, canaryItem, shadowItem] = await Promise.all([
        this.get(pk, keys.modelSk),
        this.get(pk, keys.aliasSk(change.alias)),
        canary === undefined ? undefined : this.get(pk, keys.versionSk(canary)),
        readShadow ? this.get(pk, keys.versionSk(shadow)) : undefined,
      ]);
      const plan = planAliasRouting(
        change,
        {
          modelExists: model !== undefined,
          alias: alias ? toAlias(alias) : undefined,
          canary: canaryItem ? toVersion(canaryItem) : undefined,
          shadow: shadowItem ? toVersion(shadowItem) : undefined,
        },
        this.clock.now().toISOString(),
      );
      // The split the alias has already: nothing to write, the alias is answered as read.
      if (plan.unchanged) return plan.next;
      const hasSplits = model?.splits !== null && typeof model?.splits === 'object';
      const hadRouting = alias ? toAlias(alias).routing !== undefined : false;
      await this.doc.send(
        new TransactWriteCommand({ TransactItems: this.routingItems(plan, hasSplits, hadRouting) }),
      );
      // The alias's own capture is not the change's to write; it is answered as read.
      return plan.next;
    });
  }

  async aliasHistory(
    name: string,
    alias: string,
    limit: number,
    nextToken?: string,
  ): Promise<Page<HistoryEntry>> {
    return this.historyPage(name, alias, limit, nextToken, toHistory);
  }

  /** The time and revision of the alias's latest history entry (undefined when it has none). */
  private async lastHistory(
    name: string,
    alias: string,
  ): Promise<{ at: string; revision: number } | undefined> {
    const page = await this.historyPage(name, alias, 1, undefined, (item) => ({
      at: item.at as string,
      revision: typeof item.revision === 'number' ? item.revision : 0,
    }));
    return page.items[0];
  }

  /** A page of the alias's HISTORY items, newest first. */
  private historyPage<T>(
    name: string,
    alias: string,
    limit: number,
    nextToken: string | undefined,
    map: (item: Item) => T,
  ): Promise<Page<T>> {
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
      map,
    );
  }

  async ping(): Promise<void> {
    await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { pk: keys.modelPk('.ping'), sk: keys.modelSk } }),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Plans as transactions

  /**
   * A registration: the MODEL item (created, or its counter moved on conditionally), the VERSION item, and,
   * for the first READY version, the default ALIAS item and its first HISTORY entry. `aliasIndex` is the
   * ALIAS item's place in the transaction (to tell from the cancellation reasons that the alias exists).
   */
  private creationItems(plan: VersionCreationPlan): { items: TxItem[]; aliasIndex: number } {
    const pk = keys.modelPk(plan.name);
    const v = plan.version.version;
    const alias = plan.alias;
    const items: TxItem[] = [];
    if (plan.expectedLatestVersion === undefined) {
      items.push({
        Put: {
          TableName: this.table,
          Item: {
            pk,
            sk: keys.modelSk,
            [TABLE.modelsIndex.partitionKey]: keys.modelsGsiPk,
            [TABLE.modelsIndex.sortKey]: plan.name,
            name: plan.name,
            latestVersion: v,
            aliases: alias ? { [alias.state.alias]: v } : {},
            ...(plan.firstReady ? { firstReadyVersion: v } : {}),
            createdAt: plan.at,
            updatedAt: plan.at,
          },
          ConditionExpression: 'attribute_not_exists(pk)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      });
    } else {
      const sets = ['latestVersion = :next', 'updatedAt = :now'];
      const names: Record<string, string> = {};
      const values: Record<string, unknown> = {
        ':next': v,
        ':cur': plan.expectedLatestVersion,
        ':now': plan.at,
      };
      if (plan.firstReady) sets.push('firstReadyVersion = :next');
      if (alias) {
        sets.push('aliases.#alias = :next');
        names['#alias'] = alias.state.alias;
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
    items.push({
      Put: {
        TableName: this.table,
        Item: versionItem(plan.version, alias ? [alias.state.alias] : []),
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    });
    const aliasIndex = items.length;
    if (alias) items.push(...this.firstAliasItems(plan.name, alias));
    return { items, aliasIndex };
  }

  /** The default alias of a model's first READY version: its ALIAS item and first HISTORY entry, both new. */
  private firstAliasItems(
    name: string,
    alias: {
      readonly state: Parameters<typeof aliasItem>[1];
      readonly history: Parameters<typeof historyItem>[1];
    },
  ): TxItem[] {
    return [
      {
        Put: {
          TableName: this.table,
          Item: aliasItem(name, alias.state),
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      },
      {
        Put: {
          TableName: this.table,
          Item: historyItem(name, alias.history),
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      },
    ];
  }

  /**
   * A completion: the VERSION item (conditioned on PENDING, and on the attributes a version update may change
   * being those of `read`, the item the plan was made from) and, for the first READY version, the MODEL item's
   * `firstReadyVersion` (conditioned on being unset), the default ALIAS item and its first HISTORY entry.
   */
  private completionItems(plan: VersionCompletionPlan, read: Item): { items: TxItem[]; aliasIndex: number } {
    const pk = keys.modelPk(plan.name);
    const v = plan.version.version;
    const alias = plan.alias;
    const conditions = ['#status = :pending'];
    const names: Record<string, string> = { '#status': 'status' };
    const values: Record<string, unknown> = { ':pending': 'PENDING' };
    for (const field of PATCHABLE_VERSION_FIELDS) {
      names[`#${field}`] = field;
      if (read[field] === undefined) {
        conditions.push(`attribute_not_exists(#${field})`);
      } else {
        conditions.push(`#${field} = :${field}`);
        values[`:${field}`] = read[field];
      }
    }
    const items: TxItem[] = [
      {
        Put: {
          TableName: this.table,
          Item: versionItem(plan.version, alias ? [alias.state.alias] : []),
          ConditionExpression: conditions.join(' AND '),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        },
      },
    ];
    if (plan.firstReady) {
      items.push({
        Update: {
          TableName: this.table,
          Key: { pk, sk: keys.modelSk },
          UpdateExpression: `SET firstReadyVersion = :v, updatedAt = :now${alias ? ', aliases.#alias = :v' : ''}`,
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(firstReadyVersion)',
          ExpressionAttributeValues: { ':v': v, ':now': plan.at },
          ...(alias ? { ExpressionAttributeNames: { '#alias': alias.state.alias } } : {}),
        },
      });
    }
    const aliasIndex = items.length;
    if (alias) items.push(...this.firstAliasItems(plan.name, alias));
    return { items, aliasIndex };
  }

  /**
   * An alias move: the ALIAS item (put or deleted, conditioned on the revision read), the HISTORY entry, the
   * alias sets of the VERSION items it reaches (conditioned on READY) and leaves, and the MODEL's alias map.
   */
  private moveItems(plan: AliasMovePlan): TxItem[] {
    const pk = keys.modelPk(plan.name);
    const items: TxItem[] = [];
    const aliasCondition =
      plan.expectedRevision > 0
        ? {
            ConditionExpression: 'revision = :rev',
            ExpressionAttributeValues: { ':rev': plan.expectedRevision },
          }
        : { ConditionExpression: 'attribute_not_exists(pk)' };
    if (plan.next) {
      // An update, not a put: the alias's own `capture` is not the move's to write (see `setAliasCapture`).
      // A move that keeps the split leaves `routing` and `canaryTarget` alone (a version's capture change rewrites
      // `canaryTarget.capture` in place); a promotion clears the canary, keeping the key parameter.
      const next = plan.next;
      // A move to the shadow version clears the shadow alone (the canary and its copy stay).
      const promotion = plan.routingChange !== undefined;
      const routingSet = promotion && plan.routingChange ? ', #routing = :routing' : '';
      const removed = [
        ...(promotion && !next.canaryTarget ? ['#canaryTarget'] : []),
        ...(promotion && !plan.routingChange ? ['#routing'] : []),
      ];
      const routingRemove = removed.length > 0 ? ` REMOVE ${removed.join(', ')}` : '';
      items.push({
        Update: {
          TableName: this.table,
          Key: { pk, sk: keys.aliasSk(plan.alias) },
          UpdateExpression: `SET #name = :name, #alias = :alias, #version = :version, #revision = :revision, #updatedAt = :at, #target = :target${routingSet}${routingRemove}`,
          ConditionExpression: aliasCondition.ConditionExpression,
          ExpressionAttributeNames: {
            '#name': 'name',
            '#alias': 'alias',
            '#version': 'version',
            '#revision': 'revision',
            '#updatedAt': 'updatedAt',
            '#target': 'target',
            ...(removed.includes('#canaryTarget') ? { '#canaryTarget': 'canaryTarget' } : {}),
            ...(promotion ? { '#routing': 'routing' } : {}),
          },
          ExpressionAttributeValues: {
            ...aliasCondition.ExpressionAttributeValues,
            ':name': plan.name,
            ':alias': plan.alias,
            ':version': next.version,
            ':revision': next.revision,
            ':at': next.updatedAt,
            ':target': next.target,
            ...(routingSet ? { ':routing': plan.routingChange } : {}),
          },
        },
      });
    } else {
      items.push({
        Delete: { TableName: this.table, Key: { pk, sk: keys.aliasSk(plan.alias) }, ...aliasCondition },
      });
    }
    items.push({
      Put: {
        TableName: this.table,
        Item: historyItem(plan.name, plan.history),
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    });
    if (plan.next) {
      // The target is still READY, and its capture is still the one copied into the alias's target (a concurrent
      // capture change makes the move plan again rather than leave a stale copy).
      items.push(
        this.holdItem(plan.name, plan.alias, plan.next.version, plan.next.target?.capture, plan.gains),
      );
    }
    for (const released of [plan.releases, plan.releasesCanary]) {
      if (released !== undefined) items.push(this.releaseItem(plan.name, plan.alias, released));
    }
    // The model's splits map follows the alias's split when the move changes it (it exists: the alias had one).
    const splitSet = plan.routingChange ? ', splits.#alias = :split' : '';
    const splitRemove = plan.routingChange === null ? ', splits.#alias' : '';
    // A created alias: the model still has room for it (another created meanwhile may have taken the last place).
    const creates = plan.next !== undefined && plan.expectedRevision === 0;
    items.push({
      Update: {
        TableName: this.table,
        Key: { pk, sk: keys.modelSk },
        UpdateExpression: plan.next
          ? `SET aliases.#alias = :version, updatedAt = :now${splitSet}${splitRemove ? ` REMOVE ${splitRemove.slice(2)}` : ''}`
          : `REMOVE aliases.#alias${splitRemove} SET updatedAt = :now`,
        ConditionExpression: creates
          ? 'attribute_exists(pk) AND (attribute_not_exists(aliases) OR size(aliases) < :maxAliases)'
          : 'attribute_exists(pk)',
        ExpressionAttributeNames: { '#alias': plan.alias },
        ExpressionAttributeValues: {
          ':now': plan.at,
          ...(plan.next ? { ':version': plan.next.version } : {}),
          ...(splitSet ? { ':split': plan.routingChange } : {}),
          ...(creates ? { ':maxAliases': LIMITS.maxAliasesPerModel } : {}),
        },
      },
    });
    return items;
  }

  /** A split change as a transaction (see `setAliasRouting`). */
  private routingItems(plan: AliasRoutingPlan, hasSplits: boolean, hadRouting: boolean): TxItem[] {
    const pk = keys.modelPk(plan.name);
    const next = plan.next;
    const sets = ['#revision = :revision', '#updatedAt = :at'];
    const removes: string[] = [];
    const values: Record<string, unknown> = {
      ':rev': plan.expectedRevision,
      ':revision': next.revision,
      ':at': next.updatedAt,
    };
    if (next.routing) {
      sets.push('#routing = :routing');
      values[':routing'] = next.routing;
    } else removes.push('#routing');
    if (next.canaryTarget) {
      sets.push('#canaryTarget = :canaryTarget');
      values[':canaryTarget'] = next.canaryTarget;
    } else removes.push('#canaryTarget');
    const items: TxItem[] = [
      {
        Update: {
          TableName: this.table,
          Key: { pk, sk: keys.aliasSk(plan.alias) },
          UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
          ConditionExpression: '#revision = :rev',
          ExpressionAttributeNames: {
            '#revision': 'revision',
            '#updatedAt': 'updatedAt',
            '#routing': 'routing',
            '#canaryTarget': 'canaryTarget',
          },
          ExpressionAttributeValues: values,
        },
      },
      {
        Put: {
          TableName: this.table,
          Item: historyItem(plan.name, plan.history),
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      },
    ];
    if (next.canaryTarget) {
      // The canary is still READY with the capture copied (a concurrent capture change makes this plan again).
      const canary = next.canaryTarget;
      items.push(this.holdItem(plan.name, plan.alias, canary.version, canary.capture, plan.gains));
    }
    if (plan.releases !== undefined) items.push(this.releaseItem(plan.name, plan.alias, plan.releases));
    items.push(
      this.modelSplitsItem(plan.name, plan.alias, plan.at, next.routing ?? null, hasSplits, hadRouting),
    );
    return items;
  }

  /**
   * The check that version `version` still serves as copied (READY, with the capture `readCapture` the alias's copy
   * holds), and, when the alias `gains` it, the alias added to its alias set (which holds it against archive and
   * delete).
   */
  private holdItem(
    name: string,
    alias: string,
    version: number,
    readCapture: CaptureConfig | undefined,
    gains: number | undefined,
  ): TxItem {
    const base = {
      TableName: this.table,
      Key: { pk: keys.modelPk(name), sk: keys.versionSk(version) },
      ConditionExpression: `#status = :ready AND ${readCapture ? '#capture = :capture' : 'attribute_not_exists(#capture)'}`,
      ExpressionAttributeNames: { '#status': 'status', '#capture': 'capture' },
    };
    const values = { ':ready': 'READY', ...(readCapture ? { ':capture': readCapture } : {}) };
    return gains === undefined
      ? { ConditionCheck: { ...base, ExpressionAttributeValues: values } }
      : {
          Update: {
            ...base,
            UpdateExpression: 'ADD aliases :alias',
            ExpressionAttributeValues: { ...values, ':alias': new Set([alias]) },
          },
        };
  }

  /** Alias `alias` taken out of version `version`'s alias set (the version no longer serves it). */
  private releaseItem(name: string, alias: string, version: number): TxItem {
    return {
      Update: {
        TableName: this.table,
        Key: { pk: keys.modelPk(name), sk: keys.versionSk(version) },
        UpdateExpression: 'DELETE aliases :alias',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':alias': new Set([alias]) },
      },
    };
  }

  /**
   * The MODEL item's `splits` map kept in step with an alias's split (`null`: removed). The map is created whole by
   * the first split of the model (conditioned on its absence: two first splits race and one plans again).
   */
  private modelSplitsItem(
    name: string,
    alias: string,
    at: string,
    routing: AliasRouting | null,
    hasSplits: boolean,
    hadRouting: boolean,
  ): TxItem {
    const base = {
      TableName: this.table,
      Key: { pk: keys.modelPk(name), sk: keys.modelSk },
    };
    if (routing && !hasSplits) {
      return {
        Update: {
          ...base,
          UpdateExpression: 'SET splits = :splits, updatedAt = :now',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(splits)',
          ExpressionAttributeValues: { ':splits': { [alias]: routing }, ':now': at },
        },
      };
    }
    if (routing) {
      return {
        Update: {
          ...base,
          UpdateExpression: 'SET splits.#alias = :split, updatedAt = :now',
          ConditionExpression: 'attribute_exists(pk) AND attribute_exists(splits)',
          ExpressionAttributeNames: { '#alias': alias },
          ExpressionAttributeValues: { ':split': routing, ':now': at },
        },
      };
    }
    return {
      Update: {
        ...base,
        UpdateExpression:
          hadRouting && hasSplits ? 'REMOVE splits.#alias SET updatedAt = :now' : 'SET updatedAt = :now',
        ConditionExpression: 'attribute_exists(pk)',
        ...(hadRouting && hasSplits ? { ExpressionAttributeNames: { '#alias': alias } } : {}),
        ExpressionAttributeValues: { ':now': at },
      },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  private get(pk: string, sk: string): Promise<Item | undefined> {
    // A read of an item inside a running transaction can be refused; it is safe to retry.
    return this.retry.run('reading the registry', async () => {
      const out = await this.doc.send(
        new GetCommand({ TableName: this.table, Key: { pk, sk }, ConsistentRead: true }),
      );
      return out.Item;
    });
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
        // Strongly consistent on the table (versions, history); a global secondary index (the models listing) can
        // only be read eventually consistent.
        ...(input.IndexName === undefined ? { ConsistentRead: true } : {}),
        Limit: limit,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    const items = (out.Items ?? []).map(map);
    const last = out.LastEvaluatedKey as PageKey | undefined;
    return last ? { items, nextToken: encodePageToken(last) } : { items };
  }
}

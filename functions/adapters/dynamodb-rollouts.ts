/**
 * RolloutRepository on the registry table (docs/ARCHITECTURE.md, "Data: table keys and S3 layout").
 *
 * One item per alias, `pk = MODEL#{name}`, `sk = ROLLOUT#{alias}`: the alias's current or last rollout. Its state
 * fields are top-level attributes; its divergence counters are the numbers `divRequests`, `divRows`,
 * `divAgreeingRows`, `divOverMaxAbs`, `divOverKl`, `divShadowErrors`, which only `recordDivergence` changes (an
 * `ADD`, conditioned on the rollout's id and an active status), so a transition never overwrites a count.
 *
 * Creation is a Put conditioned on the item being absent, or its status not active and no alias change of its end
 * pending (`aliasPending`, stored only while true); every transition an Update
 * conditioned on the rollout's id and `revision`. While the rollout is active, or ended with its alias change
 * pending, the item carries `gsi1pk = ROLLOUTS`, `gsi1sk = {name}#{alias}` (sparse on gsi1, which the MODEL items
 * use with `gsi1pk = MODELS`), so the controller lists its work with one Query; a transition that settles the
 * rollout removes them.
 */
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { keys, TABLE } from '../contract/table';
import {
  ACTIVE_ROLLOUT_STATUSES,
  type DivergenceCounters,
  isListed,
  type Rollout,
  rolloutInProgress,
  rolloutNotFound,
  staleRollout,
} from '../domain/rollout';
import type { RolloutRepository } from '../ports/rollouts';
import { isConditionFailure } from './dynamodb-contention';

export interface DynamoRolloutRepositoryOptions {
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
}

/** Counter attributes by field of `DivergenceCounters`. */
const COUNTERS = {
  requests: 'divRequests',
  rows: 'divRows',
  agreeingRows: 'divAgreeingRows',
  overMaxAbs: 'divOverMaxAbs',
  overKl: 'divOverKl',
  shadowErrors: 'divShadowErrors',
} as const satisfies Record<keyof DivergenceCounters, string>;

/** The state fields a transition writes (everything but the keys, the spec and the counters). */
const STATE_FIELDS = [
  'status',
  'step',
  'stepStartedAt',
  'updatedAt',
  'endedReason',
  'endedAt',
  'pausedAt',
  'aliasPending',
] as const;

type Item = Record<string, unknown>;

export class DynamoRolloutRepository implements RolloutRepository {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;

  constructor(opts: DynamoRolloutRepositoryOptions) {
    this.doc = opts.doc;
    this.table = opts.table;
  }

  private key(name: string, alias: string) {
    return { [TABLE.partitionKey]: keys.modelPk(name), [TABLE.sortKey]: keys.rolloutSk(alias) };
  }

  async get(name: string, alias: string): Promise<Rollout | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: this.key(name, alias), ConsistentRead: true }),
    );
    return out.Item ? toRollout(out.Item) : undefined;
  }

  async create(rollout: Rollout): Promise<Rollout> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: toItem(rollout),
          // No rollout yet, or the last one is over and settled (no alias change of its end pending).
          ConditionExpression:
            'attribute_not_exists(#pk) OR (NOT (#status IN (:running, :paused)) AND attribute_not_exists(#pending))',
          ExpressionAttributeNames: {
            '#pk': TABLE.partitionKey,
            '#status': 'status',
            '#pending': 'aliasPending',
          },
          ExpressionAttributeValues: { ':running': 'running', ':paused': 'paused' },
        }),
      );
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      const current = await this.get(rollout.name, rollout.alias);
      throw rolloutInProgress(current ?? rollout);
    }
    return rollout;
  }

  async update(rollout: Rollout, expectedRevision: number): Promise<Rollout> {
    const names: Record<string, string> = { '#revision': 'revision', '#id': 'id' };
    const values: Record<string, unknown> = {
      ':expected': expectedRevision,
      ':revision': expectedRevision + 1,
      ':id': rollout.id,
    };
    const sets = ['#revision = :revision'];
    const removes: string[] = [];
    const state = rollout as unknown as Record<string, unknown>;
    for (const field of STATE_FIELDS) {
      names[`#${field}`] = field;
      const value = state[field];
      if (value === undefined || value === false) removes.push(`#${field}`);
      else {
        sets.push(`#${field} = :${field}`);
        values[`:${field}`] = value;
      }
    }
    const idx = TABLE.modelsIndex;
    names['#gpk'] = idx.partitionKey;
    names['#gsk'] = idx.sortKey;
    if (isListed(rollout)) {
      sets.push('#gpk = :gpk', '#gsk = :gsk');
      values[':gpk'] = keys.rolloutsGsiPk;
      values[':gsk'] = keys.rolloutsGsiSk(rollout.name, rollout.alias);
    } else {
      removes.push('#gpk', '#gsk');
    }
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(rollout.name, rollout.alias),
          UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
          ConditionExpression: '#id = :id AND #revision = :expected',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toRollout(out.Attributes as Item);
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      const current = await this.get(rollout.name, rollout.alias);
      if (!current) throw rolloutNotFound(rollout.name, rollout.alias);
      throw staleRollout(rollout, expectedRevision);
    }
  }

  async listActive(): Promise<Rollout[]> {
    const idx = TABLE.modelsIndex;
    const found: Rollout[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: idx.name,
          KeyConditionExpression: '#gpk = :gpk',
          ExpressionAttributeNames: { '#gpk': idx.partitionKey },
          ExpressionAttributeValues: { ':gpk': keys.rolloutsGsiPk },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of out.Items ?? []) found.push(toRollout(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return found;
  }

  async recordDivergence(
    name: string,
    alias: string,
    id: string,
    delta: DivergenceCounters,
  ): Promise<boolean> {
    const names: Record<string, string> = { '#id': 'id', '#status': 'status' };
    const values: Record<string, unknown> = { ':id': id };
    const adds: string[] = [];
    for (const [field, attr] of Object.entries(COUNTERS) as [keyof DivergenceCounters, string][]) {
      names[`#${attr}`] = attr;
      values[`:${attr}`] = delta[field];
      adds.push(`#${attr} :${attr}`);
    }
    ACTIVE_ROLLOUT_STATUSES.forEach((s, i) => {
      values[`:s${i}`] = s;
    });
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(name, alias),
          UpdateExpression: `ADD ${adds.join(', ')}`,
          ConditionExpression: `#id = :id AND #status IN (${ACTIVE_ROLLOUT_STATUSES.map((_s, i) => `:s${i}`).join(', ')})`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (e) {
      if (isConditionFailure(e)) return false;
      throw e;
    }
  }
}

/** The item of a rollout (keys, state, spec, counters, and the listing attributes while listed). */
function toItem(r: Rollout): Item {
  const { divergence, aliasPending, ...rest } = r;
  const item: Item = {
    ...rest,
    ...(aliasPending ? { aliasPending } : {}),
    [TABLE.partitionKey]: keys.modelPk(r.name),
    [TABLE.sortKey]: keys.rolloutSk(r.alias),
  };
  for (const [field, attr] of Object.entries(COUNTERS) as [keyof DivergenceCounters, string][]) {
    item[attr] = divergence[field];
  }
  if (isListed(r)) {
    item[TABLE.modelsIndex.partitionKey] = keys.rolloutsGsiPk;
    item[TABLE.modelsIndex.sortKey] = keys.rolloutsGsiSk(r.name, r.alias);
  }
  return item;
}

/** The rollout of an item. */
function toRollout(item: Item): Rollout {
  const {
    [TABLE.partitionKey]: _pk,
    [TABLE.sortKey]: _sk,
    [TABLE.modelsIndex.partitionKey]: _gpk,
    [TABLE.modelsIndex.sortKey]: _gsk,
    ...rest
  } = item;
  const divergence = {} as Record<keyof DivergenceCounters, number>;
  for (const [field, attr] of Object.entries(COUNTERS) as [keyof DivergenceCounters, string][]) {
    divergence[field] = Number(rest[attr] ?? 0);
    delete rest[attr];
  }
  return { ...(rest as unknown as Omit<Rollout, 'divergence'>), divergence };
}

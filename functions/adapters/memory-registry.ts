/**
 * RegistryRepository in memory: the same port, the same planners (../domain/registry-plans) and the same
 * guarantees as the DynamoDB repository for concurrent callers of one process — version numbers unique and
 * without gaps, alias moves conditional on the revision read, append-only history, pagination tokens checked
 * against their listing — for tests that need a registry without a table (the repository contract suite
 * holds it to the same behaviour as DynamoDB).
 *
 * Every write reads the state its planner needs, yields (as the round trip to a table would, so concurrent
 * callers really interleave), then commits the plan in one synchronous step after checking the plan's
 * conditions against the state as it is now. A caller whose condition no longer holds reads and plans again,
 * exactly like a DynamoDB writer that lost a race. Reads return copies: nothing a caller holds aliases the store.
 */

import { LIMITS } from '../contract/limits';
import type { CaptureConfig } from '../domain/capture';
import { UnavailableError } from '../domain/errors';
import {
  type AliasMovePlan,
  type AliasRoutingChange,
  type AliasRoutingPlan,
  aliasCaptureRefusal,
  assertVersionDeletion,
  assertVersionUpdate,
  patchedVersion,
  planAliasMove,
  planAliasRouting,
  planVersionCompletion,
  planVersionCreation,
  planVersionUpdate,
  recanariedAliases,
  retargetedAliases,
  type VersionCompletionPlan,
  type VersionCreationPlan,
  type VersionState,
  versionNotFound,
} from '../domain/registry-plans';
import { decodePageToken, encodePageToken, type PageKey } from '../domain/registry-rules';
import type {
  AliasMove,
  AliasMoveResult,
  AliasState,
  HistoryEntry,
  HistoryRecord,
  Model,
  ModelVersion,
  NewVersion,
  Page,
  VersionCompletion,
  VersionPatch,
} from '../domain/types';
import { type Clock, type ModelWithSplits, type RegistryRepository, systemClock } from '../ports';

interface ModelData {
  readonly name: string;
  readonly createdAt: string;
  updatedAt: string;
  latestVersion: number;
  firstReadyVersion?: number;
  readonly versions: Map<number, ModelVersion>;
  readonly aliases: Map<string, AliasState>;
  /** Append-only; `seq` orders entries that share time and revision. */
  readonly history: Array<HistoryRecord & { readonly seq: number }>;
}

/** The data of in-memory repositories; repositories built on the same store share it. */
export class MemoryRegistryStore {
  /** @internal */
  readonly models = new Map<string, ModelData>();
  /** @internal */
  seq = 0;
}

export interface MemoryRegistryRepositoryOptions {
  /** @default a new, empty store */
  readonly store?: MemoryRegistryStore;
  /** @default systemClock */
  readonly clock?: Clock;
  /**
   * Attempts of one write that keeps losing races before giving up with a 503.
   * @default 10000
   */
  readonly maxAttempts?: number;
}

/** A write whose plan's conditions no longer held when it was committed: read and plan again. */
class LostRace extends Error {}

/** Lets the other callers run, as a round trip to a table would. */
const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const clone = <T>(value: T): T => structuredClone(value);

export class MemoryRegistryRepository implements RegistryRepository {
  readonly store: MemoryRegistryStore;
  private readonly clock: Clock;
  private readonly maxAttempts: number;

  constructor(opts: MemoryRegistryRepositoryOptions = {}) {
    this.store = opts.store ?? new MemoryRegistryStore();
    this.clock = opts.clock ?? systemClock;
    this.maxAttempts = opts.maxAttempts ?? 10_000;
  }

  // -------------------------------------------------------------------------------------------
  // Versions

  async createVersion(v: NewVersion): Promise<ModelVersion> {
    // Learnt like the DynamoDB repository does: when the alias turns out to exist at commit time.
    let defaultAliasTaken = false;
    return this.untilCommitted(`registering a version of '${v.name}'`, async () => {
      const data = this.store.models.get(v.name);
      const counter = data
        ? {
            latestVersion: data.latestVersion,
            ...(data.firstReadyVersion !== undefined ? { firstReadyVersion: data.firstReadyVersion } : {}),
          }
        : undefined;
      const plan = planVersionCreation(v, { counter, defaultAliasTaken }, this.clock.now().toISOString());
      await yieldTurn();
      if (plan.alias && this.store.models.get(v.name)?.aliases.has(plan.alias.state.alias)) {
        defaultAliasTaken = true;
        throw new LostRace();
      }
      this.commitCreation(plan);
      return clone(plan.version);
    });
  }

  async completeVersion(name: string, version: number, completion: VersionCompletion): Promise<ModelVersion> {
    let defaultAliasTaken = false;
    return this.untilCommitted(`completing version ${version} of '${name}'`, async () => {
      const data = this.store.models.get(name);
      const stored = data?.versions.get(version);
      const plan = planVersionCompletion(
        name,
        version,
        completion,
        {
          stored,
          counter: data
            ? {
                latestVersion: data.latestVersion,
                ...(data.firstReadyVersion !== undefined
                  ? { firstReadyVersion: data.firstReadyVersion }
                  : {}),
              }
            : undefined,
          defaultAliasTaken,
        },
        this.clock.now().toISOString(),
      );
      await yieldTurn();
      if (plan.alias && this.store.models.get(name)?.aliases.has(plan.alias.state.alias)) {
        defaultAliasTaken = true;
        throw new LostRace();
      }
      this.commitCompletion(plan, stored);
      return clone(plan.version);
    });
  }

  async getVersion(name: string, version: number): Promise<ModelVersion | undefined> {
    const v = this.store.models.get(name)?.versions.get(version);
    return v ? clone(v) : undefined;
  }

  async listVersions(name: string, limit: number, nextToken?: string): Promise<Page<ModelVersion>> {
    const versions = [...(this.store.models.get(name)?.versions.values() ?? [])].sort(
      (a, b) => b.version - a.version,
    );
    const after =
      nextToken === undefined ? undefined : decodeCursor(nextToken, { model: name }, { version: 'number' });
    const rest =
      after === undefined ? versions : versions.filter((v) => v.version < (after.version as number));
    return page(rest, limit, (v) => ({ model: name, version: v.version }));
  }

  async updateVersion(name: string, version: number, patch: VersionPatch): Promise<ModelVersion> {
    const plan = planVersionUpdate(patch);
    const data = this.store.models.get(name);
    const stored = data?.versions.get(version);
    if (Object.keys(plan.set).length === 0) {
      if (!stored) throw versionNotFound(name, version);
      return clone(stored);
    }
    assertVersionUpdate(plan, name, version, data && stored ? versionState(data, stored) : undefined);
    const updated = patchedVersion(stored!, clone(plan));
    data!.versions.set(version, updated);
    // A capture change reaches the copies in the aliases pointing at the version, in the same step.
    if (plan.set.capture !== undefined) {
      for (const a of retargetedAliases(version, [...data!.aliases.values()])) {
        const { capture: _old, ...target } = a.target!;
        data!.aliases.set(a.alias, {
          ...a,
          target: { ...target, ...(updated.capture ? { capture: clone(updated.capture) } : {}) },
        });
      }
      // And to the copies in the aliases whose canary it is.
      for (const a of recanariedAliases(version, [...data!.aliases.values()])) {
        const { capture: _old, ...canaryTarget } = a.canaryTarget!;
        data!.aliases.set(a.alias, {
          ...a,
          canaryTarget: { ...canaryTarget, ...(updated.capture ? { capture: clone(updated.capture) } : {}) },
        });
      }
    }
    return clone(updated);
  }

  async deleteVersion(name: string, version: number): Promise<void> {
    const data = this.store.models.get(name);
    const stored = data?.versions.get(version);
    assertVersionDeletion(name, version, data && stored ? versionState(data, stored) : undefined);
    data!.versions.delete(version);
  }

  // -------------------------------------------------------------------------------------------
  // Models

  async getModel(name: string): Promise<Model | undefined> {
    const data = this.store.models.get(name);
    return data ? toModel(data) : undefined;
  }

  async listModels(limit: number, nextToken?: string): Promise<Page<Model>> {
    const names = [...this.store.models.keys()].sort();
    const after = nextToken === undefined ? undefined : decodeCursor(nextToken, {}, { model: 'string' });
    const rest = after === undefined ? names : names.filter((n) => n > (after.model as string));
    const models = rest.map((n) => toModel(this.store.models.get(n)!));
    return page(models, limit, (m) => ({ model: m.name }));
  }

  // -------------------------------------------------------------------------------------------
  // Aliases

  async getAlias(name: string, alias: string): Promise<AliasState | undefined> {
    const a = this.store.models.get(name)?.aliases.get(alias);
    return a ? clone(a) : undefined;
  }

  async moveAlias(move: AliasMove): Promise<AliasMoveResult> {
    return this.untilCommitted(`moving alias '${move.alias}' of '${move.name}'`, async () => {
      const data = this.store.models.get(move.name);
      const alias = data?.aliases.get(move.alias);
      const last = alias
        ? undefined
        : (data?.history ?? []).filter((h) => h.alias === move.alias).sort((a, b) => compareHistory(b, a))[0];
      const lastHistory = last ? { at: last.at, revision: last.revision } : undefined;
      const shadow = move.version === null ? undefined : shadowOf(data, alias);
      const plan = planAliasMove(
        move,
        {
          modelExists: data !== undefined,
          aliasCount: data?.aliases.size ?? 0,
          alias,
          target: move.version === null ? undefined : data?.versions.get(move.version),
          ...(shadow ? { shadow } : {}),
          ...(lastHistory ? { lastHistory } : {}),
        },
        this.clock.now().toISOString(),
      );
      await yieldTurn();
      this.commitMove(plan);
      return plan.result;
    });
  }

  async setAliasCapture(name: string, alias: string, capture: CaptureConfig | null): Promise<AliasState> {
    const data = this.store.models.get(name);
    const current = data?.aliases.get(alias);
    if (!data || !current) throw aliasCaptureRefusal(name, alias, data !== undefined);
    const { capture: _old, ...rest } = current;
    const next: AliasState = { ...rest, ...(capture ? { capture: clone(capture) } : {}) };
    data.aliases.set(alias, next);
    return clone(next);
  }

  async setAliasRouting(change: AliasRoutingChange): Promise<AliasState> {
    return this.untilCommitted(
      `changing the split of alias '${change.alias}' of '${change.name}'`,
      async () => {
        const data = this.store.models.get(change.name);
        const canary = change.routing?.canary?.version;
        const shadow = change.routing?.shadow?.version;
        const plan = planAliasRouting(
          change,
          {
            modelExists: data !== undefined,
            alias: data?.aliases.get(change.alias),
            canary: canary === undefined ? undefined : data?.versions.get(canary),
            shadow: shadow === undefined ? undefined : data?.versions.get(shadow),
          },
          this.clock.now().toISOString(),
        );
        // The split the alias has already: nothing to write, the alias is answered as read.
        if (plan.unchanged) return clone(plan.next);
        await yieldTurn();
        return clone(this.commitRouting(plan));
      },
    );
  }

  async aliasHistory(
    name: string,
    alias: string,
    limit: number,
    nextToken?: string,
  ): Promise<Page<HistoryEntry>> {
    // Newest first: by time, then revision (the order of the DynamoDB sort key), then order of writing.
    const entries = (this.store.models.get(name)?.history ?? [])
      .filter((h) => h.alias === alias)
      .sort((a, b) => compareHistory(b, a));
    const after =
      nextToken === undefined
        ? undefined
        : decodeCursor(
            nextToken,
            { model: name, alias },
            { at: 'string', revision: 'number', seq: 'number' },
          );
    const rest =
      after === undefined
        ? entries
        : entries.filter(
            (h) =>
              compareHistory(h, {
                at: after.at as string,
                revision: after.revision as number,
                seq: after.seq as number,
              }) < 0,
          );
    return page(
      rest,
      limit,
      (h) => ({ model: name, alias, at: h.at, revision: h.revision, seq: h.seq }),
      toHistory,
    );
  }

  async ping(): Promise<void> {}

  // -------------------------------------------------------------------------------------------
  // Commits: check the plan's conditions against the state as it is now, then write it all

  private commitCreation(plan: VersionCreationPlan): void {
    const existing = this.store.models.get(plan.name);
    const counterHolds =
      plan.expectedLatestVersion === undefined
        ? existing === undefined
        : existing !== undefined && existing.latestVersion === plan.expectedLatestVersion;
    if (!counterHolds || existing?.versions.has(plan.version.version)) throw new LostRace();
    const data: ModelData = existing ?? {
      name: plan.name,
      createdAt: plan.at,
      updatedAt: plan.at,
      latestVersion: 0,
      versions: new Map(),
      aliases: new Map(),
      history: [],
    };
    const v = plan.version.version;
    data.latestVersion = v;
    data.updatedAt = plan.at;
    if (plan.firstReady) data.firstReadyVersion = v;
    data.versions.set(v, clone(plan.version));
    if (plan.alias) {
      data.aliases.set(plan.alias.state.alias, clone(plan.alias.state));
      data.history.push({ ...clone(plan.alias.history), seq: ++this.store.seq });
    }
    this.store.models.set(plan.name, data);
  }

  /** `read`: the version the plan was made from; a change of it since (a new record) makes the completion plan again. */
  private commitCompletion(plan: VersionCompletionPlan, read: ModelVersion | undefined): void {
    const data = this.store.models.get(plan.name);
    const stored = data?.versions.get(plan.version.version);
    if (!data || stored?.status !== 'PENDING' || stored !== read) throw new LostRace();
    if (plan.firstReady && data.firstReadyVersion !== undefined) throw new LostRace();
    if (plan.firstReady) data.firstReadyVersion = plan.version.version;
    data.versions.set(plan.version.version, clone(plan.version));
    if (plan.alias) {
      data.aliases.set(plan.alias.state.alias, clone(plan.alias.state));
      data.history.push({ ...clone(plan.alias.history), seq: ++this.store.seq });
      data.updatedAt = plan.at;
    }
  }

  private commitMove(plan: AliasMovePlan): void {
    const data = this.store.models.get(plan.name);
    if (!data) throw new LostRace();
    const revision = data.aliases.get(plan.alias)?.revision ?? 0;
    const target = plan.next ? data.versions.get(plan.next.version) : undefined;
    if (
      revision !== plan.expectedRevision ||
      (plan.next && target?.status !== 'READY') ||
      // Another alias created meanwhile may have taken the last place.
      (revision === 0 && data.aliases.size >= LIMITS.maxAliasesPerModel) ||
      (plan.releases !== undefined && !data.versions.has(plan.releases))
    ) {
      throw new LostRace();
    }
    // The version's capture is still the one the plan copied into the target (a change meanwhile: plan again).
    if (plan.next && !sameCapture(target?.capture, plan.next.target?.capture)) throw new LostRace();
    if (plan.next) {
      // The alias keeps its own capture as it is now (a capture change is not a move: it does not bump the revision),
      // and a canary copy it keeps is the one stored now (a version's capture change rewrites it in place).
      const { capture: _planned, canaryTarget: planned, ...next } = clone(plan.next);
      const stored = data.aliases.get(plan.alias);
      const own = stored?.capture;
      const canaryTarget = planned ? stored?.canaryTarget : undefined;
      data.aliases.set(plan.alias, {
        ...next,
        ...(canaryTarget ? { canaryTarget: clone(canaryTarget) } : {}),
        ...(own ? { capture: clone(own) } : {}),
      });
    } else {
      data.aliases.delete(plan.alias);
    }
    data.history.push({ ...clone(plan.history), seq: ++this.store.seq });
    data.updatedAt = plan.at;
  }

  private commitRouting(plan: AliasRoutingPlan): AliasState {
    const data = this.store.models.get(plan.name);
    const stored = data?.aliases.get(plan.alias);
    if (!data || !stored || stored.revision !== plan.expectedRevision) throw new LostRace();
    const canary = plan.next.canaryTarget;
    if (canary) {
      const v = data.versions.get(canary.version);
      if (v?.status !== 'READY' || !sameCapture(v.capture, canary.capture)) throw new LostRace();
    }
    // The alias's own capture as it is now (not guarded by the revision).
    const { capture: _planned, ...next } = clone(plan.next);
    const state: AliasState = { ...next, ...(stored.capture ? { capture: clone(stored.capture) } : {}) };
    data.aliases.set(plan.alias, state);
    data.history.push({ ...clone(plan.history), seq: ++this.store.seq });
    data.updatedAt = plan.at;
    return state;
  }

  /** Runs a write again while it loses races; 503 after `maxAttempts`. */
  private async untilCommitted<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (e) {
        if (!(e instanceof LostRace)) throw e;
        if (n >= this.maxAttempts) {
          throw new UnavailableError(`${what} did not succeed after ${n} attempts under contention; retry`);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** The version an alias's shadow names, as the DynamoDB repository reads it for a move. */
function shadowOf(data: ModelData | undefined, alias: AliasState | undefined): ModelVersion | undefined {
  const v = alias?.routing?.shadow?.version;
  return v === undefined ? undefined : data?.versions.get(v);
}

function toModel(data: ModelData): Model {
  const aliases = [...data.aliases.values()];
  const splits = Object.fromEntries(
    aliases.filter((a) => a.routing).map((a) => [a.alias, clone(a.routing!)]),
  );
  const model: ModelWithSplits = {
    name: data.name,
    latestVersion: data.latestVersion,
    aliases: Object.fromEntries(aliases.map((a) => [a.alias, a.version])),
    ...(Object.keys(splits).length > 0 ? { splits } : {}),
    createdAt: data.createdAt,
    updatedAt: data.updatedAt,
  };
  return model;
}

function sameCapture(a: CaptureConfig | undefined, b: CaptureConfig | undefined): boolean {
  if (!a || !b) return a === b;
  return a.samplePercent === b.samplePercent && a.input === b.input && a.output === b.output;
}

function toHistory(h: HistoryRecord): HistoryEntry {
  return {
    alias: h.alias,
    version: h.version,
    previousVersion: h.previousVersion,
    at: h.at,
    actor: h.actor,
    ...(h.reason !== undefined ? { reason: h.reason } : {}),
    ...(h.routing !== undefined ? { routing: clone(h.routing) } : {}),
    revision: h.revision,
  };
}

/** The aliases pointing at a version, as the archive and delete rules read them. */
function versionState(data: ModelData, v: ModelVersion): VersionState {
  // An alias holds its stable version and its canary.
  const aliases = [...data.aliases.values()]
    .filter((a) => a.version === v.version || a.routing?.canary?.version === v.version)
    .map((a) => a.alias);
  return { status: v.status, aliases: aliases.sort() };
}

type HistoryKey = { readonly at: string; readonly revision: number; readonly seq: number };

function compareHistory(a: HistoryKey, b: HistoryKey): number {
  if (a.at !== b.at) return a.at < b.at ? -1 : 1;
  if (a.revision !== b.revision) return a.revision - b.revision;
  return a.seq - b.seq;
}

/**
 * A page of `items` (already past the cursor, in listing order). Like a DynamoDB query, a full page carries a
 * token — the position of its last item — even when nothing follows it.
 */
function page<T, R = T>(
  items: readonly T[],
  limit: number,
  cursor: (item: T) => PageKey,
  map: (item: T) => R = (item) => clone(item) as unknown as R,
): Page<R> {
  const taken = items.slice(0, limit);
  const out = taken.map(map);
  const last = taken.at(-1);
  return taken.length === limit && last !== undefined
    ? { items: out, nextToken: encodePageToken(cursor(last)) }
    : { items: out };
}

/**
 * The position a token carries, checked against its listing: exactly the attributes `fixed` (with their values:
 * the same model, the same alias) and `position` (with their types; strings not empty, as DynamoDB's key values).
 * Anything else is a 400 `INVALID_TOKEN`.
 */
function decodeCursor(
  token: string,
  fixed: Readonly<Record<string, string>>,
  position: Readonly<Record<string, 'string' | 'number'>>,
): PageKey {
  return decodePageToken(token, (key) => {
    const attrs = Object.keys(key);
    return (
      attrs.length === Object.keys(fixed).length + Object.keys(position).length &&
      Object.entries(fixed).every(([k, v]) => key[k] === v) &&
      Object.entries(position).every(([k, type]) => typeof key[k] === type && key[k] !== '')
    );
  });
}

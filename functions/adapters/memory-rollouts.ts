/**
 * RolloutRepository in memory, with the DynamoDB repository's guarantees for concurrent callers of one process:
 * creation conditional on no active rollout and no pending end, transitions conditional on the revision (each write
 * yields first, as a round trip to a table would, then checks its condition against the state as it is now),
 * counters added apart from the transitions. Reads return copies. The repository contract suite holds it to the DynamoDB behaviour.
 */
import {
  addCounters,
  type DivergenceCounters,
  isActive,
  isListed,
  type Rollout,
  rolloutInProgress,
  rolloutNotFound,
  staleRollout,
} from '../domain/rollout';
import type { RolloutRepository } from '../ports/rollouts';

const key = (name: string, alias: string) => `${name}\u0000${alias}`;
const copy = (r: Rollout): Rollout => structuredClone(r) as Rollout;
const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class MemoryRolloutRepository implements RolloutRepository {
  private readonly items = new Map<string, Rollout>();

  async get(name: string, alias: string): Promise<Rollout | undefined> {
    await yieldTurn();
    const r = this.items.get(key(name, alias));
    return r ? copy(r) : undefined;
  }

  async create(rollout: Rollout): Promise<Rollout> {
    await yieldTurn();
    const k = key(rollout.name, rollout.alias);
    const current = this.items.get(k);
    // Active, or ended with the alias change of its end pending: in progress either way.
    if (current && isListed(current)) throw rolloutInProgress(current);
    this.items.set(k, copy(rollout));
    return copy(rollout);
  }

  async update(rollout: Rollout, expectedRevision: number): Promise<Rollout> {
    await yieldTurn();
    const k = key(rollout.name, rollout.alias);
    const current = this.items.get(k);
    if (!current) throw rolloutNotFound(rollout.name, rollout.alias);
    if (current.id !== rollout.id || current.revision !== expectedRevision) {
      throw staleRollout(rollout, expectedRevision);
    }
    // The state fields only (as the DynamoDB repository writes them): the spec and the counters stay.
    const { aliasPending: _p, endedReason: _e, endedAt: _a, pausedAt: _pa, ...kept } = current;
    const next: Rollout = {
      ...kept,
      status: rollout.status,
      step: rollout.step,
      stepStartedAt: rollout.stepStartedAt,
      updatedAt: rollout.updatedAt,
      ...(rollout.aliasPending ? { aliasPending: true } : {}),
      ...(rollout.endedReason !== undefined ? { endedReason: rollout.endedReason } : {}),
      ...(rollout.endedAt !== undefined ? { endedAt: rollout.endedAt } : {}),
      ...(rollout.pausedAt !== undefined ? { pausedAt: rollout.pausedAt } : {}),
      revision: expectedRevision + 1,
    };
    this.items.set(k, next);
    return copy(next);
  }

  async listActive(): Promise<Rollout[]> {
    await yieldTurn();
    return [...this.items.values()]
      .filter(isListed)
      .sort((a, b) => (key(a.name, a.alias) < key(b.name, b.alias) ? -1 : 1))
      .map(copy);
  }

  async recordDivergence(
    name: string,
    alias: string,
    id: string,
    delta: DivergenceCounters,
  ): Promise<boolean> {
    await yieldTurn();
    const k = key(name, alias);
    const current = this.items.get(k);
    if (!current || current.id !== id || !isActive(current)) return false;
    this.items.set(k, { ...current, divergence: addCounters(current.divergence, delta) });
    return true;
  }
}

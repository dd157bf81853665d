/**
 * Ports of staged rollouts: where rollouts are kept, and the state of the CloudWatch alarms that roll them back.
 */
import type { DivergenceCounters, Rollout } from '../domain/rollout';

/**
 * Rollouts, one per alias (its current or last one). Every transition is conditional on the rollout's revision, so
 * concurrent controller runs never apply one transition twice.
 */
export interface RolloutRepository {
  /** The alias's current or last rollout; undefined when it never had one. */
  get(name: string, alias: string): Promise<Rollout | undefined>;
  /**
   * Writes a new rollout (its `revision` as given, usually 1), replacing the alias's last one, on condition that
   * the alias has no active (running or paused) rollout and no ended one whose alias change is still pending
   * (`aliasPending`): ConflictError `ROLLOUT_IN_PROGRESS` otherwise.
   */
  create(rollout: Rollout): Promise<Rollout>;
  /**
   * Writes the rollout's state (status, step, timestamps, endedReason, aliasPending, revision = expectedRevision + 1;
   * never the divergence counters) on condition that its revision is `expectedRevision` and its id the same:
   * PreconditionFailedError otherwise (NotFoundError when there is none). Answers the rollout as written (with the
   * counters as stored).
   */
  update(rollout: Rollout, expectedRevision: number): Promise<Rollout>;
  /** The rollouts the controller works on: active ones and ended ones whose alias change is pending. */
  listActive(): Promise<Rollout[]>;
  /**
   * Adds `delta` to the counters of the alias's rollout `id` when it is active (not a transition: the revision
   * stays). Answers false (and adds nothing) when the alias's rollout is another or is over.
   */
  recordDivergence(name: string, alias: string, id: string, delta: DivergenceCounters): Promise<boolean>;
}

/** The state of alarms (CloudWatch in AWS, set by hand locally). */
export interface AlarmStates {
  /** Of `names`, those now in ALARM (unknown alarms are not). */
  inAlarm(names: readonly string[]): Promise<string[]>;
}

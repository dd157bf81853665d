/**
 * AlarmStates in memory: the local stand-in for CloudWatch alarms, whose state is set by hand
 * (`POST /local/alarms/{name}`, `maas alarm`). An alarm never set is not in ALARM.
 */
import type { AlarmStates } from '../ports/rollouts';

/** The states an alarm can be in (CloudWatch's). */
export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

export class LocalAlarmStates implements AlarmStates {
  private readonly states = new Map<string, AlarmState>();

  /** Sets an alarm's state. */
  set(name: string, state: AlarmState): void {
    this.states.set(name, state);
  }

  /** An alarm's state; undefined when it was never set. */
  get(name: string): AlarmState | undefined {
    return this.states.get(name);
  }

  async inAlarm(names: readonly string[]): Promise<string[]> {
    return names.filter((n) => this.states.get(n) === 'ALARM');
  }
}

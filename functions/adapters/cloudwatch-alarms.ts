/**
 * AlarmStates over Amazon CloudWatch: `DescribeAlarms` of the names asked, in chunks of 100 (the API's most per
 * call), metric and composite alarms alike. An alarm that does not exist is not in ALARM.
 */
import { type CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import type { AlarmStates } from '../ports/rollouts';

/** Alarm names per DescribeAlarms call (the API's maximum). */
export const DESCRIBE_ALARMS_CHUNK = 100;

export class CloudWatchAlarmStates implements AlarmStates {
  constructor(private readonly client: Pick<CloudWatchClient, 'send'>) {}

  async inAlarm(names: readonly string[]): Promise<string[]> {
    const unique = [...new Set(names)];
    const firing = new Set<string>();
    for (let i = 0; i < unique.length; i += DESCRIBE_ALARMS_CHUNK) {
      const chunk = unique.slice(i, i + DESCRIBE_ALARMS_CHUNK);
      let token: string | undefined;
      do {
        const out = await this.client.send(
          new DescribeAlarmsCommand({
            AlarmNames: chunk,
            AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
            StateValue: 'ALARM',
            MaxRecords: DESCRIBE_ALARMS_CHUNK,
            ...(token ? { NextToken: token } : {}),
          }),
        );
        for (const a of [...(out.MetricAlarms ?? []), ...(out.CompositeAlarms ?? [])]) {
          if (a.AlarmName) firing.add(a.AlarmName);
        }
        token = out.NextToken;
      } while (token);
    }
    return names.filter((n) => firing.has(n));
  }
}

/**
 * Progressive delivery in the stack: the predict function mirrors shadow traffic to the work queue (MAAS_QUEUE_URL,
 * SendMessage on that queue only), and the alias alarms have the predictable names a rollout lists. Bundling is
 * skipped (Template assertions only).
 */
import { App, Stack } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../functions/contract/env';
import { ALIAS_ALARM_KINDS, aliasAlarmName, MaasAlarms } from '../../infra/constructs/alarms';
import { ALARM_NAME_MAX_LENGTH, MaasValidationError } from '../../infra/constructs/validation';
import type { MaasStack } from '../../infra/maas-stack';
import { buildStack, list, logicalId, NO_BUNDLING, statementsOfRole } from '../helpers/infra-stack';

let stack: MaasStack;
let template: Template;

beforeAll(() => {
  ({ stack, template } = buildStack('Maas', {
    alarms: [{ model: 'iris', alias: 'prod' }],
  }));
}, 120_000);

describe('shadow mirrors', () => {
  it('predict gets the work queue URL and may send to that queue only', () => {
    const res = template.toJSON().Resources;
    const predict = res[logicalId(stack, stack.functions.predict.fn)].Properties;
    const queueId = logicalId(stack, stack.events.queue);
    expect(predict.Environment.Variables[ENV.queueUrl]).toEqual({ Ref: queueId });
    const role = logicalId(stack, stack.functions.predict.fn.role as never);
    const sqs = statementsOfRole(template, role).filter((s) =>
      list(s.Action).some((a) => a.startsWith('sqs:')),
    );
    expect(sqs).toHaveLength(1);
    expect(list(sqs[0]?.Action as string | string[])).toContain('sqs:SendMessage');
    expect(list(sqs[0]?.Action as string | string[]).some((a) => /Receive|Delete|Purge/.test(a))).toBe(false);
    expect(sqs[0]?.Resource).toEqual({ 'Fn::GetAtt': [queueId, 'Arn'] });
  });
});

describe('alias alarm names', () => {
  it('are <stack>-<model>@<alias>-[canary-]error-rate and -latency-p99, as aliasAlarmName and the alarms tell', () => {
    expect(aliasAlarmName('Maas', 'iris', 'prod', 'errorRate')).toBe('Maas-iris@prod-error-rate');
    expect(aliasAlarmName('Maas', 'iris', 'prod', 'latencyP99')).toBe('Maas-iris@prod-latency-p99');
    expect(aliasAlarmName('Maas', 'iris', 'prod', 'canaryErrorRate')).toBe(
      'Maas-iris@prod-canary-error-rate',
    );
    expect(Object.values(ALIAS_ALARM_KINDS)).toEqual([
      'error-rate',
      'latency-p99',
      'canary-error-rate',
      'canary-latency-p99',
    ]);
    // The alias alarms (the stack's own event alarms, on SQS queue metrics, aside: EventPipelines' tests cover them).
    const alarms = (
      Object.values(template.findResources('AWS::CloudWatch::Alarm')) as {
        Properties: { AlarmName?: string; Namespace?: string; Metrics?: unknown; Dimensions?: unknown };
      }[]
    ).filter((a) => !JSON.stringify(a.Properties).includes('"AWS/SQS"'));
    expect(alarms.map((a) => a.Properties.AlarmName).filter((n) => !n?.includes('@'))).toEqual([]);
    const names = alarms.map((a) => a.Properties.AlarmName).sort();
    expect(names).toEqual([
      'Maas-iris@prod-canary-error-rate',
      'Maas-iris@prod-canary-latency-p99',
      'Maas-iris@prod-error-rate',
      'Maas-iris@prod-latency-p99',
    ]);
    // The canary alarms read the canary route's metrics, the others the stable route's.
    for (const a of alarms) {
      const routes = JSON.stringify(a.Properties).match(/"Name":"route","Value":"(\w+)"/g) ?? [];
      expect(routes.length).toBeGreaterThan(0);
      const want = a.Properties.AlarmName?.includes('-canary-') ? 'canary' : 'stable';
      for (const r of routes) expect(r).toContain(`"Value":"${want}"`);
    }
    const created = stack.alarmsFor('mnist', 'canary');
    expect(created.names).toEqual({
      errorRate: 'Maas-mnist@canary-error-rate',
      latencyP99: 'Maas-mnist@canary-latency-p99',
      canaryErrorRate: 'Maas-mnist@canary-canary-error-rate',
      canaryLatencyP99: 'Maas-mnist@canary-canary-latency-p99',
    });
  });

  it('carry the stack name, so two stacks of one account and region do not collide', () => {
    const { template: other } = buildStack('MaasStaging', { alarms: [{ model: 'iris', alias: 'prod' }] });
    other.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'MaasStaging-iris@prod-error-rate' });
  });

  it('longer than CloudWatch allows stop synth, naming the alias prop', () => {
    const app = new App({ context: NO_BUNDLING });
    const s = new Stack(app, 'S'.repeat(128));
    const alarms = new MaasAlarms(s, 'Alarms');
    const model = 'm'.repeat(64);
    const alias = 'a'.repeat(64);
    expect(aliasAlarmName(s.stackName, model, alias, 'latencyP99').length).toBeGreaterThan(
      ALARM_NAME_MAX_LENGTH,
    );
    expect(() => alarms.alarmsFor(model, alias)).toThrow(MaasValidationError);
    expect(() => alarms.alarmsFor(model, alias)).toThrow(
      /invalid prop alias .*CloudWatch allows 255.*Set alias to a shorter name/,
    );
    expect(() => alarms.alarmsFor('iris', alias)).not.toThrow();
  });
});

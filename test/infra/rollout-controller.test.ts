/**
 * The rollout controller in the stack: its function (entry, runtime, environment, no onnxruntime layer), the
 * schedule that ticks it every `rolloutTickMinutes`, the rule that hands it CloudWatch alarms going into ALARM, its
 * least-privilege grants (registry table, DescribeAlarms, PutEvents on the registry bus), the synth-time check of
 * the tick interval, and cdk-nag AwsSolutions. Bundling is skipped (Template assertions only).
 */
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENV, HANDLER_ENTRIES } from '../../functions/contract/env';
import { ALARM_EVENT } from '../../functions/handlers/rollout-controller';
import { createApp, propsFromContext } from '../../infra/app';
import { ALARM_STATE_CHANGE } from '../../infra/constructs/rollout-controller';
import { MaasValidationError } from '../../infra/constructs/validation';
import type { MaasStack } from '../../infra/maas-stack';
import { buildStack, list, logicalId, NO_BUNDLING, statementsOfRole } from '../helpers/infra-stack';

type Resource = { Type: string; Properties: Record<string, unknown> };

let stack: MaasStack;
let template: Template;
let resources: Record<string, Resource>;
let fnId: string;

beforeAll(() => {
  const { stack: s } = createApp(new App({ context: NO_BUNDLING }));
  stack = s;
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Record<string, Resource>;
  fnId = logicalId(stack, stack.rollouts.fn);
}, 120_000);

/** The rules whose targets include the controller. */
const controllerRules = () =>
  Object.entries(resources).filter(
    ([, r]) =>
      r.Type === 'AWS::Events::Rule' &&
      JSON.stringify(r.Properties.Targets ?? []).includes(JSON.stringify({ 'Fn::GetAtt': [fnId, 'Arn'] })),
  );

describe('rollout controller function', () => {
  it('runs the controller entry on Node.js 24, without the onnxruntime layer, with the table and the bus', () => {
    expect(HANDLER_ENTRIES.rolloutController).toBe('functions/handlers/rollout-controller.ts');
    const props = resources[fnId]?.Properties as Record<string, unknown>;
    expect(props).toMatchObject({ Runtime: 'nodejs24.x', Handler: 'index.handler' });
    expect(JSON.stringify(props.Layers ?? [])).not.toContain(logicalId(stack, stack.onnxRuntime.layer));
    expect((props.Environment as { Variables: Record<string, unknown> }).Variables).toMatchObject({
      [ENV.table]: { Ref: logicalId(stack, stack.registryTable.table) },
      [ENV.eventBus]: { Ref: logicalId(stack, stack.events.bus) },
      NODE_OPTIONS: '--enable-source-maps',
    });
  });

  it('is what the construct exposes: the function and both rules', () => {
    const ids = controllerRules()
      .map(([id]) => id)
      .sort();
    expect(ids).toEqual(
      [logicalId(stack, stack.rollouts.scheduleRule), logicalId(stack, stack.rollouts.alarmRule)].sort(),
    );
    expect(stack.rollouts.rolloutTickMinutes).toBe(1);
  });
});

describe('rules', () => {
  it('ticks the controller every minute by default, on the default bus', () => {
    const tick = resources[logicalId(stack, stack.rollouts.scheduleRule)]?.Properties;
    expect(tick?.ScheduleExpression).toBe('rate(1 minute)');
    expect(tick?.State).toBe('ENABLED');
    expect(tick?.EventBusName).toBeUndefined();
    expect(tick?.Targets).toEqual([
      expect.objectContaining({
        Arn: { 'Fn::GetAtt': [fnId, 'Arn'] },
        RetryPolicy: expect.objectContaining({ MaximumRetryAttempts: 2 }),
      }),
    ]);
  });

  it('hands the controller the CloudWatch alarms going into ALARM, and nothing else', () => {
    const rule = resources[logicalId(stack, stack.rollouts.alarmRule)]?.Properties;
    expect(rule?.EventPattern).toEqual({
      source: ['aws.cloudwatch'],
      'detail-type': ['CloudWatch Alarm State Change'],
      detail: { state: { value: ['ALARM'] } },
    });
    // What the controller reads an alarm event as.
    expect(ALARM_STATE_CHANGE).toEqual(ALARM_EVENT);
    // CloudWatch publishes alarm state changes on the account's default bus, not on the registry bus.
    expect(rule?.EventBusName).toBeUndefined();
    expect(rule?.ScheduleExpression).toBeUndefined();
  });

  it('lets EventBridge invoke the controller from each rule (and only from them)', () => {
    const permissions = Object.values(resources).filter(
      (r) =>
        r.Type === 'AWS::Lambda::Permission' &&
        JSON.stringify(r.Properties.FunctionName) === JSON.stringify({ 'Fn::GetAtt': [fnId, 'Arn'] }),
    );
    expect(permissions.map((p) => p.Properties.Principal)).toEqual([
      'events.amazonaws.com',
      'events.amazonaws.com',
    ]);
    expect(permissions.map((p) => JSON.stringify(p.Properties.SourceArn)).sort()).toEqual(
      [stack.rollouts.scheduleRule, stack.rollouts.alarmRule]
        .map((r) => JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, r), 'Arn'] }))
        .sort(),
    );
  });

  it('ticks at the rolloutTickMinutes of the stack', () => {
    const { stack: s, template: t } = buildStack('MaasTick', {
      rolloutTickMinutes: 5,
      capture: { enabled: false },
      dashboard: false,
    });
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(5 minutes)' });
    expect(s.rollouts.rolloutTickMinutes).toBe(5);
  });
});

describe('grants', () => {
  it('reads and writes the registry table, reads alarm states, publishes to the registry bus: nothing more', () => {
    const role = logicalId(stack, stack.rollouts.fn.role as never);
    const statements = statementsOfRole(template, role);
    const actions = statements.flatMap((s) => list(s.Action));
    const tableId = logicalId(stack, stack.registryTable.table);
    const byAction = (action: string) => statements.filter((s) => list(s.Action).includes(action));

    for (const write of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']) {
      expect(
        byAction(write).map((s) => s.Resource),
        write,
      ).toEqual([{ 'Fn::GetAtt': [tableId, 'Arn'] }]);
    }
    // The active rollouts are listed with one Query on the models index.
    expect(JSON.stringify(byAction('dynamodb:Query').map((s) => s.Resource))).toContain('/index/');

    const describe = byAction('cloudwatch:DescribeAlarms');
    expect(describe).toHaveLength(1);
    expect(describe[0]?.Action).toBe('cloudwatch:DescribeAlarms');
    expect(describe[0]?.Resource).toEqual({
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':cloudwatch:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
          ':alarm:*',
        ],
      ],
    });

    const put = byAction('events:PutEvents');
    expect(put).toHaveLength(1);
    expect(put[0]?.Resource).toEqual({ 'Fn::GetAtt': [logicalId(stack, stack.events.bus), 'Arn'] });

    const services = new Set(actions.map((a) => a.split(':')[0]));
    expect([...services].sort()).toEqual(['cloudwatch', 'dynamodb', 'events', 'logs', 'xray']);
    expect(actions.filter((a) => a.startsWith('cloudwatch:'))).toEqual(['cloudwatch:DescribeAlarms']);
    expect(actions.filter((a) => a.startsWith('events:'))).toEqual(['events:PutEvents']);
    expect(actions.some((a) => a.endsWith('*'))).toBe(false);
  });
});

describe('rolloutTickMinutes', () => {
  it('must be a whole number of minutes from 1 to 60, said at synth with the fix', () => {
    for (const bad of [0, 1.5, 61, -1]) {
      const attempt = () =>
        buildStack(`MaasBadTick${String(bad).replace(/\W/g, '')}`, { rolloutTickMinutes: bad });
      expect(attempt, String(bad)).toThrow(MaasValidationError);
      expect(attempt, String(bad)).toThrow(
        new RegExp(
          `invalid prop rolloutTickMinutes '${String(bad).replace('.', '\\.')}'.*Set rolloutTickMinutes to a whole number of minutes from 1 to 60, e\\.g\\. 1\\.`,
        ),
      );
    }
  });

  it('comes from -c rolloutTickMinutes, checked before anything is built', () => {
    expect(
      propsFromContext(new App({ context: { ...NO_BUNDLING, rolloutTickMinutes: '10' } })).rolloutTickMinutes,
    ).toBe(10);
    expect(() => propsFromContext(new App({ context: { rolloutTickMinutes: 'often' } }))).toThrow(
      /Invalid context parameter -c rolloutTickMinutes='often'.*Pass a whole number of minutes from 1 to 60, e\.g\. -c rolloutTickMinutes=1\./,
    );
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding on the controller; it acknowledges only the X-Ray and alarm wildcards', () => {
    const report = new AwsSolutionsChecks().validateScope(stack.rollouts);
    expect(
      report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath)}`),
    ).toEqual([]);
    const acknowledged = stack.rollouts.node.findAll().flatMap((c) =>
      c.node.metadata
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((m) => Object.keys(m.data as object))
        .map((id) => id.replace(/^annotation::/i, ''))
        .filter((id) => id.startsWith('AwsSolutions-')),
    );
    expect(acknowledged.sort()).toEqual([
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:*]',
    ]);
  });
});

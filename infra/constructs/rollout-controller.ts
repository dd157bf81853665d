/**
 * RolloutController: the function that moves staged rollouts along (docs/ARCHITECTURE.md, "Progressive delivery"),
 * and what invokes it.
 *
 * - an EventBridge schedule, every `rolloutTickMinutes`: the controller checks every active rollout (bake times,
 *   the state of its alarms, its divergence counters) and advances, promotes or rolls it back;
 * - a rule on the account's default bus matching CloudWatch's `CloudWatch Alarm State Change` events into `ALARM`:
 *   the controller rolls back at once every rollout naming the alarm (alarms no rollout names are ignored);
 * - a role that may only read and write the registry table (rollout, alias and history items), read alarm states
 *   (`cloudwatch:DescribeAlarms`) and publish to the registry bus.
 * No business logic here.
 */
import { ArnFormat, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ENV, HANDLER_ENTRIES } from '../../functions/contract/env';
import { SERVICE_NAMES } from '../../functions/contract/observability';
import { type FunctionSizing, maasNodejsFunction } from './functions';
import type { RegistryTable } from './model-registry-table';
import type { OnnxRuntimeLayer } from './onnxruntime-layer';
import { checkRolloutTickMinutes } from './validation';

/** The source and detail-type of CloudWatch's alarm state change events (on the default bus). */
export const ALARM_STATE_CHANGE = {
  source: 'aws.cloudwatch',
  detailType: 'CloudWatch Alarm State Change',
} as const;

/** Props of {@link RolloutController}. */
export interface RolloutControllerProps {
  /** The registry table: rollout items, alias items and their history. */
  readonly table: RegistryTable;
  /** The registry event bus: the controller publishes `AliasMoved`, `RolloutRolledBack`, `RolloutCompleted`. */
  readonly bus: events.IEventBus;
  /** The onnxruntime layer, whose runtime and architecture the controller uses (it does not load the layer). */
  readonly onnxRuntime: OnnxRuntimeLayer;
  /**
   * Minutes between two scheduled checks of the active rollouts, a whole number from 1 to 60: bake times are
   * honoured to within this (an alarm rolls back at once, whatever the interval).
   * @default 1
   */
  readonly rolloutTickMinutes?: number;
  /** How the tick interval is named in error messages (the stack's prop). @default 'rolloutTickMinutes' */
  readonly tickPropPath?: string;
  /** Controller sizing. @default 256 MB, 60 seconds */
  readonly controller?: FunctionSizing;
  /** Days of CloudWatch Logs retention. @default ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Active X-Ray tracing. @default true */
  readonly tracing?: boolean;
}

/** Why DescribeAlarms is granted on every alarm of the account and region (cdk-nag AwsSolutions-IAM5). */
const ALARMS_WILDCARD_REASON =
  'A rollout names its alarms when it starts (maas rollout --alarm, any CloudWatch alarm of the account and region, not only the stack’s), so the controller reads the state of alarms unknown at deploy time; DescribeAlarms only reads alarm definitions and states, scoped to alarms of this account and region.';

/**
 * The rollout controller. Throws a `MaasValidationError` at synth for a tick interval that is not a whole number of
 * minutes from 1 to 60, or a memory size outside Lambda's range.
 */
export class RolloutController extends Construct {
  /** The controller function (entry `HANDLER_ENTRIES.rolloutController`; no onnxruntime or tracer layer). */
  readonly fn: NodejsFunction;
  /** Invokes the controller every `rolloutTickMinutes` (EventBridge schedule on the default bus). */
  readonly scheduleRule: events.Rule;
  /** Invokes the controller when a CloudWatch alarm of the account goes into ALARM (default bus). */
  readonly alarmRule: events.Rule;
  /** The tick interval in minutes, as checked. */
  readonly rolloutTickMinutes: number;

  constructor(scope: Construct, id: string, props: RolloutControllerProps) {
    super(scope, id);
    this.rolloutTickMinutes = checkRolloutTickMinutes(props.rolloutTickMinutes ?? 1, {
      prop: props.tickPropPath ?? 'rolloutTickMinutes',
      scope: this,
    });
    this.fn = maasNodejsFunction(this, 'Function', {
      entry: HANDLER_ENTRIES.rolloutController,
      onnxRuntime: props.onnxRuntime,
      sizing: props.controller ?? {},
      sizingProp: 'controller',
      layer: false,
      answersApi: false,
      memorySize: 256,
      timeout: 60,
      environment: {
        [ENV.table]: props.table.table.tableName,
        [ENV.eventBus]: props.bus.eventBusName,
      },
      description: 'maas rollout controller: advances, promotes and rolls back staged rollouts',
      serviceName: SERVICE_NAMES.rolloutController,
      ...(props.logRetention !== undefined ? { logRetention: props.logRetention } : {}),
      ...(props.tracing !== undefined ? { tracing: props.tracing } : {}),
    });

    // A failed invocation is retried by EventBridge; a tick that is still failing is superseded by the next one.
    const target = () =>
      new targets.LambdaFunction(this.fn, {
        retryAttempts: 2,
        maxEventAge: Duration.minutes(Math.max(2, this.rolloutTickMinutes)),
      });
    this.scheduleRule = new events.Rule(this, 'Tick', {
      description: `Checks the active maas rollouts every ${this.rolloutTickMinutes} minute(s)`,
      schedule: events.Schedule.rate(Duration.minutes(this.rolloutTickMinutes)),
      targets: [target()],
    });
    this.alarmRule = new events.Rule(this, 'AlarmInAlarm', {
      description: 'Rolls back at once the maas rollouts naming an alarm that went into ALARM',
      eventPattern: {
        source: [ALARM_STATE_CHANGE.source],
        detailType: [ALARM_STATE_CHANGE.detailType],
        detail: { state: { value: ['ALARM'] } },
      },
      targets: [target()],
    });

    // Rollout items (create, conditional transitions, divergence counters), alias items and their history.
    props.table.grantReadWrite(this.fn);
    const stack = Stack.of(this);
    const readAlarms = new iam.Policy(this, 'ReadAlarms', {
      statements: [
        new iam.PolicyStatement({
          actions: ['cloudwatch:DescribeAlarms'],
          resources: [
            stack.formatArn({
              service: 'cloudwatch',
              resource: 'alarm',
              resourceName: '*',
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          ],
        }),
      ],
    });
    const role = this.fn.role;
    if (!role) throw new Error(`${this.fn.node.path}: the controller has no role`);
    role.attachInlinePolicy(readAlarms);
    Validations.of(readAlarms).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:*]',
      reason: ALARMS_WILDCARD_REASON,
    });
    // AliasMoved, RolloutRolledBack, RolloutCompleted: PutEvents on the registry bus only.
    props.bus.grantPutEventsTo(this.fn);
  }
}

/**
 * MaasAlarms: CloudWatch alarms on the service's metrics of one model's alias (functions/contract/observability.ts:
 * the `[model, alias, route]` dimension set): the server error rate and the p99 latency of its stable route, and
 * the same two of its canary route (the share of a split or a staged rollout: what a rollout should name).
 *
 * Their names are predictable, so that a rollout can name them (`maas rollout … --alarm <name>`): see
 * {@link aliasAlarmName}, e.g. `MaasStack-iris@prod-error-rate`, `MaasStack-iris@prod-canary-error-rate`.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import {
  CANARY_ROUTE,
  INFERENCE_DIMENSION_SETS,
  STABLE_ROUTE,
  type TrafficRoute,
} from '../../functions/contract/observability';
import { maasMetric } from './dashboard';
import {
  checkAlarmEvaluationWindow,
  checkAlarmName,
  checkAliasName,
  checkErrorRate,
  checkEvaluationPeriods,
  checkLatencyMs,
  checkMetricPeriod,
  checkMinRequests,
  checkModelName,
  duplicateAlias,
} from './validation';

/** Thresholds and evaluation of the alarms of one alias. */
export interface AliasAlarmOptions {
  /**
   * The alarm fires above this share of server errors (ServerErrors / Requests), above 0 and at most 1. With few
   * requests one server error is a large share: one 5xx among 10 requests is 10 % (see `minRequests`).
   * @default 0.05 (5 %)
   */
  readonly errorRate?: number;
  /**
   * Fewest requests in a period for the error rate to count: a period with fewer counts as rate 0
   * (`IF(requests >= minRequests, FILL(errors, 0) / requests, 0)`). A whole number from 0.
   * @default 0 (every period with requests counts)
   */
  readonly minRequests?: number;
  /** The alarm fires when the p99 of Latency is above this many milliseconds (above 0). @default 1000 */
  readonly p99Ms?: number;
  /**
   * Consecutive periods over the threshold before an alarm fires (a whole number from 1; `period ×
   * evaluationPeriods` at most one day when the period is under one hour, else at most seven days).
   * @default 3
   */
  readonly evaluationPeriods?: number;
  /** Period of the metrics: whole minutes. @default Duration.minutes(1) */
  readonly period?: Duration;
  /** Where an alarm notifies when it fires and when it recovers (e.g. an SNS topic action). @default - none */
  readonly actions?: readonly cloudwatch.IAlarmAction[];
}

/** The alarms of one model's alias. */
export interface AliasAlarms {
  /** Stable route: ServerErrors / Requests above `errorRate`; named `aliasAlarmName(…, 'errorRate')`. */
  readonly errorRate: cloudwatch.Alarm;
  /** Stable route: Latency p99 above `p99Ms`; named `aliasAlarmName(…, 'latencyP99')`. */
  readonly latencyP99: cloudwatch.Alarm;
  /**
   * Canary route (a split's canary, a rollout's new version): the same error rate; named
   * `aliasAlarmName(…, 'canaryErrorRate')`. Missing data is not breaching: without a canary it stays OK.
   */
  readonly canaryErrorRate: cloudwatch.Alarm;
  /** Canary route: the same latency p99; named `aliasAlarmName(…, 'canaryLatencyP99')`. */
  readonly canaryLatencyP99: cloudwatch.Alarm;
  /** Their names (plain strings, known at synth): what a rollout's `alarms` list. */
  readonly names: { readonly [K in keyof typeof ALIAS_ALARM_KINDS]: string };
}

/** One alias to watch, as the stack's `alarms` prop lists it. */
export interface AliasAlarmSpec extends AliasAlarmOptions {
  /** The model name. */
  readonly model: string;
  /** The alias name (`prod`). */
  readonly alias: string;
}

/** Props of {@link MaasAlarms}. */
export interface MaasAlarmsProps {
  /** Aliases to create alarms for at construction; {@link MaasAlarms.alarmsFor} adds more. @default - none */
  readonly aliases?: readonly AliasAlarmSpec[];
  /**
   * How {@link aliases} is named in error messages: `alarms` makes them `alarms[0].errorRate`, as the stack's
   * `alarms` prop names them.
   * @default 'aliases'
   */
  readonly propPath?: string;
}

/** The alarms of an alias, as their names end. */
export const ALIAS_ALARM_KINDS = {
  errorRate: 'error-rate',
  latencyP99: 'latency-p99',
  canaryErrorRate: 'canary-error-rate',
  canaryLatencyP99: 'canary-latency-p99',
} as const;

/**
 * The name of an alarm of `model@alias` in stack `stackName`: `<stackName>-<model>@<alias>-<kind>`, kind
 * `error-rate`, `latency-p99`, `canary-error-rate` or `canary-latency-p99` ({@link ALIAS_ALARM_KINDS}); e.g.
 * `MaasStack-iris@prod-error-rate`. Model and alias
 * names hold no `@`, so a name tells its model and alias apart; the stack name keeps two stacks of one account and
 * region apart. These are the names a rollout's `alarms` list (`maas rollout … --alarm <name>`).
 */
export function aliasAlarmName(
  stackName: string,
  model: string,
  alias: string,
  kind: keyof typeof ALIAS_ALARM_KINDS,
): string {
  return `${stackName}-${model}@${alias}-${ALIAS_ALARM_KINDS[kind]}`;
}

/** The dimension set the alarms read: `[model, alias, route]`, the third of INFERENCE_DIMENSION_SETS. */
const ALIAS_DIMENSIONS = INFERENCE_DIMENSION_SETS[2];

/**
 * Alarms per model alias: error rate and p99 latency, missing data not breaching (no traffic is no alarm). Throws
 * a `MaasValidationError` at synth for an invalid model or alias name, threshold, period or evaluation count, an
 * evaluation window (`period × evaluationPeriods`) longer than CloudWatch allows, or an alias alarmed twice.
 */
export class MaasAlarms extends Construct {
  /** Every alarm created, by `model@alias`. */
  readonly byAlias = new Map<string, AliasAlarms>();

  constructor(scope: Construct, id: string, props: MaasAlarmsProps = {}) {
    super(scope, id);
    const path = props.propPath ?? 'aliases';
    (props.aliases ?? []).forEach((spec, i) => {
      this.create(spec.model, spec.alias, spec, `${path}[${i}].`);
    });
  }

  /** Creates the alarms of `model@alias` (once per alias) and returns them. */
  alarmsFor(model: string, alias: string, options: AliasAlarmOptions = {}): AliasAlarms {
    return this.create(model, alias, options, '');
  }

  private create(model: string, alias: string, o: AliasAlarmOptions, at: string): AliasAlarms {
    const setting = (prop: string) => ({ prop: `${at}${prop}`, scope: this });
    checkModelName(model, setting('model'));
    checkAliasName(alias, setting('alias'));
    const errorRate = checkErrorRate(o.errorRate ?? 0.05, setting('errorRate'));
    const p99Ms = checkLatencyMs(o.p99Ms ?? 1000, setting('p99Ms'));
    const minRequests = checkMinRequests(o.minRequests ?? 0, setting('minRequests'));
    const evaluationPeriods = checkEvaluationPeriods(o.evaluationPeriods ?? 3, setting('evaluationPeriods'));
    const period = checkMetricPeriod(o.period ?? Duration.minutes(1), setting('period'));
    checkAlarmEvaluationWindow(period, evaluationPeriods, setting('evaluationPeriods'));
    const key = `${model}@${alias}`;
    if (this.byAlias.has(key)) duplicateAlias(key, setting('alias'));
    const stackName = Stack.of(this).stackName;
    const names = Object.fromEntries(
      (Object.keys(ALIAS_ALARM_KINDS) as (keyof typeof ALIAS_ALARM_KINDS)[]).map((kind) => [
        kind,
        checkAlarmName(aliasAlarmName(stackName, model, alias, kind), setting('alias')),
      ]),
    ) as AliasAlarms['names'];
    // 0.07 * 100 is 7.000000000000001 in binary floating point: the description shows 7.
    const percent = Math.round(errorRate * 1e6) / 1e4;
    // A period with requests but no ServerErrors datapoint counts 0 errors; with minRequests, a period with fewer
    // requests counts rate 0.
    const rate = 'FILL(errors, 0) / requests';

    /** The error-rate and latency alarms of one route of the alias. */
    const routeAlarms = (route: TrafficRoute, idPrefix: string, errorName: string, latencyName: string) => {
      const dims: Record<(typeof ALIAS_DIMENSIONS)[number], string> = { model, alias, route };
      const label = route === STABLE_ROUTE ? key : `${key} ${route}`;
      const errors = new cloudwatch.Alarm(this, `${idPrefix}ErrorRate`, {
        alarmName: errorName,
        alarmDescription: `maas ${label}: server errors above ${percent} % of requests${minRequests > 0 ? ` (periods of at least ${minRequests} requests)` : ''} (${evaluationPeriods} × ${period.toHumanString()})`,
        metric: new cloudwatch.MathExpression({
          expression: minRequests > 0 ? `IF(requests >= ${minRequests}, ${rate}, 0)` : rate,
          usingMetrics: {
            errors: maasMetric('ServerErrors', dims, { statistic: 'Sum', period }),
            requests: maasMetric('Requests', dims, { statistic: 'Sum', period }),
          },
          label: `${label} server error rate`,
          period,
        }),
        threshold: errorRate,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      const latency = new cloudwatch.Alarm(this, `${idPrefix}LatencyP99`, {
        alarmName: latencyName,
        alarmDescription: `maas ${label}: Latency p99 above ${p99Ms} ms (${evaluationPeriods} × ${period.toHumanString()})`,
        metric: maasMetric('Latency', dims, { statistic: 'p99', period }),
        threshold: p99Ms,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      return [errors, latency] as const;
    };
    // Names hold no '/', so `model@alias` is a construct id of its own (CDK hashes it into unique logical ids).
    const [errors, latency] = routeAlarms(STABLE_ROUTE, key, names.errorRate, names.latencyP99);
    const [canaryErrors, canaryLatency] = routeAlarms(
      CANARY_ROUTE,
      `${key}Canary`,
      names.canaryErrorRate,
      names.canaryLatencyP99,
    );
    for (const action of o.actions ?? []) {
      for (const alarm of [errors, latency, canaryErrors, canaryLatency]) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
    const alarms = {
      errorRate: errors,
      latencyP99: latency,
      canaryErrorRate: canaryErrors,
      canaryLatencyP99: canaryLatency,
      names,
    };
    this.byAlias.set(key, alarms);
    return alarms;
  }
}

/**
 * MaasDashboard: one CloudWatch dashboard of the service's metrics (functions/contract/observability.ts: namespace,
 * metric names, units and dimension sets), per model when the models are named, else over every model with
 * SEARCH expressions, plus the predict function's throttles.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import {
  INFERENCE_DIMENSION_SETS,
  METRICS,
  METRICS_NAMESPACE,
  type MetricName,
  REGISTRY_DIMENSION_SETS,
} from '../../functions/contract/observability';
import { checkMetricPeriod, checkModelName } from './validation';

/** The CloudWatch unit of a contract metric. */
export function metricUnit(name: MetricName): cloudwatch.Unit {
  const unit: Record<(typeof METRICS)[MetricName], cloudwatch.Unit> = {
    Count: cloudwatch.Unit.COUNT,
    Milliseconds: cloudwatch.Unit.MILLISECONDS,
    Bytes: cloudwatch.Unit.BYTES,
  };
  return unit[METRICS[name]];
}

/** One contract metric of the `maas` namespace, with its unit. */
export function maasMetric(
  name: MetricName,
  dimensionsMap: Readonly<Record<string, string>>,
  options: { readonly statistic: string; readonly period: Duration; readonly label?: string },
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName: name,
    dimensionsMap: { ...dimensionsMap },
    unit: metricUnit(name),
    statistic: options.statistic,
    period: options.period,
    ...(options.label ? { label: options.label } : {}),
  });
}

/** The `[model]` dimension set of the inference metrics (the first of INFERENCE_DIMENSION_SETS). */
const MODEL_DIMENSIONS: readonly string[] = INFERENCE_DIMENSION_SETS[0];
/** The registry's dimension set (`operation`). */
const OPERATION_DIMENSIONS: readonly string[] = REGISTRY_DIMENSION_SETS[0];

/**
 * A SEARCH over every value of a dimension set: `SEARCH('{maas,model} MetricName="Requests"', 'Sum', 60)`, one
 * line per model (the schema matches metrics with exactly these dimensions). Each line is labelled with its
 * dimension's value and `suffix` (`${PROP('Dim.model')} p99`), so that the lines of two statistics are told apart.
 */
function search(
  name: MetricName,
  dimensions: readonly string[],
  statistic: string,
  period: Duration,
  suffix: string,
): cloudwatch.SearchExpression {
  const schema = [METRICS_NAMESPACE, ...dimensions].join(',');
  const label = [...dimensions.map((d) => `\${PROP('Dim.${d}')}`), suffix].filter(Boolean).join(' ');
  return new cloudwatch.SearchExpression({
    expression: `SEARCH('{${schema}} MetricName="${name}"', '${statistic}', ${period.toSeconds()})`,
    label,
    period,
  });
}

/** Props of {@link MaasDashboard}. */
export interface MaasDashboardProps {
  /**
   * Models to chart one by one (each a valid model name, checked at synth).
   * @default - none: every widget charts all models with a SEARCH expression (one line per model)
   */
  readonly models?: readonly string[];
  /** Period of every widget: whole minutes (the metrics have one-minute resolution). @default Duration.minutes(1) */
  readonly period?: Duration;
  /** The functions whose Lambda metrics are charted: the predict function's throttles. */
  readonly functions: {
    /** The predict function. */
    readonly predict: lambda.IFunction;
  };
  /** @default - CloudFormation generates one */
  readonly dashboardName?: string;
  /**
   * How the props are named in error messages: `dashboard` makes them `dashboard.models[1]`, as the stack's
   * `dashboard` prop names them.
   * @default - the construct's own names (`models[1]`)
   */
  readonly propPath?: string;
}

/**
 * Requests, ClientErrors + ServerErrors, Latency p50/p99, InferenceLatency p50/p99, ColdStart (by model), the
 * registry's requests by operation, and the predict function's Throttles. Throws a `MaasValidationError` at synth
 * for an invalid model name or period.
 */
export class MaasDashboard extends Construct {
  /** The dashboard. */
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MaasDashboardProps) {
    super(scope, id);
    const prop = (name: string) => ({
      prop: props.propPath ? `${props.propPath}.${name}` : name,
      scope: this,
    });
    const period = checkMetricPeriod(props.period ?? Duration.minutes(1), prop('period'));
    const models = (props.models ?? []).map((m, i) => checkModelName(m, prop(`models[${i}]`)));

    /** One line per named model, or one SEARCH over every model. */
    const lines = (name: MetricName, statistic: string, suffix = ''): cloudwatch.IMetric[] =>
      models.length > 0
        ? models.map((model) =>
            maasMetric(name, { model }, { statistic, period, label: `${model}${suffix}` }),
          )
        : [search(name, MODEL_DIMENSIONS, statistic, period, suffix.trim())];

    const graph = (title: string, left: cloudwatch.IMetric[], unit?: string) =>
      new cloudwatch.GraphWidget({
        title,
        left,
        width: 12,
        height: 6,
        period,
        ...(unit ? { leftYAxis: { label: unit, showUnits: false, min: 0 } } : {}),
      });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      ...(props.dashboardName ? { dashboardName: props.dashboardName } : {}),
      defaultInterval: Duration.hours(3),
    });
    const scopeNote = models.length > 0 ? models.join(', ') : 'all models';
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown: `# maas\nInference metrics of ${scopeNote} (namespace \`${METRICS_NAMESPACE}\`, by \`model\`), the registry's requests by operation and the predict function's throttles.`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      graph('Requests', lines('Requests', 'Sum'), 'count'),
      graph(
        'ClientErrors (4xx) and ServerErrors (5xx)',
        [...lines('ClientErrors', 'Sum', ' 4xx'), ...lines('ServerErrors', 'Sum', ' 5xx')],
        'count',
      ),
    );
    this.dashboard.addWidgets(
      graph(
        'Latency p50 / p99',
        [...lines('Latency', 'p50', ' p50'), ...lines('Latency', 'p99', ' p99')],
        'ms',
      ),
      graph(
        'InferenceLatency p50 / p99',
        [...lines('InferenceLatency', 'p50', ' p50'), ...lines('InferenceLatency', 'p99', ' p99')],
        'ms',
      ),
    );
    this.dashboard.addWidgets(
      graph('ColdStart', lines('ColdStart', 'Sum'), 'count'),
      graph(
        'Predict function Throttles',
        [props.functions.predict.metricThrottles({ period, statistic: 'Sum', label: 'Throttles' })],
        'count',
      ),
    );
    this.dashboard.addWidgets(
      graph(
        'Registry requests by operation',
        [search('Requests', OPERATION_DIMENSIONS, 'Sum', period, '')],
        'count',
      ),
      graph(
        'Registry ServerErrors by operation',
        [search('ServerErrors', OPERATION_DIMENSIONS, 'Sum', period, '')],
        'count',
      ),
    );
  }
}

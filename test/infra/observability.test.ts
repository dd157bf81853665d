/**
 * Observability in the stack: X-Ray tracing of the functions, capture delivery (subscription filters on the
 * predict and worker log groups -> Firehose -> `capture/` of the model store) and its least-privilege roles, the
 * async function's feedback and capture grants, the dashboard, the alias alarms, their synth-time checks, and
 * cdk-nag AwsSolutions. Names come from functions/contract/observability.ts. Bundling is skipped.
 */
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CAPTURE_KEYS,
  CAPTURE_LOG_FILTER_PATTERN,
  METRICS_NAMESPACE,
  SERVICE_NAMES,
  STABLE_ROUTE,
} from '../../functions/contract/observability';
import { parseCaptureKey } from '../../functions/domain/capture-listing';
import { createApp } from '../../infra/app';
import { MaasAlarms } from '../../infra/constructs/alarms';
import { CAPTURE_OUTPUT_PREFIX, CaptureDelivery } from '../../infra/constructs/capture-delivery';
import { MaasDashboard } from '../../infra/constructs/dashboard';
import { ModelStore } from '../../infra/constructs/model-store';
import { MaasValidationError } from '../../infra/constructs/validation';
import { MaasStack, type MaasStackProps } from '../../infra/maas-stack';
import { buildStack, list, logicalId, NO_BUNDLING, statementsOfRole } from '../helpers/infra-stack';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

let stack: MaasStack;
let template: Template;
let res: Resources;
let plain: { stack: MaasStack; template: Template };

beforeAll(() => {
  // The default stack of `cdk synth`, plus alarms from the prop and from alarmsFor.
  const { app, stack: s } = createApp(new App({ context: NO_BUNDLING }));
  stack = s;
  stack.alarmsFor('mnist', 'canary', {
    errorRate: 0.2,
    p99Ms: 250,
    evaluationPeriods: 5,
    period: Duration.minutes(5),
  });
  template = Template.fromStack(stack);
  res = template.toJSON().Resources as Resources;
  void app;
  // Everything switched off, and a dashboard of named models.
  plain = buildStack('MaasPlain', {
    tracing: false,
    capture: { enabled: false },
    dashboard: { models: ['iris', 'mnist'], period: Duration.minutes(5), dashboardName: 'maas-models' },
    alarms: [{ model: 'iris', alias: 'prod', errorRate: 0.01, p99Ms: 400 }],
  });
}, 120_000);

const maasFunctions = (s: MaasStack) => ({
  predict: s.functions.predict.fn,
  registry: s.functions.registry.fn,
  s3Events: s.events.s3EventsFunction,
  worker: s.events.workerFunction,
  asyncApi: s.events.asyncApiFunction,
  rolloutController: s.rollouts.fn,
});

describe('tracing', () => {
  it('is active on every function by default, each named for Powertools as its log lines name it', () => {
    for (const [which, fn] of Object.entries(maasFunctions(stack))) {
      const props = res[logicalId(stack, fn)]?.Properties as {
        TracingConfig?: { Mode: string };
        Environment: { Variables: Record<string, unknown> };
      };
      expect(props.TracingConfig, which).toEqual({ Mode: 'Active' });
      expect(props.Environment.Variables.POWERTOOLS_SERVICE_NAME, which).toBe(
        SERVICE_NAMES[which as keyof typeof SERVICE_NAMES],
      );
      expect(props.Environment.Variables.POWERTOOLS_TRACE_ENABLED, which).toBeUndefined();
      const role = fn.role;
      if (!role) throw new Error('function without role');
      const xray = statementsOfRole(template, logicalId(stack, role)).filter((st) =>
        list(st.Action).some((a) => a.startsWith('xray:')),
      );
      expect(xray, which).toEqual([
        expect.objectContaining({
          Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
          Resource: '*',
        }),
      ]);
    }
  });

  it('tracing: false leaves X-Ray off, turns the Powertools tracer off and grants no X-Ray action', () => {
    const t = plain.template.toJSON().Resources as Resources;
    for (const [which, fn] of Object.entries(maasFunctions(plain.stack))) {
      const props = t[logicalId(plain.stack, fn)]?.Properties as {
        TracingConfig?: unknown;
        Environment: { Variables: Record<string, unknown> };
      };
      expect(props.TracingConfig, which).toBeUndefined();
      expect(props.Environment.Variables.POWERTOOLS_TRACE_ENABLED, which).toBe('false');
    }
    expect(JSON.stringify(plain.template.findResources('AWS::IAM::Policy'))).not.toContain('xray:');
  });
});

describe('tracer layer', () => {
  const layersOf = (t: Template, s: Stack, fn: { node: { defaultChild?: unknown } }) =>
    ((t.toJSON().Resources as Resources)[logicalId(s, fn)]?.Properties.Layers ?? []) as unknown[];
  const layerVersions = (t: Template) =>
    Object.values(t.findResources('AWS::Lambda::LayerVersion')).map(
      (r) => (r as { Properties: { Description: string } }).Properties.Description,
    );

  it('is attached to the functions that load the Powertools Tracer when traced (predict, registry), after onnxruntime', () => {
    const tracer = stack.tracer;
    if (!tracer) throw new Error('tracing is on by default');
    expect(stack.functions.tracerLayer).toBe(tracer);
    const tracerRef = { Ref: logicalId(stack, tracer.layer) };
    const onnxRef = { Ref: logicalId(stack, stack.onnxRuntime.layer) };
    for (const fn of [stack.functions.predict.fn, stack.functions.registry.fn]) {
      expect(layersOf(template, stack, fn)).toEqual([onnxRef, tracerRef]);
    }
    // The event functions never load the tracer: their Lambda-level tracing needs no layer.
    for (const fn of [
      stack.events.s3EventsFunction,
      stack.events.workerFunction,
      stack.events.asyncApiFunction,
    ]) {
      expect(layersOf(template, stack, fn)).not.toContainEqual(tracerRef);
    }
  });

  it('is one layer version for Node.js 24 on both architectures, named with the tracer version', () => {
    const tracer = stack.tracer;
    if (!tracer) throw new Error('tracing is on by default');
    template.hasResourceProperties('AWS::Lambda::LayerVersion', {
      CompatibleRuntimes: ['nodejs24.x'],
      CompatibleArchitectures: ['x86_64', 'arm64'],
      Description: Match.stringLikeRegexp(`^@aws-lambda-powertools/tracer ${tracer.version} `),
    });
    expect(layerVersions(template).filter((d) => d.startsWith('@aws-lambda-powertools/tracer'))).toHaveLength(
      1,
    );
  });

  it('tracing: false builds no tracer layer and attaches only onnxruntime', () => {
    expect(plain.stack.tracer).toBeUndefined();
    expect(plain.stack.functions.tracerLayer).toBeUndefined();
    expect(layerVersions(plain.template).some((d) => d.includes('tracer'))).toBe(false);
    const onnxRef = { Ref: logicalId(plain.stack, plain.stack.onnxRuntime.layer) };
    for (const fn of [plain.stack.functions.predict.fn, plain.stack.functions.registry.fn]) {
      expect(layersOf(plain.template, plain.stack, fn)).toEqual([onnxRef]);
    }
  });
});

describe('capture delivery', () => {
  const capture = () => {
    if (!stack.capture) throw new Error('capture is on by default');
    return stack.capture;
  };

  it('subscribes the predict and worker log groups (the functions’ own) with the contract pattern', () => {
    const filters = Object.values(template.findResources('AWS::Logs::SubscriptionFilter')).map(
      (f) => (f as { Properties: Record<string, unknown> }).Properties,
    );
    const streamArn = { 'Fn::GetAtt': [logicalId(stack, capture().deliveryStream), 'Arn'] };
    const roleArn = { 'Fn::GetAtt': [logicalId(stack, capture().subscriptionRole), 'Arn'] };
    const logGroupOf = (fn: { logGroup: unknown }) => ({
      Ref: logicalId(stack, fn.logGroup as { node: { defaultChild?: unknown } }),
    });
    expect(filters).toHaveLength(2);
    for (const f of filters) {
      expect(f.FilterPattern).toBe(CAPTURE_LOG_FILTER_PATTERN);
      expect(f.DestinationArn).toEqual(streamArn);
      expect(f.RoleArn).toEqual(roleArn);
    }
    expect(filters.map((f) => f.LogGroupName)).toEqual([
      logGroupOf(stack.functions.predict),
      logGroupOf(stack.events.workerFunction),
    ]);
    // These are the explicit log groups the functions log to, with their retention.
    for (const f of filters) {
      const group = res[(f.LogGroupName as { Ref: string }).Ref];
      expect(group?.Type).toBe('AWS::Logs::LogGroup');
      expect(group?.Properties.RetentionInDays).toBe(30);
    }
  });

  it('Firehose decompresses, extracts the messages, splits them per capture line, partitions by model and version, appends newlines, writes .jsonl', () => {
    template.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', {
      DeliveryStreamType: 'DirectPut',
      DeliveryStreamEncryptionConfigurationInput: { KeyType: 'AWS_OWNED_CMK' },
      ExtendedS3DestinationConfiguration: Match.objectLike({
        BucketARN: { 'Fn::GetAtt': [logicalId(stack, stack.store.bucket), 'Arn'] },
        RoleARN: { 'Fn::GetAtt': [logicalId(stack, capture().deliveryRole), 'Arn'] },
        Prefix: CAPTURE_OUTPUT_PREFIX,
        ErrorOutputPrefix: 'capture-errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/',
        FileExtension: '.jsonl',
        BufferingHints: { IntervalInSeconds: 60, SizeInMBs: 64 },
        DynamicPartitioningConfiguration: { Enabled: true },
        ProcessingConfiguration: {
          Enabled: true,
          Processors: [
            {
              Type: 'Decompression',
              Parameters: [{ ParameterName: 'CompressionFormat', ParameterValue: 'GZIP' }],
            },
            {
              Type: 'CloudWatchLogProcessing',
              Parameters: [{ ParameterName: 'DataMessageExtraction', ParameterValue: 'true' }],
            },
            // One record per capture line before the partition keys are taken.
            {
              Type: 'RecordDeAggregation',
              Parameters: [{ ParameterName: 'SubRecordType', ParameterValue: 'JSON' }],
            },
            {
              Type: 'MetadataExtraction',
              Parameters: [
                {
                  ParameterName: 'MetadataExtractionQuery',
                  ParameterValue: '{"model":.model,"version":(.version|tostring)}',
                },
                { ParameterName: 'JsonParsingEngine', ParameterValue: 'JQ-1.6' },
              ],
            },
            { Type: 'AppendDelimiterToRecord' },
          ],
        },
      }),
    });
  });

  it('names objects the capture listing reads', () => {
    // Firehose appends `<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>` and the file extension to the prefix.
    const [stream] = Object.values(template.findResources('AWS::KinesisFirehose::DeliveryStream')) as {
      Properties: { ExtendedS3DestinationConfiguration: { FileExtension?: string } };
    }[];
    const extension = stream?.Properties.ExtendedS3DestinationConfiguration.FileExtension ?? '';
    const prefix = CAPTURE_OUTPUT_PREFIX.replace('!{partitionKeyFromQuery:model}', 'iris')
      .replace('!{partitionKeyFromQuery:version}', '3')
      .replace('!{timestamp:yyyy/MM/dd/HH}', '2026/01/05/07');
    const key = `${prefix}maas-capture-1-2026-01-05-07-30-00-0b1e6f4c-1f2a-4e8b-9c3d-5a6b7c8d9e0f${extension}`;
    expect(parseCaptureKey(key, 'iris')).toEqual({ version: 3, hour: '2026/01/05/07' });
  });

  it('the delivery stream is created after its role’s policy, each subscription filter after its role’s policy', () => {
    const dependsOn = (id: string) => (res[id] as { DependsOn?: string[] }).DependsOn ?? [];
    const policyOf = (role: { node: { tryFindChild(id: string): unknown } }) => {
      const policy = role.node.tryFindChild('DefaultPolicy') as
        | { node: { defaultChild?: unknown } }
        | undefined;
      if (!policy) throw new Error('role without default policy');
      return logicalId(stack, policy);
    };
    const deliveryPolicy = policyOf(capture().deliveryRole);
    const subscriptionPolicy = policyOf(capture().subscriptionRole);
    expect(dependsOn(logicalId(stack, capture().deliveryStream))).toContain(deliveryPolicy);
    const filters = [...capture().subscriptionFilters.values()];
    expect(filters).toHaveLength(2);
    for (const f of filters) expect(dependsOn(logicalId(stack, f))).toContain(subscriptionPolicy);
  });

  it('acknowledges the unused Firehose CIDR mapping, the only unreferenced mapping of the template', () => {
    const json = template.toJSON() as { Mappings?: Record<string, unknown> };
    const referenced = new Set(
      [...JSON.stringify(json).matchAll(/"Fn::FindInMap":\["([^"]+)"/g)].map((m) => m[1]),
    );
    const unreferenced = Object.keys(json.Mappings ?? {}).filter((m) => !referenced.has(m));
    expect(unreferenced).toEqual(['awscdkawskinesisfirehoseCidrBlocks']);
    const acks = stack.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.keys(m.data as object));
    expect(acks).toContain('CloudFormation-Validate::W7001');
  });

  it('writes the keys CAPTURE_KEYS.captureHour names', () => {
    const at = new Date(Date.UTC(2026, 0, 5, 7, 30));
    const pad = (n: number) => String(n).padStart(2, '0');
    // Firehose's substitution: partition keys from the JQ query, the arrival hour in UTC.
    const key = CAPTURE_OUTPUT_PREFIX.replace('!{partitionKeyFromQuery:model}', 'iris')
      .replace('!{partitionKeyFromQuery:version}', '3')
      .replace(
        '!{timestamp:yyyy/MM/dd/HH}',
        `${at.getUTCFullYear()}/${pad(at.getUTCMonth() + 1)}/${pad(at.getUTCDate())}/${pad(at.getUTCHours())}`,
      );
    expect(key).toBe(CAPTURE_KEYS.captureHour('iris', 3, at));
  });

  it('the Firehose role writes capture/* and capture-errors/* only, plus its error log group', () => {
    const statements = statementsOfRole(template, logicalId(stack, capture().deliveryRole));
    const s3 = statements.filter((s) => list(s.Action).some((a) => a.startsWith('s3:')));
    const bucketArn = { 'Fn::GetAtt': [logicalId(stack, stack.store.bucket), 'Arn'] };
    const writes = s3.filter((s) => list(s.Action).includes('s3:PutObject'));
    expect(writes).toHaveLength(1);
    expect(list(writes[0]?.Action)).toEqual(['s3:PutObject', 's3:AbortMultipartUpload']);
    const objects = JSON.stringify(writes[0]?.Resource);
    expect(objects).toContain('/capture/*');
    expect(objects).toContain('/capture-errors/*');
    expect(list(writes[0]?.Resource as unknown[])).toHaveLength(2);
    // Nothing reads, deletes or reaches another prefix.
    const actions = s3.flatMap((s) => list(s.Action)).sort();
    expect(actions).toEqual([
      's3:AbortMultipartUpload',
      's3:GetBucketLocation',
      's3:ListBucket',
      's3:PutObject',
    ]);
    const listing = s3.find((s) => list(s.Action).includes('s3:ListBucket'));
    expect(listing?.Resource).toEqual(bucketArn);
    expect(listing?.Condition).toEqual({ StringLike: { 's3:prefix': ['capture/*', 'capture-errors/*'] } });
    const logsStatements = statements.filter((s) => list(s.Action).some((a) => a.startsWith('logs:')));
    expect(logsStatements.map((s) => s.Resource)).toEqual([
      { 'Fn::GetAtt': [logicalId(stack, capture().errorLogGroup), 'Arn'] },
    ]);
    expect(statements.flatMap((s) => list(s.Action)).every((a) => /^(s3|logs):/.test(a))).toBe(true);
    // Firehose assumes it.
    expect(
      JSON.stringify(res[logicalId(stack, capture().deliveryRole)]?.Properties.AssumeRolePolicyDocument),
    ).toContain('firehose.amazonaws.com');
  });

  it('the subscription role may only put records on the delivery stream', () => {
    const statements = statementsOfRole(template, logicalId(stack, capture().subscriptionRole));
    expect(statements).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: ['firehose:PutRecord', 'firehose:PutRecordBatch'],
        Resource: { 'Fn::GetAtt': [logicalId(stack, capture().deliveryStream), 'Arn'] },
      }),
    ]);
    expect(
      JSON.stringify(res[logicalId(stack, capture().subscriptionRole)]?.Properties.AssumeRolePolicyDocument),
    ).toContain('logs.amazonaws.com');
  });

  it('capture: { enabled: false } creates neither stream nor filters', () => {
    expect(plain.stack.capture).toBeUndefined();
    plain.template.resourceCountIs('AWS::KinesisFirehose::DeliveryStream', 0);
    plain.template.resourceCountIs('AWS::Logs::SubscriptionFilter', 0);
    expect(Object.keys(plain.template.toJSON().Outputs)).not.toContain('CaptureDeliveryStreamName');
  });

  it('takes buffering from the stack prop', () => {
    const { template: t } = buildStack('MaasBuffer', {
      capture: { bufferInterval: Duration.minutes(5), bufferSizeMiB: 128 },
    });
    t.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', {
      ExtendedS3DestinationConfiguration: Match.objectLike({
        BufferingHints: { IntervalInSeconds: 300, SizeInMBs: 128 },
      }),
    });
  });
});

describe('the async function', () => {
  it('writes feedback/*, reads and lists capture/*, and no more of either', () => {
    const role = stack.events.asyncApiFunction.role;
    if (!role) throw new Error('function without role');
    const statements = statementsOfRole(template, logicalId(stack, role));
    const on = (action: string) =>
      JSON.stringify(statements.filter((s) => list(s.Action).includes(action)).map((s) => s.Resource));
    expect(on('s3:PutObject')).toContain('/feedback/*');
    expect(on('s3:PutObject')).not.toContain('capture');
    expect(on('s3:GetObject')).toContain('/capture/*');
    expect(on('s3:GetObject')).not.toContain('feedback');
    expect(on('s3:DeleteObject')).toBe('[]');
    const listing = statements.filter((s) => list(s.Action).includes('s3:ListBucket'));
    expect(listing.map((s) => s.Condition)).toEqual([undefined]);
  });

  it('and the predict function get no capture or feedback grant (predict writes stdout)', () => {
    const role = stack.functions.predict.fn.role;
    if (!role) throw new Error('function without role');
    const text = JSON.stringify(statementsOfRole(template, logicalId(stack, role)));
    expect(text).not.toMatch(/capture|feedback|firehose/);
  });
});

describe('dashboard', () => {
  const body = (t: Template) => {
    const dashboards = Object.values(t.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    return JSON.stringify(
      (dashboards[0] as { Properties: { DashboardBody: unknown } }).Properties.DashboardBody,
    );
  };
  const charted = [
    'Requests',
    'ClientErrors',
    'ServerErrors',
    'Latency',
    'InferenceLatency',
    'ColdStart',
  ] as const;

  it('charts every model with SEARCH expressions by default', () => {
    const text = body(template);
    for (const name of charted) {
      expect(text).toContain(`SEARCH('{${METRICS_NAMESPACE},model} MetricName=\\\\\\"${name}\\\\\\"'`);
    }
    for (const stat of ["'p50'", "'p99'", "'Sum'"]) expect(text).toContain(stat);
    expect(text).toContain('{maas,operation}');
    // The predict function's throttles.
    expect(text).toContain('Throttles');
    expect(text).toContain(logicalId(stack, stack.functions.predict.fn));
    template.hasOutput('DashboardName', Match.anyValue());
  });

  /** The dashboard's widgets, with the tokens of its body (the function name) as `<token>`. */
  const widgets = (t: Template) => {
    const [dashboard] = Object.values(t.findResources('AWS::CloudWatch::Dashboard')) as {
      Properties: { DashboardBody: string | { 'Fn::Join': [string, unknown[]] } };
    }[];
    const raw = dashboard?.Properties.DashboardBody;
    const text =
      typeof raw === 'string'
        ? raw
        : (raw?.['Fn::Join'][1] ?? []).map((p) => (typeof p === 'string' ? p : '<token>')).join('');
    return (
      JSON.parse(text) as {
        widgets: { properties: { title?: string; metrics?: unknown[][] } }[];
      }
    ).widgets.map((w) => w.properties);
  };
  const labels = (t: Template, title: string) =>
    (widgets(t).find((w) => w.title === title)?.metrics ?? []).map(
      (m) => (m.at(-1) as { label?: string }).label,
    );

  /** CloudWatch's dynamic label of a dimension's value. */
  const dim = (d: string) => `\${PROP('Dim.${d}')}`;

  it('labels every line with its model (and statistic), so that p50 and p99 are told apart', () => {
    expect(labels(template, 'Latency p50 / p99')).toEqual([`${dim('model')} p50`, `${dim('model')} p99`]);
    expect(labels(template, 'ClientErrors (4xx) and ServerErrors (5xx)')).toEqual([
      `${dim('model')} 4xx`,
      `${dim('model')} 5xx`,
    ]);
    expect(labels(template, 'Requests')).toEqual([dim('model')]);
    expect(labels(template, 'Registry requests by operation')).toEqual([dim('operation')]);
    expect(labels(plain.template, 'InferenceLatency p50 / p99')).toEqual([
      'iris p50',
      'mnist p50',
      'iris p99',
      'mnist p99',
    ]);
  });

  it('charts the named models one by one, at the given period', () => {
    const text = body(plain.template);
    for (const name of charted)
      expect(text).toContain(`\\"${METRICS_NAMESPACE}\\",\\"${name}\\",\\"model\\",\\"iris\\"`);
    expect(text).toContain('\\"model\\",\\"mnist\\"');
    expect(text).not.toContain("SEARCH('{maas,model}");
    expect(text).toContain('\\"period\\":300');
    expect(text).toContain('\\"stat\\":\\"p99\\"');
    plain.template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'maas-models' });
  });

  it('dashboard: false creates none', () => {
    const { stack: s, template: t } = buildStack('MaasNoDashboard', {
      dashboard: false,
      capture: { enabled: false },
    });
    expect(s.dashboard).toBeUndefined();
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
  });
});

describe('alarms', () => {
  type AlarmProps = {
    Threshold: number;
    ComparisonOperator: string;
    EvaluationPeriods: number;
    TreatMissingData: string;
    Metrics?: {
      Id: string;
      Expression?: string;
      MetricStat?: {
        Metric: { Namespace: string; MetricName: string; Dimensions: { Name: string; Value: string }[] };
        Period: number;
        Stat: string;
      };
    }[];
    MetricName?: string;
    Namespace?: string;
    Dimensions?: { Name: string; Value: string }[];
    ExtendedStatistic?: string;
    Period?: number;
  };
  /**
   * The alias alarms of a template (the stack's event alarms, on SQS queue metrics — a metric math expression for
   * some — are EventPipelines' business).
   */
  const alarmsOf = (t: Template) =>
    Object.values(t.findResources('AWS::CloudWatch::Alarm'))
      .map((a) => (a as { Properties: AlarmProps }).Properties)
      .filter((a) => !JSON.stringify(a).includes('"AWS/SQS"'));
  const dims = (model: string, alias: string) => [
    { Name: 'alias', Value: alias },
    { Name: 'model', Value: model },
    { Name: 'route', Value: STABLE_ROUTE },
  ];
  const sorted = (d: { Name: string; Value: string }[] | undefined) =>
    [...(d ?? [])].sort((a, b) => a.Name.localeCompare(b.Name));

  it('error rate: ServerErrors / Requests of {model, alias, route=stable} above the rate, missing data not breaching', () => {
    const [errorRate] = alarmsOf(plain.template).filter((a) => a.Metrics);
    expect(errorRate).toMatchObject({
      Threshold: 0.01,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 3,
      TreatMissingData: 'notBreaching',
    });
    const expression = errorRate?.Metrics?.find((m) => m.Expression);
    expect(expression?.Expression).toBe('FILL(errors, 0) / requests');
    const metric = (id: string) => errorRate?.Metrics?.find((m) => m.Id === id)?.MetricStat;
    expect(metric('errors')?.Metric.MetricName).toBe('ServerErrors');
    expect(metric('requests')?.Metric.MetricName).toBe('Requests');
    for (const id of ['errors', 'requests']) {
      expect(metric(id)?.Metric.Namespace).toBe(METRICS_NAMESPACE);
      expect(sorted(metric(id)?.Metric.Dimensions)).toEqual(dims('iris', 'prod'));
      expect(metric(id)).toMatchObject({ Period: 60, Stat: 'Sum' });
    }
  });

  it('latency: Latency p99 of {model, alias, route=stable} above p99Ms', () => {
    const [latency] = alarmsOf(plain.template).filter((a) => a.MetricName);
    expect(latency).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      MetricName: 'Latency',
      ExtendedStatistic: 'p99',
      Threshold: 400,
      Period: 60,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(sorted(latency?.Dimensions)).toEqual(dims('iris', 'prod'));
  });

  it('alarmsFor returns the alarms it creates, with its thresholds, periods and evaluation count', () => {
    const created = stack.alarms.byAlias.get('mnist@canary');
    expect(created?.errorRate).toBeInstanceOf(cloudwatch.Alarm);
    expect(created?.canaryErrorRate).toBeInstanceOf(cloudwatch.Alarm);
    const alarms = alarmsOf(template);
    // Stable and canary route: an error rate and a latency alarm each, with the same thresholds.
    expect(alarms).toHaveLength(4);
    const latency = alarms.filter((a) => a.MetricName === 'Latency');
    expect(latency).toHaveLength(2);
    for (const l of latency) expect(l).toMatchObject({ Threshold: 250, Period: 300, EvaluationPeriods: 5 });
    expect(latency.map((l) => sorted(l.Dimensions))).toContainEqual(dims('mnist', 'canary'));
    expect(latency.map((l) => sorted(l.Dimensions))).toContainEqual(
      dims('mnist', 'canary').map((d) => (d.Name === 'route' ? { ...d, Value: 'canary' } : d)),
    );
    expect(alarms.filter((a) => a.Metrics).map((a) => a.Threshold)).toEqual([0.2, 0.2]);
    expect(() => stack.alarmsFor('mnist', 'canary')).toThrow(MaasValidationError);
    expect(() => stack.alarmsFor('mnist', 'canary')).toThrow(/mnist@canary exist already/);
  });

  it('describes the error rate as a rounded percentage', () => {
    const s = new Stack(new App(), 'Describe');
    const { errorRate } = new MaasAlarms(s, 'Alarms').alarmsFor('iris', 'prod', { errorRate: 0.07 });
    const description = (errorRate.node.defaultChild as { alarmDescription?: string }).alarmDescription;
    expect(description).toBe('maas iris@prod: server errors above 7 % of requests (3 × 1 minute)');
  });

  it('minRequests: a period with fewer requests counts rate 0', () => {
    const s = new Stack(new App(), 'MinRequests');
    new MaasAlarms(s, 'Alarms').alarmsFor('iris', 'prod', { minRequests: 20 });
    const [alarm] = alarmsOf(Template.fromStack(s));
    expect(alarm?.Metrics?.find((m) => m.Expression)?.Expression).toBe(
      'IF(requests >= 20, FILL(errors, 0) / requests, 0)',
    );
  });
});

describe('checked at synth', () => {
  const stackWith = (props: Partial<MaasStackProps>) => () =>
    new MaasStack(new App({ context: NO_BUNDLING }), 'Bad', props);

  it('capture buffering within dynamic partitioning’s range', () => {
    expect(stackWith({ capture: { bufferInterval: Duration.seconds(30) } })).toThrow(
      /Bad\/Capture: invalid prop capture\.bufferInterval '30 seconds'.*60 to 900.*Set capture\.bufferInterval to a whole number of seconds from 60 to 900, e\.g\. Duration\.seconds\(60\)/,
    );
    expect(stackWith({ capture: { bufferSizeMiB: 32 } })).toThrow(
      /invalid prop capture\.bufferSizeMiB '32'.*Set capture\.bufferSizeMiB to a whole number of MiB from 64 to 128/,
    );
    expect(stackWith({ capture: { bufferSizeMiB: 64.5 } })).toThrow(/bufferSizeMiB/);
    // A disabled capture checks nothing (nothing is built).
    expect(stackWith({ capture: { enabled: false, bufferSizeMiB: 1 } })).not.toThrow();
  });

  it('dashboard models and period', () => {
    expect(stackWith({ dashboard: { models: ['iris', 'Bad Name'] } })).toThrow(
      /Bad\/Dashboard: invalid prop dashboard\.models\[1\] 'Bad Name': invalid model name/,
    );
    expect(stackWith({ dashboard: { period: Duration.seconds(90) } })).toThrow(
      /invalid prop dashboard\.period '1 minute 30 seconds'.*whole number of minutes/,
    );
  });

  it('alarm names and numbers', () => {
    const alarm = (a: object) => stackWith({ alarms: [{ model: 'iris', alias: 'prod', ...a }] });
    expect(alarm({ errorRate: 0 })).toThrow(
      /Bad\/Alarms: invalid prop alarms\[0\]\.errorRate '0'.*above 0 and at most 1/,
    );
    expect(alarm({ errorRate: 5 })).toThrow(/errorRate '5'.*e\.g\. 0\.05/);
    expect(alarm({ p99Ms: -1 })).toThrow(/alarms\[0\]\.p99Ms '-1'/);
    expect(alarm({ model: 'Iris' })).toThrow(/alarms\[0\]\.model 'Iris': invalid model name/);
    expect(alarm({ alias: 'p rod' })).toThrow(/alarms\[0\]\.alias 'p rod'/);
    expect(alarm({ evaluationPeriods: 0 })).toThrow(/evaluationPeriods '0'/);
    expect(alarm({ period: Duration.seconds(10) })).toThrow(/alarms\[0\]\.period/);
    expect(alarm({ minRequests: -1 })).toThrow(/alarms\[0\]\.minRequests '-1'/);
    const twice = stackWith({
      alarms: [
        { model: 'iris', alias: 'prod' },
        { model: 'iris', alias: 'prod', p99Ms: 100 },
      ],
    });
    expect(twice).toThrow(MaasValidationError);
    expect(twice).toThrow(/invalid prop alarms\[1\]\.alias: the alarms of iris@prod exist already/);
    const { stack: s } = buildStack('MaasAlarmsFor', { capture: { enabled: false }, dashboard: false });
    // The evaluation window: at most one day of periods under an hour, seven days of longer ones.
    expect(alarm({ evaluationPeriods: 1441 })).toThrow(
      /Bad\/Alarms: invalid prop alarms\[0\]\.evaluationPeriods '1441': 1441 periods of 1 minute make 86460 seconds.*86,400 seconds.*Set alarms\[0\]\.evaluationPeriods to at most 1440/,
    );
    expect(alarm({ evaluationPeriods: 1440 })).not.toThrow();
    expect(alarm({ period: Duration.minutes(30), evaluationPeriods: 49 })).toThrow(/at most 48/);
    expect(alarm({ period: Duration.hours(1), evaluationPeriods: 168 })).not.toThrow();
    expect(alarm({ period: Duration.hours(1), evaluationPeriods: 169 })).toThrow(
      /604,800 seconds.*at most 168/,
    );
    expect(() => s.alarmsFor('iris', 'prod', { period: Duration.hours(6), evaluationPeriods: 29 })).toThrow(
      /invalid prop evaluationPeriods '29'.*Set evaluationPeriods to at most 28/,
    );
    expect(() => s.alarmsFor('iris', 'prod', { errorRate: 1.5 })).toThrow(/invalid prop errorRate '1\.5'/);
  });

  it('the constructs check their own props', () => {
    const s = new Stack(new App(), 'Direct');
    const store = new ModelStore(s, 'Store');
    expect(
      () => new CaptureDelivery(s, 'Capture', { store, sources: [], bufferInterval: Duration.hours(1) }),
    ).toThrow(/Direct\/Capture: invalid prop bufferInterval '1 hour'/);
    expect(
      () =>
        new MaasDashboard(s, 'Dash', {
          models: ['ok', '-bad'],
          functions: {
            predict: {
              metricThrottles: () => new cloudwatch.Metric({ namespace: 'x', metricName: 'y' }),
            } as never,
          },
        }),
    ).toThrow(/Direct\/Dash: invalid prop models\[1\] '-bad'/);
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding with everything on, nor with everything off', () => {
    for (const s of [stack, plain.stack]) {
      const report = new AwsSolutionsChecks().validateScope(s);
      expect(
        report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath)}`),
      ).toEqual([]);
    }
  });

  const acksOn = (c: { node: { metadata: { type: string; data: unknown }[] } } | undefined) =>
    (c?.node.metadata ?? [])
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.keys(m.data as object));

  it('the capture roles acknowledge only prefix-scoped S3 resources', () => {
    const roles = [stack.capture?.deliveryRole, stack.capture?.subscriptionRole];
    const acks = roles.flatMap((r) => (r?.node.findAll() ?? []).flatMap(acksOn));
    expect(acks.length).toBeGreaterThan(0);
    for (const id of acks) expect(id).toMatch(/AwsSolutions-IAM5\[Resource::<.*>\/capture(-errors)?\/\*\]/);
  });

  it('X-Ray’s Resource::* is acknowledged on each traced function role’s default policy, not on the role', () => {
    const xray = 'AwsSolutions-IAM5[Resource::*]';
    for (const [which, fn] of Object.entries(maasFunctions(stack))) {
      const role = fn.role;
      if (!role) throw new Error('function without role');
      const isXray = (id: string) => id.endsWith(xray);
      expect(acksOn(role).some(isXray), which).toBe(false);
      expect(acksOn(role.node.tryFindChild('DefaultPolicy') as never).some(isXray), which).toBe(true);
    }
    for (const [which, fn] of Object.entries(maasFunctions(plain.stack))) {
      const acks = (fn.role?.node.findAll() ?? []).flatMap(acksOn);
      expect(
        acks.some((id) => id.endsWith(xray)),
        which,
      ).toBe(false);
    }
  });
});

/**
 * EventPipelines (issue 6.5): S3 notifications, work queue + DLQ with TLS-only policies, the worker's SQS event
 * source with ReportBatchItemFailures, the async API function, the event bus and its rules, least-privilege
 * grants, and cdk-nag AwsSolutions with no unacknowledged finding. Bundling is skipped (Template assertions only).
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../functions/contract/env';
import { BATCH, EVENT_BUS, QUEUE } from '../../functions/contract/events';
import { TABLE } from '../../functions/contract/table';
import {
  checkWorkerTimeout,
  EventPipelines,
  type EventPipelinesProps,
  WORKER_MIN_TIMEOUT_SECONDS,
} from '../../infra/constructs/event-pipelines';
import { MaasFunctions } from '../../infra/constructs/functions';
import { RegistryTable } from '../../infra/constructs/model-registry-table';
import { ModelStore } from '../../infra/constructs/model-store';
import { OnnxRuntimeLayer } from '../../infra/constructs/onnxruntime-layer';
import { MaasValidationError } from '../../infra/constructs/validation';

let stack: Stack;
const ALERT_TOPIC = 'arn:aws:sns:eu-west-1:123456789012:maas-alerts';
let pipelines: EventPipelines;
let functions: MaasFunctions;
let template: Template;

beforeAll(() => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  stack = new Stack(app, 'EventsTest', { env: { account: '123456789012', region: 'eu-west-1' } });
  const store = new ModelStore(stack, 'Store');
  const table = new RegistryTable(stack, 'Table');
  const onnxRuntime = new OnnxRuntimeLayer(stack, 'Ort');
  functions = new MaasFunctions(stack, 'Functions', { store, table, onnxRuntime });
  const alerts = new sqs.Queue(stack, 'Alerts', { enforceSSL: true });
  pipelines = new EventPipelines(stack, 'Events', {
    store,
    table,
    onnxRuntime,
    publishers: [functions.registry.fn],
    registrars: [functions.registry.fn],
    onModelVersionFailed: [new targets.SqsQueue(alerts)],
    alarmActions: [{ bind: () => ({ alarmActionArn: ALERT_TOPIC }) }],
  });
  template = Template.fromStack(stack);
});

/** EventPipelines with `props` in a stack of its own (`Sized`), and its template. */
function build(props: Partial<EventPipelinesProps>): { events: EventPipelines; template: Template } {
  const s = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Sized');
  const events = new EventPipelines(s, 'Events', {
    store: new ModelStore(s, 'Store'),
    table: new RegistryTable(s, 'Table'),
    onnxRuntime: new OnnxRuntimeLayer(s, 'Ort'),
    ...props,
  });
  return { events, template: Template.fromStack(s) };
}

const ref = (construct: { node: { defaultChild?: unknown } }) =>
  stack.resolve((construct.node.defaultChild as { logicalId: string }).logicalId) as string;

/** Every IAM statement attached to the role of `fn`. */
function statementsOf(fn: { role?: { node: { defaultChild?: unknown } } }): Record<string, unknown>[] {
  const roleId = ref(fn.role as never);
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: Match.arrayWith([{ Ref: roleId }]) },
  });
  return Object.values(policies).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Record<string, unknown>[] } } }).Properties
        .PolicyDocument.Statement,
  );
}
const actionsOf = (statements: Record<string, unknown>[]) =>
  new Set(statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]) as string[]));

describe('EventPipelines', () => {
  it('notifies the S3 events function of incoming/*.onnx and batch/*/{input.jsonl,input/_SUCCESS,cancel} creations only', () => {
    const rule = (prefix: string, suffix: string) => ({
      Events: ['s3:ObjectCreated:*'],
      Filter: {
        Key: {
          FilterRules: [
            { Name: 'suffix', Value: suffix },
            { Name: 'prefix', Value: prefix },
          ],
        },
      },
      LambdaFunctionArn: { 'Fn::GetAtt': [ref(pipelines.s3EventsFunction), 'Arn'] },
    });
    template.hasResourceProperties('Custom::S3BucketNotifications', {
      NotificationConfiguration: {
        LambdaFunctionConfigurations: [
          rule('incoming/', '.onnx'),
          rule('batch/', '/input.jsonl'),
          rule('batch/', '/input/_SUCCESS'),
          rule('batch/', '/cancel'),
        ],
      },
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 's3.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [ref(pipelines.s3EventsFunction), 'Arn'] },
    });
  });

  it('keeps S3 events that still fail after the asynchronous retries in a TLS-only queue', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: ref(pipelines.s3EventsFunction) },
      MaximumRetryAttempts: 2,
      DestinationConfig: {
        OnFailure: { Destination: { 'Fn::GetAtt': [ref(pipelines.failedEventsQueue), 'Arn'] } },
      },
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: ref(pipelines.failedEventsQueue) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('has a work queue with a DLQ after maxReceiveCount receives, both encrypted and TLS-only', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: QUEUE.visibilityTimeoutSeconds,
      SqsManagedSseEnabled: true,
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [ref(pipelines.deadLetterQueue), 'Arn'] },
        maxReceiveCount: QUEUE.maxReceiveCount,
      },
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      MessageRetentionPeriod: QUEUE.dlqRetentionSeconds,
      SqsManagedSseEnabled: true,
    });
    for (const queue of [pipelines.queue, pipelines.deadLetterQueue]) {
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: ref(queue) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 'sqs:*',
              Principal: { AWS: '*' },
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
    // The visibility timeout covers six worker invocations, as AWS recommends for SQS event sources.
    expect(QUEUE.visibilityTimeoutSeconds).toBeGreaterThanOrEqual(6 * QUEUE.workerTimeoutSeconds);
  });

  it('feeds the worker from the queue with ReportBatchItemFailures', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [ref(pipelines.queue), 'Arn'] },
      FunctionName: { Ref: ref(pipelines.workerFunction) },
      BatchSize: QUEUE.batchSize,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('work queue consumer'),
      Timeout: QUEUE.workerTimeoutSeconds,
      Layers: [{ Ref: Match.anyValue() }],
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('S3 events'),
      Timeout: BATCH.functionTimeoutSeconds,
    });
  });

  it('feeds the worker from both dead-letter queues, which it names in MAAS_DEAD_LETTER_QUEUE_ARNS', () => {
    const arn = (q: sqs.Queue) => ({ 'Fn::GetAtt': [ref(q), 'Arn'] });
    for (const dlq of [pipelines.deadLetterQueue, pipelines.batchDeadLetterQueue]) {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: arn(dlq),
        FunctionName: { Ref: ref(pipelines.workerFunction) },
        BatchSize: QUEUE.batchSize,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
      });
      // A dead letter in flight stays invisible for as long as the worker may hold it.
      template.hasResourceProperties('AWS::SQS::Queue', {
        VisibilityTimeout: QUEUE.visibilityTimeoutSeconds,
        MessageRetentionPeriod: QUEUE.dlqRetentionSeconds,
      });
      expect(
        (template.toJSON().Resources[ref(dlq)] as { Properties: Record<string, unknown> }).Properties
          .VisibilityTimeout,
      ).toBe(QUEUE.visibilityTimeoutSeconds);
    }
    // Four sources: the work queue, the batch queue, their dead letters; the worker alone receives from them.
    const mappings = Object.values(template.findResources('AWS::Lambda::EventSourceMapping')) as {
      Properties: { FunctionName: unknown };
    }[];
    expect(mappings.map((m) => m.Properties.FunctionName)).toEqual(
      Array(4).fill({ Ref: ref(pipelines.workerFunction) }),
    );
    const worker = template.findResources('AWS::Lambda::Function')[ref(pipelines.workerFunction)] as {
      Properties: { Environment: { Variables: Record<string, unknown> } };
    };
    expect(worker.Properties.Environment.Variables[ENV.deadLetterQueueArns]).toEqual({
      'Fn::Join': ['', [arn(pipelines.deadLetterQueue), ',', arn(pipelines.batchDeadLetterQueue)]],
    });
    const received = statementsOf(pipelines.workerFunction)
      .filter((st) => [st.Action].flat().includes('sqs:ReceiveMessage'))
      .map((st) => st.Resource);
    expect(received).toEqual(
      expect.arrayContaining([pipelines.deadLetterQueue, pipelines.batchDeadLetterQueue].map(arn)),
    );
  });

  it('alarms on dead letters the worker could not end and on failed S3 events, notifying the alarm actions', () => {
    const alarm = (name: string, queue: sqs.Queue, metric: string, threshold: number) =>
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `EventsTest-${name}`,
        Namespace: 'AWS/SQS',
        MetricName: metric,
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [ref(queue), 'QueueName'] } }],
        Statistic: 'Maximum',
        Period: 300,
        Threshold: threshold,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        EvaluationPeriods: 1,
        TreatMissingData: 'notBreaching',
        AlarmActions: [ALERT_TOPIC],
        OKActions: [ALERT_TOPIC],
      });
    const age = 'ApproximateAgeOfOldestMessage';
    alarm('dead-letters', pipelines.deadLetterQueue, age, QUEUE.deadLetterAlarmAgeSeconds);
    alarm('batch-dead-letters', pipelines.batchDeadLetterQueue, age, QUEUE.deadLetterAlarmAgeSeconds);
    alarm('failed-s3-events', pipelines.failedEventsQueue, 'ApproximateNumberOfMessagesVisible', 1);
    expect(Object.keys(pipelines.alarms).sort()).toEqual([
      'batchDeadLetters',
      'batchDeadLettersNotEnded',
      'deadLetters',
      'deadLettersNotEnded',
      'failedS3Events',
    ]);
  });

  it('alarms on a dead letter the worker keeps failing to end: its queue holds a message through every period of an hour', () => {
    // The age alarm cannot fire for it: the worker receives it again every visibility timeout, and SQS leaves a
    // message received three times or more out of ApproximateAgeOfOldestMessage — which it is well within the hour.
    expect(3 * QUEUE.visibilityTimeoutSeconds).toBeLessThan(QUEUE.deadLetterAlarmAgeSeconds);
    const count = (queue: sqs.Queue, id: string, metric: string) => ({
      Id: id,
      MetricStat: {
        Metric: {
          Namespace: 'AWS/SQS',
          MetricName: metric,
          Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [ref(queue), 'QueueName'] } }],
        },
        Period: 300,
        Stat: 'Maximum',
      },
      ReturnData: false,
    });
    for (const [name, queue] of [
      ['dead-letters-not-ended', pipelines.deadLetterQueue],
      ['batch-dead-letters-not-ended', pipelines.batchDeadLetterQueue],
    ] as const) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `EventsTest-${name}`,
        Metrics: Match.arrayWith([
          Match.objectLike({ Expression: 'waiting + inFlight', ReturnData: true }),
          count(queue, 'waiting', 'ApproximateNumberOfMessagesVisible'),
          count(queue, 'inFlight', 'ApproximateNumberOfMessagesNotVisible'),
        ]),
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        // Every 5-minute period of the hour: a dead letter the worker ends leaves within seconds, and is caught by
        // a sampled count only by chance.
        EvaluationPeriods: QUEUE.deadLetterAlarmAgeSeconds / 300,
        DatapointsToAlarm: QUEUE.deadLetterAlarmAgeSeconds / 300,
        TreatMissingData: 'notBreaching',
        AlarmActions: [ALERT_TOPIC],
        OKActions: [ALERT_TOPIC],
      });
    }
  });

  it('gives the worker the queues’ maxReceiveCount (MAAS_MAX_RECEIVE_COUNT), whatever the prop says', () => {
    const envOf = (t: Template, fn: EventPipelines['workerFunction']) =>
      (
        t.toJSON().Resources[
          fn.stack.resolve((fn.node.defaultChild as unknown as { logicalId: string }).logicalId)
        ] as {
          Properties: { Environment: { Variables: Record<string, unknown> } };
        }
      ).Properties.Environment.Variables;
    expect(envOf(template, pipelines.workerFunction)[ENV.maxReceiveCount]).toBe(
      String(QUEUE.maxReceiveCount),
    );
    for (const n of [2, 5]) {
      const { events, template: t } = build({ maxReceiveCount: n });
      expect(envOf(t, events.workerFunction)[ENV.maxReceiveCount]).toBe(String(n));
      const redrives = Object.values(t.findResources('AWS::SQS::Queue'))
        .map(
          (q) =>
            (q as { Properties: { RedrivePolicy?: { maxReceiveCount: number } } }).Properties.RedrivePolicy,
        )
        .filter((r) => r !== undefined);
      // The work queue and the batch queue.
      expect(redrives.map((r) => r.maxReceiveCount)).toEqual([n, n]);
    }
    for (const bad of [0, 1001, 2.5]) {
      expect(() => build({ maxReceiveCount: bad })).toThrow(
        `Sized/Events: invalid prop maxReceiveCount '${bad}': an SQS redrive policy moves a message to its dead-letter queue after a whole number of receives from 1 to 1000. Set maxReceiveCount to a whole number from 1 to 1000, e.g. 3, or leave it unset for 3.`,
      );
    }
  });

  it('refuses at synth a worker reserved concurrency below what its four SQS event sources run at once', () => {
    // batchMaxConcurrency for the batch queue's source, at least 2 for each of the work queue's and the two
    // dead-letter queues'.
    expect(() =>
      build({ batchMaxConcurrency: 50, worker: { reservedConcurrentExecutions: 56 } }),
    ).not.toThrow();
    expect(() => build({ batchMaxConcurrency: 50, worker: { reservedConcurrentExecutions: 55 } })).toThrow(
      MaasValidationError,
    );
    expect(() => build({ worker: { reservedConcurrentExecutions: BATCH.maxConcurrency + 6 } })).not.toThrow();
    expect(() => build({ batchMaxConcurrency: 50, worker: { reservedConcurrentExecutions: 2 } })).toThrow(
      "Sized/Events: invalid prop worker.reservedConcurrentExecutions '2': the worker consumes four SQS event sources: the batch queue's, up to batchMaxConcurrency (50) invocations at once, and the work queue's and the two dead-letter queues', at least 2 each; with less reserved concurrency than their sum (56) Lambda throttles their receives, each of which still counts as a receive, so messages drift into the dead-letter queues unrun. Set worker.reservedConcurrentExecutions to at least 56, lower batchMaxConcurrency, or leave it unset (unreserved).",
    );
    // Unreserved: nothing to check.
    expect(() => build({ batchMaxConcurrency: 1000 })).not.toThrow();
  });

  it('refuses at synth a worker timeout shorter than the time the worker keeps in reserve', () => {
    expect(WORKER_MIN_TIMEOUT_SECONDS).toBe(
      (QUEUE.startReserveMs + BATCH.reserveMs + BATCH.lastReceiveGuardMs) / 1000,
    );
    expect(() => build({ worker: { timeout: Duration.seconds(WORKER_MIN_TIMEOUT_SECONDS) } })).not.toThrow();
    expect(() => build({ worker: { timeout: Duration.seconds(WORKER_MIN_TIMEOUT_SECONDS - 1) } })).toThrow(
      MaasValidationError,
    );
    expect(() => build({ worker: { timeout: Duration.seconds(5) } })).toThrow(
      "Sized/Events: invalid prop worker.timeout '5 seconds': the worker keeps 10 seconds to start a work message after a delivery's first (QUEUE.startReserveMs), 5 seconds at the end of a batch part to write its segment and queue its continuation (BATCH.reserveMs) and 3 seconds to end a job whose part still runs on its last receive (BATCH.lastReceiveGuardMs), so its timeout is at least 18 seconds. Set worker.timeout to Duration.seconds(18) or more, e.g. Duration.seconds(120), or leave it unset for 120 seconds.",
    );
  });

  it("redelivers a batch message after the worker's timeout and the aggregation's lease have both run out", () => {
    const props = (construct: { node: { defaultChild?: unknown } }) =>
      (
        template.toJSON().Resources[ref(construct)] as {
          Properties: { VisibilityTimeout?: number; Timeout?: number };
        }
      ).Properties;
    const visibility = props(pipelines.batchQueue).VisibilityTimeout ?? 0;
    const workerTimeout = props(pipelines.workerFunction).Timeout ?? Number.POSITIVE_INFINITY;
    // A claim or lease taken at the end of an invocation that died has expired when its message comes back.
    expect(visibility).toBeGreaterThanOrEqual(workerTimeout + BATCH.aggregationLeaseMs / 1000);
    // The lease outlives every invocation of the default worker, so a live assembly is never taken over.
    expect(BATCH.aggregationLeaseMs).toBeGreaterThanOrEqual(workerTimeout * 1000);
  });

  it('refuses at synth a worker timeout that would outlast the batch queue’s visibility timeout less the lease', () => {
    const max = QUEUE.visibilityTimeoutSeconds - BATCH.aggregationLeaseMs / 1000;
    const build = (seconds: number) => () => {
      const s = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'WorkerTimeout');
      new EventPipelines(s, 'Events', {
        store: new ModelStore(s, 'Store'),
        table: new RegistryTable(s, 'Table'),
        onnxRuntime: new OnnxRuntimeLayer(s, 'Ort'),
        worker: { timeout: Duration.seconds(seconds) },
      });
    };
    expect(build(max)).not.toThrow();
    expect(build(max + 1)).toThrow(MaasValidationError);
    expect(build(900)).toThrow(
      `WorkerTimeout/Events: invalid prop worker.timeout '15 minutes': a batch message whose invocation died is received again ${QUEUE.visibilityTimeoutSeconds} seconds (the batch queue's visibility timeout) after its receive, and must then find the aggregation's claim or lease of that invocation expired (120 seconds, BATCH.aggregationLeaseMs), so the worker's timeout is at most ${max} seconds. Set worker.timeout to Duration.seconds(${max}) or less, e.g. Duration.seconds(120), or leave it unset for 120 seconds.`,
    );
    expect(checkWorkerTimeout(Duration.seconds(max), { context: 'x' }).toSeconds()).toBe(max);
  });

  it('configures table, bucket, queue and bus through the contract env names', () => {
    const env = (fn: typeof pipelines.s3EventsFunction) => {
      const props = template.findResources('AWS::Lambda::Function')[ref(fn)] as {
        Properties: { Environment: { Variables: Record<string, unknown> } };
      };
      return props.Properties.Environment.Variables;
    };
    for (const fn of [pipelines.s3EventsFunction, pipelines.workerFunction, pipelines.asyncApiFunction]) {
      expect(Object.keys(env(fn))).toEqual(expect.arrayContaining([ENV.table, ENV.bucket, ENV.queueUrl]));
      expect(env(fn)[ENV.queueUrl]).toEqual({ Ref: ref(pipelines.queue) });
    }
    expect(env(pipelines.s3EventsFunction)[ENV.eventBus]).toEqual({ Ref: ref(pipelines.bus) });
    expect(env(functions.registry.fn)[ENV.eventBus]).toEqual({ Ref: ref(pipelines.bus) });
    // The worker completes PENDING versions and announces them like the registry; the registry queues them.
    expect(env(pipelines.workerFunction)[ENV.eventBus]).toEqual({ Ref: ref(pipelines.bus) });
    expect(env(functions.registry.fn)[ENV.queueUrl]).toEqual({ Ref: ref(pipelines.queue) });
  });

  it('has an event bus with a rule archiving every registry event and a ModelVersionFailed rule', () => {
    template.resourceCountIs('AWS::Events::EventBus', 1);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: ref(pipelines.bus) },
      EventPattern: { source: [EVENT_BUS.source], 'detail-type': [...EVENT_BUS.detailTypes] },
      Targets: [Match.objectLike({ Arn: Match.anyValue() })],
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: ref(pipelines.bus) },
      EventPattern: { source: ['maas'], 'detail-type': ['ModelVersionFailed'] },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('Alerts'), 'Arn'] } })],
    });
    expect(pipelines.failedVersionsRule).toBeInstanceOf(events.Rule);
  });

  it('lets the functions that queue work send to the work queue (the worker, the async API), not the S3 events one', () => {
    const queueArn = JSON.stringify({ 'Fn::GetAtt': [ref(pipelines.queue), 'Arn'] });
    const batchArn = JSON.stringify({ 'Fn::GetAtt': [ref(pipelines.batchQueue), 'Arn'] });
    const on = (arn: string, fn: Parameters<typeof statementsOf>[0]) =>
      actionsOf(statementsOf(fn).filter((st) => JSON.stringify(st.Resource) === arn));
    for (const fn of [pipelines.workerFunction, pipelines.asyncApiFunction]) {
      expect(on(queueArn, fn)).toContain('sqs:SendMessage');
    }
    // Registrations on upload run within its own time; a batch start sends to the batch queue only.
    expect(on(queueArn, pipelines.s3EventsFunction)).not.toContain('sqs:SendMessage');
    expect(on(batchArn, pipelines.s3EventsFunction)).toContain('sqs:SendMessage');
  });

  it('grants each function only what it uses', () => {
    const s3Events = statementsOf(pipelines.s3EventsFunction);
    const worker = statementsOf(pipelines.workerFunction);
    const api = statementsOf(pipelines.asyncApiFunction);
    const registry = statementsOf(functions.registry.fn);

    expect([...actionsOf(s3Events)]).toEqual(
      expect.arrayContaining(['events:PutEvents', 'dynamodb:PutItem', 's3:GetObject']),
    );
    expect([...actionsOf(registry)]).toContain('events:PutEvents');
    // The S3 events and registry functions and the worker (completing PENDING versions) publish registry events.
    expect([...actionsOf(worker)]).toContain('events:PutEvents');
    expect([...actionsOf(registry)]).toContain('sqs:SendMessage');
    expect([...actionsOf(api)]).not.toContain('events:PutEvents');
    expect([...actionsOf(worker)]).toEqual(
      expect.arrayContaining(['sqs:ReceiveMessage', 'sqs:DeleteMessage']),
    );
    for (const statements of [s3Events, api])
      expect([...actionsOf(statements)]).not.toContain('sqs:ReceiveMessage');
    // The async API touches neither the table nor the models.
    expect([...actionsOf(api)].filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
    const apiResources = JSON.stringify(api.filter((s) => String(s.Action).startsWith('s3:')));
    expect(apiResources).toContain('async/*');
    expect(apiResources).not.toContain('models/*');
    // Feedback is written, never read; capture records are read, never written.
    const apiGrants = (action: string) =>
      JSON.stringify(api.filter((s) => [s.Action].flat().includes(action)).map((s) => s.Resource));
    expect(apiGrants('s3:PutObject')).toMatch(/async\/\*.*feedback\/\*/);
    expect(apiGrants('s3:PutObject')).not.toContain('capture');
    expect(apiGrants('s3:GetObject')).toMatch(/async\/\*.*capture\/\*/);
    expect(apiGrants('s3:GetObject')).not.toContain('feedback');
    // No statement anywhere grants a bare '*' action, nor a '*' resource but X-Ray's trace writes (which have no
    // resource-level permissions).
    for (const s of [...s3Events, ...worker, ...api]) {
      expect(s.Action).not.toBe('*');
      if (s.Resource === '*') expect(s.Action).toEqual(['xray:PutTraceSegments', 'xray:PutTelemetryRecords']);
    }
    // The list grant (404 rather than 403 for a missing key): on the bucket, unconditioned, since S3 checks it in
    // the object request's context, which carries no s3:prefix.
    const listGrants = (statements: Record<string, unknown>[]) =>
      statements
        .filter((s) => [s.Action].flat().includes('s3:ListBucket'))
        .map((s) => [s.Resource, s.Condition]);
    for (const statements of [s3Events, worker, api]) {
      expect(listGrants(statements)).toEqual([
        [{ 'Fn::GetAtt': [expect.stringMatching(/^StoreBucket/), 'Arn'] }, undefined],
      ]);
    }
    // PutEvents only on this bus.
    const put = s3Events.find((s) => s.Action === 'events:PutEvents');
    expect(put?.Resource).toEqual({ 'Fn::GetAtt': [ref(pipelines.bus), 'Arn'] });
  });

  it('grants on the table exactly the DynamoDB actions the functions’ code issues', () => {
    const [tableId] = Object.keys(template.findResources('AWS::DynamoDB::Table'));
    const tableArn = { 'Fn::GetAtt': [tableId, 'Arn'] };
    const indexArn = { 'Fn::Join': ['', [tableArn, `/index/${TABLE.modelsIndex.name}`]] };
    const dynamo = (fn: Parameters<typeof statementsOf>[0]) =>
      statementsOf(fn)
        .filter((st) => [st.Action].flat().some((a) => String(a).startsWith('dynamodb:')))
        .map((st) => ({ Action: [st.Action].flat().sort(), Resource: st.Resource }));
    // predict: GetItem by key (its signed reads), on the table only.
    expect(dynamo(functions.predict.fn)).toEqual([{ Action: ['dynamodb:GetItem'], Resource: tableArn }]);
    // The owners of the table: the repositories' gets, queries and writes, their transactions' items (a condition
    // check included), Powertools' idempotency records; queries of the models index. No BatchGetItem,
    // BatchWriteItem, Scan or DescribeTable: nothing issues them.
    const readWrite = [
      'dynamodb:ConditionCheckItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ];
    for (const fn of [functions.registry.fn, pipelines.s3EventsFunction, pipelines.workerFunction]) {
      expect(dynamo(fn)).toEqual([
        { Action: readWrite, Resource: tableArn },
        { Action: ['dynamodb:Query'], Resource: indexArn },
      ]);
    }
    // The aggregation's multipart upload is aborted, never listed (it keeps its parts' ETags).
    const multipart = statementsOf(pipelines.workerFunction).filter((st) =>
      [st.Action].flat().some((a) => String(a).includes('Multipart')),
    );
    expect(multipart.map((st) => st.Action)).toEqual(['s3:AbortMultipartUpload']);
    for (const fn of [pipelines.s3EventsFunction, pipelines.workerFunction, pipelines.asyncApiFunction]) {
      expect([...actionsOf(statementsOf(fn))]).not.toContain('s3:ListMultipartUploadParts');
    }
  });

  it('passes cdk-nag AwsSolutions with no unacknowledged finding in the event pipelines', () => {
    const result = new AwsSolutionsChecks().validateScope(stack);
    // Findings of the other constructs are their own tests' business; everything else (the pipelines and
    // any stack-level singleton they pull in) must be clean.
    const others = ['Store', 'Table', 'Ort', 'Functions', 'Alerts'].map((id) => `EventsTest/${id}/`);
    const mine = result.violations
      .map((v) => ({
        rule: v.ruleName,
        paths: v.violatingResources
          .map((r) => r.constructPath ?? '')
          .filter((p) => !others.some((o) => p.startsWith(o))),
      }))
      .filter((v) => v.paths.length > 0);
    expect(mine).toEqual([]);
  });

  it('archives registry events through a native logs resource policy, without a custom resource', () => {
    const policies = Object.values(template.findResources('AWS::Logs::ResourcePolicy')).map((p) =>
      JSON.stringify(p),
    );
    expect(policies).toHaveLength(1);
    expect(policies[0]).toContain('events.amazonaws.com');
    expect(policies[0]).toContain('logs:PutLogEvents');
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: '/aws/events/EventsTest-registry',
    });
    expect(Object.keys(template.findResources('Custom::CloudwatchLogResourcePolicy'))).toEqual([]);
  });
});

/**
 * EventPipelines: the event-driven side of maas (docs/ARCHITECTURE.md, "Flows": the event-driven flows).
 *
 * - S3 notifications (`incoming/*.onnx`, `batch/*\/input.jsonl` created) -> the S3 events function, which
 *   registers models and starts batch jobs;
 * - the work queue (SQS, SSE, TLS only) with its dead-letter queue (after QUEUE.maxReceiveCount receives),
 *   consumed by the worker function with ReportBatchItemFailures (async requests, batch continuations, shadow
 *   comparisons mirrored by predict);
 * - the async API function serving the route table's routes with fn 'async';
 * - the registry event bus (EventBridge) with example rules, and `MAAS_EVENT_BUS` on the functions that
 *   publish to it.
 * Every function gets its own role and only the grants it uses. No business logic here.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV, S3_KEYS } from '../../functions/contract/env';
import { BATCH, BATCH_KEYS, EVENT_BUS, EVENT_HANDLER_ENTRIES, QUEUE } from '../../functions/contract/events';
import { LIMITS } from '../../functions/contract/limits';
import {
  type FunctionSizing,
  type MaasNodejsFunctionOptions,
  maasNodejsFunction,
  REGISTRATION_MEMORY_MB,
} from './functions';
import type { RegistryTable } from './model-registry-table';
import type { ModelStore } from './model-store';
import type { OnnxRuntimeLayer } from './onnxruntime-layer';

/** Props of {@link EventPipelines}. */
export interface EventPipelinesProps {
  /** The model store: its notifications start the S3 events function; each function gets prefix-scoped grants. */
  readonly store: ModelStore;
  /** The registry table (registration, idempotency records of batch parts). */
  readonly table: RegistryTable;
  /** The onnxruntime layer (registration and inference); its runtime and architecture are used by all three. */
  readonly onnxRuntime: OnnxRuntimeLayer;
  /**
   * Functions that publish registry events too (the registry API moves aliases): they get MAAS_EVENT_BUS and
   * PutEvents on the bus.
   * @default - none
   */
  readonly publishers?: readonly lambda.Function[];
  /**
   * Functions that register versions through the API (the registry): they get MAAS_QUEUE_URL and SendMessage on
   * the work queue, where a registration past the API's time is completed.
   * @default - none
   */
  readonly registrars?: readonly lambda.Function[];
  /**
   * Functions that mirror a share of an alias's traffic to its shadow version (predict): they get MAAS_QUEUE_URL
   * and SendMessage on the work queue, where the worker runs and compares the shadow.
   * @default - none
   */
  readonly shadowMirrors?: readonly lambda.Function[];
  /**
   * S3 events function (registration, batch start). It registers `incoming/` artifacts of any size up to
   * LIMITS.maxModelBytes itself, so it has the registry function's memory.
   * @default REGISTRATION_MEMORY_MB (3008 MB), BATCH.functionTimeoutSeconds
   */
  readonly s3Events?: FunctionSizing;
  /**
   * Work queue consumer: async inference, batch continuation, and the completion of registrations that went on
   * past the API's time (artifacts up to LIMITS.maxModelBytes), so it has the registry function's memory.
   * @default REGISTRATION_MEMORY_MB (3008 MB), QUEUE.workerTimeoutSeconds
   */
  readonly worker?: FunctionSizing;
  /**
   * Async API function; it answers the HTTP API, so its timeout is at most 29 seconds (checked at synth).
   * @default 512 MB, 29 seconds
   */
  readonly asyncApi?: FunctionSizing;
  /** Receives before a work message goes to the dead-letter queue. @default QUEUE.maxReceiveCount */
  readonly maxReceiveCount?: number;
  /** Targets of the example rule on `ModelVersionFailed` (e.g. an SNS topic for alerts). @default - none */
  readonly onModelVersionFailed?: readonly events.IRuleTarget[];
  /** Days of CloudWatch Logs retention (functions and the registry event log). @default ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Active X-Ray tracing of the three functions. @default true */
  readonly tracing?: boolean;
}

/**
 * The queue, bus and functions of the event flows. Throws a `MaasValidationError` at synth for a memory size
 * outside Lambda's range or an async API timeout above the API's 30 s.
 */
export class EventPipelines extends Construct {
  /** The work queue (async requests, batch continuations), SSE, TLS only. */
  readonly queue: sqs.Queue;
  /** Where a work message goes after `maxReceiveCount` receives. */
  readonly deadLetterQueue: sqs.Queue;
  /**
   * S3 event deliveries the S3 events function still failed after Lambda's asynchronous retries (the event
   * itself, with the error): kept here instead of being dropped, to inspect and replay.
   */
  readonly failedEventsQueue: sqs.Queue;
  /** The registry event bus. */
  readonly bus: events.EventBus;
  /** Every registry event of the bus, archived in {@link eventLog}. */
  readonly allEventsRule: events.Rule;
  /** `ModelVersionFailed` events (targets from props). */
  readonly failedVersionsRule: events.Rule;
  /** The log group archiving every registry event. */
  readonly eventLog: logs.LogGroup;
  /** Registers `incoming/*.onnx` uploads and starts batch jobs on `batch/*\/input.jsonl`. */
  readonly s3EventsFunction: NodejsFunction;
  /** Consumes the work queue. */
  readonly workerFunction: NodejsFunction;
  /** Serves the route table's routes with fn 'async' (the HTTP API invokes it). */
  readonly asyncApiFunction: NodejsFunction;

  constructor(scope: Construct, id: string, props: EventPipelinesProps) {
    super(scope, id);
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    // --- queue + DLQ --------------------------------------------------------------------------------------
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.seconds(QUEUE.dlqRetentionSeconds),
    });
    this.queue = new sqs.Queue(this, 'WorkQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(QUEUE.visibilityTimeoutSeconds),
      deadLetterQueue: {
        queue: this.deadLetterQueue,
        maxReceiveCount: props.maxReceiveCount ?? QUEUE.maxReceiveCount,
      },
    });

    // --- event bus ----------------------------------------------------------------------------------------
    this.bus = new events.EventBus(this, 'Bus', { description: 'maas registry events' });
    // The log group target is wired natively (a logs resource policy for EventBridge) rather than through
    // targets.CloudWatchLogGroup, which would add a custom-resource Lambda to the stack.
    this.eventLog = new logs.LogGroup(this, 'RegistryEventLog', {
      logGroupName: `/aws/events/${Stack.of(this).stackName}-registry`,
      retention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    new logs.ResourcePolicy(this, 'RegistryEventLogPolicy', {
      policyStatements: [
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal('events.amazonaws.com')],
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [this.eventLog.logGroupArn],
        }),
      ],
    });
    const eventLogArn = Stack.of(this).formatArn({
      service: 'logs',
      resource: 'log-group',
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      resourceName: this.eventLog.logGroupName,
    });
    this.allEventsRule = new events.Rule(this, 'AllRegistryEvents', {
      eventBus: this.bus,
      description: 'Archives every maas registry event in a log group',
      eventPattern: { source: [EVENT_BUS.source], detailType: [...EVENT_BUS.detailTypes] },
      targets: [{ bind: () => ({ arn: eventLogArn }) }],
    });
    this.failedVersionsRule = new events.Rule(this, 'ModelVersionFailedRule', {
      eventBus: this.bus,
      description: 'A registered artifact could not be loaded (alerting)',
      eventPattern: { source: [EVENT_BUS.source], detailType: ['ModelVersionFailed'] },
      ...(props.onModelVersionFailed?.length ? { targets: [...props.onModelVersionFailed] } : {}),
    });

    const env = {
      [ENV.table]: props.table.table.tableName,
      [ENV.bucket]: props.store.bucket.bucketName,
      [ENV.queueUrl]: this.queue.queueUrl,
    };

    // --- S3 events: register on upload, start batch jobs ---------------------------------------------------
    this.s3EventsFunction = this.makeFunction(
      'S3Events',
      EVENT_HANDLER_ENTRIES.s3Events,
      props,
      props.s3Events,
      {
        sizingProp: 's3Events',
        answersApi: false,
        // A registration of a 256 MiB artifact holds its bytes and an onnxruntime session: the registry's memory.
        memorySize: REGISTRATION_MEMORY_MB,
        timeout: BATCH.functionTimeoutSeconds,
        environment: { ...env, [ENV.eventBus]: this.bus.eventBusName },
        description: 'maas S3 events: register incoming models, start batch jobs',
        serviceName: 'maas-s3-events',
        layer: true,
      },
    );
    this.failedEventsQueue = new sqs.Queue(this, 'FailedS3Events', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.seconds(QUEUE.dlqRetentionSeconds),
    });
    Validations.of(this.failedEventsQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This is the on-failure destination of the S3 events function (a dead-letter queue for S3 events); it has no dead-letter queue of its own.',
    });
    this.s3EventsFunction.configureAsyncInvoke({
      onFailure: new destinations.SqsDestination(this.failedEventsQueue),
      retryAttempts: 2,
      maxEventAge: Duration.hours(6),
    });
    const bucket = props.store.bucket;
    bucket.addEventNotification(
      s3.EventType.OBJECT_CREATED,
      new s3n.LambdaDestination(this.s3EventsFunction),
      { prefix: S3_KEYS.incomingPrefix, suffix: '.onnx' },
    );
    bucket.addEventNotification(
      s3.EventType.OBJECT_CREATED,
      new s3n.LambdaDestination(this.s3EventsFunction),
      { prefix: S3_KEYS.batchPrefix, suffix: `/${BATCH_KEYS.inputFileName}` },
    );
    // Registration (versions + idempotency records) writes the table; artifacts are copied into models/.
    props.table.grantReadWrite(this.s3EventsFunction);
    props.store.grantReadPrefixes(this.s3EventsFunction, 'incoming', 'models', 'batch');
    props.store.grantWritePrefixes(this.s3EventsFunction, 'models', 'batch');
    props.store.grantDeletePrefixes(this.s3EventsFunction, 'batch');
    props.store.grantList(this.s3EventsFunction, 'incoming', 'models', 'batch');
    this.queue.grantSendMessages(this.s3EventsFunction);
    this.bus.grantPutEventsTo(this.s3EventsFunction);

    // --- worker: async requests and batch continuations ------------------------------------------------------
    this.workerFunction = this.makeFunction(
      'Worker',
      EVENT_HANDLER_ENTRIES.asyncWorker,
      props,
      props.worker,
      {
        sizingProp: 'worker',
        answersApi: false,
        memorySize: REGISTRATION_MEMORY_MB,
        timeout: QUEUE.workerTimeoutSeconds,
        environment: env,
        description: 'maas work queue consumer: async inference, batch continuation',
        serviceName: 'maas-worker',
        layer: true,
      },
    );
    this.workerFunction.addEventSource(
      new SqsEventSource(this.queue, { batchSize: QUEUE.batchSize, reportBatchItemFailures: true }),
    );
    // Reads versions; writes idempotency records of batch parts and completes PENDING versions (register-complete:
    // it reads the upload, writes the content-addressed copy and announces the outcome like the registry API).
    props.table.grantReadWrite(this.workerFunction);
    props.store.grantReadPrefixes(this.workerFunction, 'models', 'async', 'batch', 'uploads', 'incoming');
    props.store.grantWritePrefixes(this.workerFunction, 'async', 'batch', 'models');
    props.store.grantDeletePrefixes(this.workerFunction, 'batch');
    props.store.grantList(this.workerFunction, 'models', 'async', 'batch', 'uploads', 'incoming');
    this.queue.grantSendMessages(this.workerFunction);
    this.grantPublish(this.workerFunction);

    // --- async API -------------------------------------------------------------------------------------------
    this.asyncApiFunction = this.makeFunction(
      'AsyncApi',
      EVENT_HANDLER_ENTRIES.asyncApi,
      props,
      props.asyncApi,
      {
        sizingProp: 'asyncApi',
        answersApi: true,
        memorySize: 512,
        timeout: LIMITS.apiFunctionMaxTimeoutSeconds,
        environment: env,
        description: 'maas async inference API, feedback, capture listing',
        serviceName: 'maas-async-api',
        layer: false,
      },
    );
    // Async requests and results (async/); ground truth of POST /v2/models/{name}/feedback (written to feedback/,
    // never read back); GET /models/{name}/capture lists and reads the capture records under capture/.
    props.store.grantReadPrefixes(this.asyncApiFunction, 'async', 'capture');
    props.store.grantWritePrefixes(this.asyncApiFunction, 'async', 'feedback');
    props.store.grantList(this.asyncApiFunction, 'async', 'capture');
    this.queue.grantSendMessages(this.asyncApiFunction);

    for (const fn of props.publishers ?? []) this.grantPublish(fn);
    // A registration past the API's time continues on the work queue (register-complete).
    for (const fn of props.registrars ?? []) this.grantSend(fn);
    // Shadow mirrors are work messages too (type 'shadow'), sent after the answer.
    for (const fn of props.shadowMirrors ?? []) this.grantSend(fn);
    this.acknowledgeNotificationHandler();
  }

  /** Lets `fn` publish registry events: MAAS_EVENT_BUS and events:PutEvents on this bus only. */
  grantPublish(fn: lambda.Function): iam.Grant {
    fn.addEnvironment(ENV.eventBus, this.bus.eventBusName);
    return this.bus.grantPutEventsTo(fn);
  }

  /** Lets `fn` send work messages: MAAS_QUEUE_URL and sqs:SendMessage on the work queue only. */
  grantSend(fn: lambda.Function): iam.Grant {
    fn.addEnvironment(ENV.queueUrl, this.queue.queueUrl);
    return this.queue.grantSendMessages(fn);
  }

  private makeFunction(
    id: string,
    entry: string,
    props: EventPipelinesProps,
    sizing: FunctionSizing = {},
    defaults: Omit<
      MaasNodejsFunctionOptions,
      'entry' | 'onnxRuntime' | 'sizing' | 'logRetention' | 'tracing'
    >,
  ): NodejsFunction {
    return maasNodejsFunction(this, id, {
      ...defaults,
      entry,
      sizing,
      onnxRuntime: props.onnxRuntime,
      ...(props.logRetention !== undefined ? { logRetention: props.logRetention } : {}),
      ...(props.tracing !== undefined ? { tracing: props.tracing } : {}),
    });
  }

  /**
   * S3 notifications are configured by CDK's BucketNotificationsHandler singleton (a custom resource).
   * Its role uses the basic execution managed policy, as CDK builds it.
   */
  private acknowledgeNotificationHandler(): void {
    const stack = Stack.of(this);
    const handler = stack.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834');
    if (!handler) return;
    Validations.of(handler).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason:
        'CDK-managed custom resource that applies the bucket notification configuration at deploy time; it only writes its own logs.',
    });
  }
}

/**
 * EventPipelines: the event-driven side of maas (docs/ARCHITECTURE.md, "Flows": the event-driven flows).
 *
 * - S3 notifications (`incoming/*.onnx`, `batch/*\/input.jsonl`, `batch/*\/input/_SUCCESS`, `batch/*\/cancel`
 *   created) -> the S3 events function, which registers models, starts batch jobs and cancels them;
 * - the work queue (SQS, SSE, TLS only) with its dead-letter queue (after `maxReceiveCount` receives, which the
 *   worker reads from MAAS_MAX_RECEIVE_COUNT), consumed by the worker function with ReportBatchItemFailures (async
 *   requests, registrations, derivations, shadow comparisons mirrored by predict);
 * - the batch queue (same settings, its own dead-letter queue) of batch parts and aggregations, consumed by the
 *   same worker one message per invocation, at most `batchMaxConcurrency` invocations at once;
 * - both dead-letter queues consumed by the worker too, which ends each dead letter as its last receive's failure
 *   would have (an invocation killed out of memory never does), with alarms on dead letters nobody receives, on
 *   dead letters it cannot end, and on S3 events that failed;
 * - the async API function serving the route table's routes with fn 'async';
 * - the registry event bus (EventBridge) with example rules, and `MAAS_EVENT_BUS` on the functions that
 *   publish to it.
 * Every function gets its own role and only the grants it uses. No business logic here.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
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
import { ENV, MAX_RECEIVE_COUNT_RANGE, S3_KEYS } from '../../functions/contract/env';
import { BATCH, BATCH_KEYS, EVENT_BUS, EVENT_HANDLER_ENTRIES, QUEUE } from '../../functions/contract/events';
import { LIMITS } from '../../functions/contract/limits';
import { SERVICE_NAMES } from '../../functions/contract/observability';
import { quoted } from '../../functions/domain/names';
import {
  type FunctionSizing,
  type MaasNodejsFunctionOptions,
  maasNodejsFunction,
  REGISTRATION_MEMORY_MB,
} from './functions';
import type { RegistryTable } from './model-registry-table';
import type { ModelStore } from './model-store';
import type { OnnxRuntimeLayer } from './onnxruntime-layer';
import { MaasValidationError, type Setting } from './validation';

/**
 * The smallest maximum concurrency of an SQS event source (a Lambda limit); the largest is
 * BATCH.maxConcurrencyLimit (1000), Lambda's limit too.
 */
export const SQS_EVENT_SOURCE_MIN_CONCURRENCY = 2;

/** `batch/{jobId}` + this suffix: the keys of `key(jobId)`, for a notification filter. */
const batchKeySuffix = (key: (jobId: string) => string) => key('').slice(S3_KEYS.batchPrefix.length);

/**
 * Suffixes (under `batch/`) of the objects whose creation the S3 events function handles: `/input.jsonl` and
 * `/input/_SUCCESS` start a job, `/cancel` cancels it. S3 refuses two rules of one event type whose prefixes and
 * suffixes both overlap; none of these is a suffix of another.
 */
export const BATCH_EVENT_SUFFIXES = [
  batchKeySuffix(BATCH_KEYS.input),
  batchKeySuffix(BATCH_KEYS.inputMarker),
  batchKeySuffix(BATCH_KEYS.cancel),
] as const;

/**
 * The maximum concurrency of the batch queue's event source: a whole number from 2 to 1000 (Lambda's range for
 * an SQS event source). `raw` is the value as given (a context parameter's text). Unresolved tokens pass.
 */
export function checkBatchMaxConcurrency(n: number, setting: Setting, raw = String(n)): number {
  if (Token.isUnresolved(n)) return n;
  const min = SQS_EVENT_SOURCE_MIN_CONCURRENCY;
  const max = BATCH.maxConcurrencyLimit;
  if (!Number.isInteger(n) || n < min || n > max) {
    const problem = `the batch queue's SQS event source runs from ${min} to ${max} concurrent worker invocations (a Lambda limit)`;
    throw new MaasValidationError(
      setting,
      'prop' in setting
        ? `invalid prop ${setting.prop} '${quoted(raw)}': ${problem}. Set ${setting.prop} to a whole number from ${min} to ${max}, e.g. ${BATCH.maxConcurrency}, or leave it unset for ${BATCH.maxConcurrency}.`
        : `Invalid context parameter -c ${setting.context}='${quoted(raw)}': ${problem}. Pass a whole number from ${min} to ${max}, e.g. -c ${setting.context}=${BATCH.maxConcurrency}, or leave it unset for ${BATCH.maxConcurrency}.`,
    );
  }
  return n;
}

/**
 * The shortest worker timeout (seconds) the worker can keep to: QUEUE.startReserveMs (10 s) to start a work message
 * after a delivery's first, BATCH.reserveMs (5 s) at the end of a batch part to write its segment and queue its
 * continuation, and BATCH.lastReceiveGuardMs (3 s) to end a job whose part still runs on its last receive (18 s).
 */
export const WORKER_MIN_TIMEOUT_SECONDS = Math.ceil(
  (QUEUE.startReserveMs + BATCH.reserveMs + BATCH.lastReceiveGuardMs) / 1000,
);

/**
 * The worker's timeout, from below and from above. Below WORKER_MIN_TIMEOUT_SECONDS the time the worker keeps in
 * reserve is all its time: no work message after the first would start, a batch part would hand on its continuation
 * before scoring anything. Above, against the batch queue's visibility timeout: a batch message whose invocation
 * died is received again a visibility timeout after its receive, and must then find the aggregation's claim or the
 * assembly's lease that the invocation took (BATCH.aggregationLeaseMs) expired, else it is skipped and the job stays
 * running: the timeout may be at most the visibility timeout less the lease (600 s). Unresolved tokens pass.
 */
export function checkWorkerTimeout(timeout: Duration, setting: Setting): Duration {
  if (timeout.isUnresolved()) return timeout;
  const min = WORKER_MIN_TIMEOUT_SECONDS;
  if (timeout.toMilliseconds() < min * 1000) {
    const problem = `the worker keeps ${QUEUE.startReserveMs / 1000} seconds to start a work message after a delivery's first (QUEUE.startReserveMs), ${BATCH.reserveMs / 1000} seconds at the end of a batch part to write its segment and queue its continuation (BATCH.reserveMs) and ${BATCH.lastReceiveGuardMs / 1000} seconds to end a job whose part still runs on its last receive (BATCH.lastReceiveGuardMs), so its timeout is at least ${min} seconds`;
    const fix = `Duration.seconds(${min}) or more, e.g. Duration.seconds(${QUEUE.workerTimeoutSeconds}), or leave it unset for ${QUEUE.workerTimeoutSeconds} seconds`;
    throw new MaasValidationError(
      setting,
      'prop' in setting
        ? `invalid prop ${setting.prop} '${timeout.toHumanString()}': ${problem}. Set ${setting.prop} to ${fix}.`
        : `Invalid context parameter -c ${setting.context}='${timeout.toHumanString()}': ${problem}.`,
    );
  }
  const leaseSeconds = BATCH.aggregationLeaseMs / 1000;
  const max = QUEUE.visibilityTimeoutSeconds - leaseSeconds;
  if (timeout.toSeconds() > max) {
    const problem = `a batch message whose invocation died is received again ${QUEUE.visibilityTimeoutSeconds} seconds (the batch queue's visibility timeout) after its receive, and must then find the aggregation's claim or lease of that invocation expired (${leaseSeconds} seconds, BATCH.aggregationLeaseMs), so the worker's timeout is at most ${max} seconds`;
    const fix = `Duration.seconds(${max}) or less, e.g. Duration.seconds(${QUEUE.workerTimeoutSeconds}), or leave it unset for ${QUEUE.workerTimeoutSeconds} seconds`;
    throw new MaasValidationError(
      setting,
      'prop' in setting
        ? `invalid prop ${setting.prop} '${timeout.toHumanString()}': ${problem}. Set ${setting.prop} to ${fix}.`
        : `Invalid context parameter -c ${setting.context}='${timeout.toHumanString()}': ${problem}.`,
    );
  }
  return timeout;
}

/**
 * The SQS event sources of the worker besides the batch queue's: the work queue and the two dead-letter queues. Each
 * runs at least SQS_EVENT_SOURCE_MIN_CONCURRENCY invocations once it has messages.
 */
const OTHER_WORKER_EVENT_SOURCES = 3;

/**
 * The worker's reserved concurrency against its event sources: at least `batchMaxConcurrency` (the batch queue's
 * event source) plus SQS_EVENT_SOURCE_MIN_CONCURRENCY for each of the three others. Below it Lambda throttles the
 * event sources' invocations; a throttled receive still counts as a receive, so messages drift into the dead-letter
 * queues unrun. Unset (unreserved) or an unresolved token passes.
 */
export function checkWorkerConcurrency(
  reserved: number | undefined,
  batchMaxConcurrency: number,
  setting: Setting,
): void {
  if (reserved === undefined || Token.isUnresolved(reserved) || Token.isUnresolved(batchMaxConcurrency))
    return;
  const min = batchMaxConcurrency + OTHER_WORKER_EVENT_SOURCES * SQS_EVENT_SOURCE_MIN_CONCURRENCY;
  if (reserved >= min) return;
  const problem = `the worker consumes four SQS event sources: the batch queue's, up to batchMaxConcurrency (${batchMaxConcurrency}) invocations at once, and the work queue's and the two dead-letter queues', at least ${SQS_EVENT_SOURCE_MIN_CONCURRENCY} each; with less reserved concurrency than their sum (${min}) Lambda throttles their receives, each of which still counts as a receive, so messages drift into the dead-letter queues unrun`;
  throw new MaasValidationError(
    setting,
    'prop' in setting
      ? `invalid prop ${setting.prop} '${quoted(String(reserved))}': ${problem}. Set ${setting.prop} to at least ${min}, lower batchMaxConcurrency, or leave it unset (unreserved).`
      : `Invalid context parameter -c ${setting.context}='${quoted(String(reserved))}': ${problem}. Pass at least ${min}.`,
  );
}

/**
 * Receives before a message of the work queue or the batch queue goes to its dead-letter queue: a whole number in
 * MAX_RECEIVE_COUNT_RANGE (1 to 1000, SQS's range for a redrive policy). Unresolved tokens pass.
 */
export function checkMaxReceiveCount(n: number, setting: Setting): number {
  if (Token.isUnresolved(n)) return n;
  const { min, max } = MAX_RECEIVE_COUNT_RANGE;
  if (!Number.isInteger(n) || n < min || n > max) {
    const problem = `an SQS redrive policy moves a message to its dead-letter queue after a whole number of receives from ${min} to ${max}`;
    throw new MaasValidationError(
      setting,
      'prop' in setting
        ? `invalid prop ${setting.prop} '${quoted(String(n))}': ${problem}. Set ${setting.prop} to a whole number from ${min} to ${max}, e.g. ${QUEUE.maxReceiveCount}, or leave it unset for ${QUEUE.maxReceiveCount}.`
        : `Invalid context parameter -c ${setting.context}='${quoted(String(n))}': ${problem}. Pass a whole number from ${min} to ${max}.`,
    );
  }
  return n;
}

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
   * past the API's time (artifacts up to LIMITS.maxModelBytes), so it has the registry function's memory. Its
   * timeout is at least WORKER_MIN_TIMEOUT_SECONDS (18 s, the time it keeps in reserve) and at most the batch
   * queue's visibility timeout less BATCH.aggregationLeaseMs (600 s); above the lease (120 s), a duplicate batch
   * message may find the lease of an invocation that still runs expired and do its work again (the same bytes). A
   * reserved concurrency is at least `batchMaxConcurrency` + 6 (2 for each of its other three event sources). Both
   * checked at synth.
   * @default REGISTRATION_MEMORY_MB (3008 MB), QUEUE.workerTimeoutSeconds, unreserved
   */
  readonly worker?: FunctionSizing;
  /**
   * Async API function; it answers the HTTP API, so its timeout is at most 29 seconds (checked at synth).
   * @default 512 MB, 29 seconds
   */
  readonly asyncApi?: FunctionSizing;
  /**
   * Receives before a work message or a batch message goes to its dead-letter queue: a whole number from 1 to 1000
   * (checked at synth). The worker gets it as MAAS_MAX_RECEIVE_COUNT and ends a failing message on that receive.
   * @default QUEUE.maxReceiveCount (3)
   */
  readonly maxReceiveCount?: number;
  /**
   * Most worker invocations scoring batch parts at once, across all jobs: the maximum concurrency of the batch
   * queue's SQS event source, a whole number from 2 to 1000 (checked at synth). A job's own `maxConcurrency`
   * (job.json) bounds its parts in flight within it.
   * @default BATCH.maxConcurrency (10)
   */
  readonly batchMaxConcurrency?: number;
  /** Targets of the example rule on `ModelVersionFailed` (e.g. an SNS topic for alerts). @default - none */
  readonly onModelVersionFailed?: readonly events.IRuleTarget[];
  /** Days of CloudWatch Logs retention (functions and the registry event log). @default ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Active X-Ray tracing of the three functions. @default true */
  readonly tracing?: boolean;
  /**
   * Where the alarms of {@link EventPipelines.alarms} notify when they fire and when they recover (e.g. an SNS
   * topic action).
   * @default - none
   */
  readonly alarmActions?: readonly cloudwatch.IAlarmAction[];
}

/** The alarms on messages the service could not handle (see {@link EventPipelines.alarms}). */
export interface EventPipelineAlarms {
  /**
   * A dead letter of the work queue that nobody received for QUEUE.deadLetterAlarmAgeSeconds (the oldest message's
   * age): the worker does not consume the dead-letter queue (its async request, version or derivation may still
   * read as pending). Named `{stack}-dead-letters`.
   */
  readonly deadLetters: cloudwatch.Alarm;
  /** The same for the batch queue's dead letters (a job that may still read `running`). Named `{stack}-batch-dead-letters`. */
  readonly batchDeadLetters: cloudwatch.Alarm;
  /**
   * A dead letter of the work queue still in its queue, waiting or in flight, through every 5-minute period of
   * QUEUE.deadLetterAlarmAgeSeconds: one the worker keeps failing to end (each failed end gives it back, and it is
   * received again after the visibility timeout). The age alarm cannot see it: SQS leaves a message received three
   * times or more out of ApproximateAgeOfOldestMessage. Named `{stack}-dead-letters-not-ended`.
   */
  readonly deadLettersNotEnded: cloudwatch.Alarm;
  /** The same for the batch queue's dead letters. Named `{stack}-batch-dead-letters-not-ended`. */
  readonly batchDeadLettersNotEnded: cloudwatch.Alarm;
  /**
   * An S3 event the S3 events function still failed after its retries (a registration or a batch start that did
   * not happen): any message in {@link EventPipelines.failedEventsQueue}. Named `{stack}-failed-s3-events`.
   */
  readonly failedS3Events: cloudwatch.Alarm;
}

/**
 * The queues, bus and functions of the event flows. Throws a `MaasValidationError` at synth for a memory size
 * outside Lambda's range, an async API timeout above the API's 30 s, a worker timeout below 18 s or above 600 s
 * (see checkWorkerTimeout), a worker reserved concurrency below what its event sources need (see
 * checkWorkerConcurrency), a `batchMaxConcurrency` outside 2..1000, or a `maxReceiveCount` outside 1..1000.
 */
export class EventPipelines extends Construct {
  /** The work queue (async requests, registrations, derivations, shadow comparisons), SSE, TLS only. */
  readonly queue: sqs.Queue;
  /** Where a work message goes after `maxReceiveCount` receives. */
  readonly deadLetterQueue: sqs.Queue;
  /** The batch queue (batch parts and aggregations), SSE, TLS only. */
  readonly batchQueue: sqs.Queue;
  /** Where a batch message goes after `maxReceiveCount` receives (a poison part). */
  readonly batchDeadLetterQueue: sqs.Queue;
  /** Maximum concurrency of the batch queue's event source (the worker invocations scoring parts at once). */
  readonly batchMaxConcurrency: number;
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
  /**
   * Registers `incoming/*.onnx` uploads, starts batch jobs on `batch/*\/input.jsonl` and `batch/*\/input/_SUCCESS`,
   * cancels them on `batch/*\/cancel`.
   */
  readonly s3EventsFunction: NodejsFunction;
  /** Consumes the work queue and the batch queue. */
  readonly workerFunction: NodejsFunction;
  /** Serves the route table's routes with fn 'async' (the HTTP API invokes it). */
  readonly asyncApiFunction: NodejsFunction;
  /** Alarms on messages the service could not handle: dead letters the worker could not end, failed S3 events. */
  readonly alarms: EventPipelineAlarms;

  constructor(scope: Construct, id: string, props: EventPipelinesProps) {
    super(scope, id);
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.batchMaxConcurrency = checkBatchMaxConcurrency(props.batchMaxConcurrency ?? BATCH.maxConcurrency, {
      prop: 'batchMaxConcurrency',
      scope: this,
    });
    const maxReceiveCount = checkMaxReceiveCount(props.maxReceiveCount ?? QUEUE.maxReceiveCount, {
      prop: 'maxReceiveCount',
      scope: this,
    });
    if (props.worker?.timeout)
      checkWorkerTimeout(props.worker.timeout, { prop: 'worker.timeout', scope: this });
    checkWorkerConcurrency(props.worker?.reservedConcurrentExecutions, this.batchMaxConcurrency, {
      prop: 'worker.reservedConcurrentExecutions',
      scope: this,
    });

    // --- queues + DLQs --------------------------------------------------------------------------------------
    // The dead-letter queues are consumed by the worker too (it ends their messages): the same visibility timeout.
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.seconds(QUEUE.dlqRetentionSeconds),
      visibilityTimeout: Duration.seconds(QUEUE.visibilityTimeoutSeconds),
    });
    this.queue = new sqs.Queue(this, 'WorkQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(QUEUE.visibilityTimeoutSeconds),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount },
    });
    // Batch parts have their own queue: the event source's maximum concurrency bounds the workers scoring them
    // without holding back async requests, and a poison part lands in a dead-letter queue of its own.
    this.batchDeadLetterQueue = new sqs.Queue(this, 'BatchDeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.seconds(QUEUE.dlqRetentionSeconds),
      visibilityTimeout: Duration.seconds(QUEUE.visibilityTimeoutSeconds),
    });
    this.batchQueue = new sqs.Queue(this, 'BatchQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(QUEUE.visibilityTimeoutSeconds),
      deadLetterQueue: { queue: this.batchDeadLetterQueue, maxReceiveCount },
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
    // The functions that start, score, aggregate and cancel batch jobs.
    const batchEnv = { ...env, [ENV.batchQueueUrl]: this.batchQueue.queueUrl };

    // --- S3 events: register on upload, start and cancel batch jobs ------------------------------------------
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
        environment: { ...batchEnv, [ENV.eventBus]: this.bus.eventBusName },
        description: 'maas S3 events: register incoming models, start and cancel batch jobs',
        serviceName: SERVICE_NAMES.s3Events,
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
    for (const suffix of BATCH_EVENT_SUFFIXES) {
      bucket.addEventNotification(
        s3.EventType.OBJECT_CREATED,
        new s3n.LambdaDestination(this.s3EventsFunction),
        { prefix: S3_KEYS.batchPrefix, suffix },
      );
    }
    // Registration (versions + idempotency records) and batch jobs (the job record: created at the start, ended
    // by a cancel) write the table; artifacts are copied into models/. A start reads job.json and ranges of the
    // inputs (ranged GETs are GetObject), lists input/ and writes plan.json and status.json.
    props.table.grantReadWrite(this.s3EventsFunction);
    props.store.grantReadPrefixes(this.s3EventsFunction, 'incoming', 'models', 'batch');
    props.store.grantWritePrefixes(this.s3EventsFunction, 'models', 'batch');
    props.store.grantDeletePrefixes(this.s3EventsFunction, 'batch');
    props.store.grantListBucket(this.s3EventsFunction);
    // The start queues the first parts. (The function sends nothing to the work queue: registrations on upload run
    // within its own time, and batch messages go to the batch queue; it reads the work queue's URL only because its
    // configuration is the event functions' one.)
    this.batchQueue.grantSendMessages(this.s3EventsFunction);
    this.bus.grantPutEventsTo(this.s3EventsFunction);

    // --- worker: async requests, registrations, derivations, shadows; batch parts and aggregations -----------
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
        environment: {
          ...batchEnv,
          [ENV.deadLetterQueueArns]: `${this.deadLetterQueue.queueArn},${this.batchDeadLetterQueue.queueArn}`,
          // The queues' redrive policy: the worker ends a failing message on the receive SQS takes for the last.
          [ENV.maxReceiveCount]: Token.isUnresolved(maxReceiveCount)
            ? Token.asString(maxReceiveCount)
            : String(maxReceiveCount),
        },
        description: 'maas work queue consumer: async inference, batch parts and aggregation',
        serviceName: SERVICE_NAMES.worker,
        layer: true,
      },
    );
    this.workerFunction.addEventSource(
      new SqsEventSource(this.queue, { batchSize: QUEUE.batchSize, reportBatchItemFailures: true }),
    );
    // One batch message per invocation: a part has the whole invocation's time and memory.
    this.workerFunction.addEventSource(
      new SqsEventSource(this.batchQueue, {
        batchSize: 1,
        reportBatchItemFailures: true,
        maxConcurrency: this.batchMaxConcurrency,
      }),
    );
    // Dead letters: a message whose last receive was killed (out of memory) is ended here as that receive's failure
    // would have ended it; one its last receive ended already changes nothing. An end that fails is given back.
    for (const dlq of [this.deadLetterQueue, this.batchDeadLetterQueue]) {
      this.workerFunction.addEventSource(
        new SqsEventSource(dlq, { batchSize: QUEUE.batchSize, reportBatchItemFailures: true }),
      );
    }
    // Reads versions; completes PENDING versions (register-complete: it reads the upload, writes the
    // content-addressed copy and announces the outcome like the registry API); counts parts in the job record
    // (conditional updates, transactions of a part item and the job item) and lists a job's part items.
    props.table.grantReadWrite(this.workerFunction);
    // Batch: ranged reads of the inputs and the plan (GetObject), output segments, status and the aggregated
    // output (PutObject, which also authorises CreateMultipartUpload, UploadPart, UploadPartCopy's destination and
    // CompleteMultipartUpload; the copy's source is a GetObject), deletion of the segments.
    props.store.grantReadPrefixes(this.workerFunction, 'models', 'async', 'batch', 'uploads', 'incoming');
    props.store.grantWritePrefixes(this.workerFunction, 'async', 'batch', 'models');
    props.store.grantDeletePrefixes(this.workerFunction, 'batch');
    props.store.grantListBucket(this.workerFunction);
    // The aggregation's multipart upload of output.jsonl, abandoned when the job ended meanwhile (its parts are never
    // listed: the aggregation keeps their ETags itself).
    iam.Grant.addToPrincipal({
      grantee: this.workerFunction,
      actions: ['s3:AbortMultipartUpload'],
      resourceArns: [props.store.objectsArn('batch')],
    });
    this.queue.grantSendMessages(this.workerFunction);
    // A part queues the next one and its continuation; the last part queues the aggregation.
    this.batchQueue.grantSendMessages(this.workerFunction);
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
        serviceName: SERVICE_NAMES.asyncApi,
        layer: false,
      },
    );
    // Async requests and results (async/: a result too large to answer inline is a presigned GET, signed with this
    // read grant); ground truth of POST /v2/models/{name}/feedback (written to feedback/, never read back);
    // GET /models/{name}/capture lists and reads the capture records under capture/.
    props.store.grantReadPrefixes(this.asyncApiFunction, 'async', 'capture');
    props.store.grantWritePrefixes(this.asyncApiFunction, 'async', 'feedback');
    props.store.grantListBucket(this.asyncApiFunction);
    this.queue.grantSendMessages(this.asyncApiFunction);

    for (const fn of props.publishers ?? []) this.grantPublish(fn);
    // A registration past the API's time continues on the work queue (register-complete).
    for (const fn of props.registrars ?? []) this.grantSend(fn);
    // Shadow mirrors are work messages too (type 'shadow'), sent after the answer.
    for (const fn of props.shadowMirrors ?? []) this.grantSend(fn);
    this.acknowledgeNotificationHandler();

    // --- alarms on what could not be handled ----------------------------------------------------------------
    const stackName = Stack.of(this).stackName;
    const period = Duration.minutes(5);
    const alarmMinutes = QUEUE.deadLetterAlarmAgeSeconds / 60;
    // A dead letter nobody receives: its age grows until the alarm fires. One the worker receives and fails to end is
    // received again every visibility timeout, and from its third receive on SQS leaves it out of the age metric.
    const unreceived = (id: string, queue: sqs.Queue, name: string, what: string) =>
      new cloudwatch.Alarm(this, id, {
        alarmName: `${stackName}-${name}`,
        alarmDescription: `maas: a dead letter of the ${what} has waited ${alarmMinutes} min without being received: the worker does not consume its dead-letter queue (is the event source disabled, or the function failing before its code runs?)`,
        metric: queue.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum', period }),
        threshold: QUEUE.deadLetterAlarmAgeSeconds,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    // A dead letter the worker keeps failing to end stays in the queue, waiting or in flight, while one it ends leaves
    // within seconds of its arrival: the queue holding a message through every period of an hour is the former (a
    // sampled count catches a dead letter that leaves at once only by chance, never twelve periods in a row).
    const periods = QUEUE.deadLetterAlarmAgeSeconds / period.toSeconds();
    const notEnded = (id: string, queue: sqs.Queue, name: string, what: string) =>
      new cloudwatch.Alarm(this, id, {
        alarmName: `${stackName}-${name}`,
        alarmDescription: `maas: a dead letter of the ${what} has stayed in its queue for ${alarmMinutes} min: the worker could not end it (see its log lines '… not failed' with deadLetter: true)`,
        metric: new cloudwatch.MathExpression({
          expression: 'waiting + inFlight',
          usingMetrics: {
            waiting: queue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period }),
            inFlight: queue.metricApproximateNumberOfMessagesNotVisible({ statistic: 'Maximum', period }),
          },
          label: 'dead letters waiting or in flight',
          period,
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    this.alarms = {
      deadLetters: unreceived('DeadLettersAlarm', this.deadLetterQueue, 'dead-letters', 'work queue'),
      batchDeadLetters: unreceived(
        'BatchDeadLettersAlarm',
        this.batchDeadLetterQueue,
        'batch-dead-letters',
        'batch queue',
      ),
      deadLettersNotEnded: notEnded(
        'DeadLettersNotEndedAlarm',
        this.deadLetterQueue,
        'dead-letters-not-ended',
        'work queue',
      ),
      batchDeadLettersNotEnded: notEnded(
        'BatchDeadLettersNotEndedAlarm',
        this.batchDeadLetterQueue,
        'batch-dead-letters-not-ended',
        'batch queue',
      ),
      failedS3Events: new cloudwatch.Alarm(this, 'FailedS3EventsAlarm', {
        alarmName: `${stackName}-failed-s3-events`,
        alarmDescription:
          'maas: an S3 event (a registration on upload, a batch start or cancel) failed after its retries: it waits in the FailedS3Events queue with its error',
        metric: this.failedEventsQueue.metricApproximateNumberOfMessagesVisible({
          statistic: 'Maximum',
          period: Duration.minutes(5),
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    };
    for (const action of props.alarmActions ?? []) {
      for (const alarm of Object.values(this.alarms)) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
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

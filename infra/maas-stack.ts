/**
 * MaasStack: composes the constructs of `infra/constructs/` (docs/ARCHITECTURE.md, "Layers": the CDK
 * app is the outermost layer and holds no business logic); nothing else.
 */
import { CfnOutput, type Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';
import type { FunctionId } from '../functions/contract/routes';
import {
  type AliasAlarmOptions,
  type AliasAlarmSpec,
  type AliasAlarms,
  MaasAlarms,
} from './constructs/alarms';
import { CaptureDelivery } from './constructs/capture-delivery';
import { MaasDashboard, type MaasDashboardProps } from './constructs/dashboard';
import { EventPipelines } from './constructs/event-pipelines';
import { type FunctionSizing, MaasFunctions } from './constructs/functions';
import { type ApiAuthorization, InferenceApi } from './constructs/inference-api';
import { RegistryTable } from './constructs/model-registry-table';
import { ModelStore } from './constructs/model-store';
import { OnnxRuntimeLayer } from './constructs/onnxruntime-layer';
import { RolloutController } from './constructs/rollout-controller';
import { TracerLayer } from './constructs/tracer-layer';
import { checkDataRemovalPolicy } from './constructs/validation';

/** Capture delivery settings of {@link MaasStackProps.capture}. */
export interface CaptureProps {
  /**
   * Deliver capture records (the functions' `eventVersion: "0"` stdout lines) to `capture/` of the bucket.
   * @default true
   */
  readonly enabled?: boolean;
  /** Firehose buffering interval, 60-900 s. @default Duration.seconds(60) */
  readonly bufferInterval?: Duration;
  /** Firehose buffer size, 64-128 MiB. @default 64 */
  readonly bufferSizeMiB?: number;
}

/** Dashboard settings of {@link MaasStackProps.dashboard}. */
export type DashboardProps = Omit<MaasDashboardProps, 'functions' | 'propPath'>;

/** Props of {@link MaasStack}; invalid values throw a `MaasValidationError` at synth. */
export interface MaasStackProps extends StackProps {
  /** Lambda architecture of the functions and the onnxruntime layer. @default Architecture.X86_64 */
  readonly architecture?: lambda.Architecture;
  /**
   * Predict function sizing (memory 128-10240 MB, timeout at most 30 s, reserved/provisioned concurrency).
   * @default {} (1769 MB, 29 seconds)
   */
  readonly predict?: FunctionSizing;
  /** Registry function sizing (memory 128-10240 MB). @default {} (3008 MB, 29 seconds) */
  readonly registry?: FunctionSizing;
  /**
   * `MAAS_PRELOAD` of the predict function: comma-separated `name` or `name@ref` (a version number or an
   * alias name), e.g. `iris@prod,mnist@2`.
   * @default - none
   */
  readonly preload?: string;
  /** How the API's non-public routes are protected. @default { type: 'iam' } (SigV4) */
  readonly authorization?: ApiAuthorization;
  /** Stage steady-state requests per second. @default 100 */
  readonly throttlingRateLimit?: number;
  /** Stage burst. @default 200 */
  readonly throttlingBurstLimit?: number;
  /**
   * Removal policy of the model bucket and the table: RETAIN, RETAIN_ON_UPDATE_OR_DELETE (kept on deletion, deleted
   * when the stack's creation rolls back) or DESTROY; SNAPSHOT is refused at synth (neither has a snapshot). With
   * `DESTROY`, `cdk destroy` deletes them, the bucket's objects (every version) first; the access-log bucket is
   * retained either way (its logs arrive late).
   * @default RemovalPolicy.RETAIN
   */
  readonly dataRemovalPolicy?: RemovalPolicy;
  /**
   * Origins allowed to PUT to the bucket with a presigned URL from a browser (`http(s)://host[:port]`).
   * @default - no CORS rule
   */
  readonly corsOrigins?: readonly string[];
  /**
   * Active X-Ray tracing of every function (HTTP APIs have no X-Ray integration: traces start at the function).
   * On, the functions that record Powertools Tracer subsegments (predict, registry) get the tracer layer; off,
   * the stack has no tracer layer.
   * @default true
   */
  readonly tracing?: boolean;
  /** Capture delivery (CloudWatch Logs subscription -> Firehose -> `capture/`). @default { enabled: true } */
  readonly capture?: CaptureProps;
  /**
   * The CloudWatch dashboard: `false` for none, `true` or settings (models, period, name) for one.
   * @default true (all models, by SEARCH expressions)
   */
  readonly dashboard?: boolean | DashboardProps;
  /**
   * Aliases to alarm on (error rate and p99 latency of route `stable`); {@link MaasStack.alarmsFor} adds more.
   * @default - none
   */
  readonly alarms?: readonly AliasAlarmSpec[];
  /**
   * Minutes between two scheduled checks of the active rollouts by the rollout controller, a whole number from 1 to
   * 60: bake times are honoured to within it (an alarm going into ALARM rolls back at once, whatever the interval).
   * @default 1
   */
  readonly rolloutTickMinutes?: number;
  /**
   * Most worker invocations scoring batch parts at once, across all jobs (the maximum concurrency of the batch
   * queue's SQS event source): a whole number from 2 to 1000 (Lambda's range). A job's own `maxConcurrency`
   * (job.json) bounds its parts in flight within it.
   * @default BATCH.maxConcurrency (10)
   */
  readonly batchMaxConcurrency?: number;
  /**
   * Where the alarms on messages the service could not handle notify (dead letters nobody received or the worker
   * could not end, failed S3 events: `stack.events.alarms`), e.g. an SNS topic action.
   * @default - none
   */
  readonly eventAlarmActions?: readonly cloudwatch.IAlarmAction[];
}

/**
 * The whole service: model store, registry table, onnxruntime and tracer layers, functions, HTTP API, event flows,
 * rollout controller.
 */
export class MaasStack extends Stack {
  /** The bucket of model artifacts and event files. */
  readonly store: ModelStore;
  /** The registry's DynamoDB table. */
  readonly registryTable: RegistryTable;
  /** The onnxruntime layer. */
  readonly onnxRuntime: OnnxRuntimeLayer;
  /** The tracer layer (Powertools Tracer, X-Ray SDK) of the traced functions; undefined with `tracing: false`. */
  readonly tracer: TracerLayer | undefined;
  /** The predict and registry functions. */
  readonly functions: MaasFunctions;
  /** The HTTP API. */
  readonly api: InferenceApi;
  /** The work queue, event bus and event-driven functions. */
  readonly events: EventPipelines;
  /** Capture delivery to `capture/`; undefined with `capture.enabled: false`. */
  readonly capture: CaptureDelivery | undefined;
  /** The CloudWatch dashboard; undefined with `dashboard: false`. */
  readonly dashboard: MaasDashboard | undefined;
  /** The alarms of the `alarms` prop and of {@link alarmsFor}. */
  readonly alarms: MaasAlarms;
  /** The rollout controller: its function, its schedule and its rule on CloudWatch alarms going into ALARM. */
  readonly rollouts: RolloutController;

  constructor(scope: Construct, id: string, props: MaasStackProps = {}) {
    super(scope, id, props);
    const removalPolicy = checkDataRemovalPolicy(props.dataRemovalPolicy ?? RemovalPolicy.RETAIN, {
      prop: 'dataRemovalPolicy',
      scope: this,
    });
    this.store = new ModelStore(this, 'ModelStore', {
      removalPolicy,
      ...(props.corsOrigins ? { corsOrigins: props.corsOrigins } : {}),
    });
    this.registryTable = new RegistryTable(this, 'RegistryTable', { removalPolicy });
    this.onnxRuntime = new OnnxRuntimeLayer(this, 'OnnxRuntime', {
      architecture: props.architecture ?? lambda.Architecture.X86_64,
    });
    this.tracer =
      (props.tracing ?? true)
        ? new TracerLayer(this, 'Tracer', { runtime: this.onnxRuntime.runtime })
        : undefined;
    this.functions = new MaasFunctions(this, 'Functions', {
      store: this.store,
      table: this.registryTable,
      onnxRuntime: this.onnxRuntime,
      ...(props.predict ? { predict: props.predict } : {}),
      ...(props.registry ? { registry: props.registry } : {}),
      ...(props.preload ? { preload: props.preload } : {}),
      ...(props.tracing !== undefined ? { tracing: props.tracing } : {}),
      ...(this.tracer ? { tracerLayer: this.tracer } : {}),
    });

    /** The function serving each FunctionId of the route table; routes of absent functions are skipped. */
    const apiFunctions: Partial<Record<FunctionId, lambda.IFunction>> = {
      predict: this.functions.predict.target,
      registry: this.functions.registry.target,
    };

    // --- event pipelines (infra/constructs/event-pipelines.ts) -------------------------------------------
    this.events = new EventPipelines(this, 'Events', {
      store: this.store,
      table: this.registryTable,
      onnxRuntime: this.onnxRuntime,
      publishers: [this.functions.registry.fn],
      registrars: [this.functions.registry.fn],
      shadowMirrors: [this.functions.predict.fn],
      ...(props.batchMaxConcurrency !== undefined ? { batchMaxConcurrency: props.batchMaxConcurrency } : {}),
      ...(props.tracing !== undefined ? { tracing: props.tracing } : {}),
      ...(props.eventAlarmActions ? { alarmActions: props.eventAlarmActions } : {}),
    });
    apiFunctions.async = this.events.asyncApiFunction;
    // ------------------------------------------------------------------------------------------------------

    // --- staged rollouts (infra/constructs/rollout-controller.ts) -------------------------------------------
    this.rollouts = new RolloutController(this, 'Rollouts', {
      table: this.registryTable,
      bus: this.events.bus,
      onnxRuntime: this.onnxRuntime,
      ...(props.rolloutTickMinutes !== undefined ? { rolloutTickMinutes: props.rolloutTickMinutes } : {}),
      ...(props.tracing !== undefined ? { tracing: props.tracing } : {}),
    });
    // ------------------------------------------------------------------------------------------------------

    this.api = new InferenceApi(this, 'InferenceApi', {
      functions: apiFunctions,
      ...(props.authorization ? { authorization: props.authorization } : {}),
      ...(props.throttlingRateLimit !== undefined ? { throttlingRateLimit: props.throttlingRateLimit } : {}),
      ...(props.throttlingBurstLimit !== undefined
        ? { throttlingBurstLimit: props.throttlingBurstLimit }
        : {}),
    });

    // --- observability (infra/constructs/capture-delivery.ts, dashboard.ts, alarms.ts) -------------------------
    const capture = props.capture ?? {};
    this.capture =
      capture.enabled === false
        ? undefined
        : new CaptureDelivery(this, 'Capture', {
            store: this.store,
            // The functions that write capture records to stdout: predict (sync inference), the worker (async).
            sources: [
              { id: 'Predict', logGroup: this.functions.predict.logGroup },
              { id: 'Worker', logGroup: this.events.workerFunction.logGroup },
            ],
            ...(capture.bufferInterval ? { bufferInterval: capture.bufferInterval } : {}),
            ...(capture.bufferSizeMiB !== undefined ? { bufferSizeMiB: capture.bufferSizeMiB } : {}),
            propPath: 'capture',
          });
    const dashboard = props.dashboard ?? true;
    this.dashboard =
      dashboard === false
        ? undefined
        : new MaasDashboard(this, 'Dashboard', {
            ...(dashboard === true ? {} : dashboard),
            functions: { predict: this.functions.predict.fn },
            propPath: 'dashboard',
          });
    this.alarms = new MaasAlarms(this, 'Alarms', {
      ...(props.alarms ? { aliases: props.alarms } : {}),
      propPath: 'alarms',
    });
    // ------------------------------------------------------------------------------------------------------

    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'Base URL of the HTTP API' });
    if (this.api.invokePolicy && this.api.adminPolicy) {
      new CfnOutput(this, 'InvokePolicyArn', {
        value: this.api.invokePolicy.managedPolicyArn,
        description: 'Managed policy: call the inference routes (attach to the roles that may infer)',
      });
      new CfnOutput(this, 'AdminPolicyArn', {
        value: this.api.adminPolicy.managedPolicyArn,
        description: 'Managed policy: call the model registry routes (register, delete, move aliases)',
      });
    }
    new CfnOutput(this, 'BucketName', {
      value: this.store.bucket.bucketName,
      description: 'Model store bucket',
    });
    new CfnOutput(this, 'WorkQueueUrl', {
      value: this.events.queue.queueUrl,
      description: 'Work queue (async inference, registration completions, derived versions, shadow traffic)',
    });
    new CfnOutput(this, 'DeadLetterQueueUrl', {
      value: this.events.deadLetterQueue.queueUrl,
      description: 'Dead-letter queue of the work queue',
    });
    new CfnOutput(this, 'BatchQueueUrl', {
      value: this.events.batchQueue.queueUrl,
      description: 'Batch queue (the parts and aggregations of batch jobs)',
    });
    new CfnOutput(this, 'BatchDeadLetterQueueUrl', {
      value: this.events.batchDeadLetterQueue.queueUrl,
      description: 'Dead-letter queue of the batch queue (poison parts)',
    });
    new CfnOutput(this, 'EventBusName', {
      value: this.events.bus.eventBusName,
      description: 'Registry events',
    });
    new CfnOutput(this, 'TableName', {
      value: this.registryTable.table.tableName,
      description: 'Registry table',
    });
    if (this.capture) {
      new CfnOutput(this, 'CaptureDeliveryStreamName', {
        value: this.capture.deliveryStream.deliveryStreamName,
        description: 'Firehose stream delivering capture records to capture/ of the bucket',
      });
    }
    if (this.dashboard) {
      new CfnOutput(this, 'DashboardName', {
        value: this.dashboard.dashboard.dashboardName,
        description: 'CloudWatch dashboard of the service',
      });
    }
  }

  /**
   * Alarms on `model@alias` (route `stable`): ServerErrors / Requests above `errorRate`, Latency p99 above `p99Ms`,
   * missing data not breaching. Names and numbers are checked at synth.
   */
  alarmsFor(model: string, alias: string, options: AliasAlarmOptions = {}): AliasAlarms {
    return this.alarms.alarmsFor(model, alias, options);
  }
}

/**
 * MaasFunctions: the predict and registry Lambda functions (NodejsFunction, esbuild local bundling),
 * both with the onnxruntime layer and, when traced, the tracer layer, each granted only what it uses.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, type NodejsFunctionProps, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { BUNDLE_OPTIONS } from '../../functions/contract/bundling';
import { ENV, HANDLER_ENTRIES } from '../../functions/contract/env';
import { LIMITS } from '../../functions/contract/limits';
import { SERVICE_NAMES } from '../../functions/contract/observability';
import type { RegistryTable } from './model-registry-table';
import type { ModelStore } from './model-store';
import type { OnnxRuntimeLayer } from './onnxruntime-layer';
import { TracerLayer } from './tracer-layer';
import { checkApiTimeout, checkConcurrency, checkMemorySize, checkPreload } from './validation';

/**
 * Memory of a function that registers models (the registry API, the S3 events function): a registration holds
 * the artifact's bytes (up to LIMITS.maxModelBytes, 256 MiB), a copy for the content hash and upload, and an
 * onnxruntime session of the model (its weights again, plus the graph): about four times the artifact, on top of
 * the runtime and the bundle. 3008 MB also buys close to two vCPUs for the session build.
 */
export const REGISTRATION_MEMORY_MB = 3008;

/**
 * `NODE_OPTIONS` of every function: stack traces map through the deployed source maps to the TypeScript
 * sources, so a logged error names `functions/...ts` lines instead of positions in the minified bundle.
 */
export const NODE_OPTIONS = '--enable-source-maps';

/** The repository root: entry files in the contract are relative to it. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Sizing of one function. Checked at synth: memory within Lambda's range, and the timeout of a function
 * that answers the HTTP API (predict, registry, async API) at most API Gateway's 30 s integration timeout.
 */
export interface FunctionSizing {
  /**
   * Memory in MB, a whole number from 128 to 10240 (Lambda's range); CPU grows with it (1769 MB is one vCPU).
   * @default 1769 for predict (one full vCPU), {@link REGISTRATION_MEMORY_MB} for registry (it holds the artifact and a session)
   */
  readonly memorySize?: number;
  /**
   * Function timeout; at most 29 seconds for the functions that answer the HTTP API (under API Gateway HTTP
   * API's 30 s integration timeout, so the function answers first).
   * @default 29 seconds
   */
  readonly timeout?: Duration;
  /** Reserved concurrency (caps the function), a whole number of at least 1 (checked at synth). @default - unreserved */
  readonly reservedConcurrentExecutions?: number;
  /**
   * Provisioned concurrency on a `live` alias of the current version; the API then invokes the alias. Predict and
   * registry only (refused at synth for the other functions, which have no such alias); at most the reserved
   * concurrency when that is set.
   * @default - none (no alias, the API invokes $LATEST)
   */
  readonly provisionedConcurrentExecutions?: number;
}

/** Props of {@link MaasFunctions}. */
export interface MaasFunctionsProps {
  /** The model store: predict reads `models/`; registry also reads `uploads/` and `incoming/`, writes `models/` and `uploads/`. */
  readonly store: ModelStore;
  /** The registry table: predict reads it, registry reads and writes it. */
  readonly table: RegistryTable;
  /** The onnxruntime layer; the functions use its architecture and runtime. */
  readonly onnxRuntime: OnnxRuntimeLayer;
  /** Predict function sizing. @default {} (1769 MB, 29 seconds, unreserved, no provisioned concurrency) */
  readonly predict?: FunctionSizing;
  /** Registry function sizing. @default {} (3008 MB, 29 seconds, unreserved, no provisioned concurrency) */
  readonly registry?: FunctionSizing;
  /**
   * Sessions the predict function loads during INIT (`MAAS_PRELOAD`): comma-separated `name` or `name@ref`,
   * each name a model name and each ref a version number or an alias name (checked at synth).
   * @default - none
   */
  readonly preload?: string;
  /** Days of CloudWatch Logs retention. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Active X-Ray tracing of both functions. @default true */
  readonly tracing?: boolean;
  /**
   * The tracer layer (Powertools Tracer, X-Ray SDK), attached to both functions when {@link tracing} is on: they
   * load the tracer when traced, and their bundles leave it out. Unused when tracing is off.
   * @default - a TracerLayer of this construct's own when tracing is on
   */
  readonly tracerLayer?: TracerLayer;
}

/**
 * NodejsFunction bundling from the contract's esbuild options (functions/contract/bundling.ts), shared
 * with the benchmark and the smoke tests: ESM, minified, source maps, Node.js 24; onnxruntime stays external
 * (the layer provides it). Local esbuild only, never Docker.
 */
export const BUNDLING: NonNullable<NodejsFunctionProps['bundling']> = {
  format: OutputFormat.ESM,
  target: BUNDLE_OPTIONS.target,
  mainFields: [...BUNDLE_OPTIONS.mainFields],
  minify: BUNDLE_OPTIONS.minify,
  keepNames: BUNDLE_OPTIONS.keepNames,
  sourceMap: BUNDLE_OPTIONS.sourcemap,
  sourcesContent: BUNDLE_OPTIONS.sourcesContent,
  externalModules: [...BUNDLE_OPTIONS.external],
  banner: BUNDLE_OPTIONS.banner.js,
  forceDockerBundling: false,
};

/** What {@link maasNodejsFunction} needs besides its scope and id. */
export interface MaasNodejsFunctionOptions {
  /** Entry file relative to the repository root (from the contract). */
  readonly entry: string;
  /** The onnxruntime layer, whose runtime and architecture the function uses. */
  readonly onnxRuntime: OnnxRuntimeLayer;
  /** Sizing from the construct's props; overrides {@link memorySize} and {@link timeout}. */
  readonly sizing: FunctionSizing;
  /** The props field {@link sizing} comes from (`predict`, `asyncApi`...), named in validation errors. */
  readonly sizingProp: string;
  /** Whether the function loads onnxruntime (the layer is attached). */
  readonly layer: boolean;
  /**
   * Whether the function's work is the HTTP API's response, so that its timeout may not exceed API Gateway's
   * integration timeout (checked at synth).
   */
  readonly answersApi: boolean;
  /** Default memory in MB, unless `sizing.memorySize` says otherwise. */
  readonly memorySize: number;
  /** Default timeout in seconds, unless `sizing.timeout` says otherwise. */
  readonly timeout: number;
  /** Environment variables; `NODE_OPTIONS` ({@link NODE_OPTIONS}) is added to every function. */
  readonly environment: Readonly<Record<string, string>>;
  /** Function description. */
  readonly description: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Active X-Ray tracing (`lambda.Tracing.ACTIVE`): Lambda samples requests and the Powertools Tracer records the
   * subsegments of `TRACE_SPANS`. Off, `POWERTOOLS_TRACE_ENABLED=false` keeps the tracer out of the request path.
   * @default true
   */
  readonly tracing?: boolean;
  /**
   * `POWERTOOLS_SERVICE_NAME` of the function (the `Service` of its traces), e.g. `maas-predict`.
   * @default - not set
   */
  readonly serviceName?: string;
  /**
   * The tracer layer, attached when {@link tracing} is on: required by a function that calls `loadTracer`
   * (functions/adapters/powertools-tracer.ts), since the bundles leave the tracer out.
   * @default - none (a function that never loads the tracer)
   */
  readonly tracerLayer?: TracerLayer;
  /**
   * Whether the caller puts `sizing.provisionedConcurrentExecutions` on an alias (predict and registry, through the
   * `live` alias the API invokes); where it does not, a value is refused at synth rather than ignored.
   * @default false
   */
  readonly provisionedConcurrency?: boolean;
}

/**
 * Powertools' own settings, read by Powertools itself (not by maas code): `POWERTOOLS_SERVICE_NAME` names the
 * function in its traces, `POWERTOOLS_TRACE_ENABLED=false` turns the tracer off where X-Ray tracing is not active.
 */
export const POWERTOOLS_ENV = {
  serviceName: 'POWERTOOLS_SERVICE_NAME',
  traceEnabled: 'POWERTOOLS_TRACE_ENABLED',
} as const;

/** Why the X-Ray write actions are granted on `*` (cdk-nag AwsSolutions-IAM5). */
const XRAY_WILDCARD_REASON =
  'Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions (the X-Ray service authorization reference lists no resource type for them), so Lambda grants them on *; they only write trace data.';

/**
 * One maas Lambda function: NodejsFunction bundled with the contract's options, the layer's runtime and
 * architecture, its own log group, and a role that may write only there (instead of
 * AWSLambdaBasicExecutionRole, which reaches every log group). Throws a `MaasValidationError` naming
 * `<sizingProp>.memorySize` or `<sizingProp>.timeout` when the sizing is out of range.
 */
export function maasNodejsFunction(
  scope: Construct,
  id: string,
  o: MaasNodejsFunctionOptions,
): NodejsFunction {
  const memorySize = checkMemorySize(o.sizing.memorySize ?? o.memorySize, {
    prop: `${o.sizingProp}.memorySize`,
    scope,
  });
  const timeout = o.sizing.timeout ?? Duration.seconds(o.timeout);
  checkConcurrency(o.sizing, o.sizingProp, scope, o.provisionedConcurrency ?? false);
  if (o.answersApi) checkApiTimeout(timeout, { prop: `${o.sizingProp}.timeout`, scope });
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: o.logRetention ?? logs.RetentionDays.ONE_MONTH,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `maas ${id} function`,
  });
  logGroup.grantWrite(role);
  const tracing = o.tracing ?? true;
  const layers = [
    ...(o.layer ? [o.onnxRuntime.layer] : []),
    ...(tracing && o.tracerLayer ? [o.tracerLayer.layer] : []),
  ];
  const fn = new NodejsFunction(scope, id, {
    role,
    entry: join(REPO_ROOT, o.entry),
    handler: 'handler',
    projectRoot: REPO_ROOT,
    depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
    runtime: o.onnxRuntime.runtime,
    architecture: o.onnxRuntime.architecture,
    ...(layers.length > 0 ? { layers } : {}),
    memorySize,
    timeout,
    ...(o.sizing.reservedConcurrentExecutions !== undefined
      ? { reservedConcurrentExecutions: o.sizing.reservedConcurrentExecutions }
      : {}),
    environment: {
      ...o.environment,
      NODE_OPTIONS,
      ...(o.serviceName ? { [POWERTOOLS_ENV.serviceName]: o.serviceName } : {}),
      ...(tracing ? {} : { [POWERTOOLS_ENV.traceEnabled]: 'false' }),
    },
    description: o.description,
    logGroup,
    tracing: tracing ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
    bundling: BUNDLING,
  });
  if (tracing) {
    // Lambda adds the X-Ray statement to the role's default policy (created by the log group grant above), where
    // cdk-nag reports it: acknowledged there, so a `*` in another policy of the role is still reported.
    const policy = role.node.tryFindChild('DefaultPolicy');
    if (!policy) throw new Error(`${role.node.path}: no default policy to hold the X-Ray grant`);
    Validations.of(policy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: XRAY_WILDCARD_REASON,
    });
  }
  return fn;
}

/** A function and what the API should invoke (its `live` alias when provisioned concurrency is set). */
export interface MaasFunction {
  /** The function. */
  readonly fn: NodejsFunction;
  /** Its log group (stdout: log lines, EMF metric documents, capture records), with the construct's retention. */
  readonly logGroup: logs.ILogGroup;
  /** What the API invokes: the `live` alias with provisioned concurrency, else {@link fn} itself. */
  readonly target: lambda.IFunction;
}

/**
 * The predict and registry functions. Throws a `MaasValidationError` at synth for an invalid `preload`, a
 * memory size outside Lambda's range, or a predict or registry timeout above the API's 30 s.
 */
export class MaasFunctions extends Construct {
  /** Serves inference (Open Inference Protocol v2) through the HTTP API. */
  readonly predict: MaasFunction;
  /** Serves the model registry routes of the HTTP API. */
  readonly registry: MaasFunction;
  /** The tracer layer attached to both functions; undefined when tracing is off. */
  readonly tracerLayer: TracerLayer | undefined;

  constructor(scope: Construct, id: string, props: MaasFunctionsProps) {
    super(scope, id);
    if (props.preload !== undefined) checkPreload(props.preload, { prop: 'preload', scope: this });
    // Both functions load the Powertools Tracer when traced (loadTracer): the tracer layer goes with tracing.
    this.tracerLayer =
      (props.tracing ?? true)
        ? (props.tracerLayer ?? new TracerLayer(this, 'Tracer', { runtime: props.onnxRuntime.runtime }))
        : undefined;
    const common = {
      [ENV.table]: props.table.table.tableName,
      [ENV.bucket]: props.store.bucket.bucketName,
    };
    this.predict = this.makeFunction('Predict', HANDLER_ENTRIES.predict, props, props.predict ?? {}, {
      sizingProp: 'predict',
      answersApi: true,
      memorySize: 1769,
      timeout: LIMITS.apiFunctionMaxTimeoutSeconds,
      environment: { ...common, ...(props.preload ? { [ENV.preload]: props.preload } : {}) },
      description: 'maas inference (Open Inference Protocol v2)',
      serviceName: SERVICE_NAMES.predict,
    });
    // The registry answers the HTTP API too: a registration that outlived API Gateway's 30 s would be
    // recorded after the caller got a 503. At 29 s the function answers first; a registration that does not
    // fit its remaining time continues on the work queue (202, PENDING), and registration is idempotent.
    this.registry = this.makeFunction('Registry', HANDLER_ENTRIES.registry, props, props.registry ?? {}, {
      sizingProp: 'registry',
      answersApi: true,
      memorySize: REGISTRATION_MEMORY_MB,
      timeout: LIMITS.apiFunctionMaxTimeoutSeconds,
      environment: common,
      description: 'maas model registry',
      serviceName: SERVICE_NAMES.registry,
    });

    // predict: reads the registry and the content-addressed artifacts.
    props.table.grantRead(this.predict.fn);
    props.store.grantReadPrefixes(this.predict.fn, 'models');
    // A missing artifact must be a 404, not S3's 403 without a list permission (see grantListBucket).
    props.store.grantListBucket(this.predict.fn);
    // registry: owns the table; presigns upload PUTs, copies uploads/ and incoming/ into models/ (uploads
    // are left to the bucket's lifecycle rule, so no delete permission).
    props.table.grantReadWrite(this.registry.fn);
    props.store.grantReadPrefixes(this.registry.fn, 'models', 'uploads', 'incoming');
    props.store.grantWritePrefixes(this.registry.fn, 'models', 'uploads');
    props.store.grantListBucket(this.registry.fn);
  }

  private makeFunction(
    id: string,
    entry: string,
    props: MaasFunctionsProps,
    sizing: FunctionSizing,
    defaults: Omit<
      MaasNodejsFunctionOptions,
      | 'entry'
      | 'onnxRuntime'
      | 'sizing'
      | 'logRetention'
      | 'layer'
      | 'tracing'
      | 'tracerLayer'
      | 'provisionedConcurrency'
    >,
  ): MaasFunction {
    const fn = maasNodejsFunction(this, id, {
      ...defaults,
      entry,
      sizing,
      provisionedConcurrency: true,
      onnxRuntime: props.onnxRuntime,
      layer: true,
      ...(props.logRetention !== undefined ? { logRetention: props.logRetention } : {}),
      ...(props.tracing !== undefined ? { tracing: props.tracing } : {}),
      ...(this.tracerLayer ? { tracerLayer: this.tracerLayer } : {}),
    });
    // The explicit log group maasNodejsFunction created (props.logGroup), which subscription filters attach to.
    const logGroup = fn.logGroup;
    if (!sizing.provisionedConcurrentExecutions) return { fn, target: fn, logGroup };
    const alias = new lambda.Alias(this, `${id}Live`, {
      aliasName: 'live',
      version: fn.currentVersion,
      provisionedConcurrentExecutions: sizing.provisionedConcurrentExecutions,
    });
    return { fn, target: alias, logGroup };
  }
}

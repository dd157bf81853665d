/**
 * MaasFunctions: the predict and registry Lambda functions (NodejsFunction, esbuild local bundling),
 * both with the onnxruntime layer, each granted only what it uses.
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
import type { RegistryTable } from './model-registry-table';
import type { ModelStore } from './model-store';
import type { OnnxRuntimeLayer } from './onnxruntime-layer';

/** The repository root: entry files in the contract are relative to it. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Sizing of one function. */
export interface FunctionSizing {
  /** @default 1769 for predict (one full vCPU), 3008 for registry (it holds the artifact and a session) */
  readonly memorySize?: number;
  /** @default 30 seconds for predict, 60 for registry (it downloads and loads the model it validates) */
  readonly timeout?: Duration;
  /** Reserved concurrency (caps the function). @default - unreserved */
  readonly reservedConcurrentExecutions?: number;
  /**
   * Provisioned concurrency on a `live` alias of the current version; the API then invokes the alias.
   * @default - none (no alias, the API invokes $LATEST)
   */
  readonly provisionedConcurrentExecutions?: number;
}

export interface MaasFunctionsProps {
  readonly store: ModelStore;
  readonly table: RegistryTable;
  /** The onnxruntime layer; the functions use its architecture and runtime. */
  readonly onnxRuntime: OnnxRuntimeLayer;
  /** @default {} */
  readonly predict?: FunctionSizing;
  /** @default {} */
  readonly registry?: FunctionSizing;
  /** `name@ref,...` sessions the predict function loads during INIT (`MAAS_PRELOAD`). @default - none */
  readonly preload?: string;
  /** Days of CloudWatch Logs retention. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * NodejsFunction bundling from the contract's esbuild options (functions/contract/bundling.ts), shared
 * with the benchmark and the smoke tests: ESM, minified, source maps, Node.js 22; onnxruntime stays external
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
  readonly onnxRuntime: OnnxRuntimeLayer;
  readonly sizing: FunctionSizing;
  /** Whether the function loads onnxruntime (the layer is attached). */
  readonly layer: boolean;
  readonly memorySize: number;
  /** Seconds, unless `sizing.timeout` says otherwise. */
  readonly timeout: number;
  readonly environment: Record<string, string>;
  readonly description: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * One maas Lambda function: NodejsFunction bundled with the contract's options, the layer's runtime and
 * architecture, its own log group, and a role that may write only there (instead of
 * AWSLambdaBasicExecutionRole, which reaches every log group).
 */
export function maasNodejsFunction(
  scope: Construct,
  id: string,
  o: MaasNodejsFunctionOptions,
): NodejsFunction {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: o.logRetention ?? logs.RetentionDays.ONE_MONTH,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `maas ${id} function`,
  });
  logGroup.grantWrite(role);
  const fn = new NodejsFunction(scope, id, {
    role,
    entry: join(REPO_ROOT, o.entry),
    handler: 'handler',
    projectRoot: REPO_ROOT,
    depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
    runtime: o.onnxRuntime.runtime,
    architecture: o.onnxRuntime.architecture,
    ...(o.layer ? { layers: [o.onnxRuntime.layer] } : {}),
    memorySize: o.sizing.memorySize ?? o.memorySize,
    timeout: o.sizing.timeout ?? Duration.seconds(o.timeout),
    ...(o.sizing.reservedConcurrentExecutions !== undefined
      ? { reservedConcurrentExecutions: o.sizing.reservedConcurrentExecutions }
      : {}),
    environment: o.environment,
    description: o.description,
    logGroup,
    bundling: BUNDLING,
  });
  Validations.of(fn).acknowledge({
    id: 'AwsSolutions-L1',
    reason: `The runtime is pinned to ${o.onnxRuntime.runtime.name} on purpose: the onnxruntime layer declares it as its only compatible runtime and the bundles target it; the three are raised together.`,
  });
  return fn;
}

/** A function and what the API should invoke (its `live` alias when provisioned concurrency is set). */
export interface MaasFunction {
  readonly fn: NodejsFunction;
  readonly target: lambda.IFunction;
}

/** The predict and registry functions. */
export class MaasFunctions extends Construct {
  readonly predict: MaasFunction;
  readonly registry: MaasFunction;

  constructor(scope: Construct, id: string, props: MaasFunctionsProps) {
    super(scope, id);
    const common = {
      [ENV.table]: props.table.table.tableName,
      [ENV.bucket]: props.store.bucket.bucketName,
    };
    this.predict = this.makeFunction('Predict', HANDLER_ENTRIES.predict, props, props.predict ?? {}, {
      memorySize: 1769,
      timeout: 30,
      environment: { ...common, ...(props.preload ? { [ENV.preload]: props.preload } : {}) },
      description: 'maas inference (Open Inference Protocol v2)',
    });
    this.registry = this.makeFunction('Registry', HANDLER_ENTRIES.registry, props, props.registry ?? {}, {
      memorySize: 3008,
      timeout: 60,
      environment: common,
      description: 'maas model registry',
    });

    // predict: reads the registry and the content-addressed artifacts.
    props.table.grantRead(this.predict.fn);
    props.store.grantReadPrefixes(this.predict.fn, 'models');
    // registry: owns the table; presigns upload PUTs, copies uploads/ and incoming/ into models/ (uploads
    // are left to the bucket's lifecycle rule, so no delete permission).
    props.table.grantReadWrite(this.registry.fn);
    props.store.grantReadPrefixes(this.registry.fn, 'models', 'uploads', 'incoming');
    props.store.grantWritePrefixes(this.registry.fn, 'models', 'uploads');
    props.store.grantList(this.registry.fn);
  }

  private makeFunction(
    id: string,
    entry: string,
    props: MaasFunctionsProps,
    sizing: FunctionSizing,
    defaults: Omit<MaasNodejsFunctionOptions, 'entry' | 'onnxRuntime' | 'sizing' | 'logRetention' | 'layer'>,
  ): MaasFunction {
    const fn = maasNodejsFunction(this, id, {
      ...defaults,
      entry,
      sizing,
      onnxRuntime: props.onnxRuntime,
      layer: true,
      ...(props.logRetention !== undefined ? { logRetention: props.logRetention } : {}),
    });
    if (!sizing.provisionedConcurrentExecutions) return { fn, target: fn };
    const alias = new lambda.Alias(this, `${id}Live`, {
      aliasName: 'live',
      version: fn.currentVersion,
      provisionedConcurrentExecutions: sizing.provisionedConcurrentExecutions,
    });
    return { fn, target: alias };
  }
}

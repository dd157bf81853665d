/**
 * Synth-time validation of the constructs' props and of the app's `-c` context parameters: an invalid
 * preload, memory size, API-backed timeout, JWT setting or observability setting (capture buffering,
 * dashboard period, alarm names and thresholds) throws a MaasValidationError that names the prop
 * (or the `-c` key), the bad value and the fix; the edge values that are valid pass. Bundling is skipped.
 */
import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';
import { CONTEXT_KEYS, createApp, propsFromContext } from '../../infra/app';
import { EventPipelines } from '../../infra/constructs/event-pipelines';
import { type FunctionSizing, MaasFunctions } from '../../infra/constructs/functions';
import { type ApiAuthorization, InferenceApi } from '../../infra/constructs/inference-api';
import { RegistryTable } from '../../infra/constructs/model-registry-table';
import { ModelStore } from '../../infra/constructs/model-store';
import { OnnxRuntimeLayer } from '../../infra/constructs/onnxruntime-layer';
import {
  checkAliasName,
  checkCaptureBufferInterval,
  checkCaptureBufferSize,
  checkErrorRate,
  checkEvaluationPeriods,
  checkLatencyMs,
  checkMetricPeriod,
  checkModelName,
  MaasValidationError,
} from '../../infra/constructs/validation';
import { MaasStack } from '../../infra/maas-stack';

const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

/** A stack with the store, table and layer the function constructs need. */
function base() {
  const stack = new Stack(new App({ context: NO_BUNDLING }), 'ValidationTest');
  const store = new ModelStore(stack, 'Store');
  const table = new RegistryTable(stack, 'Table');
  const onnxRuntime = new OnnxRuntimeLayer(stack, 'Ort');
  return { stack, store, table, onnxRuntime };
}

const functions = (props: { predict?: FunctionSizing; registry?: FunctionSizing; preload?: string }) => {
  const b = base();
  return new MaasFunctions(b.stack, 'Functions', { ...b, ...props });
};

const pipelines = (props: {
  s3Events?: FunctionSizing;
  worker?: FunctionSizing;
  asyncApi?: FunctionSizing;
}) => {
  const b = base();
  return new EventPipelines(b.stack, 'Events', { ...b, ...props });
};

const api = (authorization: ApiAuthorization) =>
  new InferenceApi(new Stack(new App(), 'ApiTest'), 'Api', { functions: {}, authorization });

/** The error `build` throws; fails the test when it throws none or another kind. */
function errorOf(build: () => unknown): MaasValidationError {
  try {
    build();
  } catch (e) {
    expect(e).toBeInstanceOf(MaasValidationError);
    return e as MaasValidationError;
  }
  throw new Error('expected a MaasValidationError, nothing was thrown');
}

describe('MaasFunctions', () => {
  it.each([
    ['Bad Name', /invalid model name 'Bad Name'/],
    ['iris@prod,mnist@0', /entry 'mnist@0': invalid version '0'/],
    ['iris@prod,mnist@Prod', /entry 'mnist@Prod': invalid version or alias 'Prod'/],
    ['iris@', /invalid version or alias ''/],
    ['iris@prod@2', /more than one '@'/],
  ])('rejects preload %j, naming the prop, the value and the fix', (preload, problem) => {
    const e = errorOf(() => functions({ preload }));
    expect(e.setting).toBe('preload');
    expect(e.constructPath).toBe('ValidationTest/Functions');
    expect(e.message).toMatch(problem);
    expect(e.message).toContain(`invalid prop preload '${preload}'`);
    expect(e.message).toContain(
      "Set preload to a comma-separated list of model names, each optionally followed by @ and a version number or an alias name, e.g. 'iris@prod,mnist@2'.",
    );
  });

  it('accepts names, version numbers and alias names, with whitespace and empty entries as the function reads them', () => {
    expect(() => functions({ preload: 'iris, mnist@prod ,resnet-50@12,,bert_v2.onnx@canary' })).not.toThrow();
  });

  it.each([
    ['predict', 127],
    ['predict', 10_241],
    ['registry', 3008.5],
    ['registry', 0],
  ] as const)(
    'rejects %s.memorySize %d outside Lambda range, naming the prop and the range',
    (which, memorySize) => {
      const e = errorOf(() => functions({ [which]: { memorySize } }));
      expect(e.setting).toBe(`${which}.memorySize`);
      expect(e.message).toContain(`invalid prop ${which}.memorySize '${memorySize}'`);
      expect(e.message).toContain('a whole number of MB from 128 to 10240');
      expect(e.message).toContain(`Set ${which}.memorySize to a whole number in that range`);
    },
  );

  it('accepts the ends of Lambda memory range', () => {
    const fns = functions({
      predict: { memorySize: LIMITS.lambdaMinMemoryMb },
      registry: { memorySize: LIMITS.lambdaMaxMemoryMb },
    });
    expect(fns.predict.fn).toBeDefined();
  });

  it('rejects a predict timeout of 30 s (the API 30 s integration timeout), naming the prop and the fix', () => {
    const e = errorOf(() => functions({ predict: { timeout: Duration.seconds(30) } }));
    expect(e.setting).toBe('predict.timeout');
    expect(e.message).toContain("invalid prop predict.timeout '30 seconds'");
    expect(e.message).toContain('integration timeout is 30 seconds');
    expect(e.message).toContain('Set predict.timeout to at most 29 seconds, e.g. Duration.seconds(29).');
  });

  it('rejects a registry timeout above 29 s: a registration must not outlive the API response', () => {
    const e = errorOf(() => functions({ registry: { timeout: Duration.minutes(2) } }));
    expect(e.setting).toBe('registry.timeout');
    expect(e.message).toContain('Set registry.timeout to at most 29 seconds');
    expect(errorOf(() => functions({ registry: { timeout: Duration.seconds(30) } })).setting).toBe(
      'registry.timeout',
    );
  });

  it('accepts predict and registry timeouts of 29 s, and defaults them to 29 s', () => {
    expect(() =>
      functions({ predict: { timeout: Duration.seconds(29) }, registry: { timeout: Duration.seconds(29) } }),
    ).not.toThrow();
    const fns = functions({});
    const timeoutOf = (fn: unknown) =>
      (fn as { node: { defaultChild: { timeout?: number } } }).node.defaultChild.timeout;
    expect(timeoutOf(fns.predict.fn)).toBe(29);
    expect(timeoutOf(fns.registry.fn)).toBe(29);
  });
});

describe('concurrency', () => {
  it('refuses reserved concurrency below 1, provisioned above reserved, and provisioned where nothing takes it', () => {
    const zero = errorOf(() => functions({ predict: { reservedConcurrentExecutions: 0 } }));
    expect(zero.setting).toBe('predict.reservedConcurrentExecutions');
    expect(zero.message).toContain('would throttle every invocation');
    expect(errorOf(() => functions({ registry: { reservedConcurrentExecutions: 2.5 } })).setting).toBe(
      'registry.reservedConcurrentExecutions',
    );
    const over = errorOf(() =>
      functions({ predict: { reservedConcurrentExecutions: 1, provisionedConcurrentExecutions: 5 } }),
    );
    expect(over.setting).toBe('predict.provisionedConcurrentExecutions');
    expect(over.message).toContain('exceeds predict.reservedConcurrentExecutions (1)');
    expect(errorOf(() => functions({ predict: { provisionedConcurrentExecutions: -1 } })).setting).toBe(
      'predict.provisionedConcurrentExecutions',
    );
    for (const which of ['asyncApi', 'worker', 's3Events'] as const) {
      const e = errorOf(() => pipelines({ [which]: { provisionedConcurrentExecutions: 3 } }));
      expect(e.setting).toBe(`${which}.provisionedConcurrentExecutions`);
      expect(e.message).toContain('here it would be ignored');
    }
  });

  it('accepts reserved 1, provisioned up to the reserved, and puts it on the live alias', () => {
    const fns = functions({
      predict: { reservedConcurrentExecutions: 5, provisionedConcurrentExecutions: 5 },
      registry: { reservedConcurrentExecutions: 1 },
    });
    expect(fns.predict.target).not.toBe(fns.predict.fn);
    expect(() => pipelines({ s3Events: { reservedConcurrentExecutions: 1 } })).not.toThrow();
    // The worker's least: what its four SQS event sources run at once (event-pipelines.test.ts).
    expect(() => pipelines({ worker: { reservedConcurrentExecutions: 16 } })).not.toThrow();
  });
});

describe('EventPipelines', () => {
  it('rejects an async API timeout above 29 s and an out-of-range memory size, naming the prop', () => {
    const timeout = errorOf(() => pipelines({ asyncApi: { timeout: Duration.minutes(1) } }));
    expect(timeout.setting).toBe('asyncApi.timeout');
    expect(timeout.message).toContain("ValidationTest/Events: invalid prop asyncApi.timeout '1 minute'");
    expect(timeout.message).toContain('Set asyncApi.timeout to at most 29 seconds');
    expect(errorOf(() => pipelines({ asyncApi: { timeout: Duration.seconds(30) } })).setting).toBe(
      'asyncApi.timeout',
    );
    const memory = errorOf(() => pipelines({ worker: { memorySize: 64 } }));
    expect(memory.setting).toBe('worker.memorySize');
    expect(memory.message).toContain("invalid prop worker.memorySize '64'");
  });

  it('accepts an async API timeout of 29 s (the default) and long timeouts of the functions not behind the API', () => {
    expect(
      (pipelines({}).asyncApiFunction.node.defaultChild as unknown as { timeout?: number }).timeout,
    ).toBe(29);
    expect(() =>
      pipelines({
        asyncApi: { timeout: Duration.seconds(29) },
        worker: { timeout: Duration.minutes(10), memorySize: 10_240 },
        s3Events: { timeout: Duration.minutes(5) },
      }),
    ).not.toThrow();
  });
});

describe('InferenceApi', () => {
  it('rejects a JWT issuer that is no https URL and an empty audience, naming the prop', () => {
    const issuer = errorOf(() => api({ type: 'jwt', issuer: 'cognito pool', audience: ['a'] }));
    expect(issuer.setting).toBe('authorization.issuer');
    expect(issuer.message).toContain("invalid prop authorization.issuer 'cognito pool'");
    expect(issuer.message).toContain('Set authorization.issuer to its https URL');
    const audience = errorOf(() => api({ type: 'jwt', issuer: 'https://issuer.example.com', audience: [] }));
    expect(audience.setting).toBe('authorization.audience');
    expect(audience.message).toContain('at least one audience');
  });

  it('refuses stage throttling that would answer every request 429, naming the prop', () => {
    const stage = (p: { throttlingRateLimit?: number; throttlingBurstLimit?: number }) =>
      new InferenceApi(new Stack(new App(), 'ApiTest'), 'Api', { functions: {}, ...p });
    const rate = errorOf(() => stage({ throttlingRateLimit: 0 }));
    expect(rate.setting).toBe('throttlingRateLimit');
    expect(rate.message).toContain("invalid prop throttlingRateLimit '0'");
    expect(errorOf(() => stage({ throttlingRateLimit: -1 })).setting).toBe('throttlingRateLimit');
    expect(errorOf(() => stage({ throttlingBurstLimit: 0 })).setting).toBe('throttlingBurstLimit');
    expect(errorOf(() => stage({ throttlingBurstLimit: 1.5 })).setting).toBe('throttlingBurstLimit');
    expect(() => stage({ throttlingRateLimit: 0.5, throttlingBurstLimit: 1 })).not.toThrow();
  });

  it('accepts an https issuer with an audience', () => {
    expect(() =>
      api({ type: 'jwt', issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/pool', audience: ['client'] }),
    ).not.toThrow();
  });

  it('rejects a route scope that is not one OAuth scope, naming the prop', () => {
    const jwt = { type: 'jwt', issuer: 'https://issuer.example.com', audience: ['a'] } as const;
    const e = errorOf(() => api({ ...jwt, adminScope: 'maas admin' }));
    expect(e.setting).toBe('authorization.adminScope');
    expect(e.message).toContain("invalid prop authorization.adminScope 'maas admin'");
    expect(errorOf(() => api({ ...jwt, inferScope: '' })).setting).toBe('authorization.inferScope');
    expect(() =>
      api({ ...jwt, inferScope: 'https://api.example.com/maas.infer', adminScope: 'admin' }),
    ).not.toThrow();
  });
});

describe('MaasStack', () => {
  it('passes its props to the constructs, which reject them with the prop named', () => {
    const stack = () => new Stack(new App({ context: NO_BUNDLING }), 'Outer');
    const e = errorOf(() => new MaasStack(stack(), 'Maas', { predict: { memorySize: 50 } }));
    expect(e.message).toMatch(/^Outer\/Maas\/Functions: invalid prop predict\.memorySize '50'/);
    expect(errorOf(() => new MaasStack(stack(), 'Maas', { preload: 'Bad Name' })).setting).toBe('preload');
  });
});

describe('data removal policy', () => {
  const outer = () => new Stack(new App({ context: NO_BUNDLING }), 'Outer');

  it('refuses SNAPSHOT (no DeletionPolicy Snapshot on a bucket or a table), naming the prop and the fix', () => {
    const e = errorOf(() => new MaasStack(outer(), 'Maas', { dataRemovalPolicy: RemovalPolicy.SNAPSHOT }));
    expect(e.setting).toBe('dataRemovalPolicy');
    expect(e.message).toBe(
      "Outer/Maas: invalid prop dataRemovalPolicy 'snapshot': an S3 bucket and a DynamoDB table are kept or deleted with the stack; CloudFormation has no snapshot of either (DeletionPolicy 'Snapshot' is for databases and volumes). Set dataRemovalPolicy to RemovalPolicy.RETAIN (the default), RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE or RemovalPolicy.DESTROY, e.g. RemovalPolicy.RETAIN.",
    );
    // The constructs check their own prop too.
    const s = outer();
    expect(
      errorOf(() => new ModelStore(s, 'Store', { removalPolicy: RemovalPolicy.SNAPSHOT })).message,
    ).toMatch(/^Outer\/Store: invalid prop removalPolicy 'snapshot'/);
    expect(
      errorOf(() => new RegistryTable(s, 'Table', { removalPolicy: RemovalPolicy.SNAPSHOT })).message,
    ).toMatch(/^Outer\/Table: invalid prop removalPolicy 'snapshot'/);
  });

  it.each([
    [RemovalPolicy.RETAIN, 'Retain'],
    [RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE, 'RetainExceptOnCreate'],
    [RemovalPolicy.DESTROY, 'Delete'],
  ])('accepts %s: the bucket and the table get DeletionPolicy %s', (policy, deletionPolicy) => {
    const s = outer();
    const store = new ModelStore(s, 'Store', { removalPolicy: policy });
    const table = new RegistryTable(s, 'Table', { removalPolicy: policy });
    const resources = Template.fromStack(s).toJSON().Resources as Record<string, { DeletionPolicy?: string }>;
    for (const c of [store.bucket, table.table]) {
      const id = s.resolve((c.node.defaultChild as unknown as { logicalId: string }).logicalId) as string;
      expect(resources[id]?.DeletionPolicy).toBe(deletionPolicy);
    }
  });
});

describe('context parameters', () => {
  const ctx = (context: Record<string, string>) => propsFromContext(new App({ context }));

  it.each([
    ['batchMaxConcurency', 'batchMaxConcurrency'],
    ['corsOrigin', 'corsOrigins'],
    ['Memory', 'memory'],
    ['architecture', 'arch'],
    ['jwtIssuerUrl', 'jwtIssuer'],
    ['rolloutTick', 'rolloutTickMinutes'],
  ])('refuses the unknown key -c %s, naming the closest known key (%s)', (key, closest) => {
    const e = errorOf(() => ctx({ [key]: '100' }));
    expect(e.setting).toBe(key);
    expect(e.message).toBe(
      `Unknown context parameter -c ${key}: maas reads no such key, so its value would be ignored and the default deployed. Did you mean -c ${closest}? The keys are ${CONTEXT_KEYS.join(', ')} (docs/deploy.md, "Parameters").`,
    );
    // createApp (cdk synth) stops there too, before the stack is built.
    expect(() => createApp(new App({ context: { ...NO_BUNDLING, [key]: '100' } }))).toThrow(
      MaasValidationError,
    );
  });

  it('refuses a misspelled key even beside valid ones, and accepts every key it reads', () => {
    expect(() => ctx({ batchMaxConcurrency: '100', corsOrigin: 'https://app.example.com' })).toThrow(
      /-c corsOrigin: .*Did you mean -c corsOrigins\?/,
    );
    expect(() =>
      ctx({
        arch: 'arm64',
        memory: '3008',
        authorization: 'jwt',
        jwtIssuer: 'https://issuer.example.com',
        jwtAudience: 'a',
        jwtInferScope: 'maas/infer',
        jwtAdminScope: 'maas/admin',
        preload: 'iris@prod',
        corsOrigins: 'https://app.example.com',
        rolloutTickMinutes: '5',
        batchMaxConcurrency: '100',
      }),
    ).not.toThrow();
  });

  it('accepts the keys CDK itself puts in the context (cdk.json, the CLI, cdk.context.json, feature flags)', () => {
    const cdk = {
      // What `cdk synth` passes with this project's cdk.json (CDK_CONTEXT_JSON).
      '@aws-cdk/core:newStyleStackSynthesis': true,
      'cli-telemetry': false,
      'aws:cdk:enable-path-metadata': true,
      'aws:cdk:enable-asset-metadata': true,
      'aws:cdk:disable-version-reporting': true,
      'aws:cdk:bundling-stacks': ['**'],
      '@aws-cdk/core:failSynthOnValidationErrors': false,
      'aws:cdk:disable-asset-staging': true,
      // `cdk acknowledge`, cached lookups, `cdk migrate`.
      'acknowledged-issue-numbers': [12345],
      'availability-zones:account=123456789012:region=eu-west-1': ['eu-west-1a'],
      'cdk-migrate': true,
    };
    expect(() => propsFromContext(new App({ context: { ...cdk, memory: '3008' } }))).not.toThrow();
    expect(() => createApp(new App({ context: { ...cdk, 'aws:cdk:bundling-stacks': [] } }))).not.toThrow();
  });

  it.each([
    [{ memory: '50' }, 'memory', "Invalid context parameter -c memory='50'", 'e.g. -c memory=3008'],
    [{ memory: 'lots' }, 'memory', "-c memory='lots'", 'a whole number of MB from 128 to 10240'],
    [
      { preload: 'Bad Name' },
      'preload',
      "Invalid context parameter -c preload='Bad Name': invalid model name 'Bad Name'",
      'e.g. -c preload=iris@prod,mnist@2',
    ],
    [{ arch: 'x86' }, 'arch', "-c arch='x86'", 'Pass -c arch=x86_64 (the default) or -c arch=arm64'],
    [{ authorization: 'basic' }, 'authorization', "-c authorization='basic'", '-c authorization=jwt with'],
    [
      { authorization: 'jwt', jwtIssuer: 'https://x' },
      'jwtAudience',
      '-c authorization=jwt needs -c jwtAudience',
      '-c jwtAudience=<clientId>',
    ],
    [
      { authorization: 'jwt', jwtAudience: 'a' },
      'jwtIssuer',
      '-c authorization=jwt needs -c jwtIssuer',
      '-c jwtIssuer=https://',
    ],
    [
      { authorization: 'jwt', jwtIssuer: 'http://issuer', jwtAudience: 'a' },
      'jwtIssuer',
      "Invalid context parameter -c jwtIssuer='http://issuer'",
      'Pass its https URL',
    ],
    [
      { authorization: 'jwt', jwtIssuer: 'https://issuer', jwtAudience: ' , ' },
      'jwtAudience',
      "-c jwtAudience=''",
      '-c jwtAudience=<clientId>',
    ],
    [
      { authorization: 'jwt', jwtIssuer: 'https://issuer', jwtAudience: 'a', jwtInferScope: 'maas\\infer' },
      'jwtInferScope',
      "Invalid context parameter -c jwtInferScope='maas\\infer'",
      '-c jwtInferScope=maas/infer',
    ],
  ])('rejects %j naming -c %s, the value and the fix', (context, key, what, fix) => {
    const e = errorOf(() => ctx(context));
    expect(e.setting).toBe(key);
    expect(e.constructPath).toBeUndefined();
    expect(e.message).toContain(what);
    expect(e.message).toContain(fix);
  });

  it('fails createApp (cdk synth) before the stack is built', () => {
    expect(() => createApp(new App({ context: { ...NO_BUNDLING, memory: '50' } }))).toThrow(
      /-c memory='50'.*e\.g\. -c memory=3008/,
    );
  });

  it('accepts valid values', () => {
    expect(
      ctx({
        arch: 'arm64',
        memory: '10240',
        preload: 'iris@prod, mnist@2',
        authorization: 'jwt',
        jwtIssuer: 'https://issuer.example.com/pool',
        jwtAudience: 'a,,b ',
      }),
    ).toMatchObject({
      predict: { memorySize: 10_240 },
      preload: 'iris@prod, mnist@2',
      authorization: { type: 'jwt', issuer: 'https://issuer.example.com/pool', audience: ['a', 'b'] },
    });
    expect(ctx({ memory: '128' })).toMatchObject({ predict: { memorySize: 128 } });
  });
});

describe('observability checks', () => {
  const scope = () => new Stack(new App(), 'ObservabilityChecks');
  const prop = (name: string) => ({ prop: name, scope: scope() });

  it('capture buffering: 60-900 whole seconds, 64-128 whole MiB', () => {
    for (const ok of [60, 61, 900]) {
      expect(checkCaptureBufferInterval(Duration.seconds(ok), prop('bufferInterval')).toSeconds()).toBe(ok);
    }
    for (const bad of [Duration.seconds(59), Duration.seconds(901), Duration.millis(60_500)]) {
      const e = errorOf(() => checkCaptureBufferInterval(bad, prop('bufferInterval')));
      expect(e.setting).toBe('bufferInterval');
      expect(e.message).toMatch(/Set bufferInterval to a whole number of seconds from 60 to 900/);
    }
    for (const ok of [64, 100, 128]) expect(checkCaptureBufferSize(ok, prop('bufferSizeMiB'))).toBe(ok);
    for (const bad of [63, 129, 64.5, Number.NaN]) {
      expect(errorOf(() => checkCaptureBufferSize(bad, prop('bufferSizeMiB'))).message).toMatch(
        /from 64 to 128/,
      );
    }
  });

  it('alarm thresholds, evaluation periods and metric periods', () => {
    for (const ok of [1e-6, 0.05, 1]) expect(checkErrorRate(ok, prop('errorRate'))).toBe(ok);
    for (const bad of [0, -0.1, 1.01, Number.POSITIVE_INFINITY]) {
      expect(errorOf(() => checkErrorRate(bad, prop('errorRate'))).message).toMatch(/above 0 and at most 1/);
    }
    for (const ok of [0.5, 1000]) expect(checkLatencyMs(ok, prop('p99Ms'))).toBe(ok);
    for (const bad of [0, -5, Number.NaN]) {
      expect(errorOf(() => checkLatencyMs(bad, prop('p99Ms'))).setting).toBe('p99Ms');
    }
    expect(checkEvaluationPeriods(1, prop('evaluationPeriods'))).toBe(1);
    for (const bad of [0, 1.5])
      expect(() => checkEvaluationPeriods(bad, prop('evaluationPeriods'))).toThrow();
    for (const ok of [Duration.minutes(1), Duration.minutes(5), Duration.hours(1)]) {
      expect(checkMetricPeriod(ok, prop('period'))).toBe(ok);
    }
    for (const bad of [Duration.seconds(30), Duration.seconds(90)]) {
      expect(errorOf(() => checkMetricPeriod(bad, prop('period'))).message).toMatch(
        /whole number of minutes.*Duration\.minutes\(1\)/,
      );
    }
  });

  it('model and alias names with the functions’ own validator and messages', () => {
    expect(checkModelName('iris-v2.onnx_1', prop('model'))).toBe('iris-v2.onnx_1');
    expect(checkAliasName('prod', prop('alias'))).toBe('prod');
    expect(errorOf(() => checkModelName('x'.repeat(65), prop('model'))).message).toMatch(
      /invalid model name/,
    );
    expect(errorOf(() => checkAliasName('Prod', prop('alias'))).message).toMatch(
      /ObservabilityChecks: invalid prop alias 'Prod'.*Set alias to an alias name, e\.g\. 'prod'/,
    );
  });
});

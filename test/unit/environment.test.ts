import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
/**
 * The config module (functions/config/environment.ts): every variable it reads, the defaults, the messages of bad
 * values, the one region rule and the configured endpoints — and that the AWS adapters follow them.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { s3Client } from '../../functions/adapters/aws-clients';
import { AwsHttpClient } from '../../functions/adapters/aws-http';
import {
  awsRegion,
  configuredRegion,
  DEFAULT_REGION,
  EnvironmentVariables,
  ortEngineOptions,
  ortThreadCount,
  processEnv,
  readConfig,
  setProcessEnv,
  setProcessEnvDefaults,
  withoutProcessEnv,
} from '../../functions/config/environment';
import { ENV } from '../../functions/contract/env';
import { QUEUE } from '../../functions/contract/events';
import { LIMITS } from '../../functions/contract/limits';
import { parsePreload } from '../../functions/domain/names';
import { codeOf } from '../helpers/errors';

const base = { [ENV.table]: 't', [ENV.bucket]: 'b' };
const vars = (env: Record<string, string>) => new EnvironmentVariables(env);

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('readConfig', () => {
  it('reads every setting of a function', () => {
    expect(
      readConfig({
        ...base,
        [ENV.aliasTtlMs]: '250',
        [ENV.ortThreads]: '3',
        [ENV.preload]: 'iris@prod, mlp , adder@2',
        [ENV.maxBodyBytes]: '1024',
        [ENV.queueUrl]: 'https://sqs.example/q',
        [ENV.deadLetterQueueArns]: 'arn:aws:sqs:eu-west-1:1:dlq, arn:aws:sqs:eu-west-1:1:batch-dlq',
        [ENV.maxReceiveCount]: '5',
        [ENV.eventBus]: 'bus',
        [ENV.memoryMb]: '3538',
      }),
    ).toEqual({
      table: 't',
      bucket: 'b',
      aliasTtlMs: 250,
      ortThreads: 3,
      preload: [{ name: 'iris', ref: 'prod' }, { name: 'mlp' }, { name: 'adder', ref: '2' }],
      maxBodyBytes: 1024,
      memoryMb: 3538,
      queueUrl: 'https://sqs.example/q',
      deadLetterQueueArns: ['arn:aws:sqs:eu-west-1:1:dlq', 'arn:aws:sqs:eu-west-1:1:batch-dlq'],
      maxReceiveCount: 5,
      eventBus: 'bus',
    });
  });

  it('defaults what is unset or empty, and leaves the optional settings out', () => {
    const expected = {
      table: 't',
      bucket: 'b',
      aliasTtlMs: LIMITS.defaultAliasTtlMs,
      preload: [],
      maxBodyBytes: LIMITS.maxBodyBytes,
      memoryMb: 1769,
      deadLetterQueueArns: [],
      maxReceiveCount: QUEUE.maxReceiveCount,
    };
    expect(readConfig(base)).toEqual(expected);
    const empty = {
      ...base,
      [ENV.aliasTtlMs]: '',
      [ENV.ortThreads]: '',
      [ENV.preload]: '',
      [ENV.maxBodyBytes]: '',
      [ENV.queueUrl]: '',
      [ENV.deadLetterQueueArns]: '',
      [ENV.maxReceiveCount]: '',
      [ENV.eventBus]: '',
      [ENV.memoryMb]: '',
    };
    expect(readConfig(empty)).toEqual(expected);
  });

  it('names the missing table or bucket', () => {
    expect(() => readConfig({})).toThrow(new Error('MAAS_TABLE is not set'));
    expect(() => readConfig({ [ENV.table]: '', [ENV.bucket]: 'b' })).toThrow(
      new Error('MAAS_TABLE is not set'),
    );
    expect(() => readConfig({ [ENV.table]: 't' })).toThrow(new Error('MAAS_BUCKET is not set'));
  });

  it.each([
    [ENV.aliasTtlMs, 'soon'],
    [ENV.aliasTtlMs, '-1'],
    [ENV.aliasTtlMs, '1.5'],
    [ENV.ortThreads, 'many'],
    [ENV.maxBodyBytes, '1e400'],
    [ENV.memoryMb, '-128'],
  ])('refuses %s=%s with the variable and the value', (name, value) => {
    expect(() => readConfig({ ...base, [name]: value })).toThrow(
      new Error(`${name} must be a non-negative integer, got '${value}'`),
    );
  });

  it.each(['0', '1001', '2.5', 'three', '-1'])(
    'refuses MAAS_MAX_RECEIVE_COUNT=%s: the queues dead-letter after 1 to 1000 receives',
    (value) => {
      expect(() => readConfig({ ...base, [ENV.maxReceiveCount]: value })).toThrow(
        new Error(`MAAS_MAX_RECEIVE_COUNT must be a whole number from 1 to 1000, got '${value}'`),
      );
    },
  );

  it('reads MAAS_MAX_RECEIVE_COUNT from 1 to 1000', () => {
    for (const n of [1, 2, 1000]) {
      expect(readConfig({ ...base, [ENV.maxReceiveCount]: String(n) }).maxReceiveCount).toBe(n);
    }
  });

  it('reads the process environment when given none', () => {
    vi.stubEnv(ENV.table, 'from-process');
    vi.stubEnv(ENV.bucket, 'bucket-from-process');
    vi.stubEnv(ENV.aliasTtlMs, '7');
    expect(readConfig()).toMatchObject({
      table: 'from-process',
      bucket: 'bucket-from-process',
      aliasTtlMs: 7,
    });
    expect(new EnvironmentVariables().get(ENV.table)).toBe('from-process');
    expect(processEnv()[ENV.table]).toBe('from-process');
  });
});

describe('parsePreload', () => {
  it('splits name and name@ref entries, skipping blanks', () => {
    expect(parsePreload(undefined)).toEqual([]);
    expect(parsePreload(' a , ,b@3,c@prod,')).toEqual([
      { name: 'a' },
      { name: 'b', ref: '3' },
      { name: 'c', ref: 'prod' },
    ]);
  });

  it('refuses a bad entry with the code of what is wrong, naming the entry', () => {
    expect(codeOf(() => parsePreload('iris@prod,Bad Name'))).toBe('INVALID_NAME');
    expect(codeOf(() => parsePreload('iris@'))).toBe('INVALID_ALIAS');
    expect(codeOf(() => parsePreload('iris@01'))).toBe('INVALID_VERSION');
    expect(codeOf(() => parsePreload('a@b@c'))).toBe('INVALID_PRELOAD');
    expect(() => parsePreload('iris@prod, Bad Name')).toThrow(/^entry 'Bad Name': invalid model name/);
  });

  it('makes a bad MAAS_PRELOAD a configuration error naming the variable', () => {
    expect(() => vars({ ...base, [ENV.preload]: 'iris@prod,a@b@c' }).config()).toThrow(
      "MAAS_PRELOAD: entry 'a@b@c': more than one '@'",
    );
  });
});

describe('onnxruntime threads', () => {
  it('follow the memory size unless configured', () => {
    expect(ortThreadCount({ memoryMb: 128 })).toBe(1);
    expect(ortThreadCount({ memoryMb: 3538 })).toBe(2);
    expect(ortThreadCount({ memoryMb: 10240 })).toBe(5);
    expect(ortThreadCount({ memoryMb: 100_000 })).toBe(6);
    expect(ortThreadCount({ memoryMb: 128, ortThreads: 4 })).toBe(4);
    expect(ortThreadCount({ memoryMb: 3538, ortThreads: 0 })).toBe(2);
    expect(ortEngineOptions({ memoryMb: 1024 })).toEqual({
      threads: 1,
      memoryBudgetBytes: 1024 * 1024 * 1024 * LIMITS.sessionCacheMemoryFraction,
    });
  });
});

describe('the region rule', () => {
  it('is AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1', () => {
    expect(awsRegion({ AWS_REGION: 'eu-west-1', AWS_DEFAULT_REGION: 'eu-central-1' })).toBe('eu-west-1');
    expect(awsRegion({ AWS_DEFAULT_REGION: 'eu-central-1' })).toBe('eu-central-1');
    expect(awsRegion({})).toBe('us-east-1');
    expect(DEFAULT_REGION).toBe('us-east-1');
  });

  it('tells a configured region from the fallback (the CLI must sign for a known one)', () => {
    expect(configuredRegion({ AWS_DEFAULT_REGION: 'ap-south-1' })).toBe('ap-south-1');
    expect(configuredRegion({})).toBeUndefined();
  });

  it('reads the process environment when given none', () => {
    vi.stubEnv('AWS_REGION', 'sa-east-1');
    expect(awsRegion()).toBe('sa-east-1');
    expect(configuredRegion()).toBe('sa-east-1');
  });

  it('is the one the AWS adapters use', async () => {
    const env = { AWS_DEFAULT_REGION: 'eu-north-1' };
    expect(new AwsHttpClient({ service: 's3', env }).region).toBe('eu-north-1');
    expect(new AwsHttpClient({ service: 'dynamodb', env: {} }).region).toBe('us-east-1');
    expect(new AwsHttpClient({ service: 'dynamodb', env, region: 'eu-west-2' }).region).toBe('eu-west-2');
    expect(await s3Client({ env }).config.region()).toBe('eu-north-1');
    expect(await s3Client({ env: {} }).config.region()).toBe('us-east-1');
  });
});

describe('AWS endpoint settings', () => {
  it('take the service endpoint, then the global one, unless told to ignore them', () => {
    const env = { AWS_ENDPOINT_URL_S3: 'http://localhost:4569', AWS_ENDPOINT_URL: 'http://localhost:4566' };
    expect(vars(env).configuredEndpoint('s3')).toBe('http://localhost:4569');
    expect(vars(env).configuredEndpoint('dynamodb')).toBe('http://localhost:4566');
    expect(
      vars({ ...env, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'TRUE' }).configuredEndpoint('s3'),
    ).toBeUndefined();
    expect(vars({ AWS_ENDPOINT_URL_DYNAMODB: '' }).configuredEndpoint('dynamodb')).toBeUndefined();
    expect(vars({}).configuredEndpoint('s3')).toBeUndefined();
  });

  it('read FIPS and dual-stack as the SDK does (true in any case)', () => {
    expect(vars({ AWS_USE_FIPS_ENDPOINT: 'True' }).useFipsEndpoint()).toBe(true);
    expect(vars({ AWS_USE_FIPS_ENDPOINT: '1' }).useFipsEndpoint()).toBe(false);
    expect(vars({ AWS_USE_DUALSTACK_ENDPOINT: 'true' }).useDualstackEndpoint()).toBe(true);
    expect(vars({}).useDualstackEndpoint()).toBe(false);
  });

  it('address S3 by path exactly when an endpoint is configured', () => {
    expect(s3Client({ env: { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:4569' } }).config.forcePathStyle).toBe(
      true,
    );
    expect(s3Client({ env: { AWS_ENDPOINT_URL: 'http://127.0.0.1:4566' } }).config.forcePathStyle).toBe(true);
    expect(s3Client({ env: {} }).config.forcePathStyle).toBe(false);
    expect(s3Client({ env: {}, endpoint: 'http://127.0.0.1:1' }).config.forcePathStyle).toBe(true);
  });
});

describe('Lambda settings', () => {
  it('tell a sandbox initialized ahead of its requests', () => {
    expect(vars({}).initializedAhead()).toBe(false);
    expect(vars({ AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand' }).initializedAhead()).toBe(false);
    expect(vars({ AWS_LAMBDA_INITIALIZATION_TYPE: 'provisioned-concurrency' }).initializedAhead()).toBe(true);
    expect(vars({ AWS_LAMBDA_INITIALIZATION_TYPE: 'snap-start' }).initializedAhead()).toBe(true);
  });

  it('read the memory size, 1769 outside Lambda', () => {
    expect(vars({ AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '512' }).memoryMb()).toBe(512);
    expect(vars({}).memoryMb()).toBe(1769);
  });

  it('tell whether the table is configured', () => {
    expect(vars(base).hasTable()).toBe(true);
    expect(vars({ [ENV.table]: '' }).hasTable()).toBe(false);
    expect(vars({}).hasTable()).toBe(false);
  });
});

describe('developer tool settings', () => {
  it('read MAAS_HOME, PORT and MAAS_ENDPOINT with their defaults', () => {
    expect(vars({ MAAS_HOME: '/tmp/m' }).home()).toBe('/tmp/m');
    expect(vars({ MAAS_HOME: '' }).home()).toBe('.maas');
    expect(vars({ PORT: '8080' }).port()).toBe(8080);
    expect(vars({ PORT: 'x' }).port()).toBeNaN();
    expect(vars({}).port()).toBeUndefined();
    expect(vars({ MAAS_ENDPOINT: 'https://api.example' }).cliEndpoint()).toBe('https://api.example');
    expect(vars({ MAAS_ENDPOINT: '' }).cliEndpoint()).toBeUndefined();
  });

  it("read Lambda's handler setting, which names the invocation subsegments (handler outside Lambda)", () => {
    expect(vars({ _HANDLER: 'index.handler' }).lambdaHandler()).toBe('index.handler');
    expect(vars({}).lambdaHandler()).toBe('handler');
  });
});

describe('writing the process environment', () => {
  const name = 'MAAS_TEST_ONLY_VARIABLE';
  afterEach(() => {
    delete processEnv()[name];
  });

  it('sets variables', () => {
    setProcessEnv({ [name]: 'set' });
    expect(new EnvironmentVariables().get(name)).toBe('set');
  });

  it('sets defaults without overriding an explicit setting', () => {
    setProcessEnvDefaults({ [name]: 'default' });
    expect(new EnvironmentVariables().get(name)).toBe('default');
    setProcessEnv({ [name]: 'explicit' });
    setProcessEnvDefaults({ [name]: 'default' });
    expect(new EnvironmentVariables().get(name)).toBe('explicit');
  });

  it('hides a variable while a load runs and puts it back after, also when the load fails', async () => {
    setProcessEnv({ [name]: 'kept' });
    let seen: string | undefined = 'not run';
    await withoutProcessEnv(name, async () => {
      seen = new EnvironmentVariables().get(name);
    });
    expect(seen).toBeUndefined();
    expect(new EnvironmentVariables().get(name)).toBe('kept');
    await expect(
      withoutProcessEnv(name, async () => {
        throw new Error('load failed');
      }),
    ).rejects.toThrow('load failed');
    expect(new EnvironmentVariables().get(name)).toBe('kept');
    expect(() =>
      withoutProcessEnv(name, () => {
        throw new Error('sync failure');
      }),
    ).toThrow('sync failure');
    expect(new EnvironmentVariables().get(name)).toBe('kept');
  });

  it('leaves an unset variable unset', async () => {
    await withoutProcessEnv(name, async () => {});
    expect(name in processEnv()).toBe(false);
  });
});

describe('rollout settings', () => {
  it('read the controller tick of maas dev, 5 s by default, refusing 0 and non-integers', () => {
    expect(new EnvironmentVariables({}).rolloutTickMs()).toBe(5000);
    expect(new EnvironmentVariables({ MAAS_ROLLOUT_TICK_MS: '250' }).rolloutTickMs()).toBe(250);
    expect(() => new EnvironmentVariables({ MAAS_ROLLOUT_TICK_MS: '0' }).rolloutTickMs()).toThrow(
      /MAAS_ROLLOUT_TICK_MS must be a positive integer/,
    );
    expect(() => new EnvironmentVariables({ MAAS_ROLLOUT_TICK_MS: '1.5' }).rolloutTickMs()).toThrow(
      /MAAS_ROLLOUT_TICK_MS/,
    );
  });

  it('read the controller configuration: the table (required) and the bus, no bucket', () => {
    expect(new EnvironmentVariables({ MAAS_TABLE: 't' }).rolloutControllerConfig()).toEqual({ table: 't' });
    expect(
      new EnvironmentVariables({ MAAS_TABLE: 't', MAAS_EVENT_BUS: 'b' }).rolloutControllerConfig(),
    ).toEqual({ table: 't', eventBus: 'b' });
    expect(() => new EnvironmentVariables({}).rolloutControllerConfig()).toThrow('MAAS_TABLE is not set');
  });
});

describe('one environment reader', () => {
  it('no module of functions/ but config/ reads process.env', () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'functions');
    const readers = (readdirSync(root, { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts') && !f.startsWith(`config${sep}`))
      .filter((f) => /\bprocess\.env\b/.test(readFileSync(join(root, f), 'utf8')));
    expect(readers).toEqual([]);
  });
});

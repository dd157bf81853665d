/**
 * The Logger port's Powertools adapter (functions/adapters/powertools-logger.ts): JSON lines with the keys of the
 * request and its Lambda request id, written in order also while Powertools loads; and the handlers' use of the
 * port (every line of a request carries its model, version or alias and its invocation).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PowertoolsLogger } from '../../functions/adapters/powertools-logger';
import { createAsyncApiHandler } from '../../functions/handlers/async-api';
import { modelKeys } from '../../functions/handlers/logging';
import { createPredictHandler } from '../../functions/handlers/predict';
import { createRegistryHandler } from '../../functions/handlers/registry';
import type { Invocation } from '../../functions/ports/logger';
import { apiEvent, parseResult } from '../helpers/apigw';
import { MemoryBlobStore, RecordingQueue } from '../helpers/events-fakes';
import { recordingLogger } from '../helpers/recording-logger';

const invocation = (awsRequestId: string): Invocation => ({
  awsRequestId,
  functionName: 'maas-predict',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:000000000000:function:maas-predict',
  memoryLimitInMB: '1769',
});

let written: string[];

beforeEach(() => {
  written = [];
  const capture = (chunk: unknown) => {
    written.push(String(chunk));
    return true;
  };
  vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  vi.stubEnv('AWS_LAMBDA_INITIALIZATION_TYPE', 'on-demand');
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', '');
  vi.stubEnv('POWERTOOLS_DEV', '');
});

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

const lines = () =>
  written
    .flatMap((w) => w.split('\n'))
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('PowertoolsLogger', () => {
  it('writes one JSON line per call, with the keys of the request on each', async () => {
    const root = new PowertoolsLogger({ serviceName: 'maas-test' });
    const logger = root
      .forRequest(invocation('req-1'), { model: 'iris' })
      .forRequest(undefined, { alias: 'prod' });
    logger.info('first', { rows: 2 });
    logger.error('second', { error: 'boom' });
    await root.load();
    expect(lines()).toEqual([
      expect.objectContaining({
        level: 'INFO',
        message: 'first',
        service: 'maas-test',
        function_request_id: 'req-1',
        model: 'iris',
        alias: 'prod',
        rows: 2,
      }),
      expect.objectContaining({
        level: 'ERROR',
        message: 'second',
        function_request_id: 'req-1',
        model: 'iris',
        alias: 'prod',
        error: 'boom',
      }),
    ]);
    expect(typeof lines()[0]?.timestamp).toBe('string');
  });

  it('starts each request without the keys of the one before, naming its own request id', async () => {
    const logger = new PowertoolsLogger({ serviceName: 'maas-test' });
    await logger.load();
    logger.forRequest(invocation('req-1'), { model: 'iris', version: 3 }).warn('one');
    logger.forRequest(invocation('req-2')).warn('two');
    logger.warn('three');
    const [one, two, three] = lines();
    expect(one).toMatchObject({ function_request_id: 'req-1', model: 'iris', version: 3 });
    expect(two).toMatchObject({ function_request_id: 'req-2' });
    expect(two).not.toHaveProperty('model');
    expect(three).not.toHaveProperty('function_request_id');
    expect(three).not.toHaveProperty('model');
  });

  it('keeps the keys and request id of requests that run at the same time apart', async () => {
    // Prepare: two requests in flight on one function logger, their lines interleaved.
    const logger = new PowertoolsLogger({ serviceName: 'maas-test' });
    await logger.load();
    const a = logger.forRequest(invocation('req-a'), { model: 'model-a' });
    const b = logger.forRequest(invocation('req-b'), { model: 'model-b', alias: 'prod' });
    // Act
    a.error('a1');
    b.error('b1');
    a.error('a2');
    logger.warn('outside');
    b.error('b2');
    // Assess
    expect(lines().map((l) => [l.message, l.function_request_id, l.model, l.alias])).toEqual([
      ['a1', 'req-a', 'model-a', undefined],
      ['b1', 'req-b', 'model-b', 'prod'],
      ['a2', 'req-a', 'model-a', undefined],
      ['outside', undefined, undefined, undefined],
      ['b2', 'req-b', 'model-b', 'prod'],
    ]);
  });

  it('writes the lines logged while Powertools loads in order, each with the request it was logged in', async () => {
    const logger = new PowertoolsLogger({ serviceName: 'maas-test' });
    logger.forRequest(invocation('req-1'), { model: 'a' }).error('in the first request');
    logger.forRequest(invocation('req-2'), { model: 'b' }).error('in the second request');
    expect(lines()).toEqual([]);
    await logger.load();
    expect(lines().map((l) => [l.message, l.function_request_id, l.model])).toEqual([
      ['in the first request', 'req-1', 'a'],
      ['in the second request', 'req-2', 'b'],
    ]);
  });

  it('reports the cold start on the first invocation only, also when Powertools loads later', async () => {
    const early = new PowertoolsLogger({ serviceName: 'maas-test' });
    early.forRequest(invocation('req-1')).info('cold');
    early.forRequest(invocation('req-2')).info('warm');
    await early.load();
    expect(lines().map((l) => l.cold_start)).toEqual([true, false]);

    written.length = 0;
    const late = new PowertoolsLogger({ serviceName: 'maas-test' });
    late.forRequest(invocation('req-1'));
    late.forRequest(invocation('req-2')).info('first line, second invocation');
    await late.load();
    expect(lines().map((l) => l.cold_start)).toEqual([false]);
  });

  it('drops lines below its level', async () => {
    const logger = new PowertoolsLogger({ serviceName: 'maas-test', logLevel: 'WARN' });
    logger.info('dropped');
    logger.warn('kept');
    await logger.load();
    expect(lines().map((l) => l.message)).toEqual(['kept']);
  });
});

describe('PowertoolsLogger without Powertools', () => {
  afterEach(() => {
    vi.doUnmock('@aws-lambda-powertools/logger');
    vi.resetModules();
  });

  it('still writes every line, as plain JSON with the request id and keys', async () => {
    vi.resetModules();
    vi.doMock('@aws-lambda-powertools/logger', () => {
      throw new Error('not installed');
    });
    const errors: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((line: string) => void errors.push(line));
    const { PowertoolsLogger: Reloaded } = await import('../../functions/adapters/powertools-logger');
    const root = new Reloaded({ serviceName: 'maas-test' });
    const logger = root.forRequest(invocation('req-3'), { model: 'iris' });
    logger.error('queued', { n: 1 });
    await root.load();
    logger.warn('after');
    expect(errors.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ level: 'ERROR', message: 'the logger did not load' }),
      { level: 'ERROR', message: 'queued', function_request_id: 'req-3', model: 'iris', n: 1 },
      { level: 'WARN', message: 'after', function_request_id: 'req-3', model: 'iris' },
    ]);
  });
});

describe('modelKeys', () => {
  it('names the model and the version or alias of a request', () => {
    expect(modelKeys(undefined)).toEqual({});
    expect(modelKeys({ name: 'iris' })).toEqual({ model: 'iris' });
    expect(modelKeys({ name: 'iris', ref: '3' })).toEqual({ model: 'iris', version: 3 });
    expect(modelKeys({ name: 'iris', ref: 'prod' })).toEqual({ model: 'iris', alias: 'prod' });
    expect(modelKeys({ name: 'iris', version: '2' })).toEqual({ model: 'iris', version: 2 });
    expect(modelKeys({ name: 'iris', alias: 'canary' })).toEqual({ model: 'iris', alias: 'canary' });
  });
});

describe('the handlers', () => {
  const failing = () => {
    throw new Error('unexpected');
  };

  it('predict: logs an unexpected error with the request id, model and ref', async () => {
    const logger = recordingLogger();
    const handler = createPredictHandler({
      repo: { ping: async () => {} },
      predictor: { inferJson: failing, metadata: failing, resolve: failing },
      logger,
    } as never);
    const r = parseResult(
      await handler(apiEvent('GET', '/v2/models/iris/versions/prod'), invocation('req-9')),
    );
    expect(r.status).toBe(500);
    expect(logger.lines).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        message: 'unhandled error',
        keys: { model: 'iris', alias: 'prod' },
        invocation: expect.objectContaining({ awsRequestId: 'req-9' }),
      }),
    ]);
  });

  it('registry: logs an unexpected error with the model and version of the path', async () => {
    const logger = recordingLogger();
    const handler = createRegistryHandler({
      repo: { getVersion: failing },
      store: { bucket: 'b' },
      inspector: {},
      logger,
    } as never);
    const r = parseResult(await handler(apiEvent('GET', '/models/iris/versions/3'), invocation('req-7')));
    expect(r.status).toBe(500);
    expect(logger.lines).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        keys: { model: 'iris', version: 3 },
        invocation: expect.objectContaining({ awsRequestId: 'req-7' }),
      }),
    ]);
  });

  it('async API: logs an unexpected error with the model of the path', async () => {
    const logger = recordingLogger();
    const blobs = new MemoryBlobStore();
    blobs.put = async () => {
      throw new Error('store down');
    };
    const handler = createAsyncApiHandler({ blobs, links: blobs, queue: new RecordingQueue(), logger });
    const r = parseResult(
      await handler(
        apiEvent('POST', '/v2/models/iris/versions/2/infer-async', {
          body: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] },
        }),
        invocation('req-5'),
      ),
    );
    expect(r.status).toBe(500);
    expect(logger.lines).toEqual([
      expect.objectContaining({ level: 'ERROR', keys: { model: 'iris', version: 2 } }),
    ]);
  });
});

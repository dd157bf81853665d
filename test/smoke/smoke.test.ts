/**
 * Smoke test of the deploy artifacts: synthesizes the CDK app, takes the predict and registry bundles and
 * the onnxruntime layer from the cloud assembly, lays them out as the Lambda runtime would
 * (`/var/task`, `/opt/nodejs/node_modules`, the runtime's AWS SDK) and runs a registration and an
 * inference against DynamoDB Local + s3rver. What passes here is what `cdk deploy` ships.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { App, type CfnResource } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, S3_KEYS } from '../../functions/contract/env';
import { ROUTES } from '../../functions/contract/routes';
import { buildMlp } from '../../functions/local/onnx-builder';
import { createApp } from '../../infra/app';
import { type FunctionAsset, functionAssets } from '../../infra/assembly';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { cachedRuntimeDir, invoke, type SandboxedFunction, sandboxFunction } from './lambda-sandbox';

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
}

let aws: TestAwsEnv;
let outdir: string;
let sandboxRoot: string;
let runtimeNodeModules: string;
const fns: Record<'predict' | 'registry', { asset: FunctionAsset; box: SandboxedFunction }> = {} as never;

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
  return {
    ...env,
    ...aws.childEnv,
    AWS_LAMBDA_FUNCTION_NAME: asset.logicalId,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '1024',
  };
}

async function call(which: 'predict' | 'registry', event: unknown): Promise<HttpAnswer> {
  const { asset, box } = fns[which];
  const result = await invoke(box, runtimeNodeModules, lambdaEnv(asset), event);
  if (!result.ok) {
    throw new Error(
      `${which} invocation failed (exit ${result.exitCode}): ${JSON.stringify(result.value)}\n${result.stderr.slice(-3000)}`,
    );
  }
  return result.value as HttpAnswer;
}

beforeAll(async () => {
  aws = await createTestAwsEnv('smoke');
  outdir = mkdtempSync(join(tmpdir(), 'maas-smoke-cdk-'));
  sandboxRoot = mkdtempSync(join(tmpdir(), 'maas-smoke-lambda-'));
  const { app, stack } = createApp(new App({ outdir }));
  app.synth();
  const assets = functionAssets(outdir, stack.stackName);
  for (const which of ['predict', 'registry'] as const) {
    const cfn = stack.functions[which].fn.node.defaultChild as CfnResource;
    const logicalId = stack.resolve(stack.getLogicalId(cfn)) as string;
    const asset = assets.find((f) => f.logicalId === logicalId);
    if (!asset) throw new Error(`no ${which} function (${logicalId}) in the synthesized template`);
    fns[which] = { asset, box: sandboxFunction(join(sandboxRoot, which), asset) };
  }
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

  it('ship the table and bucket names to both functions', () => {
    for (const { asset } of Object.values(fns)) {
      expect(Object.keys(asset.environment)).toEqual(expect.arrayContaining([ENV.table, ENV.bucket]));
      expect(asset.layers).toHaveLength(1);
    }
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
    const result = await invoke(broken, runtimeNodeModules, lambdaEnv(asset), event);
    const answer = result.value as HttpAnswer | undefined;
    expect(result.ok && answer?.statusCode === 200).toBe(false);
    expect(JSON.stringify(result.value) + result.stdout + result.stderr).toContain(missing);
  });
});

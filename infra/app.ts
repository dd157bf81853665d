/**
 * CDK entry: one MaasStack, configured from context (`-c arch=arm64 -c memory=3008 ...`), checked with
 * cdk-nag AwsSolutions.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { ApiAuthorization } from './constructs/inference-api';
import { MaasStack, type MaasStackProps } from './maas-stack';

/**
 * Feature flags the app sets unless the context already does: S3 server access logs delivered under a
 * bucket policy (not the legacy LogDeliveryWrite ACL); CDK custom resources use the runtime's SDK instead of
 * installing the latest one from npm at deploy time.
 */
const DEFAULT_FLAGS: Record<string, unknown> = {
  '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
  '@aws-cdk/customresources:installLatestAwsSdkDefault': false,
};

/** Reads the stack's parameters from CDK context; throws on invalid values (synth fails early). */
export function propsFromContext(app: App): MaasStackProps {
  const ctx = (key: string): string | undefined => {
    const v = app.node.tryGetContext(key);
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const arch = ctx('arch') ?? 'x86_64';
  if (arch !== 'x86_64' && arch !== 'arm64')
    throw new Error(`context arch must be x86_64 or arm64, got '${arch}'`);
  const memoryRaw = ctx('memory');
  const memory = memoryRaw === undefined ? undefined : Number(memoryRaw);
  if (memory !== undefined && (!Number.isInteger(memory) || memory < 128 || memory > 10240)) {
    throw new Error(`context memory must be an integer between 128 and 10240 (MB), got '${memoryRaw}'`);
  }
  const authorizationType = ctx('authorization') ?? 'iam';
  let authorization: ApiAuthorization;
  if (authorizationType === 'iam') authorization = { type: 'iam' };
  else if (authorizationType === 'jwt') {
    const issuer = ctx('jwtIssuer');
    const audience = ctx('jwtAudience');
    if (!issuer || !audience) throw new Error('authorization=jwt needs context jwtIssuer and jwtAudience');
    authorization = { type: 'jwt', issuer, audience: audience.split(',').map((a) => a.trim()) };
  } else throw new Error(`context authorization must be iam or jwt, got '${authorizationType}'`);
  const preload = ctx('preload');
  return {
    architecture: arch === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
    ...(memory !== undefined ? { predict: { memorySize: memory } } : {}),
    authorization,
    ...(preload ? { preload } : {}),
    description: 'maas: ONNX models as an Open Inference Protocol service',
  };
}

/** Builds the app: the stack plus cdk-nag checks. Tests call it with their own context and outdir. */
export function createApp(app: App = new App()): { app: App; stack: MaasStack } {
  for (const [flag, value] of Object.entries(DEFAULT_FLAGS)) {
    if (app.node.tryGetContext(flag) === undefined) app.node.setContext(flag, value);
  }
  const stack = new MaasStack(app, 'Maas', propsFromContext(app));
  Validations.of(app).addPlugins(
    new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }),
  );
  return { app, stack };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  createApp().app.synth();
}

/**
 * CDK entry: one MaasStack, configured from context (`-c arch=arm64 -c memory=3008 ...`), checked with
 * cdk-nag AwsSolutions.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { quoted } from '../functions/domain/names';
import { checkBatchMaxConcurrency } from './constructs/event-pipelines';
import type { ApiAuthorization } from './constructs/inference-api';
import { checkCorsOrigins } from './constructs/model-store';
import {
  checkJwtAuthorization,
  checkJwtScope,
  checkMemorySize,
  checkPreload,
  checkRolloutTickMinutes,
  MaasValidationError,
} from './constructs/validation';
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

/** The `-c` keys the app reads (see {@link propsFromContext}). */
export const CONTEXT_KEYS = [
  'arch',
  'memory',
  'authorization',
  'jwtIssuer',
  'jwtAudience',
  'jwtInferScope',
  'jwtAdminScope',
  'preload',
  'corsOrigins',
  'rolloutTickMinutes',
  'batchMaxConcurrency',
] as const;

/**
 * Context keys without a colon or a leading `@` that CDK itself puts in the context: `cli-telemetry` (cdk.json,
 * the CLI) and `acknowledged-issue-numbers` (`cdk acknowledge`, written to cdk.json).
 */
const CDK_CONTEXT_KEYS: ReadonlySet<string> = new Set(['cli-telemetry', 'acknowledged-issue-numbers']);

/**
 * Whether `key` is CDK's own rather than the app's: feature flags (`@aws-cdk/…`, any `@scope/…`), the CLI's settings
 * (`aws:cdk:…`: path and asset metadata, version reporting, bundling stacks, staging), cached lookups of
 * cdk.context.json (`availability-zones:account=…:region=…`, every one with a colon), and `cdk-…`/`cli-…` keys
 * (`cdk-migrate`, `cli-telemetry`). None of the app's keys has a colon or starts with `@`, `cdk-` or `cli-`.
 */
function isCdkContextKey(key: string): boolean {
  return (
    key.startsWith('@') ||
    key.includes(':') ||
    key.startsWith('cdk-') ||
    key.startsWith('cli-') ||
    CDK_CONTEXT_KEYS.has(key)
  );
}

/** Levenshtein distance of `a` and `b`, letter case ignored (`corsorigin` is one edit from `corsOrigins`). */
function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const current = [i];
    for (let j = 1; j <= y.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (x[i - 1] === y[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[y.length] ?? 0;
}

/**
 * Refuses a context key that is neither one of {@link CONTEXT_KEYS} nor CDK's own: a misspelled `-c` key would
 * otherwise be ignored, and the stack deployed with the default it meant to change. The message names the closest
 * key the app reads.
 */
export function checkContextKeys(keys: Iterable<string>): void {
  const known: ReadonlySet<string> = new Set(CONTEXT_KEYS);
  for (const key of keys) {
    if (known.has(key) || isCdkContextKey(key)) continue;
    const closest = [...CONTEXT_KEYS].sort((a, b) => editDistance(key, a) - editDistance(key, b))[0];
    throw new MaasValidationError(
      { context: key },
      `Unknown context parameter -c ${quoted(key)}: maas reads no such key, so its value would be ignored and the default deployed. Did you mean -c ${closest}? The keys are ${CONTEXT_KEYS.join(', ')} (docs/deploy.md, "Parameters").`,
    );
  }
}

/**
 * Reads the stack's parameters from CDK context (`-c key=value`): `arch` (x86_64 | arm64), `memory` (MB of
 * the predict function), `authorization` (iam | jwt, with `jwtIssuer` and `jwtAudience`), `preload`
 * (`name@ref,...`), `corsOrigins` (`https://host,...`: browser origins of presigned uploads) and
 * `rolloutTickMinutes` (minutes between two checks of the rollout controller, 1-60) and `batchMaxConcurrency`
 * (most worker invocations scoring batch parts at once, 2-1000). An invalid value, or a key that is neither one of
 * these nor CDK's own (a misspelling), throws a {@link MaasValidationError} naming the `-c` key, so synth fails
 * before anything is built.
 */
export function propsFromContext(app: App): MaasStackProps {
  checkContextKeys(Object.keys(app.node.getAllContext() as Record<string, unknown>));
  const ctx = (key: string): string | undefined => {
    const v = app.node.tryGetContext(key);
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const arch = ctx('arch') ?? 'x86_64';
  if (arch !== 'x86_64' && arch !== 'arm64') {
    throw new MaasValidationError(
      { context: 'arch' },
      `Invalid context parameter -c arch='${quoted(arch)}': the Lambda architecture is x86_64 or arm64. Pass -c arch=x86_64 (the default) or -c arch=arm64.`,
    );
  }
  const memoryRaw = ctx('memory');
  const memory =
    memoryRaw === undefined
      ? undefined
      : checkMemorySize(Number(memoryRaw), { context: 'memory' }, memoryRaw);
  const preload = ctx('preload');
  if (preload) checkPreload(preload, { context: 'preload' });
  const tickRaw = ctx('rolloutTickMinutes');
  const rolloutTickMinutes =
    tickRaw === undefined
      ? undefined
      : checkRolloutTickMinutes(Number(tickRaw), { context: 'rolloutTickMinutes' }, tickRaw);
  const batchRaw = ctx('batchMaxConcurrency');
  const batchMaxConcurrency =
    batchRaw === undefined
      ? undefined
      : checkBatchMaxConcurrency(Number(batchRaw), { context: 'batchMaxConcurrency' }, batchRaw);
  const corsRaw = ctx('corsOrigins');
  const corsOrigins =
    corsRaw === undefined
      ? undefined
      : checkCorsOrigins(
          corsRaw.split(',').map((o) => o.trim()),
          { context: 'corsOrigins' },
        );
  return {
    architecture: arch === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
    ...(memory !== undefined ? { predict: { memorySize: memory } } : {}),
    authorization: authorizationFromContext(ctx),
    ...(preload ? { preload } : {}),
    ...(corsOrigins ? { corsOrigins } : {}),
    ...(rolloutTickMinutes !== undefined ? { rolloutTickMinutes } : {}),
    ...(batchMaxConcurrency !== undefined ? { batchMaxConcurrency } : {}),
    description: 'maas: ONNX models as an Open Inference Protocol service',
  };
}

/**
 * `-c authorization=iam` (the default) or `-c authorization=jwt -c jwtIssuer=<url> -c jwtAudience=<ids>`, with
 * optional `-c jwtInferScope=<scope>` and `-c jwtAdminScope=<scope>` (default `maas/infer`, `maas/admin`).
 */
function authorizationFromContext(ctx: (key: string) => string | undefined): ApiAuthorization {
  const type = ctx('authorization') ?? 'iam';
  if (type === 'iam') return { type: 'iam' };
  if (type !== 'jwt') {
    throw new MaasValidationError(
      { context: 'authorization' },
      `Invalid context parameter -c authorization='${quoted(type)}': routes are protected by iam (SigV4) or jwt. Pass -c authorization=iam (the default), or -c authorization=jwt with -c jwtIssuer=<https URL> -c jwtAudience=<clientId>[,<clientId>...].`,
    );
  }
  const issuer = ctx('jwtIssuer');
  const audience = ctx('jwtAudience');
  const missing = [issuer ? [] : ['jwtIssuer'], audience ? [] : ['jwtAudience']].flat();
  if (!issuer || !audience) {
    throw new MaasValidationError(
      { context: missing[0] ?? 'jwtIssuer' },
      `Context parameter -c authorization=jwt needs ${missing.map((k) => `-c ${k}`).join(' and ')}. Pass the identity provider's https URL and the accepted client ids, e.g. -c jwtIssuer=https://cognito-idp.<region>.amazonaws.com/<userPoolId> -c jwtAudience=<clientId>[,<clientId>...].`,
    );
  }
  const jwt = {
    issuer,
    audience: audience
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean),
  };
  checkJwtAuthorization(jwt, { issuer: { context: 'jwtIssuer' }, audience: { context: 'jwtAudience' } });
  const inferScope = ctx('jwtInferScope');
  const adminScope = ctx('jwtAdminScope');
  if (inferScope !== undefined) checkJwtScope(inferScope, { context: 'jwtInferScope' });
  if (adminScope !== undefined) checkJwtScope(adminScope, { context: 'jwtAdminScope' });
  return {
    type: 'jwt',
    ...jwt,
    ...(inferScope !== undefined ? { inferScope } : {}),
    ...(adminScope !== undefined ? { adminScope } : {}),
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
  try {
    createApp().app.synth();
  } catch (e) {
    // An invalid prop or context parameter: its message says what to change; the stack trace adds nothing.
    if (!(e instanceof MaasValidationError)) throw e;
    console.error(`${e.name}: ${e.message}`);
    process.exitCode = 1;
  }
}

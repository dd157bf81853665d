/**
 * The MaasStack as `cdk synth` builds it (infra/app.ts: context parameters + cdk-nag AwsSolutions): bucket,
 * table, onnxruntime layer, functions, HTTP API, outputs, least-privilege IAM, and no unacknowledged
 * cdk-nag finding. Bundling is skipped here (Template assertions only); test/smoke runs the real bundles.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type CfnResource, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../functions/contract/env';
import { ASYNC_RESULT_RETENTION_DAYS } from '../../functions/contract/events';
import { ROUTES } from '../../functions/contract/routes';
import { TABLE } from '../../functions/contract/table';
import { createApp, propsFromContext } from '../../infra/app';
import { ModelStore } from '../../infra/constructs/model-store';
import { MaasStack } from '../../infra/maas-stack';
import { buildOnnxRuntimeLayer, LAYER_MAX_UNZIPPED_BYTES } from '../../layers/onnxruntime/build';
import { list, NO_BUNDLING, type Statement, statementsOfRole } from '../helpers/infra-stack';

const tmp: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tmp.push(dir);
  return dir;
};

let stack: MaasStack;
let template: Template;
let jwtStack: MaasStack;
let jwtTemplate: Template;
let inferCaller: iam.Role;
let adminCaller: iam.Role;

beforeAll(() => {
  const { app, stack: s } = createApp(
    new App({
      outdir: tempDir('maas-infra-'),
      context: { ...NO_BUNDLING, memory: '3008', preload: 'iris@prod,mnist@2' },
    }),
  );
  stack = s;
  // Callers granted through the API construct: one that may infer, one that may administer the registry.
  inferCaller = new iam.Role(s, 'InferCaller', { assumedBy: new iam.AccountRootPrincipal() });
  adminCaller = new iam.Role(s, 'AdminCaller', { assumedBy: new iam.AccountRootPrincipal() });
  s.api.grantInvoke(inferCaller);
  s.api.grantAdmin(adminCaller);
  app.synth();
  template = Template.fromStack(stack);

  // Second variant: arm64, JWT instead of IAM, provisioned concurrency on predict.
  const app2 = new App({
    outdir: tempDir('maas-infra-jwt-'),
    context: {
      ...NO_BUNDLING,
      arch: 'arm64',
      authorization: 'jwt',
      jwtIssuer: 'https://issuer.example.com/pool',
      jwtAudience: 'client-a, client-b',
      corsOrigins: 'https://app.example.com, https://*.admin.example.com',
    },
  });
  const props = propsFromContext(app2);
  jwtStack = new MaasStack(app2, 'MaasJwt', { ...props, predict: { provisionedConcurrentExecutions: 2 } });
  Validations.of(app2).addPlugins(new AwsSolutionsChecks(app2));
  app2.synth();
  jwtTemplate = Template.fromStack(jwtStack);
}, 120_000);

afterAll(() => {
  for (const dir of tmp) rmSync(dir, { recursive: true, force: true });
});

const logicalId = (s: Stack, c: { node: { defaultChild?: unknown } }) =>
  s.resolve(s.getLogicalId(c.node.defaultChild as CfnResource)) as string;

/** Resources as JSON text, for matching `models/*` etc. inside Fn::Join. */
const resourceText = (s: Statement) => JSON.stringify(s.Resource);

function roleOf(s: MaasStack, which: 'predict' | 'registry'): string {
  const role = s.functions[which].fn.role;
  if (!role) throw new Error('function without role');
  return logicalId(s, role);
}

describe('model store bucket', () => {
  it('is versioned, SSE-S3 encrypted, private, logged, with lifecycle rules and no CORS unless configured', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: { DestinationBucketName: Match.anyValue(), LogFilePrefix: 'model-store/' },
      CorsConfiguration: Match.absent(),
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            Prefix: 'uploads/',
            ExpirationInDays: 1,
            NoncurrentVersionExpiration: { NoncurrentDays: 1 },
            Status: 'Enabled',
          }),
          Match.objectLike({
            Prefix: 'batch/',
            NoncurrentVersionExpiration: { NoncurrentDays: 1 },
            ExpiredObjectDeleteMarker: true,
            Status: 'Enabled',
          }),
          Match.objectLike({
            Prefix: 'async/',
            ExpirationInDays: ASYNC_RESULT_RETENTION_DAYS,
            Status: 'Enabled',
          }),
        ]),
      },
    });
  });

  it('allows presigned PUTs from the origins of -c corsOrigins only', () => {
    jwtTemplate.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      CorsConfiguration: {
        CorsRules: [
          Match.objectLike({
            AllowedMethods: ['PUT'],
            AllowedOrigins: ['https://app.example.com', 'https://*.admin.example.com'],
          }),
        ],
      },
    });
  });

  it('refuses CORS origins S3 would not accept, naming the prop', () => {
    const store = (corsOrigins: string[]) => () =>
      new ModelStore(new Stack(new App(), 'CorsCheck'), 'Store', { corsOrigins });
    expect(store([])).toThrow(/prop corsOrigins: the list of origins is empty/);
    expect(store(['ftp://files.example.com'])).toThrow(
      /CorsCheck\/Store: invalid prop corsOrigins origin 'ftp/,
    );
    expect(store(['*', 'https://app.example.com:8443', 'http://*.example.com'])).not.toThrow();
  });

  it('is retained on stack deletion and denies non-TLS requests', () => {
    const bucketId = logicalId(stack, stack.store.bucket);
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain', Properties: Match.objectLike({}) });
    expect(template.toJSON().Resources[bucketId].DeletionPolicy).toBe('Retain');
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });
});

describe('registry table', () => {
  it('has the contract keys and index, on-demand billing, PITR, KMS encryption, TTL, RETAIN', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        KeySchema: [
          { AttributeName: TABLE.partitionKey, KeyType: 'HASH' },
          { AttributeName: TABLE.sortKey, KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          Match.objectLike({
            IndexName: TABLE.modelsIndex.name,
            KeySchema: [
              { AttributeName: TABLE.modelsIndex.partitionKey, KeyType: 'HASH' },
              { AttributeName: TABLE.modelsIndex.sortKey, KeyType: 'RANGE' },
            ],
          }),
        ],
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        // SSEEnabled without SSEType = KMS with the AWS-managed key aws/dynamodb.
        SSESpecification: { SSEEnabled: true },
        TimeToLiveSpecification: { AttributeName: TABLE.ttlAttribute, Enabled: true },
        DeletionProtectionEnabled: true,
      },
    });
  });
});

describe('onnxruntime layer', () => {
  it('is x86_64 + Node.js 24 by default and arm64 with context arch=arm64', () => {
    template.hasResourceProperties('AWS::Lambda::LayerVersion', {
      CompatibleArchitectures: ['x86_64'],
      CompatibleRuntimes: ['nodejs24.x'],
    });
    jwtTemplate.hasResourceProperties('AWS::Lambda::LayerVersion', {
      CompatibleArchitectures: ['arm64'],
      CompatibleRuntimes: ['nodejs24.x'],
    });
  });

  it.each([
    ['x86_64', 'x64', 'arm64'],
    ['arm64', 'arm64', 'x64'],
  ] as const)('ships only the linux/%s CPU binaries, under 60 MB', (arch, dir, other) => {
    const built = buildOnnxRuntimeLayer({ arch, outDir: tempDir('maas-layer-'), log: false });
    const bins = built.files.filter((f) => f.includes('/bin/'));
    expect(bins.sort()).toEqual([
      `nodejs/node_modules/onnxruntime-node/bin/napi-v6/linux/${dir}/libonnxruntime.so.1`,
      `nodejs/node_modules/onnxruntime-node/bin/napi-v6/linux/${dir}/onnxruntime_binding.node`,
    ]);
    expect(built.files.some((f) => /darwin|win32|cuda|tensorrt|directml|\.dll$|\.dylib$/i.test(f))).toBe(
      false,
    );
    expect(built.files.some((f) => f.includes(`/linux/${other}/`))).toBe(false);
    expect(built.files).toContain('nodejs/node_modules/onnxruntime-common/dist/cjs/index.js');
    expect(built.files).toContain('nodejs/node_modules/onnxruntime-node/dist/index.js');
    expect(built.unzippedBytes).toBeLessThan(LAYER_MAX_UNZIPPED_BYTES);
  });
});

describe('functions', () => {
  /** The five functions of the service (the stack also holds CDK's own notification handler). */
  const maasFunctions = (s: MaasStack) => ({
    predict: s.functions.predict.fn,
    registry: s.functions.registry.fn,
    s3Events: s.events.s3EventsFunction,
    worker: s.events.workerFunction,
    asyncApi: s.events.asyncApiFunction,
  });

  it('all five run Node.js 24 with source-mapped stack traces', () => {
    for (const [s, t] of [
      [stack, template],
      [jwtStack, jwtTemplate],
    ] as const) {
      for (const [which, fn] of Object.entries(maasFunctions(s))) {
        const props = t.toJSON().Resources[logicalId(s, fn)].Properties;
        expect(props.Runtime, which).toBe('nodejs24.x');
        expect(props.Environment.Variables.NODE_OPTIONS, which).toBe('--enable-source-maps');
      }
    }
  });

  it("the S3 events function and the worker have the registry function's memory: all register artifacts of up to 256 MiB", () => {
    const res = template.toJSON().Resources;
    const memory = (fn: Parameters<typeof logicalId>[1]) => res[logicalId(stack, fn)].Properties.MemorySize;
    expect(memory(stack.events.s3EventsFunction)).toBe(3008);
    expect(memory(stack.events.s3EventsFunction)).toBe(memory(stack.functions.registry.fn));
    expect(memory(stack.events.workerFunction)).toBe(memory(stack.functions.registry.fn));
  });

  it('predict and registry run Node.js 24 ESM bundles on the layer architecture, with the onnxruntime and tracer layers attached', () => {
    for (const [s, t, arch] of [
      [stack, template, 'x86_64'],
      [jwtStack, jwtTemplate, 'arm64'],
    ] as const) {
      const layerId = logicalId(s, s.onnxRuntime.layer);
      if (!s.tracer) throw new Error('tracing is on by default');
      const tracerId = logicalId(s, s.tracer.layer);
      for (const which of ['predict', 'registry'] as const) {
        const fn = t.toJSON().Resources[logicalId(s, s.functions[which].fn)];
        expect(fn.Properties).toMatchObject({
          Runtime: 'nodejs24.x',
          Handler: 'index.handler',
          Architectures: [arch],
          Layers: [{ Ref: layerId }, { Ref: tracerId }],
        });
      }
    }
  });

  it('get the table, bucket and preload environment; memory from context', () => {
    const res = template.toJSON().Resources;
    const tableRef = { Ref: logicalId(stack, stack.registryTable.table) };
    const bucketRef = { Ref: logicalId(stack, stack.store.bucket) };
    const predict = res[logicalId(stack, stack.functions.predict.fn)].Properties;
    const registry = res[logicalId(stack, stack.functions.registry.fn)].Properties;
    expect(predict.Environment.Variables).toMatchObject({
      [ENV.table]: tableRef,
      [ENV.bucket]: bucketRef,
      [ENV.preload]: 'iris@prod,mnist@2',
    });
    expect(registry.Environment.Variables).toMatchObject({ [ENV.table]: tableRef, [ENV.bucket]: bucketRef });
    expect(registry.Environment.Variables[ENV.preload]).toBeUndefined();
    expect(predict.MemorySize).toBe(3008);
  });

  it('provisioned concurrency creates a live alias that the API invokes', () => {
    jwtTemplate.hasResourceProperties('AWS::Lambda::Alias', {
      Name: 'live',
      ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 2 },
    });
    const aliasId = logicalId(jwtStack, jwtStack.functions.predict.target as never);
    const integrations = jwtTemplate.findResources('AWS::ApiGatewayV2::Integration', {
      Properties: { IntegrationUri: { Ref: aliasId } },
    });
    expect(Object.keys(integrations)).toHaveLength(1);
  });
});

describe('least privilege', () => {
  it('no statement of predict or registry grants an unscoped resource but the X-Ray trace writes', () => {
    for (const which of ['predict', 'registry'] as const) {
      const statements = statementsOfRole(template, roleOf(stack, which));
      for (const s of statements) {
        if (list(s.Resource as unknown).includes('*')) {
          // X-Ray's write actions have no resource-level permissions; nothing else is granted on '*'.
          expect(s.Action).toEqual(['xray:PutTraceSegments', 'xray:PutTelemetryRecords']);
        }
      }
      expect(
        statements.some((s) => list(s.Action).includes('xray:PutTraceSegments')),
        which,
      ).toBe(true);
    }
  });

  it('predict reads the table and models/* only', () => {
    const statements = statementsOfRole(template, roleOf(stack, 'predict'));
    const tableArn = { 'Fn::GetAtt': [logicalId(stack, stack.registryTable.table), 'Arn'] };
    const actions = statements.flatMap((s) => list(s.Action));
    expect(actions.filter((a) => a.startsWith('s3:')).sort()).toEqual(['s3:GetObject', 's3:ListBucket']);
    expect(actions.filter((a) => a.startsWith('dynamodb:'))).not.toEqual(
      expect.arrayContaining([expect.stringMatching(/Put|Update|Delete|Write/)]),
    );
    const reads = statements.filter((x) => list(x.Action).some((a) => a.startsWith('dynamodb:')));
    expect(reads.flatMap((s) => list(s.Action))).toEqual(expect.arrayContaining(['dynamodb:GetItem']));
    for (const s of reads) {
      expect(list(s.Resource)).toContainEqual(tableArn);
      expect(resourceText(s)).not.toContain('index/*');
    }
    const s3 = statements.filter((x) => list(x.Action).includes('s3:GetObject'));
    expect(s3).toHaveLength(1);
    expect(resourceText(s3[0] as Statement)).toContain('/models/*');
    expect(resourceText(s3[0] as Statement)).not.toMatch(/uploads|incoming|batch|async/);
    // A missing artifact is a 404 on real S3 only with a list grant that the object request's context satisfies:
    // on the bucket, with no s3:prefix condition (that request carries no prefix).
    const listing = statements.filter((x) => list(x.Action).includes('s3:ListBucket'));
    expect(listing).toHaveLength(1);
    expect(listing[0]?.Resource).toEqual({ 'Fn::GetAtt': [logicalId(stack, stack.store.bucket), 'Arn'] });
    expect(listing[0]?.Condition).toBeUndefined();
  });

  it('registry writes the table and models/ + uploads/, reads incoming/, deletes nothing', () => {
    const statements = statementsOfRole(template, roleOf(stack, 'registry'));
    const byAction = (action: string) =>
      statements
        .filter((s) => list(s.Action).includes(action))
        .map(resourceText)
        .join(' ');
    expect(byAction('s3:GetObject')).toMatch(/models\/\*.*uploads\/\*.*incoming\/\*/);
    expect(byAction('s3:PutObject')).toMatch(/models\/\*.*uploads\/\*/);
    expect(byAction('s3:PutObject')).not.toMatch(/incoming|batch|async/);
    expect(byAction('s3:DeleteObject')).toBe('');
    expect(byAction('dynamodb:PutItem')).toContain(logicalId(stack, stack.registryTable.table));
    expect(byAction('dynamodb:PutItem')).not.toContain('index');
    const actions = statements.flatMap((s) => list(s.Action));
    expect(actions.some((a) => a.endsWith('*'))).toBe(false);
    const listing = statements.filter((s) => list(s.Action).includes('s3:ListBucket'));
    expect(listing.map((s) => [s.Resource, s.Condition])).toEqual([
      [{ 'Fn::GetAtt': [logicalId(stack, stack.store.bucket), 'Arn'] }, undefined],
    ]);
  });
});

describe('HTTP API', () => {
  const routesOf = (t: Template) =>
    Object.values(t.findResources('AWS::ApiGatewayV2::Route')).map(
      (r) => (r as { Properties: { RouteKey: string; AuthorizationType: string } }).Properties,
    );

  it('has a route for every predict and registry entry of the route table, and only route-table routes and $default', () => {
    const keys = routesOf(template)
      .map((r) => r.RouteKey)
      .filter((k) => k !== '$default');
    const all = ROUTES.map((r) => `${r.method} ${r.path}`);
    for (const r of ROUTES.filter((x) => x.fn !== 'async')) expect(keys).toContain(`${r.method} ${r.path}`);
    for (const k of keys) expect(all).toContain(k);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('requires IAM on every route but /v2/health/*; JWT when configured', () => {
    const check = (t: Template, type: string) => {
      const routes = routesOf(t);
      expect(routes.length).toBeGreaterThan(2);
      for (const r of routes) {
        const health = r.RouteKey.startsWith('GET /v2/health/');
        expect(r.AuthorizationType, r.RouteKey).toBe(health ? 'NONE' : type);
      }
      expect(
        routes
          .filter((r) => r.AuthorizationType === 'NONE')
          .map((r) => r.RouteKey)
          .sort(),
      ).toEqual(['GET /v2/health/live', 'GET /v2/health/ready']);
    };
    check(template, 'AWS_IAM');
    check(jwtTemplate, 'JWT');
    jwtTemplate.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      JwtConfiguration: { Issuer: 'https://issuer.example.com/pool', Audience: ['client-a', 'client-b'] },
    });
  });

  /** The route ARNs of a statement's resources, as `$default/METHOD/path` (the part after the API id). */
  const routeResources = (resources: unknown): string[] =>
    list(resources as unknown[]).map((r) => {
      const parts = (r as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
      expect(parts.at(-2)).toEqual({ Ref: logicalId(stack, stack.api.httpApi) });
      return String(parts.at(-1)).replace(/^\//, '');
    });
  const expectedArns = (access: 'infer' | 'admin') =>
    ROUTES.filter((r) => r.access === access)
      .map((r) => `$default/${r.method}${r.path.replace(/\{[^}]+\}/g, '*')}`)
      .sort();
  /** Whether an execute-api resource (IAM `*` matches any characters) covers a concrete route. */
  const covers = (arn: string, method: string, path: string) =>
    new RegExp(`^${arn.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(
      `$default/${method}${path}`,
    );

  it('offers an invoke policy on exactly the inference routes and an admin policy on exactly the registry routes', () => {
    // Every registry route is admin; the async function serves admin routes too (listCapture).
    expect(ROUTES.filter((r) => r.fn === 'registry').every((r) => r.access === 'admin')).toBe(true);
    const policy = (p: iam.ManagedPolicy | undefined) => {
      if (!p) throw new Error('no managed policy with IAM authorization');
      const statements = (
        template.toJSON().Resources[logicalId(stack, p)] as {
          Properties: { PolicyDocument: { Statement: Statement[] } };
        }
      ).Properties.PolicyDocument.Statement;
      expect(statements).toHaveLength(1);
      expect(statements[0]?.Action).toBe('execute-api:Invoke');
      return routeResources(statements[0]?.Resource).sort();
    };
    const infer = policy(stack.api.invokePolicy);
    const admin = policy(stack.api.adminPolicy);
    expect(infer).toEqual(expectedArns('infer'));
    expect(admin).toEqual(expectedArns('admin'));
    // No resource of one class reaches a route of another (`*` spans slashes in execute-api ARNs).
    const sample = (path: string) => path.replace(/\{[^}]+\}/g, 'x');
    for (const r of ROUTES) {
      const reach = [...infer, ...admin].filter((a) => covers(a, r.method, sample(r.path)));
      for (const a of reach)
        expect((r.access === 'infer' ? infer : admin).includes(a), `${a} vs ${r.path}`).toBe(true);
      if (r.access === 'public') expect(reach).toEqual([]);
    }
    template.hasOutput('InvokePolicyArn', {
      Value: { Ref: logicalId(stack, stack.api.invokePolicy as iam.ManagedPolicy) },
    });
    template.hasOutput('AdminPolicyArn', {
      Value: { Ref: logicalId(stack, stack.api.adminPolicy as iam.ManagedPolicy) },
    });
  });

  it('grantInvoke and grantAdmin give a caller exactly one class of routes', () => {
    const granted = (role: iam.Role) => {
      const statements = statementsOfRole(template, logicalId(stack, role));
      expect(statements.flatMap((s) => list(s.Action))).toEqual(['execute-api:Invoke']);
      return statements.flatMap((s) => routeResources(s.Resource)).sort();
    };
    expect(granted(inferCaller)).toEqual(expectedArns('infer'));
    expect(granted(adminCaller)).toEqual(expectedArns('admin'));
  });

  it('requires the infer scope on inference routes and the admin scope on registry routes with JWT', () => {
    const scopes = Object.values(jwtTemplate.findResources('AWS::ApiGatewayV2::Route')).map((r) => {
      const p = (r as { Properties: { RouteKey: string; AuthorizationScopes?: string[] } }).Properties;
      return [p.RouteKey, p.AuthorizationScopes] as const;
    });
    expect(scopes.length).toBe(ROUTES.length + 1);
    expect(scopes.filter(([key]) => key === '$default').map(([, granted]) => granted)).toEqual([
      ['maas/infer'],
    ]);
    for (const [key, granted] of scopes.filter(([k]) => k !== '$default')) {
      const route = ROUTES.find((r) => `${r.method} ${r.path}` === key);
      const want = { public: undefined, infer: ['maas/infer'], admin: ['maas/admin'] }[
        route?.access ?? 'public'
      ];
      expect(granted, key).toEqual(want);
    }
    expect(jwtStack.api.scopes).toEqual({ infer: 'maas/infer', admin: 'maas/admin' });
    // JWT stacks grant with scopes, not IAM: no managed policies, and an IAM grant is refused.
    expect(jwtStack.api.invokePolicy).toBeUndefined();
    jwtTemplate.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
    expect(() =>
      jwtStack.api.grantAdmin(new iam.Role(jwtStack, 'Late', { assumedBy: new iam.AccountRootPrincipal() })),
    ).toThrow(/maas\/admin/);
  });

  it('sends every request no route matches to the predict function ($default), authorized like the inference routes', () => {
    // Without it API Gateway answers an unmatched path or method itself: 404 {"message":"Not Found"}, no `error`.
    for (const [t, s, type] of [
      [template, stack, 'AWS_IAM'],
      [jwtTemplate, jwtStack, 'JWT'],
    ] as const) {
      const found = Object.values(
        t.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: '$default' } }),
      );
      expect(found).toHaveLength(1);
      const route = (found[0] as { Properties: { AuthorizationType: string; Target: unknown } }).Properties;
      expect(route.AuthorizationType).toBe(type);
      // The same integration (the predict function) as the inference routes.
      const infer = routesOf(t).find((r) => r.RouteKey === 'POST /v2/models/{name}/infer') as unknown as {
        Target: unknown;
      };
      expect(route.Target).toEqual(infer.Target);
      expect(s.api.defaultRoute).toBeDefined();
    }
  });

  it('has a throttled $default stage with JSON access logs', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
      AccessLogSettings: {
        DestinationArn: { 'Fn::GetAtt': [logicalId(stack, stack.api.accessLogs), 'Arn'] },
        Format: Match.stringLikeRegexp('\\$context.requestId'),
      },
    });
  });

  it('outputs the API URL, bucket and table names', () => {
    template.hasOutput('ApiUrl', Match.anyValue());
    template.hasOutput('BucketName', { Value: { Ref: logicalId(stack, stack.store.bucket) } });
    template.hasOutput('TableName', { Value: { Ref: logicalId(stack, stack.registryTable.table) } });
  });
});

describe('dataRemovalPolicy: DESTROY', () => {
  it('empties the model bucket before deleting it (a bucket with objects cannot be deleted) and keeps the access logs, with no cdk-nag finding', () => {
    const destroy = new MaasStack(new App({ context: NO_BUNDLING }), 'Destroy', {
      dataRemovalPolicy: RemovalPolicy.DESTROY,
    });
    const t = Template.fromStack(destroy);
    const [models, logs] = [destroy.store.bucket, destroy.store.accessLogsBucket].map(
      (b) => destroy.resolve((b.node.defaultChild as CfnResource).logicalId) as string,
    );
    expect(t.toJSON().Resources[models as string].DeletionPolicy).toBe('Delete');
    // Access logs arrive late (the emptying is logged too): that bucket could not be emptied reliably first.
    expect(t.toJSON().Resources[logs as string].DeletionPolicy).toBe('Retain');
    const emptied = Object.values(t.findResources('Custom::S3AutoDeleteObjects')).map(
      (r) => (r as { Properties: { BucketName: { Ref: string } } }).Properties.BucketName.Ref,
    );
    expect(emptied).toEqual([models]);
    // The default keeps the data and empties nothing.
    expect(Object.keys(template.findResources('Custom::S3AutoDeleteObjects'))).toEqual([]);
    const report = new AwsSolutionsChecks().validateScope(destroy);
    expect(
      report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath)}`),
    ).toEqual([]);
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding on either variant', () => {
    for (const s of [stack, jwtStack]) {
      const report = new AwsSolutionsChecks().validateScope(s);
      expect(
        report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath)}`),
      ).toEqual([]);
    }
  });

  it('acknowledges nothing about public access, TLS or PITR, and authorization only for the health probes', () => {
    const acks: { path: string; id: string; reason: string }[] = [];
    for (const c of stack.node.findAll()) {
      for (const m of c.node.metadata.filter((x) => x.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)) {
        for (const [id, reason] of Object.entries(m.data as Record<string, unknown>)) {
          acks.push({
            path: c.node.path,
            id: id.replace(/^annotation::/i, ''),
            reason: JSON.stringify(reason),
          });
        }
      }
    }
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) expect(a.reason.length, a.id).toBeGreaterThan(40);
    const ids = acks.map((a) => a.id);
    // S2/S10: public access / TLS on S3; SQS4/SNS3: TLS; DDB3: PITR; APIG2: request validation is not auth.
    for (const forbidden of [
      'AwsSolutions-S2',
      'AwsSolutions-S10',
      'AwsSolutions-SQS4',
      'AwsSolutions-SNS3',
      'AwsSolutions-DDB3',
      'AwsSolutions-COG4',
    ]) {
      expect(ids.some((id) => id.startsWith(forbidden))).toBe(false);
    }
    const authAcks = acks.filter((a) => a.id.startsWith('AwsSolutions-APIG4'));
    const healthRoutes = ['GET /v2/health/live', 'GET /v2/health/ready'].map(
      (k) => stack.api.routes.get(k)?.node.path,
    );
    expect(authAcks.map((a) => a.path).sort()).toEqual(healthRoutes.sort());
  });
});

describe('stack outputs', () => {
  it('are the ones docs/deploy.md lists; the IAM policies only with IAM authorization', () => {
    const common = [
      'ApiUrl',
      'BatchDeadLetterQueueUrl',
      'BatchQueueUrl',
      'BucketName',
      'CaptureDeliveryStreamName',
      'DashboardName',
      'DeadLetterQueueUrl',
      'EventBusName',
      'TableName',
      'WorkQueueUrl',
    ];
    expect(Object.keys(template.toJSON().Outputs).sort()).toEqual(
      [...common, 'AdminPolicyArn', 'InvokePolicyArn'].sort(),
    );
    expect(Object.keys(jwtTemplate.toJSON().Outputs).sort()).toEqual(common);
  });
});

describe('cdk-nag acknowledgements', () => {
  /**
   * Every cdk-nag acknowledgement of the tree: the construct it is on and the rule (or rule[finding]) id
   * (aws-cdk-lib's own CloudFormation-Validate acknowledgements are not cdk-nag's).
   */
  const acknowledgements = (s: Stack) =>
    s.node.findAll().flatMap((c) =>
      c.node.metadata
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((m) => Object.keys(m.data as object))
        .map((id) => ({ path: c.node.path, id: id.replace(/^annotation::/i, '') }))
        .filter((a) => a.id.startsWith('AwsSolutions-')),
    );
  /** Every cdk-nag finding, acknowledged or not. */
  const allFindings = (s: Stack) => {
    const checks = new AwsSolutionsChecks();
    (checks as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
    return checks
      .validateScope(s)
      .violations.flatMap((v) =>
        v.violatingResources.map((r) => ({ id: v.ruleName, path: r.constructPath })),
      );
  };

  it('are each still needed: every one matches a finding cdk-nag reports without it', () => {
    for (const s of [stack, jwtStack]) {
      const findings = allFindings(s);
      const stale = acknowledgements(s).filter(
        (a) =>
          !findings.some((f) => f.id === a.id && (f.path === a.path || f.path?.startsWith(`${a.path}/`))),
      );
      expect(stale.map((a) => `${a.path}: ${a.id}`)).toEqual([]);
    }
  });
});

describe('context parameters', () => {
  const ctx = (context: Record<string, string>) => propsFromContext(new App({ context }));
  it('rejects invalid values before anything is built', () => {
    expect(() => ctx({ arch: 'x86' })).toThrow(/arch/);
    expect(() => ctx({ memory: '64' })).toThrow(/memory/);
    expect(() => ctx({ authorization: 'basic' })).toThrow(/authorization/);
    expect(() => ctx({ authorization: 'jwt', jwtIssuer: 'https://x' })).toThrow(/jwtAudience/);
    const jwt = { authorization: 'jwt', jwtIssuer: 'https://x', jwtAudience: 'a' };
    expect(() => ctx({ ...jwt, jwtAdminScope: 'maas admin' })).toThrow(/-c jwtAdminScope/);
    expect(() => ctx({ ...jwt, jwtInferScope: 'maas"infer' })).toThrow(/-c jwtInferScope/);
    expect(
      ctx({ ...jwt, jwtInferScope: 'api://maas/infer', jwtAdminScope: 'maas.admin' }).authorization,
    ).toEqual({
      type: 'jwt',
      issuer: 'https://x',
      audience: ['a'],
      inferScope: 'api://maas/infer',
      adminScope: 'maas.admin',
    });
    for (const bad of [
      'app.example.com',
      'https://a.example.com/path',
      'https://*.*.example.com',
      'https://a,',
    ]) {
      expect(() => ctx({ corsOrigins: bad }), bad).toThrow(/-c corsOrigins/);
    }
    expect(ctx({ corsOrigins: 'https://a.example.com,http://localhost:5173' }).corsOrigins).toEqual([
      'https://a.example.com',
      'http://localhost:5173',
    ]);
  });
});

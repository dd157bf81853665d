/**
 * InferenceApi: the API Gateway HTTP API with one route per entry of the contract's route table.
 */
import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { type FunctionId, ROUTES, type RouteDef } from '../../functions/contract/routes';
import { checkJwtAuthorization } from './validation';

/** How routes with `auth: 'iam'` are protected. */
export type ApiAuthorization =
  | { readonly type: 'iam' }
  | {
      readonly type: 'jwt';
      /** Token issuer URL, e.g. `https://cognito-idp.<region>.amazonaws.com/<poolId>`. */
      readonly issuer: string;
      /** Accepted `aud` values (client ids); at least one. */
      readonly audience: readonly string[];
    };

/** Props of {@link InferenceApi}. */
export interface InferenceApiProps {
  /**
   * The function serving each FunctionId of the route table. Routes whose function is not given are
   * not created (the stack synthesizes with or without the event-driven functions).
   */
  readonly functions: Partial<Record<FunctionId, lambda.IFunction>>;
  /**
   * How routes with `auth: 'iam'` are protected; a JWT issuer must be an https URL and the audience
   * non-empty (checked at synth).
   * @default { type: 'iam' } (SigV4)
   */
  readonly authorization?: ApiAuthorization;
  /** Stage steady-state requests per second. @default 100 */
  readonly throttlingRateLimit?: number;
  /** Stage burst. @default 200 */
  readonly throttlingBurstLimit?: number;
  /** Days of access-log retention. @default logs.RetentionDays.ONE_MONTH */
  readonly accessLogRetention?: logs.RetentionDays;
}

/** Exactly the access-log fields kept (no request bodies, no headers). */
const ACCESS_LOG_FORMAT = AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    ip: '$context.identity.sourceIp',
    caller: '$context.identity.caller',
    user: '$context.identity.userArn',
    requestTime: '$context.requestTime',
    routeKey: '$context.routeKey',
    status: '$context.status',
    protocol: '$context.protocol',
    responseLength: '$context.responseLength',
    latency: '$context.responseLatency',
    integrationLatency: '$context.integrationLatency',
    integrationError: '$context.integrationErrorMessage',
    authorizerError: '$context.authorizer.error',
  }),
);

/**
 * HTTP API, `$default` stage with throttling and JSON access logs; every `auth: 'iam'` route uses IAM
 * (SigV4) or, when configured, a JWT authorizer; `auth: 'none'` routes (the OIP health probes) are public.
 */
export class InferenceApi extends Construct {
  /** The HTTP API. */
  readonly httpApi: apigw.HttpApi;
  /** The `$default` stage (auto-deployed, throttled, access-logged). */
  readonly stage: apigw.HttpStage;
  /** The log group of the stage's JSON access logs. */
  readonly accessLogs: logs.LogGroup;
  /** The routes created, keyed by `METHOD /path`. */
  readonly routes: ReadonlyMap<string, apigw.HttpRoute>;

  constructor(scope: Construct, id: string, props: InferenceApiProps) {
    super(scope, id);
    const authorization = props.authorization ?? { type: 'iam' };
    if (authorization.type === 'jwt') {
      checkJwtAuthorization(authorization, {
        issuer: { prop: 'authorization.issuer', scope: this },
        audience: { prop: 'authorization.audience', scope: this },
      });
    }
    this.httpApi = new apigw.HttpApi(this, 'Api', {
      description: 'maas: Open Inference Protocol v2 and model registry',
      createDefaultStage: false,
    });
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.accessLogRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = new apigw.HttpStage(this, 'Stage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: {
        rateLimit: props.throttlingRateLimit ?? 100,
        burstLimit: props.throttlingBurstLimit ?? 200,
      },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(this.accessLogs),
        format: ACCESS_LOG_FORMAT,
      },
    });

    const authorizer: apigw.IHttpRouteAuthorizer =
      authorization.type === 'jwt'
        ? new HttpJwtAuthorizer('JwtAuthorizer', authorization.issuer, {
            jwtAudience: [...authorization.audience],
          })
        : new HttpIamAuthorizer();
    const integrations = new Map<FunctionId, HttpLambdaIntegration>();
    const integrationFor = (fnId: FunctionId, fn: lambda.IFunction) => {
      let integration = integrations.get(fnId);
      if (!integration) {
        // One invoke permission per function for the whole API rather than one per route.
        integration = new HttpLambdaIntegration(`${fnId}-integration`, fn, { scopePermissionToRoute: false });
        integrations.set(fnId, integration);
      }
      return integration;
    };

    const routes = new Map<string, apigw.HttpRoute>();
    for (const def of ROUTES) {
      const fn = props.functions[def.fn];
      if (!fn) continue;
      const [route] = this.httpApi.addRoutes({
        path: def.path,
        methods: [def.method as apigw.HttpMethod],
        integration: integrationFor(def.fn, fn),
        ...(def.auth === 'iam' ? { authorizer } : {}),
      });
      if (!route) throw new Error(`no route created for ${def.method} ${def.path}`);
      if (def.auth === 'none') acknowledgePublicProbe(route, def);
      routes.set(`${def.method} ${def.path}`, route);
    }
    this.routes = routes;
  }

  /** The invoke URL of the `$default` stage (ends with `/`). */
  get url(): string {
    return this.stage.url;
  }
}

/** The contract makes the OIP liveness/readiness probes public; only those routes are acknowledged. */
function acknowledgePublicProbe(route: apigw.HttpRoute, def: RouteDef): void {
  if (!def.path.startsWith('/v2/health/')) {
    throw new Error(`only /v2/health/* routes may be public, not ${def.method} ${def.path}`);
  }
  Validations.of(route).acknowledge({
    id: 'AwsSolutions-APIG4',
    reason: `${def.method} ${def.path} is the Open Inference Protocol health probe, public by the API contract (auth 'none' in the route table of functions/contract/routes.ts) so that load balancers and uptime checks can call it; it returns only a liveness/readiness flag and no model or registry data.`,
  });
}

/**
 * InferenceApi: the API Gateway HTTP API with one route per entry of the contract's route table, and a
 * `$default` route for everything else.
 */
import { RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  type FunctionId,
  ROUTES,
  type RouteAccess,
  type RouteDef,
  UNMATCHED_ROUTE,
} from '../../functions/contract/routes';
import { checkJwtAuthorization, checkJwtScope, checkThrottling } from './validation';

/** The default OAuth scope a JWT must carry to call the inference routes (`access: 'infer'`). */
export const DEFAULT_INFER_SCOPE = 'maas/infer';
/** The default OAuth scope a JWT must carry to call the registry routes (`access: 'admin'`). */
export const DEFAULT_ADMIN_SCOPE = 'maas/admin';

/** How the non-public routes are protected. */
export type ApiAuthorization =
  | { readonly type: 'iam' }
  | {
      readonly type: 'jwt';
      /** Token issuer URL, e.g. `https://cognito-idp.<region>.amazonaws.com/<poolId>`. */
      readonly issuer: string;
      /** Accepted `aud` values (client ids); at least one. */
      readonly audience: readonly string[];
      /**
       * Scope a token needs for the inference routes (`access: 'infer'` in the route table).
       * @default DEFAULT_INFER_SCOPE ('maas/infer')
       */
      readonly inferScope?: string;
      /**
       * Scope a token needs for the registry routes (`access: 'admin'` in the route table).
       * @default DEFAULT_ADMIN_SCOPE ('maas/admin')
       */
      readonly adminScope?: string;
    };

/** A route's path in an `execute-api` ARN: each `{param}` a `*`. */
const arnPath = (path: string): string => path.replace(/\{[^}]+\}/g, '*');

/** Props of {@link InferenceApi}. */
export interface InferenceApiProps {
  /**
   * The function serving each FunctionId of the route table. Routes whose function is not given are
   * not created (the stack synthesizes with or without the event-driven functions).
   */
  readonly functions: Partial<Record<FunctionId, lambda.IFunction>>;
  /**
   * How the non-public routes are protected; a JWT issuer must be an https URL, the audience
   * non-empty and each route scope one OAuth scope (checked at synth).
   * @default { type: 'iam' } (SigV4)
   */
  readonly authorization?: ApiAuthorization;
  /** Stage steady-state requests per second, above 0 (checked at synth). @default 100 */
  readonly throttlingRateLimit?: number;
  /** Stage burst, a whole number of at least 1 (checked at synth). @default 200 */
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
 * HTTP API, `$default` stage with throttling and JSON access logs. Every non-public route uses IAM (SigV4)
 * or, when configured, a JWT authorizer; the `public` routes (the OIP health probes) are open. Inference
 * (`access: 'infer'`) and administration (`access: 'admin'`) are granted separately: with IAM by
 * {@link grantInvoke} / {@link grantAdmin} (or the managed policies {@link invokePolicy} / {@link adminPolicy}),
 * with JWT by the scopes {@link scopes} each route requires.
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
  /**
   * The `$default` route: requests matching no route of the table go to the predict function (undefined when it
   * is not given), which answers them 404 `ROUTE_NOT_FOUND` or 405 `METHOD_NOT_ALLOWED` like any other error.
   */
  readonly defaultRoute: apigw.HttpRoute | undefined;
  /** The JWT scope each non-public access class requires; undefined with IAM authorization. */
  readonly scopes: { readonly infer: string; readonly admin: string } | undefined;
  /**
   * With IAM authorization: a managed policy allowing `execute-api:Invoke` on exactly the inference routes
   * (attach it to the roles that may infer); undefined with JWT.
   */
  readonly invokePolicy: iam.ManagedPolicy | undefined;
  /**
   * With IAM authorization: a managed policy allowing `execute-api:Invoke` on exactly the registry routes
   * (register, update, delete, move aliases); undefined with JWT.
   */
  readonly adminPolicy: iam.ManagedPolicy | undefined;
  /** The route definitions of the routes created. */
  private readonly defs: readonly RouteDef[];

  constructor(scope: Construct, id: string, props: InferenceApiProps) {
    super(scope, id);
    const authorization = props.authorization ?? { type: 'iam' };
    if (authorization.type === 'jwt') {
      checkJwtAuthorization(authorization, {
        issuer: { prop: 'authorization.issuer', scope: this },
        audience: { prop: 'authorization.audience', scope: this },
      });
      this.scopes = {
        infer: checkJwtScope(authorization.inferScope ?? DEFAULT_INFER_SCOPE, {
          prop: 'authorization.inferScope',
          scope: this,
        }),
        admin: checkJwtScope(authorization.adminScope ?? DEFAULT_ADMIN_SCOPE, {
          prop: 'authorization.adminScope',
          scope: this,
        }),
      };
    } else {
      this.scopes = undefined;
    }
    this.httpApi = new apigw.HttpApi(this, 'Api', {
      description: 'maas: Open Inference Protocol v2 and model registry',
      createDefaultStage: false,
    });
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.accessLogRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const rateLimit = props.throttlingRateLimit ?? 100;
    const burstLimit = props.throttlingBurstLimit ?? 200;
    checkThrottling(rateLimit, burstLimit, this, {
      rate: 'throttlingRateLimit',
      burst: 'throttlingBurstLimit',
    });
    this.stage = new apigw.HttpStage(this, 'Stage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit, burstLimit },
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
        // One invoke permission per function for the whole API rather than one per route. Payload format 2.0,
        // stated rather than defaulted: its events carry any body API Gateway does not take for text (binary
        // tensor data: no Content-Type; application/octet-stream) base64-encoded with `isBase64Encoded`, and
        // it decodes an answer's base64 body for the client. No parameter mapping touches the body.
        integration = new HttpLambdaIntegration(`${fnId}-integration`, fn, {
          scopePermissionToRoute: false,
          payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
        });
        integrations.set(fnId, integration);
      }
      return integration;
    };

    const routes = new Map<string, apigw.HttpRoute>();
    const defs: RouteDef[] = [];
    for (const def of ROUTES) {
      const fn = props.functions[def.fn];
      if (!fn) continue;
      const scope = def.access === 'public' ? undefined : this.scopes?.[def.access];
      const [route] = this.httpApi.addRoutes({
        path: def.path,
        methods: [def.method as apigw.HttpMethod],
        integration: integrationFor(def.fn, fn),
        ...(def.access !== 'public' ? { authorizer } : {}),
        ...(scope !== undefined ? { authorizationScopes: [scope] } : {}),
      });
      if (!route) throw new Error(`no route created for ${def.method} ${def.path}`);
      if (def.access === 'public') acknowledgePublicProbe(route, def);
      routes.set(`${def.method} ${def.path}`, route);
      defs.push(def);
    }
    this.routes = routes;
    this.defs = defs;

    // Without a `$default` route, API Gateway answers an unmatched path or method itself (404 {"message"}), not
    // with the {"error","code"} body of the protocol. It is authorized as the inference routes are: with IAM,
    // API Gateway checks the request's own method and path against the caller's grants; with JWT, the infer scope.
    const unmatchedFn = props.functions[UNMATCHED_ROUTE.fn];
    const unmatchedScope = this.scopes?.[UNMATCHED_ROUTE.access];
    this.defaultRoute = unmatchedFn
      ? new apigw.HttpRoute(this, 'DefaultRoute', {
          httpApi: this.httpApi,
          routeKey: apigw.HttpRouteKey.DEFAULT,
          integration: integrationFor(UNMATCHED_ROUTE.fn, unmatchedFn),
          authorizer,
          ...(unmatchedScope !== undefined ? { authorizationScopes: [unmatchedScope] } : {}),
        })
      : undefined;

    if (authorization.type === 'iam') {
      this.invokePolicy = this.invokeOnlyPolicy('InvokePolicy', 'infer');
      this.adminPolicy = this.invokeOnlyPolicy('AdminPolicy', 'admin');
    } else {
      this.invokePolicy = undefined;
      this.adminPolicy = undefined;
    }
  }

  /**
   * The `execute-api` ARNs of the routes of one access class, on the `$default` stage: method and path,
   * each path parameter a `*`.
   */
  routeArns(access: Exclude<RouteAccess, 'public'>): string[] {
    return this.defs
      .filter((d) => d.access === access)
      .map((d) => this.httpApi.arnForExecuteApi(d.method, arnPath(d.path), this.stage.stageName));
  }

  /** Lets the grantee call the inference routes (`access: 'infer'`) with SigV4, and nothing else of the API. */
  grantInvoke(grantee: iam.IGrantable): iam.Grant {
    return this.grantRoutes(grantee, 'infer');
  }

  /** Lets the grantee call the registry routes (`access: 'admin'`) with SigV4, and nothing else of the API. */
  grantAdmin(grantee: iam.IGrantable): iam.Grant {
    return this.grantRoutes(grantee, 'admin');
  }

  private grantRoutes(grantee: iam.IGrantable, access: Exclude<RouteAccess, 'public'>): iam.Grant {
    if (this.scopes) {
      throw new Error(
        `${this.node.path}: the API uses JWT authorization; grant ${access} access with the '${this.scopes[access]}' scope of the identity provider, not IAM`,
      );
    }
    const principal = grantee.grantPrincipal;
    if (Construct.isConstruct(principal)) this.acknowledgeWildcards(principal, access);
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['execute-api:Invoke'],
      resourceArns: this.routeArns(access),
    });
  }

  private invokeOnlyPolicy(id: string, access: Exclude<RouteAccess, 'public'>): iam.ManagedPolicy {
    const policy = new iam.ManagedPolicy(this, id, {
      description: `maas: execute-api:Invoke on the ${access === 'infer' ? 'inference' : 'model registry'} routes of ${Stack.of(this).stackName} only`,
      statements: [
        new iam.PolicyStatement({ actions: ['execute-api:Invoke'], resources: this.routeArns(access) }),
      ],
    });
    this.acknowledgeWildcards(policy, access);
    return policy;
  }

  private acknowledgeWildcards(scope: Construct, access: Exclude<RouteAccess, 'public'>): void {
    acknowledgeRouteWildcards(
      scope,
      this.httpApi,
      this.stage.stageName,
      access,
      this.defs.filter((d) => d.access === access),
    );
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

/**
 * A route ARN names its path parameters with `*` (any model, version, alias or request id): each such
 * resource is acknowledged by its exact cdk-nag finding, nothing wider.
 */
function acknowledgeRouteWildcards(
  scope: Construct,
  api: apigw.HttpApi,
  stageName: string,
  access: Exclude<RouteAccess, 'public'>,
  defs: readonly RouteDef[],
): void {
  const apiId = Stack.of(api).resolve((api.node.defaultChild as apigw.CfnApi).logicalId) as string;
  for (const d of defs) {
    const path = arnPath(d.path);
    if (!path.includes('*')) continue;
    Validations.of(scope).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${apiId}>/${stageName}/${d.method}${path}]`,
      reason: `execute-api:Invoke on one ${access} route of the maas HTTP API (${d.method} ${d.path}, access '${access}' in functions/contract/routes.ts): the * stands for a path parameter chosen per call, not for other routes.`,
    });
  }
}

/**
 * Binary bodies through the HTTP API, as synthesized: every Lambda integration is a proxy of payload format 2.0
 * (whose events carry a body API Gateway does not take for text — binary tensor data, sent without Content-Type —
 * base64-encoded with `isBase64Encoded`, and whose answers with `isBase64Encoded: true` reach the client decoded),
 * with no conversion, mapping or template of the body; the API is an HTTP API (no binaryMediaTypes to keep in
 * step) not imported from an OpenAPI body; and the routes that take or give binary tensor data (sync and async
 * inference, the async result) reach the predict and async API functions through such integrations.
 * Bundling is skipped (Template assertions only).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../functions/contract/routes';
import type { MaasStack } from '../../infra/maas-stack';
import { buildStack, logicalId } from '../helpers/infra-stack';

type Resource = { Type: string; Properties: Record<string, unknown> };

let stack: MaasStack;
let integrations: Record<string, Resource>;
let routes: Record<string, Resource>;
let apis: Record<string, Resource>;

beforeAll(() => {
  const built = buildStack('BinaryBodies');
  stack = built.stack;
  integrations = built.template.findResources('AWS::ApiGatewayV2::Integration') as Record<string, Resource>;
  routes = built.template.findResources('AWS::ApiGatewayV2::Route') as Record<string, Resource>;
  apis = built.template.findResources('AWS::ApiGatewayV2::Api') as Record<string, Resource>;
});

/** The logical id of the integration a route targets (`integrations/<Ref>`). */
function integrationOf(route: Resource): string {
  const target = route.Properties.Target as { 'Fn::Join': [string, unknown[]] };
  const ref = target['Fn::Join'][1].find((p) => typeof p === 'object' && p !== null && 'Ref' in p) as
    | { Ref: string }
    | undefined;
  if (!ref) throw new Error(`route ${route.Properties.RouteKey} has no integration target`);
  return ref.Ref;
}

/** The logical id of the function an integration invokes (`IntegrationUri` is its ARN). */
function functionOf(integration: Resource): string {
  const uri = integration.Properties.IntegrationUri as { 'Fn::GetAtt': [string, string] };
  return uri['Fn::GetAtt'][0];
}

describe('binary bodies through the HTTP API', () => {
  it('is one HTTP API, not built from an OpenAPI body (which could carry binary media types)', () => {
    const all = Object.values(apis);
    expect(all).toHaveLength(1);
    const api = all[0] as Resource;
    expect(api.Properties.ProtocolType).toBe('HTTP');
    expect(api.Properties.Body).toBeUndefined();
    expect(api.Properties.BodyS3Location).toBeUndefined();
  });

  it('integrates every route as a Lambda proxy of payload format 2.0, the body neither converted nor mapped', () => {
    expect(Object.keys(integrations).length).toBeGreaterThan(0);
    for (const [id, integration] of Object.entries(integrations)) {
      const p = integration.Properties;
      expect(p.IntegrationType, id).toBe('AWS_PROXY');
      expect(p.PayloadFormatVersion, id).toBe('2.0');
      for (const key of [
        'ContentHandlingStrategy',
        'RequestParameters',
        'RequestTemplates',
        'TemplateSelectionExpression',
        'ResponseParameters',
        'PassthroughBehavior',
      ]) {
        expect(p[key], `${id}.${key}`).toBeUndefined();
      }
    }
  });

  it('routes sync and async inference and the async result to the predict and async API functions', () => {
    const byKey = new Map(Object.values(routes).map((r) => [r.Properties.RouteKey as string, r]));
    const expected = {
      predict: logicalId(stack, stack.functions.predict.fn),
      async: logicalId(stack, stack.events.asyncApiFunction),
    } as const;
    const binaryRoutes = ROUTES.filter((r) =>
      ['modelInfer', 'modelInferAsync', 'asyncResult'].includes(r.operationId),
    );
    expect(binaryRoutes.length).toBe(5);
    for (const def of binaryRoutes) {
      const key = `${def.method} ${def.path}`;
      const route = byKey.get(key);
      expect(route, key).toBeDefined();
      const integration = integrations[integrationOf(route as Resource)];
      expect(integration, key).toBeDefined();
      expect((integration as Resource).Properties.PayloadFormatVersion, key).toBe('2.0');
      expect(functionOf(integration as Resource), key).toBe(expected[def.fn as 'predict' | 'async']);
    }
  });
});

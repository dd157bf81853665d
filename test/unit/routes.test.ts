import { describe, expect, it } from 'vitest';
import {
  matchRoute,
  type OperationId,
  operationsOf,
  pathFor,
  ROUTES,
  routeFor,
  routeKey,
} from '../../functions/contract/routes';

describe('route table', () => {
  it('matches concrete paths to their routes with decoded parameters', () => {
    const m = matchRoute('POST', '/v2/models/iris/versions/prod/infer');
    expect(m && 'route' in m ? routeKey(m.route) : m).toBe('POST /v2/models/{name}/versions/{ref}/infer');
    expect(m && 'route' in m ? m.pathParameters : m).toEqual({ name: 'iris', ref: 'prod' });
    const d = matchRoute('GET', '/models/a%2Db');
    expect(d && 'route' in d ? d.pathParameters.name : d).toBe('a-b');
  });

  it('tells a wrong method from an unknown path', () => {
    expect(matchRoute('DELETE', '/v2/health/live')).toEqual({ methodNotAllowed: true, allowed: ['GET'] });
    // Every method the path takes, for the 405's Allow header.
    expect(matchRoute('DELETE', '/models/iris/versions')).toEqual({
      methodNotAllowed: true,
      allowed: ['POST', 'GET'],
    });
    expect(matchRoute('GET', '/nowhere')).toBeUndefined();
  });

  it('keeps a malformed percent-escape as sent instead of throwing', () => {
    const m = matchRoute('GET', '/models/%E0%A4%A');
    expect(m && 'route' in m ? m.pathParameters.name : m).toBe('%E0%A4%A');
  });

  it('has one route per method and path', () => {
    const keys = ROUTES.map(routeKey);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('gives every route a camelCase operation id, shared only by the variants of one operation', () => {
    for (const r of ROUTES) expect(r.operationId, routeKey(r)).toMatch(/^[a-z][a-zA-Z]*$/);
    // (id, path variant) is unique: one route per id without `{ref}`, at most one with it.
    const variants = ROUTES.map((r) => `${r.operationId} ${r.path.includes('{ref}') ? 'ref' : 'plain'}`);
    expect(new Set(variants).size).toBe(variants.length);
    // The variants of one id are one operation: same method and function, paths differing only by /versions/{ref}.
    const byId = new Map<OperationId, typeof ROUTES>();
    for (const r of ROUTES) byId.set(r.operationId, [...(byId.get(r.operationId) ?? []), r]);
    for (const [id, routes] of byId) {
      const [plain, withRef] = routes;
      if (!plain || !withRef) continue;
      expect(routes, id).toHaveLength(2);
      expect(withRef.method).toBe(plain.method);
      expect(withRef.fn).toBe(plain.fn);
      expect(withRef.path.replace('/versions/{ref}', '')).toBe(plain.path);
    }
    expect([...byId.keys()]).toEqual([
      'serverLive',
      'serverReady',
      'serverMetadata',
      'modelMetadata',
      'modelReady',
      'modelInfer',
      'modelInferAsync',
      'asyncResult',
      'modelFeedback',
      'listModels',
      'getModel',
      'createUpload',
      'registerVersion',
      'listVersions',
      'getVersion',
      'updateVersion',
      'deleteVersion',
      'deriveVersion',
      'moveAlias',
      'deleteAlias',
      'rollbackAlias',
      'updateAlias',
      'listCapture',
      'aliasHistory',
      'startRollout',
      'getRollout',
      'rolloutAction',
    ]);
  });

  it('maps the route keys of each function to its operation ids', () => {
    expect(operationsOf('async')).toEqual(
      new Map([
        ['POST /v2/models/{name}/infer-async', 'modelInferAsync'],
        ['POST /v2/models/{name}/versions/{ref}/infer-async', 'modelInferAsync'],
        ['GET /async/{requestId}', 'asyncResult'],
        ['POST /v2/models/{name}/feedback', 'modelFeedback'],
        ['GET /models/{name}/capture', 'listCapture'],
      ]),
    );
    const all = [...operationsOf('predict'), ...operationsOf('registry'), ...operationsOf('async')];
    expect(all).toHaveLength(ROUTES.length);
  });

  it('builds concrete paths from operation ids, choosing /versions/{ref} when ref is given', () => {
    expect(pathFor('listModels', {})).toBe('/models');
    expect(pathFor('getVersion', { name: 'iris', version: 2 })).toBe('/models/iris/versions/2');
    expect(pathFor('modelInfer', { name: 'iris' })).toBe('/v2/models/iris/infer');
    expect(pathFor('modelInfer', { name: 'iris', ref: undefined })).toBe('/v2/models/iris/infer');
    expect(pathFor('modelInfer', { name: 'iris', ref: 'prod' })).toBe('/v2/models/iris/versions/prod/infer');
    expect(pathFor('modelMetadata', { name: 'a b/c', ref: 'x?y#z' })).toBe(
      '/v2/models/a%20b%2Fc/versions/x%3Fy%23z',
    );
    expect(routeFor('moveAlias', { name: 'iris', alias: 'prod' }).method).toBe('PUT');
    expect(pathFor('getModel', { name: '' })).toBe('/models/');
    expect(matchRoute('GET', pathFor('getModel', { name: '' }))).toBeUndefined();
    // @ts-expect-error a required parameter is missing
    expect(() => pathFor('getVersion', { name: 'iris' })).toThrow(/name, version/);
  });

  it('round-trips every route through pathFor and matchRoute', () => {
    const sample: Record<string, string> = {
      name: 'my model/1',
      ref: 'prod%x',
      version: '12',
      alias: 'staging',
      requestId: 'r-1',
      action: 'pause',
    };
    for (const route of ROUTES) {
      const names = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
      const params = Object.fromEntries(names.map((n) => [n, sample[n] as string]));
      const path = (pathFor as (id: OperationId, p: Record<string, string>) => string)(
        route.operationId,
        params,
      );
      const m = matchRoute(route.method, path);
      expect(m && 'route' in m ? m.route : m, path).toBe(route);
      expect(m && 'route' in m ? m.pathParameters : m, path).toEqual(params);
    }
  });
});

describe('route access classes', () => {
  it('separates inference from registry administration; only the health probes are public', () => {
    const byAccess = (access: string) => ROUTES.filter((r) => r.access === access).map(routeKey);
    expect(byAccess('public').sort()).toEqual(['GET /v2/health/live', 'GET /v2/health/ready']);
    // Every registry route (register, delete, move aliases...) is admin, and so is reading captured requests
    // (their bodies are what callers sent): nothing else is.
    expect(byAccess('admin').sort()).toEqual(
      [...ROUTES.filter((r) => r.fn === 'registry').map(routeKey), 'GET /models/{name}/capture'].sort(),
    );
    // Feedback is sent by those who infer.
    expect(ROUTES.find((r) => r.operationId === 'modelFeedback')?.access).toBe('infer');
    expect(byAccess('admin').every((k) => k.split(' ')[1]?.startsWith('/models'))).toBe(true);
    expect(byAccess('infer').every((k) => /^\S+ \/(v2|async)(\/|$)/.test(k))).toBe(true);
    // auth follows access: public routes carry no authorizer, all others do.
    for (const r of ROUTES) expect(r.auth, routeKey(r)).toBe(r.access === 'public' ? 'none' : 'iam');
  });
});

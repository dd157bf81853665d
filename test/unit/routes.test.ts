import { describe, expect, it } from 'vitest';
import { matchRoute, ROUTES, routeKey } from '../../functions/contract/routes';

describe('route table', () => {
  it('matches concrete paths to their routes with decoded parameters', () => {
    const m = matchRoute('POST', '/v2/models/iris/versions/prod/infer');
    expect(m && 'route' in m ? routeKey(m.route) : m).toBe('POST /v2/models/{name}/versions/{ref}/infer');
    expect(m && 'route' in m ? m.pathParameters : m).toEqual({ name: 'iris', ref: 'prod' });
    const d = matchRoute('GET', '/models/a%2Db');
    expect(d && 'route' in d ? d.pathParameters.name : d).toBe('a-b');
  });

  it('tells a wrong method from an unknown path', () => {
    expect(matchRoute('DELETE', '/v2/health/live')).toEqual({ methodNotAllowed: true });
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
});

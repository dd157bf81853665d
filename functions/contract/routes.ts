/**
 * The route table: the one list of HTTP routes shared by the CDK stack (API Gateway HTTP API),
 * the local dev server and the tests. Paths use API Gateway's `{param}` syntax.
 */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Which Lambda function serves a route. */
export type FunctionId = 'predict' | 'registry' | 'async';

/** `iam` routes require SigV4 (or JWT when the stack is configured so); `none` are public. */
export type RouteAuth = 'iam' | 'none';

export interface RouteDef {
  readonly method: HttpMethod;
  readonly path: string;
  readonly fn: FunctionId;
  readonly auth: RouteAuth;
}

const r = (method: HttpMethod, path: string, fn: FunctionId, auth: RouteAuth = 'iam'): RouteDef => ({
  method,
  path,
  fn,
  auth,
});

/** Inference routes (Open Inference Protocol v2), each with and without `/versions/{ref}`. */
const withRef = (method: HttpMethod, suffix: string, fn: FunctionId): RouteDef[] => [
  r(method, `/v2/models/{name}${suffix}`, fn),
  r(method, `/v2/models/{name}/versions/{ref}${suffix}`, fn),
];

export const ROUTES: readonly RouteDef[] = [
  r('GET', '/v2/health/live', 'predict', 'none'),
  r('GET', '/v2/health/ready', 'predict', 'none'),
  r('GET', '/v2', 'predict'),
  ...withRef('GET', '', 'predict'),
  ...withRef('GET', '/ready', 'predict'),
  ...withRef('POST', '/infer', 'predict'),
  ...withRef('POST', '/infer-async', 'async'),
  r('GET', '/async/{requestId}', 'async'),

  r('GET', '/models', 'registry'),
  r('GET', '/models/{name}', 'registry'),
  r('POST', '/models/{name}/uploads', 'registry'),
  r('POST', '/models/{name}/versions', 'registry'),
  r('GET', '/models/{name}/versions', 'registry'),
  r('GET', '/models/{name}/versions/{version}', 'registry'),
  r('PATCH', '/models/{name}/versions/{version}', 'registry'),
  r('DELETE', '/models/{name}/versions/{version}', 'registry'),
  r('PUT', '/models/{name}/aliases/{alias}', 'registry'),
  r('DELETE', '/models/{name}/aliases/{alias}', 'registry'),
  r('POST', '/models/{name}/aliases/{alias}/rollback', 'registry'),
  r('GET', '/models/{name}/aliases/{alias}/history', 'registry'),
];

/** `routeKey` as API Gateway HTTP API writes it: `GET /models/{name}`. */
export const routeKey = (route: Pick<RouteDef, 'method' | 'path'>): string => `${route.method} ${route.path}`;

const compiled = ROUTES.map((route) => {
  const names: string[] = [];
  const source = route.path.replace(/\{([a-zA-Z]+)\}/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { route, names, regex: new RegExp(`^${source}$`) };
});

/** Percent-decodes a path segment; a malformed escape stays as sent (name validation then rejects it). */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export interface RouteMatch {
  readonly route: RouteDef;
  readonly pathParameters: Record<string, string>;
}

/**
 * Finds the route for a concrete method and path. Returns `undefined` when nothing matches, and
 * `{ methodNotAllowed: true }` when the path exists for another method.
 */
export function matchRoute(
  method: string,
  path: string,
): RouteMatch | { methodNotAllowed: true } | undefined {
  let pathKnown = false;
  for (const { route, names, regex } of compiled) {
    const m = regex.exec(path);
    if (!m) continue;
    pathKnown = true;
    if (route.method !== method.toUpperCase()) continue;
    const pathParameters: Record<string, string> = {};
    names.forEach((name, i) => {
      pathParameters[name] = decodeSegment(m[i + 1] ?? '');
    });
    return { route, pathParameters };
  }
  return pathKnown ? { methodNotAllowed: true } : undefined;
}

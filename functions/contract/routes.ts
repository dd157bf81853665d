/**
 * The route table: the one list of HTTP routes shared by the CDK stack (API Gateway HTTP API),
 * the local dev server, the handlers, the CLI and the tests. Paths use API Gateway's `{param}` syntax.
 * Every route carries an operation id; the model routes of the Open Inference Protocol exist with and
 * without `/versions/{ref}`, and both variants share one operation id.
 */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Which Lambda function serves a route. */
export type FunctionId = 'predict' | 'registry' | 'async';

/** `iam` routes require SigV4 (or JWT when the stack is configured so); `none` are public. */
export type RouteAuth = 'iam' | 'none';

/**
 * Who may call a route: `infer` the inference routes (OIP metadata, readiness, infer, async), `admin` the
 * model registry (register, delete, move aliases), `public` the health probes. The stack grants each class
 * separately (IAM policies or JWT scopes), so a caller allowed to infer cannot move `prod`.
 */
export type RouteAccess = 'infer' | 'admin' | 'public';

interface OperationSpec {
  readonly method: HttpMethod;
  readonly fn: FunctionId;
  readonly access: RouteAccess;
  /** The operation's path, then (model routes) the same operation on `/versions/{ref}`. */
  readonly paths: readonly [string] | readonly [string, string];
}

/** A model route of the Open Inference Protocol: on the default alias, and on `/versions/{ref}`. */
const model = <S extends string>(suffix: S) =>
  [`/v2/models/{name}${suffix}`, `/v2/models/{name}/versions/{ref}${suffix}`] as const;

/** The operations, in route-table order. */
const OPERATIONS = {
  serverLive: { method: 'GET', fn: 'predict', access: 'public', paths: ['/v2/health/live'] },
  serverReady: { method: 'GET', fn: 'predict', access: 'public', paths: ['/v2/health/ready'] },
  serverMetadata: { method: 'GET', fn: 'predict', access: 'infer', paths: ['/v2'] },
  modelMetadata: { method: 'GET', fn: 'predict', access: 'infer', paths: model('') },
  modelReady: { method: 'GET', fn: 'predict', access: 'infer', paths: model('/ready') },
  modelInfer: { method: 'POST', fn: 'predict', access: 'infer', paths: model('/infer') },
  modelInferAsync: { method: 'POST', fn: 'async', access: 'infer', paths: model('/infer-async') },
  asyncResult: { method: 'GET', fn: 'async', access: 'infer', paths: ['/async/{requestId}'] },
  modelFeedback: { method: 'POST', fn: 'async', access: 'infer', paths: ['/v2/models/{name}/feedback'] },

  listModels: { method: 'GET', fn: 'registry', access: 'admin', paths: ['/models'] },
  getModel: { method: 'GET', fn: 'registry', access: 'admin', paths: ['/models/{name}'] },
  createUpload: { method: 'POST', fn: 'registry', access: 'admin', paths: ['/models/{name}/uploads'] },
  registerVersion: { method: 'POST', fn: 'registry', access: 'admin', paths: ['/models/{name}/versions'] },
  listVersions: { method: 'GET', fn: 'registry', access: 'admin', paths: ['/models/{name}/versions'] },
  getVersion: {
    method: 'GET',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/versions/{version}'],
  },
  updateVersion: {
    method: 'PATCH',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/versions/{version}'],
  },
  deleteVersion: {
    method: 'DELETE',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/versions/{version}'],
  },
  /** Derives the next version from version `{version}` by transforms, behind an accuracy gate (202, PENDING). */
  deriveVersion: {
    method: 'POST',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/versions/{version}/derive'],
  },
  moveAlias: { method: 'PUT', fn: 'registry', access: 'admin', paths: ['/models/{name}/aliases/{alias}'] },
  deleteAlias: {
    method: 'DELETE',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/aliases/{alias}'],
  },
  rollbackAlias: {
    method: 'POST',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/aliases/{alias}/rollback'],
  },
  updateAlias: {
    method: 'PATCH',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/aliases/{alias}'],
  },
  listCapture: { method: 'GET', fn: 'async', access: 'admin', paths: ['/models/{name}/capture'] },
  aliasHistory: {
    method: 'GET',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/aliases/{alias}/history'],
  },
  /** Starts a staged rollout on the alias (body: the rollout spec). */
  startRollout: {
    method: 'PUT',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/aliases/{alias}/rollout'],
  },
  /** The alias's current or last rollout. */
  getRollout: {
    method: 'GET',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/aliases/{alias}/rollout'],
  },
  /** `pause`, `resume` or `abort` the alias's rollout. */
  rolloutAction: {
    method: 'POST',
    fn: 'registry',
    access: 'admin',
    paths: ['/models/{name}/aliases/{alias}/rollout/{action}'],
  },
} as const satisfies Record<string, OperationSpec>;

type Operations = typeof OPERATIONS;

/** The id of an operation of the HTTP API (`getVersion`, `modelInfer`…). */
export type OperationId = keyof Operations;

/** The operations one Lambda function serves. */
export type OperationOf<F extends FunctionId> = {
  [Id in OperationId]: Operations[Id]['fn'] extends F ? Id : never;
}[OperationId];

/** One route of the HTTP API: one method and path of an operation. */
export interface RouteDef {
  readonly method: HttpMethod;
  readonly path: string;
  readonly fn: FunctionId;
  /** `none` for the `public` routes, `iam` for the others (derived from {@link access}). */
  readonly auth: RouteAuth;
  readonly access: RouteAccess;
  /** Shared by the variants of one operation (with and without `/versions/{ref}`). */
  readonly operationId: OperationId;
}

/** Every route, in table order (an operation's variants next to each other). */
export const ROUTES: readonly RouteDef[] = (Object.keys(OPERATIONS) as OperationId[]).flatMap(
  (operationId) => {
    const spec: OperationSpec = OPERATIONS[operationId];
    return spec.paths.map((path) => ({
      method: spec.method,
      path,
      fn: spec.fn,
      auth: spec.access === 'public' ? ('none' as const) : ('iam' as const),
      access: spec.access,
      operationId,
    }));
  },
);

/**
 * Who answers a request that matches no route of the table (API Gateway's `$default` route): the predict
 * function, which matches it on its path (404 `ROUTE_NOT_FOUND`, 405 `METHOD_NOT_ALLOWED` for a known path
 * with another method), with the access of the inference routes.
 */
export const UNMATCHED_ROUTE = { fn: 'predict', access: 'infer' } as const satisfies {
  readonly fn: FunctionId;
  readonly access: Exclude<RouteAccess, 'public'>;
};

/** `routeKey` as API Gateway HTTP API writes it: `GET /models/{name}`. */
export const routeKey = (route: Pick<RouteDef, 'method' | 'path'>): string => `${route.method} ${route.path}`;

const PARAM = /\{([a-zA-Z]+)\}/g;

const compiled = ROUTES.map((route) => {
  const names: string[] = [];
  const source = route.path.replace(PARAM, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { route, names, regex: new RegExp(`^${source}$`) };
});

/**
 * The operations of one function by route key (`GET /models/{name}` → `getModel`): what a handler
 * looks an API Gateway event's `routeKey` up in.
 */
export function operationsOf<F extends FunctionId>(fn: F): ReadonlyMap<string, OperationOf<F>> {
  const ops = new Map<string, OperationOf<F>>();
  for (const route of ROUTES)
    if (route.fn === fn) ops.set(routeKey(route), route.operationId as OperationOf<F>);
  return ops;
}

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
): RouteMatch | { methodNotAllowed: true; allowed: string[] } | undefined {
  const allowed: string[] = [];
  for (const { route, names, regex } of compiled) {
    const m = regex.exec(path);
    if (!m) continue;
    if (route.method !== method.toUpperCase()) {
      if (!allowed.includes(route.method)) allowed.push(route.method);
      continue;
    }
    const pathParameters: Record<string, string> = {};
    names.forEach((name, i) => {
      pathParameters[name] = decodeSegment(m[i + 1] ?? '');
    });
    return { route, pathParameters };
  }
  return allowed.length > 0 ? { methodNotAllowed: true, allowed } : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Concrete paths from operation ids.

type ParamNames<P extends string> = P extends `${string}{${infer Name}}${infer Rest}`
  ? Name | ParamNames<Rest>
  : never;
type Paths<Id extends OperationId> = Operations[Id]['paths'];
type RequiredParams<Id extends OperationId> = ParamNames<Paths<Id>[0]>;
type OptionalParams<Id extends OperationId> = Exclude<ParamNames<Paths<Id>[number]>, RequiredParams<Id>>;

/** One path parameter's value (version numbers may be given as numbers). */
export type PathParamValue = string | number;

/**
 * The path parameters of an operation: `{ name, version }` for `getVersion`; `{ name, ref? }` for the
 * model routes, whose `/versions/{ref}` variant is chosen when `ref` is given.
 */
export type PathParams<Id extends OperationId> = { readonly [K in RequiredParams<Id>]: PathParamValue } & {
  readonly [K in OptionalParams<Id>]?: PathParamValue | undefined;
};

const byOperation = new Map<OperationId, readonly { route: RouteDef; names: readonly string[] }[]>();
for (const { route, names } of compiled) {
  const list = byOperation.get(route.operationId) ?? [];
  // The variant with the most parameters first: it is chosen when all of them are given.
  byOperation.set(
    route.operationId,
    [...list, { route, names }].sort((a, b) => b.names.length - a.names.length),
  );
}

/**
 * The route an operation takes for these parameters: the variant whose parameters are all given, preferring
 * the one with most (`/versions/{ref}` when `ref` is given).
 */
export function routeFor<Id extends OperationId>(id: Id, params: PathParams<Id>): RouteDef {
  const given: Readonly<Record<string, PathParamValue | undefined>> = params;
  const variants = byOperation.get(id) ?? [];
  const found = variants.find(({ names }) => names.every((n) => given[n] !== undefined));
  if (!found) throw new Error(`${id} needs the path parameters ${variants.at(-1)?.names.join(', ')}`);
  return found.route;
}

/**
 * The concrete path of an operation, each parameter percent-encoded as one segment:
 * `pathFor('getVersion', { name: 'iris', version: 2 })` → `/models/iris/versions/2`;
 * `pathFor('modelInfer', { name: 'iris', ref: 'prod' })` → `/v2/models/iris/versions/prod/infer`.
 * An empty parameter leaves its segment empty: such a path matches no route (the API answers 404).
 */
export function pathFor<Id extends OperationId>(id: Id, params: PathParams<Id>): string {
  const route = routeFor(id, params);
  const given: Readonly<Record<string, PathParamValue | undefined>> = params;
  return route.path.replace(PARAM, (_m, name: string) => encodeURIComponent(String(given[name])));
}

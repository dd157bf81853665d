/**
 * The console's calls of the maas HTTP API. The page always calls its own origin: the local service serves the
 * API there itself; `maas console` forwards the same paths to the deployed stack, signed. Paths come from the
 * route table (functions/contract/routes.ts), as the CLI's do.
 */
import {
  CONSOLE_CONFIG_PATH,
  CONSOLE_HEADER,
  type ConsoleConfig,
  LIVE_METRICS_PATH,
} from '../../functions/contract/console';
import { type OperationId, type PathParams, pathFor } from '../../functions/contract/routes';
import type { LiveMetrics } from '../../functions/domain/metric-series';
import { findLatestMove, type HistoryPage } from '../../functions/domain/registry-plans';
import type { Rollout as RolloutRecord } from '../../functions/domain/rollout';
import type { AliasMoveResult, HistoryEntry, Model, ModelVersion } from '../../functions/domain/types';

export type { HistoryEntry, Model, ModelVersion };

/** A rollout as the API answers it: the stored rollout with its current weight and the time of its next step. */
export type Rollout = RolloutRecord & { readonly weight?: number; readonly nextStepAt?: string };

/** The header every call carries: `maas console` forwards only requests that have it (no cross-site forgery). */
export { CONSOLE_HEADER };

/** An answer of the API that is not a success (or no answer at all: status 0, code `NETWORK_ERROR`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** What the server that serves the console says about the API behind it (`/console/config.json`). */
export type { ConsoleConfig };

/** The parsed JSON of a text (the text itself when it is not JSON; undefined when empty). */
function parse(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The ApiError of an answer: `{"error","code"}` as the API writes it, else the status. */
function errorOf(res: Response, text: string): ApiError {
  const body = parse(text) as { error?: unknown; message?: unknown; code?: unknown } | string | undefined;
  const fields = typeof body === 'object' && body !== null ? body : {};
  const message =
    typeof fields.error === 'string'
      ? fields.error
      : typeof fields.message === 'string'
        ? fields.message
        : typeof body === 'string' && body.trim()
          ? body.trim().slice(0, 500)
          : `${res.status} ${res.statusText}`.trim();
  return new ApiError(
    res.status,
    typeof fields.code === 'string' ? fields.code : `HTTP_${res.status}`,
    message,
  );
}

/** Sends one request to the console's origin; resolves with the answer's text, rejects with ApiError. */
async function send(
  method: string,
  path: string,
  body?: unknown,
  accept = 'application/json',
): Promise<string> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: {
        accept,
        [CONSOLE_HEADER]: '1',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (e) {
    throw new ApiError(
      0,
      'NETWORK_ERROR',
      `the console's server did not answer (${(e as Error)?.message ?? String(e)}): is it still running?`,
    );
  }
  const text = await res.text();
  if (!res.ok) throw errorOf(res, text);
  return text;
}

/** A JSON request. */
export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  return parse(await send(method, path, body)) as T;
}

/** The path of a route-table operation (each parameter percent-encoded, as the CLI builds it). */
export const path = <Id extends OperationId>(id: Id, params: PathParams<Id>): string => pathFor(id, params);

export const getConfig = () => request<ConsoleConfig>('GET', CONSOLE_CONFIG_PATH);

/** The query of a listing page of 100 (the API's largest), after `token` when given. */
const pageQuery = (token?: string): string =>
  token ? `?nextToken=${encodeURIComponent(token)}&limit=100` : '?limit=100';

/** Every model (every page of the list). */
export async function listModels(): Promise<Model[]> {
  const models: Model[] = [];
  let token: string | undefined;
  do {
    const q = pageQuery(token);
    const page = await request<{ models: Model[]; nextToken?: string }>(
      'GET',
      `${path('listModels', {})}${q}`,
    );
    models.push(...page.models.map(ownMaps));
    token = page.nextToken;
  } while (token && models.length < 5000);
  return models;
}

export const getModel = (name: string) => request<Model>('GET', path('getModel', { name })).then(ownMaps);

/**
 * A model whose `aliases` and `splits` have no prototype: an alias is any name (`constructor`, `toString` are
 * valid ones), and looking one up that is not there must find nothing, not a property of `Object.prototype`.
 */
function ownMaps(m: Model): Model {
  const own = <T>(r: Readonly<Record<string, T>>): Record<string, T> =>
    Object.assign(Object.create(null) as Record<string, T>, r);
  return { ...m, aliases: own(m.aliases ?? {}), ...(m.splits ? { splits: own(m.splits) } : {}) };
}

/** Every version of a model, newest first. */
export async function listVersions(name: string): Promise<ModelVersion[]> {
  const versions: ModelVersion[] = [];
  let token: string | undefined;
  do {
    const q = pageQuery(token);
    const page = await request<{ versions: ModelVersion[]; nextToken?: string }>(
      'GET',
      `${path('listVersions', { name })}${q}`,
    );
    versions.push(...page.versions);
    token = page.nextToken;
  } while (token && versions.length < 5000);
  return versions.sort((a, b) => b.version - a.version);
}

export const getVersion = (name: string, version: number) =>
  request<ModelVersion>('GET', path('getVersion', { name, version }));

/** One page of an alias's history (the newest 100 entries, or the 100 after `token`: a page's `nextToken`). */
export async function aliasHistoryPage(name: string, alias: string, token?: string): Promise<HistoryPage> {
  const q = pageQuery(token);
  const page = await request<{ history: HistoryEntry[]; nextToken?: string }>(
    'GET',
    `${path('aliasHistory', { name, alias })}${q}`,
  );
  return { items: page.history, ...(page.nextToken ? { nextToken: page.nextToken } : {}) };
}

/** The most pages of history {@link aliasHistory} reads (1 000 entries). */
export const HISTORY_PAGES = 10;

/**
 * An alias's history back to `since` (an ISO time), newest first: page after page until one holds an older entry
 * or there is none, at most `maxPages`. `complete` is false when entries since `since` were left unread.
 */
export async function aliasHistory(
  name: string,
  alias: string,
  since: string,
  maxPages = HISTORY_PAGES,
): Promise<{ readonly entries: readonly HistoryEntry[]; readonly complete: boolean }> {
  const entries: HistoryEntry[] = [];
  let token: string | undefined;
  for (let n = 0; n < maxPages; n++) {
    const page = await aliasHistoryPage(name, alias, token);
    entries.push(...page.items);
    token = page.nextToken;
    if (!token || page.items.some((e) => e.at < since)) return { entries, complete: true };
  }
  return { entries, complete: false };
}

/**
 * An alias's newest 100 history entries (with the token of the next page when there are more), and its latest
 * move found as the API's rollback finds it (`findLatestMove`: past the split changes, further pages read when the
 * first holds none), so that a rollback's preview names the version the API moves to.
 */
export async function aliasHistoryAndMove(
  name: string,
  alias: string,
): Promise<{
  readonly history: readonly HistoryEntry[];
  readonly nextToken?: string;
  readonly latestMove?: HistoryEntry;
}> {
  const first = await aliasHistoryPage(name, alias);
  const { latest } = await findLatestMove(first, (token) => aliasHistoryPage(name, alias, token));
  return {
    history: first.items,
    ...(first.nextToken ? { nextToken: first.nextToken } : {}),
    ...(latest ? { latestMove: latest } : {}),
  };
}

/** The alias's current or last rollout; undefined when it never had one. */
export async function getRollout(name: string, alias: string): Promise<Rollout | undefined> {
  try {
    return await request<Rollout>('GET', path('getRollout', { name, alias }));
  } catch (e) {
    if (e instanceof ApiError && (e.code === 'ROLLOUT_NOT_FOUND' || e.code === 'NOT_IMPLEMENTED'))
      return undefined;
    throw e;
  }
}

/** Moves `alias` to `version`, only if it still points at `expectedVersion` (0: only if it does not exist). */
export const moveAlias = (
  name: string,
  alias: string,
  version: number,
  expectedVersion: number,
  reason?: string,
) =>
  request('PUT', path('moveAlias', { name, alias }), {
    version,
    expectedVersion,
    ...(reason ? { reason } : {}),
  });

/**
 * Moves `alias` back to the version its last move came from, only if it still points at `expectedVersion` (the
 * version the page showed; 0: only if it does not exist) and, given `expectedRevision`, has not changed since the
 * page read it (a move away and back changes the last move, and so the version a rollback goes to): else 412, and
 * nothing moves.
 */
export const rollbackAlias = (
  name: string,
  alias: string,
  expected: { readonly version: number; readonly revision?: number },
  reason?: string,
) =>
  request<AliasMoveResult>('POST', path('rollbackAlias', { name, alias }), {
    expectedVersion: expected.version,
    ...(expected.revision !== undefined ? { expectedRevision: expected.revision } : {}),
    ...(reason ? { reason } : {}),
  });

export const archiveVersion = (name: string, version: number) =>
  request<ModelVersion>('PATCH', path('updateVersion', { name, version }), { status: 'ARCHIVED' });

/**
 * Pauses, resumes or aborts rollout `id` (the one the page shows) of the alias: 409 `ROLLOUT_NOT_ACTIVE`, and
 * nothing changes, when the alias's rollout is another one or not in a state for the action.
 */
export const rolloutAction = (
  name: string,
  alias: string,
  action: 'pause' | 'resume' | 'abort',
  id: string,
) => request<Rollout>('POST', path('rolloutAction', { name, alias, action }), { id });

/** One tensor of an OIP request or answer. */
export interface Tensor {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly data: readonly unknown[];
}

/** An OIP inference answer. */
export interface InferAnswer {
  readonly model_name: string;
  readonly model_version?: string;
  readonly id?: string;
  readonly outputs: readonly Tensor[];
}

/** OIP model metadata (`GET /v2/models/{name}[/versions/{ref}]`). */
export interface ModelMetadata {
  readonly name: string;
  readonly versions?: readonly string[];
  readonly inputs: readonly {
    name: string;
    datatype: string;
    shape: readonly number[];
    parameters?: { preprocess?: readonly unknown[] };
  }[];
  readonly outputs: readonly { name: string; datatype: string; shape: readonly number[] }[];
}

export const modelMetadata = (name: string, ref: string) =>
  request<ModelMetadata>('GET', path('modelMetadata', { name, ref }));

export const infer = (name: string, ref: string, body: unknown) =>
  request<InferAnswer>('POST', path('modelInfer', { name, ref }), body);

/** The Prometheus text of `GET /metrics`. */
export const metricsText = () => send('GET', '/metrics', undefined, 'text/plain');

/** The Live page's figures of the last `minutes` from CloudWatch, read by `maas console` (of `model`, or all). */
export const liveMetrics = (minutes: number, model?: string) =>
  request<LiveMetrics>(
    'GET',
    `${LIVE_METRICS_PATH}?minutes=${minutes}${model ? `&model=${encodeURIComponent(model)}` : ''}`,
  );

/**
 * HTTP client of the `maas` CLI: JSON requests (and raw ones: binary inference) to the local service or a deployed stack (with a bearer
 * token for a JWT stack, else SigV4-signed for `execute-api` when the endpoint is not a local one), and
 * presigned artifact uploads with progress.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { configuredRegion, EnvironmentVariables, type EnvRecord } from '../config/environment';
import { type HttpMethod, type OperationId, type PathParams, pathFor, routeFor } from '../contract/routes';

/** The endpoint used when nothing else names one. */
export const DEFAULT_ENDPOINT = 'http://127.0.0.1:3000';

/** The server answered with an error (`{"error","code"}`). */
export class MaasApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'MaasApiError';
  }
}

/** The service could not be reached at all. */
export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectionError';
  }
}

/** The service took the connection but did not answer within the client's `timeoutMs`. */
/** The service answered a success that is not the API's (not JSON): a proxy's page, a body cut short. */
export class UnexpectedAnswerError extends ConnectionError {
  constructor(message: string) {
    super(message);
    this.name = 'UnexpectedAnswerError';
  }
}

export class RequestTimeoutError extends ConnectionError {
  constructor(message: string) {
    super(message);
    this.name = 'RequestTimeoutError';
  }
}

/** How long a request waits for its answer: API Gateway answers within 30 s, so twice that is a stalled API. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/**
 * Where the CLI sends requests: `--endpoint`, else `MAAS_ENDPOINT`, else the `api` of a running
 * `maas dev` (`$MAAS_HOME/endpoints.json`), else http://127.0.0.1:3000.
 */
export function resolveEndpoint(explicit: string | undefined, env?: EnvRecord): string {
  if (explicit) return stripSlash(explicit);
  const vars = new EnvironmentVariables(env);
  const configured = vars.cliEndpoint();
  if (configured) return stripSlash(configured);
  try {
    const file = join(vars.home(), 'endpoints.json');
    const api = (JSON.parse(readFileSync(file, 'utf8')) as { api?: unknown }).api;
    if (typeof api === 'string' && api) return stripSlash(api);
  } catch {
    // no running local service recorded
  }
  return DEFAULT_ENDPOINT;
}

const stripSlash = (s: string) => s.replace(/\/+$/, '');

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** Whether requests to `endpoint` are SigV4-signed: every https endpoint that is not on loopback. */
export function needsSigning(endpoint: string): boolean {
  const url = new URL(endpoint);
  return url.protocol === 'https:' && !LOOPBACK.has(url.hostname);
}

/** The AWS region of an `execute-api` host (`abc.execute-api.eu-west-1.amazonaws.com`), if it names one. */
export function regionFromHost(hostname: string): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(hostname)?.[1];
}

/** One request of the HTTP API: the method and the concrete path (with its query) of an operation. */
export interface ApiCall {
  readonly method: HttpMethod;
  readonly path: string;
}

/** Query parameters of a call; undefined ones are left out. */
export type Query = Readonly<Record<string, string | number | undefined>>;

/**
 * The call of route-table operation `id` with these path parameters (`pathFor`: each one percent-encoded,
 * the `/versions/{ref}` variant when `ref` is given) and query.
 */
export function apiCall<Id extends OperationId>(id: Id, params: PathParams<Id>, query: Query = {}): ApiCall {
  const { method } = routeFor(id, params);
  const path = pathFor(id, params);
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) q.set(key, String(value));
  const qs = q.toString();
  return { method, path: qs ? `${path}?${qs}` : path };
}

export interface MaasClientOptions {
  readonly endpoint: string;
  /** Signing region. @default --region, else the region in an execute-api host, else AWS_REGION */
  readonly region?: string;
  /** @default fromNodeProviderChain() */
  readonly credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Force signing on or off (ignored with a {@link token}). @default needsSigning(endpoint) */
  readonly sign?: boolean;
  /**
   * Bearer token (a JWT) for a stack deployed with JWT authorization: sent as `Authorization: Bearer <token>`,
   * and requests are then not SigV4-signed.
   * @default - none (SigV4 signing as {@link sign} says)
   */
  readonly token?: string;
  /**
   * How long one request waits for the API's whole answer (headers and body) before it fails with a RequestTimeoutError.
   * @default DEFAULT_REQUEST_TIMEOUT_MS
   */
  readonly timeoutMs?: number;
}

/** A small JSON client for the maas HTTP API. */
export class MaasClient {
  readonly endpoint: string;
  private readonly signer?: SignatureV4;
  private readonly authorization?: string;
  private readonly timeoutMs: number;

  constructor(opts: MaasClientOptions) {
    this.endpoint = stripSlash(opts.endpoint);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const url = new URL(this.endpoint);
    if (opts.token !== undefined) {
      const token = opts.token.replace(/^Bearer\s+/i, '').trim();
      if (!token || /[\s]/.test(token)) throw new Error('the bearer token is empty or contains whitespace');
      this.authorization = `Bearer ${token}`;
    } else if (opts.sign ?? needsSigning(this.endpoint)) {
      // An execute-api host names the region its signature must be for; the environment's region is a fallback.
      const region = opts.region ?? regionFromHost(url.hostname) ?? configuredRegion();
      if (!region) {
        throw new Error(`cannot tell the AWS region of ${this.endpoint}: pass --region or set AWS_REGION`);
      }
      this.signer = new SignatureV4({
        service: 'execute-api',
        region,
        credentials: opts.credentials ?? fromNodeProviderChain(),
        sha256: Hash.bind(null, 'sha256'),
      });
    }
  }

  /** Sends one call of the API (see apiCall) with an optional JSON body, like `request`. */
  send<T = unknown>(call: ApiCall, body?: unknown): Promise<T> {
    return this.request<T>(call.method, call.path, body);
  }

  /** Sends one JSON request; resolves with the parsed answer, rejects with MaasApiError on 4xx/5xx. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { res, body: text } = await this.fetch(method, path, 'application/json', textOf, payload);
    if (!res.ok) throw apiError(res, text);
    // A success is JSON (or empty: 204); anything else is not this API answering (a proxy's page, a cut body).
    const parsed = parseText(text);
    if (typeof parsed === 'string') {
      const type = res.headers.get('content-type');
      throw new UnexpectedAnswerError(
        `${this.endpoint} answered ${res.status} with a body that is not JSON${type ? ` (${type})` : ''}: is --endpoint the maas API?`,
      );
    }
    return parsed as T;
  }

  /**
   * Sends a raw body (e.g. a binary inference request) with extra headers (`content-type` among them), signed like
   * every request (the SigV4 payload hash covers these bytes). Resolves with the answer's headers and bytes;
   * rejects with MaasApiError on 4xx/5xx (the JSON `{"error","code"}` of the answer).
   */
  async sendBytes(
    call: ApiCall,
    body: Uint8Array,
    headers: Readonly<Record<string, string>>,
    accept = 'application/octet-stream, application/json',
  ): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
    const answer = await this.exchangeBytes(call, body, headers, accept);
    if (answer.status < 200 || answer.status > 299) {
      throw apiError(answer, new TextDecoder().decode(answer.body));
    }
    return answer;
  }

  /**
   * Sends `body` (bytes, with `headers`) and returns the answer as it came, whatever its status: its status, headers
   * and bytes (what `maas console` passes back to the page, failures included).
   */
  async exchangeBytes(
    call: ApiCall,
    body: Uint8Array,
    headers: Readonly<Record<string, string>>,
    accept = 'application/octet-stream, application/json',
  ): Promise<{ status: number; statusText: string; headers: Headers; body: Uint8Array }> {
    const { res, body: bytes } = await this.fetch(call.method, call.path, accept, bytesOf, body, headers);
    return { status: res.status, statusText: res.statusText, headers: res.headers, body: bytes };
  }

  /**
   * GETs a path as bytes (a binary answer, say): its status, headers and body, whatever the status.
   */
  async getBytes(
    path: string,
    accept = '*/*',
  ): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
    const { res, body } = await this.fetch('GET', path, accept, bytesOf);
    return { status: res.status, headers: res.headers, body };
  }

  /**
   * GETs a path that is not JSON (the local `/metrics`): its status, content type and text, whatever the status.
   */
  async getText(path: string): Promise<{ status: number; contentType: string; text: string }> {
    const { res, body: text } = await this.fetch('GET', path, 'text/plain, */*', textOf);
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', text };
  }

  /**
   * Sends one request with the client's authorization and reads its answer's body with `read`; a network failure is
   * a ConnectionError. A string payload is JSON; a byte payload goes with `extra` headers (its content type among
   * them).
   */
  private async fetch<B>(
    method: string,
    path: string,
    accept: string,
    read: (res: Response) => Promise<B>,
    payload?: string | Uint8Array,
    extra: Readonly<Record<string, string>> = {},
  ): Promise<{ res: Response; body: B }> {
    const url = new URL(this.endpoint + path);
    let headers: Record<string, string> = {
      accept,
      ...(typeof payload === 'string' ? { 'content-type': 'application/json' } : {}),
    };
    for (const [k, v] of Object.entries(extra)) headers[k.toLowerCase()] = v;
    if (this.authorization) headers.authorization = this.authorization;
    else if (this.signer) headers = await this.signHeaders(method, url, headers, payload);
    // Bounded until the answer's last byte: a stalled API, before its headers or within its body, is an error, never
    // a hang.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timeoutMs);
    let res: Response | undefined;
    try {
      res = await fetch(url, {
        method,
        headers,
        signal: abort.signal,
        ...(payload !== undefined ? { body: payload } : {}),
      });
      const body = await read(res);
      return { res, body };
    } catch (e) {
      if (abort.signal.aborted) {
        throw new RequestTimeoutError(
          res === undefined
            ? `${this.endpoint} took the request but did not answer within ${this.timeoutMs / 1000} s`
            : `${this.endpoint} started its answer but did not finish it within ${this.timeoutMs / 1000} s`,
        );
      }
      if (res !== undefined) {
        throw new ConnectionError(`${this.endpoint} broke off its answer: ${(e as Error).message}`);
      }
      const cause = (e as { cause?: { code?: string } }).cause;
      throw new ConnectionError(
        `cannot reach ${this.endpoint}${cause?.code ? ` (${cause.code})` : ''}: is \`maas dev\` running, or is --endpoint right?`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  private async signHeaders(
    method: string,
    url: URL,
    headers: Record<string, string>,
    payload: string | Uint8Array | undefined,
  ): Promise<Record<string, string>> {
    const query: Record<string, string | string[]> = {};
    for (const key of new Set(url.searchParams.keys())) {
      const all = url.searchParams.getAll(key);
      query[key] = all.length === 1 ? (all[0] as string) : all;
    }
    const signed = await (this.signer as SignatureV4).sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query,
      headers: { ...headers, host: url.host },
      ...(payload !== undefined ? { body: payload } : {}),
    });
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(signed.headers)) if (k.toLowerCase() !== 'host') out[k] = String(v);
    return out;
  }
}

const textOf = (res: Response): Promise<string> => res.text();
const bytesOf = async (res: Response): Promise<Uint8Array> => new Uint8Array(await res.arrayBuffer());

/** The parsed JSON of an answer's text (the text itself when it is not JSON; undefined when empty). */
function parseText(text: string): unknown {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return text;
  }
}

/** The MaasApiError of a 4xx/5xx answer whose body is `text` (`{"error","code"}`, or `message`, or nothing). */
function apiError(res: Pick<Response, 'status' | 'statusText'>, text: string): MaasApiError {
  const parsed = parseText(text);
  const err = parsed as { error?: unknown; code?: unknown; message?: unknown } | undefined;
  const message =
    typeof err?.error === 'string'
      ? err.error
      : typeof err?.message === 'string'
        ? err.message
        : `${res.status} ${res.statusText}`;
  return new MaasApiError(
    res.status,
    typeof err?.code === 'string' ? err.code : `HTTP_${res.status}`,
    message,
    parsed,
  );
}

/**
 * PUTs `bytes` to a presigned URL in chunks, reporting the bytes sent so far. Rejects with the storage
 * service's answer when it refuses the upload.
 */
export function uploadToPresignedUrl(
  url: string,
  bytes: Uint8Array,
  onProgress?: (sentBytes: number, totalBytes: number) => void,
  chunkBytes = 256 * 1024,
): Promise<void> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(target, {
      method: 'PUT',
      headers: { 'content-length': String(bytes.length), 'content-type': 'application/octet-stream' },
    });
    req.on('error', (e) => reject(new ConnectionError(`upload to ${target.host} failed: ${e.message}`)));
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve();
        else {
          const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? `HTTP_${status}`;
          const message = /<Message>([^<]+)<\/Message>/.exec(text)?.[1] ?? `upload refused with ${status}`;
          reject(new MaasApiError(status, code, `upload refused: ${message}`, text));
        }
      });
    });
    let offset = 0;
    const writeNext = () => {
      while (offset < bytes.length) {
        const end = Math.min(offset + chunkBytes, bytes.length);
        const chunk = bytes.subarray(offset, end);
        offset = end;
        const sent = offset;
        const ok = req.write(chunk, () => onProgress?.(sent, bytes.length));
        if (!ok) {
          req.once('drain', writeNext);
          return;
        }
      }
      req.end();
    };
    if (bytes.length === 0) {
      onProgress?.(0, 0);
      req.end();
    } else writeNext();
  });
}

/** Interval (ms) between two reads of a PENDING version. */
const POLL_MS = 1_000;

/**
 * Reads a PENDING model version until it is no longer PENDING, or `timeoutMs` passed (then it is answered as last
 * read, PENDING). `onProgress` hears the seconds waited before each read.
 */
export async function waitWhilePending<V extends { status: string; name: string; version: number | string }>(
  c: MaasClient,
  pending: V,
  timeoutMs: number,
  onProgress?: (seconds: number) => void,
): Promise<V> {
  const started = Date.now();
  let v = pending;
  while (v.status === 'PENDING' && Date.now() - started < timeoutMs) {
    onProgress?.(Math.round((Date.now() - started) / 1000));
    await new Promise((r) =>
      setTimeout(r, Math.min(POLL_MS, Math.max(0, timeoutMs - (Date.now() - started)))),
    );
    v = await c.send<V>(apiCall('getVersion', { name: v.name, version: String(v.version) }));
  }
  return v;
}

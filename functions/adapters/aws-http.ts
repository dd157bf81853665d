/**
 * Signed AWS requests over the AWS SDK v3's own transport parts — the SigV4 signer, the Node.js HTTP handler
 * (keep-alive), the standard retry strategy and its error classification, and the environment credential
 * provider — without a generated service client.
 *
 * Why: the predict function needs exactly two reads (DynamoDB GetItem, S3 GetObject), and on a cold start the
 * generated clients cost more than the model they serve: loading the DynamoDB and S3 clients, their endpoint
 * rule sets, middleware stacks and credential-provider chain takes about 40-55 ms, and their first request
 * another 25-40 ms (`npm run bench` measures the cold start of the bundle as deployed). Built from these parts,
 * the same two reads load in under 5 ms. Everything else (registry writes, events, batch) keeps the generated
 * clients of `aws-clients.ts`.
 *
 * Endpoints follow the SDK's environment settings, as the config module reads them from the environment the
 * client is given: `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL` (both ignored when
 * `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), otherwise the regional endpoint of the region (FIPS with
 * `AWS_USE_FIPS_ENDPOINT=true`, dual-stack with `AWS_USE_DUALSTACK_ENDPOINT=true`, the China partition's domains
 * in `cn-` regions).
 *
 * Waits are bounded (docs/ARCHITECTURE.md, "Errors"): each attempt by the connect, request and socket-idle
 * timeouts of `LIMITS`, each call — its retries and backoff included — by the deadline of `deadline.ts`, past which
 * it fails as 503 `UNAVAILABLE`. A timed-out or aborted connection is destroyed, never returned to the keep-alive
 * pool, and nothing of a failure is remembered: the next call starts afresh.
 */
import { fromEnv } from '@aws-sdk/credential-provider-env';
import {
  isServerError,
  isThrottlingError,
  isTransientError,
  StandardRetryStrategy,
} from '@smithy/core/retry';
import { HttpRequest } from '@smithy/core/transport';
import { Hash } from '@smithy/hash-node';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { SignatureV4 } from '@smithy/signature-v4';
import type {
  AwsCredentialIdentity,
  AwsCredentialIdentityProvider,
  HttpResponse,
  RetryErrorType,
  SdkError,
} from '@smithy/types';
import { EnvironmentVariables, type EnvRecord } from '../config/environment';
import { ENV } from '../contract/env';
import { LIMITS } from '../contract/limits';
import { deadlineExceeded, dependencyBudgetMs, invocationLeftMs, transferAllowanceMs } from './deadline';

/** The services this module talks to, by their signing name. */
export type AwsService = 'dynamodb' | 's3' | 'sqs';

export interface AwsHttpOptions {
  readonly service: AwsService;
  /** @default the region of `env` (the config module's rule: AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1) */
  readonly region?: string;
  /** Overrides the endpoint (the local server and the tests pass the emulator's URL). */
  readonly endpoint?: string;
  /** @default the Lambda environment's credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) */
  readonly credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Attempts per call, the first included. @default 3 (the SDK's default) */
  readonly maxAttempts?: number;
  /** Error codes retried like transient errors, besides those the SDK retries. */
  readonly retryableCodes?: readonly string[];
  /** @default one keep-alive handler per process, with the connect, request and socket-idle timeouts of `LIMITS` */
  readonly http?: NodeHttpHandler;
  /** The time (ms) one call may take, retries included. @default `dependencyBudgetMs` (deadline.ts) */
  readonly deadlineMs?: () => number;
  /**
   * The environment whose AWS settings apply where these options say nothing: the region, configured endpoints,
   * FIPS and dual-stack. @default the process environment
   */
  readonly env?: EnvRecord;
}

export interface AwsCall {
  readonly method: 'GET' | 'POST';
  /** The path, already percent-encoded (S3 keys: `encodeS3Key`). */
  readonly path: string;
  /** A host name in place of the endpoint's (S3 virtual-hosted buckets). */
  readonly hostname?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

/** An error answer of an AWS service, shaped as the SDK's service exceptions (name = error code). */
export class AwsServiceError extends Error {
  readonly $fault: 'client' | 'server';
  readonly $metadata: { readonly httpStatusCode: number; readonly requestId?: string };
  readonly $response: { readonly headers: Record<string, string> };

  constructor(code: string, message: string, status: number, headers: Record<string, string>) {
    super(message);
    this.name = code;
    this.$fault = status >= 500 ? 'server' : 'client';
    const requestId = headers['x-amzn-requestid'] ?? headers['x-amz-request-id'];
    this.$metadata = { httpStatusCode: status, ...(requestId ? { requestId } : {}) };
    this.$response = { headers };
  }
}

/** Longest error body read to find the error code and message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

let defaultHttp: NodeHttpHandler | undefined;

/** One keep-alive HTTP handler per process, shared by every client that is not given one. */
function sharedHttpHandler(): NodeHttpHandler {
  // A stalled connection fails (and is retried) instead of hanging until the function times out.
  defaultHttp ??= new NodeHttpHandler({
    connectionTimeout: LIMITS.dependencyConnectTimeoutMs,
    requestTimeout: LIMITS.dependencyRequestTimeoutMs,
    throwOnRequestTimeout: true,
    socketTimeout: LIMITS.dependencySocketIdleMs,
  });
  return defaultHttp;
}

/**
 * The endpoint of `service`: an explicit one, the one configured in `env` (a record, or the config module's reader
 * of one; @default the process environment), or the regional one.
 */
export function resolveAwsEndpoint(
  service: AwsService,
  region: string,
  endpoint: string | undefined,
  env?: EnvRecord | EnvironmentVariables,
): { readonly url: URL; readonly custom: boolean } {
  const vars = env instanceof EnvironmentVariables ? env : new EnvironmentVariables(env);
  const configured = endpoint ?? vars.configuredEndpoint(service);
  if (configured) return { url: new URL(configured), custom: true };
  const fipsOn = vars.useFipsEndpoint();
  const dualStack = vars.useDualstackEndpoint();
  const china = region.startsWith('cn-');
  // Regions of the aws and aws-us-gov partitions (us-iso-*, eusc-* and others belong to partitions of their own).
  const known = china || /^(af|ap|ca|eu|il|me|mx|sa|us)(-gov)?-[a-z]+-\d+$/.test(region);
  if (!known) {
    throw new Error(
      `region '${region}' is outside the aws, aws-cn and aws-us-gov partitions, whose ${service} endpoints this client derives; set ${ENV.endpoint}_${service.toUpperCase()}`,
    );
  }
  if (china && fipsOn)
    throw new Error(`the aws-cn partition has no FIPS endpoints; unset ${ENV.useFipsEndpoint}`);
  // GovCloud's regular DynamoDB endpoints are its FIPS endpoints.
  const fips =
    fipsOn && !(service === 'dynamodb' && !dualStack && region.startsWith('us-gov-')) ? '-fips' : '';
  const suffix = china ? 'amazonaws.com.cn' : 'amazonaws.com';
  const host =
    service === 's3'
      ? `s3${fips}${dualStack ? '.dualstack' : ''}.${region}.${suffix}`
      : `dynamodb${fips}.${region}.${dualStack ? (china ? 'api.amazonwebservices.com.cn' : 'api.aws') : suffix}`;
  return { url: new URL(`https://${host}`), custom: false };
}

/** Percent-encodes an S3 key for a request path (RFC 3986, `/` kept), as S3's SigV4 canonical URI expects. */
export function encodeS3Key(key: string): string {
  return key
    .split('/')
    .map((segment) =>
      encodeURIComponent(segment).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join('/');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Signs and sends requests to one AWS service, with the SDK's standard retries. */
export class AwsHttpClient {
  readonly service: AwsService;
  readonly region: string;
  /** The endpoint requests go to. */
  readonly endpoint: URL;
  /** True when the endpoint was configured (an emulator, LocalStack, a VPC endpoint) rather than derived. */
  readonly customEndpoint: boolean;
  private readonly signer: SignatureV4;
  private readonly http: NodeHttpHandler;
  private readonly retry: StandardRetryStrategy;
  private readonly retryableCodes: ReadonlySet<string>;
  private readonly deadlineMs: () => number;

  constructor(o: AwsHttpOptions) {
    const env = new EnvironmentVariables(o.env);
    this.service = o.service;
    this.region = o.region ?? env.region();
    const { url, custom } = resolveAwsEndpoint(o.service, this.region, o.endpoint, env);
    this.endpoint = url;
    this.customEndpoint = custom;
    this.signer = new SignatureV4({
      service: o.service,
      region: this.region,
      credentials: o.credentials ?? fromEnv(),
      sha256: Hash.bind(null, 'sha256'),
      // S3 signs the path as sent (keys arrive encoded once); every other service encodes it again.
      uriEscapePath: o.service !== 's3',
    });
    this.http = o.http ?? sharedHttpHandler();
    this.retry = new StandardRetryStrategy(o.maxAttempts ?? 3);
    this.retryableCodes = new Set(o.retryableCodes ?? []);
    this.deadlineMs = o.deadlineMs ?? dependencyBudgetMs;
  }

  /**
   * Sends `call` and hands a successful (2xx) response to `read`, which consumes its body. An error answer is
   * thrown as `AwsServiceError`. Throttling, 5xx, timeouts and connection errors — also while `read` consumes
   * the body — are retried with the SDK's standard strategy (exponential backoff with jitter, shared retry
   * capacity); anything else is thrown at once. The call, retries included, ends at its deadline
   * (`deadlineMs`), extended once the answer's headers name its length by that body's transfer time
   * (`transferAllowanceMs`, within the invocation's remaining time): then, or when the next retry could not start
   * before it, it fails with `UnavailableError` (503), the last error as cause.
   */
  async send<T>(call: AwsCall, read: (response: HttpResponse) => Promise<T>): Promise<T> {
    let budgetMs = this.deadlineMs();
    let giveUpAt = Date.now() + budgetMs;
    // Aborts the attempt in flight (its connection destroyed) when the deadline passes, body reading included.
    const controller = new AbortController();
    const deadline = controller.signal;
    let timer = setTimeout(() => controller.abort(), budgetMs);
    /** A body of `bytes` gets its transfer time on top, within the invocation's remaining time. */
    const allowTransfer = (bytes: number) => {
      const extra = Math.min(transferAllowanceMs(bytes), Date.now() + invocationLeftMs() - giveUpAt);
      if (extra <= 0) return;
      clearTimeout(timer);
      budgetMs += extra;
      giveUpAt += extra;
      timer = setTimeout(() => controller.abort(), Math.max(1, giveUpAt - Date.now()));
    };
    try {
      return await this.attempts(call, read, deadline, () => ({ budgetMs, giveUpAt }), allowTransfer);
    } finally {
      clearTimeout(timer);
    }
  }

  private async attempts<T>(
    call: AwsCall,
    read: (response: HttpResponse) => Promise<T>,
    deadline: AbortSignal,
    bounds: () => { budgetMs: number; giveUpAt: number },
    allowTransfer: (bytes: number) => void,
  ): Promise<T> {
    let token = await this.retry.acquireInitialRetryToken(this.service);
    let allowed = false;
    for (;;) {
      let response: HttpResponse | undefined;
      try {
        const request = new HttpRequest({
          method: call.method,
          protocol: this.endpoint.protocol,
          hostname: call.hostname ?? this.endpoint.hostname,
          ...(this.endpoint.port ? { port: Number(this.endpoint.port) } : {}),
          path: call.path,
          headers: {
            host: call.hostname ?? this.endpoint.host,
            ...call.headers,
            ...(call.body !== undefined ? { 'content-length': String(Buffer.byteLength(call.body)) } : {}),
          },
          ...(call.body !== undefined ? { body: call.body } : {}),
        });
        const signed = await this.signer.sign(request);
        ({ response } = await this.http.handle(signed as HttpRequest, { abortSignal: deadline }));
        if (response.statusCode < 200 || response.statusCode > 299) throw await serviceError(response);
        if (!allowed) {
          allowed = true;
          allowTransfer(Number(response.headers['content-length']) || 0);
        }
        const out = await read(response);
        this.retry.recordSuccess(token);
        return out;
      } catch (e) {
        discard(response);
        if (deadline.aborted) throw deadlineExceeded(this.describe(), bounds().budgetMs, e);
        const errorType = this.classify(e);
        if (errorType === 'CLIENT_ERROR') throw e;
        try {
          const retryAfterHint = retryAfter(response);
          token = await this.retry.refreshRetryTokenForRetry(token, {
            errorType,
            error: e as SdkError,
            ...(retryAfterHint ? { retryAfterHint } : {}),
          });
        } catch {
          throw e;
        }
        const delay = token.getRetryDelay();
        const { budgetMs, giveUpAt } = bounds();
        if (Date.now() + delay >= giveUpAt) throw deadlineExceeded(this.describe(), budgetMs, e);
        await sleep(delay);
      }
    }
  }

  /** The service and host, as a deadline error names them. */
  private describe(): string {
    return `${this.service} (${this.endpoint.host})`;
  }

  /** The SDK's classification of an error, plus this client's extra retryable codes. */
  private classify(e: unknown): RetryErrorType {
    if (typeof e !== 'object' || e === null) return 'CLIENT_ERROR';
    const err = e as SdkError;
    if (isThrottlingError(err)) return 'THROTTLING';
    if (isTransientError(err) || this.retryableCodes.has(err?.name)) return 'TRANSIENT';
    if (isServerError(err)) return 'SERVER_ERROR';
    return 'CLIENT_ERROR';
  }
}

/** The time a `retry-after` header (seconds) asks to wait until, as the SDK passes it to its retry strategy. */
function retryAfter(response: HttpResponse | undefined): Date | undefined {
  const seconds = Number(response?.headers['retry-after']);
  return Number.isFinite(seconds) && seconds >= 0 ? new Date(Date.now() + seconds * 1000) : undefined;
}

/** Releases the connection of a response whose body will not be read (a no-op once it was read). */
function discard(response: HttpResponse | undefined): void {
  const body = response?.body as { destroy?: () => void; readableEnded?: boolean } | undefined;
  if (body && !body.readableEnded) body.destroy?.();
}

/** Reads the whole body of a successful response. */
export async function readBody(response: HttpResponse): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response.body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The error code and message of an error answer: AWS JSON (`__type`, `message`) or S3 XML (`<Code>`). */
async function serviceError(response: HttpResponse): Promise<AwsServiceError> {
  const headers = response.headers;
  let text = '';
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_ERROR_BODY_BYTES) break;
    }
    text = Buffer.concat(chunks).toString('utf8');
  } catch {
    // The status alone is the error.
  }
  let code: string | undefined;
  let message: string | undefined;
  if (text.trimStart().startsWith('{')) {
    try {
      const body = JSON.parse(text) as { __type?: string; code?: string; message?: string; Message?: string };
      code = body.__type ?? body.code;
      message = body.message ?? body.Message;
    } catch {
      // Not JSON after all.
    }
  } else if (text.includes('<Code>')) {
    code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
    message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  }
  code ??= headers['x-amzn-errortype'];
  // `com.amazonaws.dynamodb.v20120810#ResourceNotFoundException`, `ThrottlingException:http://...`
  const name =
    code?.split('#').pop()?.split(':')[0] || (response.statusCode === 404 ? 'NotFound' : 'UnknownError');
  return new AwsServiceError(name, message ?? `HTTP ${response.statusCode}`, response.statusCode, headers);
}

/**
 * AWS SDK v3 clients built once per process. Endpoints come from the standard
 * AWS_ENDPOINT_URL[_DYNAMODB|_S3|...] variables (honoured by the SDK itself), so the same code talks to
 * AWS, DynamoDB Local/s3rver or LocalStack. The region follows the config module's one rule, and S3 is addressed
 * by path when an endpoint is configured. Checksums are only computed when an API requires them:
 * S3-compatible servers mishandle streamed aws-chunked uploads.
 *
 * Waits are bounded (docs/ARCHITECTURE.md, "Errors"): each attempt by the connect, request and socket-idle timeouts
 * of `LIMITS` (S3 without the request timeout, which would bound an upload's streaming), and each `send` — the SDK's
 * retries included — by the deadline of `deadline.ts` (an upload's body gets its transfer time on top), past which
 * it fails as 503 `UNAVAILABLE`. A timed-out or aborted connection is destroyed by the SDK's HTTP handler, never
 * reused.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { NodeHttpHandlerOptions } from '@smithy/node-http-handler';
import { EnvironmentVariables, type EnvRecord } from '../config/environment';
import { LIMITS } from '../contract/limits';
import { deadlineExceeded, dependencyBudgetMs, invocationLeftMs, transferAllowanceMs } from './deadline';

export interface ClientOptions {
  /** @default the region of `env` (the config module's rule: AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1) */
  readonly region?: string;
  /** Overrides the endpoint (tests and the local server pass the emulator's URL). */
  readonly endpoint?: string;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** The environment whose region and configured endpoints apply where these options say nothing. @default the process environment */
  readonly env?: EnvRecord;
  /** The time (ms) one `send` may take, the SDK's retries included. @default `dependencyBudgetMs` (deadline.ts) */
  readonly deadlineMs?: () => number;
}

const region = (o: ClientOptions) => o.region ?? new EnvironmentVariables(o.env).region();

/** Per-attempt timeouts of calls whose request is small (everything but S3's uploads). */
const HTTP: NodeHttpHandlerOptions = {
  connectionTimeout: LIMITS.dependencyConnectTimeoutMs,
  requestTimeout: LIMITS.dependencyRequestTimeoutMs,
  throwOnRequestTimeout: true,
  socketTimeout: LIMITS.dependencySocketIdleMs,
};

/** S3's: no time limit until the answer's headers, which an upload's body streams before; the idle limit holds. */
const S3_HTTP: NodeHttpHandlerOptions = {
  connectionTimeout: LIMITS.dependencyConnectTimeoutMs,
  socketTimeout: LIMITS.dependencySocketIdleMs,
};

type Send = (command: unknown, options?: unknown) => Promise<unknown>;

/** The size of the body a command uploads (S3 `PutObject` of bytes or text), else 0. */
function bodyBytes(command: unknown): number {
  const body = (command as { input?: { Body?: unknown } } | undefined)?.input?.Body;
  if (body instanceof Uint8Array) return body.byteLength;
  if (typeof body === 'string') return Buffer.byteLength(body);
  return 0;
}

/**
 * Bounds every `send` of `client` that brings no abort signal of its own by the deadline: the SDK's HTTP handler
 * aborts the attempt in flight, and the failure is an `UnavailableError` (503) with the SDK's error as cause.
 */
function bounded<C extends object>(client: C, service: string, o: ClientOptions): C {
  const target = client as unknown as { send: Send };
  const send = target.send.bind(client) as Send;
  const budget = o.deadlineMs ?? dependencyBudgetMs;
  target.send = async (command, options) => {
    if (typeof options === 'function' || (options as { abortSignal?: unknown })?.abortSignal) {
      return send(command, options);
    }
    // An upload's body gets its transfer time on top (within the invocation); a download's body is read after
    // `send` resolves, bounded by the idle timeout only: the deadline ends with `send`.
    const budgetMs = Math.min(budget() + transferAllowanceMs(bodyBytes(command)), invocationLeftMs());
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), Math.max(1, budgetMs));
    try {
      return await send(command, { ...(options as object | undefined), abortSignal: controller.signal });
    } catch (e) {
      if (controller.signal.aborted) throw deadlineExceeded(service, budgetMs, e);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  };
  return client;
}

export function dynamoDocumentClient(o: ClientOptions = {}): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    region: region(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    maxAttempts: 3,
    requestHandler: HTTP,
  });
  const doc = DynamoDBDocumentClient.from(client, {
    // The marshaller tells a plain object by its `constructor`: a map of the caller's with a key `constructor`
    // (tags `{"constructor": "x"}`) would pass for a class instance. Every object maas writes is plain data.
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: true },
  });
  // Both: the repository sends through the document client, the tests' and tools' table commands through the base.
  bounded(client, 'dynamodb', o);
  return bounded(doc, 'dynamodb', o);
}

export function s3Client(o: ClientOptions = {}): S3Client {
  const endpoint = o.endpoint ?? new EnvironmentVariables(o.env).configuredEndpoint('s3');
  const client = new S3Client({
    region: region(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    // Emulators (s3rver, LocalStack) serve buckets by path, not by virtual host.
    forcePathStyle: endpoint !== undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: S3_HTTP,
  });
  return bounded(client, 's3', o);
}

export function sqsClient(o: ClientOptions = {}): SQSClient {
  const client = new SQSClient({
    region: region(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    requestHandler: HTTP,
  });
  return bounded(client, 'sqs', o);
}

/** CloudWatch (the rollout controller reads the state of the alarms its rollouts name). */
export function cloudWatchClient(o: ClientOptions = {}): CloudWatchClient {
  const client = new CloudWatchClient({
    region: region(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    requestHandler: HTTP,
  });
  return bounded(client, 'cloudwatch', o);
}

export function eventBridgeClient(o: ClientOptions = {}): EventBridgeClient {
  const client = new EventBridgeClient({
    region: region(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    requestHandler: HTTP,
  });
  return bounded(client, 'eventbridge', o);
}

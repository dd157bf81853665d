/**
 * Async API Lambda: the route table's routes with fn 'async' —
 * `POST /v2/models/{name}[/versions/{ref}]/infer-async` (202 `{"requestId"}`),
 * `GET /async/{requestId}` (`{"status": "pending"|"done"|"failed", "result"?, "error"?}`; a result with binary
 * outputs in the binary tensor data form: that document as the JSON header, then the raw tensors; a result too
 * large for the function's answer as `{"status": "done", "download"}`, a presigned GET of the stored object),
 * `POST /v2/models/{name}/feedback` (201 `{"accepted"}`) and `GET /models/{name}/capture` (`{"records", "nextToken"?}`).
 */
import { withInvocationDeadline } from '../adapters/deadline';
import { PowertoolsLogger } from '../adapters/powertools-logger';
import {
  type AsyncInferenceDeps,
  type AsyncResultDeps,
  getAsyncStatus,
  submitAsyncInference,
} from '../app/async-inference';
import { listCapture } from '../app/capture-read';
import { submitFeedback } from '../app/feedback';
import { EnvironmentVariables, type MaasConfig } from '../config/environment';
import { ENV } from '../contract/env';
import { LIMITS } from '../contract/limits';
import { ROUTING_KEY_HEADER, SERVICE_NAMES } from '../contract/observability';
import { operationsOf } from '../contract/routes';
import { parseInferenceBody } from '../domain/body-parser';
import { parseCaptureQuery } from '../domain/capture-listing';
import { parseFeedbackJson } from '../domain/feedback';
import type { Invocation, Logger } from '../ports/logger';
import type { ObjectReader } from '../ports/objects';
import {
  actorOf,
  bodyText,
  errorResult,
  type HttpEvent,
  type HttpResult,
  json,
  misconfiguredHandler,
  resolveOperation,
} from './http';
import { modelKeys } from './logging';
import { BINARY_HEADER, binaryHeaderLength, binaryRequestBytes } from './request-body';

/** What the async API's use cases read and write (async inference, feedback, the capture listing). */
export interface AsyncApiDeps extends AsyncInferenceDeps, AsyncResultDeps {
  /** Where captured records are read back from (the model bucket). @default none: the capture listing fails */
  readonly objects?: ObjectReader;
}

export interface AsyncApiHandlerDeps extends AsyncApiDeps {
  /** Largest accepted request body. @default LIMITS.maxBodyBytes */
  readonly maxBodyBytes?: number;
  /** @default the function's Powertools logger */
  readonly logger?: Logger;
}

/** The route table's async operations by route key. */
const OPS = operationsOf('async');

/** The function's logger (Powertools loads with the first line). */
const functionLogger = new PowertoolsLogger({ serviceName: SERVICE_NAMES.asyncApi });

export function createAsyncApiHandler(
  deps: AsyncApiHandlerDeps,
): (event: HttpEvent, context?: Invocation) => Promise<HttpResult> {
  const logger = deps.logger ?? functionLogger;
  return async (event, context) => {
    let log = logger.forRequest(context);
    try {
      const { op, params } = resolveOperation(event, OPS);
      log = logger.forRequest(context, modelKeys(params));
      switch (op) {
        case 'modelInferAsync': {
          // A binary tensor data request is kept as its bytes (checked, not re-encoded); a JSON one is parsed.
          const headerLength = event.headers?.[BINARY_HEADER];
          const request =
            headerLength !== undefined
              ? {
                  binary: {
                    headerLength: binaryHeaderLength(headerLength),
                    bytes: binaryRequestBytes(event, deps.maxBodyBytes ?? LIMITS.maxBodyBytes),
                  },
                }
              : { body: parseInferenceBody(bodyText(event, deps.maxBodyBytes)) };
          const accepted = await submitAsyncInference(deps, {
            name: params.name ?? '',
            ...(params.ref ? { ref: params.ref } : {}),
            ...request,
            actor: actorOf(event),
            ...(event.headers?.[ROUTING_KEY_HEADER] ? { routingKey: event.headers[ROUTING_KEY_HEADER] } : {}),
          });
          return json(202, accepted);
        }
        case 'asyncResult': {
          const status = await getAsyncStatus(deps, params.requestId ?? '');
          if (!('binary' in status)) return json(200, status);
          const { body, headerLength } = status.binary;
          return {
            statusCode: 200,
            headers: { 'content-type': 'application/octet-stream', [BINARY_HEADER]: String(headerLength) },
            body: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64'),
            isBase64Encoded: true,
          };
        }
        case 'modelFeedback': {
          const body = parseFeedbackJson(bodyText(event, deps.maxBodyBytes));
          const { accepted } = await submitFeedback(deps, {
            name: params.name ?? '',
            body,
            actor: actorOf(event),
          });
          return json(201, { accepted });
        }
        case 'listCapture': {
          const query = parseCaptureQuery(params.name ?? '', event.queryStringParameters ?? {});
          if (!deps.objects) throw new Error('the capture listing has no object reader configured');
          return json(200, await listCapture({ objects: deps.objects }, query));
        }
      }
    } catch (e) {
      return errorResult(e, log);
    }
  };
}

// ---------------------------------------------------------------------------------------------------------
// Composition root of the Lambda.

async function fromEnvironment(
  config: MaasConfig,
): Promise<(event: HttpEvent, context?: Invocation) => Promise<HttpResult>> {
  const [{ s3Client }, { S3BlobStore }, aws] = await Promise.all([
    import('../adapters/aws-clients'),
    import('../adapters/s3-blob-store'),
    import('./event-aws'),
  ]);
  const blobs = new S3BlobStore(s3Client(), config.bucket);
  return createAsyncApiHandler({
    blobs,
    links: blobs,
    objects: blobs,
    queue: aws.queueFromConfig(config),
    maxBodyBytes: config.maxBodyBytes,
    logger: functionLogger,
  });
}

async function buildDefault(): Promise<(event: HttpEvent, context?: Invocation) => Promise<HttpResult>> {
  const env = new EnvironmentVariables();
  if (!env.hasTable()) return misconfiguredHandler(new Error(`${ENV.table} is not set`), functionLogger);
  try {
    return await fromEnvironment(env.config());
  } catch (e) {
    return misconfiguredHandler(e, functionLogger);
  }
}

/** The Lambda entry point (built at INIT from the environment). */
export const handler: (event: HttpEvent, context?: Invocation) => Promise<HttpResult> =
  withInvocationDeadline(await buildDefault());

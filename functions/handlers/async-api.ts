/**
 * Async API Lambda: the route table's routes with fn 'async' —
 * `POST /v2/models/{name}[/versions/{ref}]/infer-async` (202 `{"requestId"}`) and
 * `GET /async/{requestId}` (`{"status": "pending"|"done"|"failed", "result"?, "error"?}`).
 */
import { type AsyncInferenceDeps, getAsyncStatus, submitAsyncInference } from '../app/async-inference';
import { ENV } from '../contract/env';
import { operationsOf } from '../contract/routes';
import { parseInferenceBody } from '../domain/body-parser';
import { readConfig } from './config';
import {
  actorOf,
  bodyText,
  consoleLogger,
  errorResult,
  type HttpEvent,
  type HttpResult,
  json,
  type Logger,
  resolveOperation,
} from './http';

export interface AsyncApiHandlerDeps extends AsyncInferenceDeps {
  /** Largest accepted request body. @default LIMITS.maxBodyBytes */
  readonly maxBodyBytes?: number;
  readonly logger?: Logger;
}

/** The route table's async operations by route key. */
const OPS = operationsOf('async');

export function createAsyncApiHandler(deps: AsyncApiHandlerDeps): (event: HttpEvent) => Promise<HttpResult> {
  const logger = deps.logger ?? consoleLogger;
  return async (event) => {
    try {
      const { op, params } = resolveOperation(event, OPS);
      switch (op) {
        case 'modelInferAsync': {
          const body = parseInferenceBody(bodyText(event, deps.maxBodyBytes));
          const accepted = await submitAsyncInference(deps, {
            name: params.name ?? '',
            ...(params.ref ? { ref: params.ref } : {}),
            body,
            actor: actorOf(event),
          });
          return json(202, accepted);
        }
        case 'asyncResult':
          return json(200, await getAsyncStatus(deps, params.requestId ?? ''));
      }
    } catch (e) {
      return errorResult(e, logger);
    }
  };
}

// ---------------------------------------------------------------------------------------------------------
// Composition root of the Lambda.

async function fromEnvironment(): Promise<(event: HttpEvent) => Promise<HttpResult>> {
  const config = readConfig(process.env);
  const [{ s3Client }, { S3BlobStore }, aws] = await Promise.all([
    import('../adapters/aws-clients'),
    import('../adapters/s3-blob-store'),
    import('./event-aws'),
  ]);
  return createAsyncApiHandler({
    blobs: new S3BlobStore(s3Client(), config.bucket),
    queue: aws.queueFromConfig(config),
    maxBodyBytes: config.maxBodyBytes,
  });
}

const notConfigured = async (): Promise<HttpResult> =>
  errorResult(new Error(`${ENV.table} is not set`), consoleLogger);

/** The Lambda entry point (built at INIT from `process.env`). */
export const handler: (event: HttpEvent) => Promise<HttpResult> = process.env[ENV.table]
  ? await fromEnvironment()
  : notConfigured;

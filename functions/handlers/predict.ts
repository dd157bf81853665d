/**
 * Predict Lambda: the Open Inference Protocol (v2 REST) routes of the route table with fn 'predict' —
 * health, server and model metadata, model readiness and inference, each model route with and without
 * `/versions/{ref}`. `createPredictHandler(deps)` is the factory; `handler` is built at module scope from the
 * environment, and `MAAS_PRELOAD=name@ref,...` sessions are loaded during INIT.
 */
import { randomUUID } from 'node:crypto';
import { version as packageVersion } from '../../package.json';
import { StdoutCaptureSink } from '../adapters/capture-sinks';
import { withInvocationDeadline } from '../adapters/deadline';
import { DynamoRegistryReader } from '../adapters/dynamodb-registry-reader';
import { EmfLineSink } from '../adapters/emf-lines';
import { sharedOrtEngine } from '../adapters/ort-engine';
import { PowertoolsLogger } from '../adapters/powertools-logger';
import { loadTracer } from '../adapters/powertools-tracer';
import { S3ArtifactReader } from '../adapters/s3-artifact-reader';
import { SqsShadowMirror } from '../adapters/shadow-mirror';
import { type InferenceObservation, rawInputOf } from '../app/inference';
import { createInferenceObserver, inferenceIdHeader } from '../app/observe';
import { createPredictor, type Predictor, type PredictorDeps } from '../app/predict';
import { sharedSessionCache } from '../app/session-cache';
import { tracedEngine, tracedRegistry, tracedStore } from '../app/tracing';
import { EnvironmentVariables, type MaasConfig, ortEngineOptions } from '../config/environment';
import { ENV } from '../contract/env';
import { carriedBase64Bytes, carriedTextBytes, LIMITS } from '../contract/limits';
import {
  INFERENCE_ID_HEADER,
  ROUTE_HEADER,
  ROUTING_KEY_HEADER,
  SERVICE_NAMES,
  STABLE_ROUTE,
} from '../contract/observability';
import { operationsOf } from '../contract/routes';
import {
  asksBinaryOutput,
  binaryAnswerAsJson,
  binaryRequestAsJson,
  type EncodedResponse,
} from '../domain/binary-tensors';
import { parseInferenceBody } from '../domain/body-parser';
import { BadRequestError, isMaasError, UnavailableError } from '../domain/errors';
import { ownInferenceId } from '../domain/inference-validation';
import type { ShadowMirror } from '../ports/events';
import type { RegistryRepository } from '../ports/index';
import type { Invocation, Logger } from '../ports/logger';
import { type CaptureSink, type MetricsSink, noMetrics, noTracer, type Tracer } from '../ports/telemetry';
import {
  bodyText,
  errorResult,
  type HttpEvent,
  type HttpResult,
  json,
  misconfiguredHandler,
  rawJson,
  resolveOperation,
} from './http';
import { modelKeys } from './logging';
import { cachedReadiness } from './readiness';
import { BINARY_HEADER, binaryHeaderLength, binaryRequestBytes } from './request-body';

export interface PredictHandlerDeps extends PredictorDeps {
  readonly repo: PredictorDeps['repo'] & Pick<RegistryRepository, 'ping'>;
  /** Largest accepted request body. @default LIMITS.maxBodyBytes */
  readonly maxBodyBytes?: number;
  /** @default the function's Powertools logger */
  readonly logger?: Logger;
  /** A predictor to share (its caches) with other entry points; built from the deps otherwise. */
  readonly predictor?: Predictor;
  /** How long one registry ping answers the readiness probe. @default LIMITS.readinessTtlMs */
  readonly readinessTtlMs?: number;
  /** Clock of the readiness cache, in milliseconds. @default Date.now */
  readonly now?: () => number;
  /** Where each inference request is reported. @default none */
  readonly metrics?: MetricsSink;
  /** Where sampled exchanges are captured. @default none: nothing is captured */
  readonly capture?: CaptureSink;
  /** Annotates each inference's trace. @default none */
  readonly tracer?: Tracer;
  /** Whether the first request is a cold start. @default true */
  readonly coldStart?: boolean;
  /** Where requests sampled by their alias's shadow are mirrored (the work queue). @default none: not mirrored */
  readonly mirror?: ShadowMirror;
  /** How long a mirror is waited for (after the answer) before it counts as hung (`ShadowMirrorErrors`). @default SHADOW.budgetMs */
  readonly shadowBudgetMs?: number;
}

/** OIP extensions this server offers, announced by `GET /v2`. */
export const OIP_EXTENSIONS = [
  'binary_tensor_data',
  'model_aliases',
  'postprocess',
  'infer_async',
  'batch',
] as const;

/**
 * 400 `RESPONSE_TOO_LARGE`: an inference answer that would not fit Lambda's synchronous response
 * (`LIMITS.maxResponseBytes`, its body as Lambda carries it).
 */
function answerTooLarge(carried: number): BadRequestError {
  return new BadRequestError(
    `the answer is ${carried} bytes as the function returns it, more than the ${LIMITS.maxResponseBytes} a synchronous ` +
      'answer can hold: ask for fewer rows or outputs, or send it to /infer-async (or score it with maas batch), ' +
      'which return answers of any size',
    'RESPONSE_TOO_LARGE',
  );
}

/**
 * Throws {@link answerTooLarge} for a JSON answer whose text, escaped once more as Lambda carries it, exceeds
 * `LIMITS.maxResponseBytes`. A text of at most a sixth of the limit in characters fits whatever it holds (a
 * character escapes to 6 bytes at most): only larger ones are measured.
 */
function assertAnswerFits(text: string): void {
  if (text.length * 6 <= LIMITS.maxResponseBytes) return;
  const carried = carriedTextBytes(text);
  if (carried > LIMITS.maxResponseBytes) throw answerTooLarge(carried);
}

/**
 * The HTTP answer of an encoded response: raw tensors base64-encoded (payload 2.0), or plain JSON; with the
 * inference id and route headers. 400 `RESPONSE_TOO_LARGE` when it does not fit a synchronous answer.
 */
function encodedResult(answer: EncodedResponse, inferenceId: string, route: string): HttpResult {
  const { body, headerLength } = answer;
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (headerLength === undefined) {
    const text = bytes.toString('utf8');
    assertAnswerFits(text);
    return {
      statusCode: 200,
      headers: {
        'content-type': 'application/json',
        [INFERENCE_ID_HEADER]: inferenceId,
        [ROUTE_HEADER]: route,
      },
      body: text,
    };
  }
  const carried = carriedBase64Bytes(bytes.byteLength);
  if (carried > LIMITS.maxResponseBytes) throw answerTooLarge(carried);
  return {
    statusCode: 200,
    headers: {
      'content-type': 'application/octet-stream',
      [BINARY_HEADER]: String(headerLength),
      [INFERENCE_ID_HEADER]: inferenceId,
      [ROUTE_HEADER]: route,
    },
    body: bytes.toString('base64'),
    isBase64Encoded: true,
  };
}

/**
 * The `x-maas-inference-id` value of an inference id (`inferenceIdHeader`): an id of printable ASCII without
 * blanks (every generated id, and most clients') is its own, without a pattern match per request.
 */
function idHeader(id: string): string {
  if (id.length === 0) return inferenceIdHeader(id);
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return inferenceIdHeader(id);
  }
  return id;
}

/** Bytes of an event's body as it was sent (base64-decoded when API Gateway encoded it). */
function sentBytes(event: HttpEvent): number {
  const raw = event.body;
  if (raw === undefined) return 0;
  return event.isBase64Encoded ? Buffer.byteLength(raw, 'base64') : Buffer.byteLength(raw, 'utf8');
}

/** The route table's predict operations by route key. */
const OPS = operationsOf('predict');

const SERVER_METADATA = JSON.stringify({
  name: 'maas',
  version: packageVersion,
  extensions: OIP_EXTENSIONS,
});
const LIVE = JSON.stringify({ live: true });
const READY = JSON.stringify({ ready: true });

/** The function's logger. Powertools loads with the first line: a healthy cold start writes none. */
const functionLogger = new PowertoolsLogger({ serviceName: SERVICE_NAMES.predict });

/** Builds the predict handler over its ports. */
export function createPredictHandler(
  deps: PredictHandlerDeps,
): (event: HttpEvent, context?: Invocation) => Promise<HttpResult> {
  const predictor = deps.predictor ?? createPredictor(deps);
  const maxBodyBytes = deps.maxBodyBytes ?? LIMITS.maxBodyBytes;
  const logger = deps.logger ?? functionLogger;
  const registryReachable = cachedReadiness(() => deps.repo.ping(), {
    ttlMs: deps.readinessTtlMs ?? LIMITS.readinessTtlMs,
    ...(deps.now ? { now: deps.now } : {}),
  });
  const observer = createInferenceObserver({
    metrics: deps.metrics ?? noMetrics,
    ...(deps.capture ? { capture: deps.capture } : {}),
    ...(deps.tracer ? { tracer: deps.tracer } : {}),
    ...(deps.coldStart !== undefined ? { coldStart: deps.coldStart } : {}),
    ...(deps.mirror ? { mirror: deps.mirror } : {}),
    ...(deps.shadowBudgetMs !== undefined ? { shadowBudgetMs: deps.shadowBudgetMs } : {}),
    captureOf: predictor.capture,
  });
  // Whether anybody reads what the observer makes of a binary exchange: with no metrics sink, tracer, capture or
  // mirror, the binary path skips it (the JSON path always reports: its report is nearly free).
  const binaryObserved =
    (deps.metrics !== undefined && deps.metrics !== noMetrics) ||
    deps.tracer?.enabled === true ||
    deps.capture !== undefined ||
    deps.mirror !== undefined;
  return async (event, context) => {
    const startedAt = performance.now();
    let params = event.pathParameters;
    // An inference's report: made when the request turns out to be one, read when it is answered.
    let obs: InferenceObservation | undefined;
    // Whether the request or its answer is in the binary form.
    let binary = false;
    // The request body once decoded (text of a JSON request, bytes of a binary one): what a failure reports.
    let received: string | undefined;
    let receivedBytes: number | undefined;
    try {
      // API Gateway's routeKey names the route (no path matching, no allocation on the warm path).
      let op = OPS.get(event.routeKey);
      if (op === undefined) ({ op, params } = resolveOperation(event, OPS));
      const name = params?.name ?? '';
      const ref = params?.ref;
      switch (op) {
        case 'modelInfer': {
          obs = {};
          const routingKey = event.headers?.[ROUTING_KEY_HEADER];
          if (routingKey !== undefined && routingKey !== '') obs.routingKey = routingKey;
          const headerLength = event.headers?.[BINARY_HEADER];
          if (headerLength !== undefined) {
            binary = true;
            const length = binaryHeaderLength(headerLength);
            // Decoded with its first tensor aligned: tensors are views over the body.
            const bytes = binaryRequestBytes(event, maxBodyBytes, length);
            receivedBytes = bytes.length;
            // Awaited here, the answer made right after: one turn of promises less than a `then` of its own.
            const encoded = await predictor.inferBinary(name, ref, bytes, length, obs);
            return answeredEncoded(
              name,
              ref,
              obs,
              encoded,
              startedAt,
              bytes.length,
              // Captured and mirrored in its JSON form (made only then); a raw body is the served version's input.
              () => binaryRequestAsJson(bytes, length, rawInputOf(obs?.served)),
              true,
            );
          }
          // A UTF-8 byte is at most 3 per UTF-16 unit: short bodies need no byte count.
          const raw = event.body;
          const text =
            raw !== undefined &&
            !event.isBase64Encoded &&
            raw.length * 3 <= maxBodyBytes &&
            event.headers?.['content-encoding'] === undefined
              ? raw
              : bodyText(event, maxBodyBytes);
          received = text;
          const body = parseInferenceBody(text);
          // The request's own id names it even when it fails before it runs.
          const id = ownInferenceId(body);
          if (id !== undefined) obs.inferenceId = id;
          if (asksBinaryOutput(body)) {
            const encoded = await predictor.inferEncoded(name, ref, body, obs);
            binary = encoded.headerLength !== undefined;
            return answeredEncoded(name, ref, obs, encoded, startedAt, text.length, () => text, false);
          }
          const answer = await predictor.inferJson(name, ref, body, obs);
          assertAnswerFits(answer);
          observer.answered({
            model: name,
            ref,
            obs,
            status: 200,
            startedAt,
            // Characters of the body: its bytes for the ASCII JSON of a tensor request.
            payloadBytes: text.length,
            requestText: text,
            requestContentType: event.headers?.['content-type'] ?? 'application/json',
            responseText: answer,
          });
          return {
            statusCode: 200,
            headers: {
              'content-type': 'application/json',
              [INFERENCE_ID_HEADER]: idHeader(obs.inferenceId as string),
              [ROUTE_HEADER]: obs.route ?? STABLE_ROUTE,
            },
            body: answer,
          };
        }
        case 'serverLive':
          return rawJson(200, LIVE);
        case 'serverReady':
          try {
            await registryReachable();
          } catch (e) {
            throw new UnavailableError('the model registry is unreachable', 1, { cause: e });
          }
          return rawJson(200, READY);
        case 'serverMetadata':
          return rawJson(200, SERVER_METADATA);
        case 'modelMetadata':
          return json(200, await predictor.metadata(name, ref));
        case 'modelReady': {
          const served = await predictor.ready(name, ref);
          return json(200, { name, version: String(served.version.version), ready: true });
        }
      }
    } catch (e) {
      if (!obs) {
        // The predict path writes lines on failures only: the request's logger is made here, off the warm path.
        return errorResult(e, logger.forRequest(context, modelKeys(params)));
      }
      // A failed inference is answered with an inference id too, and reported like any other.
      obs.inferenceId ??= randomUUID();
      const name = params?.name ?? '';
      const ref = params?.ref;
      const result = errorResult(e, logger.forRequest(context, observer.logKeys(name, ref, obs)));
      const headers = result.headers as Record<string, string>;
      headers[INFERENCE_ID_HEADER] = inferenceIdHeader(obs.inferenceId);
      if (obs.served) headers[ROUTE_HEADER] = obs.route ?? STABLE_ROUTE;
      observer.answered({
        model: name,
        ref,
        obs,
        status: result.statusCode ?? 500,
        startedAt,
        // The body as decoded, as a success reports it (a compressed or base64-encoded body is never reported as
        // it travelled); one that could not be decoded counts its bytes as sent, and is never captured (a capture
        // needs a served version, which needs a decoded body).
        payloadBytes: received?.length ?? receivedBytes ?? sentBytes(event),
        requestText: received ?? '',
        requestContentType: event.headers?.['content-type'] ?? 'application/json',
        responseText: result.body ?? '',
        ...(isMaasError(e) ? { code: e.code } : {}),
        binary,
      });
      return result;
    }
  };

  /** Reports an answered exchange whose request or answer may be in the binary form, and makes its answer. */
  function answeredEncoded(
    name: string,
    ref: string | undefined,
    obs: InferenceObservation,
    encoded: EncodedResponse,
    startedAt: number,
    payloadBytes: number,
    requestText: () => string,
    binaryRequest: boolean,
  ): HttpResult {
    const result = encodedResult(encoded, idHeader(obs.inferenceId as string), obs.route ?? STABLE_ROUTE);
    const { headerLength } = encoded;
    if ((binaryRequest || headerLength !== undefined) && !binaryObserved) return result;
    observer.answered({
      model: name,
      ref,
      obs,
      status: 200,
      startedAt,
      payloadBytes,
      requestText,
      requestContentType: 'application/json',
      // A JSON answer's text as it is (a string, not a closure: the bundle names every closure stored in a property
      // at run time, which costs each request a property definition); a binary one's JSON form, made if captured or
      // mirrored.
      responseText:
        headerLength === undefined
          ? (result.body ?? '')
          : () => binaryAnswerAsJson(encoded.body, headerLength),
    });
    return result;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Composition root of the Lambda: clients, caches and sessions at module scope (they survive warm invokes).
// The adapters are imported statically: the bundler tree-shakes statically imported modules only (a dynamic
// import keeps the whole module graph behind it), and onnxruntime itself still loads lazily (loadOnnxRuntime).

async function fromEnvironment(
  config: MaasConfig,
  initializedAhead: boolean,
  traced: boolean,
  handlerName: string,
) {
  const { threads, memoryBudgetBytes } = ortEngineOptions(config);
  // X-Ray: loaded only when the function is traced; untraced, the ports are used undecorated.
  const tracer = traced ? await loadTracer(SERVICE_NAMES.predict, handlerName) : noTracer;
  const engine = sharedOrtEngine({ threads });
  // onnxruntime loads and initializes in the background, overlapping the first request's DynamoDB and S3 calls.
  const warm = engine.warmUp().catch((e: unknown) => {
    functionLogger.error('onnxruntime warm-up failed', { error: (e as Error)?.message });
  });
  // A sandbox initialized ahead of its requests (provisioned concurrency) may be frozen right after INIT: finish
  // the warm-up inside INIT there, where it costs no request anything.
  if (initializedAhead) await warm;
  const deps: PredictHandlerDeps = {
    // Signed GetItem/GetObject without the generated SDK clients: a fraction of their cold start (aws-http.ts).
    repo: tracedRegistry(new DynamoRegistryReader({ table: config.table }), tracer),
    store: tracedStore(new S3ArtifactReader({ bucket: config.bucket }), tracer),
    sessions: sharedSessionCache({ engine: tracedEngine(engine, tracer), memoryBudgetBytes, tracer }),
    aliasTtlMs: config.aliasTtlMs,
    maxBodyBytes: config.maxBodyBytes,
    // One EMF document per inference and capture lines on stdout: CloudWatch Logs takes both from there.
    metrics: new EmfLineSink({ serviceName: SERVICE_NAMES.predict, afterAnswer: true }),
    capture: new StdoutCaptureSink(),
    // Shadow mirrors go to the work queue (signed SendMessage, no SQS client); without a queue, none are sent.
    ...(config.queueUrl ? { mirror: new SqsShadowMirror({ queueUrl: config.queueUrl }) } : {}),
    coldStart: !initializedAhead,
    tracer,
  };
  const predictor = createPredictor(deps);
  // MAAS_PRELOAD: load during INIT; a failure is logged and the function still starts. An on-demand INIT waits
  // only until LIMITS.onDemandPreloadDeadlineMs after the process started (Lambda fails an INIT past 10 s); one
  // initialized ahead of its requests waits for all of them (its INIT is not on a request's path).
  const preloads = config.preload.map(({ name, ref }) => ({
    model: name,
    ref,
    done: predictor.preload(name, ref).then(
      () => undefined,
      (e: unknown) => {
        functionLogger.error('preload failed', { model: name, ref, error: (e as Error)?.message });
      },
    ),
  }));
  const budgetMs = initializedAhead ? undefined : LIMITS.onDemandPreloadDeadlineMs - performance.now();
  await awaitPreloads(preloads, budgetMs, functionLogger);
  return createPredictHandler({ ...deps, predictor });
}

/** One `MAAS_PRELOAD` entry being loaded; `done` never rejects (its failure is logged where it is made). */
export interface PendingPreload {
  readonly model: string;
  readonly ref: string | undefined;
  readonly done: Promise<void>;
}

/**
 * Waits for the preloads: all of them when `budgetMs` is undefined, else at most `budgetMs` (0 or less: not at
 * all). Preloads still running then carry on in the background, where their sessions land in the shared cache
 * for the requests that need them, and one warning names them.
 */
export async function awaitPreloads(
  preloads: readonly PendingPreload[],
  budgetMs: number | undefined,
  logger: Logger,
): Promise<void> {
  const all = Promise.all(preloads.map((p) => p.done));
  if (budgetMs === undefined || preloads.length === 0) {
    await all;
    return;
  }
  const pending = new Set(preloads);
  for (const p of preloads) void p.done.then(() => pending.delete(p));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    all.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), Math.max(0, budgetMs));
    }),
  ]);
  clearTimeout(timer);
  if (timedOut && pending.size > 0) {
    logger.warn('preload continues after INIT', {
      models: [...pending].map((p) => (p.ref === undefined ? p.model : `${p.model}@${p.ref}`)),
      budgetMs: Math.max(0, Math.round(budgetMs)),
    });
  }
}

async function buildDefault(): Promise<(event: HttpEvent, context?: Invocation) => Promise<HttpResult>> {
  const env = new EnvironmentVariables();
  if (!env.hasTable()) return misconfiguredHandler(new Error(`${ENV.table} is not set`), functionLogger);
  try {
    return await fromEnvironment(
      env.config(),
      env.initializedAhead(),
      env.tracingActive(),
      env.lambdaHandler(),
    );
  } catch (e) {
    return misconfiguredHandler(e, functionLogger);
  }
}

/** The Lambda entry point (built at INIT from the environment). */
export const handler: (event: HttpEvent, context?: Invocation) => Promise<HttpResult> =
  withInvocationDeadline(await buildDefault());

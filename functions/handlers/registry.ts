/**
 * Registry HTTP API (the route table's `/models…` operations, fn 'registry') on API Gateway HTTP API v2 events.
 * Thin: parse and validate the request, call a use case, answer JSON; errors map through errorResult.
 */
import { dynamoDocumentClient, s3Client } from '../adapters/aws-clients';
import { withInvocationDeadline } from '../adapters/deadline';
import { DynamoRegistryRepository } from '../adapters/dynamodb-registry';
import { DynamoRolloutRepository } from '../adapters/dynamodb-rollouts';
import { EmfMetricsSink } from '../adapters/emf-metrics';
import { DynamoIdempotencyGuard } from '../adapters/idempotency-store';
import { OrtModelInspector } from '../adapters/ort-inspector';
import { PowertoolsLogger } from '../adapters/powertools-logger';
import { loadTracer } from '../adapters/powertools-tracer';
import { S3ArtifactStore } from '../adapters/s3-artifact-store';
import { startDerive } from '../app/derive';
import { registerVersionOnce } from '../app/registration';
import {
  aliasHistory,
  createUpload,
  deleteAlias,
  deleteVersion,
  getModel,
  getVersion,
  listModels,
  listVersions,
  moveAlias,
  type RegistryDeps,
  rollbackAlias,
  updateAlias,
  updateVersion,
} from '../app/registry';
import {
  abortRollout,
  getRollout,
  pauseRollout,
  type RolloutDeps,
  resumeRollout,
  startRollout,
} from '../app/rollout';
import { EnvironmentVariables, readConfig } from '../config/environment';
import { S3_KEYS } from '../contract/env';
import { IDEMPOTENCY, REGISTRATION } from '../contract/events';
import { LIMITS } from '../contract/limits';
import { SERVICE_NAMES } from '../contract/observability';
import { type OperationOf, operationsOf, ROUTES, routeKey } from '../contract/routes';
import { deriveBodySchema } from '../domain/derive';
import { BadRequestError, NotFoundError } from '../domain/errors';
import { parseVersionNumber, validateAliasName, validateModelName } from '../domain/names';
import { parsePreprocessSpec } from '../domain/preprocess-spec';
import {
  createUploadBodySchema,
  moveAliasBodySchema,
  parseCapturePatch,
  parseLimit,
  parseRoutingPatch,
  parseS3Uri,
  parseWith,
  patchAliasBodySchema,
  patchVersionBodySchema,
  registerVersionBodySchema,
  rollbackBodySchema,
  rolloutActionBodySchema,
} from '../domain/registry';
import { parseRolloutRequest, ROLLOUT_ACTIONS, type RolloutActionName } from '../domain/rollout';
import type { ModelVersion } from '../domain/types';
import type { DeriveQueue } from '../ports/derive';
import type { IdempotencyGuard, QueuePublisher, TimeBudget } from '../ports/events';
import type { Invocation, Logger } from '../ports/logger';
import type { AlarmStates, RolloutRepository } from '../ports/rollouts';
import { type MetricsSink, noMetrics, noTracer, type Tracer } from '../ports/telemetry';
import { eventsFromConfig, queueFromConfig } from './event-aws';
import {
  actorOf,
  bodyText,
  errorResult,
  type HttpEvent,
  type HttpResult,
  json,
  misconfiguredHandler,
  parseJsonObject,
  pathParam,
  queryParam,
} from './http';
import { modelKeys } from './logging';

export interface RegistryHandlerDeps extends RegistryDeps {
  /** @default LIMITS.maxBodyBytes */
  readonly maxBodyBytes?: number;
  /** Lifetime of presigned upload URLs. @default LIMITS.uploadUrlTtlSeconds */
  readonly uploadTtlSeconds?: number;
  /**
   * Logs the use cases' warnings and unexpected errors (never returned to the caller), with the request's model,
   * version and alias. @default the function's Powertools logger
   */
  readonly logger?: Logger;
  /**
   * Runs a registration with an idempotency key (`uploadId` or the `Idempotency-Key` header) once per key.
   * @default none: every request registers
   */
  readonly guard?: IdempotencyGuard;
  /**
   * The work queue on which a registration that does not fit the invocation's time continues (202, PENDING).
   * @default none: registrations run to the end synchronously
   */
  readonly queue?: QueuePublisher;
  /**
   * Budget (ms) of a registration's synchronous part, at most the invocation's remaining time less
   * REGISTRATION.reserveMs (in Lambda, that alone is the budget). @default REGISTRATION.localBudgetMs without an
   * invocation context, else none
   */
  readonly registrationBudgetMs?: number;
  /** Where each request is reported (by operation). @default none */
  readonly metrics?: MetricsSink;
  /** Annotates each request's trace with its operation and model. @default none */
  readonly tracer?: Tracer;
  /** Where staged rollouts are kept (the rollout routes answer 501 without it). @default none */
  readonly rollouts?: RolloutRepository;
  /** Alarm states (the API's rollout actions read none; the controller does). @default none in ALARM */
  readonly alarms?: AlarmStates;
}

/** 501: the handler was built without a rollout repository. */
const rolloutsNotConfigured = () =>
  json(501, { error: 'staged rollouts are not configured here', code: 'NOT_IMPLEMENTED' });

/** No alarm is in ALARM. */
const NO_ALARMS: AlarmStates = { inAlarm: async () => [] };

/** The rollout use cases' dependencies; undefined when the handler has no rollout repository. */
function rolloutDeps(d: RegistryHandlerDeps): RolloutDeps | undefined {
  if (!d.rollouts) return undefined;
  return {
    repo: d.repo,
    rollouts: d.rollouts,
    alarms: d.alarms ?? NO_ALARMS,
    ...(d.events ? { events: d.events } : {}),
    ...(d.clock ? { clock: d.clock } : {}),
    ...(d.logger ? { logger: d.logger } : {}),
  };
}

/** The invocation context: the Lambda context, whose remaining time bounds a registration. */
export type RegistryInvocation = Invocation & Partial<TimeBudget>;

type Operation = (
  event: HttpEvent,
  deps: RegistryHandlerDeps,
  context: RegistryInvocation | undefined,
) => Promise<HttpResult>;

const REGISTRABLE_PREFIXES = [S3_KEYS.uploadsPrefix, S3_KEYS.incomingPrefix] as const;

/** The version as the API shows it (the storage key stays internal). */
export function versionJson(v: ModelVersion): Omit<ModelVersion, 's3Key' | 'registrationKey'> {
  const { s3Key: _s3Key, registrationKey: _registrationKey, ...rest } = v;
  return rest;
}

const name = (e: HttpEvent) => validateModelName(pathParam(e, 'name'));
const version = (e: HttpEvent) => parseVersionNumber(pathParam(e, 'version'));
const alias = (e: HttpEvent) => validateAliasName(pathParam(e, 'alias'));
const page = (e: HttpEvent) => {
  const token = queryParam(e, 'nextToken');
  return { limit: parseLimit(queryParam(e, 'limit')), ...(token !== undefined ? { nextToken: token } : {}) };
};

/** The `Idempotency-Key` header: 1-255 visible ASCII characters; undefined when absent. */
function idempotencyKeyOf(e: HttpEvent): string | undefined {
  const entry = Object.entries(e.headers ?? {}).find(([k]) => k.toLowerCase() === 'idempotency-key');
  const value = entry?.[1];
  if (value === undefined) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(value)) {
    throw new BadRequestError(
      'the Idempotency-Key header must be 1-255 visible ASCII characters',
      'INVALID_IDEMPOTENCY_KEY',
    );
  }
  return value;
}

/** JSON with object keys sorted: one text per request content, whatever the order of its fields. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * The time left to this invocation: the context's (Lambda's, or the local server's), capped by the configured
 * registration budget plus the reserve, counted from now; without a context, that budget (default
 * REGISTRATION.localBudgetMs).
 */
function invocationTime(d: RegistryHandlerDeps, context: RegistryInvocation | undefined): TimeBudget {
  const remaining = context?.getRemainingTimeInMillis;
  const fromContext =
    typeof remaining === 'function' ? () => remaining.call(context) : () => Number.POSITIVE_INFINITY;
  const budget =
    d.registrationBudgetMs ?? (typeof remaining === 'function' ? undefined : REGISTRATION.localBudgetMs);
  const deadline =
    budget === undefined ? Number.POSITIVE_INFINITY : Date.now() + budget + REGISTRATION.reserveMs;
  return { getRemainingTimeInMillis: () => Math.min(fromContext(), deadline - Date.now()) };
}

/** A JSON object body, or `{}` when the body is empty (for routes whose body is optional). */
function optionalBody(e: HttpEvent, maxBytes: number | undefined): Record<string, unknown> {
  return bodyText(e, maxBytes).trim() === '' ? {} : parseJsonObject(e, maxBytes);
}

/** One implementation per registry operation of the route table. */
const operations: Record<OperationOf<'registry'>, Operation> = {
  listModels: async (e, d) => {
    const p = page(e);
    const r = await listModels(d, p.limit, p.nextToken);
    return json(200, { models: r.items, ...(r.nextToken ? { nextToken: r.nextToken } : {}) });
  },

  getModel: async (e, d) => json(200, await getModel(d, name(e))),

  createUpload: async (e, d) => {
    const n = name(e);
    const { sizeBytes } = parseWith(createUploadBodySchema, optionalBody(e, d.maxBodyBytes));
    return json(201, await createUpload(d, n, sizeBytes, d.uploadTtlSeconds ?? LIMITS.uploadUrlTtlSeconds));
  },

  registerVersion: async (e, d, context) => {
    const n = name(e);
    const body = parseWith(registerVersionBodySchema, parseJsonObject(e, d.maxBodyBytes));
    // Refused (400 INVALID_PREPROCESS) before anything is read or written.
    const preprocess = body.preprocess !== undefined ? parsePreprocessSpec(body.preprocess) : undefined;
    // The header names the request; without one, an uploadId does (one upload is one version).
    const headerKey = idempotencyKeyOf(e);
    const key =
      headerKey !== undefined
        ? `key:${headerKey}`
        : body.uploadId !== undefined
          ? `upload:${body.uploadId}`
          : undefined;
    let sourceKey: string;
    if (body.uploadId !== undefined) {
      sourceKey = S3_KEYS.upload(n, body.uploadId);
    } else {
      const { bucket, key } = parseS3Uri(body.s3Uri ?? '');
      if (bucket !== d.store.bucket) {
        throw new BadRequestError(
          `s3Uri must point into the service bucket '${d.store.bucket}', not '${bucket}'`,
          'INVALID_S3_URI',
        );
      }
      // Registration reads only where artifacts are staged: uploads/ (presigned) and incoming/ (drop folder).
      if (!REGISTRABLE_PREFIXES.some((prefix) => key.startsWith(prefix))) {
        throw new BadRequestError(
          `s3Uri must name an object under ${REGISTRABLE_PREFIXES.join(' or ')} of the service bucket, not '${key}'`,
          'INVALID_S3_URI',
        );
      }
      sourceKey = key;
    }
    const time = invocationTime(d, context);
    const r = await registerVersionOnce(
      d,
      {
        name: n,
        sourceKey,
        ...(body.description !== undefined ? { description: body.description } : {}),
        ...(body.tags !== undefined ? { tags: body.tags } : {}),
        ...(body.labels !== undefined ? { labels: body.labels } : {}),
        ...(body.postprocess !== undefined ? { postprocess: body.postprocess } : {}),
        ...(preprocess !== undefined ? { preprocess } : {}),
        actor: actorOf(e),
      },
      {
        ...(key !== undefined ? { key } : {}),
        payload: canonicalJson({ name: n, ...body }),
        ...(d.guard ? { guard: d.guard } : {}),
        // Past the invocation's time less the reserve (for the PENDING version and its message), it goes on the queue.
        ...(d.queue
          ? {
              budget: {
                remainingMs: () => time.getRemainingTimeInMillis() - REGISTRATION.reserveMs,
                queue: d.queue,
              },
            }
          : {}),
        // The key's in-progress lock lasts the invocation.
        time,
      },
    );
    const status = r.pending ? 202 : r.replayed ? 200 : 201;
    return json(status, versionJson(r.version), r.replayed ? { 'idempotent-replayed': 'true' } : {});
  },

  listVersions: async (e, d) => {
    const n = name(e);
    const p = page(e);
    const r = await listVersions(d, n, p.limit, p.nextToken);
    return json(200, {
      versions: r.items.map(versionJson),
      ...(r.nextToken ? { nextToken: r.nextToken } : {}),
    });
  },

  getVersion: async (e, d) => json(200, versionJson(await getVersion(d, name(e), version(e)))),

  deriveVersion: async (e, d) => {
    const n = name(e);
    const v = version(e);
    const body = parseWith(deriveBodySchema, parseJsonObject(e, d.maxBodyBytes));
    // The derivation runs on the work queue's worker: without a queue there is nowhere to run it.
    if (!d.queue) {
      return json(501, {
        error: 'derived versions need the work queue, not configured here',
        code: 'NOT_IMPLEMENTED',
      });
    }
    const pending = await startDerive(
      d,
      { name: n, version: v, body, actor: actorOf(e) },
      deriveQueue(d.queue),
    );
    return json(202, versionJson(pending));
  },

  updateVersion: async (e, d) => {
    const n = name(e);
    const v = version(e);
    const { capture, ...body } = parseWith(patchVersionBodySchema, parseJsonObject(e, d.maxBodyBytes));
    const c = parseCapturePatch(capture);
    return json(
      200,
      versionJson(await updateVersion(d, n, v, { ...body, ...(c !== undefined ? { capture: c } : {}) })),
    );
  },

  deleteVersion: async (e, d) => {
    await deleteVersion(d, name(e), version(e));
    return { statusCode: 204 };
  },

  moveAlias: async (e, d) => {
    const n = name(e);
    const a = alias(e);
    const body = parseWith(moveAliasBodySchema, parseJsonObject(e, d.maxBodyBytes));
    const r = await moveAlias(d, {
      name: n,
      alias: a,
      version: body.version,
      ...(body.expectedVersion !== undefined ? { expectedVersion: body.expectedVersion } : {}),
      ...(body.reason !== undefined ? { reason: body.reason } : {}),
      actor: actorOf(e),
    });
    return json(200, r);
  },

  updateAlias: async (e, d) => {
    const n = name(e);
    const a = alias(e);
    const body = parseWith(patchAliasBodySchema, parseJsonObject(e, d.maxBodyBytes));
    const capture = parseCapturePatch(body.capture);
    const routing = parseRoutingPatch(body.routing);
    return json(
      200,
      await updateAlias(d, {
        name: n,
        alias: a,
        // A body that names `capture` (null included) changes it; the parser gives undefined for a missing one.
        ...(Object.hasOwn(body, 'capture') ? { capture: capture ?? null } : {}),
        ...(routing !== undefined ? { routing } : {}),
        ...(body.expectedRevision !== undefined ? { expectedRevision: body.expectedRevision } : {}),
        ...(body.reason !== undefined ? { reason: body.reason } : {}),
        actor: actorOf(e),
      }),
    );
  },

  deleteAlias: async (e, d) => {
    const n = name(e);
    const a = alias(e);
    return json(200, await deleteAlias(d, { name: n, alias: a, actor: actorOf(e) }));
  },

  rollbackAlias: async (e, d) => {
    const n = name(e);
    const a = alias(e);
    const body = parseWith(rollbackBodySchema, optionalBody(e, d.maxBodyBytes));
    return json(
      200,
      await rollbackAlias(d, {
        name: n,
        alias: a,
        actor: actorOf(e),
        ...(body.expectedVersion !== undefined ? { expectedVersion: body.expectedVersion } : {}),
        ...(body.expectedRevision !== undefined ? { expectedRevision: body.expectedRevision } : {}),
        ...(body.reason !== undefined ? { reason: body.reason } : {}),
      }),
    );
  },

  aliasHistory: async (e, d) => {
    const n = name(e);
    const a = alias(e);
    const p = page(e);
    const r = await aliasHistory(d, n, a, p.limit, p.nextToken);
    return json(200, { history: r.items, ...(r.nextToken ? { nextToken: r.nextToken } : {}) });
  },

  startRollout: async (e, d) => {
    const n = name(e);
    const a = alias(e);
    const { spec, expectedRevision } = parseRolloutRequest(parseJsonObject(e, d.maxBodyBytes));
    const r = rolloutDeps(d);
    if (!r) return rolloutsNotConfigured();
    return json(
      201,
      await startRollout(r, {
        name: n,
        alias: a,
        spec,
        ...(expectedRevision !== undefined ? { expectedRevision } : {}),
        actor: actorOf(e),
      }),
    );
  },

  getRollout: async (e, d) => {
    const n = name(e);
    const a = alias(e);
    const r = rolloutDeps(d);
    return r ? json(200, await getRollout(r, n, a)) : rolloutsNotConfigured();
  },

  rolloutAction: async (e, d) => {
    const n = name(e);
    const a = alias(e);
    const action = pathParam(e, 'action');
    if (!(ROLLOUT_ACTIONS as readonly string[]).includes(action)) {
      throw new BadRequestError(
        `unknown rollout action '${action.slice(0, 40)}': use ${ROLLOUT_ACTIONS.join(', ')}`,
        'INVALID_ACTION',
      );
    }
    const body = parseWith(rolloutActionBodySchema, optionalBody(e, d.maxBodyBytes));
    const input = { name: n, alias: a, actor: actorOf(e), ...(body.id !== undefined ? { id: body.id } : {}) };
    const run = { pause: pauseRollout, resume: resumeRollout, abort: abortRollout }[
      action as RolloutActionName
    ];
    const r = rolloutDeps(d);
    return r ? json(200, await run(r, input)) : rolloutsNotConfigured();
  },
};

/**
 * The work queue as the derivation's queue: a `derive` message is one of the work messages the worker's schema
 * lists (`WorkMessageSchema`, functions/domain/async.ts).
 */
function deriveQueue(queue: QueuePublisher): DeriveQueue {
  return { send: (message) => queue.send(message as unknown as Parameters<QueuePublisher['send']>[0]) };
}

/** The route table's registry operations by route key. */
const OPS = operationsOf('registry');

/** Route keys this handler serves (the routes of the contract's ROUTES it has an operation for). */
export const REGISTRY_ROUTE_KEYS: readonly string[] = ROUTES.filter((r) =>
  Object.hasOwn(operations, r.operationId),
).map(routeKey);

/** The function's logger (Powertools loads with the first line). */
const functionLogger = new PowertoolsLogger({ serviceName: SERVICE_NAMES.registry });

/** Builds the registry handler around injected adapters (tests, the local server, Lambda). */
export function createRegistryHandler(
  registryDeps: RegistryHandlerDeps,
): (event: HttpEvent, context?: RegistryInvocation) => Promise<HttpResult> {
  const logger = registryDeps.logger ?? functionLogger;
  const metrics = registryDeps.metrics ?? noMetrics;
  const tracer = registryDeps.tracer ?? noTracer;
  let coldStart = true;
  return async (event, context) => {
    const startedAt = performance.now();
    const keys = modelKeys(event.pathParameters);
    const log = logger.forRequest(context, keys);
    const deps = { ...registryDeps, logger: log };
    // Only events API Gateway routed here (by routeKey) name a registry operation.
    const op = OPS.get(event.routeKey);
    let result: HttpResult;
    try {
      if (op === undefined) {
        throw new NotFoundError(
          `no route for ${event.requestContext?.http?.method ?? ''} ${event.rawPath ?? ''}`.trim(),
          'ROUTE_NOT_FOUND',
        );
      }
      if (tracer.enabled) tracer.annotate({ operation: op, ...(keys as Record<string, string | number>) });
      result = await operations[op](event, deps, context);
    } catch (err) {
      result = errorResult(err, log);
    }
    metrics.operation({
      operation: op ?? 'unrouted',
      status: result.statusCode ?? 200,
      latencyMs: performance.now() - startedAt,
      coldStart,
    });
    coldStart = false;
    return result;
  };
}

// ---------------------------------------------------------------------------------------------
// Lambda entry: adapters built once per execution environment, during INIT.

async function buildDefault(): Promise<
  (event: HttpEvent, context?: RegistryInvocation) => Promise<HttpResult>
> {
  try {
    const env = new EnvironmentVariables();
    const cfg = readConfig();
    const doc = dynamoDocumentClient();
    return createRegistryHandler({
      // One EMF document per request, by operation; X-Ray when the function is traced (its AWS calls as spans).
      metrics: new EmfMetricsSink({ serviceName: SERVICE_NAMES.registry }),
      ...(env.tracingActive()
        ? { tracer: await loadTracer(SERVICE_NAMES.registry, env.lambdaHandler()) }
        : {}),
      repo: new DynamoRegistryRepository({ doc, table: cfg.table }),
      rollouts: new DynamoRolloutRepository({ doc, table: cfg.table }),
      guard: registrationGuard(doc, cfg.table),
      // With the work queue configured, a registration that does not fit the API's time continues there.
      ...(cfg.queueUrl ? { queue: queueFromConfig(cfg) } : {}),
      store: new S3ArtifactStore({ s3: s3Client(), bucket: cfg.bucket }),
      inspector: new OrtModelInspector(),
      // Registry events (ModelVersionRegistered/Failed, AliasMoved) go to EventBridge when MAAS_EVENT_BUS is set.
      ...eventsFromConfig(cfg),
      maxBodyBytes: cfg.maxBodyBytes,
      logger: functionLogger,
    });
  } catch (e) {
    // Missing configuration: importing the module (tests, tooling) must not throw; invocations fail.
    return misconfiguredHandler(e, functionLogger);
  }
}

/** The idempotency guard of `POST /models/{name}/versions`, in the registry table. */
export function registrationGuard(
  doc: ConstructorParameters<typeof DynamoIdempotencyGuard>[0]['client'],
  table: string,
): IdempotencyGuard {
  return new DynamoIdempotencyGuard({
    client: doc,
    tableName: table,
    keyPrefix: IDEMPOTENCY.keyPrefix.registerVersion,
    validatePayload: true,
  });
}

/** Lambda handler (API Gateway HTTP API, payload 2.0). */
export const handler = withInvocationDeadline(await buildDefault());

/**
 * Composition of the event flows (register on upload, batch scoring, async inference) over the real adapters.
 * Shared by the three event Lambdas (each at module scope), the local server and the integration tests, which
 * pass their own queue (the in-process one) and event publisher.
 */

import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { dynamoDocumentClient, s3Client } from '../adapters/aws-clients';
import { DynamoBatchJobRepository } from '../adapters/dynamodb-batch-jobs';
import { DynamoRegistryRepository } from '../adapters/dynamodb-registry';
import { DynamoIdempotencyGuard } from '../adapters/idempotency-store';
import { sharedOrtThreadEngine } from '../adapters/ort-thread-engine';
import { S3ArtifactStore } from '../adapters/s3-artifact-store';
import { S3BlobStore, S3RangedObjects } from '../adapters/s3-blob-store';
import type { AsyncWorkerDeps } from '../app/async-inference';
import type { BatchScoreDeps } from '../app/batch-score';
import { createInferenceObserver } from '../app/observe';
import { createPredictor, type Predictor } from '../app/predict';
import type { RegisterOnUploadDeps } from '../app/register-on-upload';
import { type RegistryDeps, registerVersion } from '../app/registry';
import { type SessionCache, sharedSessionCache } from '../app/session-cache';
import type { ShadowWorkerDeps } from '../app/shadow';
import { type MaasConfig, ortEngineOptions } from '../config/environment';
import { BATCH, IDEMPOTENCY } from '../contract/events';
import type { ShadowComparison } from '../domain/divergence';
import type { QueuePublisher } from '../ports/events';
import type { EventPublisher, ModelInspector } from '../ports/index';
import type { Logger } from '../ports/logger';
import { type CaptureSink, type MetricsSink, noMetrics } from '../ports/telemetry';
import type { AsyncApiDeps } from './async-api';
import { batchQueueFromConfig, queueFromConfig } from './event-aws';

export interface EventFlowsOptions {
  readonly table: string;
  readonly bucket: string;
  readonly doc: DynamoDBDocumentClient;
  /** Built with `s3Client()`. */
  readonly s3: S3Client;
  readonly queue: QueuePublisher;
  /**
   * Where batch jobs queue their parts and aggregation (the batch queue: SQS in AWS, whose event source bounds the
   * concurrent workers; an in-process queue locally). @default `queue`
   */
  readonly batchQueue?: QueuePublisher;
  /** Registry events (EventBridge in AWS); none = not published. */
  readonly events?: EventPublisher;
  /** Needed for registration (ORT inspector). */
  readonly inspector?: ModelInspector;
  /** The session cache (over an inference engine) batch scoring and async inference run on, unless `predictor` is given. */
  readonly sessions?: SessionCache;
  /** A predictor to share (its caches) with other entry points. */
  readonly predictor?: Predictor;
  /**
   * The predictor batch parts score with, when it is not `predictor` (one process serving the predict routes on
   * the main thread and batch parts on onnxruntime's own thread: `npm start`). @default predictor
   */
  readonly batchPredictor?: Predictor;
  readonly aliasTtlMs?: number;
  /**
   * Receives before the work queue dead-letters a message: an async request failing on this one is answered
   * `PROCESSING_FAILED`. @default QUEUE.maxReceiveCount
   */
  readonly maxReceiveCount?: number;
  /** Where the registry use cases report what they log (an event not published). @default none */
  readonly logger?: Logger;
  /** Where async requests and batch parts are reported (as inferences of their model version). @default none */
  readonly metrics?: MetricsSink;
  /** Where sampled async requests are captured (as their alias or version declares). @default none */
  readonly capture?: CaptureSink;
  /** Receives every shadow comparison the worker makes (a rollout's divergence counters). @default none */
  readonly onComparison?: (c: ShadowComparison) => Promise<void>;
}

export interface EventFlows {
  /** The registry use cases' dependencies (when an inspector was given). */
  readonly registry?: RegistryDeps;
  readonly upload: RegisterOnUploadDeps;
  readonly batch: BatchScoreDeps;
  /** The async API's use cases: async inference, feedback and the capture listing. */
  readonly asyncApi: AsyncApiDeps;
  readonly worker: AsyncWorkerDeps;
  /** The worker's shadow traffic: mirrored requests run on their shadow version and compared. */
  readonly shadow: ShadowWorkerDeps;
}

const missing = (what: string) => () => {
  throw new Error(`${what} is not configured for this entry point`);
};

/** Wires the event flows' use cases over the adapters. */
export function createEventFlows(o: EventFlowsOptions): EventFlows {
  const repo = new DynamoRegistryRepository({ doc: o.doc, table: o.table });
  const store = new S3ArtifactStore({ s3: o.s3, bucket: o.bucket });
  const blobs = new S3BlobStore(o.s3, o.bucket);
  const guard = (keyPrefix: string) =>
    new DynamoIdempotencyGuard({ client: o.doc, tableName: o.table, keyPrefix });

  const registryDeps: RegistryDeps | undefined = o.inspector
    ? {
        repo,
        store,
        inspector: o.inspector,
        ...(o.events ? { events: o.events } : {}),
        ...(o.logger ? { logger: o.logger } : {}),
      }
    : undefined;
  const predictor =
    o.predictor ??
    (o.sessions
      ? createPredictor({
          repo,
          store,
          sessions: o.sessions,
          maxBatchRows: BATCH.ortBatchRows,
          ...(o.aliasTtlMs !== undefined ? { aliasTtlMs: o.aliasTtlMs } : {}),
        })
      : undefined);
  // Async requests are observed as inferences: reported, and captured as their alias or version declares.
  const observer =
    o.metrics || o.capture
      ? createInferenceObserver({
          metrics: o.metrics ?? noMetrics,
          ...(o.capture ? { capture: o.capture } : {}),
          captureOf: (name, ref, served) => predictor?.capture(name, ref, served),
          coldStart: false,
        })
      : undefined;
  const noPredictor = {
    resolve: missing('inference'),
    infer: missing('inference'),
    inferBatch: missing('inference'),
    capture: missing('inference'),
  } as unknown as Predictor;

  return {
    ...(registryDeps ? { registry: registryDeps } : {}),
    upload: {
      register: registryDeps ? (input) => registerVersion(registryDeps, input) : missing('registration'),
      blobs,
      guard: guard(IDEMPOTENCY.keyPrefix.registerOnUpload),
    },
    batch: {
      blobs,
      predictor: o.batchPredictor ?? predictor ?? noPredictor,
      objects: new S3RangedObjects(o.s3, o.bucket),
      jobs: new DynamoBatchJobRepository({ doc: o.doc, table: o.table }),
      batchQueue: o.batchQueue ?? o.queue,
      startGuard: guard(IDEMPOTENCY.keyPrefix.batchStart),
      ...(o.metrics ? { metrics: o.metrics } : {}),
    },
    asyncApi: { blobs, links: blobs, queue: o.queue, objects: blobs },
    worker: {
      blobs,
      predictor: predictor ?? noPredictor,
      ...(o.maxReceiveCount !== undefined ? { maxReceiveCount: o.maxReceiveCount } : {}),
      ...(observer ? { observer } : {}),
    },
    shadow: {
      predictor: predictor ?? noPredictor,
      ...(o.metrics ? { metrics: o.metrics } : {}),
      ...(o.capture ? { capture: o.capture } : {}),
      ...(o.onComparison ? { onComparison: o.onComparison } : {}),
      ...(o.logger ? { logger: o.logger } : {}),
      // A mirrored request is compared (and counted into its rollout) once, however often it is delivered.
      guard: guard(IDEMPOTENCY.keyPrefix.shadow),
    },
  };
}

/**
 * The flows of an event Lambda (worker, S3 events) from its configuration: the SDK clients, the SQS work queue
 * and the process-wide onnxruntime thread engine with its session cache, plus what only some entries wire (`events`, `inspector`).
 */
export function eventFlowsFromConfig(
  config: MaasConfig,
  extra: Pick<
    EventFlowsOptions,
    'events' | 'inspector' | 'logger' | 'metrics' | 'capture' | 'onComparison'
  > = {},
): EventFlows {
  const batchQueue = batchQueueFromConfig(config);
  return createEventFlows({
    table: config.table,
    bucket: config.bucket,
    doc: dynamoDocumentClient(),
    s3: s3Client(),
    queue: queueFromConfig(config),
    ...(batchQueue ? { batchQueue } : {}),
    sessions: ortSessions(config),
    aliasTtlMs: config.aliasTtlMs,
    maxReceiveCount: config.maxReceiveCount,
    ...extra,
  });
}

/**
 * The process-wide session cache, sized from the configuration, on onnxruntime in a thread of its own: a batch part
 * reads and writes rows on the main thread while its runs go on there (functions/adapters/ort-thread-engine.ts).
 */
function ortSessions(config: MaasConfig): SessionCache {
  const { threads, memoryBudgetBytes } = ortEngineOptions(config);
  return sharedSessionCache({ engine: sharedOrtThreadEngine({ threads }), memoryBudgetBytes });
}

/**
 * Composition root of the local service: builds the same handler objects the Lambda functions run, over
 * adapters bound to the local DynamoDB table and S3 bucket, an in-process work queue in place of SQS, and
 * the hook that feeds the object store's events to the S3 events handler (as bucket notifications do). The
 * in-process queues keep nothing across a stop: a start over existing data queues again the work left unfinished
 * (`resumeUnfinished`, functions/local/resume.ts).
 */

import type S3rver from '@20minutes/s3rver';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { BufferedCaptureSink } from '../adapters/capture-sinks';
import { DynamoRegistryRepository } from '../adapters/dynamodb-registry';
import { DynamoRegistryReader } from '../adapters/dynamodb-registry-reader';
import { DynamoRolloutRepository } from '../adapters/dynamodb-rollouts';
import { type AlarmState, LocalAlarmStates } from '../adapters/local-alarms';
import { OnnxModelTransformer } from '../adapters/onnx-transformer';
import { sharedOrtEngine } from '../adapters/ort-engine';
import { OrtModelInspector } from '../adapters/ort-inspector';
import { sharedOrtThreadEngine } from '../adapters/ort-thread-engine';
import { PowertoolsLogger } from '../adapters/powertools-logger';
import { PrometheusMetricsSink } from '../adapters/prometheus-metrics';
import { S3ArtifactReader } from '../adapters/s3-artifact-reader';
import { S3ArtifactStore } from '../adapters/s3-artifact-store';
import { S3BlobStore } from '../adapters/s3-blob-store';
import { QueueShadowMirror } from '../adapters/shadow-mirror';
import { createPredictor } from '../app/predict';
import type { RegistryDeps } from '../app/registry';
import { onAlarm, type RolloutDeps, recordComparison, type TickSummary, tick } from '../app/rollout';
import { SessionCache, sharedSessionCache } from '../app/session-cache';
import { S3_KEYS } from '../contract/env';
import { BATCH } from '../contract/events';
import { SERVICE_NAMES } from '../contract/observability';
import type { FunctionId } from '../contract/routes';
import { createAsyncApiHandler } from '../handlers/async-api';
import { createAsyncWorkerHandler } from '../handlers/async-worker';
import { createEventFlows } from '../handlers/event-deps';
import { createPredictHandler } from '../handlers/predict';
import { createRegistryHandler, registrationGuard } from '../handlers/registry';
import { createS3EventsHandler } from '../handlers/s3-events';
import type { Logger } from '../ports/logger';
import { localClientOptions } from './emulators';
import { attachS3Events, InProcessQueue, isS3EventKey } from './in-process-queue';
import { describeResume, RESUME_MAX_KEYS, type ResumeSummary, resumeUnfinished } from './resume';
import type { LocalHttpHandler } from './server';

export interface LocalResources {
  readonly doc: DynamoDBDocumentClient;
  readonly s3: S3Client;
  /** Endpoints of the same emulators, for the predict path's readers (they use no SDK client). */
  readonly endpoints: { readonly dynamodb: string; readonly s3: string };
  readonly table: string;
  readonly bucket: string;
  /**
   * The handlers' logger (tests pass a recording one). @default a Powertools logger per function, at WARN (the
   * event handlers' INFO line per record would drown the dev server's output)
   */
  readonly logger?: Logger;
  /** Lines about background work the handlers do not log (queue consumer, S3 event delivery). @default console.error */
  readonly log?: (line: string) => void;
  /** How long a received work message stays invisible before it is retried. @default 30000 */
  readonly visibilityTimeoutMs?: number;
  /**
   * Budget (ms) of a registration's synchronous part; past it the registration answers 202 (PENDING) and the
   * in-process queue's worker completes it, as in AWS. @default REGISTRATION.localBudgetMs
   */
  readonly registrationBudgetMs?: number;
  /** How often captured records are written to the bucket. @default 1000 ms */
  readonly captureFlushMs?: number;
  /** How long `close` waits for the queues' work in flight before it lets go of it. @default 2000 ms */
  readonly closeGraceMs?: number;
  /** Most keys `resumeUnfinished` lists under `async/`, and most job folders under `batch/`. @default RESUME_MAX_KEYS */
  readonly resumeMaxKeys?: number;
}

/** What setting a local alarm did (`POST /local/alarms/{name}`). */
export interface LocalAlarmResult {
  readonly alarm: string;
  readonly state: AlarmState;
  /** `name@alias` of the rollouts the alarm rolled back. */
  readonly rolledBack: string[];
}

export interface LocalServices {
  /** HTTP handlers per function of the route table. */
  readonly handlers: Partial<Record<FunctionId, LocalHttpHandler>>;
  /** The registry use cases' dependencies (the dev command registers the sample model with them). */
  readonly registry: RegistryDeps;
  /** The in-process stand-in for the SQS work queue. */
  readonly queue: InProcessQueue;
  /**
   * The in-process stand-in for the SQS batch queue: one part per invocation, up to `BATCH.maxConcurrency`
   * invocations at once (a job's own `maxConcurrency` bounds its parts in flight below that).
   */
  readonly batchQueue: InProcessQueue;
  /** Delivers the object store's ObjectCreated events (incoming models, batch inputs) to the S3 events handler. */
  attachObjectStore(server: S3rver): void;
  /** The requests the handlers answered, as Prometheus metrics (`GET /metrics`, `maas stats`). */
  readonly metrics: PrometheusMetricsSink;
  /** Writes the captured records still buffered to the bucket. */
  flushCapture(): Promise<void>;
  /** The rollout use cases' dependencies (rollouts in the local table, alarms set by hand). */
  readonly rollouts: RolloutDeps;
  /** The local alarms' states. */
  readonly alarms: LocalAlarmStates;
  /** One run of the rollout controller (what the schedule runs in AWS). */
  tickRollouts(): Promise<TickSummary>;
  /**
   * Sets a local alarm's state and delivers the change to the controller as CloudWatch's alarm event would (in
   * ALARM: the rollouts naming it are rolled back), then runs it once.
   */
  setAlarm(name: string, state: AlarmState): Promise<LocalAlarmResult>;
  /**
   * Runs the rollout controller every `intervalMs` (a run is skipped while the last one is still running; a
   * failure is logged); `close` stops it.
   */
  startRolloutController(intervalMs: number): void;
  /** Resolves once no S3 event delivery and no queued work is in flight. */
  idle(): Promise<void>;
  /**
   * Queues again the work the last run over the same table and bucket accepted and did not finish, as SQS would
   * have delivered its messages again (the in-process queues lose theirs at a stop): async requests without an
   * answer, and the parts or aggregation of running batch jobs (functions/local/resume.ts). Logs one line when it
   * resumed anything. Run once, at start, before requests are served, by the only service over this data: the
   * claims and leases of running jobs are taken as their holders', gone. Never throws: what failed is in the summary.
   * A second call answers the first one's summary.
   */
  resumeUnfinished(): Promise<ResumeSummary>;
  /**
   * Stops event delivery and the queues, and waits up to `closeGraceMs` for the work in flight (what does not end by
   * then is resumed at the next start); called before the emulators stop.
   */
  close(): Promise<void>;
}

/** The predict path's reads of the local table and bucket, made as the predict Lambda makes them. */
export function localPredictReaders(res: Pick<LocalResources, 'endpoints' | 'table' | 'bucket'>): {
  reader: DynamoRegistryReader;
  artifacts: S3ArtifactReader;
} {
  return {
    reader: new DynamoRegistryReader({ ...localClientOptions(res.endpoints.dynamodb), table: res.table }),
    artifacts: new S3ArtifactReader({ ...localClientOptions(res.endpoints.s3), bucket: res.bucket }),
  };
}

/** Builds every local handler over the given table and bucket. */
export function composeLocal(res: LocalResources): LocalServices {
  const log = res.log ?? ((line: string) => console.error(line));
  const logger = (serviceName: string): Logger =>
    res.logger ?? new PowertoolsLogger({ serviceName, logLevel: 'WARN' });
  const repo = new DynamoRegistryRepository({ doc: res.doc, table: res.table });
  const alarms = new LocalAlarmStates();
  const rollouts: RolloutDeps = {
    repo,
    rollouts: new DynamoRolloutRepository({ doc: res.doc, table: res.table }),
    alarms,
    logger: logger(SERVICE_NAMES.rolloutController),
  };
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<unknown> | undefined;
  const tickRollouts = () => tick(rollouts);
  const store = new S3ArtifactStore({ s3: res.s3, bucket: res.bucket });
  const inspector = new OrtModelInspector();
  const registry: RegistryDeps = { repo, store, inspector };
  const sessions = sharedSessionCache({ engine: sharedOrtEngine({ threads: 1 }) });
  const { reader, artifacts } = localPredictReaders(res);
  const predictor = createPredictor({ repo: reader, store: artifacts, sessions });
  // Batch parts score as on the worker function: onnxruntime in a thread of its own, while the main thread reads
  // rows (a session of each model they score, besides the predict routes' one).
  const batchSessions = new SessionCache({ engine: sharedOrtThreadEngine({ threads: 1 }) });
  const batchPredictor = createPredictor({
    repo: reader,
    store: artifacts,
    sessions: batchSessions,
    maxBatchRows: BATCH.ortBatchRows,
  });
  // What CloudWatch and Firehose get in AWS: Prometheus metrics, and capture records buffered into the bucket.
  const metrics = new PrometheusMetricsSink();
  const capture = new BufferedCaptureSink({
    store,
    ...(res.captureFlushMs !== undefined ? { flushIntervalMs: res.captureFlushMs } : {}),
    onError: (e) => log(`capture records not written: ${(e as Error)?.message ?? String(e)}`),
  });

  // The dead-letter queue of both queues, consumed by the worker (which ends what a dead letter was about), as in AWS.
  const deadLetterQueue = new InProcessQueue({
    queueName: 'maas-dead-letters',
    visibilityTimeoutMs: res.visibilityTimeoutMs ?? 30_000,
    onConsumerError: (e) => log(`dead-letter queue consumer failed: ${(e as Error)?.message ?? String(e)}`),
  });
  const queue = new InProcessQueue({
    deadLetterQueue,
    visibilityTimeoutMs: res.visibilityTimeoutMs ?? 30_000,
    onConsumerError: (e) => log(`work queue consumer failed: ${(e as Error)?.message ?? String(e)}`),
  });
  const batchQueue = new InProcessQueue({
    queueName: 'maas-batch',
    deadLetterQueue,
    batchSize: 1,
    concurrency: BATCH.maxConcurrency,
    visibilityTimeoutMs: res.visibilityTimeoutMs ?? 30_000,
    onConsumerError: (e) => log(`batch queue consumer failed: ${(e as Error)?.message ?? String(e)}`),
  });
  const flows = createEventFlows({
    table: res.table,
    bucket: res.bucket,
    doc: res.doc,
    s3: res.s3,
    queue,
    batchQueue,
    inspector,
    predictor,
    batchPredictor,
    logger: logger(SERVICE_NAMES.s3Events),
    metrics,
    capture,
    // The worker's shadow comparisons count into the rollout of their alias.
    onComparison: async (c) => {
      await recordComparison(rollouts, c);
    },
  });
  const worker = createAsyncWorkerHandler({
    ...flows,
    // Derived versions run on the worker, as in AWS: the ONNX transforms, and the gate on the shared engine.
    derive: {
      ...registry,
      transformer: new OnnxModelTransformer(),
      engine: sharedOrtEngine({ threads: 1 }),
    },
    // A record not started on its last receive goes back to the work queue as a new message.
    requeue: queue,
    deadLetterSources: [deadLetterQueue.arn],
    logger: logger(SERVICE_NAMES.worker),
  });
  // One worker function, three event sources (the work queue, the batch queue, their dead letters), as in AWS.
  queue.attach(worker);
  batchQueue.attach(worker);
  deadLetterQueue.attach(worker);
  const s3Events = createS3EventsHandler({ ...flows, logger: logger(SERVICE_NAMES.s3Events) });
  const hooks: ReturnType<typeof attachS3Events>[] = [];
  let resumed: Promise<ResumeSummary> | undefined;

  return {
    handlers: {
      registry: createRegistryHandler({
        ...registry,
        rollouts: rollouts.rollouts,
        alarms,
        guard: registrationGuard(res.doc, res.table),
        queue,
        ...(res.registrationBudgetMs !== undefined ? { registrationBudgetMs: res.registrationBudgetMs } : {}),
        logger: logger(SERVICE_NAMES.registry),
        metrics,
      }),
      predict: createPredictHandler({
        repo: reader,
        store: artifacts,
        sessions,
        predictor,
        logger: logger(SERVICE_NAMES.predict),
        metrics,
        capture,
        // Shadow mirrors go to the in-process work queue, as they go to SQS in AWS.
        mirror: new QueueShadowMirror(queue),
      }),
      async: createAsyncApiHandler({ ...flows.asyncApi, logger: logger(SERVICE_NAMES.asyncApi) }),
    },
    registry,
    queue,
    batchQueue,
    metrics,
    flushCapture: () => capture.flush(),
    rollouts,
    alarms,
    tickRollouts,
    async setAlarm(name, state) {
      alarms.set(name, state);
      const rolledBack = (await onAlarm(rollouts, name, state)).map((r) => `${r.name}@${r.alias}`);
      await tickRollouts().catch((e) =>
        log(`rollout controller failed: ${(e as Error)?.message ?? String(e)}`),
      );
      return { alarm: name, state, rolledBack };
    },
    startRolloutController(intervalMs) {
      if (timer) clearInterval(timer);
      timer = setInterval(() => {
        if (ticking) return;
        ticking = tickRollouts()
          .catch((e) => log(`rollout controller failed: ${(e as Error)?.message ?? String(e)}`))
          .finally(() => {
            ticking = undefined;
          });
      }, intervalMs);
      timer.unref();
    },
    attachObjectStore(server) {
      hooks.push(
        attachS3Events(server, (event) => s3Events(event), {
          filter: (key) =>
            isS3EventKey(key, { incoming: S3_KEYS.incomingPrefix, batch: S3_KEYS.batchPrefix }),
          onError: (e, key) => log(`S3 event for ${key} failed: ${(e as Error)?.message ?? String(e)}`),
        }),
      );
    },
    async idle() {
      await Promise.all(hooks.map((h) => h.idle()));
      // Work on one queue can send to the other (a batch start queues parts, a part its aggregation).
      const queues = [queue, batchQueue, deadLetterQueue];
      do {
        for (const q of queues) await q.drain();
      } while (queues.some((q) => q.depth > 0));
    },
    resumeUnfinished() {
      const maxKeys = res.resumeMaxKeys ?? RESUME_MAX_KEYS;
      resumed ??= resumeUnfinished({
        objects: new S3BlobStore(res.s3, res.bucket),
        queue,
        registry,
        batch: flows.batch,
        maxKeys,
      }).then((summary) => {
        const line = describeResume(summary, maxKeys);
        if (line) log(line);
        return summary;
      });
      return resumed;
    },
    async close() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await ticking;
      await capture.flush().catch(() => {});
      for (const h of hooks) h.detach();
      const queues = [queue, batchQueue, deadLetterQueue];
      for (const q of queues) q.detach();
      // The work in flight ends, for a while: what it leaves queued (or what is still running then) is resumed at
      // the next start.
      const graceMs = res.closeGraceMs ?? 2000;
      await Promise.all([
        Promise.all(hooks.map((h) => h.idle())).catch(() => {}),
        ...queues.map((q) => q.settle(graceMs)),
      ]);
      await batchSessions.close();
    },
  };
}

/**
 * The event flows wired to the suite's emulators (DynamoDB Local + s3rver), real onnxruntime-node, the
 * in-process queue, and the EventBridge adapter over a recording client (there is no EventBridge emulator):
 * the same composition the Lambdas and the local server use. One in-process queue carries the work messages and
 * the batch jobs' messages (`batch-part`, `batch-aggregate`) unless a `batchQueue` is given; the worker consumes
 * both, as locally and in AWS.
 */

import type { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Event } from 'aws-lambda';
import { EventBridgePublisher } from '../../functions/adapters/eventbridge-publisher';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { OrtThreadEngine } from '../../functions/adapters/ort-thread-engine';
import { SessionCache } from '../../functions/app/session-cache';
import { createAsyncApiHandler } from '../../functions/handlers/async-api';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import {
  createEventFlows,
  type EventFlows,
  type EventFlowsOptions,
} from '../../functions/handlers/event-deps';
import { createS3EventsHandler } from '../../functions/handlers/s3-events';
import { InProcessQueue, type InProcessQueueOptions } from '../../functions/local/in-process-queue';
import { apiEvent, parseResult } from './apigw';
import { createTestAwsEnv, type TestAwsEnv } from './aws-env';
import { s3Event } from './events-fakes';
import { type RecordedLine, recordingLogger } from './recording-logger';

export { s3Event };

/** One PutEvents entry as EventBridge received it. */
export interface SentEvent {
  readonly EventBusName?: string;
  readonly Source?: string;
  readonly DetailType?: string;
  readonly detail: Record<string, unknown>;
}

export interface EventsTestEnvOptions extends Pick<EventFlowsOptions, 'metrics' | 'capture'> {
  /** Where batch jobs queue their parts and aggregation (the worker consumes it too). @default the work queue */
  readonly batchQueue?: InProcessQueue;
}

export interface EventsTestEnv {
  readonly aws: TestAwsEnv;
  readonly queue: InProcessQueue;
  /** The queue of the batch jobs' messages: `batchQueue` when given, else `queue`. */
  readonly batchQueue: InProcessQueue;
  readonly flows: EventFlows;
  readonly s3Events: ReturnType<typeof createS3EventsHandler>;
  readonly worker: ReturnType<typeof createAsyncWorkerHandler>;
  readonly asyncApi: ReturnType<typeof createAsyncApiHandler>;
  /** What the EventBridge adapter sent. */
  readonly sentEvents: SentEvent[];
  /** Log lines of the handlers (kept quiet in the test output). */
  readonly logs: readonly RecordedLine[];
  /** Puts an object and returns the ObjectCreated event S3 would send for it (ETag from a HEAD). */
  put(key: string, body: Uint8Array | string): Promise<S3Event>;
  call<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }>;
  getText(key: string): Promise<string | undefined>;
  dispose(): Promise<void>;
}

export const EVENT_BUS_NAME = 'maas-test-bus';

export async function createEventsTestEnv(
  queueOptions: InProcessQueueOptions = {},
  options: EventsTestEnvOptions = {},
): Promise<EventsTestEnv> {
  const { batchQueue: givenBatchQueue, ...observe } = options;
  const aws = await createTestAwsEnv('events');
  const sentEvents: SentEvent[] = [];
  const eventBridge = {
    async send(cmd: PutEventsCommand) {
      for (const e of cmd.input.Entries ?? []) {
        sentEvents.push({
          ...(e.EventBusName ? { EventBusName: e.EventBusName } : {}),
          ...(e.Source ? { Source: e.Source } : {}),
          ...(e.DetailType ? { DetailType: e.DetailType } : {}),
          detail: JSON.parse(e.Detail ?? '{}'),
        });
      }
      return { FailedEntryCount: 0, Entries: (cmd.input.Entries ?? []).map(() => ({ EventId: 'id' })) };
    },
  };
  const logger = recordingLogger();
  const queue = new InProcessQueue({ visibilityTimeoutMs: 5, ...queueOptions });
  const batchQueue = givenBatchQueue ?? queue;
  const sessions = new SessionCache({ engine: new OrtThreadEngine() });
  const flows = createEventFlows({
    table: aws.table,
    bucket: aws.bucket,
    doc: aws.doc,
    s3: aws.s3,
    queue,
    batchQueue,
    events: new EventBridgePublisher(eventBridge as never, EVENT_BUS_NAME),
    inspector: new OrtModelInspector(),
    sessions,
    ...observe,
  });
  const s3Events = createS3EventsHandler({ ...flows, logger });
  const worker = createAsyncWorkerHandler({ ...flows, logger });
  const asyncApi = createAsyncApiHandler({ ...flows.asyncApi, logger });
  queue.attach(worker);
  if (batchQueue !== queue) batchQueue.attach(worker);

  return {
    aws,
    queue,
    batchQueue,
    flows,
    s3Events,
    worker,
    asyncApi,
    sentEvents,
    logs: logger.lines,
    async put(key, body) {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      await aws.s3.send(new PutObjectCommand({ Bucket: aws.bucket, Key: key, Body: bytes }));
      const head = await aws.s3.send(new HeadObjectCommand({ Bucket: aws.bucket, Key: key }));
      return s3Event(aws.bucket, key, head.ETag?.replaceAll('"', ''), bytes.byteLength);
    },
    async call(method, path, body) {
      const r = parseResult(await asyncApi(apiEvent(method, path, body === undefined ? {} : { body })));
      return { status: r.status, body: r.body as never };
    },
    async getText(key) {
      const bytes = await flows.asyncApi.blobs.get(key);
      return bytes ? new TextDecoder().decode(bytes) : undefined;
    },
    async dispose() {
      queue.detach();
      batchQueue.detach();
      await sessions.close();
      await aws.dispose();
    },
  };
}

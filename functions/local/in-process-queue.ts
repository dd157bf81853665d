/**
 * Local stand-ins for the event plumbing of AWS: an in-process work queue with SQS semantics, and the hook
 * that delivers s3rver's object events to the S3 events handler.
 *
 * Queue semantics (as SQS + Lambda event source mapping with ReportBatchItemFailures):
 * - a received message becomes invisible for the visibility timeout; its receive count goes up by one;
 * - the consumer gets batches of up to `batchSize` visible messages as an SQS event;
 * - up to `concurrency` invocations run at once (the event source's maximum concurrency), each with its own
 *   batch and its own time budget; the messages of a running invocation are not received again before it
 *   returns (in AWS the visibility timeout, six function timeouts, outlasts any invocation);
 * - messages answered in `batchItemFailures` (or all of them, when the consumer throws) become visible again
 *   after the visibility timeout; the others are deleted;
 * - a message received `maxReceiveCount` times without success is moved to the dead-letter queue instead of
 *   being delivered again (kept in `deadLetters`, and sent to `deadLetterQueue` when there is one, whose consumer
 *   it then reaches as SQS's redrive policy has it reach the dead-letter queue's event source).
 */
import { randomUUID } from 'node:crypto';
import type S3rver from '@20minutes/s3rver';
import type { S3Event, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { S3_KEYS } from '../contract/env';
import { BATCH_KEYS, QUEUE } from '../contract/events';
import type { WorkMessage } from '../domain/async';
import type { QueuePublisher, TimeBudget } from '../ports/events';

export interface QueuedMessage {
  readonly messageId: string;
  readonly body: string;
  readonly sentAt: number;
  receiveCount: number;
  visibleAt: number;
}

export type QueueConsumer = (event: SQSEvent, context: TimeBudget) => Promise<SQSBatchResponse | undefined>;

export interface InProcessQueueOptions {
  /** @default QUEUE.maxReceiveCount */
  readonly maxReceiveCount?: number;
  /** @default QUEUE.batchSize */
  readonly batchSize?: number;
  /** How long a received message stays invisible (ms). @default 1000 */
  readonly visibilityTimeoutMs?: number;
  /** Time budget each consumer invocation gets (ms). @default QUEUE.workerTimeoutSeconds * 1000 */
  readonly invocationBudgetMs?: number;
  /** Most consumer invocations running at once, each with its own batch and budget (a whole number ≥ 1). @default 1 */
  readonly concurrency?: number;
  readonly queueName?: string;
  /** Where a message goes after its last receive, besides `deadLetters`. @default - none */
  readonly deadLetterQueue?: InProcessQueue;
  /** Called when a consumer invocation throws (the batch is then retried as a whole). */
  readonly onConsumerError?: (error: unknown) => void;
}

export interface QueueStats {
  readonly sent: number;
  readonly deleted: number;
  readonly deadLettered: number;
  readonly receives: number;
  readonly invocations: number;
  /** Most consumer invocations that ran at once so far. */
  readonly peakInFlight: number;
}

export class InProcessQueue implements QueuePublisher {
  readonly deadLetters: QueuedMessage[] = [];
  private readonly messages: QueuedMessage[] = [];
  private consumer: QueueConsumer | undefined;
  /** True while `pump` hands out batches (a consumer's synchronous sends do not schedule meanwhile). */
  private pumping = false;
  /** Consumer invocations running. */
  private running = 0;
  /** Messages of the running invocations. */
  private readonly held = new Set<QueuedMessage>();
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  /** Called when the last running invocation returns. */
  private settleWaiters: (() => void)[] = [];
  private counts = { sent: 0, deleted: 0, deadLettered: 0, receives: 0, invocations: 0, peakInFlight: 0 };
  private readonly maxReceiveCount: number;
  private readonly batchSize: number;
  private readonly visibilityTimeoutMs: number;
  private readonly invocationBudgetMs: number;
  private readonly concurrency: number;
  /** The queue's ARN, as its records' `eventSourceARN` carry it. */
  readonly arn: string;

  constructor(private readonly opts: InProcessQueueOptions = {}) {
    this.maxReceiveCount = opts.maxReceiveCount ?? QUEUE.maxReceiveCount;
    this.batchSize = opts.batchSize ?? QUEUE.batchSize;
    this.visibilityTimeoutMs = opts.visibilityTimeoutMs ?? 1000;
    this.invocationBudgetMs = opts.invocationBudgetMs ?? QUEUE.workerTimeoutSeconds * 1000;
    this.concurrency = opts.concurrency ?? 1;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError(
        `concurrency is a whole number of invocations, at least 1 (got ${this.concurrency})`,
      );
    }
    this.arn = `arn:aws:sqs:us-east-1:000000000000:${opts.queueName ?? 'maas-work'}`;
  }

  /** QueuePublisher: enqueues a work message. */
  send(message: WorkMessage): Promise<string> {
    return Promise.resolve(this.sendRaw(JSON.stringify(message)));
  }

  /** Enqueues any body (e.g. to exercise the consumer with a malformed message). */
  sendRaw(body: string): string {
    const messageId = randomUUID();
    const now = Date.now();
    this.messages.push({ messageId, body, sentAt: now, receiveCount: 0, visibleAt: now });
    this.counts.sent++;
    this.schedule();
    return messageId;
  }

  /** Starts delivering messages to `consumer` (the same handler the SQS event source invokes in AWS). */
  attach(consumer: QueueConsumer): this {
    this.consumer = consumer;
    this.schedule();
    return this;
  }

  /** Stops delivering; queued messages stay. */
  detach(): void {
    this.consumer = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  get stats(): QueueStats {
    return { ...this.counts };
  }

  /** Messages waiting or in flight. */
  get depth(): number {
    return this.messages.length;
  }

  /** Consumer invocations running now (at most `concurrency`). */
  get inFlight(): number {
    return this.running;
  }

  /**
   * Resolves with true once no consumer invocation runs, or with false after `timeoutMs` while one still does. After
   * `detach` none starts, so this waits for the work in flight; the messages still queued stay.
   */
  settle(timeoutMs: number): Promise<boolean> {
    if (this.running === 0) return Promise.resolve(true);
    return new Promise((res) => {
      const waiter = () => {
        clearTimeout(timer);
        res(true);
      };
      const timer = setTimeout(() => {
        this.settleWaiters = this.settleWaiters.filter((w) => w !== waiter);
        res(false);
      }, timeoutMs);
      this.settleWaiters.push(waiter);
    });
  }

  /** Resolves when every message has been deleted or dead-lettered and no invocation is running. */
  drain(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }

  private isIdle(): boolean {
    return this.messages.length === 0 && this.running === 0 && !this.pumping;
  }

  private schedule(): void {
    if (this.pumping) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.isIdle()) {
      const waiters = this.idleWaiters.splice(0);
      for (const w of waiters) w();
      return;
    }
    if (!this.consumer || this.running >= this.concurrency) return;
    // A running invocation's messages wait for its end (which schedules again), whatever their visibility.
    let next = Number.POSITIVE_INFINITY;
    for (const m of this.messages) if (!this.held.has(m)) next = Math.min(next, m.visibleAt);
    if (next === Number.POSITIVE_INFINITY) return;
    this.timer = setTimeout(() => this.pump(), Math.max(0, next - Date.now()));
    this.timer.unref?.();
  }

  /** Starts invocations while a slot is free and visible messages wait. */
  private pump(): void {
    this.timer = undefined;
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.running < this.concurrency) {
        const consumer = this.consumer;
        if (!consumer) break;
        const batch = this.receive();
        if (batch.length === 0) break;
        this.running++;
        this.counts.peakInFlight = Math.max(this.counts.peakInFlight, this.running);
        for (const m of batch) this.held.add(m);
        void this.deliver(consumer, batch).finally(() => {
          for (const m of batch) this.held.delete(m);
          this.running--;
          if (this.running === 0) for (const w of this.settleWaiters.splice(0)) w();
          this.schedule();
        });
      }
    } finally {
      this.pumping = false;
      this.schedule();
    }
  }

  /** Takes up to `batchSize` visible messages, dead-lettering those past their last receive. */
  private receive(): QueuedMessage[] {
    const now = Date.now();
    const batch: QueuedMessage[] = [];
    for (const m of [...this.messages]) {
      if (batch.length >= this.batchSize) break;
      if (m.visibleAt > now || this.held.has(m)) continue;
      if (m.receiveCount >= this.maxReceiveCount) {
        this.remove(m);
        this.deadLetters.push(m);
        this.counts.deadLettered++;
        this.opts.deadLetterQueue?.sendRaw(m.body);
        continue;
      }
      m.receiveCount++;
      m.visibleAt = now + this.visibilityTimeoutMs;
      this.counts.receives++;
      batch.push(m);
    }
    return batch;
  }

  private async deliver(consumer: QueueConsumer, batch: QueuedMessage[]): Promise<void> {
    // The consumer starts on a later turn, never inside pump (nor inside a send that scheduled it).
    await Promise.resolve();
    const started = Date.now();
    const context: TimeBudget = {
      getRemainingTimeInMillis: () => Math.max(0, this.invocationBudgetMs - (Date.now() - started)),
    };
    this.counts.invocations++;
    let failed: Set<string>;
    try {
      const response = await consumer({ Records: batch.map((m) => this.record(m)) }, context);
      failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch (e) {
      this.opts.onConsumerError?.(e);
      failed = new Set(batch.map((m) => m.messageId));
    }
    for (const m of batch) {
      if (failed.has(m.messageId)) continue;
      this.remove(m);
      this.counts.deleted++;
    }
  }

  private remove(m: QueuedMessage): void {
    const i = this.messages.indexOf(m);
    if (i >= 0) this.messages.splice(i, 1);
  }

  private record(m: QueuedMessage): SQSRecord {
    return {
      messageId: m.messageId,
      receiptHandle: `${m.messageId}#${m.receiveCount}`,
      body: m.body,
      attributes: {
        ApproximateReceiveCount: String(m.receiveCount),
        SentTimestamp: String(m.sentAt),
        SenderId: 'local',
        ApproximateFirstReceiveTimestamp: String(m.sentAt),
      },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: this.arn,
      awsRegion: 'us-east-1',
    };
  }
}

/**
 * Suffixes (under the batch prefix) of the objects that start a job (`input.jsonl`, `input/_SUCCESS`) or cancel
 * it (`cancel`): those of the stack's notification filters (infra/constructs/event-pipelines.ts).
 */
const BATCH_EVENT_SUFFIXES = [BATCH_KEYS.input, BATCH_KEYS.inputMarker, BATCH_KEYS.cancel].map((key) =>
  key('').slice(S3_KEYS.batchPrefix.length),
);

/** Which created objects AWS notifies the S3 events function about (also the CDK notification filters). */
export function isS3EventKey(key: string, prefixes: { incoming: string; batch: string }): boolean {
  return (
    (key.startsWith(prefixes.incoming) && key.endsWith('.onnx')) ||
    (key.startsWith(prefixes.batch) && BATCH_EVENT_SUFFIXES.some((suffix) => key.endsWith(suffix)))
  );
}

/** Encodes a raw key as S3 event notifications do (URL-encoded, `+` for spaces). */
export function encodeS3EventKey(key: string): string {
  return encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+');
}

export interface S3EventHookOptions {
  /** Only these keys are delivered (like the bucket's notification filters). */
  readonly filter: (key: string) => boolean;
  /** Lambda's asynchronous invocation retries a failed event twice. @default 2 */
  readonly retries?: number;
  /** Delay before a retry (ms). @default 1000 */
  readonly retryDelayMs?: number;
  readonly onError?: (error: unknown, key: string) => void;
}

/**
 * Delivers s3rver's ObjectCreated events to `handler` as AWS would (one event per object, keys URL-encoded,
 * retried on failure). Returns a function that detaches the hook and a promise of all in-flight deliveries.
 */
export function attachS3Events(
  server: S3rver,
  handler: (event: S3Event) => Promise<unknown>,
  opts: S3EventHookOptions,
): { detach(): void; idle(): Promise<void> } {
  const inFlight = new Set<Promise<void>>();
  const emitter = server as unknown as {
    on(name: 'event', cb: (e: S3Event) => void): void;
    off(name: 'event', cb: (e: S3Event) => void): void;
  };
  const retries = opts.retries ?? 2;
  const delay = opts.retryDelayMs ?? 1000;
  const listener = (event: S3Event) => {
    for (const record of event.Records ?? []) {
      const key = record.s3.object.key;
      if (!record.eventName.startsWith('ObjectCreated') || !opts.filter(key)) continue;
      const awsRecord = {
        ...record,
        s3: { ...record.s3, object: { ...record.s3.object, key: encodeS3EventKey(key) } },
      };
      const run = (async () => {
        for (let attempt = 0; ; attempt++) {
          try {
            await handler({ Records: [awsRecord] });
            return;
          } catch (e) {
            if (attempt >= retries) {
              opts.onError?.(e, key);
              return;
            }
            await new Promise((r) => setTimeout(r, delay));
          }
        }
      })();
      inFlight.add(run);
      void run.finally(() => inFlight.delete(run));
    }
  };
  emitter.on('event', listener);
  return {
    detach: () => emitter.off('event', listener),
    idle: async () => {
      while (inFlight.size) await Promise.all([...inFlight]);
    },
  };
}

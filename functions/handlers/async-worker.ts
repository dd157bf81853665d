/**
 * Work queue consumer Lambda (SQS event source with ReportBatchItemFailures): runs `async-infer` requests,
 * scores the parts of batch jobs and assembles their output (`batch-part`, `batch-aggregate`, from the batch queue), completes PENDING versions (`register-complete`) and runs mirrored
 * requests on their shadow version, comparing the answers (`shadow`; functions/app/shadow.ts). Records are processed by Powertools' BatchProcessor; a record that
 * throws is reported as a batch item failure, so only it is retried (and dead-lettered after the queues'
 * `maxReceiveCount` receives, `MAAS_MAX_RECEIVE_COUNT`) while the rest of its batch succeeds.
 *
 * The function's timeout kills an invocation without running any catch or returning its batch response, so the
 * worker keeps to its time (docs/events.md, "The worker's time"): records after the first are not started with
 * less than QUEUE.startReserveMs left (`notStarted`), and QUEUE.deadlineMarginMs before the end the delivery is
 * answered without the record still running, which is ended first when its receive is the last (`endLastReceive`).
 *
 * The dead-letter queues are event sources of the worker too (`deadLetterSources`): a message dead-lettered
 * without its last receive having ended it (the invocation was killed out of memory, or any other way that runs no
 * code) is ended here as that receive's failure would have ended it (`endDeadLetters`).
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { StdoutCaptureSink } from '../adapters/capture-sinks';
import { EmfMetricsSink } from '../adapters/emf-metrics';
import { PowertoolsLogger } from '../adapters/powertools-logger';
import { type AsyncWorkerDeps, recordLastAttemptFailure, runAsyncInference } from '../app/async-inference';
import {
  aggregateBatchJob,
  type BatchDelivery,
  type BatchScoreDeps,
  failBatchAggregate,
  failBatchPart,
  runBatchPart,
} from '../app/batch-score';
import { type DeriveDeps, failDerivation, runDerive } from '../app/derive';
import { completePendingVersion, failPendingVersion } from '../app/registration';
import type { RegistryDeps } from '../app/registry';
import { runShadow, type ShadowWorkerDeps } from '../app/shadow';
import { timerBefore } from '../app/time-budget';
import { EnvironmentVariables, type MaasConfig } from '../config/environment';
import { ENV } from '../contract/env';
import { QUEUE, REGISTRATION } from '../contract/events';
import { SERVICE_NAMES } from '../contract/observability';
import { parseWorkMessage, type WorkMessage } from '../domain/async';
import type { QueuePublisher, TimeBudget } from '../ports/events';
import type { Logger } from '../ports/logger';
import { describeError, invocationOf } from './logging';

export interface AsyncWorkerHandlerDeps {
  readonly worker: AsyncWorkerDeps;
  readonly batch: BatchScoreDeps;
  /** Completes PENDING versions (registry use cases with an inspector); none: such messages fail. */
  readonly registry?: RegistryDeps;
  /** Completes PENDING derived versions (transforms and accuracy gate); none: such messages fail. */
  readonly derive?: DeriveDeps;
  /** Runs and compares `shadow` messages (shadow traffic); none: such messages fail. */
  readonly shadow?: ShadowWorkerDeps;
  /**
   * Receives before the queues dead-letter a message (their redrive policy's `maxReceiveCount`; in Lambda
   * `MAAS_MAX_RECEIVE_COUNT`): the receive with this count is the last, on which a failing message is ended (an async
   * request answered `PROCESSING_FAILED`, a version FAILED, a batch job failed, a shadow recorded as failed). It wins
   * over `worker.maxReceiveCount`, so that every kind of message takes the same receive for its last.
   * @default worker.maxReceiveCount, else QUEUE.maxReceiveCount
   */
  readonly maxReceiveCount?: number;
  /**
   * The work queue: a record not started on its last receive (the invocation's time ran short) is sent again as a
   * new message. None: it is ended as a failure on its last receive ends it.
   */
  readonly requeue?: QueuePublisher;
  /**
   * The ARNs of the dead-letter queues the worker consumes: a delivery from one of them is of dead letters, each
   * ended as its last receive's failure ends a message (`endDeadLetters`), never run. @default none
   */
  readonly deadLetterSources?: readonly string[];
  /** @default the function's Powertools logger */
  readonly logger?: Logger;
}

/**
 * Why a dead letter's request, version or job failed: its worker never answered its last receive (nothing of ours
 * runs when an invocation is killed).
 */
export const DEAD_LETTER_REASON =
  'its worker was killed on its last receive (out of memory, or another way that runs no code), and the message was dead-lettered';

export type SqsHandler = (event: SQSEvent, context: Context | TimeBudget) => Promise<SQSBatchResponse>;

/**
 * The delivery of a batch message as the batch use cases take it: its receive count (a part received again repairs
 * a lost send of the part it claimed) and whether it is the last receive — when the function's timeout would
 * kill the invocation (no catch runs then), the job is ended failed shortly before (`BATCH.lastReceiveGuardMs`),
 * and logged here.
 */
function batchDelivery(
  receiveCount: number,
  lastReceive: boolean,
  logger: Logger,
  about: Record<string, unknown>,
): BatchDelivery {
  return {
    receiveCount,
    lastReceive,
    onDeadline: (outcome) => {
      if (!('result' in outcome)) {
        logger.error('batch job not failed at the deadline', { ...about, ...describeError(outcome.error) });
      } else if (outcome.result.state === 'failed') {
        logger.error('batch job failed at the deadline of its last receive', { ...about, ...outcome.result });
      } else {
        logger.info('batch job left as it is at the deadline of its last receive', {
          ...about,
          ...outcome.result,
        });
      }
    },
  };
}

/** The function's logger (Powertools loads with the first line). */
const functionLogger = new PowertoolsLogger({ serviceName: SERVICE_NAMES.worker });

/** One record of a delivery, as the worker takes it. */
interface Delivered {
  readonly record: SQSRecord;
  readonly receiveCount: number;
  readonly lastReceive: boolean;
  /** The record's message, or why it is none. */
  readonly parsed: { readonly message: WorkMessage } | { readonly error: unknown };
  /** `ended`: succeeded, failed, given back or sent again. */
  state: 'waiting' | 'running' | 'ended';
  /** Answered as a batch item failure. */
  failed: boolean;
}

/** The records of one invocation, and whether one of them was started. */
interface Invocation {
  readonly records: Map<string, Delivered>;
  started: boolean;
}

/** What a failed end of a message is logged as, by its type. */
const NOT_ENDED: Record<WorkMessage['type'], string> = {
  'async-infer': 'async request not failed',
  'register-complete': 'pending version not failed',
  derive: 'derived version not failed',
  'batch-part': 'batch job not failed',
  'batch-aggregate': 'batch job not failed',
  shadow: 'shadow comparison not ended',
};

/** The keys a message is about, for its log lines. */
function keysOf(m: WorkMessage): Record<string, unknown> {
  switch (m.type) {
    case 'async-infer':
      return { requestId: m.requestId };
    case 'register-complete':
    case 'derive':
      return { name: m.name, version: m.version };
    case 'batch-part':
      return { jobId: m.jobId, part: m.index };
    case 'batch-aggregate':
      return { jobId: m.jobId };
    case 'shadow':
      return { model: m.model, alias: m.alias, shadowVersion: m.shadowVersion, inferenceId: m.inferenceId };
  }
}

const isBatchMessage = (m: WorkMessage) => m.type === 'batch-part' || m.type === 'batch-aggregate';

/** Resolves `marginMs` before the end of `budget` (never, for a budget without an end). */
function deadlineOf(budget: TimeBudget, marginMs: number): { reached: Promise<undefined>; clear(): void } {
  let clear = () => {};
  const reached = new Promise<undefined>((resolve) => {
    clear = timerBefore(budget, marginMs, () => resolve(undefined));
  });
  return { reached, clear };
}

export function createAsyncWorkerHandler(deps: AsyncWorkerHandlerDeps): SqsHandler {
  const functionScope = deps.logger ?? functionLogger;
  const maxReceiveCount = deps.maxReceiveCount ?? deps.worker.maxReceiveCount ?? QUEUE.maxReceiveCount;
  // Async requests decide their last receive themselves (`recordLastAttemptFailure`): with the same count.
  const worker: AsyncWorkerDeps = { ...deps.worker, maxReceiveCount };
  const deadLetterSources = new Set(deps.deadLetterSources ?? []);

  /**
   * Ends a work queue message as its last receive's failure does, before the queue dead-letters it: an async request
   * is answered `PROCESSING_FAILED` (`recordLastAttemptFailure`, which keeps an answer written already), a PENDING
   * registration or derivation is completed FAILED (unless no longer PENDING), a batch part or aggregation ends its
   * job failed naming it (unless the job ended already). A shadow's comparison is lost: nobody waits for it. Every
   * end is conditional, so ending a message twice changes nothing. Throws when the end fails.
   */
  const endFailed = async (message: WorkMessage, receiveCount: number, e: unknown): Promise<unknown> => {
    switch (message.type) {
      case 'async-infer':
        return recordLastAttemptFailure(worker, message.requestId, receiveCount, e);
      case 'register-complete': {
        if (!deps.registry) return undefined;
        // The version ends FAILED, never stays PENDING.
        const reason = `the registration could not be completed after ${receiveCount} attempts: ${(e as Error)?.message ?? String(e)}`;
        return failPendingVersion(deps.registry, message.name, message.version, reason);
      }
      case 'derive':
        return deps.derive ? failDerivation(deps.derive, message, receiveCount, e) : undefined;
      case 'batch-part':
        return failBatchPart(deps.batch, message, receiveCount, e);
      case 'batch-aggregate':
        return failBatchAggregate(deps.batch, message, receiveCount, e);
      case 'shadow':
        return undefined;
    }
  };

  /** `endFailed`, its failure logged (never throws). */
  const endLastReceive = async (message: WorkMessage, receiveCount: number, e: unknown, logger: Logger) => {
    await endFailed(message, receiveCount, e).catch((err) =>
      logger.error(NOT_ENDED[message.type], { ...keysOf(message), ...describeError(err) }),
    );
  };

  /**
   * A delivery from a dead-letter queue: each message is ended as its last receive's failure ends it
   * (`endFailed`, with {@link DEAD_LETTER_REASON}), which its worker did not do if the invocation was killed.
   * A message its last receive ended already changes nothing. A record whose end fails is given back (the
   * dead-letter queue delivers it again after its visibility timeout); one that is no work message is logged whole
   * and dropped (the worker logged it on each receive).
   */
  const endDeadLetters = async (event: SQSEvent, logger: Logger): Promise<SQSBatchResponse> => {
    const batchItemFailures: { itemIdentifier: string }[] = [];
    for (const record of event.Records) {
      const about = { messageId: record.messageId, deadLetter: true };
      let message: WorkMessage;
      try {
        message = parseWorkMessage(record.body);
      } catch (e) {
        logger.error('dead letter dropped: not a work message', {
          ...about,
          body: record.body,
          ...describeError(e),
        });
        continue;
      }
      try {
        const outcome = await endFailed(message, maxReceiveCount, new Error(DEAD_LETTER_REASON));
        logger.warn('dead letter ended', { ...about, type: message.type, ...keysOf(message), outcome });
      } catch (err) {
        logger.error(NOT_ENDED[message.type], { ...about, ...keysOf(message), ...describeError(err) });
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures };
  };

  /**
   * A record the invocation has no time left to start. It is given back (a batch item failure: SQS delivers it again
   * after the visibility timeout), except on its last receive, where that would dead-letter it unrun: it is then
   * sent again as a new message (`requeue`; its record succeeds), and only when that cannot be done ended as its
   * last receive's failure ends it. Returns whether it succeeds.
   */
  const notStarted = async (d: Delivered, logger: Logger): Promise<boolean> => {
    d.state = 'ended';
    // A failure until its copy is sent: a delivery answered meanwhile (the deadline) must not acknowledge it.
    d.failed = true;
    const about = { messageId: d.record.messageId, receiveCount: d.receiveCount };
    if (d.lastReceive && 'message' in d.parsed) {
      if (deps.requeue) {
        try {
          await deps.requeue.send(d.parsed.message);
          d.failed = false;
          logger.info('work message not started on its last receive: sent again', about);
          return true;
        } catch (err) {
          logger.error('work message not sent again', { ...about, ...describeError(err) });
        }
      }
      const e = new Error(`it was not started: the invocation's time ran out`);
      logger.error('work message not started on its last receive: ended failed', about);
      await endLastReceive(d.parsed.message, d.receiveCount, e, logger);
    } else {
      logger.info('work message not started: given back', about);
    }
    return false;
  };

  const onRecord = (budget: TimeBudget, logger: Logger, run: Invocation) => async (record: SQSRecord) => {
    const d = run.records.get(record.messageId);
    // Already answered: not started before the deadline of the invocation, which answered without it.
    if (d?.state !== 'waiting') throw new Error('the delivery was answered without this record');
    const { receiveCount, lastReceive } = d;
    if (!('message' in d.parsed)) {
      d.state = 'ended';
      d.failed = true;
      logger.error('work message failed', {
        messageId: record.messageId,
        receiveCount,
        ...describeError(d.parsed.error),
      });
      throw d.parsed.error;
    }
    const message = d.parsed.message;
    // The first record always runs; a later one only with QUEUE.startReserveMs left (a batch message comes
    // alone and keeps its own time).
    if (run.started && !isBatchMessage(message) && budget.getRemainingTimeInMillis() < QUEUE.startReserveMs) {
      if (await notStarted(d, logger)) return;
      throw new Error(`work message ${record.messageId} not started: the invocation's time ran out`);
    }
    run.started = true;
    d.state = 'running';
    try {
      if (message.type === 'async-infer') {
        const status = await runAsyncInference(worker, message.requestId);
        logger.info('async request handled', { requestId: message.requestId, status });
      } else if (message.type === 'shadow') {
        if (!deps.shadow) throw new Error('shadow traffic is not configured for this worker');
        // A shadow that fails is a failed comparison (counted), never a retried message; one whose dependency is
        // unavailable is retried, and recorded as failed on its last receive (never dead-lettered).
        const c = await runShadow(deps.shadow, message, {
          budget,
          lastAttempt: lastReceive,
        });
        if (c) {
          logger.info('shadow request compared', {
            model: c.model,
            alias: c.alias,
            shadowVersion: c.shadowVersion,
            inferenceId: c.inferenceId,
            ...(c.failed ? { failed: true, code: c.error } : {}),
          });
        }
      } else if (message.type === 'derive') {
        if (!deps.derive) throw new Error('derived versions are not configured for this worker');
        const status = await runDerive(deps.derive, message, {
          budget,
          reserveMs: REGISTRATION.workerReserveMs,
        });
        logger.info('derived version completed', { name: message.name, version: message.version, status });
      } else if (message.type === 'register-complete') {
        if (!deps.registry) throw new Error('registration is not configured for this worker');
        const status = await completePendingVersion(deps.registry, message.name, message.version, {
          budget,
          reserveMs: REGISTRATION.workerReserveMs,
        });
        logger.info('pending version completed', { name: message.name, version: message.version, status });
      } else if (message.type === 'batch-part') {
        const { jobId, index } = message;
        const delivery = batchDelivery(receiveCount, lastReceive, logger, { jobId, part: index });
        const result = await runBatchPart(deps.batch, message, budget, delivery);
        logger.info('batch part handled', { jobId, part: index, ...result });
      } else {
        const { jobId } = message;
        const delivery = batchDelivery(receiveCount, lastReceive, logger, { jobId });
        const result = await aggregateBatchJob(deps.batch, message, budget, delivery);
        logger.info('batch job aggregated', { jobId, ...result });
      }
    } catch (e) {
      d.failed = true;
      logger.error('work message failed', { messageId: record.messageId, receiveCount, ...describeError(e) });
      // The last receive before the dead-letter queue (for an async request, recordLastAttemptFailure decides). A
      // batch part or aggregation fails its job, naming what failed (one still running when the invocation is
      // about to time out does too: `batchDelivery`).
      if (lastReceive || message.type === 'async-infer') {
        await endLastReceive(message, receiveCount, e, logger);
      }
      throw e;
    } finally {
      d.state = 'ended';
    }
  };

  /**
   * The delivery's answer QUEUE.deadlineMarginMs before the invocation's end, without the record still running: that
   * one fails (and is ended first when its receive is the last: a late end of its run leaves the answer written, and
   * a completion conditioned on PENDING finds the version FAILED), and those not started are handled as `notStarted`.
   * Undefined for a batch message, which keeps its own guard (`batchDelivery`) and is awaited.
   */
  const answerAtDeadline = async (run: Invocation, logger: Logger): Promise<SQSBatchResponse | undefined> => {
    const all = [...run.records.values()];
    if (all.some((d) => 'message' in d.parsed && isBatchMessage(d.parsed.message))) return undefined;
    const late = new Error(
      `the invocation ran out of time (still running ${QUEUE.deadlineMarginMs / 1000} s before the worker's time limit)`,
    );
    await Promise.all(
      all.map(async (d) => {
        if (d.state === 'waiting') {
          if ('message' in d.parsed) await notStarted(d, logger);
          else Object.assign(d, { state: 'ended', failed: true });
        } else if (d.state === 'running') {
          d.failed = true;
          const about = { messageId: d.record.messageId, receiveCount: d.receiveCount };
          logger.error('work message still running at the deadline of its invocation', about);
          if (d.lastReceive && 'message' in d.parsed) {
            await endLastReceive(d.parsed.message, d.receiveCount, late, logger);
          }
        }
      }),
    );
    return {
      batchItemFailures: all.filter((d) => d.failed).map((d) => ({ itemIdentifier: d.record.messageId })),
    };
  };

  return async (event, context) => {
    // Records run one after another (processInParallel: false), but a batch is one request: what is about one record
    // goes on its own lines, not into the request's keys.
    const log = functionScope.forRequest(invocationOf(context));
    const source = event.Records[0]?.eventSourceARN;
    if (source !== undefined && deadLetterSources.has(source)) return endDeadLetters(event, log);
    const run: Invocation = { records: new Map(), started: false };
    for (const record of event.Records) {
      const receiveCount = Number(record.attributes?.ApproximateReceiveCount ?? '1');
      let parsed: Delivered['parsed'];
      try {
        parsed = { message: parseWorkMessage(record.body) };
      } catch (error) {
        parsed = { error };
      }
      run.records.set(record.messageId, {
        record,
        receiveCount,
        lastReceive: receiveCount >= maxReceiveCount,
        parsed,
        state: 'waiting',
        failed: false,
      });
    }
    const processor = new BatchProcessor(EventType.SQS);
    const processing = processPartialResponse(event, onRecord(context, log, run), processor, {
      context: context as Context,
      throwOnFullBatchFailure: false,
      // One record at a time: a registration completion holds an artifact of up to 256 MiB and its session, and
      // ten of them at once would not fit the function's memory (nor its time budget).
      processInParallel: false,
    });
    const deadline = deadlineOf(context, QUEUE.deadlineMarginMs);
    try {
      const done = await Promise.race([processing, deadline.reached]);
      if (done) return done;
      const answer = await answerAtDeadline(run, log);
      if (!answer) return await processing;
      // The record still running may end later (Lambda resumes it in a later invocation); nothing waits for it.
      processing.catch(() => {});
      return answer;
    } finally {
      deadline.clear();
    }
  };
}

// ---------------------------------------------------------------------------------------------------------
// Composition root of the Lambda.

/**
 * What the handler takes from the function's configuration: the queues' `maxReceiveCount` (MAAS_MAX_RECEIVE_COUNT,
 * which the stack sets from the queues' redrive policy), so that the worker's last receive is the queues' last, and
 * the dead-letter queues it consumes (MAAS_DEAD_LETTER_QUEUE_ARNS).
 */
export function workerSettingsFromConfig(
  config: Pick<MaasConfig, 'maxReceiveCount' | 'deadLetterQueueArns'>,
): Pick<AsyncWorkerHandlerDeps, 'maxReceiveCount' | 'deadLetterSources'> {
  return { maxReceiveCount: config.maxReceiveCount, deadLetterSources: config.deadLetterQueueArns };
}

async function fromEnvironment(config: MaasConfig): Promise<SqsHandler> {
  const { eventFlowsFromConfig } = await import('./event-deps');
  const { OrtModelInspector } = await import('../adapters/ort-inspector');
  const { OnnxModelTransformer } = await import('../adapters/onnx-transformer');
  const { sharedOrtEngine } = await import('../adapters/ort-engine');
  const { eventsFromConfig } = await import('./event-aws');
  const { comparisonRecorder, rolloutDepsFromConfig } = await import('./rollout-deps');
  // The inspector and the event bus complete PENDING versions as the registry API would have.
  const flows = eventFlowsFromConfig(config, {
    inspector: new OrtModelInspector(),
    ...eventsFromConfig(config),
    logger: functionLogger,
    // Async requests and batch parts, one EMF document each, as inferences of their model version; sampled async
    // requests as capture lines on stdout (the log group's subscription delivers them, as the predict function's).
    metrics: new EmfMetricsSink({ serviceName: SERVICE_NAMES.worker }),
    capture: new StdoutCaptureSink(),
    // Shadow comparisons count into the active rollout of their alias (a rollout bounding its divergence).
    onComparison: comparisonRecorder(rolloutDepsFromConfig(config, { logger: functionLogger })),
  });
  return createAsyncWorkerHandler({
    ...flows,
    // The queues' redrive policy, as the stack set it (the worker's last receive is theirs), and the dead-letter
    // queues, event sources of the function too: their messages are ended, never run.
    ...workerSettingsFromConfig(config),
    // A record not started on its last receive goes back to the work queue as a new message.
    requeue: flows.asyncApi.queue,
    // Derived versions: the ONNX transforms, and the process-wide engine (built by the flows with its threads) for the gate.
    ...(flows.registry
      ? { derive: { ...flows.registry, transformer: new OnnxModelTransformer(), engine: sharedOrtEngine() } }
      : {}),
    logger: functionLogger,
  });
}

const notConfigured: SqsHandler = async () => {
  throw new Error(`${ENV.table} is not set`);
};

const env = new EnvironmentVariables();

/** The Lambda entry point (built at INIT from the environment). */
export const handler: SqsHandler = env.hasTable() ? await fromEnvironment(env.config()) : notConfigured;

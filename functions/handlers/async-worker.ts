/**
 * Work queue consumer Lambda (SQS event source with ReportBatchItemFailures): runs `async-infer` requests,
 * scores the parts of batch jobs and assembles their output (`batch-part`, `batch-aggregate`, from the batch queue), completes PENDING versions (`register-complete`) and runs mirrored
 * requests on their shadow version, comparing the answers (`shadow`; functions/app/shadow.ts). Records are processed by Powertools' BatchProcessor; a record that
 * throws is reported as a batch item failure, so only it is retried (and dead-lettered after
 * QUEUE.maxReceiveCount receives) while the rest of its batch succeeds.
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
import { EnvironmentVariables, type MaasConfig } from '../config/environment';
import { ENV } from '../contract/env';
import { QUEUE, REGISTRATION } from '../contract/events';
import { SERVICE_NAMES } from '../contract/observability';
import { parseWorkMessage } from '../domain/async';
import type { TimeBudget } from '../ports/events';
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
   * Receives after which a failing `register-complete` ends its version FAILED, and a `shadow` whose dependency is
   * unavailable is recorded as failed. @default QUEUE.maxReceiveCount
   */
  readonly maxReceiveCount?: number;
  /** @default the function's Powertools logger */
  readonly logger?: Logger;
}

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

export function createAsyncWorkerHandler(deps: AsyncWorkerHandlerDeps): SqsHandler {
  const functionScope = deps.logger ?? functionLogger;
  const onRecord = (budget: TimeBudget, logger: Logger) => async (record: SQSRecord) => {
    const receiveCount = Number(record.attributes?.ApproximateReceiveCount ?? '1');
    const lastReceive = receiveCount >= (deps.maxReceiveCount ?? QUEUE.maxReceiveCount);
    let message: ReturnType<typeof parseWorkMessage> | undefined;
    try {
      message = parseWorkMessage(record.body);
      if (message.type === 'async-infer') {
        const status = await runAsyncInference(deps.worker, message.requestId);
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
      logger.error('work message failed', { messageId: record.messageId, receiveCount, ...describeError(e) });
      if (message?.type === 'async-infer') {
        await recordLastAttemptFailure(deps.worker, message.requestId, receiveCount, e);
      }
      // The last receive before the dead-letter queue: the version ends FAILED, never stays PENDING.
      if (message?.type === 'register-complete' && deps.registry && lastReceive) {
        const { name, version } = message;
        const reason = `the registration could not be completed after ${receiveCount} attempts: ${(e as Error)?.message ?? String(e)}`;
        await failPendingVersion(deps.registry, name, version, reason).catch((err) =>
          logger.error('pending version not failed', { name, version, ...describeError(err) }),
        );
      }
      // A batch part or aggregation that fails on its last receive fails its job, naming what failed (one still
      // running when the invocation is about to time out does too: `batchDelivery`).
      if (lastReceive && (message?.type === 'batch-part' || message?.type === 'batch-aggregate')) {
        const m = message;
        const failed =
          m.type === 'batch-part'
            ? failBatchPart(deps.batch, m, receiveCount, e)
            : failBatchAggregate(deps.batch, m, receiveCount, e);
        await failed.catch((err) =>
          logger.error('batch job not failed', { jobId: m.jobId, ...describeError(err) }),
        );
      }
      // The same for a derived version.
      if (message?.type === 'derive' && deps.derive && lastReceive) {
        const { name, version } = message;
        await failDerivation(deps.derive, message, receiveCount, e).catch((err) =>
          logger.error('derived version not failed', { name, version, ...describeError(err) }),
        );
      }
      throw e;
    }
  };
  return async (event, context) => {
    // Records run one after another (processInParallel: false), but a batch is one request: what is about one record
    // goes on its own lines, not into the request's keys.
    const log = functionScope.forRequest(invocationOf(context));
    const processor = new BatchProcessor(EventType.SQS);
    return processPartialResponse(event, onRecord(context, log), processor, {
      context: context as Context,
      throwOnFullBatchFailure: false,
      // One record at a time: a registration completion holds an artifact of up to 256 MiB and its session, and
      // ten of them at once would not fit the function's memory (nor its time budget).
      processInParallel: false,
    });
  };
}

// ---------------------------------------------------------------------------------------------------------
// Composition root of the Lambda.

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

/**
 * Work queue consumer Lambda (SQS event source with ReportBatchItemFailures): runs `async-infer` requests and
 * continues batch jobs (`batch-continue`). Records are processed by Powertools' BatchProcessor; a record that
 * throws is reported as a batch item failure, so only it is retried (and dead-lettered after
 * QUEUE.maxReceiveCount receives) while the rest of its batch succeeds.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { type AsyncWorkerDeps, recordLastAttemptFailure, runAsyncInference } from '../app/async-inference';
import { type BatchScoreDeps, continueBatchJob } from '../app/batch-score';
import { ENV } from '../contract/env';
import { parseWorkMessage } from '../domain/async';
import type { TimeBudget } from '../ports/events';
import { readConfig } from './config';
import { describeError, type EventLogger, eventConsoleLogger } from './event-log';

export interface AsyncWorkerHandlerDeps {
  readonly worker: AsyncWorkerDeps;
  readonly batch: BatchScoreDeps;
  readonly logger?: EventLogger;
}

export type SqsHandler = (event: SQSEvent, context: Context | TimeBudget) => Promise<SQSBatchResponse>;

export function createAsyncWorkerHandler(deps: AsyncWorkerHandlerDeps): SqsHandler {
  const logger = deps.logger ?? eventConsoleLogger;
  const onRecord = (budget: TimeBudget) => async (record: SQSRecord) => {
    const receiveCount = Number(record.attributes?.ApproximateReceiveCount ?? '1');
    let message: ReturnType<typeof parseWorkMessage> | undefined;
    try {
      message = parseWorkMessage(record.body);
      if (message.type === 'async-infer') {
        const status = await runAsyncInference(deps.worker, message.requestId);
        logger.info('async request handled', { requestId: message.requestId, status });
      } else {
        const result = await continueBatchJob(deps.batch, message.cursor, budget);
        logger.info('batch job continued', { jobId: message.cursor.jobId, ...result });
      }
    } catch (e) {
      logger.error('work message failed', { messageId: record.messageId, receiveCount, ...describeError(e) });
      if (message?.type === 'async-infer') {
        await recordLastAttemptFailure(deps.worker, message.requestId, receiveCount, e);
      }
      throw e;
    }
  };
  return async (event, context) => {
    const processor = new BatchProcessor(EventType.SQS);
    return processPartialResponse(event, onRecord(context), processor, {
      context: context as Context,
      throwOnFullBatchFailure: false,
    });
  };
}

// ---------------------------------------------------------------------------------------------------------
// Composition root of the Lambda.

async function fromEnvironment(): Promise<SqsHandler> {
  const config = readConfig(process.env);
  const { eventFlowsFromConfig } = await import('./event-deps');
  return createAsyncWorkerHandler(eventFlowsFromConfig(config));
}

const notConfigured: SqsHandler = async () => {
  throw new Error(`${ENV.table} is not set`);
};

/** The Lambda entry point (built at INIT from `process.env`). */
export const handler: SqsHandler = process.env[ENV.table] ? await fromEnvironment() : notConfigured;

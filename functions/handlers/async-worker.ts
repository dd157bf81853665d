/**
 * Work queue consumer Lambda (SQS event source with ReportBatchItemFailures): runs `async-infer` requests and
 * continues batch jobs (`batch-continue`). Records are processed by Powertools' BatchProcessor; a record that
 * throws is reported as a batch item failure, so only it is retried (and dead-lettered after
 * QUEUE.maxReceiveCount receives) while the rest of its batch succeeds.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { PowertoolsLogger } from '../adapters/powertools-logger';
import { type AsyncWorkerDeps, recordLastAttemptFailure, runAsyncInference } from '../app/async-inference';
import { type BatchScoreDeps, continueBatchJob } from '../app/batch-score';
import { EnvironmentVariables, type MaasConfig } from '../config/environment';
import { ENV } from '../contract/env';
import { parseWorkMessage } from '../domain/async';
import type { TimeBudget } from '../ports/events';
import type { Logger } from '../ports/logger';
import { describeError, invocationOf } from './logging';

export interface AsyncWorkerHandlerDeps {
  readonly worker: AsyncWorkerDeps;
  readonly batch: BatchScoreDeps;
  /** @default the function's Powertools logger */
  readonly logger?: Logger;
}

export type SqsHandler = (event: SQSEvent, context: Context | TimeBudget) => Promise<SQSBatchResponse>;

/** The function's logger (Powertools loads with the first line). */
const functionLogger = new PowertoolsLogger({ serviceName: 'maas-async-worker' });

export function createAsyncWorkerHandler(deps: AsyncWorkerHandlerDeps): SqsHandler {
  const functionScope = deps.logger ?? functionLogger;
  const onRecord = (budget: TimeBudget, logger: Logger) => async (record: SQSRecord) => {
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
    // Records run concurrently: what is about one record goes on its own lines, not into the request's keys.
    const log = functionScope.forRequest(invocationOf(context));
    const processor = new BatchProcessor(EventType.SQS);
    return processPartialResponse(event, onRecord(context, log), processor, {
      context: context as Context,
      throwOnFullBatchFailure: false,
    });
  };
}

// ---------------------------------------------------------------------------------------------------------
// Composition root of the Lambda.

async function fromEnvironment(config: MaasConfig): Promise<SqsHandler> {
  const { eventFlowsFromConfig } = await import('./event-deps');
  return createAsyncWorkerHandler({ ...eventFlowsFromConfig(config), logger: functionLogger });
}

const notConfigured: SqsHandler = async () => {
  throw new Error(`${ENV.table} is not set`);
};

const env = new EnvironmentVariables();

/** The Lambda entry point (built at INIT from the environment). */
export const handler: SqsHandler = env.hasTable() ? await fromEnvironment(env.config()) : notConfigured;

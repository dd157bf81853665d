/**
 * S3 events Lambda: `incoming/{name}/…onnx` created -> register a version; `batch/{jobId}/input.jsonl` or
 * `batch/{jobId}/input/_SUCCESS` created -> start the batch job; `batch/{jobId}/cancel` created -> cancel it. Records are handled one by one; when any failed for a reason worth a retry,
 * the invocation fails after the others are done (S3 -> Lambda retries it; the idempotency guards make the
 * records already done no-ops).
 */
import type { S3Event, S3EventRecord } from 'aws-lambda';
import { PowertoolsLogger } from '../adapters/powertools-logger';
import { type BatchRunResult, type BatchScoreDeps, cancelBatchJob, startBatchJob } from '../app/batch-score';
import { type RegisterOnUploadDeps, registerOnUpload, type UploadOutcome } from '../app/register-on-upload';
import { noBudget } from '../app/time-budget';
import { EnvironmentVariables, type MaasConfig } from '../config/environment';
import { ENV, S3_KEYS } from '../contract/env';
import { SERVICE_NAMES } from '../contract/observability';
import { batchEventOfKey } from '../domain/batch';
import type { TimeBudget } from '../ports/events';
import type { Logger } from '../ports/logger';
import { describeError, invocationOf } from './logging';

export interface S3EventsHandlerDeps {
  readonly upload: RegisterOnUploadDeps;
  readonly batch: BatchScoreDeps;
  /** @default the function's Powertools logger */
  readonly logger?: Logger;
}

export type S3RecordOutcome =
  | ({ readonly kind: 'register'; readonly key: string } & UploadOutcome)
  | ({ readonly kind: 'batch'; readonly key: string; readonly jobId: string } & BatchRunResult)
  | { readonly kind: 'ignored'; readonly key: string; readonly reason?: string };

/** S3 event keys are URL-encoded with `+` for spaces. */
export function decodeS3Key(key: string): string {
  return decodeURIComponent(key.replace(/\+/g, ' '));
}

export class S3EventRecordsFailedError extends Error {
  constructor(readonly failures: { key: string; error: unknown }[]) {
    super(`${failures.length} S3 event record(s) failed: ${failures.map((f) => f.key).join(', ')}`);
    this.name = 'S3EventRecordsFailedError';
  }
}

/** The function's logger (Powertools loads with the first line). */
const functionLogger = new PowertoolsLogger({ serviceName: SERVICE_NAMES.s3Events });

export function createS3EventsHandler(
  deps: S3EventsHandlerDeps,
): (event: S3Event, context?: TimeBudget) => Promise<S3RecordOutcome[]> {
  const logger = deps.logger ?? functionLogger;
  const one = async (record: S3EventRecord, budget: TimeBudget): Promise<S3RecordOutcome> => {
    const key = decodeS3Key(record.s3.object.key);
    if (!record.eventName.startsWith('ObjectCreated')) return { kind: 'ignored', key };
    const eTag = record.s3.object.eTag;
    const versionId = record.s3.object.versionId;
    if (key.startsWith(S3_KEYS.incomingPrefix)) {
      const outcome = await registerOnUpload(
        deps.upload,
        {
          bucket: record.s3.bucket.name,
          key,
          ...(versionId ? { versionId } : {}),
          ...(eTag ? { eTag } : {}),
        },
        budget,
      );
      return { kind: 'register', key, ...outcome };
    }
    const batch = batchEventOfKey(key, S3_KEYS.batchPrefix);
    if (batch?.kind === 'start') {
      const tag = versionId ? `version:${versionId}` : eTag ? `etag:${eTag.replaceAll('"', '')}` : undefined;
      const start = { input: batch.input, ...(tag ? { eventTag: tag } : {}) };
      const result = await startBatchJob(deps.batch, batch.jobId, start, budget);
      return { kind: 'batch', key, jobId: batch.jobId, ...result };
    }
    if (batch?.kind === 'cancel') {
      const result = await cancelBatchJob(deps.batch, batch.jobId);
      return { kind: 'batch', key, jobId: batch.jobId, ...result };
    }
    if (batch?.kind === 'invalid') {
      return { kind: 'ignored', key, reason: `'${batch.jobId}' is no job id (${batch.reason})` };
    }
    return { kind: 'ignored', key };
  };

  return async (event, context) => {
    const log = logger.forRequest(invocationOf(context));
    const budget = context ?? noBudget;
    const outcomes: S3RecordOutcome[] = [];
    const failures: { key: string; error: unknown }[] = [];
    for (const record of event.Records ?? []) {
      try {
        const outcome = await one(record, budget);
        // A registration names its model (and version) on its line: one invocation may register several.
        const fields = { ...outcome, ...('name' in outcome ? { model: outcome.name } : {}) };
        // A batch key under a folder that is no job id starts nothing: said where the operator looks.
        if (outcome.kind === 'ignored' && outcome.reason) log.warn('s3 event ignored', fields);
        else log.info('s3 event handled', fields);
        outcomes.push(outcome);
      } catch (e) {
        const key = record.s3?.object?.key ?? '?';
        log.error('s3 event failed', { key, ...describeError(e) });
        failures.push({ key, error: e });
      }
    }
    if (failures.length) throw new S3EventRecordsFailedError(failures);
    return outcomes;
  };
}

// ---------------------------------------------------------------------------------------------------------
// Composition root of the Lambda.

async function fromEnvironment(
  config: MaasConfig,
): Promise<(event: S3Event, context?: TimeBudget) => Promise<S3RecordOutcome[]>> {
  const [{ eventFlowsFromConfig }, { OrtModelInspector }, { eventsFromConfig }] = await Promise.all([
    import('./event-deps'),
    import('../adapters/ort-inspector'),
    import('./event-aws'),
  ]);
  return createS3EventsHandler({
    ...eventFlowsFromConfig(config, {
      ...eventsFromConfig(config),
      inspector: new OrtModelInspector(),
      logger: functionLogger,
    }),
    logger: functionLogger,
  });
}

const notConfigured = async (): Promise<never> => {
  throw new Error(`${ENV.table} is not set`);
};

const env = new EnvironmentVariables();

/** The Lambda entry point (built at INIT from the environment). */
export const handler: (event: S3Event, context?: TimeBudget) => Promise<S3RecordOutcome[]> = env.hasTable()
  ? await fromEnvironment(env.config())
  : notConfigured;

/**
 * The rollout use cases' dependencies in AWS, from the configuration: the registry and rollout repositories on the
 * registry table, CloudWatch alarm states (the controller) or none (the worker, which only counts comparisons), and
 * the registry events when an event bus is configured.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { cloudWatchClient, dynamoDocumentClient } from '../adapters/aws-clients';
import { CloudWatchAlarmStates } from '../adapters/cloudwatch-alarms';
import { DynamoRegistryRepository } from '../adapters/dynamodb-registry';
import { DynamoRolloutRepository } from '../adapters/dynamodb-rollouts';
import { type RolloutDeps, recordComparison } from '../app/rollout';
import type { MaasConfig } from '../config/environment';
import type { ShadowComparison } from '../domain/divergence';
import type { Logger } from '../ports/logger';
import type { AlarmStates } from '../ports/rollouts';
import { eventsFromConfig } from './event-aws';

/** No alarm is in ALARM (for callers that read none). */
export const NO_ALARMS: AlarmStates = { inAlarm: async () => [] };

export interface RolloutDepsOptions {
  /** Read the alarms from CloudWatch (the controller). @default false: no alarm is in ALARM */
  readonly cloudWatch?: boolean;
  /** @default a document client from the environment */
  readonly doc?: DynamoDBDocumentClient;
  readonly logger?: Pick<Logger, 'warn'>;
}

/** The rollout use cases' dependencies over the registry table of `config`. */
export function rolloutDepsFromConfig(
  config: Pick<MaasConfig, 'table' | 'eventBus'>,
  opts: RolloutDepsOptions = {},
): RolloutDeps {
  const doc = opts.doc ?? dynamoDocumentClient();
  return {
    repo: new DynamoRegistryRepository({ doc, table: config.table }),
    rollouts: new DynamoRolloutRepository({ doc, table: config.table }),
    alarms: opts.cloudWatch ? new CloudWatchAlarmStates(cloudWatchClient()) : NO_ALARMS,
    ...eventsFromConfig(config),
    ...(opts.logger ? { logger: opts.logger } : {}),
  };
}

/**
 * The worker's `onComparison`: counts each shadow comparison into the active rollout of its alias (and rolls it back
 * at once when the counts break its bounds). A comparison that carries `at` (when the request was answered) counts
 * only into a rollout started by then.
 */
export function comparisonRecorder(deps: RolloutDeps): (c: ShadowComparison) => Promise<void> {
  return async (c) => {
    await recordComparison(deps, c);
  };
}

/** The AWS side of the work queue and the registry events, from the configuration (Lambda composition roots). */
import { eventBridgeClient, sqsClient } from '../adapters/aws-clients';
import { EventBridgePublisher } from '../adapters/eventbridge-publisher';
import { SqsQueuePublisher } from '../adapters/sqs-queue';
import type { MaasConfig } from '../config/environment';
import { ENV } from '../contract/env';
import type { QueuePublisher } from '../ports/events';
import type { EventPublisher } from '../ports/index';

export function queueFromConfig(config: Pick<MaasConfig, 'queueUrl'>): QueuePublisher {
  if (!config.queueUrl) throw new Error(`${ENV.queueUrl} is not set`);
  return new SqsQueuePublisher(sqsClient(), config.queueUrl);
}

/** The batch queue (parts and aggregations of batch jobs), or undefined where none is configured. */
export function batchQueueFromConfig(config: Pick<MaasConfig, 'batchQueueUrl'>): QueuePublisher | undefined {
  return config.batchQueueUrl ? new SqsQueuePublisher(sqsClient(), config.batchQueueUrl) : undefined;
}

/** `{ events }` when an event bus is configured, else nothing (events are then not published). */
export function eventsFromConfig(config: Pick<MaasConfig, 'eventBus'>): { events?: EventPublisher } {
  return config.eventBus ? { events: new EventBridgePublisher(eventBridgeClient(), config.eventBus) } : {};
}

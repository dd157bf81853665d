/**
 * EventPublisher over Amazon EventBridge: each registry event is one PutEvents entry with source `maas`,
 * detail-type = the event type and the event's detail as JSON.
 */
import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { EVENT_BUS } from '../contract/events';
import type { EventPublisher, RegistryEvent } from '../ports/index';

export class EventPublishError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EventPublishError';
  }
}

export class EventBridgePublisher implements EventPublisher {
  constructor(
    private readonly client: Pick<EventBridgeClient, 'send'>,
    readonly eventBusName: string,
  ) {}

  async publish(event: RegistryEvent): Promise<void> {
    const out = await this.client.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: this.eventBusName,
            Source: EVENT_BUS.source,
            DetailType: event.type,
            Detail: JSON.stringify(event.detail),
          },
        ],
      }),
    );
    if (out.FailedEntryCount) {
      const entry = out.Entries?.[0];
      throw new EventPublishError(
        `EventBridge rejected ${event.type}: ${entry?.ErrorCode ?? 'unknown'} ${entry?.ErrorMessage ?? ''}`.trim(),
      );
    }
  }
}

/** The EventBridge and SQS adapters over injected fake clients (no emulator exists for either here). */
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { SendMessageCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { EventBridgePublisher, EventPublishError } from '../../functions/adapters/eventbridge-publisher';
import { SqsQueuePublisher } from '../../functions/adapters/sqs-queue';

const ID = '0b7a6f64-1f7e-4c39-9d0f-2f1c8f1e2a3b';

describe('EventBridgePublisher', () => {
  it('sends one PutEvents entry: source maas, detail-type = event type, detail as JSON, on its bus', async () => {
    const sent: PutEventsCommand[] = [];
    const client = {
      send: async (cmd: PutEventsCommand) => {
        sent.push(cmd);
        return { FailedEntryCount: 0, Entries: [{ EventId: '1' }] };
      },
    };
    const publisher = new EventBridgePublisher(client as never, 'maas-bus');
    await publisher.publish({
      type: 'AliasMoved',
      detail: { name: 'iris', alias: 'prod', version: 3, previousVersion: 2 },
    });
    expect(sent).toHaveLength(1);
    expect(sent[0]).toBeInstanceOf(PutEventsCommand);
    expect(sent[0]?.input.Entries).toEqual([
      {
        EventBusName: 'maas-bus',
        Source: 'maas',
        DetailType: 'AliasMoved',
        Detail: JSON.stringify({ name: 'iris', alias: 'prod', version: 3, previousVersion: 2 }),
      },
    ]);
  });

  it('throws when EventBridge rejects the entry', async () => {
    const client = {
      send: async () => ({
        FailedEntryCount: 1,
        Entries: [{ ErrorCode: 'AccessDenied', ErrorMessage: 'no' }],
      }),
    };
    const publisher = new EventBridgePublisher(client as never, 'maas-bus');
    await expect(
      publisher.publish({ type: 'ModelVersionFailed', detail: { name: 'x', version: 1, reason: 'bad' } }),
    ).rejects.toThrow(EventPublishError);
  });
});

describe('SqsQueuePublisher', () => {
  it('sends the work message as JSON to its queue and returns the message id', async () => {
    const sent: SendMessageCommand[] = [];
    const client = {
      send: async (cmd: SendMessageCommand) => {
        sent.push(cmd);
        return { MessageId: 'm-1' };
      },
    };
    const queue = new SqsQueuePublisher(client as never, 'https://sqs.local/q');
    expect(await queue.send({ type: 'async-infer', requestId: ID })).toBe('m-1');
    expect(sent[0]?.input).toEqual({
      QueueUrl: 'https://sqs.local/q',
      MessageBody: JSON.stringify({ type: 'async-infer', requestId: ID }),
    });
  });
});

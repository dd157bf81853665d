/** The work queue over Amazon SQS. */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { WorkMessage } from '../domain/async';
import type { QueuePublisher } from '../ports/events';

export class SqsQueuePublisher implements QueuePublisher {
  constructor(
    private readonly sqs: Pick<SQSClient, 'send'>,
    readonly queueUrl: string,
  ) {}

  async send(message: WorkMessage): Promise<string> {
    const out = await this.sqs.send(
      new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: JSON.stringify(message) }),
    );
    if (!out.MessageId) throw new Error('SQS accepted the message without a message id');
    return out.MessageId;
  }
}

/** SQS events as Lambda hands them to a queue's function, for the handlers' tests. */
import type { SQSEvent } from 'aws-lambda';

/** One message of a test event: its id (also its receipt handle), body and receive count (default 1). */
export interface TestSqsMessage {
  readonly id: string;
  readonly body: string;
  readonly receiveCount?: number;
}

/** A queue's ARN, as the events of `sqsEvent` carry it by default. */
export const TEST_QUEUE_ARN = 'arn:aws:sqs:us-east-1:1:q';

/** An SQS event delivering `messages` from one queue (`source`, its ARN), in order. */
export function sqsEvent(messages: readonly TestSqsMessage[], source = TEST_QUEUE_ARN): SQSEvent {
  return {
    Records: messages.map((b) => ({
      messageId: b.id,
      receiptHandle: b.id,
      body: b.body,
      attributes: {
        ApproximateReceiveCount: String(b.receiveCount ?? 1),
        SentTimestamp: '0',
        SenderId: 'x',
        ApproximateFirstReceiveTimestamp: '0',
      },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: source,
      awsRegion: 'us-east-1',
    })),
  };
}

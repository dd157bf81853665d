/**
 * The `ShadowMirror` port on the work queue: a mirrored request becomes one `shadow` work message, which the
 * worker runs on the shadow version and compares (functions/app/shadow.ts).
 *
 * - `QueueShadowMirror`: over any `QueuePublisher` (the in-process queue locally, `SqsQueuePublisher` elsewhere).
 * - `SqsShadowMirror`: the predict function's, SQS `SendMessage` signed and sent by `AwsHttpClient` (aws-http.ts),
 *   without the generated SQS client, which would cost the predict bundle its size and its cold start.
 *
 * Both refuse (reject) a message whose JSON exceeds `SHADOW.maxMessageBytes` (SQS's limit) without sending it;
 * the observer counts it as a `ShadowMirrorErrors`. The message's JSON is its small envelope and its two texts
 * (request and answer, as sent and answered) embedded as JSON strings: nothing is parsed. In Lambda the send runs after the handler returned its answer: a
 * sandbox frozen meanwhile finishes it on its next invocation, or not at all. Mirroring is best effort by design.
 */
import { SHADOW } from '../contract/observability';
import type { ShadowMirrorMessage } from '../domain/async';
import type { QueuePublisher, ShadowMirror } from '../ports/events';
import { AwsHttpClient, type AwsHttpOptions, readBody } from './aws-http';

/** A mirror message over `SHADOW.maxMessageBytes`: not sent. */
export class ShadowMessageTooLargeError extends Error {
  /** The message's bytes (at least these many, when it was refused before it was made). */
  constructor(readonly bytes: number) {
    super(
      `the shadow message is ${bytes} bytes or more, over the queue's limit of ${SHADOW.maxMessageBytes}`,
    );
    this.name = 'ShadowMessageTooLargeError';
  }
}

/**
 * The message's JSON, refused (ShadowMessageTooLargeError) when it exceeds `maxBytes`: refused before anything is
 * built when its texts alone are longer (a UTF-16 unit is at least one UTF-8 byte), else made by concatenation (the
 * envelope's JSON and the texts as JSON strings) and its bytes counted when they could matter.
 */
export function shadowMessageBody(m: ShadowMirrorMessage, maxBytes: number = SHADOW.maxMessageBytes): string {
  const { requestText, answerText, ...envelope } = m;
  if (requestText.length + answerText.length > maxBytes) {
    throw new ShadowMessageTooLargeError(requestText.length + answerText.length);
  }
  const head = JSON.stringify(envelope);
  const body = `${head.slice(0, -1)},"requestText":${JSON.stringify(requestText)},"answerText":${JSON.stringify(answerText)}}`;
  // UTF-16 units bound the UTF-8 bytes from below (and by three from above): count only when it could matter.
  if (body.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(body, 'utf8');
    if (bytes > maxBytes) throw new ShadowMessageTooLargeError(bytes);
  }
  return body;
}

/** Mirrors onto the work queue through its publisher. */
export class QueueShadowMirror implements ShadowMirror {
  constructor(
    private readonly queue: QueuePublisher,
    private readonly maxBytes: number = SHADOW.maxMessageBytes,
  ) {}

  async mirror(message: ShadowMirrorMessage): Promise<void> {
    shadowMessageBody(message, this.maxBytes);
    await this.queue.send(message);
  }
}

export interface SqsShadowMirrorOptions extends Omit<AwsHttpOptions, 'service' | 'endpoint'> {
  /** The work queue's URL (`MAAS_QUEUE_URL`); its origin is the endpoint the messages go to. */
  readonly queueUrl: string;
  /** A client to use instead of one built from the other options. */
  readonly client?: Pick<AwsHttpClient, 'send'>;
}

/** Mirrors onto the SQS work queue with signed `SendMessage` calls (SQS's JSON protocol). */
export class SqsShadowMirror implements ShadowMirror {
  private readonly client: Pick<AwsHttpClient, 'send'>;
  private readonly queueUrl: string;

  constructor(o: SqsShadowMirrorOptions) {
    this.queueUrl = o.queueUrl;
    // AwsHttpClient signs for any service; the endpoint is the queue URL's, so no derivation applies.
    this.client =
      o.client ??
      new AwsHttpClient({
        maxAttempts: 2,
        ...o,
        service: 'sqs',
        endpoint: new URL(o.queueUrl).origin,
      });
  }

  async mirror(message: ShadowMirrorMessage): Promise<void> {
    const body = JSON.stringify({ QueueUrl: this.queueUrl, MessageBody: shadowMessageBody(message) });
    await this.client.send(
      {
        method: 'POST',
        path: '/',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': 'AmazonSQS.SendMessage',
        },
        body,
      },
      async (response) => {
        await readBody(response);
      },
    );
  }
}

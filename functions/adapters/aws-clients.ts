/**
 * AWS SDK v3 clients built once per process. Endpoints come from the standard
 * AWS_ENDPOINT_URL[_DYNAMODB|_S3|...] variables (honoured by the SDK itself), so the same code talks to
 * AWS, DynamoDB Local/s3rver or LocalStack. Checksums are only computed when an API requires them:
 * S3-compatible servers mishandle streamed aws-chunked uploads.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export interface ClientOptions {
  readonly region?: string;
  /** Overrides the endpoint (tests and the local server pass the emulator's URL). */
  readonly endpoint?: string;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
}

const region = (o: ClientOptions) =>
  o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';

export function dynamoDocumentClient(o: ClientOptions = {}): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    region: region(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    maxAttempts: 3,
  });
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
}

export function s3Client(o: ClientOptions = {}): S3Client {
  const endpoint = o.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  return new S3Client({
    region: region(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    // Emulators (s3rver, LocalStack) serve buckets by path, not by virtual host.
    forcePathStyle: endpoint !== undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export function sqsClient(o: ClientOptions = {}): SQSClient {
  return new SQSClient({
    region: region(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
  });
}

export function eventBridgeClient(o: ClientOptions = {}): EventBridgeClient {
  return new EventBridgeClient({
    region: region(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
  });
}

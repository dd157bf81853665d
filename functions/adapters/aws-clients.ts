/**
 * AWS SDK v3 clients built once per process. Endpoints come from the standard
 * AWS_ENDPOINT_URL[_DYNAMODB|_S3|...] variables (honoured by the SDK itself), so the same code talks to
 * AWS, DynamoDB Local/s3rver or LocalStack. The region follows the config module's one rule, and S3 is addressed
 * by path when an endpoint is configured. Checksums are only computed when an API requires them:
 * S3-compatible servers mishandle streamed aws-chunked uploads.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { EnvironmentVariables, type EnvRecord } from '../config/environment';

export interface ClientOptions {
  /** @default the region of `env` (the config module's rule: AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1) */
  readonly region?: string;
  /** Overrides the endpoint (tests and the local server pass the emulator's URL). */
  readonly endpoint?: string;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** The environment whose region and configured endpoints apply where these options say nothing. @default the process environment */
  readonly env?: EnvRecord;
}

const region = (o: ClientOptions) => o.region ?? new EnvironmentVariables(o.env).region();

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
  const endpoint = o.endpoint ?? new EnvironmentVariables(o.env).configuredEndpoint('s3');
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

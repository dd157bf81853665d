/**
 * A fresh table and bucket on the suite's emulators for one test file, built from the contract.
 */
import { randomUUID } from 'node:crypto';
import { DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { inject } from 'vitest';
import { dynamoDocumentClient, s3Client } from '../../functions/adapters/aws-clients';
import { LOCAL_CREDENTIALS, LOCAL_REGION, localClientOptions } from '../../functions/local/emulators';
import { ensureBucket, ensureTable } from '../../functions/local/provision';

export interface TestAwsEnv {
  readonly dynamoEndpoint: string;
  readonly s3Endpoint: string;
  readonly table: string;
  readonly bucket: string;
  readonly doc: DynamoDBDocumentClient;
  readonly s3: S3Client;
  /** Environment variables a child process needs to reach the same table and bucket. */
  readonly childEnv: Record<string, string>;
  dispose(): Promise<void>;
}

const PROVISIONING_BUDGET_MS = 60_000;

export async function createTestAwsEnv(prefix = 'maas'): Promise<TestAwsEnv> {
  const dynamoEndpoint = inject('dynamoEndpoint');
  const s3Endpoint = inject('s3Endpoint');
  if (!dynamoEndpoint || !s3Endpoint)
    throw new Error('emulators are not running: globalSetup did not provide them');
  const id = randomUUID().slice(0, 8);
  const table = `${prefix}-${id}`;
  const bucket = `${prefix}-${id}`.toLowerCase();
  const doc = dynamoDocumentClient(localClientOptions(dynamoEndpoint));
  const s3 = s3Client(localClientOptions(s3Endpoint));
  // Provisioning on emulators that every test file shares: on a loaded machine a CreateTable can take longer than
  // a request's budget (deadline.ts), and it is not what the tests measure, so it gets a budget of its own.
  const provisioning = { ...localClientOptions(dynamoEndpoint), deadlineMs: () => PROVISIONING_BUDGET_MS };
  await Promise.all([
    ensureTable(dynamoDocumentClient(provisioning), table),
    ensureBucket(
      s3Client({ ...localClientOptions(s3Endpoint), deadlineMs: () => PROVISIONING_BUDGET_MS }),
      bucket,
    ),
  ]);
  return {
    dynamoEndpoint,
    s3Endpoint,
    table,
    bucket,
    doc,
    s3,
    childEnv: {
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
      AWS_ENDPOINT_URL_S3: s3Endpoint,
      MAAS_TABLE: table,
      MAAS_BUCKET: bucket,
    },
    async dispose() {
      await (doc as unknown as DynamoDBClient)
        .send(new DeleteTableCommand({ TableName: table }))
        .catch(() => {});
    },
  };
}

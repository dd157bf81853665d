/**
 * Starts one DynamoDB Local and one s3rver for the whole run (each test file then creates its own
 * table and bucket from the contract, see ./aws-env.ts) and stops them at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startDynamoDbLocal, startS3rver } from '../../functions/local/emulators';

declare module 'vitest' {
  export interface ProvidedContext {
    dynamoEndpoint: string;
    s3Endpoint: string;
  }
}

export default async function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), 'maas-test-'));
  const [dynamo, s3] = await Promise.all([startDynamoDbLocal(), startS3rver({ directory: join(dir, 's3') })]);
  project.provide('dynamoEndpoint', dynamo.endpoint);
  project.provide('s3Endpoint', s3.endpoint);
  return async () => {
    await Promise.all([dynamo.stop(), s3.stop()]);
    rmSync(dir, { recursive: true, force: true });
  };
}

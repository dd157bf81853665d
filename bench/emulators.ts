/**
 * The emulators a benchmark runs against: DynamoDB Local and s3rver in `work`, a table and a bucket of `name`
 * provisioned from the contract, the SDK clients over them, and `stop()` (which also removes `work`).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dynamoDocumentClient, s3Client } from '../functions/adapters/aws-clients';
import { localClientOptions, startDynamoDbLocal, startS3rver } from '../functions/local/emulators';
import { ensureBucket, ensureTable } from '../functions/local/provision';

export async function startBenchEmulators(work: string, name: string, progress: (msg: string) => void) {
  mkdirSync(work, { recursive: true });
  progress('bench: starting DynamoDB Local and s3rver');
  const [dynamo, s3rver] = await Promise.all([
    startDynamoDbLocal(),
    startS3rver({ directory: join(work, 's3'), buckets: [name] }),
  ]);
  const stop = async () => {
    await Promise.all([dynamo.stop(), s3rver.stop()]);
    rmSync(work, { recursive: true, force: true });
  };
  try {
    const doc = dynamoDocumentClient(localClientOptions(dynamo.endpoint));
    const s3 = s3Client(localClientOptions(s3rver.endpoint));
    await Promise.all([ensureTable(doc, name), ensureBucket(s3, name)]);
    return { dynamo, s3rver, doc, s3, table: name, bucket: name, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

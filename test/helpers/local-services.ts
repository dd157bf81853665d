/** The local service's handlers over a test's own table and bucket (functions/local/compose.ts), as `maas dev` wires them. */
import { composeLocal, type LocalResources, type LocalServices } from '../../functions/local/compose';
import type { TestAwsEnv } from './aws-env';

export function composeTestServices(
  aws: TestAwsEnv,
  extra: Partial<Omit<LocalResources, 'doc' | 's3' | 'endpoints' | 'table' | 'bucket'>> = {},
): LocalServices {
  return composeLocal({
    doc: aws.doc,
    s3: aws.s3,
    endpoints: { dynamodb: aws.dynamoEndpoint, s3: aws.s3Endpoint },
    table: aws.table,
    bucket: aws.bucket,
    log: () => {},
    ...extra,
  });
}

/**
 * ModelStore: the S3 bucket of model artifacts and event files (its layout: docs/ARCHITECTURE.md, "Data:
 * table keys and S3 layout"), with prefix-scoped grants.
 */
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { S3_KEYS } from '../../functions/contract/env';
import { ASYNC_RESULT_RETENTION_DAYS } from '../../functions/contract/events';

/** The key prefixes of the bucket (docs/ARCHITECTURE.md, "Data: table keys and S3 layout"), without trailing slash. */
export type StorePrefix = 'models' | 'uploads' | 'incoming' | 'batch' | 'async';

const PREFIX: Record<StorePrefix, string> = {
  models: 'models/',
  uploads: S3_KEYS.uploadsPrefix,
  incoming: S3_KEYS.incomingPrefix,
  batch: S3_KEYS.batchPrefix,
  async: S3_KEYS.asyncPrefix,
};

/** Props of {@link ModelStore}. */
export interface ModelStoreProps {
  /**
   * What happens to the bucket (and its access-log bucket) when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /** Unregistered uploads (`uploads/`) are deleted after this many days. @default 1 */
  readonly uploadExpirationDays?: number;
  /** Async inference results (`async/`) are deleted after this many days. @default ASYNC_RESULT_RETENTION_DAYS (7) */
  readonly asyncResultExpirationDays?: number;
  /** Overwritten or deleted object versions are kept this many days. @default 30 */
  readonly noncurrentVersionExpirationDays?: number;
  /** Origins allowed to PUT artifacts with a presigned URL from a browser. @default ['*'] */
  readonly corsAllowedOrigins?: readonly string[];
  /** Server access logs go to a separate bucket under this prefix. @default 'model-store/' */
  readonly accessLogsPrefix?: string;
}

/**
 * Versioned bucket, SSE-S3 encryption (S3-managed keys, so presigned PUTs need no KMS grant), all public
 * access blocked, TLS enforced by bucket policy, server access logs to a dedicated bucket, lifecycle rules
 * that expire `uploads/` and `async/`, CORS for presigned PUT uploads.
 */
export class ModelStore extends Construct {
  /** The model store bucket. */
  readonly bucket: s3.Bucket;
  /** Receives the server access logs of {@link bucket}. */
  readonly accessLogsBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ModelStoreProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
    });
    Validations.of(this.accessLogsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'This bucket is the destination of the model store server access logs; logging it into itself would loop.',
    });

    this.bucket = new s3.Bucket(this, 'Bucket', {
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: props.accessLogsPrefix ?? 'model-store/',
      removalPolicy,
      cors: [
        {
          allowedMethods: [s3.HttpMethods.PUT],
          allowedOrigins: [...(props.corsAllowedOrigins ?? ['*'])],
          allowedHeaders: ['*'],
          exposedHeaders: ['ETag'],
          maxAge: 3000,
        },
      ],
      lifecycleRules: [
        {
          id: 'expire-uploads',
          prefix: PREFIX.uploads,
          expiration: Duration.days(props.uploadExpirationDays ?? 1),
        },
        {
          id: 'expire-async-results',
          prefix: PREFIX.async,
          expiration: Duration.days(props.asyncResultExpirationDays ?? ASYNC_RESULT_RETENTION_DAYS),
        },
        {
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: Duration.days(props.noncurrentVersionExpirationDays ?? 30),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
    });
  }

  /** `arn:…:s3:::<bucket>/<prefix>/*`. */
  objectsArn(prefix: StorePrefix): string {
    return this.bucket.arnForObjects(`${PREFIX[prefix]}*`);
  }

  /** s3:GetObject on the objects under the given prefixes. */
  grantReadPrefixes(grantee: iam.IGrantable, ...prefixes: StorePrefix[]): iam.Grant {
    return this.grantOnPrefixes(grantee, ['s3:GetObject'], prefixes);
  }

  /** s3:PutObject on the objects under the given prefixes (also what a presigned PUT URL needs). */
  grantWritePrefixes(grantee: iam.IGrantable, ...prefixes: StorePrefix[]): iam.Grant {
    return this.grantOnPrefixes(grantee, ['s3:PutObject'], prefixes);
  }

  /** s3:DeleteObject on the objects under the given prefixes. */
  grantDeletePrefixes(grantee: iam.IGrantable, ...prefixes: StorePrefix[]): iam.Grant {
    return this.grantOnPrefixes(grantee, ['s3:DeleteObject'], prefixes);
  }

  /**
   * s3:ListBucket on the bucket itself: without it S3 answers 403 instead of 404 for a missing key, and
   * the registry must tell an unknown upload from a denied one.
   */
  grantList(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket'],
      resourceArns: [this.bucket.bucketArn],
    });
  }

  private grantOnPrefixes(grantee: iam.IGrantable, actions: string[], prefixes: StorePrefix[]): iam.Grant {
    if (prefixes.length === 0) throw new Error('grant on the model store needs at least one prefix');
    const principal = grantee.grantPrincipal;
    if (Construct.isConstruct(principal)) {
      // A key prefix cannot be granted without a trailing `*`; acknowledge exactly these prefix resources.
      const logicalId = Stack.of(this).resolve((this.bucket.node.defaultChild as s3.CfnBucket).logicalId);
      for (const p of prefixes) {
        Validations.of(principal).acknowledge({
          id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>/${PREFIX[p]}*]`,
          reason: `Object keys under ${PREFIX[p]} are chosen at run time (content hashes, upload ids, user file names); the grant is limited to that one prefix of the model store bucket (${actions.join(', ')}).`,
        });
      }
    }
    return iam.Grant.addToPrincipal({
      grantee,
      actions,
      resourceArns: prefixes.map((p) => this.objectsArn(p)),
    });
  }
}

/**
 * ModelStore: the S3 bucket of model artifacts and event files (its layout: docs/ARCHITECTURE.md, "Data:
 * table keys and S3 layout"), with prefix-scoped grants.
 */
import { Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { S3_KEYS } from '../../functions/contract/env';
import { ASYNC_RESULT_RETENTION_DAYS } from '../../functions/contract/events';
import { CAPTURE_KEYS } from '../../functions/contract/observability';
import { quoted } from '../../functions/domain/names';
import { checkDataRemovalPolicy, MaasValidationError, type Setting } from './validation';

/** The key prefixes of the bucket (docs/ARCHITECTURE.md, "Data: table keys and S3 layout"), without trailing slash. */
export type StorePrefix =
  | 'models'
  | 'uploads'
  | 'incoming'
  | 'batch'
  | 'async'
  | 'capture'
  | 'captureErrors'
  | 'feedback';

/**
 * Where the capture delivery stream writes the records it could not process or deliver (Firehose's error output),
 * beside `capture/` so that a reader of `capture/` never meets them.
 */
export const CAPTURE_ERRORS_PREFIX = 'capture-errors/';

const PREFIX: Record<StorePrefix, string> = {
  models: 'models/',
  uploads: S3_KEYS.uploadsPrefix,
  incoming: S3_KEYS.incomingPrefix,
  batch: S3_KEYS.batchPrefix,
  async: S3_KEYS.asyncPrefix,
  capture: CAPTURE_KEYS.capturePrefix,
  captureErrors: CAPTURE_ERRORS_PREFIX,
  feedback: CAPTURE_KEYS.feedbackPrefix,
};

/** Props of {@link ModelStore}. */
export interface ModelStoreProps {
  /**
   * What happens to the bucket when the stack is deleted: RETAIN, RETAIN_ON_UPDATE_OR_DELETE or DESTROY (SNAPSHOT
   * is refused at synth: a bucket has no snapshot). With `DESTROY` its objects (every version) are deleted first, by
   * CDK's auto-delete custom resource, so that the bucket can go. The access-log bucket is always retained: S3
   * delivers access logs late, so it could not be emptied reliably before its deletion.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /** Unregistered uploads (`uploads/`) are deleted after this many days. @default 1 */
  readonly uploadExpirationDays?: number;
  /** Async inference results (`async/`) are deleted after this many days. @default ASYNC_RESULT_RETENTION_DAYS (7) */
  readonly asyncResultExpirationDays?: number;
  /** Overwritten or deleted object versions are kept this many days. @default 30 */
  readonly noncurrentVersionExpirationDays?: number;
  /**
   * Origins allowed to PUT artifacts with a presigned URL from a browser (the bucket's CORS rule): each
   * `https://host[:port]` or `http://host[:port]`, at most one `*` wildcard in each (S3's rule), or `*` alone
   * for any origin. Checked at synth (`checkCorsOrigins`). Presigned uploads from the CLI, SDKs or curl need
   * no CORS.
   * @default - no CORS rule: browsers may not PUT cross-origin
   */
  readonly corsOrigins?: readonly string[];
  /** Overwritten or deleted versions of `uploads/` objects are kept this many days. @default 1 */
  readonly uploadNoncurrentVersionExpirationDays?: number;
  /**
   * Overwritten or deleted versions of `batch/` objects are kept this many days: the output segments a job deletes
   * once its output is assembled, the many writes of its `status.json`, replaced inputs and outputs.
   * @default 1
   */
  readonly batchNoncurrentVersionExpirationDays?: number;
  /** Server access logs go to a separate bucket under this prefix. @default 'model-store/' */
  readonly accessLogsPrefix?: string;
}

/**
 * Versioned bucket, SSE-S3 encryption (S3-managed keys, so presigned PUTs need no KMS grant), all public
 * access blocked, TLS enforced by bucket policy, server access logs to a dedicated bucket, lifecycle rules
 * that expire `uploads/` (current and non-current versions), `async/` and the non-current versions of `batch/`,
 * and CORS for presigned PUT uploads
 * from the origins of `corsOrigins` only (none by default). Throws a `MaasValidationError` at synth for an
 * invalid origin.
 */
export class ModelStore extends Construct {
  /** The model store bucket. */
  readonly bucket: s3.Bucket;
  /** Receives the server access logs of {@link bucket}. */
  readonly accessLogsBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ModelStoreProps = {}) {
    super(scope, id);
    const removalPolicy = checkDataRemovalPolicy(props.removalPolicy ?? RemovalPolicy.RETAIN, {
      prop: 'removalPolicy',
      scope: this,
    });
    // A bucket that still holds objects cannot be deleted: with DESTROY, CloudFormation would fail the stack's
    // deletion half-way (the versioned model bucket is never empty). Its objects go first.
    const autoDeleteObjects = removalPolicy === RemovalPolicy.DESTROY;
    const corsOrigins =
      props.corsOrigins === undefined
        ? undefined
        : checkCorsOrigins(props.corsOrigins, { prop: 'corsOrigins', scope: this });
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // Kept whatever the removal policy: S3 delivers access logs late (the emptying of the model bucket is logged
      // too), so the bucket could not be emptied reliably before its deletion, which would then fail.
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
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
      autoDeleteObjects,
      ...(corsOrigins?.length
        ? {
            cors: [
              {
                allowedMethods: [s3.HttpMethods.PUT],
                allowedOrigins: [...corsOrigins],
                allowedHeaders: ['*'],
                exposedHeaders: ['ETag'],
                maxAge: 3000,
              },
            ],
          }
        : {}),
      lifecycleRules: [
        {
          id: 'expire-uploads',
          prefix: PREFIX.uploads,
          expiration: Duration.days(props.uploadExpirationDays ?? 1),
          // The bucket is versioned: an expired or overwritten upload stays as a non-current version; drop it too.
          noncurrentVersionExpiration: Duration.days(props.uploadNoncurrentVersionExpirationDays ?? 1),
        },
        {
          id: 'expire-batch-noncurrent-versions',
          prefix: PREFIX.batch,
          // A deleted segment is a non-current version until this rule removes it (a delete on a versioned bucket
          // only hides the object); then its delete marker, alone, goes too.
          noncurrentVersionExpiration: Duration.days(props.batchNoncurrentVersionExpirationDays ?? 1),
          expiredObjectDeleteMarker: true,
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
   * What a Firehose delivery stream needs to write objects under the given prefixes: s3:PutObject and
   * s3:AbortMultipartUpload there, s3:GetBucketLocation on the bucket, and s3:ListBucket limited to the prefixes.
   */
  grantDeliveryPrefixes(grantee: iam.IGrantable, ...prefixes: StorePrefix[]): iam.Grant[] {
    return [
      this.grantOnPrefixes(grantee, ['s3:PutObject', 's3:AbortMultipartUpload'], prefixes),
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['s3:GetBucketLocation'],
        resourceArns: [this.bucket.bucketArn],
      }),
      this.grantList(grantee, ...prefixes),
    ];
  }

  /**
   * s3:ListBucket on the bucket, unconditioned, for a function that reads keys which may be missing (an artifact,
   * an async result, a batch status) or lists prefixes: S3 answers a GetObject or HeadObject of a missing key with
   * 404 only to a caller allowed s3:ListBucket on the bucket, else with 403, and the functions must tell a missing
   * key from a denied one. That check is made in the object request's context, which carries no `s3:prefix`, so a
   * grant conditioned on `s3:prefix` cannot be relied on there. What it adds: the key names of the bucket, not
   * their contents.
   */
  grantListBucket(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket'],
      resourceArns: [this.bucket.bucketArn],
    });
  }

  /**
   * s3:ListBucket on the bucket, limited to listings of the given key prefixes (condition `s3:prefix` like
   * `<prefix>/*`): for a writer that only lists (a Firehose delivery stream). A function that reads keys which may
   * be missing needs {@link grantListBucket}.
   */
  grantList(grantee: iam.IGrantable, ...prefixes: StorePrefix[]): iam.Grant {
    if (prefixes.length === 0) throw new Error('a list grant on the model store needs at least one prefix');
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket'],
      resourceArns: [this.bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': prefixes.map((p) => `${PREFIX[p]}*`) } },
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

/** One CORS origin S3 accepts: `*`, or `http(s)://host[:port]` with no path and at most one `*`. */
const CORS_ORIGIN = /^(\*|https?:\/\/[^\s/?#]+)$/;

/**
 * Checks the bucket's CORS origins (a prop or `-c corsOrigins=<origin>,...`): at least one, each `*` or
 * `http(s)://host[:port]` without a path, with at most one `*` wildcard (S3's rule). Unresolved tokens pass.
 * Returns the origins; throws a {@link MaasValidationError} naming the setting and the bad origin.
 */
export function checkCorsOrigins(origins: readonly string[], setting: Setting): readonly string[] {
  const name = 'prop' in setting ? `prop ${setting.prop}` : `context parameter -c ${setting.context}`;
  const fix =
    'prop' in setting
      ? `Set ${setting.prop} to a list of origins, e.g. ['https://app.example.com'], or leave it unset for no CORS.`
      : 'Pass comma-separated origins, e.g. -c corsOrigins=https://app.example.com,https://admin.example.com, or leave it unset for no CORS.';
  if (origins.length === 0) {
    throw new MaasValidationError(setting, `invalid ${name}: the list of origins is empty. ${fix}`);
  }
  for (const origin of origins) {
    if (Token.isUnresolved(origin)) continue;
    const wildcards = origin.split('*').length - 1;
    if (!CORS_ORIGIN.test(origin) || wildcards > 1) {
      throw new MaasValidationError(
        setting,
        `invalid ${name} origin '${quoted(origin)}': an origin is http(s)://host[:port] without a path, with at most one '*' wildcard, or '*' alone. ${fix}`,
      );
    }
  }
  return origins;
}

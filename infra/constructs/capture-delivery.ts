/**
 * CaptureDelivery: delivers the capture records the functions write to stdout (one JSON line each, SageMaker Data
 * Capture's shape plus model, version, alias and route: functions/domain/capture.ts) to the model store, under
 * `capture/{model}/{version}/yyyy/MM/dd/HH/` (CAPTURE_KEYS.captureHour).
 *
 * A CloudWatch Logs subscription filter (CAPTURE_LOG_FILTER_PATTERN) on each source function's log group sends
 * the matching lines to a Firehose delivery stream, which decompresses the CloudWatch Logs batches, extracts each
 * log event's message (the record itself), partitions by `.model` and `.version` (inline JQ), appends a newline
 * and writes the objects to the bucket. Nothing on the inference path calls a network API for capture.
 */
import { Duration, RemovalPolicy, Size, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as logs from 'aws-cdk-lib/aws-logs';
import { FirehoseDestination } from 'aws-cdk-lib/aws-logs-destinations';
import { Construct } from 'constructs';
import { CAPTURE_KEYS, CAPTURE_LOG_FILTER_PATTERN } from '../../functions/contract/observability';
import { CAPTURE_ERRORS_PREFIX, type ModelStore } from './model-store';
import { checkCaptureBufferInterval, checkCaptureBufferSize } from './validation';

/** One function whose capture lines are delivered. */
export interface CaptureSource {
  /** Names the subscription filter's construct (`Predict`, `Worker`). */
  readonly id: string;
  /** The function's log group: the explicit one the function logs to (not `/aws/lambda/<name>` by convention). */
  readonly logGroup: logs.ILogGroup;
}

/** Props of {@link CaptureDelivery}. */
export interface CaptureDeliveryProps {
  /** The model store; the delivery stream may only write its `capture/` and `capture-errors/` prefixes. */
  readonly store: ModelStore;
  /** The functions that write capture records (predict, the async worker). */
  readonly sources: readonly CaptureSource[];
  /**
   * How long Firehose buffers records before it writes an object: 60 to 900 whole seconds (dynamic partitioning's
   * range; checked at synth). A record reaches S3 within about this time after its log event.
   * @default Duration.seconds(60)
   */
  readonly bufferInterval?: Duration;
  /**
   * How much Firehose buffers (per partition) before it writes an object: a whole number of MiB from 64 to 128
   * (dynamic partitioning's range; checked at synth).
   * @default 64
   */
  readonly bufferSizeMiB?: number;
  /** Retention of the delivery stream's own error log group. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/** The S3 prefix of capture objects: CAPTURE_KEYS.captureHour's layout, in Firehose's expressions. */
export const CAPTURE_OUTPUT_PREFIX = `${CAPTURE_KEYS.capturePrefix}!{partitionKeyFromQuery:model}/!{partitionKeyFromQuery:version}/!{timestamp:yyyy/MM/dd/HH}/`;

/** Where Firehose writes the records it could not process or deliver, by error type and hour. */
export const CAPTURE_ERROR_OUTPUT_PREFIX = `${CAPTURE_ERRORS_PREFIX}!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/`;

/**
 * The partition keys of a capture record (inline JQ 1.6): its model name and its version number, as text (a
 * partition key is a string).
 */
export const CAPTURE_PARTITION_QUERY = { model: '.model', version: '(.version|tostring)' } as const;

/**
 * The subscription filters, the delivery stream and the two roles of capture delivery. Throws a
 * `MaasValidationError` at synth for a buffer interval or size outside dynamic partitioning's range.
 */
export class CaptureDelivery extends Construct {
  /** The delivery stream (DirectPut, SSE with an AWS-owned key) that writes capture records to the model store. */
  readonly deliveryStream: firehose.DeliveryStream;
  /** Assumed by Firehose: writes `capture/*` and `capture-errors/*` of the bucket, and its own error log group. */
  readonly deliveryRole: iam.Role;
  /** Assumed by CloudWatch Logs: firehose:PutRecord and PutRecordBatch on {@link deliveryStream} only. */
  readonly subscriptionRole: iam.Role;
  /** One subscription filter per source, by the source's id. */
  readonly subscriptionFilters: ReadonlyMap<string, logs.SubscriptionFilter>;
  /** Firehose's own delivery and processing errors. */
  readonly errorLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: CaptureDeliveryProps) {
    super(scope, id);
    const bufferInterval = checkCaptureBufferInterval(props.bufferInterval ?? Duration.seconds(60), {
      prop: 'bufferInterval',
      scope: this,
    });
    const bufferSizeMiB = checkCaptureBufferSize(props.bufferSizeMiB ?? 64, {
      prop: 'bufferSizeMiB',
      scope: this,
    });

    this.errorLogGroup = new logs.LogGroup(this, 'DeliveryErrors', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.deliveryRole = new iam.Role(this, 'DeliveryRole', {
      assumedBy: new iam.ServicePrincipal('firehose.amazonaws.com'),
      description: 'maas capture delivery: writes capture/ and capture-errors/ of the model store',
    });
    // The bucket is SSE-S3 (S3-managed keys): writing needs no KMS permission.
    props.store.grantDeliveryPrefixes(this.deliveryRole, 'capture', 'captureErrors');
    this.errorLogGroup.grantWrite(this.deliveryRole);

    this.deliveryStream = new firehose.DeliveryStream(this, 'Stream', {
      encryption: firehose.StreamEncryption.awsOwnedKey(),
      destination: new firehose.S3Bucket(props.store.bucket, {
        // The S3Bucket destination grants its role read and write on the whole bucket; the immutable view drops
        // that grant, and the role keeps only the prefix-scoped grants above.
        role: this.deliveryRole.withoutPolicyUpdates(),
        loggingConfig: new firehose.EnableLogging(this.errorLogGroup),
        processors: [
          new firehose.DecompressionProcessor(),
          new firehose.CloudWatchLogProcessor({ dataMessageExtraction: true }),
          firehose.MetadataExtractionProcessor.jq16({ ...CAPTURE_PARTITION_QUERY }),
          new firehose.AppendDelimiterToRecordProcessor(),
        ],
        dynamicPartitioning: { enabled: true },
        dataOutputPrefix: CAPTURE_OUTPUT_PREFIX,
        errorOutputPrefix: CAPTURE_ERROR_OUTPUT_PREFIX,
        bufferingInterval: bufferInterval,
        bufferingSize: Size.mebibytes(bufferSizeMiB),
        compression: firehose.Compression.UNCOMPRESSED,
      }),
    });
    // Firehose checks its role when the stream is created: the policy must exist by then.
    this.deliveryStream.node.addDependency(this.deliveryRole);
    // The DeliveryStream construct always adds a stack mapping of Firehose's CIDR blocks per region, for its
    // `connections` (security groups of VPC destinations); an S3 destination never reads it.
    Validations.of(Stack.of(this)).acknowledge({
      id: 'CloudFormation-Validate::W7001',
      reason:
        "Mapping awscdkawskinesisfirehoseCidrBlocks is added by the Firehose DeliveryStream construct for its connections (VPC destinations' security groups); the capture stream delivers to S3 and never references it.",
    });

    this.subscriptionRole = new iam.Role(this, 'SubscriptionRole', {
      assumedBy: new iam.ServicePrincipal('logs.amazonaws.com', {
        conditions: {
          StringLike: { 'aws:SourceArn': Stack.of(this).formatArn({ service: 'logs', resource: '*' }) },
        },
      }),
      description: 'maas capture delivery: CloudWatch Logs puts capture records on the delivery stream',
    });
    this.deliveryStream.grantPutRecords(this.subscriptionRole);

    const filters = new Map<string, logs.SubscriptionFilter>();
    const destination = new FirehoseDestination(this.deliveryStream, { role: this.subscriptionRole });
    for (const source of props.sources) {
      filters.set(
        source.id,
        new logs.SubscriptionFilter(this, `${source.id}Capture`, {
          logGroup: source.logGroup,
          destination,
          filterPattern: logs.FilterPattern.literal(CAPTURE_LOG_FILTER_PATTERN),
          filterName: 'maas-capture',
        }),
      );
    }
    this.subscriptionFilters = filters;
  }
}

/**
 * CaptureDelivery: delivers the capture records the functions write to stdout (one JSON line each, SageMaker Data
 * Capture's shape plus model, version, alias and route: functions/domain/capture.ts) to the model store, under
 * `capture/{model}/{version}/yyyy/MM/dd/HH/` (CAPTURE_KEYS.captureHour).
 *
 * A CloudWatch Logs subscription filter (CAPTURE_LOG_FILTER_PATTERN) on each source function's log group sends
 * the matching lines to a Firehose delivery stream, which decompresses the CloudWatch Logs batches, extracts the
 * log events' messages (the records themselves), splits them into one record per capture line, partitions by
 * `.model` and `.version` (inline JQ), appends a newline and writes `.jsonl` objects to the bucket. Nothing on the
 * inference path calls a network API for capture.
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
  /**
   * How the props are named in error messages: `capture` makes them `capture.bufferInterval`, as the stack's
   * `capture` prop names them.
   * @default - the construct's own names (`bufferInterval`)
   */
  readonly propPath?: string;
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

/** The extension of capture objects: the capture listing (functions/domain/capture-listing.ts) reads `.jsonl` keys. */
export const CAPTURE_FILE_EXTENSION = '.jsonl';

/**
 * The processing chain, in order:
 *
 * 1. Decompression (GZIP): CloudWatch Logs sends each batch gzip-compressed.
 * 2. CloudWatchLogProcessing with message extraction: the batch's `logEvents[].message`s, newline-separated, with
 *    the envelope (owner, logGroup, logStream…) dropped. CloudWatch Logs puts several log events of one log stream
 *    into one Firehose record, so this record may hold several capture lines.
 * 3. RecordDeAggregation (JSON): splits that record into one record per JSON object (JSONL input is supported), so
 *    that the partition keys are taken per capture line. Firehose's guide: "You can apply dynamic partitioning to
 *    aggregated data [...] but this data must first be deaggregated", and deaggregation is applied before data
 *    transformation and partition keys
 *    (https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-multirecord-deaggergation.html). The
 *    guide does not say that decompression plus message extraction already yields one record per log event; on a
 *    record that holds a single line, deaggregation yields that record unchanged. It caps at 500 objects per record.
 * 4. MetadataExtraction (inline JQ 1.6): the `model` and `version` partition keys.
 * 5. AppendDelimiterToRecord: a newline after each record, so that an object is JSON Lines.
 *
 * Checked at synth only (the synthesized template); not yet exercised on a deployed stack.
 */
function captureProcessors(): firehose.IDataProcessor[] {
  return [
    new firehose.DecompressionProcessor(),
    new firehose.CloudWatchLogProcessor({ dataMessageExtraction: true }),
    firehose.RecordDeAggregationProcessor.json(),
    firehose.MetadataExtractionProcessor.jq16({ ...CAPTURE_PARTITION_QUERY }),
    new firehose.AppendDelimiterToRecordProcessor(),
  ];
}

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
    const prop = (name: string) => ({
      prop: props.propPath ? `${props.propPath}.${name}` : name,
      scope: this,
    });
    const bufferInterval = checkCaptureBufferInterval(
      props.bufferInterval ?? Duration.seconds(60),
      prop('bufferInterval'),
    );
    const bufferSizeMiB = checkCaptureBufferSize(props.bufferSizeMiB ?? 64, prop('bufferSizeMiB'));

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
        processors: captureProcessors(),
        dynamicPartitioning: { enabled: true },
        dataOutputPrefix: CAPTURE_OUTPUT_PREFIX,
        // Firehose names objects without an extension unless told.
        fileExtension: CAPTURE_FILE_EXTENSION,
        errorOutputPrefix: CAPTURE_ERROR_OUTPUT_PREFIX,
        bufferingInterval: bufferInterval,
        bufferingSize: Size.mebibytes(bufferSizeMiB),
        compression: firehose.Compression.UNCOMPRESSED,
      }),
    });
    // Firehose checks its role when the stream is created: the policy must exist by then.
    this.deliveryStream.node.addDependency(this.deliveryRole);
    // The DeliveryStream construct always adds a stack mapping of Firehose's CIDR blocks per region, for its
    // `connections` (security groups of VPC destinations); an S3 destination never reads it. The acknowledgement
    // is on the stack because the CloudFormation Validate plugin attributes a mapping's W7001 to the stack itself:
    // acknowledged on the mapping (the stack's child `@aws-cdk/aws-kinesisfirehose.CidrBlocks`) or on the stream,
    // the warning stays (aws-cdk-lib 2.276). test/infra/observability.test.ts checks that this mapping is the
    // template's only unreferenced one, so the acknowledgement hides no other.
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

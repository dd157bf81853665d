/**
 * RegistryTable: the DynamoDB single table of the model registry, schema from the contract (keys and items:
 * docs/ARCHITECTURE.md, "Data: table keys and S3 layout").
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { TABLE } from '../../functions/contract/table';

/** Props of {@link RegistryTable}. */
export interface RegistryTableProps {
  /** What happens to the table (and its data) when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** Refuse deletion of the table while this is on. @default true when removalPolicy is RETAIN */
  readonly deletionProtection?: boolean;
}

const READ_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
];
const WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
];

/**
 * On-demand table with `pk`/`sk` keys and the models GSI from `TABLE`, point-in-time recovery, encryption
 * with the AWS-managed KMS key (`aws/dynamodb`), TTL on `TABLE.ttlAttribute`.
 */
export class RegistryTable extends Construct {
  /** The table. */
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: RegistryTableProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: TABLE.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: TABLE.ttlAttribute,
      deletionProtection: props.deletionProtection ?? removalPolicy === RemovalPolicy.RETAIN,
      removalPolicy,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: TABLE.modelsIndex.name,
      partitionKey: { name: TABLE.modelsIndex.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE.modelsIndex.sortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
  }

  /** The table and its models index, named exactly (no `index/*` wildcard). */
  get resourceArns(): string[] {
    return [this.table.tableArn, `${this.table.tableArn}/index/${TABLE.modelsIndex.name}`];
  }

  /** Reads (GetItem, BatchGetItem, Query, ConditionCheckItem, DescribeTable) on the table and its index. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({ grantee, actions: READ_ACTIONS, resourceArns: this.resourceArns });
  }

  /**
   * Reads plus item writes on the table (PutItem, UpdateItem, DeleteItem, BatchWriteItem; transactions are
   * authorised by these). Items are written to the table, never to the index.
   */
  grantReadWrite(grantee: iam.IGrantable): iam.Grant {
    return this.grantRead(grantee).combine(
      iam.Grant.addToPrincipal({ grantee, actions: WRITE_ACTIONS, resourceArns: [this.table.tableArn] }),
    );
  }
}

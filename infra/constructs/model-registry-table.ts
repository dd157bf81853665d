/**
 * RegistryTable: the DynamoDB single table of the model registry, schema from the contract (keys and items:
 * docs/ARCHITECTURE.md, "Data: table keys and S3 layout").
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { TABLE } from '../../functions/contract/table';
import { checkDataRemovalPolicy } from './validation';

/** Props of {@link RegistryTable}. */
export interface RegistryTableProps {
  /**
   * What happens to the table (and its data) when the stack is deleted: RETAIN, RETAIN_ON_UPDATE_OR_DELETE (kept,
   * but deleted when the stack's creation rolls back) or DESTROY; SNAPSHOT is refused at synth (a table has none).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /** Refuse deletion of the table while this is on. @default true when removalPolicy is RETAIN */
  readonly deletionProtection?: boolean;
}

/**
 * What the predict path reads: single items by key (`GetItem`, signed by functions/adapters/dynamodb-registry-reader.ts:
 * versions, aliases, models and the readiness probe). It never queries, so it has no grant on the index.
 */
export const GET_ITEM_ACTIONS = ['dynamodb:GetItem'] as const;

/**
 * What the code of the functions that own the table issues there: the repositories (functions/adapters/dynamodb-*.ts)
 * get, put, update and delete items and query the table and the models index; their transactions (TransactWriteItems,
 * which has no IAM action of its own) are authorised item by item as PutItem, UpdateItem, DeleteItem and, for a
 * condition check, ConditionCheckItem; Powertools' idempotency records (its DynamoDB persistence layer) are GetItem,
 * PutItem, UpdateItem and DeleteItem. None of them issues BatchGetItem, BatchWriteItem, Scan or DescribeTable.
 */
export const READ_WRITE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:Query',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:ConditionCheckItem',
] as const;

/** What is done on the models index: queries only (lists of models, of active rollouts). */
export const INDEX_ACTIONS = ['dynamodb:Query'] as const;

/**
 * On-demand table with `pk`/`sk` keys and the models GSI from `TABLE`, point-in-time recovery, encryption
 * with the AWS-managed KMS key (`aws/dynamodb`), TTL on `TABLE.ttlAttribute`.
 */
export class RegistryTable extends Construct {
  /** The table. */
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: RegistryTableProps = {}) {
    super(scope, id);
    const removalPolicy = checkDataRemovalPolicy(props.removalPolicy ?? RemovalPolicy.RETAIN, {
      prop: 'removalPolicy',
      scope: this,
    });
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
    return [this.table.tableArn, this.indexArn];
  }

  /** The models index. */
  get indexArn(): string {
    return `${this.table.tableArn}/index/${TABLE.modelsIndex.name}`;
  }

  /** The predict path's reads: {@link GET_ITEM_ACTIONS} (GetItem) on the table only. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...GET_ITEM_ACTIONS],
      resourceArns: [this.table.tableArn],
    });
  }

  /**
   * What the functions that own the table issue: {@link READ_WRITE_ACTIONS} on the table, {@link INDEX_ACTIONS}
   * (Query) on the models index. Items are written to the table, never to the index.
   */
  grantReadWrite(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...READ_WRITE_ACTIONS],
      resourceArns: [this.table.tableArn],
    }).combine(
      iam.Grant.addToPrincipal({ grantee, actions: [...INDEX_ACTIONS], resourceArns: [this.indexArn] }),
    );
  }
}

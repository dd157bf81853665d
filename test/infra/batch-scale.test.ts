/**
 * Batch scoring at scale in the stack: the batch queue and its dead-letter queue, the worker's event source on it
 * (one message per invocation, maximum concurrency from `batchMaxConcurrency`, checked at synth), the batch queue's
 * URL on the functions that start and score jobs, the IAM of ranged reads, multipart copies and the job record's
 * counters, and the S3 notifications that start and cancel jobs (non-overlapping, as S3 requires, and the ones the
 * local S3 hook delivers). Bundling is skipped (Template assertions only).
 */
import { App } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENV, S3_KEYS } from '../../functions/contract/env';
import { BATCH, QUEUE } from '../../functions/contract/events';
import { isS3EventKey } from '../../functions/local/in-process-queue';
import { propsFromContext } from '../../infra/app';
import { BATCH_EVENT_SUFFIXES, checkBatchMaxConcurrency } from '../../infra/constructs/event-pipelines';
import { MaasValidationError } from '../../infra/constructs/validation';
import { MaasStack } from '../../infra/maas-stack';
import {
  buildStack,
  list,
  logicalId,
  NO_BUNDLING,
  type Statement,
  statementsOfRole,
} from '../helpers/infra-stack';

let stack: MaasStack;
const ALERT_TOPIC = 'arn:aws:sns:eu-west-1:123456789012:maas-alerts';
let template: Template;
let defaults: Template;
let defaultStack: MaasStack;

beforeAll(() => {
  ({ stack, template } = buildStack('BatchScale', {
    batchMaxConcurrency: 50,
    eventAlarmActions: [{ bind: () => ({ alarmActionArn: ALERT_TOPIC }) }],
  }));
  ({ stack: defaultStack, template: defaults } = buildStack('BatchDefaults'));
});

const id = (c: { node: { defaultChild?: unknown } }) => logicalId(stack, c);
const statementsOf = (fn: { role?: unknown }) =>
  statementsOfRole(template, id(fn.role as { node: { defaultChild?: unknown } }));
const withAction = (statements: Statement[], action: string) =>
  statements.filter((s) => list(s.Action).includes(action));
const batchObjects = () => ({
  'Fn::Join': ['', [{ 'Fn::GetAtt': [id(stack.store.bucket), 'Arn'] }, `/${S3_KEYS.batchPrefix}*`]],
});

describe('batch queue', () => {
  it('has its own dead-letter queue after maxReceiveCount receives, both encrypted and TLS-only', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: QUEUE.visibilityTimeoutSeconds,
      SqsManagedSseEnabled: true,
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [id(stack.events.batchDeadLetterQueue), 'Arn'] },
        maxReceiveCount: QUEUE.maxReceiveCount,
      },
    });
    const dlq = template.findResources('AWS::SQS::Queue')[id(stack.events.batchDeadLetterQueue)];
    // The worker consumes it too (it ends the dead letters): the batch queue's visibility timeout.
    expect(dlq?.Properties).toEqual({
      MessageRetentionPeriod: QUEUE.dlqRetentionSeconds,
      SqsManagedSseEnabled: true,
      VisibilityTimeout: QUEUE.visibilityTimeoutSeconds,
    });
    for (const queue of [stack.events.batchQueue, stack.events.batchDeadLetterQueue]) {
      const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy')).filter(
        (p) => JSON.stringify(p.Properties.Queues) === JSON.stringify([{ Ref: id(queue) }]),
      );
      expect(policies).toHaveLength(1);
      expect(policies[0]?.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Action: 'sqs:*',
          Principal: { AWS: '*' },
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
    // The work queue keeps its own dead-letter queue: a poison part never mixes with failed async requests.
    expect(id(stack.events.batchDeadLetterQueue)).not.toBe(id(stack.events.deadLetterQueue));
  });

  it('feeds the worker one message per invocation, at most batchMaxConcurrency invocations at once', () => {
    const mappings = Object.values(template.findResources('AWS::Lambda::EventSourceMapping')).map(
      (m) => m.Properties as Record<string, unknown>,
    );
    const onBatch = mappings.filter(
      (m) =>
        JSON.stringify(m.EventSourceArn) ===
        JSON.stringify({ 'Fn::GetAtt': [id(stack.events.batchQueue), 'Arn'] }),
    );
    expect(onBatch).toEqual([
      expect.objectContaining({
        FunctionName: { Ref: id(stack.events.workerFunction) },
        BatchSize: 1,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        ScalingConfig: { MaximumConcurrency: 50 },
      }),
    ]);
    // The work queue's mapping is as before: batches of QUEUE.batchSize, no concurrency cap.
    const onWork = mappings.find(
      (m) =>
        JSON.stringify(m.EventSourceArn) ===
        JSON.stringify({ 'Fn::GetAtt': [id(stack.events.queue), 'Arn'] }),
    );
    expect(onWork).toMatchObject({
      BatchSize: QUEUE.batchSize,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    expect(onWork?.ScalingConfig).toBeUndefined();
    expect(stack.events.batchMaxConcurrency).toBe(50);
  });

  it("notifies the stack's eventAlarmActions of dead letters the worker could not end (none by default)", () => {
    const alarms = (t: Template) =>
      Object.values(t.findResources('AWS::CloudWatch::Alarm')) as {
        Properties: { AlarmName: string; AlarmActions?: unknown };
      }[];
    for (const name of ['BatchScale-batch-dead-letters', 'BatchScale-batch-dead-letters-not-ended']) {
      const batchDeadLetters = alarms(template).find((a) => a.Properties.AlarmName === name);
      expect(batchDeadLetters?.Properties.AlarmActions, name).toEqual([ALERT_TOPIC]);
    }
    const quiet = alarms(defaults).filter((a) => a.Properties.AlarmName.startsWith('BatchDefaults-'));
    expect(quiet.map((a) => a.Properties.AlarmName).sort()).toEqual([
      'BatchDefaults-batch-dead-letters',
      'BatchDefaults-batch-dead-letters-not-ended',
      'BatchDefaults-dead-letters',
      'BatchDefaults-dead-letters-not-ended',
      'BatchDefaults-failed-s3-events',
    ]);
    for (const a of quiet) expect(a.Properties.AlarmActions).toBeUndefined();
  });

  it('defaults to BATCH.maxConcurrency workers', () => {
    const batchQueueArn = { 'Fn::GetAtt': [logicalId(defaultStack, defaultStack.events.batchQueue), 'Arn'] };
    defaults.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: batchQueueArn,
      BatchSize: 1,
      ScalingConfig: { MaximumConcurrency: BATCH.maxConcurrency },
    });
    expect(defaultStack.events.batchMaxConcurrency).toBe(BATCH.maxConcurrency);
  });

  it('tells the functions that start and score jobs its URL, and lets only them send to it', () => {
    const env = (fn: { node: { defaultChild?: unknown } }) =>
      (
        template.findResources('AWS::Lambda::Function')[id(fn)] as {
          Properties: { Environment: { Variables: Record<string, unknown> } };
        }
      ).Properties.Environment.Variables;
    const batchQueueUrl = { Ref: id(stack.events.batchQueue) };
    expect(env(stack.events.workerFunction)[ENV.batchQueueUrl]).toEqual(batchQueueUrl);
    expect(env(stack.events.s3EventsFunction)[ENV.batchQueueUrl]).toEqual(batchQueueUrl);
    for (const fn of [
      stack.events.asyncApiFunction,
      stack.functions.predict.fn,
      stack.functions.registry.fn,
    ]) {
      expect(env(fn)[ENV.batchQueueUrl]).toBeUndefined();
    }

    const batchQueueArn = { 'Fn::GetAtt': [id(stack.events.batchQueue), 'Arn'] };
    const onBatchQueue = (statements: Statement[]) =>
      new Set(
        statements
          .filter((s) => list(s.Resource).some((r) => JSON.stringify(r) === JSON.stringify(batchQueueArn)))
          .flatMap((s) => list(s.Action)),
      );
    expect(onBatchQueue(statementsOf(stack.events.s3EventsFunction))).toEqual(
      new Set(['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl']),
    );
    const worker = onBatchQueue(statementsOf(stack.events.workerFunction));
    for (const action of ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage'])
      expect(worker).toContain(action);
    for (const fn of [
      stack.events.asyncApiFunction,
      stack.functions.predict.fn,
      stack.functions.registry.fn,
    ]) {
      expect(onBatchQueue(statementsOf(fn))).toEqual(new Set());
    }
  });
});

describe('IAM of batch jobs', () => {
  it('lets the worker read ranges, write segments and the output, copy parts, and abort its multipart upload under batch/ only', () => {
    const worker = statementsOf(stack.events.workerFunction);
    // Ranged reads and UploadPartCopy's source are GetObject; CreateMultipartUpload, UploadPart(Copy) and
    // CompleteMultipartUpload are PutObject.
    for (const action of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']) {
      const resources = withAction(worker, action).flatMap((s) => list(s.Resource));
      expect(resources, action).toContainEqual(batchObjects());
    }
    // Deletion (of the output segments) is granted on batch/ only.
    expect(withAction(worker, 's3:DeleteObject').flatMap((s) => list(s.Resource))).toEqual([batchObjects()]);
    const multipart = worker.filter((s) => list(s.Action).includes('s3:AbortMultipartUpload'));
    expect(multipart).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: 's3:AbortMultipartUpload',
        Resource: batchObjects(),
      }),
    ]);
    // The aggregation keeps its parts' ETags: it never lists them.
    expect(withAction(worker, 's3:ListMultipartUploadParts')).toEqual([]);
    // Listing input/ objects (and 404 for a missing key): ListBucket on the bucket.
    const list_ = withAction(worker, 's3:ListBucket');
    expect(list_).toHaveLength(1);
    expect(list_[0]?.Resource).toEqual({ 'Fn::GetAtt': [id(stack.store.bucket), 'Arn'] });
    expect(list_[0]?.Condition).toBeUndefined();
    // No bucket-wide object grant and no s3:* anywhere.
    for (const s of worker) {
      expect(list(s.Action)).not.toContain('s3:*');
      for (const r of list(s.Resource)) expect(JSON.stringify(r)).not.toMatch(/Arn"\]\},"\/\*"/);
    }
  });

  it('lets the S3 events function start and cancel jobs with ranged reads and writes under batch/, no multipart', () => {
    const s3Events = statementsOf(stack.events.s3EventsFunction);
    for (const action of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']) {
      expect(
        withAction(s3Events, action).flatMap((s) => list(s.Resource)),
        action,
      ).toContainEqual(batchObjects());
    }
    expect(withAction(s3Events, 's3:ListBucket')[0]?.Resource).toEqual({
      'Fn::GetAtt': [id(stack.store.bucket), 'Arn'],
    });
    // The aggregation (the multipart upload) runs on the worker only.
    expect(withAction(s3Events, 's3:AbortMultipartUpload')).toEqual([]);
    expect(withAction(s3Events, 's3:ListMultipartUploadParts')).toEqual([]);
  });

  it('gives the worker and the S3 events function the job record’s conditional counters on the table, nothing wider', () => {
    const tableArn = { 'Fn::GetAtt': [id(stack.registryTable.table), 'Arn'] };
    for (const fn of [stack.events.workerFunction, stack.events.s3EventsFunction]) {
      const dynamo = statementsOf(fn).filter((s) => list(s.Action).some((a) => a.startsWith('dynamodb:')));
      const onTable = (action: string) =>
        dynamo.some(
          (s) =>
            list(s.Action).includes(action) &&
            list(s.Resource).some((r) => JSON.stringify(r) === JSON.stringify(tableArn)),
        );
      // createJob/finish/claims: conditional PutItem and UpdateItem; completePart: TransactWriteItems of a Put and
      // an Update (authorised by those actions); getJob/listParts: GetItem and Query.
      for (const action of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:GetItem', 'dynamodb:Query'])
        expect(onTable(action), action).toBe(true);
      const actions = dynamo.flatMap((s) => list(s.Action));
      expect(actions).not.toContain('dynamodb:*');
      expect(actions).not.toContain('dynamodb:Scan');
      for (const s of dynamo) expect(list(s.Resource)).not.toContain('*');
    }
  });
});

describe('S3 notifications of batch jobs', () => {
  type Rule = { prefix: string; suffix: string; fn: unknown };
  const rules = (): Rule[] => {
    const [notifications] = Object.values(template.findResources('Custom::S3BucketNotifications'));
    const configs = notifications?.Properties.NotificationConfiguration.LambdaFunctionConfigurations as {
      Events: string[];
      Filter: { Key: { FilterRules: { Name: string; Value: string }[] } };
      LambdaFunctionArn: unknown;
    }[];
    return configs.map((c) => {
      expect(c.Events).toEqual(['s3:ObjectCreated:*']);
      const value = (name: string) => c.Filter.Key.FilterRules.find((r) => r.Name === name)?.Value ?? '';
      return { prefix: value('prefix'), suffix: value('suffix'), fn: c.LambdaFunctionArn };
    });
  };

  it('start jobs on input.jsonl and input/_SUCCESS, cancel them on cancel, all through the S3 events function', () => {
    const s3Events = { 'Fn::GetAtt': [id(stack.events.s3EventsFunction), 'Arn'] };
    expect(rules()).toEqual([
      { prefix: 'incoming/', suffix: '.onnx', fn: s3Events },
      { prefix: 'batch/', suffix: '/input.jsonl', fn: s3Events },
      { prefix: 'batch/', suffix: '/input/_SUCCESS', fn: s3Events },
      { prefix: 'batch/', suffix: '/cancel', fn: s3Events },
    ]);
    expect(BATCH_EVENT_SUFFIXES).toEqual(['/input.jsonl', '/input/_SUCCESS', '/cancel']);
  });

  it('do not overlap (S3 refuses two rules of one event type whose prefixes and suffixes both overlap)', () => {
    const all = rules();
    const overlap = (a: string, b: string, f: (x: string, y: string) => boolean) => f(a, b) || f(b, a);
    for (const [i, a] of all.entries()) {
      for (const b of all.slice(i + 1)) {
        const prefixes = overlap(a.prefix, b.prefix, (x, y) => x.startsWith(y));
        const suffixes = overlap(a.suffix, b.suffix, (x, y) => x.endsWith(y));
        expect(prefixes && suffixes, `${a.prefix}*${a.suffix} and ${b.prefix}*${b.suffix}`).toBe(false);
      }
    }
  });

  it('are the keys the local S3 hook delivers', () => {
    const all = rules();
    const notified = (key: string) => all.some((r) => key.startsWith(r.prefix) && key.endsWith(r.suffix));
    const prefixes = { incoming: S3_KEYS.incomingPrefix, batch: S3_KEYS.batchPrefix };
    const keys = [
      'incoming/iris/model.onnx',
      'incoming/iris/notes.txt',
      'batch/j1/input.jsonl',
      'batch/j1/input/_SUCCESS',
      'batch/j1/input/part-0001.jsonl',
      'batch/j1/cancel',
      'batch/j1/job.json',
      'batch/j1/plan.json',
      'batch/j1/status.json',
      'batch/j1/output.jsonl',
      'batch/j1/parts/abc/000001/000000000-000000512.jsonl',
      'batch/j1/_SUCCESS',
      'async/r1/request.json',
      'models/iris/cancel',
    ];
    for (const key of keys) expect(isS3EventKey(key, prefixes), key).toBe(notified(key));
    expect(keys.filter(notified)).toEqual([
      'incoming/iris/model.onnx',
      'batch/j1/input.jsonl',
      'batch/j1/input/_SUCCESS',
      'batch/j1/cancel',
    ]);
  });
});

describe('cdk-nag', () => {
  it('finds nothing unacknowledged on the batch queues or the functions that use them', () => {
    const result = new AwsSolutionsChecks().validateScope(stack);
    const paths = result.violations.flatMap((v) =>
      v.violatingResources
        .map((r) => r.constructPath ?? '')
        .filter((p) => /\/Events\/(Batch|Worker|S3Events)/.test(p))
        .map((p) => `${v.ruleName} ${p}`),
    );
    expect(paths).toEqual([]);
  });
});

describe('batchMaxConcurrency is checked at synth', () => {
  const stackWith = (batchMaxConcurrency: number) => () =>
    new MaasStack(new App({ context: NO_BUNDLING }), 'Bad', { batchMaxConcurrency });

  it('refuses what an SQS event source cannot run, saying what to set', () => {
    expect(stackWith(1)).toThrow(MaasValidationError);
    expect(stackWith(1)).toThrow(
      "Bad/Events: invalid prop batchMaxConcurrency '1': the batch queue's SQS event source runs from 2 to 1000 concurrent worker invocations (a Lambda limit). Set batchMaxConcurrency to a whole number from 2 to 1000, e.g. 10, or leave it unset for 10.",
    );
    for (const bad of [0, -5, 1001, 2.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(stackWith(bad), String(bad)).toThrow(/invalid prop batchMaxConcurrency .*from 2 to 1000/);
    }
    expect(checkBatchMaxConcurrency(2, { context: 'x' })).toBe(2);
    expect(checkBatchMaxConcurrency(1000, { context: 'x' })).toBe(1000);
  });

  it('as a context parameter too', () => {
    const ctx = (value: string) => propsFromContext(new App({ context: { batchMaxConcurrency: value } }));
    expect(ctx('200').batchMaxConcurrency).toBe(200);
    expect(propsFromContext(new App()).batchMaxConcurrency).toBeUndefined();
    expect(() => ctx('many')).toThrow(
      "Invalid context parameter -c batchMaxConcurrency='many': the batch queue's SQS event source runs from 2 to 1000 concurrent worker invocations (a Lambda limit). Pass a whole number from 2 to 1000, e.g. -c batchMaxConcurrency=10, or leave it unset for 10.",
    );
    expect(() => ctx('5000')).toThrow(/-c batchMaxConcurrency='5000'/);
  });
});

/**
 * The in-process work queue keeps SQS + Lambda event source semantics (visibility timeout, partial batch
 * failures, redrive to the DLQ after maxReceiveCount), and the s3rver hook delivers object events as S3 does.
 */
import { EventEmitter } from 'node:events';
import type S3rver from '@20minutes/s3rver';
import type { S3Event, SQSEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import {
  attachS3Events,
  encodeS3EventKey,
  InProcessQueue,
  isS3EventKey,
} from '../../functions/local/in-process-queue';

const ID = '0b7a6f64-1f7e-4c39-9d0f-2f1c8f1e2a3b';

describe('InProcessQueue', () => {
  it('delivers batches as SQS events and deletes what succeeded', async () => {
    const queue = new InProcessQueue({ batchSize: 3, visibilityTimeoutMs: 1 });
    const seen: SQSEvent[] = [];
    for (let i = 0; i < 5; i++) queue.sendRaw(`m${i}`);
    queue.attach(async (event) => {
      seen.push(event);
      return { batchItemFailures: [] };
    });
    await queue.drain();
    expect(seen.map((e) => e.Records.map((r) => r.body))).toEqual([
      ['m0', 'm1', 'm2'],
      ['m3', 'm4'],
    ]);
    const r = seen[0]?.Records[0];
    expect(r).toMatchObject({ eventSource: 'aws:sqs', attributes: { ApproximateReceiveCount: '1' } });
    expect(queue.stats).toMatchObject({ sent: 5, deleted: 5, deadLettered: 0, invocations: 2 });
  });

  it('redelivers only the reported failures, then dead-letters after maxReceiveCount receives', async () => {
    const queue = new InProcessQueue({ maxReceiveCount: 3, visibilityTimeoutMs: 1 });
    const receives = new Map<string, string[]>();
    queue.sendRaw('good');
    const poison = queue.sendRaw('poison');
    queue.sendRaw('flaky');
    queue.attach(async (event) => {
      const failures: string[] = [];
      for (const r of event.Records) {
        receives.set(r.body, [...(receives.get(r.body) ?? []), r.attributes.ApproximateReceiveCount]);
        const count = Number(r.attributes.ApproximateReceiveCount);
        if (r.body === 'poison' || (r.body === 'flaky' && count < 2)) failures.push(r.messageId);
      }
      return { batchItemFailures: failures.map((itemIdentifier) => ({ itemIdentifier })) };
    });
    await queue.drain();
    expect(receives.get('good')).toEqual(['1']);
    expect(receives.get('flaky')).toEqual(['1', '2']);
    expect(receives.get('poison')).toEqual(['1', '2', '3']);
    expect(queue.deadLetters.map((m) => m.messageId)).toEqual([poison]);
    expect(queue.stats).toMatchObject({ sent: 3, deleted: 2, deadLettered: 1 });
    expect(queue.stats.deleted + queue.stats.deadLettered).toBe(queue.stats.sent);
  });

  it('treats a consumer that throws as a failure of the whole batch', async () => {
    const errors: unknown[] = [];
    const queue = new InProcessQueue({
      maxReceiveCount: 2,
      visibilityTimeoutMs: 1,
      onConsumerError: (e) => errors.push(e),
    });
    queue.sendRaw('a');
    queue.sendRaw('b');
    queue.attach(async () => {
      throw new Error('crash');
    });
    await queue.drain();
    expect(queue.deadLetters.map((m) => m.body)).toEqual(['a', 'b']);
    expect(errors).toHaveLength(2);
  });

  it('keeps a failed message invisible for the visibility timeout', async () => {
    // The first delivery's timestamp is taken when the consumer starts, which under load can lag the receive:
    // the bound leaves 100 ms for that, far below the 300 ms the message must stay invisible.
    const queue = new InProcessQueue({ visibilityTimeoutMs: 300 });
    const at: number[] = [];
    queue.sendRaw('x');
    queue.attach(async (event) => {
      at.push(Date.now());
      const failed = at.length === 1 ? event.Records.map((r) => ({ itemIdentifier: r.messageId })) : [];
      return { batchItemFailures: failed };
    });
    await queue.drain();
    expect(at).toHaveLength(2);
    expect((at[1] ?? 0) - (at[0] ?? 0)).toBeGreaterThanOrEqual(200);
  });

  it('gives each invocation a time budget, and publishes work messages as JSON', async () => {
    const queue = new InProcessQueue({ invocationBudgetMs: 1234 });
    let remaining = -1;
    let body = '';
    queue.attach(async (event, context) => {
      remaining = context.getRemainingTimeInMillis();
      body = event.Records[0]?.body ?? '';
      return { batchItemFailures: [] };
    });
    const id = await queue.send({ type: 'async-infer', requestId: ID });
    await queue.drain();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(remaining).toBeGreaterThan(1000);
    expect(remaining).toBeLessThanOrEqual(1234);
    expect(JSON.parse(body)).toEqual({ type: 'async-infer', requestId: ID });
  });

  it('holds messages while no consumer is attached', async () => {
    const queue = new InProcessQueue();
    queue.sendRaw('x');
    await new Promise((r) => setTimeout(r, 10));
    expect(queue.depth).toBe(1);
    expect(queue.stats.receives).toBe(0);
  });

  it('settles: after detach, waits for the invocation in flight (bounded), and starts no other', async () => {
    const queue = new InProcessQueue({ batchSize: 1, visibilityTimeoutMs: 1 });
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    const seen: string[] = [];
    queue.attach(async (event) => {
      seen.push(...event.Records.map((r) => r.body));
      await held;
      return { batchItemFailures: [] };
    });
    expect(await queue.settle(1000)).toBe(true); // nothing runs
    queue.sendRaw('a');
    queue.sendRaw('b');
    await new Promise((r) => setTimeout(r, 10));
    queue.detach();
    expect(queue.inFlight).toBe(1);
    // Still running after the bound: false, and it goes on.
    expect(await queue.settle(20)).toBe(false);
    const settled = queue.settle(5000);
    setTimeout(release, 20);
    expect(await settled).toBe(true);
    expect(seen).toEqual(['a']);
    expect(queue.depth).toBe(1); // 'b' stays queued, undelivered
  });
});

describe('S3 events from s3rver', () => {
  const prefixes = { incoming: 'incoming/', batch: 'batch/' };
  const s3rverEvent = (key: string, eventName = 'ObjectCreated:Put'): S3Event =>
    ({
      Records: [{ eventName, s3: { bucket: { name: 'b' }, object: { key, eTag: 'abc', size: 1 } } }],
    }) as unknown as S3Event;

  it('filters the keys AWS notifies and encodes them as S3 does', () => {
    expect(isS3EventKey('incoming/m/a.onnx', prefixes)).toBe(true);
    expect(isS3EventKey('incoming/m/a.txt', prefixes)).toBe(false);
    expect(isS3EventKey('batch/j/input.jsonl', prefixes)).toBe(true);
    expect(isS3EventKey('batch/j/output.jsonl', prefixes)).toBe(false);
    expect(isS3EventKey('batch/j/input/_SUCCESS', prefixes)).toBe(true);
    expect(isS3EventKey('batch/j/input/a.jsonl', prefixes)).toBe(false);
    expect(isS3EventKey('batch/j/cancel', prefixes)).toBe(true);
    expect(isS3EventKey('models/m/cancel', prefixes)).toBe(false);
    expect(encodeS3EventKey('incoming/my model/a b+c.onnx')).toBe('incoming/my+model/a+b%2Bc.onnx');
  });

  it('delivers matching ObjectCreated events one by one, retrying a failing delivery', async () => {
    const server = new EventEmitter();
    const delivered: string[] = [];
    const failed: string[] = [];
    let failOnce = true;
    const hook = attachS3Events(
      server as unknown as S3rver,
      async (event) => {
        const key = event.Records[0]?.s3.object.key ?? '';
        if (key.includes('flaky') && failOnce) {
          failOnce = false;
          throw new Error('transient');
        }
        if (key.includes('broken')) throw new Error('always');
        delivered.push(key);
      },
      {
        filter: (key) => isS3EventKey(key, prefixes),
        retryDelayMs: 1,
        onError: (_e, key) => failed.push(key),
      },
    );
    server.emit('event', s3rverEvent('incoming/m/a b.onnx'));
    server.emit('event', s3rverEvent('incoming/m/readme.md'));
    server.emit('event', s3rverEvent('incoming/m/x.onnx', 'ObjectRemoved:Delete'));
    server.emit('event', s3rverEvent('batch/flaky/input.jsonl'));
    server.emit('event', s3rverEvent('incoming/broken/m.onnx'));
    await hook.idle();
    expect(delivered.sort()).toEqual(['batch/flaky/input.jsonl', 'incoming/m/a+b.onnx']);
    expect(failed).toEqual(['incoming/broken/m.onnx']);
    hook.detach();
    server.emit('event', s3rverEvent('incoming/m/late.onnx'));
    await hook.idle();
    expect(delivered).toHaveLength(2);
  });
});

/**
 * The in-process queue with `concurrency` N: up to N consumer invocations at once (never more), each with its own
 * batch and time budget, completing in any order; drain() waits for every running one; a message is never in two
 * invocations at once; failures are still retried after the visibility timeout and dead-lettered after
 * maxReceiveCount receives.
 */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { InProcessQueue } from '../../functions/local/in-process-queue';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A consumer that records how many invocations overlap and in which order they finish. */
function tracker(work: (body: string, receiveCount: number) => Promise<boolean>) {
  let current = 0;
  let peak = 0;
  const finished: string[] = [];
  const inFlightBodies = new Set<string>();
  const overlaps: string[] = [];
  const consumer = async (event: SQSEvent): Promise<SQSBatchResponse> => {
    current++;
    peak = Math.max(peak, current);
    const failures: { itemIdentifier: string }[] = [];
    try {
      for (const r of event.Records) {
        if (inFlightBodies.has(r.body)) overlaps.push(r.body);
        inFlightBodies.add(r.body);
      }
      for (const r of event.Records) {
        const ok = await work(r.body, Number(r.attributes.ApproximateReceiveCount));
        if (!ok) failures.push({ itemIdentifier: r.messageId });
        else finished.push(r.body);
      }
      return { batchItemFailures: failures };
    } finally {
      for (const r of event.Records) inFlightBodies.delete(r.body);
      current--;
    }
  };
  return {
    consumer,
    finished,
    overlaps,
    get current() {
      return current;
    },
    get peak() {
      return peak;
    },
  };
}

describe('InProcessQueue with concurrency', () => {
  it('runs N invocations at once, never more, completing out of order; drain waits for all', async () => {
    const queue = new InProcessQueue({ batchSize: 1, concurrency: 4, visibilityTimeoutMs: 1 });
    const bodies = Array.from({ length: 20 }, (_, i) => `m${String(i).padStart(2, '0')}`);
    for (const b of bodies) queue.sendRaw(b);
    // Earlier messages take longer, so later ones overtake them.
    const t = tracker(async (body) => {
      await sleep(5 + (20 - Number(body.slice(1))) * 2);
      return true;
    });
    queue.attach(t.consumer);
    await queue.drain();
    expect(t.current).toBe(0);
    expect(queue.inFlight).toBe(0);
    expect(t.peak).toBe(4);
    expect(queue.stats).toMatchObject({
      sent: 20,
      deleted: 20,
      deadLettered: 0,
      invocations: 20,
      peakInFlight: 4,
    });
    expect([...t.finished].sort()).toEqual(bodies);
    expect(t.finished).not.toEqual(bodies);
    expect(t.overlaps).toEqual([]);
  });

  it('keeps to one invocation at a time by default', async () => {
    const queue = new InProcessQueue({ batchSize: 1, visibilityTimeoutMs: 1 });
    for (let i = 0; i < 6; i++) queue.sendRaw(`m${i}`);
    const t = tracker(async () => {
      await sleep(2);
      return true;
    });
    queue.attach(t.consumer);
    await queue.drain();
    expect(t.peak).toBe(1);
    expect(t.finished).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(queue.stats.peakInFlight).toBe(1);
  });

  it('hands each invocation a batch of up to batchSize messages', async () => {
    const queue = new InProcessQueue({ batchSize: 3, concurrency: 2, visibilityTimeoutMs: 1 });
    for (let i = 0; i < 7; i++) queue.sendRaw(`m${i}`);
    const batches: string[][] = [];
    queue.attach(async (event) => {
      batches.push(event.Records.map((r) => r.body));
      await sleep(10);
      return { batchItemFailures: [] };
    });
    await queue.drain();
    expect(batches.slice(0, 2)).toEqual([
      ['m0', 'm1', 'm2'],
      ['m3', 'm4', 'm5'],
    ]);
    expect(batches.flat().sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    expect(queue.stats.peakInFlight).toBe(2);
  });

  it('gives each invocation its own time budget', async () => {
    const queue = new InProcessQueue({ batchSize: 1, concurrency: 2, invocationBudgetMs: 1_000 });
    for (let i = 0; i < 4; i++) queue.sendRaw(`m${i}`);
    const atStart: number[] = [];
    queue.attach(async (_event, context) => {
      atStart.push(context.getRemainingTimeInMillis());
      await sleep(150);
      return { batchItemFailures: [] };
    });
    await queue.drain();
    // The last two start after the first two have used 150 ms each: their budget is whole nonetheless.
    expect(atStart).toHaveLength(4);
    for (const remaining of atStart) expect(remaining).toBeGreaterThan(900);
  });

  it('drain waits for the running invocations, even once every message is received', async () => {
    const queue = new InProcessQueue({ batchSize: 1, concurrency: 3 });
    const gates: (() => void)[] = [];
    queue.attach(async () => {
      await new Promise<void>((r) => gates.push(r));
      return { batchItemFailures: [] };
    });
    for (let i = 0; i < 3; i++) queue.sendRaw(`m${i}`);
    let drained = false;
    const drain = queue.drain().then(() => {
      drained = true;
    });
    while (gates.length < 3) await sleep(1);
    expect(queue.inFlight).toBe(3);
    gates[0]?.();
    gates[1]?.();
    await sleep(20);
    expect(drained).toBe(false);
    expect(queue.depth).toBe(1);
    gates[2]?.();
    await drain;
    expect(queue.depth).toBe(0);
    expect(queue.inFlight).toBe(0);
  });

  it('never hands a message to a second invocation while the first runs, whatever its visibility timeout', async () => {
    const queue = new InProcessQueue({ batchSize: 1, concurrency: 4, visibilityTimeoutMs: 1 });
    queue.sendRaw('slow');
    const t = tracker(async (body) => {
      await sleep(body === 'slow' ? 60 : 1);
      return true;
    });
    queue.attach(t.consumer);
    // Messages keep arriving while 'slow' runs long past its visibility timeout: the queue receives meanwhile.
    for (let i = 0; i < 5; i++) {
      await sleep(8);
      queue.sendRaw(`other-${i}`);
    }
    await queue.drain();
    expect(t.overlaps).toEqual([]);
    expect(queue.stats).toMatchObject({ receives: 6, invocations: 6, deleted: 6 });
  });

  it('still retries failures after the visibility timeout and dead-letters after maxReceiveCount receives', async () => {
    const queue = new InProcessQueue({
      batchSize: 1,
      concurrency: 3,
      maxReceiveCount: 3,
      visibilityTimeoutMs: 300,
    });
    const receives = new Map<string, number[]>();
    const at = new Map<string, number[]>();
    const ids = new Map<string, string>();
    for (const b of ['good-1', 'poison', 'flaky', 'good-2', 'good-3']) ids.set(b, queue.sendRaw(b));
    const t = tracker(async (body, count) => {
      receives.set(body, [...(receives.get(body) ?? []), count]);
      at.set(body, [...(at.get(body) ?? []), Date.now()]);
      await sleep(3);
      return !(body === 'poison' || (body === 'flaky' && count < 2));
    });
    queue.attach(t.consumer);
    await queue.drain();
    expect(receives.get('good-1')).toEqual([1]);
    expect(receives.get('flaky')).toEqual([1, 2]);
    expect(receives.get('poison')).toEqual([1, 2, 3]);
    expect(queue.deadLetters.map((m) => m.messageId)).toEqual([ids.get('poison')]);
    expect(queue.stats).toMatchObject({ sent: 5, deleted: 4, deadLettered: 1 });
    expect(t.peak).toBe(3);
    expect(t.overlaps).toEqual([]);
    // A failed message came back only once its visibility timeout (counted from its receive) had passed. Each
    // timestamp is taken when the consumer starts, which under load can lag the receive: the bound leaves 100 ms
    // for that, far below the 300 ms the message must stay invisible.
    const times = at.get('poison') ?? [];
    expect(times).toHaveLength(3);
    for (let i = 1; i < times.length; i++)
      expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(200);
  });

  it('retries a whole batch whose invocation throws, beside invocations that succeed', async () => {
    const errors: unknown[] = [];
    const queue = new InProcessQueue({
      batchSize: 1,
      concurrency: 2,
      maxReceiveCount: 2,
      visibilityTimeoutMs: 1,
      onConsumerError: (e) => errors.push(e),
    });
    queue.sendRaw('crash');
    queue.sendRaw('ok');
    const ok: string[] = [];
    queue.attach(async (event) => {
      const body = event.Records[0]?.body ?? '';
      await sleep(2);
      if (body === 'crash') throw new Error('crash');
      ok.push(body);
      return { batchItemFailures: [] };
    });
    await queue.drain();
    expect(ok).toEqual(['ok']);
    expect(queue.deadLetters.map((m) => m.body)).toEqual(['crash']);
    expect(errors).toHaveLength(2);
  });

  it('takes messages sent by a running invocation into free slots', async () => {
    const queue = new InProcessQueue({ batchSize: 1, concurrency: 4, visibilityTimeoutMs: 1 });
    const t = tracker(async (body) => {
      // One start fans out into four parts, as a batch job's start does.
      if (body === 'start') for (let i = 0; i < 4; i++) queue.sendRaw(`part-${i}`);
      await sleep(20);
      return true;
    });
    queue.attach(t.consumer);
    queue.sendRaw('start');
    await queue.drain();
    expect([...t.finished].sort()).toEqual(['part-0', 'part-1', 'part-2', 'part-3', 'start']);
    // Three parts run beside the start, then the fourth.
    expect(t.peak).toBe(4);
  });

  it('refuses a concurrency that is not a whole number from 1', () => {
    for (const concurrency of [0, -1, 1.5, Number.NaN]) {
      expect(() => new InProcessQueue({ concurrency }), String(concurrency)).toThrow(RangeError);
    }
  });
});

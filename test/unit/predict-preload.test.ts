/**
 * MAAS_PRELOAD during INIT: an on-demand INIT waits for the preloads only within its budget (Lambda fails an
 * INIT past 10 s), the rest carry on in the background and are named in one warning; an INIT ahead of its
 * requests (provisioned concurrency) waits for all of them.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';
import type { Logger } from '../../functions/ports/logger';

type PredictModule = typeof import('../../functions/handlers/predict');
let predict: PredictModule;

beforeAll(async () => {
  // The module builds its Lambda handler at import: without a table it is the misconfigured one, touching nothing.
  const saved = process.env.MAAS_TABLE;
  delete process.env.MAAS_TABLE;
  try {
    predict = await import('../../functions/handlers/predict');
  } finally {
    if (saved !== undefined) process.env.MAAS_TABLE = saved;
  }
});

afterEach(() => {
  vi.useRealTimers();
});

const logger = () => {
  const warn = vi.fn();
  const noop = () => {};
  return { warn, log: { warn, info: noop, error: noop, debug: noop } as unknown as Logger };
};

/** A preload that finishes when `finish` is called. */
function controlled(model: string, ref?: string) {
  let finish!: () => void;
  const done = new Promise<void>((r) => {
    finish = r;
  });
  return { preload: { model, ref, done }, finish };
}

describe('awaitPreloads', () => {
  it('ends an on-demand INIT at the budget, leaving slow preloads to the background with a warning', async () => {
    vi.useFakeTimers();
    const { warn, log } = logger();
    const fast = controlled('iris', 'prod');
    const slow = controlled('big');
    let finished = false;
    const waiting = predict.awaitPreloads([fast.preload, slow.preload], 2_000, log).then(() => {
      finished = true;
    });
    fast.finish();
    await vi.advanceTimersByTimeAsync(1_999);
    expect(finished).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await waiting;
    expect(finished).toBe(true);
    expect(warn).toHaveBeenCalledOnce();
    expect(warn).toHaveBeenCalledWith('preload continues after INIT', { models: ['big'], budgetMs: 2_000 });
    slow.finish(); // it still completes later, in the background
    await slow.preload.done;
  });

  it('does not wait at all once the budget is spent, and says nothing when every preload is done in time', async () => {
    const spent = logger();
    const never = controlled('mnist', '2');
    await predict.awaitPreloads([never.preload], -500, spent.log);
    expect(spent.warn).toHaveBeenCalledWith('preload continues after INIT', {
      models: ['mnist@2'],
      budgetMs: 0,
    });

    const inTime = logger();
    const quick = controlled('iris');
    quick.finish();
    await predict.awaitPreloads([quick.preload], 5_000, inTime.log);
    expect(inTime.warn).not.toHaveBeenCalled();
  });

  it('waits for every preload without a budget (an INIT ahead of its requests)', async () => {
    vi.useFakeTimers();
    const { warn, log } = logger();
    const slow = controlled('big');
    let finished = false;
    const waiting = predict.awaitPreloads([slow.preload], undefined, log).then(() => {
      finished = true;
    });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(finished).toBe(false);
    slow.finish();
    await waiting;
    expect(warn).not.toHaveBeenCalled();
  });

  it("leaves room under Lambda's 10 s INIT limit", () => {
    expect(LIMITS.onDemandPreloadDeadlineMs).toBeLessThanOrEqual(8_000);
  });
});

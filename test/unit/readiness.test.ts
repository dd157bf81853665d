/**
 * The public readiness probe reuses one registry ping for LIMITS.readinessTtlMs: probes within it cost no
 * DynamoDB read, and neither a success nor a failure is kept longer, so a recovery (or an outage) is seen.
 */
import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';
import { createPredictHandler } from '../../functions/handlers/predict';
import { cachedReadiness } from '../../functions/handlers/readiness';
import { apiEvent, parseResult } from '../helpers/apigw';

const unused = () => {
  throw new Error('not on the readiness path');
};

/** A predict handler over a registry whose ping is counted and can be made to fail; the clock is manual. */
function probeEnv() {
  const state = { pings: 0, down: false, now: 1_000_000 };
  const handler = createPredictHandler({
    repo: {
      ping: async () => {
        state.pings++;
        if (state.down) throw new Error('registry down');
      },
    },
    predictor: { inferJson: unused, metadata: unused, resolve: unused },
    logger: { forRequest: () => ({ error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }) },
    now: () => state.now,
  } as never);
  const probe = async () => parseResult(await handler(apiEvent('GET', '/v2/health/ready'))).status;
  return { state, probe };
}

describe('GET /v2/health/ready', () => {
  it('makes one registry ping for any number of probes within the TTL', async () => {
    const { state, probe } = probeEnv();
    for (let i = 0; i < 20; i++) {
      expect(await probe()).toBe(200);
      state.now += 200;
    }
    expect(LIMITS.readinessTtlMs).toBeLessThanOrEqual(5000);
    expect(state.pings).toBe(1);
    state.now += LIMITS.readinessTtlMs;
    expect(await probe()).toBe(200);
    expect(state.pings).toBe(2);
  });

  it('sees an outage and a recovery within the TTL', async () => {
    const { state, probe } = probeEnv();
    expect(await probe()).toBe(200);
    state.down = true;
    state.now += LIMITS.readinessTtlMs;
    expect(await probe()).toBe(503);
    expect(await probe()).toBe(503);
    expect(state.pings).toBe(2);
    state.down = false;
    state.now += LIMITS.readinessTtlMs;
    expect(await probe()).toBe(200);
    expect(state.pings).toBe(3);
  });
});

describe('cachedReadiness', () => {
  it('shares a ping in flight between concurrent probes', async () => {
    let pings = 0;
    let release: () => void = () => {};
    const ready = cachedReadiness(
      () => {
        pings++;
        return new Promise<void>((r) => {
          release = r;
        });
      },
      { ttlMs: 1000, now: () => 0 },
    );
    const probes = [ready(), ready(), ready()];
    release();
    await Promise.all(probes);
    expect(pings).toBe(1);
  });
});

/**
 * A split alias on the predict path, over DynamoDB Local, s3rver and onnxruntime: weights honoured over 10 000
 * keyed requests, stickiness across weight increases, routing without a key, the key parameter, the route in
 * the answer and in the metrics, `/versions/{n}` still pinned, and no registry call on the warm path.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EmfMetricsSink } from '../../functions/adapters/emf-metrics';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { SessionCache } from '../../functions/app/session-cache';
import { ROUTE_HEADER, ROUTING_KEY_HEADER } from '../../functions/contract/observability';
import { routeOf } from '../../functions/domain/routing';
import type { AliasRouting } from '../../functions/domain/types';
import { createPredictHandler } from '../../functions/handlers/predict';
import { apiEvent, parseResult } from '../helpers/apigw';
import { countCalls } from '../helpers/counting-proxy';
import { addConstant, createPredictTestEnv, type PredictTestEnv } from '../helpers/predict-env';

let env: PredictTestEnv;
const X = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [0, 0] }] };

beforeAll(async () => {
  env = await createPredictTestEnv();
  await env.register('split', addConstant(10)); // v1, prod
  await env.register('split', addConstant(20)); // v2
});
afterAll(() => env?.dispose());

async function route(routing: AliasRouting | null): Promise<void> {
  await env.repo.setAliasRouting({ name: 'split', alias: 'prod', routing, actor: 'test' });
  env.now += 60_000; // past the alias cache
}

/** The version that answered, from its output (v1 adds 10, v2 adds 20), and the route header. */
async function infer(key?: string, body: object = X, path = '/v2/models/split/infer') {
  const r = parseResult(
    await env.handler(
      apiEvent('POST', path, { body, ...(key ? { headers: { [ROUTING_KEY_HEADER]: key } } : {}) }),
    ),
  );
  expect(r.status).toBe(200);
  const b = r.body as { model_version: string; outputs: { data: number[] }[] };
  const version = b.outputs[0]!.data[0] === 20 ? 2 : 1;
  expect(b.model_version).toBe(String(version));
  return { version, route: r.headers[ROUTE_HEADER] };
}

describe('a canary split', () => {
  it('sends 10 % of 10 000 keyed requests to the canary, within a binomial bound; the route is answered', async () => {
    await route({ canary: { version: 2, weight: 10 } });
    let canary = 0;
    for (let i = 0; i < 10_000; i++) {
      const { version, route: r } = await infer(`user-${i}`);
      expect(r).toBe(version === 2 ? 'canary' : 'stable');
      if (version === 2) canary++;
    }
    expect(Math.abs(canary - 1000)).toBeLessThan(4.5 * Math.sqrt(10_000 * 0.1 * 0.9));
  }, 120_000);

  it('is sticky: the same key, the same version; raising the weight only moves keys to the canary', async () => {
    await route({ canary: { version: 2, weight: 10 } });
    const keys = Array.from({ length: 300 }, (_, i) => `k-${i}`);
    const at10 = new Map<string, number>();
    for (const k of keys) at10.set(k, (await infer(k)).version);
    for (const k of keys.slice(0, 50)) expect((await infer(k)).version).toBe(at10.get(k));
    await route({ canary: { version: 2, weight: 50 } });
    let moved = 0;
    for (const k of keys) {
      const v = (await infer(k)).version;
      if (at10.get(k) === 2) expect(v).toBe(2);
      if (at10.get(k) === 1 && v === 2) moved++;
    }
    expect(moved).toBeGreaterThan(60);
  }, 60_000);

  it('routes at random without a key, and by the named request parameter when the alias names one', async () => {
    await route({ canary: { version: 2, weight: 50 } });
    const versions = new Set<number>();
    for (let i = 0; i < 60; i++) versions.add((await infer()).version);
    expect([...versions].sort()).toEqual([1, 2]);
    await route({ canary: { version: 2, weight: 50 }, keyParameter: 'user' });
    for (let u = 0; u < 20; u++) {
      const body = { ...X, parameters: { user: `u${u}` } };
      const first = (await infer(undefined, body)).version;
      for (let i = 0; i < 3; i++) expect((await infer(undefined, body)).version).toBe(first);
    }
    // The header, when given, wins over the parameter: pairs whose header and parameter route differently.
    let pairs = 0;
    for (let u = 0; u < 200 && pairs < 10; u++) {
      const [h, p] = [`h${u}`, `u${u}`];
      if (routeOf(50, h, 'split') === routeOf(50, p, 'split')) continue;
      pairs++;
      const both = await infer(h, { ...X, parameters: { user: p } });
      expect(both.route).toBe(routeOf(50, h, 'split'));
      expect(both.version).toBe((await infer(h)).version);
      expect(both.version).not.toBe((await infer(undefined, { ...X, parameters: { user: p } })).version);
    }
    expect(pairs).toBe(10);
  }, 60_000);

  it('a request routed to a canary whose session is not loaded yet is served by the canary (chosen once)', async () => {
    await route({ canary: { version: 2, weight: 10 } });
    const handler = createPredictHandler({
      repo: env.reader,
      store: env.artifacts,
      sessions: new SessionCache({ engine: new OrtEngine() }),
      clock: { now: () => new Date(env.now) },
    });
    // Built once: building an event draws random numbers of its own.
    const event = apiEvent('POST', '/v2/models/split/infer', { body: X });
    const call = async () => {
      const r = parseResult(await handler(event));
      return (r.body as { model_version: string }).model_version;
    };
    const random = vi.spyOn(Math, 'random');
    try {
      // Stable first: its session loads and the alias (with its split) is cached.
      random.mockReturnValue(0.99);
      expect(await call()).toBe('1');
      // The next draw says canary, whose session is not loaded; any later draw would say stable.
      random.mockReturnValueOnce(0.01);
      expect(await call()).toBe('2');
    } finally {
      random.mockRestore();
    }
  });

  it("model ready on a split alias loads the canary's session with the stable one: both serve the alias", async () => {
    await route({ canary: { version: 2, weight: 10 } });
    const sessions = new SessionCache({ engine: new OrtEngine() });
    const handler = createPredictHandler({
      repo: env.reader,
      store: env.artifacts,
      sessions,
      clock: { now: () => new Date(env.now) },
    });
    try {
      const r = parseResult(await handler(apiEvent('GET', '/v2/models/split/ready')));
      expect(r).toMatchObject({ status: 200, body: { name: 'split', version: '1', ready: true } });
      for (const v of [1, 2])
        expect(sessions.has((await env.repo.getVersion('split', v))!.sha256)).toBe(true);
    } finally {
      await sessions.close();
    }
  });

  it('pins /versions/{n}; a cleared split sends everything to the stable version', async () => {
    await route({ canary: { version: 2, weight: 100 } });
    expect((await infer('a')).version).toBe(2);
    expect(await infer('a', X, '/v2/models/split/versions/1/infer')).toEqual({ version: 1, route: 'stable' });
    await route(null);
    for (let i = 0; i < 20; i++) expect(await infer(`c-${i}`)).toEqual({ version: 1, route: 'stable' });
  });

  it('reports the route as a dimension value and makes no registry call on the warm path, a shadow mirroring too', async () => {
    await route({ canary: { version: 2, weight: 30 }, shadow: { version: 2, percent: 50 } });
    let mirrored = 0;
    const docs: Record<string, unknown>[] = [];
    const reads = countCalls(env.reader);
    const handler = createPredictHandler({
      repo: reads.proxy,
      store: env.artifacts,
      sessions: new SessionCache({ engine: new OrtEngine() }),
      // The test's clock: the alias cache stays fresh however slowly the machine runs.
      clock: { now: () => new Date(env.now) },
      metrics: new EmfMetricsSink({ serviceName: 't', output: (l) => docs.push(JSON.parse(l)) }),
      mirror: {
        mirror: async () => {
          mirrored++;
        },
      },
    });
    const call = (k: string) =>
      handler(apiEvent('POST', '/v2/models/split/infer', { body: X, headers: { [ROUTING_KEY_HEADER]: k } }));
    for (let i = 0; i < 40; i++) await call(`w-${i}`); // both sessions loaded
    const before = reads.calls();
    docs.length = 0;
    for (let i = 0; i < 200; i++) await call(`w-${i}`);
    expect(reads.calls() - before).toBe(0);
    await new Promise((r) => setImmediate(r)); // mirrors go after the answer
    expect(mirrored).toBeGreaterThan(20);
    const routes = new Set(docs.map((d) => `${d.version}:${d.route}`));
    expect(routes).toEqual(new Set(['1:stable', '2:canary']));
    expect(docs.every((d) => d.alias === 'prod')).toBe(true);
  });
});

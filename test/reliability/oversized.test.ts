import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';
import { json } from '../../functions/handlers/http';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { postBytes } from '../helpers/raw-post';

const LIMIT = LIMITS.maxBodyBytes;
const ROUNDS = 50;
const MB = 1024 * 1024;

let server: RunningLocalServer;
let handled = 0;

beforeAll(async () => {
  server = await startLocalServer({
    port: 0,
    handlers: {
      predict: async () => {
        handled++;
        return json(200, { ok: true });
      },
    },
  });
});
afterAll(() => server?.close());

const send = (size: number, chunked: boolean) => postBytes(`${server.url}/v2/models/m/infer`, size, chunked);

const gc = (globalThis as { gc?: () => void }).gc;
const memory = () => {
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
};
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;

describe('oversized bodies against the local server', () => {
  it(`answers ${ROUNDS} × 7 MB (and 12 MB, chunked) bodies with a readable 413, memory flat`, async () => {
    const sizes = (i: number): [number, boolean] =>
      i % 5 === 4 ? [2 * LIMIT, i % 2 === 0] : [7_000_000, i % 3 === 0];
    const check = async (i: number) => {
      const [size, chunked] = sizes(i);
      const r = await send(size, chunked);
      expect(r.status, `request ${i}: ${size} bytes${chunked ? ', chunked' : ''}`).toBe(413);
      expect(JSON.parse(r.body)).toEqual({ error: expect.any(String), code: 'PAYLOAD_TOO_LARGE' });
    };
    for (let i = 0; i < 5; i++) await check(i); // warm-up
    const before = memory();
    const started = Date.now();
    for (let i = 0; i < ROUNDS; i++) await check(i);
    const after = memory();
    console.info(
      `${ROUNDS} oversized bodies in ${Date.now() - started} ms; rss ${mb(before.rss)} -> ${mb(after.rss)}, ` +
        `heap ${mb(before.heap)} -> ${mb(after.heap)}${gc ? ' (after gc)' : ' (no gc available)'}`,
    );
    expect(handled).toBe(0);
    // 50 bodies of 7 MB kept would be 350 MB; a flat server stays within a few tens of MB of noise.
    expect(after.heap - before.heap).toBeLessThan(48 * MB);
    expect(after.rss - before.rss).toBeLessThan(96 * MB);
    // The server still answers normal requests afterwards.
    expect((await send(2, false)).status).toBe(200);
  });
});

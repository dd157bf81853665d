/**
 * Oversized bodies against the local server, again and again: every one is answered 413 PAYLOAD_TOO_LARGE that
 * the client reads (no EPIPE/ECONNRESET), nothing reaches a handler, and memory stays flat (a refused body is
 * read and discarded, never kept).
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';
import { json } from '../../functions/handlers/http';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';

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

// One buffer sent repeatedly, so the client side allocates nothing per request.
const PIECE = Buffer.alloc(256 * 1024, 0x20);

/** POSTs `size` bytes (declared length, or chunked) with node:http and reads the answer. */
function send(size: number, chunked: boolean): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}/v2/models/m/infer`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': size }),
      },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    let left = size;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, PIECE.length);
        left -= n;
        if (!req.write(n === PIECE.length ? PIECE : PIECE.subarray(0, n)))
          return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

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

/** A plain HTTP client for bodies of a given size: what a caller sends past a body limit, and what it reads back. */
import { request } from 'node:http';

/** One buffer sent repeatedly, so the client side allocates nothing per request. */
const PIECE = Buffer.alloc(256 * 1024, 0x20);

/**
 * POSTs `size` bytes of JSON whitespace to `url` with node:http (a declared length, or chunked) and reads the whole
 * answer: its status, body and `Connection` header.
 */
export function postBytes(
  url: string,
  size: number,
  chunked: boolean,
): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
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
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: text, connection: res.headers.connection }),
      );
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

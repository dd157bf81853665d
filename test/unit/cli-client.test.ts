/**
 * The CLI's client against an HTTP server that does not behave as the API: answers that are not JSON, bodies that
 * stall, pages that never end. Each is a clear error (exit 1), never a success, a crash or a hang.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MaasClient, RequestTimeoutError, UnexpectedAnswerError } from '../../functions/cli/client';
import { binaryRequest } from '../../functions/cli/commands/inference';
import { run } from '../../functions/cli/program';
import { INFERENCE_HEADER_CONTENT_LENGTH } from '../../functions/domain/binary-tensors';
import { captureIo } from '../helpers/cli-io';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

/** A server answering every request with `answer`; resolves with its URL and the requests' paths. */
async function server(answer: (res: ServerResponse, path: string) => void) {
  const paths: string[] = [];
  const s = createServer((req, res) => {
    paths.push(req.url ?? '');
    req.resume();
    req.on('end', () => answer(res, req.url ?? ''));
  });
  const url = await new Promise<string>((r) =>
    s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)),
  );
  stops.push(() => {
    s.closeAllConnections();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return { url, paths };
}

const argv = (...args: string[]) => ['node', 'maas', ...args];

describe('MaasClient against a server that is not the API', () => {
  it('refuses a success whose body is not JSON, naming its content type (exit 1, not 0)', async () => {
    const { url } = await server((res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body>Gateway</body></html>');
    });
    const client = new MaasClient({ endpoint: url });
    await expect(client.request('GET', '/models')).rejects.toThrow(UnexpectedAnswerError);
    await expect(client.request('GET', '/models')).rejects.toThrow(
      `${url} answered 200 with a body that is not JSON (text/html): is --endpoint the maas API?`,
    );
    for (const args of [argv('--endpoint', url, 'models'), argv('--endpoint', url, 'promote', 'iris', '1')]) {
      const io = captureIo();
      expect(await run(args, io), args.join(' ')).toBe(1);
      expect(io.stderr(), args.join(' ')).toMatch(/^error: .* is not JSON \(text\/html\)/);
      expect(io.stdout(), args.join(' ')).toBe('');
    }
  });

  it('gives up on an answer whose body stalls, within the request timeout', async () => {
    const { url } = await server((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"models":['); // and nothing more
    });
    // The headers go at once; the timeout, counted from the request, must come after they arrived for the error to
    // say the answer started: 2 s leaves room for a slow first request and a pause of this process.
    const client = new MaasClient({ endpoint: url, timeoutMs: 2_000 });
    const started = performance.now();
    const err = await client.request('GET', '/models').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect((err as Error).message).toBe(`${url} started its answer but did not finish it within 2 s`);
    expect(performance.now() - started).toBeLessThan(5_000);
    const bytes = await client.getBytes('/models').catch((e: unknown) => e);
    expect(bytes).toBeInstanceOf(RequestTimeoutError);
  });

  it('stops `maas capture` when a page names the token it was asked with again', async () => {
    const { url, paths } = await server((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ records: [], nextToken: 'again' }));
    });
    const io = captureIo();
    expect(await run(argv('--endpoint', url, 'capture', 'iris'), io)).toBe(1);
    expect(io.stderr()).toBe(`error: ${url} answered the same capture page again (nextToken 'again')\n`);
    expect(paths).toHaveLength(2);
  });
});

describe('maas predict in binary', () => {
  it('sends a BYTES input holding a lone surrogate as JSON (refused there), never as bytes it cannot hold', () => {
    const { body, headers } = binaryRequest({
      inputs: [
        { name: 's', datatype: 'BYTES', shape: [2], data: ['\ud800x', 'ok'] },
        { name: 't', datatype: 'BYTES', shape: [1], data: ['fine'] },
      ],
    });
    const headerLength = Number(headers[INFERENCE_HEADER_CONTENT_LENGTH]);
    const header = JSON.parse(new TextDecoder().decode(body.subarray(0, headerLength)));
    expect(header.inputs[0]).toEqual({ name: 's', datatype: 'BYTES', shape: [2], data: ['\ud800x', 'ok'] });
    expect(header.inputs[1].parameters).toEqual({ binary_data_size: 8 });
  });
});

/** A stand-in HTTP API for CLI tests: canned answers by `METHOD /path`, and every request it saw. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { run } from '../../functions/cli/program';
import { captureIo } from './cli-io';

/** One request the fake API received. */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  /** The parsed JSON body (undefined without one). */
  readonly body: unknown;
}

/** A canned answer; a function answers from the request. */
export type CannedAnswer =
  | { readonly status: number; readonly body?: unknown }
  | ((req: SeenRequest) => { readonly status: number; readonly body?: unknown });

/** Starts a fake API answering `answers[`${method} ${path}`]`, else 404 NOT_FOUND. */
export async function startFakeApi(answers: Record<string, CannedAnswer>) {
  const seen: SeenRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const request: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: text === '' ? undefined : JSON.parse(text),
      };
      seen.push(request);
      const canned = answers[`${request.method} ${new URL(request.url, 'http://x').pathname}`];
      const a = typeof canned === 'function' ? canned(request) : canned;
      const status = a?.status ?? 404;
      const body = a ? a.body : { error: 'no such thing', code: 'NOT_FOUND' };
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body === undefined ? '' : JSON.stringify(body));
    });
  });
  const url = await new Promise<string>((r) =>
    server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
  return {
    url,
    seen,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Runs the CLI against `endpoint`: its exit code and what it wrote. */
export async function cliAt(endpoint: string, ...args: string[]) {
  const c = captureIo();
  const code = await run(['node', 'maas', '--endpoint', endpoint, ...args], c);
  return { code, out: c.stdout(), err: c.stderr() };
}

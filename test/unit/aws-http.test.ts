/**
 * The signed-request transport of the predict path (functions/adapters/aws-http.ts) against a local HTTP
 * server that answers as AWS services do: signing headers, error parsing, and which answers are retried.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  connect as netConnect,
  type Socket,
} from 'node:net';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import aws4 from 'aws4';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { dynamoDocumentClient, s3Client } from '../../functions/adapters/aws-clients';
import {
  AwsHttpClient,
  AwsServiceError,
  encodeS3Key,
  readBody,
  resolveAwsEndpoint,
} from '../../functions/adapters/aws-http';
import {
  bindInvocation,
  dependencyBudgetMs,
  withInvocationDeadline,
} from '../../functions/adapters/deadline';
import { DynamoRegistryReader } from '../../functions/adapters/dynamodb-registry-reader';
import { isVirtualHostable, S3ArtifactReader } from '../../functions/adapters/s3-artifact-reader';
import { SessionCache } from '../../functions/app/session-cache';
import { LIMITS } from '../../functions/contract/limits';
import { UnavailableError } from '../../functions/domain/errors';
import { createPredictHandler } from '../../functions/handlers/predict';
import type { InferenceEngine } from '../../functions/ports/inference';
import { apiEvent, parseResult } from '../helpers/apigw';
import { silentLogger } from '../helpers/recording-logger';

type Reply = (req: IncomingMessage, res: ServerResponse, body: string) => void;

let server: Server;
let endpoint: string;
let replies: Reply[] = [];
const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const reply = replies.shift();
      if (!reply) {
        res.writeHead(599).end();
        return;
      }
      reply(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
afterEach(() => {
  replies = [];
  seen.length = 0;
});

const json =
  (status: number, body: unknown, headers: Record<string, string> = {}): Reply =>
  (_q, res) => {
    res
      .writeHead(status, { 'content-type': 'application/x-amz-json-1.0', ...headers })
      .end(JSON.stringify(body));
  };
const xml =
  (status: number, code: string, message: string): Reply =>
  (_q, res) => {
    res
      .writeHead(status, { 'content-type': 'application/xml' })
      .end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
      );
  };

const credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret', sessionToken: 'token-1' };

/**
 * Recomputes the SigV4 signature of a received request with an independent signer (aws4) over the headers the
 * request says it signed, and tells whether it matches the one sent.
 */
function signatureMatches(req: (typeof seen)[number], service: string, region: string): boolean {
  const authorization = String(req.headers.authorization);
  const signed = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(';') ?? [];
  const headers: Record<string, string> = {};
  for (const name of signed) headers[name] = String(req.headers[name]);
  const opts = {
    host: String(req.headers.host),
    method: req.method,
    path: req.url,
    service,
    region,
    headers,
    body: req.body,
    doNotModifyHeaders: true,
  };
  const signer = new aws4.RequestSigner(opts, credentials);
  // With doNotModifyHeaders aws4 takes the clock, not the request's x-amz-date: sign at the time the request says.
  (signer as unknown as { datetime: string }).datetime = String(req.headers['x-amz-date']);
  signer.sign();
  return (opts.headers as Record<string, string>).Authorization === authorization;
}
const client = (extra: Partial<ConstructorParameters<typeof AwsHttpClient>[0]> = {}) =>
  new AwsHttpClient({ service: 'dynamodb', region: 'eu-west-1', endpoint, credentials, env: {}, ...extra });
const getItem = (c: AwsHttpClient) =>
  c.send(
    {
      method: 'POST',
      path: '/',
      headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'DynamoDB_20120810.GetItem' },
      body: '{"TableName":"t"}',
    },
    async (r) => JSON.parse((await readBody(r)).toString('utf8')) as unknown,
  );

describe('AwsHttpClient', () => {
  it('signs with SigV4 for the service and region, with the session token and the payload hash', async () => {
    replies = [json(200, { Item: { pk: { S: 'a' } } })];
    expect(await getItem(client())).toEqual({ Item: { pk: { S: 'a' } } });
    const h = seen[0]!.headers;
    expect(h.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/eu-west-1\/dynamodb\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*x-amz-target[a-z0-9;-]*, Signature=[0-9a-f]{64}$/,
    );
    expect(h['x-amz-security-token']).toBe('token-1');
    expect(h['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    expect(h['x-amz-content-sha256']).toBe(createHash('sha256').update('{"TableName":"t"}').digest('hex'));
    expect(seen[0]!.body).toBe('{"TableName":"t"}');
    expect(h['content-length']).toBe('17');
    expect(signatureMatches(seen[0]!, 'dynamodb', 'eu-west-1')).toBe(true);
  });

  it('signs S3 paths as sent (keys encoded once), as an independent signer does', async () => {
    const s3 = client({ service: 's3' });
    for (const key of ["models/we ird/+!'()*~é.onnx", 'models/a/b=c&d.onnx']) {
      replies.push(json(200, {}));
      await s3.send({ method: 'GET', path: `/bucket/${encodeS3Key(key)}` }, readBody);
    }
    expect(seen.map((r) => decodeURIComponent(r.url))).toEqual([
      "/bucket/models/we ird/+!'()*~é.onnx",
      '/bucket/models/a/b=c&d.onnx',
    ]);
    for (const r of seen) expect(signatureMatches(r, 's3', 'eu-west-1')).toBe(true);
    // The check can fail: a request signed with another secret does not match.
    replies.push(json(200, {}));
    await client({ service: 's3', credentials: { ...credentials, secretAccessKey: 'other' } }).send(
      { method: 'GET', path: '/bucket/k' },
      readBody,
    );
    expect(signatureMatches(seen[2]!, 's3', 'eu-west-1')).toBe(false);
  });

  it('retries a 5xx answer and then succeeds', async () => {
    replies = [json(503, { __type: 'ServiceUnavailable', message: 'busy' }), json(200, { ok: 1 })];
    expect(await getItem(client())).toEqual({ ok: 1 });
    expect(seen).toHaveLength(2);
  });

  it('retries a throttling error that comes as a 400', async () => {
    replies = [
      json(400, {
        __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
        message: 'slow down',
      }),
      json(200, { ok: 2 }),
    ];
    expect(await getItem(client())).toEqual({ ok: 2 });
    expect(seen).toHaveLength(2);
  });

  it('throws a client error at once, named by its code, with its message and status', async () => {
    replies = [json(400, { __type: 'com.amazon.coral.validate#ValidationException', message: 'bad key' })];
    const error = await getItem(client()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AwsServiceError);
    expect(error).toMatchObject({
      name: 'ValidationException',
      message: 'bad key',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });
    expect(seen).toHaveLength(1);
  });

  it('gives up after maxAttempts and throws the last answer', async () => {
    replies = [1, 2, 3].map(() => json(500, { __type: 'InternalServerError', message: 'boom' }));
    await expect(getItem(client({ maxAttempts: 3 }))).rejects.toMatchObject({
      name: 'InternalServerError',
      $fault: 'server',
      $metadata: { httpStatusCode: 500 },
    });
    expect(seen).toHaveLength(3);
  });

  it("waits as long as a throttled answer's retry-after asks", async () => {
    replies = [json(503, { __type: 'SlowDown', message: 'wait' }, { 'retry-after': '2' }), json(200, {})];
    const started = Date.now();
    expect(await getItem(client())).toEqual({});
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
  });

  it('retries codes it is told are transient', async () => {
    replies = [
      json(400, { __type: 'TransactionConflictException', message: 'in a transaction' }),
      json(200, {}),
    ];
    expect(await getItem(client({ retryableCodes: ['TransactionConflictException'] }))).toEqual({});
    replies = [json(400, { __type: 'TransactionConflictException', message: 'in a transaction' })];
    await expect(getItem(client())).rejects.toMatchObject({ name: 'TransactionConflictException' });
  });

  it('reads the code of an S3 XML error and of an error named only by header', async () => {
    replies = [xml(404, 'NoSuchKey', 'The specified key does not exist.')];
    await expect(getItem(client({ service: 's3' }))).rejects.toMatchObject({
      name: 'NoSuchKey',
      message: 'The specified key does not exist.',
    });
    replies = [
      (_q, res) => {
        res.writeHead(400, { 'x-amzn-errortype': 'AccessDeniedException:http://internal.amazon.com/' }).end();
      },
    ];
    await expect(getItem(client())).rejects.toMatchObject({ name: 'AccessDeniedException' });
  });

  it('retries when the connection breaks while the body is being read', async () => {
    const big = 'x'.repeat(256 * 1024);
    replies = [
      (_q, res) => {
        res.writeHead(200, { 'content-length': String(big.length * 2) });
        res.write(big, () => res.socket?.destroy());
      },
      (_q, res) => {
        res.writeHead(200, { 'content-length': String(big.length) }).end(big);
      },
    ];
    const body = await client().send({ method: 'GET', path: '/obj' }, readBody);
    expect(body.length).toBe(big.length);
    expect(seen).toHaveLength(2);
  });

  it('sends to the host name a call names (S3 virtual-hosted buckets)', async () => {
    replies = [json(200, {})];
    await client({ service: 's3' }).send({ method: 'GET', path: '/k', hostname: '127.0.0.1' }, readBody);
    expect(seen[0]!.headers.host).toBe('127.0.0.1');
    expect(seen[0]!.url).toBe('/k');
  });
});

describe('resolveAwsEndpoint', () => {
  it('derives the regional endpoint, FIPS and China included', () => {
    expect(resolveAwsEndpoint('dynamodb', 'eu-west-1', undefined, {}).url.href).toBe(
      'https://dynamodb.eu-west-1.amazonaws.com/',
    );
    expect(
      resolveAwsEndpoint('s3', 'us-gov-west-1', undefined, { AWS_USE_FIPS_ENDPOINT: 'true' }).url.href,
    ).toBe('https://s3-fips.us-gov-west-1.amazonaws.com/');
    expect(resolveAwsEndpoint('s3', 'cn-north-1', undefined, {}).url.href).toBe(
      'https://s3.cn-north-1.amazonaws.com.cn/',
    );
    expect(resolveAwsEndpoint('s3', 'eu-west-1', undefined, {}).custom).toBe(false);
  });

  it('derives GovCloud FIPS endpoints as the SDK does, and refuses what it cannot derive', () => {
    const fips = { AWS_USE_FIPS_ENDPOINT: 'true' };
    const host = (service: 'dynamodb' | 's3', region: string, env: NodeJS.ProcessEnv) =>
      resolveAwsEndpoint(service, region, undefined, env).url.hostname;
    // GovCloud's regular DynamoDB endpoint is already its FIPS endpoint.
    expect(host('dynamodb', 'us-gov-west-1', fips)).toBe('dynamodb.us-gov-west-1.amazonaws.com');
    expect(host('dynamodb', 'us-east-1', fips)).toBe('dynamodb-fips.us-east-1.amazonaws.com');
    expect(host('s3', 'us-gov-east-1', fips)).toBe('s3-fips.us-gov-east-1.amazonaws.com');
    for (const region of ['us-iso-east-1', 'us-isob-east-1', 'eusc-de-east-1', 'mars-1']) {
      expect(() => host('dynamodb', region, {})).toThrow(/AWS_ENDPOINT_URL_DYNAMODB/);
    }
    expect(() => host('s3', 'cn-north-1', fips)).toThrow(/no FIPS endpoints/);
    // A configured endpoint serves any region.
    expect(resolveAwsEndpoint('s3', 'us-iso-east-1', 'https://s3.example', {}).url.hostname).toBe(
      's3.example',
    );
  });

  it('derives dual-stack endpoints when asked', () => {
    const dual = { AWS_USE_DUALSTACK_ENDPOINT: 'true' };
    const host = (service: 'dynamodb' | 's3', region: string, env: NodeJS.ProcessEnv) =>
      resolveAwsEndpoint(service, region, undefined, env).url.hostname;
    expect(host('dynamodb', 'eu-west-1', dual)).toBe('dynamodb.eu-west-1.api.aws');
    expect(host('dynamodb', 'us-east-1', { ...dual, AWS_USE_FIPS_ENDPOINT: 'true' })).toBe(
      'dynamodb-fips.us-east-1.api.aws',
    );
    expect(host('dynamodb', 'cn-north-1', dual)).toBe('dynamodb.cn-north-1.api.amazonwebservices.com.cn');
    expect(host('s3', 'eu-west-1', dual)).toBe('s3.dualstack.eu-west-1.amazonaws.com');
    expect(host('s3', 'us-east-1', { ...dual, AWS_USE_FIPS_ENDPOINT: 'true' })).toBe(
      's3-fips.dualstack.us-east-1.amazonaws.com',
    );
  });

  it('takes the service endpoint, then the global one, from the environment unless told to ignore them', () => {
    const env = { AWS_ENDPOINT_URL_S3: 'http://localhost:4569', AWS_ENDPOINT_URL: 'http://localhost:4566' };
    const s3 = resolveAwsEndpoint('s3', 'eu-west-1', undefined, env);
    expect(s3.url.href).toBe('http://localhost:4569/');
    expect(s3.custom).toBe(true);
    expect(resolveAwsEndpoint('dynamodb', 'eu-west-1', undefined, env).url.href).toBe(
      'http://localhost:4566/',
    );
    expect(
      resolveAwsEndpoint('dynamodb', 'eu-west-1', undefined, {
        ...env,
        AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true',
      }).url.href,
    ).toBe('https://dynamodb.eu-west-1.amazonaws.com/');
    expect(resolveAwsEndpoint('dynamodb', 'eu-west-1', 'http://127.0.0.1:8000', env).url.href).toBe(
      'http://127.0.0.1:8000/',
    );
  });
});

describe('encodeS3Key', () => {
  it('percent-encodes each segment as RFC 3986 and keeps the slashes', () => {
    expect(encodeS3Key("models/a b/c+d!'()*~é.onnx")).toBe('models/a%20b/c%2Bd%21%27%28%29%2A~%C3%A9.onnx');
    expect(encodeS3Key('plain/key-1_2.onnx')).toBe('plain/key-1_2.onnx');
  });
});

describe('the predict handler over a registry that fails', () => {
  const unused = async () => {
    throw new Error('not reached');
  };
  const handler = () =>
    createPredictHandler({
      repo: new DynamoRegistryReader({ table: 't', client: client({ maxAttempts: 2 }) }),
      store: { getObject: unused },
      sessions: new SessionCache({
        engine: { createSession: unused, run: unused, release: unused } satisfies InferenceEngine,
      }),
      logger: silentLogger,
    });
  const infer = apiEvent('POST', '/v2/models/m/infer', {
    body: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] },
  });

  it('answers 503 with Retry-After once the service keeps failing', async () => {
    replies = [1, 2].map(() => (_q: IncomingMessage, res: ServerResponse) => res.writeHead(502).end());
    const r = parseResult(await handler()(infer));
    expect(r).toMatchObject({ status: 503, body: { code: 'UNAVAILABLE' } });
    expect(r.headers['retry-after']).toBe('1');
    expect(seen).toHaveLength(2);
  });

  it("answers a plain 500 for a refusal that is the deployment's fault, without detail", async () => {
    replies = [
      json(400, { __type: 'com.amazon.coral.service#AccessDeniedException', message: 'role arn:x' }),
    ];
    const r = parseResult(await handler()(infer));
    expect(r).toMatchObject({ status: 500, body: { error: 'internal error', code: 'INTERNAL' } });
    expect(JSON.stringify(r.body)).not.toContain('arn');
  });
});

describe('DynamoRegistryReader over a table under contention', () => {
  it('retries a refused consistent read, then answers 503 (UNAVAILABLE) when it stays refused', async () => {
    const conflict = () =>
      json(400, { __type: 'com.amazonaws.dynamodb.v20120810#TransactionConflictException' });
    const reader = new DynamoRegistryReader({
      table: 't',
      region: 'eu-west-1',
      endpoint,
      credentials,
      env: {},
    });
    replies = [
      conflict(),
      json(200, { Item: { pk: { S: 'MODEL#m' }, sk: { S: 'MODEL' }, name: { S: 'm' } } }),
    ];
    expect(await reader.getModel('m')).toMatchObject({ name: 'm' });
    expect(seen).toHaveLength(2);
    expect(JSON.parse(seen[0]!.body)).toMatchObject({ TableName: 't', ConsistentRead: true });
    replies = Array.from({ length: 5 }, conflict);
    await expect(reader.getModel('m')).rejects.toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    expect(seen).toHaveLength(7);
  });
});

describe('isVirtualHostable', () => {
  it('follows the SDK: lower-case DNS labels only, nothing shaped like an IP address', () => {
    expect(['models-123', 'abc'].map(isVirtualHostable)).toEqual([true, true]);
    expect(['my.bucket', 'MyBucket', 'my_bucket', 'ab', '-ab', '192.168.0.1'].map(isVirtualHostable)).toEqual(
      [false, false, false, false, false, false],
    );
  });
});

describe('bounded waits on a dependency that does not answer', () => {
  /** A TCP listener that accepts connections and never answers (a paused or hung service). */
  let silent: NetServer;
  let silentEndpoint: string;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    silent = createNetServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      // Reads (and drops) what arrives, so a client's FIN is seen.
      s.resume();
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentEndpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });
  const silentClient = (extra: Partial<ConstructorParameters<typeof AwsHttpClient>[0]> = {}) =>
    client({ endpoint: silentEndpoint, ...extra });

  it('fails an attempt that gets no answer after the request timeout, and closes its connection', async () => {
    const started = performance.now();
    const err = await getItem(silentClient({ maxAttempts: 1 })).catch((e: unknown) => e);
    const ms = performance.now() - started;
    expect(err).toMatchObject({ name: 'TimeoutError' });
    expect(ms).toBeGreaterThanOrEqual(LIMITS.dependencyRequestTimeoutMs - 100);
    expect(ms).toBeLessThan(LIMITS.dependencyRequestTimeoutMs + 2_000);
    // The connection is destroyed, not left in the keep-alive pool (where it would stay open past this wait).
    await vi.waitFor(() => expect(sockets.size).toBe(0), { timeout: 5_000 });
  });

  it('gives up at the deadline, retries included, as 503 UNAVAILABLE with the last error as cause', async () => {
    const started = performance.now();
    const err = await getItem(silentClient({ maxAttempts: 10, deadlineMs: () => 1_200 })).catch(
      (e: unknown) => e,
    );
    const ms = performance.now() - started;
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err).toMatchObject({ status: 503, code: 'UNAVAILABLE', retryAfterSeconds: 1 });
    // The attempt the deadline cut short.
    expect((err as Error).cause).toMatchObject({ name: 'AbortError' });
    expect(ms).toBeGreaterThanOrEqual(1_100);
    expect(ms).toBeLessThan(3_000);
  });

  it('takes the deadline from the Lambda invocation: its remaining time minus the margin, at most the fixed budget', () => {
    bindInvocation({ getRemainingTimeInMillis: () => 60_000 });
    expect(dependencyBudgetMs()).toBe(LIMITS.dependencyDeadlineMs);
    bindInvocation({ getRemainingTimeInMillis: () => 3_000 });
    expect(dependencyBudgetMs()).toBe(3_000 - LIMITS.dependencyDeadlineMarginMs);
    bindInvocation({ getRemainingTimeInMillis: () => 10 });
    expect(dependencyBudgetMs()).toBe(1);
    bindInvocation(undefined);
    expect(dependencyBudgetMs()).toBe(LIMITS.dependencyDeadlineMs);
  });

  it("binds an entry point's invocation while it runs, and unbinds it once it has answered", async () => {
    // Prepare: an invocation with 3 s left, so its budget differs from the fixed one.
    const context = { getRemainingTimeInMillis: () => 3_000 };
    let during = 0;
    const entry = withInvocationDeadline(async (_event: unknown, _context?: object) => {
      during = dependencyBudgetMs();
      return 'answered';
    });
    // Act
    const answer = await entry({}, context);
    // Assess: work that goes on after the answer gets the fixed budget, not an ended invocation's time.
    expect(answer).toBe('answered');
    expect(during).toBe(3_000 - LIMITS.dependencyDeadlineMarginMs);
    expect(dependencyBudgetMs()).toBe(LIMITS.dependencyDeadlineMs);
  });

  it('gives up at the deadline when the body stalls half way', async () => {
    replies = [
      (_q, res) => {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'content-length': '100' });
        res.write('{"Item":');
      },
    ];
    const err = await getItem(client({ maxAttempts: 3, deadlineMs: () => 800 })).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
  });

  it('gives a large body its transfer time beyond the deadline, while it keeps moving', async () => {
    // Prepare: 16 MiB, which has 2 s at the minimum throughput beyond a 1 s deadline. All but its last MiB goes at
    // once; the last follows 1.2 s after the request arrived. That one timer starts after the client's deadline
    // timer and is due later, so without the transfer time the deadline always fires first; with it, the body ends
    // some 1.8 s before the extended deadline, and the pause stays far below the socket's idle timeout.
    const body = Buffer.alloc(16 * 1024 * 1024, 'x');
    const last = body.length - 1024 * 1024;
    replies = [
      (_q, res) => {
        res.writeHead(200, { 'content-length': String(body.length) });
        res.write(body.subarray(0, last));
        setTimeout(() => res.end(body.subarray(last)), 1_200);
      },
    ];
    // Act
    const started = performance.now();
    const read = await client({ service: 's3', maxAttempts: 1, deadlineMs: () => 1_000 }).send(
      { method: 'GET', path: '/b/k' },
      readBody,
    );
    // Assess
    expect(read.equals(body)).toBe(true);
    expect(performance.now() - started).toBeGreaterThan(1_000);
  });

  it('the generated S3 client bounds a download until its headers; the body then streams past the deadline', async () => {
    replies = [
      (_q, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '40' });
        let sent = 0;
        const timer = setInterval(() => {
          res.write('0123456789');
          if (++sent === 4) {
            clearInterval(timer);
            res.end();
          }
        }, 600);
      },
    ];
    // A deadline the headers meet even on a loaded machine; the body takes about 2.4 s, well past it.
    const s3 = s3Client({ region: 'eu-west-1', endpoint, credentials, env: {}, deadlineMs: () => 1_500 });
    const answer = await s3.send(new GetObjectCommand({ Bucket: 'b', Key: 'k' }));
    expect(await answer.Body?.transformToString()).toBe('0123456789'.repeat(4));
  });

  it('serves again as soon as the service answers: no poisoned connection, no remembered failure', async () => {
    // The same client for both calls: a short deadline for the one that gets no answer, then a generous one, so the
    // second fails only when it inherits something of the first (its connection, which never answers, or its
    // failure), never because it was slow.
    let deadlineMs = 800;
    const c = client({ maxAttempts: 1, deadlineMs: () => deadlineMs });
    replies = [() => {}];
    await expect(getItem(c)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    deadlineMs = 10_000;
    replies = [json(200, { ok: 1 })];
    expect(await getItem(c)).toEqual({ ok: 1 });
  });

  it('fails a connection that is never accepted after the connect timeout', async () => {
    // A listener that never accepts (python's socket.listen(0) without accept), its backlog filled: further
    // connection attempts stay unanswered, as towards a host that drops them.
    const py = spawn(
      'python3',
      [
        '-c',
        "import socket,time;s=socket.socket();s.bind(('127.0.0.1',0));s.listen(0);print(s.getsockname()[1],flush=True);time.sleep(120)",
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const fillers: Socket[] = [];
    try {
      const port = Number(
        await new Promise<string>((r) => py.stdout.once('data', (d: Buffer) => r(d.toString()))),
      );
      // Fill the accept queue until a connection attempt hangs.
      for (let i = 0; i < 8; i++) {
        const s = netConnect(port, '127.0.0.1');
        s.on('error', () => {});
        fillers.push(s);
        const connected = await new Promise<boolean>((r) => {
          s.once('connect', () => r(true));
          // The kernel completes a loopback connection at once, but this process learns of it only when it next
          // polls for I/O: after a pause of the process, the timer would run first. One more turn of the event loop
          // (which polls) before deciding, so only an attempt still connecting counts as one that hangs.
          setTimeout(() => setImmediate(() => r(!s.connecting)), 300);
        });
        if (!connected) break;
      }
      const started = performance.now();
      const err = await getItem(client({ endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 })).catch(
        (e: unknown) => e,
      );
      const ms = performance.now() - started;
      // The connect timeout's own error, not the request timeout's (which would come later, however slow the
      // machine: both timers start with the attempt).
      expect(err).toMatchObject({
        name: 'TimeoutError',
        message: expect.stringContaining('did not establish a connection'),
      });
      expect(ms).toBeLessThan(LIMITS.dependencyConnectTimeoutMs + 2_000);
      const bounded = await getItem(
        client({ endpoint: `http://127.0.0.1:${port}`, maxAttempts: 10, deadlineMs: () => 2_500 }),
      ).catch((e: unknown) => e);
      expect(bounded).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    } finally {
      for (const s of fillers) s.destroy();
      py.kill('SIGKILL');
    }
  });

  it('the predict handler answers a stalled registry with 503 UNAVAILABLE and Retry-After', async () => {
    const unused = async () => {
      throw new Error('not reached');
    };
    const handler = createPredictHandler({
      repo: new DynamoRegistryReader({ table: 't', client: silentClient({ deadlineMs: () => 1_000 }) }),
      store: { getObject: unused },
      sessions: new SessionCache({
        engine: { createSession: unused, run: unused, release: unused } satisfies InferenceEngine,
      }),
      logger: silentLogger,
    });
    for (const event of [
      apiEvent('GET', '/v2/health/ready'),
      apiEvent('POST', '/v2/models/m/infer', {
        body: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] },
      }),
    ]) {
      const started = performance.now();
      const r = parseResult(await handler(event));
      expect(r).toMatchObject({ status: 503, body: { code: 'UNAVAILABLE' } });
      expect(r.headers['retry-after']).toBe('1');
      expect(performance.now() - started).toBeLessThan(3_000);
    }
  });

  it('model ready, which loads the version, answers a stalled artifact store with 503 UNAVAILABLE and Retry-After', async () => {
    const unused = async () => {
      throw new Error('not reached');
    };
    const handler = createPredictHandler({
      repo: oneVersionRepo(),
      store: new S3ArtifactReader({
        bucket: 'models-bucket',
        region: 'eu-west-1',
        endpoint: silentEndpoint,
        credentials,
        env: {},
        deadlineMs: () => 1_000,
      }),
      sessions: new SessionCache({
        engine: { createSession: unused, run: unused, release: unused } satisfies InferenceEngine,
      }),
      logger: silentLogger,
    });
    const started = performance.now();
    const r = parseResult(await handler(apiEvent('GET', '/v2/models/m/versions/1/ready')));
    expect(r).toMatchObject({ status: 503, body: { code: 'UNAVAILABLE' } });
    expect(r.headers['retry-after']).toBe('1');
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('the generated SDK clients give up at the deadline as 503 UNAVAILABLE', async () => {
    const doc = dynamoDocumentClient({
      region: 'eu-west-1',
      endpoint: silentEndpoint,
      credentials,
      env: {},
      deadlineMs: () => 1_000,
    });
    const started = performance.now();
    await expect(
      doc.send(new GetCommand({ TableName: 't', Key: { pk: 'a', sk: 'b' } })),
    ).rejects.toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    expect(performance.now() - started).toBeLessThan(3_000);
    const s3 = s3Client({
      region: 'eu-west-1',
      endpoint: silentEndpoint,
      credentials,
      env: {},
      deadlineMs: () => 1_000,
    });
    await expect(s3.send(new HeadObjectCommand({ Bucket: 'b', Key: 'k' }))).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
  });
});

/** A registry holding one READY version, `m` 1, whose artifact is `models/m/abc.onnx`. */
function oneVersionRepo(): Parameters<typeof createPredictHandler>[0]['repo'] {
  const version = {
    name: 'm',
    version: 1,
    s3Key: 'models/m/abc.onnx',
    sha256: 'abc',
    sizeBytes: 1,
    status: 'READY',
    createdAt: '2026-01-01T00:00:00Z',
    signature: {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
    },
  };
  const repo = {
    getVersion: async () => version,
    getAlias: async () => undefined,
    getModel: async () => undefined,
    ping: async () => {},
  };
  return repo as unknown as Parameters<typeof createPredictHandler>[0]['repo'];
}

describe('S3ArtifactReader on a bucket the role cannot list', () => {
  const reader = () =>
    new S3ArtifactReader({ bucket: 'models-bucket', region: 'eu-west-1', endpoint, credentials, env: {} });

  it('reads a 403 AccessDenied (what S3 answers for a missing key without s3:ListBucket) as a missing artifact', async () => {
    replies = [xml(403, 'AccessDenied', 'Access Denied')];
    await expect(reader().getObjectHashed('models/m/abc.onnx')).rejects.toMatchObject({
      status: 404,
      code: 'ARTIFACT_NOT_FOUND',
    });
  });

  it('the predict path answers it as the documented 500 ARTIFACT_INTEGRITY', async () => {
    const unused = async () => {
      throw new Error('not reached');
    };
    const handler = createPredictHandler({
      repo: oneVersionRepo(),
      store: reader(),
      sessions: new SessionCache({
        engine: { createSession: unused, run: unused, release: unused } satisfies InferenceEngine,
      }),
      logger: silentLogger,
    });
    replies = [xml(403, 'AccessDenied', 'Access Denied')];
    const r = parseResult(
      await handler(
        apiEvent('POST', '/v2/models/m/versions/1/infer', {
          body: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] },
        }),
      ),
    );
    expect(r).toMatchObject({ status: 500, body: { code: 'ARTIFACT_INTEGRITY' } });
  });
});

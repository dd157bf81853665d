import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchStore, newJobId, runBatch } from '../../functions/cli/batch';
import {
  DEFAULT_ENDPOINT,
  MaasClient,
  needsSigning,
  regionFromHost,
  resolveEndpoint,
  uploadToPresignedUrl,
} from '../../functions/cli/client';
import { UsageError } from '../../functions/cli/context';
import { nest, table } from '../../functions/cli/format';
import {
  MAX_TEXT_INPUT_BYTES,
  modelPath,
  readInput,
  readLabels,
  readText,
  shapeOf,
  toInferenceRequest,
} from '../../functions/cli/input';
import { run } from '../../functions/cli/program';
import { captureIo } from '../helpers/cli-io';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A stand-in HTTP API answering from a table of canned responses. */
function fakeApi(answers: Record<string, { status: number; body: unknown }>) {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      });
      const a = answers[`${req.method} ${new URL(req.url ?? '/', 'http://x').pathname}`];
      if (!a) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'no such thing', code: 'NOT_FOUND' }));
        return;
      }
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(a.body === undefined ? '' : JSON.stringify(a.body));
    });
  });
  return {
    seen,
    start: () =>
      new Promise<string>((r) =>
        server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
      ),
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const argv = (...args: string[]) => ['node', 'maas', ...args];

describe('CLI argument helpers', () => {
  it('parses model references', () => {
    expect(modelPath('iris')).toEqual({ name: 'iris', path: '/v2/models/iris' });
    expect(modelPath('iris@2')).toEqual({ name: 'iris', ref: '2', path: '/v2/models/iris/versions/2' });
    expect(modelPath('iris@prod').path).toBe('/v2/models/iris/versions/prod');
    expect(() => modelPath('iris@')).toThrow(/not a model reference/);
    expect(() => modelPath('@prod')).toThrow(/not a model reference/);
  });

  it('reads --input inline, from @file and from a bare path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'maas-cli-'));
    const file = join(dir, 'in.json');
    writeFileSync(file, '[[1,2,3,4]]');
    expect(readInput('[[1,2]]')).toEqual([[1, 2]]);
    expect(readInput(`@${file}`)).toEqual([[1, 2, 3, 4]]);
    expect(readInput(file)).toEqual([[1, 2, 3, 4]]);
    expect(() => readInput('[1,')).toThrow(/not valid JSON/);
    // A number JSON.parse makes infinite has no JSON text to send (it would travel as null).
    expect(() => readInput('[[1e400, 1]]')).toThrow(UsageError);
    expect(() => readInput('{"inputs":[{"data":[[-1e999]]}]}')).toThrow(
      '--input holds a number beyond the range of a double (such as 1e400)',
    );
    expect(() => readInput(`@${join(dir, 'missing.json')}`)).toThrow(/cannot read/);
    // A path that does not exist is said to be one, not read as broken JSON.
    expect(() => readInput(join(dir, 'missing.json'))).toThrow(/neither JSON nor a file that exists/);
    // A file written with a byte order mark.
    writeFileSync(file, '\uFEFF[[5,6]]');
    expect(readInput(file)).toEqual([[5, 6]]);
  });

  it('reads --input and --labels-file up to MAX_TEXT_INPUT_BYTES, and a file without end not at all', () => {
    const dir = mkdtempSync(join(tmpdir(), 'maas-cli-'));
    const file = join(dir, 'in.json');
    writeFileSync(file, '[[1,2,3,4]]');
    expect(readText(file, 11)).toBe('[[1,2,3,4]]');
    expect(() => readText(file, 10)).toThrow(`${file} holds more than 10 bytes`);
    expect(() => readText(dir)).toThrow(/cannot read .*EISDIR/);
    // /dev/zero has no end: the read stops past the bound instead of filling memory.
    const tooMuch = `/dev/zero holds more than ${MAX_TEXT_INPUT_BYTES} bytes`;
    expect(() => readInput('/dev/zero')).toThrow(tooMuch);
    expect(() => readInput('@/dev/zero')).toThrow(tooMuch);
    expect(() => readLabels(undefined, '/dev/zero')).toThrow(tooMuch);
  });

  it('keeps the digits of integers beyond 2^53 for 64-bit integer inputs, and the number elsewhere', () => {
    const int64 = [{ name: 'x', datatype: 'INT64', shape: [-1, 2] }];
    const fp32 = [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }];
    const rows = readInput('[[9223372036854775807, 9007199254740993]]');
    expect(toInferenceRequest(rows, int64)).toEqual({
      inputs: [
        { name: 'x', shape: [1, 2], datatype: 'INT64', data: ['9223372036854775807', '9007199254740993'] },
      ],
    });
    expect(toInferenceRequest(rows, fp32)).toEqual({
      inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [2 ** 63, 2 ** 53] }],
    });
    expect(toInferenceRequest(readInput('{"x": [[-18446744073709551615, 2]]}'), int64)).toMatchObject({
      inputs: [{ data: ['-18446744073709551615', 2] }],
    });
    // A full request: only INT64/UINT64 data keep the text; parameters, other inputs and strings are as written.
    const full = readInput(
      '{"id":"12345678901234567890","parameters":{"seed":12345678901234567890},"inputs":[' +
        '{"name":"a","datatype":"UINT64","shape":[2],"data":[18446744073709551615,1]},' +
        '{"name":"b","datatype":"FP64","shape":[1],"data":[12345678901234567890]}]}',
    );
    expect(toInferenceRequest(full as Record<string, unknown>, int64)).toEqual({
      id: '12345678901234567890',
      parameters: { seed: Number('12345678901234567890') },
      inputs: [
        { name: 'a', datatype: 'UINT64', shape: [2], data: ['18446744073709551615', 1] },
        { name: 'b', datatype: 'FP64', shape: [1], data: [Number('12345678901234567890')] },
      ],
    });
    // Safe integers of 16 digits, exponents and decimals are plain numbers.
    expect(readInput('[1000000000000000, 1e300, 12345678901234567.5]')).toEqual([
      1e15,
      1e300,
      Number('12345678901234567.5'),
    ]);
    // Keys are kept as they are ('__proto__' included), and any nesting is the server's to judge.
    const proto = readInput(
      '{"parameters":{"__proto__":{"a":1}},"inputs":[{"name":"a","datatype":"INT64","shape":[1],"data":[12345678901234567890]}]}',
    ) as Record<string, unknown>;
    const sent = JSON.parse(JSON.stringify(toInferenceRequest(proto, int64)));
    expect(Object.keys(sent.parameters)).toEqual(['__proto__']);
    expect(sent.inputs[0].data).toEqual(['12345678901234567890']);
    const deep = `{"inputs":[{"name":"a","datatype":"INT64","shape":[1],"data":${'['.repeat(3000)}12345678901234567890${']'.repeat(3000)}}]}`;
    const nested = toInferenceRequest(readInput(deep) as Record<string, unknown>, int64);
    expect(JSON.stringify(nested).includes('"12345678901234567890"')).toBe(true);
  });

  it('infers shapes and refuses ragged arrays', () => {
    expect(
      shapeOf([
        [1, 2, 3],
        [4, 5, 6],
      ]),
    ).toEqual([2, 3]);
    expect(shapeOf([1, 2])).toEqual([2]);
    expect(() => shapeOf([[1, 2], [3]])).toThrow(/ragged/);
    expect(() => shapeOf([[1, 2], 3])).toThrow(/ragged/);
  });

  it('turns rows into an inference request for the model input', () => {
    const inputs = [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }];
    expect(
      toInferenceRequest(
        [
          [1, 2, 3, 4],
          [5, 6, 7, 8],
        ],
        inputs,
      ),
    ).toEqual({
      inputs: [{ name: 'features', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }],
    });
    // one row for a batched model
    expect(toInferenceRequest([1, 2, 3, 4], inputs)).toEqual({
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
    });
    expect(toInferenceRequest({ features: [[1, 2, 3, 4]] }, inputs)).toMatchObject({
      inputs: [{ name: 'features', shape: [1, 4] }],
    });
    const full = { inputs: [{ name: 'x', shape: [1], datatype: 'INT64', data: [1] }] };
    expect(toInferenceRequest(full, inputs)).toBe(full);
    expect(() => toInferenceRequest({ other: [1] }, inputs)).toThrow(/no input 'other'/);
    expect(() => toInferenceRequest([1], [...inputs, { name: 'b', datatype: 'FP32', shape: [1] }])).toThrow(
      /has 2 inputs/,
    );
  });

  it('reads labels from the option or a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'maas-cli-'));
    writeFileSync(join(dir, 'l.json'), '["a","b"]');
    writeFileSync(join(dir, 'l.txt'), 'a\nb\n\nc\n');
    writeFileSync(join(dir, 'bad.json'), '[1,2]');
    expect(readLabels('x, y,z', undefined)).toEqual(['x', 'y', 'z']);
    expect(readLabels(undefined, join(dir, 'l.json'))).toEqual(['a', 'b']);
    expect(readLabels(undefined, join(dir, 'l.txt'))).toEqual(['a', 'b', 'c']);
    expect(readLabels(undefined, undefined)).toBeUndefined();
    expect(() => readLabels(undefined, join(dir, 'bad.json'))).toThrow(/JSON array of strings/);
    expect(() => readLabels('a', join(dir, 'l.txt'))).toThrow(/not both/);
  });

  it('resolves the endpoint: flag, MAAS_ENDPOINT, endpoints.json, default', () => {
    const home = mkdtempSync(join(tmpdir(), 'maas-home-'));
    expect(resolveEndpoint(undefined, { MAAS_HOME: home })).toBe(DEFAULT_ENDPOINT);
    writeFileSync(join(home, 'endpoints.json'), JSON.stringify({ api: 'http://127.0.0.1:4555' }));
    expect(resolveEndpoint(undefined, { MAAS_HOME: home })).toBe('http://127.0.0.1:4555');
    expect(resolveEndpoint(undefined, { MAAS_HOME: home, MAAS_ENDPOINT: 'http://h:1/' })).toBe('http://h:1');
    expect(resolveEndpoint('https://x.example/', { MAAS_ENDPOINT: 'http://h:1' })).toBe('https://x.example');
  });

  it('signs only remote https endpoints and reads the region from an execute-api host', () => {
    expect(needsSigning('https://abc.execute-api.eu-west-1.amazonaws.com')).toBe(true);
    expect(needsSigning('http://127.0.0.1:3000')).toBe(false);
    expect(needsSigning('https://localhost:8443')).toBe(false);
    expect(regionFromHost('abc123.execute-api.eu-west-1.amazonaws.com')).toBe('eu-west-1');
    expect(regionFromHost('api.example.com')).toBeUndefined();
  });

  it('formats tables and nests tensors by shape', () => {
    expect(table(['A', 'BB'], [['xxx', 'y']])).toBe('A    BB\nxxx  y');
    expect(nest([1, 2, 3, 4, 5, 6], [2, 3])).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(nest([0.123456], [1])).toEqual([0.1235]);
  });
});

describe('CLI against an HTTP API', () => {
  const models = {
    models: [
      {
        name: 'iris',
        latestVersion: 2,
        aliases: { prod: 1 },
        createdAt: 't',
        updatedAt: '2026-01-01T00:00:00.000Z',
      },
      {
        name: 'wine',
        latestVersion: 3,
        aliases: { prod: 1, staging: 2 },
        splits: { prod: { canary: { version: 3, weight: 10 } } },
        createdAt: 't',
        updatedAt: '2026-01-01T00:00:00.000Z',
      },
    ],
  };
  const api = fakeApi({
    'PATCH /models/iris/aliases/live': {
      status: 200,
      body: {
        alias: 'live',
        version: 1,
        revision: 4,
        updatedAt: '2026-01-01T00:00:00.000Z',
        routing: { canary: { version: 2, weight: 12.5 }, keyParameter: 'user' },
      },
    },
    'GET /models': { status: 200, body: models },
    'GET /models/iris': {
      status: 200,
      body: {
        name: 'iris',
        latestVersion: 2,
        aliases: { prod: 1 },
        splits: { prod: { canary: { version: 2, weight: 5 }, keyParameter: 'user' } },
        createdAt: 't',
        updatedAt: '2026-01-01T00:00:00.000Z',
      },
    },
    'PUT /models/iris/aliases/prod': {
      status: 200,
      body: { alias: 'prod', version: 2, previousVersion: 1, revision: 2 },
    },
    'PUT /models/iris/aliases/staging': {
      status: 412,
      body: { error: 'alias staging points at 3, not 1', code: 'PRECONDITION_FAILED' },
    },
    'PATCH /models/iris/aliases/prod': {
      status: 200,
      body: {
        alias: 'prod',
        version: 2,
        revision: 2,
        updatedAt: '2026-01-01T00:00:00.000Z',
        capture: { samplePercent: 12.5, input: true, output: false },
      },
    },
    'PATCH /models/iris/aliases/staging': {
      status: 200,
      body: { alias: 'staging', version: 1, revision: 1, updatedAt: '2026-01-01T00:00:00.000Z' },
    },
    'PATCH /models/iris/versions/2': {
      status: 200,
      body: {
        name: 'iris',
        version: 2,
        status: 'READY',
        capture: { samplePercent: 1, input: true, output: true },
      },
    },
    'GET /v2/models/iris': {
      status: 200,
      body: { name: 'iris', inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }], outputs: [] },
    },
    'POST /v2/models/iris/infer': {
      status: 200,
      body: {
        model_name: 'iris',
        model_version: '1',
        outputs: [{ name: 'label', datatype: 'BYTES', shape: [1], data: ['setosa'] }],
      },
    },
  });
  let url: string;
  beforeAll(async () => {
    url = await api.start();
  });
  afterAll(() => api.stop());

  it('lists models as a table (exit 0) and as raw JSON with --json', async () => {
    const io = captureIo();
    expect(await run(argv('--endpoint', url, 'models'), io)).toBe(0);
    expect(io.stdout()).toMatch(/^NAME\s+LATEST\s+ALIASES/);
    expect(io.stdout()).toMatch(/iris\s+2\s+prod=1/);
    expect(io.stdout()).toMatch(/wine\s+3\s+prod=1 \(canary 3 @ 10%\) staging=2/);
    const j = captureIo();
    expect(await run(argv('--endpoint', url, '--json', 'models'), j)).toBe(0);
    expect(JSON.parse(j.stdout())).toEqual(models);
  });

  it('sends promote with expectedVersion and reason', async () => {
    const io = captureIo();
    expect(
      await run(argv('--endpoint', url, 'promote', 'iris', '2', '--expect', '1', '--reason', 'better'), io),
    ).toBe(0);
    const req = api.seen.at(-1)!;
    expect(req.method).toBe('PUT');
    expect(JSON.parse(req.body.toString())).toEqual({ version: 2, expectedVersion: 1, reason: 'better' });
    expect(io.stdout()).toContain('iris@prod: version 1 -> version 2');
  });

  it('canary PATCHes the alias with a split (weight, key parameter, revision), or routing null for --off', async () => {
    const io = captureIo();
    expect(
      await run(
        argv(
          '--endpoint',
          url,
          'canary',
          'iris',
          '2',
          '--weight',
          '12.5',
          '--alias',
          'live',
          '--key-parameter',
          'user',
          '--expect-revision',
          '3',
        ),
        io,
      ),
    ).toBe(0);
    let req = api.seen.at(-1)!;
    expect([req.method, req.url]).toEqual(['PATCH', '/models/iris/aliases/live']);
    expect(JSON.parse(req.body.toString())).toEqual({
      routing: { canary: { version: 2, weight: 12.5 }, keyParameter: 'user' },
      expectedRevision: 3,
    });
    expect(io.stdout()).toContain(
      "iris@live: version 1, canary 2 @ 12.5% (key parameter 'user') (revision 4)",
    );

    const off = captureIo();
    expect(await run(argv('--endpoint', url, 'canary', 'iris', '--off', '--alias', 'staging'), off)).toBe(0);
    req = api.seen.at(-1)!;
    expect([req.method, req.url]).toEqual(['PATCH', '/models/iris/aliases/staging']);
    expect(JSON.parse(req.body.toString())).toEqual({ routing: null });
    expect(off.stdout()).toContain('iris@staging: version 1, no canary (revision 1)');

    // The default alias is prod; its key parameter stays when none is given (a split is written whole, and
    // dropping it would move the keys), and goes with --no-key-parameter.
    expect(await run(argv('--endpoint', url, 'canary', 'iris', '2', '--weight', '0'), captureIo())).toBe(0);
    req = api.seen.at(-1)!;
    expect([req.method, req.url]).toEqual(['PATCH', '/models/iris/aliases/prod']);
    expect(JSON.parse(req.body.toString())).toEqual({
      routing: { canary: { version: 2, weight: 0 }, keyParameter: 'user' },
    });
    expect(
      await run(
        argv('--endpoint', url, 'canary', 'iris', '2', '--weight', '20', '--no-key-parameter'),
        captureIo(),
      ),
    ).toBe(0);
    req = api.seen.at(-1)!;
    expect(JSON.parse(req.body.toString())).toEqual({ routing: { canary: { version: 2, weight: 20 } } });

    const seen = api.seen.length;
    for (const args of [
      ['canary', 'iris'],
      ['canary', 'iris', '2'],
      ['canary', 'iris', '--weight', '10'],
      ['canary', 'iris', '2', '--weight', 'lots'],
      ['canary', 'iris', '2', '--off'],
      ['canary', 'iris', '--off', '--weight', '5'],
      ['canary', 'iris', '--off', '--key-parameter', 'user'],
    ]) {
      const e = captureIo();
      expect(await run(argv('--endpoint', url, ...args), e), args.join(' ')).toBe(2);
      expect(e.stderr(), args.join(' ')).toMatch(/error/);
    }
    expect(api.seen.length).toBe(seen);
  });

  it('capture-config PATCHes the alias or the version with the declaration, or null for --off', async () => {
    const alias = captureIo();
    expect(
      await run(
        argv(
          '--endpoint',
          url,
          'capture-config',
          'iris',
          '--alias',
          'prod',
          '--sample',
          '12.5',
          '--no-output',
        ),
        alias,
      ),
    ).toBe(0);
    let req = api.seen.at(-1)!;
    expect([req.method, req.url]).toEqual(['PATCH', '/models/iris/aliases/prod']);
    expect(JSON.parse(req.body.toString())).toEqual({
      capture: { samplePercent: 12.5, input: true, output: false },
    });
    expect(alias.stdout()).toContain('iris@prod: capture 12.5% of requests (input)');

    const version = captureIo();
    expect(
      await run(argv('--endpoint', url, 'capture-config', 'iris', '--version=2', '--sample', '1'), version),
    ).toBe(0);
    req = api.seen.at(-1)!;
    expect([req.method, req.url]).toEqual(['PATCH', '/models/iris/versions/2']);
    expect(JSON.parse(req.body.toString())).toEqual({
      capture: { samplePercent: 1, input: true, output: true },
    });
    expect(version.stdout()).toContain('iris version 2: capture 1% of requests (input, output)');

    const off = captureIo();
    expect(
      await run(argv('--endpoint', url, 'capture-config', 'iris', '--alias', 'staging', '--off'), off),
    ).toBe(0);
    req = api.seen.at(-1)!;
    expect([req.method, req.url]).toEqual(['PATCH', '/models/iris/aliases/staging']);
    expect(JSON.parse(req.body.toString())).toEqual({ capture: null });
    expect(off.stdout()).toContain('iris@staging: capture off');

    const json = captureIo();
    expect(
      await run(
        argv('--endpoint', url, '--json', 'capture-config', 'iris', '--alias', 'prod', '--sample', '12.5'),
        json,
      ),
    ).toBe(0);
    expect(JSON.parse(json.stdout())).toMatchObject({ alias: 'prod', capture: { samplePercent: 12.5 } });

    const seen = api.seen.length;
    for (const args of [
      ['capture-config', 'iris', '--sample', '5'],
      ['capture-config', 'iris', '--alias', 'prod', '--version=2', '--sample', '5'],
      ['capture-config', 'iris', '--alias', 'prod'],
      ['capture-config', 'iris', '--alias', 'prod', '--sample', '5', '--off'],
      ['capture-config', 'iris', '--alias', 'prod', '--off', '--no-input'],
      ['capture-config', 'iris', '--alias', 'prod', '--sample', 'lots'],
      ['capture-config', 'iris', '--version=two', '--off'],
    ]) {
      const io = captureIo();
      expect(await run(argv('--endpoint', url, ...args), io), args.join(' ')).toBe(2);
      expect(io.stderr(), args.join(' ')).toMatch(/error/);
    }
    expect(api.seen.length).toBe(seen);
  });

  it('exits 1 and prints the server message when the server says no', async () => {
    const io = captureIo();
    expect(
      await run(argv('--endpoint', url, 'promote', 'iris', '2', '--alias', 'staging', '--expect', '1'), io),
    ).toBe(1);
    expect(io.stderr()).toContain('alias staging points at 3, not 1');
    expect(io.stderr()).toContain('412 PRECONDITION_FAILED');
    const nf = captureIo();
    expect(await run(argv('--endpoint', url, 'versions', 'ghost'), nf)).toBe(1);
    expect(nf.stderr()).toContain('no such thing');
  });

  it('exits 1 when the service cannot be reached', async () => {
    const io = captureIo();
    expect(await run(argv('--endpoint', 'http://127.0.0.1:1', 'models'), io)).toBe(1);
    expect(io.stderr()).toContain('cannot reach http://127.0.0.1:1');
  });

  it('exits 2 on usage errors', async () => {
    const cases = [
      argv('bogus'),
      argv('promote', 'iris'),
      argv('promote', 'iris', 'two'),
      argv('predict', 'iris'),
      argv('--endpoint', url, 'predict', 'iris', '--input', '[1,'),
      argv('register', '/nonexistent/model.onnx', '--name', 'x'),
      argv('register', 'x.onnx'),
      argv('--endpoint', 'not a url', 'models'),
      argv('--endpoint', 'ftp://example.com', 'models'),
      argv(),
    ];
    for (const args of cases) {
      const io = captureIo();
      expect(await run(args, io), args.join(' ')).toBe(2);
      expect(io.stderr(), args.join(' ')).toMatch(/error|Usage/);
    }
  });

  it('exits 2, sending nothing, for a port out of range, a token with blanks, an https endpoint of unknown region, --timeout without waiting', async () => {
    const saved = { AWS_REGION: process.env.AWS_REGION, AWS_DEFAULT_REGION: process.env.AWS_DEFAULT_REGION };
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    const seen = api.seen.length;
    try {
      for (const [args, message, env] of [
        [argv('dev', '--port', '99999'), "--port must be from 0 to 65535, got '99999'"],
        [argv('dev', '--port', '0x10'), "--port must be a non-negative integer, got '0x10'"],
        [argv('dev'), "PORT must be from 0 to 65535, got '99999'", { PORT: '99999' }],
        [argv('dev'), "PORT must be a non-negative integer, got 'http'", { PORT: 'http' }],
        [
          argv('--endpoint', url, 'console', '--port', '99999'),
          "--port must be from 0 to 65535, got '99999'",
        ],
        // A negative number after a command's --version is its value (refused), not the program's --version.
        [
          argv('--endpoint', url, 'capture', 'iris', '--version', '-1'),
          "--version must be a non-negative integer, got '-1'",
        ],
        [
          argv('--endpoint', url, 'derive', 'iris', '1', '--optimize', 'basic', '--timeout', '5'),
          '--timeout goes with --wait (without it the command does not wait)',
        ],
        [
          argv('--endpoint', url, 'register', 'model.onnx', '--name', 'm', '--no-wait', '--timeout', '5'),
          '--timeout goes with waiting; --no-wait does not wait',
        ],
        [
          argv('--endpoint', url, '--token', 'a b', 'models'),
          'the bearer token is empty or contains whitespace',
        ],
        [
          argv('--endpoint', 'https://example.com', 'models'),
          'cannot tell the AWS region of https://example.com: pass --region or set AWS_REGION',
        ],
      ] as const) {
        const io = captureIo(env);
        expect(await run(args, io), args.join(' ')).toBe(2);
        expect(io.stderr(), args.join(' ')).toBe(`error: ${message}\n`);
      }
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
    }
    expect(api.seen.length).toBe(seen);
  });

  it('takes --weight and --sample as decimal numbers only (exit 2 for hexadecimal, exponents, blanks)', async () => {
    const seen = api.seen.length;
    for (const args of [
      ['capture-config', 'iris', '--alias', 'exp', '--sample', '0x10'],
      ['capture-config', 'iris', '--alias', 'exp', '--sample', '1e1'],
      ['capture-config', 'iris', '--alias', 'exp', '--sample', ' 5'],
      ['canary', 'iris', '2', '--weight', '0x10'],
      ['canary', 'iris', '2', '--weight', '5 '],
      ['history', 'iris', '--limit', '1e1'],
    ]) {
      const io = captureIo();
      expect(await run(argv('--endpoint', url, ...args), io), args.join(' ')).toBe(2);
      expect(io.stderr(), args.join(' ')).toMatch(/^error: --(sample|weight|limit) must be a /);
    }
    expect(api.seen.length).toBe(seen);
  });

  it('refuses an --input without rows (exit 2, nothing sent)', async () => {
    const empty = captureIo();
    expect(await run(argv('--endpoint', url, 'predict', 'iris', '--input', '[]'), empty)).toBe(2);
    expect(empty.stderr()).toBe("error: input 'features' has no rows: give at least one\n");
    expect(api.seen.at(-1)?.method).toBe('GET'); // the metadata was read, nothing was sent to infer
  });

  it('prints help with exit 0', async () => {
    const io = captureIo();
    expect(await run(argv('--help'), io)).toBe(0);
    expect(io.stdout()).toContain('register');
  });

  it('predicts from rows using the model metadata', async () => {
    const io = captureIo();
    expect(await run(argv('--endpoint', url, 'predict', 'iris', '--input', '[5.1,3.5,1.4,0.2]'), io)).toBe(0);
    const req = api.seen.at(-1)!;
    expect(req.url).toBe('/v2/models/iris/infer');
    expect(JSON.parse(req.body.toString())).toEqual({
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }],
    });
    expect(io.stdout()).toContain('label BYTES[1]  ["setosa"]');
  });

  it('signs requests with SigV4 for execute-api when signing is on', async () => {
    const client = new MaasClient({
      endpoint: url,
      sign: true,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });
    await client.request('GET', '/models?limit=5');
    const h = api.seen.at(-1)!.headers;
    expect(h.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[^,]*host[^,]*, Signature=[0-9a-f]{64}$/,
    );
    expect(h['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    const plain = new MaasClient({ endpoint: url });
    await plain.request('GET', '/models');
    expect(api.seen.at(-1)!.headers.authorization).toBeUndefined();
  });

  it('sends a bearer token instead of SigV4 headers when given one', async () => {
    const client = new MaasClient({
      endpoint: url,
      sign: true,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret', sessionToken: 'session' },
      token: 'eyJhbGciOiJSUzI1NiJ9.e30.sig',
    });
    await client.request('GET', '/models');
    const h = api.seen.at(-1)!.headers;
    expect(h.authorization).toBe('Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig');
    expect(Object.keys(h).filter((k) => k.startsWith('x-amz-'))).toEqual([]);
    expect(() => new MaasClient({ endpoint: url, token: 'two words' })).toThrow(/whitespace/);
  });

  it('takes the token from --token, else MAAS_TOKEN, for every command', async () => {
    expect(await run(argv('--endpoint', url, '--token', 'tok-flag', 'models'), captureIo())).toBe(0);
    expect(api.seen.at(-1)!.headers.authorization).toBe('Bearer tok-flag');
    const env = { MAAS_TOKEN: 'tok-env' };
    expect(await run(argv('--endpoint', url, 'models'), captureIo(env))).toBe(0);
    expect(api.seen.at(-1)!.headers.authorization).toBe('Bearer tok-env');
    expect(await run(argv('--endpoint', url, '--token', 'tok-flag', 'models'), captureIo(env))).toBe(0);
    expect(api.seen.at(-1)!.headers.authorization).toBe('Bearer tok-flag');
    // A remote https endpoint with a token is not signed (no credentials or region needed).
    const remote = new MaasClient({
      endpoint: 'https://abc.execute-api.eu-west-1.amazonaws.com',
      token: 't',
    });
    expect((remote as unknown as { signer?: unknown }).signer).toBeUndefined();
  });

  it('signs for the region an execute-api host names, even when AWS_REGION differs', async () => {
    const saved = process.env.AWS_REGION;
    process.env.AWS_REGION = 'us-east-1';
    try {
      const client = new MaasClient({
        endpoint: 'https://abc123.execute-api.eu-central-1.amazonaws.com',
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      });
      const signer = (client as unknown as { signer: { regionProvider: () => Promise<string> } }).signer;
      expect(await signer.regionProvider()).toBe('eu-central-1');
    } finally {
      if (saved === undefined) delete process.env.AWS_REGION;
      else process.env.AWS_REGION = saved;
    }
  });

  it('uploads bytes to a presigned URL in chunks with progress', async () => {
    const bytes = new Uint8Array(1_000_000).map((_, i) => i % 251);
    const progress: number[] = [];
    const put = fakeApi({ 'PUT /upload': { status: 200, body: undefined } });
    const base = await put.start();
    try {
      await uploadToPresignedUrl(
        `${base}/upload?X-Amz-Signature=abc`,
        bytes,
        (sent) => progress.push(sent),
        100_000,
      );
      expect(Buffer.compare(put.seen[0]!.body, Buffer.from(bytes))).toBe(0);
      expect(progress).toHaveLength(10);
      expect(progress.at(-1)).toBe(1_000_000);
      expect([...progress].sort((a, b) => a - b)).toEqual(progress);
      await expect(uploadToPresignedUrl(`${base}/elsewhere`, bytes)).rejects.toThrow(/upload refused/);
    } finally {
      await put.stop();
    }
  });
});

describe('batch jobs', () => {
  /** A bucket stand-in whose "pipeline" writes status (and output) once the input arrives. */
  function fakeBucket(result: { state: 'done' | 'failed'; afterPolls: number }) {
    const objects = new Map<string, Uint8Array>();
    let polls = 0;
    const store = {
      bucket: 'b',
      async put(key: string, body: Uint8Array | string) {
        objects.set(key, typeof body === 'string' ? Buffer.from(body) : body);
      },
      async get(key: string) {
        if (key.endsWith('/status.json') && objects.has(key.replace('status.json', 'input.jsonl'))) {
          polls++;
          const jobId = key.split('/')[1];
          const state = polls > result.afterPolls ? result.state : 'running';
          if (state === 'done') objects.set(`batch/${jobId}/output.jsonl`, Buffer.from('{"ok":1}\n'));
          return Buffer.from(
            JSON.stringify({
              jobId,
              state,
              total: 1,
              succeeded: state === 'done' ? 1 : 0,
              failed: 0,
              version: 4,
              ...(state === 'failed' ? { error: 'nope', code: 'MODEL_NOT_FOUND' } : {}),
            }),
          );
        }
        return objects.get(key);
      },
      async delete() {},
      async head() {
        return undefined;
      },
    };
    return { store, objects };
  }

  it('writes job.json then input.jsonl and waits for the output', async () => {
    const { store, objects } = fakeBucket({ state: 'done', afterPolls: 2 });
    const seen: string[] = [];
    const r = await runBatch(
      store,
      { jobId: 'j1', model: 'iris', ref: '2', input: Buffer.from('{}\n') },
      { pollMs: 1, onStatus: (s) => seen.push(s.state) },
    );
    expect(JSON.parse(Buffer.from(objects.get('batch/j1/job.json')!).toString())).toEqual({
      model: 'iris',
      ref: '2',
    });
    expect(r.status).toMatchObject({ state: 'done', version: 4 });
    expect(Buffer.from(r.output!).toString()).toBe('{"ok":1}\n');
    expect(seen).toEqual(['running', 'running', 'done']);
  });

  it('returns a failed job without output and gives up after the timeout', async () => {
    const failed = await runBatch(
      fakeBucket({ state: 'failed', afterPolls: 0 }).store,
      { jobId: 'j2', model: 'x', input: Buffer.from('') },
      { pollMs: 1 },
    );
    expect(failed.status).toMatchObject({ state: 'failed', code: 'MODEL_NOT_FOUND' });
    expect(failed.output).toBeUndefined();
    await expect(
      runBatch(
        fakeBucket({ state: 'done', afterPolls: 1e9 }).store,
        { jobId: 'j3', model: 'x', input: Buffer.from('') },
        { pollMs: 1, timeoutMs: 20 },
      ),
    ).rejects.toThrow(/did not finish in time/);
  });

  it('makes job ids that are one path segment and finds the local bucket only for the local API', () => {
    expect(newJobId(new Date('2026-11-23T09:30:00.123Z'))).toMatch(/^cli-20261123T093000Z-[0-9a-f]{8}$/);
    const home = mkdtempSync(join(tmpdir(), 'maas-home-'));
    writeFileSync(
      join(home, 'endpoints.json'),
      JSON.stringify({ api: 'http://127.0.0.1:3000', s3: 'http://127.0.0.1:9', bucket: 'maas-models' }),
    );
    expect(batchStore({ endpoint: 'http://127.0.0.1:3000' }, { MAAS_HOME: home })?.bucket).toBe(
      'maas-models',
    );
    expect(
      batchStore({ endpoint: 'https://x.execute-api.eu-west-1.amazonaws.com' }, { MAAS_HOME: home }),
    ).toBeUndefined();
    expect(
      batchStore({ endpoint: 'https://x', bucket: 'prod-bucket', region: 'eu-west-1' }, { MAAS_HOME: home })
        ?.bucket,
    ).toBe('prod-bucket');
  });
});

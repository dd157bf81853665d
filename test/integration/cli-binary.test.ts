/**
 * `maas predict` and binary tensor data, against the real local service (through a recording proxy that sees each
 * request's bytes and headers): binary both ways by default when `GET /v2` announces the extension, JSON with
 * `--json` and against a server that does not announce it, the same printed answer either way, refusals reported
 * as before, and a SigV4 signature that covers the binary body.
 */
import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MaasClient } from '../../functions/cli/client';
import { predict } from '../../functions/cli/commands/inference';
import { formatPrediction } from '../../functions/cli/format';
import { modelPath } from '../../functions/cli/input';
import { run } from '../../functions/cli/program';
import { buildModel, ElemType } from '../../functions/local/onnx-builder';
import { buildIrisModel } from '../../functions/local/sample-model';
import { captureIo } from '../helpers/cli-io';
import { startFakeApi } from '../helpers/fake-api';
import { startTestLocalService, type TestLocalService } from '../helpers/local-services';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');

/** One request that went through the proxy, with the answer it got. */
interface Exchange {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly status: number;
  readonly answerHeaders: Headers;
}

/** A proxy in front of `target` recording every exchange, raw bytes included. */
async function startRecordingProxy(target: string) {
  const seen: Exchange[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v !== undefined && !['host', 'content-length', 'connection'].includes(k)) headers[k] = String(v);
      }
      const answer = await fetch(`${target}${req.url}`, {
        method: req.method,
        headers,
        ...(body.length > 0 ? { body } : {}),
      });
      const bytes = Buffer.from(await answer.arrayBuffer());
      seen.push({
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        status: answer.status,
        answerHeaders: answer.headers,
      });
      const out: Record<string, string> = {};
      for (const name of ['content-type', 'inference-header-content-length']) {
        const v = answer.headers.get(name);
        if (v !== null) out[name] = v;
      }
      res.writeHead(answer.status, out);
      res.end(bytes);
    });
  });
  const url = await new Promise<string>((r) =>
    server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
  return { url, seen, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/**
 * Checks a SigV4 `Authorization` header against the request as received (method, path, signed headers, `body`),
 * computed here from the algorithm's definition with node:crypto.
 */
function sigV4Valid(x: Exchange, body: Buffer, secret: string): boolean {
  const auth = String(x.headers.authorization);
  const m =
    /^AWS4-HMAC-SHA256 Credential=[^/]+\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (!m) return false;
  const [, date, region, service, signedHeaders, signature] = m as unknown as string[];
  const names = (signedHeaders as string).split(';');
  const url = new URL(x.path, 'http://h');
  const canonical = [
    x.method,
    url.pathname,
    [...url.searchParams]
      .sort()
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('&'),
    names.map((n) => `${n}:${String(x.headers[n]).trim()}\n`).join(''),
    signedHeaders,
    sha256(body),
  ].join('\n');
  const amzDate = String(x.headers['x-amz-date']);
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${secret}`, date as string), region as string), service as string),
    'aws4_request',
  );
  return createHmac('sha256', key).update(toSign).digest('hex') === signature;
}

describe('maas predict with binary tensor data', () => {
  let svc: TestLocalService;
  let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
  const dir = mkdtempSync(join(tmpdir(), 'maas-cli-binary-'));
  const cli = async (endpoint: string, ...args: string[]) => {
    const c = captureIo();
    const code = await run(['node', 'maas', '--endpoint', endpoint, ...args], c);
    return { code, out: c.stdout(), err: c.stderr() };
  };
  const infers = () => proxy.seen.filter((x) => x.method === 'POST' && x.path.endsWith('/infer'));
  /** The one infer request sent since `infers()` had `before` of them. */
  const sentSince = (before: number) => {
    const sent = infers().slice(before);
    expect(sent).toHaveLength(1);
    return sent[0]!;
  };
  const rows = '[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3],[6.4,3.2,4.5,1.5]]';

  beforeAll(async () => {
    svc = await startTestLocalService('cli-binary');
    proxy = await startRecordingProxy(svc.server.url);
    writeFileSync(join(dir, 'iris.onnx'), buildIrisModel());
    writeFileSync(join(dir, 'labels.txt'), 'setosa\nversicolor\nvirginica\n');
    const r = await cli(
      svc.server.url,
      'register',
      join(dir, 'iris.onnx'),
      '--name',
      'flowers',
      '--labels-file',
      join(dir, 'labels.txt'),
      '--postprocess',
      '{"softmax":true,"argmax":true}',
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    // `y = x` on INT64 [batch, 2]: what the answer says is what the request carried.
    writeFileSync(
      join(dir, 'int64.onnx'),
      buildModel({
        name: 'identity-int64',
        inputs: [{ name: 'x', elemType: ElemType.INT64, shape: ['batch', 2] }],
        outputs: [{ name: 'y', elemType: ElemType.INT64, shape: ['batch', 2] }],
        nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
      }),
    );
    const i = await cli(svc.server.url, 'register', join(dir, 'int64.onnx'), '--name', 'same64');
    expect(i.err).toBe('');
    expect(i.code).toBe(0);
  });

  afterAll(async () => {
    await proxy?.stop();
    await svc?.close();
  });

  it('sends binary inputs and asks binary outputs by default; prints what the JSON path prints', async () => {
    const before = infers().length;
    const bin = await cli(proxy.url, 'predict', 'flowers', '--input', rows);
    expect(bin.err).toBe('');
    expect(bin.code).toBe(0);
    const [x] = infers().slice(before);
    expect(x?.headers['inference-header-content-length']).toMatch(/^\d+$/);
    const headerLength = Number(x!.headers['inference-header-content-length']);
    const header = JSON.parse(x!.body.subarray(0, headerLength).toString('utf8'));
    expect(header).toMatchObject({
      parameters: { binary_data_output: true },
      inputs: [{ name: 'features', datatype: 'FP32', shape: [3, 4], parameters: { binary_data_size: 48 } }],
    });
    expect(header.inputs[0].data).toBeUndefined();
    expect(x!.body.length).toBe(headerLength + 48);
    expect(Array.from(new Float32Array(Uint8Array.from(x!.body.subarray(headerLength)).buffer))).toEqual(
      Array.from(new Float32Array([5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3, 6.4, 3.2, 4.5, 1.5])),
    );
    expect(x!.status).toBe(200);
    expect(x!.answerHeaders.get('content-type')).toBe('application/octet-stream');
    expect(x!.answerHeaders.get('inference-header-content-length')).toMatch(/^\d+$/);

    const json = await cli(proxy.url, '--json', 'predict', 'flowers', '--input', rows);
    expect(json.code).toBe(0);
    const jx = infers().at(-1)!;
    expect(jx.headers['inference-header-content-length']).toBeUndefined();
    expect(jx.headers['content-type']).toBe('application/json');
    expect(JSON.parse(jx.body.toString('utf8'))).toEqual({
      inputs: [{ name: 'features', shape: [3, 4], datatype: 'FP32', data: JSON.parse(rows).flat() }],
    });
    expect(jx.answerHeaders.get('content-type')).toBe('application/json');
    const answer = JSON.parse(json.out);
    expect(answer.outputs.find((o: { name: string }) => o.name === 'label').data).toEqual([
      'setosa',
      'virginica',
      'versicolor',
    ]);
    // The same print but the inference id, each answer's own (what maas feedback --id takes).
    const id = x!.answerHeaders.get('x-maas-inference-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(bin.out).toBe(`${formatPrediction({ ...answer, id })}\n`);
    expect(bin.out).toContain(`flowers version 1, inference id ${id}\n`);
    expect(bin.out).toContain('label BYTES[3]  ["setosa","virginica","versicolor"]');
  });

  it('gives the same answer both ways, every output (FP32, INT64, BYTES) converted back to plain arrays', async () => {
    const c = new MaasClient({ endpoint: proxy.url });
    const request = {
      id: 'same-1',
      inputs: [{ name: 'features', shape: [3, 4], datatype: 'FP32', data: JSON.parse(rows) }],
    };
    const bin = await predict(c, modelPath('flowers'), structuredClone(request));
    const json = await predict(c, modelPath('flowers'), structuredClone(request), true);
    expect(bin.transport).toBe('binary');
    expect(json.transport).toBe('json');
    expect(bin.answer).toEqual(json.answer);
    expect(new Set(bin.answer.outputs.map((o) => o.datatype))).toEqual(new Set(['BYTES', 'FP32', 'INT64']));
  });

  it('sends a full OIP request from --input as binary too, and leaves as JSON an input it cannot convert', async () => {
    const full = JSON.stringify({
      id: 'full-1',
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [[6.4, 3.2, 4.5, 1.5]] }],
      outputs: [{ name: 'label' }],
    });
    const bin = await cli(proxy.url, 'predict', 'flowers@1', '--input', full);
    expect(bin.code).toBe(0);
    const x = infers().at(-1)!;
    const headerLength = Number(x.headers['inference-header-content-length']);
    const header = JSON.parse(x.body.subarray(0, headerLength).toString('utf8'));
    expect(header).toMatchObject({
      id: 'full-1',
      parameters: { binary_data_output: true },
      inputs: [{ name: 'features', parameters: { binary_data_size: 16 } }],
      outputs: [{ name: 'label' }],
    });
    const json = await cli(proxy.url, '--json', 'predict', 'flowers@1', '--input', full);
    expect(bin.out).toBe(`${formatPrediction(JSON.parse(json.out))}\n`);
    expect(bin.out).toContain('label BYTES[1]  ["versicolor"]');

    // A string among FP32 data cannot be binary: it goes as JSON data and the server refuses it as it does in JSON.
    const bad = JSON.stringify({
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 'x', 4] }],
    });
    const b = await cli(proxy.url, 'predict', 'flowers', '--input', bad);
    const bx = infers().at(-1)!;
    const bh = JSON.parse(
      bx.body.subarray(0, Number(bx.headers['inference-header-content-length'])).toString(),
    );
    expect(bh.inputs[0]).toEqual({ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 'x', 4] });
    const j = await cli(proxy.url, '--json', 'predict', 'flowers', '--input', bad);
    expect(b.code).toBe(1);
    expect(j.code).toBe(1);
    expect(b.err).toMatch(/400 INVALID_DATA/);
    expect(b.err).toBe(j.err);
  });

  it('judges --input as --json does: 64-bit integers beyond 2^53 exact, data nested unlike its shape and parameters that are no object refused', async () => {
    // Rows of a 64-bit model, and a full request: every digit reaches the model and comes back.
    for (const input of [
      '[[9223372036854775807, 9007199254740993]]',
      '{"inputs":[{"name":"x","datatype":"INT64","shape":[1,2],"data":[[-9223372036854775808,9007199254740993]]}]}',
    ]) {
      const before = infers().length;
      const bin = await cli(proxy.url, 'predict', 'same64', '--input', input);
      expect(sentSince(before).headers['inference-header-content-length']).toBeDefined();
      const json = await cli(proxy.url, '--json', 'predict', 'same64', '--input', input);
      expect(bin.err).toBe('');
      expect(json.err).toBe('');
      const expected = input.startsWith('[')
        ? ['9223372036854775807', '9007199254740993']
        : ['-9223372036854775808', '9007199254740993'];
      expect(JSON.parse(json.out).outputs[0].data).toEqual(expected);
      expect(bin.out).toContain(JSON.stringify(expected));
    }
    const refused = [
      // Nested data with the right number of elements but not the shape's nesting.
      '{"inputs":[{"name":"features","datatype":"FP32","shape":[2,4],"data":[[1,2,3,4,5,6,7,8]]}]}',
      '{"inputs":[{"name":"features","datatype":"FP32","shape":[1,4],"data":[[1,[2],3,4]]}]}',
      // Parameters that are no object, of the request and of an input.
      '{"inputs":[{"name":"features","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}],"parameters":"foo"}',
      '{"inputs":[{"name":"features","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}],"parameters":[1]}',
      '{"inputs":[{"name":"features","datatype":"FP32","shape":[1,4],"data":[1,2,3,4],"parameters":[5]}]}',
    ];
    for (const input of refused) {
      const before = infers().length;
      const bin = await cli(proxy.url, 'predict', 'flowers', '--input', input);
      expect(sentSince(before).headers['inference-header-content-length'], input).toBeDefined();
      const json = await cli(proxy.url, '--json', 'predict', 'flowers', '--input', input);
      expect(json.code, input).toBe(1);
      expect(json.err, input).toMatch(/\(400 [A-Z_]+\)/);
      expect(bin.code, input).toBe(1);
      expect(bin.err, input).toBe(json.err);
    }
  });

  it('reads --input - from standard input (the maas command itself)', async () => {
    const child = spawn(
      process.execPath,
      [join(ROOT, 'bin', 'maas.js'), '--endpoint', proxy.url, '--json', 'predict', 'flowers', '--input', '-'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.end(rows);
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(Buffer.concat(err).toString()).toBe('');
    expect(code).toBe(0);
    expect(
      JSON.parse(Buffer.concat(out).toString()).outputs.find((o: { name: string }) => o.name === 'label')
        .data,
    ).toEqual(['setosa', 'virginica', 'versicolor']);
  });

  it('says so when a binary answer comes without its header length', async () => {
    const api = createServer((req, res) => {
      if (req.url === '/v2') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ name: 'x', version: '1', extensions: ['binary_tensor_data'] }));
        return;
      }
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(Buffer.from('{"model_name":"iris","model_version":"1","outputs":[]}'));
      });
    });
    const url = await new Promise<string>((r) =>
      api.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(api.address() as AddressInfo).port}`)),
    );
    try {
      const r = await cli(url, 'predict', 'iris', '--input', '{"inputs":[]}');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/binary data without its Inference-Header-Content-Length header .*--json/);
    } finally {
      await new Promise<void>((r) => api.close(() => r()));
    }
  });

  it('reports refusals of a binary request as before (exit 1, status and code)', async () => {
    const before = infers().length;
    const r = await cli(
      proxy.url,
      'predict',
      'flowers',
      '--input',
      JSON.stringify({ inputs: [{ name: 'features', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] }),
    );
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error: .*\(400 [A-Z_]+\)/);
    expect(sentSince(before).headers['inference-header-content-length']).toBeDefined();
    const missing = await cli(proxy.url, 'predict', 'nothing-here@1', '--input', '{"inputs":[]}');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/404/);
  });

  it('sends JSON to a server whose GET /v2 does not list binary_tensor_data', async () => {
    const answer = {
      model_name: 'iris',
      model_version: '1',
      outputs: [{ name: 'label', datatype: 'BYTES', shape: [1], data: ['setosa'] }],
    };
    const api = await startFakeApi({
      'GET /v2': { status: 200, body: { name: 'other', version: '1', extensions: ['model_repository'] } },
      'GET /v2/models/iris': {
        status: 200,
        body: { name: 'iris', inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }] },
      },
      'POST /v2/models/iris/infer': { status: 200, body: answer },
    });
    try {
      const r = await cli(api.url, 'predict', 'iris', '--input', '[5.1,3.5,1.4,0.2]');
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const req = api.seen.find((s) => s.method === 'POST')!;
      expect(req.headers['inference-header-content-length']).toBeUndefined();
      expect(req.body).toEqual({
        inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }],
      });
      expect(r.out).toBe(`${formatPrediction(answer)}\n`);
      expect(api.seen.map((s) => `${s.method} ${s.url}`)).toEqual([
        'GET /v2/models/iris',
        'GET /v2',
        'POST /v2/models/iris/infer',
      ]);
    } finally {
      await api.stop();
    }
  });

  it('signs a binary request with SigV4 over its bytes', async () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const c = new MaasClient({
      endpoint: proxy.url,
      sign: true,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: secret },
    });
    const { answer, transport } = await predict(c, modelPath('flowers'), {
      inputs: [{ name: 'features', shape: [2, 4], datatype: 'FP32', data: JSON.parse(rows).slice(0, 2) }],
    });
    expect(transport).toBe('binary');
    expect(answer.outputs.find((o) => o.name === 'label')?.data).toEqual(['setosa', 'virginica']);
    const x = infers().at(-1)!;
    expect(x.headers.authorization).toMatch(
      /Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request/,
    );
    const signed = /SignedHeaders=([^,]+)/.exec(String(x.headers.authorization))![1]!.split(';');
    expect(signed).toEqual(expect.arrayContaining(['host', 'inference-header-content-length', 'x-amz-date']));
    const headerLength = Number(x.headers['inference-header-content-length']);
    expect(x.body.length).toBe(headerLength + 32);
    expect(sigV4Valid(x, x.body, secret)).toBe(true);
    // The signature is over these bytes: one flipped tensor byte, or the body without its tensors, no longer matches.
    const flipped = Buffer.from(x.body);
    flipped[headerLength + 5] = flipped[headerLength + 5]! ^ 0x01;
    expect(sigV4Valid(x, flipped, secret)).toBe(false);
    expect(sigV4Valid(x, x.body.subarray(0, headerLength), secret)).toBe(false);
    expect(sigV4Valid(x, x.body, 'another secret')).toBe(false);
    // The GET /v2 probe before it is signed too (an empty body).
    const probe = proxy.seen.filter((s) => s.path === '/v2').at(-1)!;
    expect(sigV4Valid(probe, Buffer.alloc(0), secret)).toBe(true);
  });
});

/**
 * The binary tensor data extension driven over real HTTP (the local server) by a second client written
 * independently of the project's encoder and decoder: test/clients/oip_binary_client.py (Python 3 + numpy),
 * built from Triton's extension_binary_data.md and the way tritonclient.http builds requests and reads answers.
 * A misreading of the spec shared by maas's own encoder and decoder cannot pass here unnoticed.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMlp } from '../../functions/local/onnx-builder';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import {
  addConstant,
  createPredictTestEnv,
  identityAllTypes,
  type PredictTestEnv,
} from '../helpers/predict-env';
import { runPython } from '../helpers/python';

const CLIENT = join(__dirname, '..', 'clients', 'oip_binary_client.py');

/** A canonical element value of the client: see the client's doc string. */
type Value = boolean | number | string | { b64: string } | null;
interface PlanInput {
  name: string;
  datatype: string;
  shape: number[];
  values: Value[];
  binary?: boolean;
}
interface PlanCase {
  id: string;
  model: string;
  inputs: PlanInput[];
  outputs?: { name: string; binary?: boolean | null }[] | null;
  binary_data_output?: boolean;
  raw?: boolean;
  compression?: 'gzip' | 'deflate';
  tamper?: { binary_data_size_delta?: number; truncate?: number; truncate_compressed?: number };
}
interface DecodedOutput {
  datatype: string;
  shape: number[];
  binary: boolean;
  values: Value[];
}
interface CaseResult {
  id: string;
  status: number;
  content_type?: string;
  content_encoding?: string | null;
  header_length: number | null;
  body?: {
    model_name?: string;
    outputs?: { name: string; datatype: string; shape: number[]; parameters?: Record<string, unknown> }[];
    error?: string;
    code?: string;
  };
  outputs?: Record<string, DecodedOutput>;
  error?: string;
  raw_hex?: string;
}

let env: PredictTestEnv;
let server: RunningLocalServer;

beforeAll(async () => {
  env = await createPredictTestEnv();
  await env.register('identity-all', identityAllTypes());
  await env.register('add', addConstant(1));
  await env.register('classifier', buildMlp({ inFeatures: 4, layers: [8, 3], seed: 11 }), {
    postprocess: { softmax: true, argmax: true },
    labels: ['setosa', 'versicolor', 'virginica'],
  });
  server = await startLocalServer({ port: 0, handlers: { predict: env.handler }, actor: 'local:tester' });
});
afterAll(async () => {
  await server?.close();
  await env?.dispose();
});

/** Runs the cases through the Python client; every case answers, in order. */
async function client(cases: PlanCase[]): Promise<CaseResult[]> {
  const run = await runPython(CLIENT, JSON.stringify({ url: server.url, cases }));
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const results = (JSON.parse(run.stdout) as { cases: CaseResult[] }).cases;
  expect(results.map((r) => r.id)).toEqual(cases.map((c) => c.id));
  return results;
}

/** One case's result; a failure to read the answer shows with the client's own message. */
async function one(c: PlanCase): Promise<CaseResult> {
  const [r] = await client([c]);
  expect(r?.error, `client could not read the answer: ${r?.error} ${r?.raw_hex ?? ''}`).toBeUndefined();
  return r as CaseResult;
}

/**
 * `[3, 2]` values per datatype at the edges of each type. FP16 values are exact float16 numbers (65504 the largest,
 * 2^-24 the smallest subnormal); FP32 values read back as the same float32.
 */
const VALUES: Record<string, Value[]> = {
  BOOL: [true, false, false, true, true, false],
  UINT8: [0, 255, 1, 128, 127, 7],
  UINT16: [0, 65535, 1, 32768, 256, 7],
  UINT32: [0, 4294967295, 1, 2147483648, 65536, 7],
  UINT64: ['0', '18446744073709551615', '9007199254740993', '9223372036854775808', '1', '4294967296'],
  INT8: [-128, 127, 0, -1, 1, 64],
  INT16: [-32768, 32767, 0, -1, 256, -256],
  INT32: [-2147483648, 2147483647, 0, -1, 65536, -65536],
  INT64: ['-9223372036854775808', '9223372036854775807', '9007199254740993', '-9007199254740993', '0', '-1'],
  FP16: [1.5, '-0', 65504, 2 ** -24, 'Infinity', 0.0999755859375],
  FP32: [0.1, -3.4028235e38, 1e-45, 'NaN', 'Infinity', '-0'],
  FP64: [0.1, 5e-324, 1.7976931348623157e308, '-Infinity', '-0', 123456789.12345679],
  BYTES: ['', 'héllo', '日本語', '🙂', 'tab\tand\nnewline', ''],
};
const DATATYPES = Object.keys(VALUES);

/**
 * The same values with finite, non-zero floats in place of NaN, ±Infinity and -0, which a JSON number cannot carry:
 * for the outputs answered as JSON.
 */
const JSON_SAFE: Record<string, Value[]> = {
  ...VALUES,
  FP16: [1.5, -2, 65504, 2 ** -24, -65504, 0.0999755859375],
  FP32: [0.1, -3.4028235e38, 1e-45, 1.1754944e-38, 16777216, -0.5],
  FP64: [0.1, 5e-324, 1.7976931348623157e308, -2.2250738585072014e-308, -1e-300, 123456789.12345679],
};

function identityInputs(binary: (dt: string, i: number) => boolean, values = VALUES): PlanInput[] {
  return DATATYPES.map((dt, i) => ({
    name: `x_${dt}`,
    datatype: dt,
    shape: [3, 2],
    values: values[dt] as Value[],
    binary: binary(dt, i),
  }));
}

/** Every `y_{DT}` equals the `x_{DT}` sent: datatype, shape and each element. */
function expectIdentity(r: CaseResult, binaryOut: (dt: string, i: number) => boolean, values = VALUES) {
  expect(r.status).toBe(200);
  DATATYPES.forEach((dt, i) => {
    expect(r.outputs?.[`y_${dt}`], `y_${dt}`).toEqual({
      datatype: dt,
      shape: [3, 2],
      binary: binaryOut(dt, i),
      values: values[dt],
    });
  });
}

describe('every datatype round-trips through a client written from the spec', () => {
  it('binary inputs, every output binary by default (no outputs named: binary_data_output)', async () => {
    const r = await one({ id: 'all-binary', model: 'identity-all', inputs: identityInputs(() => true) });
    expect(r.content_type).toBe('application/octet-stream');
    expect(r.header_length).toBeGreaterThan(0);
    expectIdentity(r, () => true);
    for (const o of r.body?.outputs ?? []) {
      expect(o.parameters).toEqual({ binary_data_size: expect.any(Number) });
    }
  });

  it('binary inputs, outputs asked per output as binary_data: true', async () => {
    const r = await one({
      id: 'per-output-binary',
      model: 'identity-all',
      inputs: identityInputs(() => true),
      outputs: DATATYPES.map((dt) => ({ name: `y_${dt}`, binary: true })),
    });
    expectIdentity(r, () => true);
  });

  it('binary inputs answered as plain JSON when every output says binary_data: false (FP16 stays binary)', async () => {
    const r = await one({
      id: 'json-out',
      model: 'identity-all',
      inputs: identityInputs(() => true, JSON_SAFE),
      outputs: DATATYPES.map((dt) => ({ name: `y_${dt}`, binary: dt === 'FP16' })),
    });
    expectIdentity(r, (dt) => dt === 'FP16', JSON_SAFE);
  });

  it('answers NaN and ±Infinity of a JSON output as null (JSON has no such numbers); binary ones exact', async () => {
    const r = await one({
      id: 'json-non-finite',
      model: 'identity-all',
      inputs: identityInputs(() => true),
      outputs: [
        { name: 'y_FP32', binary: false },
        { name: 'y_FP64', binary: true },
      ],
    });
    expect(r.outputs?.y_FP32?.values.slice(3, 5)).toEqual([null, null]);
    expect(r.outputs?.y_FP32?.values.slice(0, 3)).toEqual(VALUES.FP32?.slice(0, 3));
    expect(r.outputs?.y_FP64).toEqual({ datatype: 'FP64', shape: [3, 2], binary: true, values: VALUES.FP64 });
  });

  it('mixed binary and JSON inputs and outputs in one request', async () => {
    // JSON inputs: the ones JSON carries exactly in tritonclient's form (no NaN/Infinity, no 64-bit integers).
    const jsonIn = new Set(['BOOL', 'UINT8', 'INT16', 'UINT32', 'INT32', 'BYTES']);
    const binaryOut = (_dt: string, i: number) => i % 2 === 0;
    const r = await one({
      id: 'mixed',
      model: 'identity-all',
      inputs: identityInputs((dt) => !jsonIn.has(dt), JSON_SAFE),
      outputs: DATATYPES.map((dt, i) => ({ name: `y_${dt}`, binary: binaryOut(dt, i) ? true : null })),
      binary_data_output: false,
    });
    expect(r.content_type).toBe('application/octet-stream');
    expectIdentity(r, binaryOut, JSON_SAFE);
  });

  it('64-bit integers sent in JSON (tritonclient with binary_data=False) come back exact in binary', async () => {
    const r = await one({
      id: 'json-int64',
      model: 'identity-all',
      inputs: identityInputs((dt) => dt !== 'INT64' && dt !== 'UINT64'),
      outputs: [
        { name: 'y_INT64', binary: true },
        { name: 'y_UINT64', binary: true },
      ],
    });
    expect(r.status).toBe(200);
    expect(r.outputs?.y_INT64?.values).toEqual(VALUES.INT64);
    expect(r.outputs?.y_UINT64?.values).toEqual(VALUES.UINT64);
  });

  it('a gzip body (Content-Encoding: gzip; the header length counts the uncompressed header)', async () => {
    const r = await one({
      id: 'gzip',
      model: 'identity-all',
      inputs: identityInputs(() => true),
      compression: 'gzip',
    });
    expectIdentity(r, () => true);
  });

  it('a deflate body (Content-Encoding: deflate, zlib format as tritonclient sends it)', async () => {
    const r = await one({
      id: 'deflate',
      model: 'identity-all',
      inputs: identityInputs(() => true),
      outputs: DATATYPES.map((dt) => ({ name: `y_${dt}`, binary: true })),
      compression: 'deflate',
    });
    expectIdentity(r, () => true);
  });
});

describe('BYTES elements beyond what the model can hold', () => {
  // The spec's BYTES elements are arbitrary bytes; onnxruntime's string tensors are C strings of UTF-8.
  const bytesInput = (values: Value[]): PlanInput[] =>
    identityInputs(() => true).map((i) => (i.datatype === 'BYTES' ? { ...i, values } : i));
  it.each([
    ['an element with a NUL byte', ['', 'a\u0000b', '', '', '', '']],
    [
      'an element that is not UTF-8',
      ['', { b64: Buffer.from([0xff, 0xfe, 0x41]).toString('base64') }, '', '', '', ''],
    ],
  ] as [string, Value[]][])('answers 400 with a JSON error and code for %s', async (_what, values) => {
    const [r] = await client([{ id: 'bytes-edge', model: 'identity-all', inputs: bytesInput(values) }]);
    expect(r?.status).toBe(400);
    expect(r?.body).toEqual({ error: expect.stringMatching(/x_BYTES/), code: expect.any(String) });
  });
});

describe('the raw form (Inference-Header-Content-Length: 0)', () => {
  it('takes the body as the only input and answers every output as binary, as the spec says', async () => {
    const r = await one({
      id: 'raw',
      model: 'add',
      raw: true,
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], values: [1.5, -2, 0.25, 4] }],
    });
    expect(r.status).toBe(200);
    expect(r.outputs?.y?.values).toEqual([2.5, -1, 1.25, 5]);
    // "all the model output will be requested to be returned in binary tensor form"
    expect(r.outputs?.y?.binary).toBe(true);
  });
});

describe('post-processing outputs through the second client', () => {
  const features = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3, 5.9, 3.0, 4.2, 1.5];
  async function classifierInput(binary: boolean): Promise<PlanInput> {
    const meta = await env.call<{ inputs: { name: string }[] }>('GET', '/v2/models/classifier');
    return {
      name: meta.body.inputs[0]?.name as string,
      datatype: 'FP32',
      shape: [3, 4],
      values: features,
      binary,
    };
  }

  it('answers label (BYTES), softmax and argmax the same in binary and in JSON', async () => {
    const outputs = ['label', 'softmax', 'argmax'];
    const [asBinary, asJson, jsonIn] = await client([
      {
        id: 'cls-binary',
        model: 'classifier',
        inputs: [await classifierInput(true)],
        outputs: outputs.map((name) => ({ name, binary: true })),
      },
      {
        id: 'cls-json',
        model: 'classifier',
        inputs: [await classifierInput(true)],
        outputs: outputs.map((name) => ({ name, binary: false })),
      },
      {
        id: 'cls-json-in',
        model: 'classifier',
        inputs: [await classifierInput(false)],
        binary_data_output: true,
        outputs: outputs.map((name) => ({ name })),
      },
    ]);
    for (const r of [asBinary, asJson, jsonIn]) {
      expect(r?.error, r?.error).toBeUndefined();
      expect(r?.status).toBe(200);
    }
    const b = asBinary?.outputs ?? {};
    const j = asJson?.outputs ?? {};
    expect(Object.values(b).map((o) => o.binary)).toEqual([true, true, true]);
    expect(Object.values(j).map((o) => o.binary)).toEqual([false, false, false]);
    expect(jsonIn?.outputs).toEqual(b);
    expect(b.label?.datatype).toBe('BYTES');
    expect(b.label?.shape).toEqual([3]);
    expect(b.label?.values).toEqual(j.label?.values);
    expect({ ...b.argmax, binary: false }).toEqual(j.argmax);
    expect(b.softmax?.shape).toEqual([3, 3]);
    expect(b.softmax?.datatype).toBe(j.softmax?.datatype);
    // JSON numbers and raw FP32 agree to float32 precision.
    const bs = b.softmax?.values as number[];
    const js = j.softmax?.values as number[];
    for (const [i, v] of bs.entries()) expect(v).toBeCloseTo(js[i] as number, 6);
    // Independent of maas: each row sums to 1 and the label names the row's argmax.
    const labels = ['setosa', 'versicolor', 'virginica'];
    for (let row = 0; row < 3; row++) {
      const p = bs.slice(row * 3, row * 3 + 3);
      expect(p.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 5);
      const best = p.indexOf(Math.max(...p));
      expect(Number(b.argmax?.values[row])).toBe(best);
      expect(b.label?.values[row]).toBe(labels[best]);
    }
  });
});

describe('malformed binary bodies from the second client', () => {
  const x = (): PlanInput => ({ name: 'x', datatype: 'FP32', shape: [2, 2], values: [1, 2, 3, 4] });
  const cases: [string, PlanCase][] = [
    [
      'a binary_data_size larger than the data',
      { id: 'm1', model: 'add', inputs: [x()], tamper: { binary_data_size_delta: 4 } },
    ],
    [
      'a binary_data_size smaller than the data',
      { id: 'm2', model: 'add', inputs: [x()], tamper: { binary_data_size_delta: -4 } },
    ],
    ['a body cut short', { id: 'm3', model: 'add', inputs: [x()], tamper: { truncate: 3 } }],
    [
      'a body cut short, then gzipped',
      { id: 'm4', model: 'add', inputs: [x()], compression: 'gzip', tamper: { truncate: 2 } },
    ],
    [
      'a gzip stream cut short',
      { id: 'm5', model: 'add', inputs: [x()], compression: 'gzip', tamper: { truncate_compressed: 6 } },
    ],
    [
      'a deflate stream cut short',
      { id: 'm6', model: 'add', inputs: [x()], compression: 'deflate', tamper: { truncate_compressed: 6 } },
    ],
  ];
  it.each(cases)('answers 400 with a JSON error and code for %s', async (_what, c) => {
    const [r] = await client([c]);
    expect(r?.status).toBe(400);
    expect(r?.content_type).toMatch(/application\/json/);
    expect(r?.body).toEqual({ error: expect.any(String), code: expect.any(String) });
  });

  it('answers 400 with a JSON error for a BF16 input the model does not take', async () => {
    const [r] = await client([
      { id: 'bf16', model: 'add', inputs: [{ name: 'x', datatype: 'BF16', shape: [1, 2], values: [1, 2] }] },
    ]);
    expect(r?.status).toBe(400);
    expect(r?.body).toEqual({ error: expect.stringMatching(/BF16|FP32|datatype/), code: expect.any(String) });
  });
});

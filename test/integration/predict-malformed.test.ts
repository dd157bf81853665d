/**
 * Malformed inference requests: every one gets a 4xx JSON answer `{error, code}` — never a 5xx, never a stack.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModel, ElemType } from '../../functions/local/onnx-builder';
import { apiEvent, parseResult } from '../helpers/apigw';
import { addConstant, createPredictTestEnv, type PredictTestEnv } from '../helpers/predict-env';

let env: PredictTestEnv;

beforeAll(async () => {
  env = await createPredictTestEnv({ maxBodyBytes: 4096 });
  await env.register('m', addConstant(1));
  // Identity on a string and on a half tensor: x_s -> y_s, x_h -> y_h.
  await env.register(
    'ids',
    buildModel({
      inputs: [
        { name: 'x_s', elemType: ElemType.STRING, shape: [1, 'n'] },
        { name: 'x_h', elemType: ElemType.FLOAT16, shape: [1, 'n'] },
      ],
      outputs: [
        { name: 'y_s', elemType: ElemType.STRING, shape: [1, 'n'] },
        { name: 'y_h', elemType: ElemType.FLOAT16, shape: [1, 'n'] },
      ],
      nodes: [
        { opType: 'Identity', inputs: ['x_s'], outputs: ['y_s'] },
        { opType: 'Identity', inputs: ['x_h'], outputs: ['y_h'] },
      ],
    }),
  );
});
afterAll(async () => {
  await env?.dispose();
});

const x = (over: Record<string, unknown>) => ({
  inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2], ...over }],
});
const INFER = '/v2/models/m/infer';
const IDS = '/v2/models/ids/infer';
/** A request to the identity model `ids`: strings `s` and halves `h`, both `[1, n]`. */
const ids = (s: unknown[], h: unknown[]) => ({
  inputs: [
    { name: 'x_s', datatype: 'BYTES', shape: [1, s.length], data: s },
    { name: 'x_h', datatype: 'FP16', shape: [1, h.length], data: h },
  ],
});

/** [case, method, path, body (string = raw text), expected status, expected code] */
const CASES: [string, string, string, unknown, number, string][] = [
  ['empty body', 'POST', INFER, '', 400, 'MALFORMED_JSON'],
  ['not JSON', 'POST', INFER, '{"inputs": [', 400, 'MALFORMED_JSON'],
  ['JSON array', 'POST', INFER, [], 400, 'INVALID_REQUEST'],
  ['JSON string', 'POST', INFER, '"hello"', 400, 'INVALID_REQUEST'],
  ['JSON null', 'POST', INFER, 'null', 400, 'INVALID_REQUEST'],
  ['no inputs', 'POST', INFER, { id: 'a' }, 400, 'INVALID_REQUEST'],
  ['empty inputs', 'POST', INFER, { inputs: [] }, 400, 'INVALID_REQUEST'],
  ['input not an object', 'POST', INFER, { inputs: [42] }, 400, 'INVALID_REQUEST'],
  ['input without name', 'POST', INFER, x({ name: undefined }), 400, 'INVALID_REQUEST'],
  ['unknown datatype', 'POST', INFER, x({ datatype: 'FLOAT32' }), 400, 'INVALID_DATATYPE'],
  ['shape not an array', 'POST', INFER, x({ shape: '1,2' }), 400, 'INVALID_SHAPE'],
  ['negative dimension', 'POST', INFER, x({ shape: [-1, 2] }), 400, 'INVALID_SHAPE'],
  ['fractional dimension', 'POST', INFER, x({ shape: [1.5, 2] }), 400, 'INVALID_SHAPE'],
  ['no data', 'POST', INFER, x({ data: undefined }), 400, 'INVALID_DATA'],
  ['data not an array', 'POST', INFER, x({ data: '1,2' }), 400, 'INVALID_DATA'],
  ['null element', 'POST', INFER, x({ data: [1, null] }), 400, 'INVALID_DATA'],
  ['ragged nested data', 'POST', INFER, x({ data: [[1], [2]] }), 400, 'DATA_LENGTH_MISMATCH'],
  ['too much data', 'POST', INFER, x({ data: [1, 2, 3] }), 400, 'DATA_LENGTH_MISMATCH'],
  ['id not a string', 'POST', INFER, { ...x({}), id: 7 }, 400, 'INVALID_REQUEST'],
  ['outputs not an array', 'POST', INFER, { ...x({}), outputs: { name: 'y' } }, 400, 'INVALID_REQUEST'],
  ['output without name', 'POST', INFER, { ...x({}), outputs: [{}] }, 400, 'INVALID_REQUEST'],
  ['parameters not an object', 'POST', INFER, { ...x({}), parameters: [] }, 400, 'INVALID_PARAMETERS'],
  ['input parameters a string', 'POST', INFER, x({ parameters: 'fast' }), 400, 'INVALID_PARAMETERS'],
  ['input parameters an array', 'POST', INFER, x({ parameters: [1] }), 400, 'INVALID_PARAMETERS'],
  ['input parameters a number', 'POST', INFER, x({ parameters: 7 }), 400, 'INVALID_PARAMETERS'],
  [
    'output parameters a string',
    'POST',
    INFER,
    { ...x({}), outputs: [{ name: 'y', parameters: 'raw' }] },
    400,
    'INVALID_PARAMETERS',
  ],
  [
    'output parameters an array',
    'POST',
    INFER,
    { ...x({}), outputs: [{ name: 'y', parameters: [] }] },
    400,
    'INVALID_PARAMETERS',
  ],
  ['body over the limit', 'POST', INFER, x({ data: new Array(3000).fill(1) }), 413, 'PAYLOAD_TOO_LARGE'],
  ['invalid model name', 'POST', '/v2/models/Not_Valid!/infer', x({}), 400, 'INVALID_NAME'],
  ['unknown model', 'POST', '/v2/models/ghost/infer', x({}), 404, 'MODEL_NOT_FOUND'],
  ['version with leading zero', 'POST', '/v2/models/m/versions/01/infer', x({}), 400, 'INVALID_VERSION'],
  ['GET on infer', 'GET', INFER, undefined, 405, 'METHOD_NOT_ALLOWED'],
  // What API Gateway's $default route sends the function: paths and methods of no route.
  ['DELETE on /models', 'DELETE', '/models', undefined, 405, 'METHOD_NOT_ALLOWED'],
  ['path of no route', 'GET', '/v2/modelz/m', undefined, 404, 'ROUTE_NOT_FOUND'],
  ['BYTES element with NUL', 'POST', IDS, ids(['ok', 'a\u0000b'], [1, 2]), 400, 'NUL_IN_BYTES'],
  ['BYTES element with a lone surrogate', 'POST', IDS, ids(['ok', 'a\ud800b'], [1, 2]), 400, 'INVALID_DATA'],
  ['FP16 element rounding to infinity', 'POST', IDS, ids(['a', 'b'], [1, 65520]), 400, 'NON_FINITE'],
];

describe('malformed inference requests', () => {
  it('serves the identity model: strings and halves up to 65520 (exclusive) come back, rounded once', async () => {
    const r = await env.call<{ outputs: { name: string; data: unknown[] }[] }>(
      'POST',
      IDS,
      ids(['a\u0001b', 'é'], [65519.99, 1 + 2 ** -11 + 2 ** -40]),
    );
    expect(r.status).toBe(200);
    const out = Object.fromEntries(r.body.outputs.map((o) => [o.name, o.data]));
    expect(out).toEqual({ y_s: ['a\u0001b', 'é'], y_h: [65504, 1 + 2 ** -10] });
  });

  it('has at least 20 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(20);
  });

  it.each(CASES)('%s', async (_case, method, path, body, status, code) => {
    const event = apiEvent(method, path, body === undefined ? {} : { body });
    const raw = await env.handler(event);
    expect(raw.headers?.['content-type']).toBe('application/json');
    const r = parseResult<{ error: unknown; code: unknown }>(raw);
    expect(r.status).toBe(status);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(r.body.code).toBe(code);
    expect(typeof r.body.error).toBe('string');
    expect(Object.keys(r.body).sort()).toEqual(['code', 'error']);
    expect(raw.body).not.toMatch(/\n\s+at /);
    // A 405 names the methods the path takes (HTTP's Allow header).
    if (status === 405) expect(raw.headers?.allow).toMatch(/^(GET|POST|PUT|PATCH|DELETE)(, [A-Z]+)*$/);
  });
});

/**
 * Malformed inference requests: every one gets a 4xx JSON answer `{error, code}` — never a 5xx, never a stack.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiEvent, parseResult } from '../helpers/apigw';
import { addConstant, createPredictTestEnv, type PredictTestEnv } from '../helpers/predict-env';

let env: PredictTestEnv;

beforeAll(async () => {
  env = await createPredictTestEnv({ maxBodyBytes: 4096 });
  await env.register('m', addConstant(1));
});
afterAll(async () => {
  await env?.dispose();
});

const x = (over: Record<string, unknown>) => ({
  inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2], ...over }],
});
const INFER = '/v2/models/m/infer';

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
  ['parameters not an object', 'POST', INFER, { ...x({}), parameters: [] }, 400, 'INVALID_REQUEST'],
  ['body over the limit', 'POST', INFER, x({ data: new Array(3000).fill(1) }), 413, 'PAYLOAD_TOO_LARGE'],
  ['invalid model name', 'POST', '/v2/models/Not_Valid!/infer', x({}), 400, 'INVALID_NAME'],
  ['unknown model', 'POST', '/v2/models/ghost/infer', x({}), 404, 'MODEL_NOT_FOUND'],
  ['version with leading zero', 'POST', '/v2/models/m/versions/01/infer', x({}), 400, 'INVALID_VERSION'],
  ['GET on infer', 'GET', INFER, undefined, 405, 'METHOD_NOT_ALLOWED'],
];

describe('malformed inference requests', () => {
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
  });
});

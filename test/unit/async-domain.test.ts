import { describe, expect, it } from 'vitest';
import {
  asyncStatusView,
  checkBinaryRequest,
  checkRequestId,
  checkRequestShape,
  MalformedMessageError,
  parseWorkMessage,
} from '../../functions/domain/async';
import { parseInferenceBody } from '../../functions/domain/body-parser';
import { BadRequestError } from '../../functions/domain/errors';
import { compileSignature, validateInferenceRequest } from '../../functions/domain/inference-validation';
import type { Datatype } from '../../functions/domain/types';
import { binaryBody } from '../helpers/binary-body';

const ID = '0b7a6f64-1f7e-4c39-9d0f-2f1c8f1e2a3b';

describe('work messages', () => {
  it('parses async-infer, batch-part and batch-aggregate messages', () => {
    expect(parseWorkMessage(JSON.stringify({ type: 'async-infer', requestId: ID }))).toEqual({
      type: 'async-infer',
      requestId: ID,
    });
    const part = { type: 'batch-part', jobId: 'j1', inputTag: 'etag:1', index: 3 };
    expect(parseWorkMessage(JSON.stringify(part))).toEqual(part);
    const continued = {
      ...part,
      cursor: { offset: 4096, row: 512, failed: 2, segments: [{ fromRow: 0, toRow: 512, sizeBytes: 9000 }] },
    };
    expect(parseWorkMessage(JSON.stringify(continued))).toEqual(continued);
    const aggregate = { type: 'batch-aggregate', jobId: 'j1', inputTag: 'inputs:abc' };
    expect(parseWorkMessage(JSON.stringify(aggregate))).toEqual(aggregate);
  });

  it.each([
    'not json',
    '{"type":"launch-rockets"}',
    '{"type":"async-infer","requestId":"../../etc"}',
    '{"type":"batch-continue","cursor":{"jobId":"j"}}',
    '{"type":"batch-part","jobId":"j","inputTag":"etag:1"}',
    '{"type":"batch-part","jobId":"../j","inputTag":"etag:1","index":0}',
    '{"type":"batch-part","jobId":"j","inputTag":"etag:1","index":-1}',
    '{"type":"batch-part","jobId":"j","inputTag":"","index":0}',
    '{"type":"batch-part","jobId":"j","inputTag":"t","index":0,"cursor":{"offset":1,"row":1}}',
    '{"type":"batch-aggregate","jobId":"j"}',
  ])('refuses %s as a malformed message', (body) => {
    expect(() => parseWorkMessage(body)).toThrow(MalformedMessageError);
  });
});

describe('async requests', () => {
  it('accepts request ids that are UUIDs only', () => {
    expect(checkRequestId(ID)).toBe(ID);
    for (const bad of ['', 'abc', `${ID}/x`, ID.toUpperCase()]) {
      expect(() => checkRequestId(bad)).toThrow(BadRequestError);
    }
  });

  it('checks the basic shape of an OIP request body', () => {
    const ok = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] };
    expect(checkRequestShape(ok)).toBe(ok);
    for (const bad of [
      null,
      [],
      'x',
      {},
      { inputs: [] },
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2] }] },
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1], data: [] }] },
      { inputs: [{ name: 1, datatype: 'FP32', shape: [1], data: [1] }] },
    ]) {
      expect(() => checkRequestShape(bad), JSON.stringify(bad)).toThrow(BadRequestError);
    }
  });

  /** The code `f` throws (BadRequestError), or 'accepted'. */
  const codeOf = (f: () => unknown): string => {
    try {
      f();
      return 'accepted';
    } catch (e) {
      expect(e).toBeInstanceOf(BadRequestError);
      return (e as BadRequestError).code;
    }
  };
  /** The sync route's validation of `body` against a model whose inputs are exactly the request's own. */
  const syncCode = (body: { inputs: { name: string; datatype: string; shape: number[] }[] }) =>
    codeOf(() =>
      validateInferenceRequest(
        body,
        compileSignature(
          {
            inputs: body.inputs.map((i) => ({
              name: i.name,
              datatype: i.datatype as Datatype,
              shape: Array.isArray(i.shape) ? i.shape.map(() => -1) : [],
            })),
            outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
          },
          'm',
        ),
      ),
    );
  const one = (datatype: string, shape: number[], data: unknown) => ({
    inputs: [{ name: 'x', datatype, shape, data }],
  });

  it.each([
    ['fewer elements than the shape', one('FP32', [2, 2], [1, 2, 3]), 'DATA_LENGTH_MISMATCH'],
    ['more elements than the shape', one('FP32', [1, 2], [1, 2, 3]), 'DATA_LENGTH_MISMATCH'],
    ['data for an empty shape', one('FP32', [0, 4], [1]), 'DATA_LENGTH_MISMATCH'],
    ['ragged nested data', one('FP32', [2, 2], [[1, 2], [3]]), 'DATA_LENGTH_MISMATCH'],
    [
      'nested rows of the wrong count',
      one(
        'FP32',
        [3, 2],
        [
          [1, 2],
          [3, 4],
        ],
      ),
      'DATA_LENGTH_MISMATCH',
    ],
    ['nesting deeper than the shape', one('FP32', [1, 2], [[[1, 2]]]), 'DATA_LENGTH_MISMATCH'],
    ['nested data for a rank-1 shape', one('FP32', [2], [[1], [2]]), 'DATA_LENGTH_MISMATCH'],
    ['data not an array', one('FP32', [1], 1), 'INVALID_DATA'],
    ['strings with FP32', one('FP32', [2], ['1', '2']), 'INVALID_DATA'],
    ['null with FP64', one('FP64', [1], [null]), 'INVALID_DATA'],
    ['FP32 overflow', one('FP32', [1], [1e39]), 'NON_FINITE'],
    ['FP16 that rounds to infinity', one('FP16', [1], [65520]), 'NON_FINITE'],
    ['numbers with BYTES', one('BYTES', [2], ['a', 1]), 'INVALID_DATA'],
    ['NUL in BYTES', one('BYTES', [1], ['a\u0000b']), 'NUL_IN_BYTES'],
    ['a lone surrogate in BYTES', one('BYTES', [1], ['\ud800']), 'INVALID_DATA'],
    ['1 with BOOL', one('BOOL', [2], [true, 1]), 'INVALID_DATA'],
    ['a string with BOOL', one('BOOL', [1], ['true']), 'INVALID_DATA'],
    ['a fraction with INT8', one('INT8', [1], [1.5]), 'INVALID_DATA'],
    ['200 with INT8', one('INT8', [1], [200]), 'OUT_OF_RANGE'],
    ['-1 with UINT8', one('UINT8', [1], [-1]), 'OUT_OF_RANGE'],
    ['2^31 with INT32', one('INT32', [1], [2 ** 31]), 'OUT_OF_RANGE'],
    ['65536 with UINT16', one('UINT16', [1], [65536]), 'OUT_OF_RANGE'],
    ['a word with INT64', one('INT64', [1], ['seven']), 'INVALID_DATA'],
    ['2^64 with UINT64', one('UINT64', [1], ['18446744073709551616']), 'OUT_OF_RANGE'],
    ['-1 with UINT64', one('UINT64', [1], [-1]), 'OUT_OF_RANGE'],
    ['a negative dimension', one('FP32', [-1, 2], [1, 2]), 'INVALID_SHAPE'],
    ['a fractional dimension', one('FP32', [1.5, 2], [1, 2, 3]), 'INVALID_SHAPE'],
    [
      'the second input wrong, the first right',
      {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 2], data: [1, 2] },
          { name: 'b', datatype: 'INT32', shape: [2], data: [1, 2.5] },
        ],
      },
      'INVALID_DATA',
    ],
    [
      'an input given twice',
      {
        inputs: [
          { name: 'x', datatype: 'FP32', shape: [1], data: [1] },
          { name: 'x', datatype: 'FP32', shape: [1], data: [2] },
        ],
      },
      'DUPLICATE_INPUT',
    ],
    [
      'an output asked twice',
      { ...one('FP32', [1], [1]), outputs: [{ name: 'y' }, { name: 'y' }] },
      'DUPLICATE_OUTPUT',
    ],
  ])('refuses %s with the code the sync route gives', (_what, body, code) => {
    expect(codeOf(() => checkRequestShape(body))).toBe(code);
    if (code !== 'INVALID_SHAPE') expect(syncCode(body)).toBe(code);
  });

  it('refuses data that does not fit in a large body, whose numbers the parser reads into a typed array', () => {
    const text = (n: number) =>
      `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,10000],"data":[${Array.from({ length: n }, (_, i) => i).join(',')}]}]}`;
    const short = parseInferenceBody(text(9999)) as { inputs: { data: unknown }[] };
    expect(short.inputs[0]!.data).toBeInstanceOf(Float64Array);
    expect(codeOf(() => checkRequestShape(short))).toBe('DATA_LENGTH_MISMATCH');
    const ints = parseInferenceBody(text(10000).replace('"FP32"', '"INT8"'));
    expect(codeOf(() => checkRequestShape(ints))).toBe('OUT_OF_RANGE');
    const fits = parseInferenceBody(text(10000));
    expect(checkRequestShape(fits)).toBe(fits);
  });

  it('accepts data that fits its datatype and shape, flat or nested, as the sync route does', () => {
    for (const body of [
      one('FP32', [2, 2], [1, 2, 3, 4]),
      one(
        'FP32',
        [2, 2],
        [
          [1, 2],
          [3, 4],
        ],
      ),
      one('FP32', [0, 4], []),
      one('FP16', [1], [65504]),
      one('BYTES', [1, 2], [['a', '']]),
      one('BOOL', [2], [true, false]),
      one('UINT8', [2], [0, 255]),
      one('INT64', [2], [-(2 ** 53) + 1, '-9223372036854775808']),
      one('UINT64', [1], ['18446744073709551615']),
    ]) {
      expect(checkRequestShape(body), JSON.stringify(body)).toBe(body);
      expect(syncCode(body)).toBe('accepted');
    }
  });

  it('checks the JSON inputs of a binary request (mixed) as it checks a JSON request', () => {
    const floats = new Uint8Array(new Float32Array([1, 2]).buffer);
    const mixed = (json: Record<string, unknown>) =>
      binaryBody(
        {
          inputs: [
            { name: 'a', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } },
            { name: 'b', ...json },
          ],
        },
        [floats],
      );
    expect(codeOf(() => checkBinaryRequest(...mixed({ datatype: 'FP32', shape: [2], data: [1, 2] })))).toBe(
      'accepted',
    );
    for (const [json, code] of [
      [{ datatype: 'FP32', shape: [3], data: [1, 2] }, 'DATA_LENGTH_MISMATCH'],
      [{ datatype: 'BOOL', shape: [1], data: [1] }, 'INVALID_DATA'],
      [{ datatype: 'UINT8', shape: [1], data: [256] }, 'OUT_OF_RANGE'],
      [{ datatype: 'BYTES', shape: [1], data: [7] }, 'INVALID_DATA'],
    ] as const) {
      expect(
        codeOf(() => checkBinaryRequest(...mixed(json))),
        JSON.stringify(json),
      ).toBe(code);
    }
  });

  it('maps stored results to the status view', () => {
    expect(asyncStatusView(undefined)).toEqual({ status: 'pending' });
    expect(asyncStatusView({ status: 'done', result: { a: 1 }, completedAt: 't' })).toEqual({
      status: 'done',
      result: { a: 1 },
    });
    expect(asyncStatusView({ status: 'failed', error: 'e', code: 'C', completedAt: 't' })).toEqual({
      status: 'failed',
      error: 'e',
      code: 'C',
    });
  });
});

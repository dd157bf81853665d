import { describe, expect, it } from 'vitest';
import {
  asyncStatusView,
  checkRequestId,
  checkRequestShape,
  MalformedMessageError,
  parseWorkMessage,
} from '../../functions/domain/async';
import { BadRequestError } from '../../functions/domain/errors';

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

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
  it('parses async-infer and batch-continue messages', () => {
    expect(parseWorkMessage(JSON.stringify({ type: 'async-infer', requestId: ID }))).toEqual({
      type: 'async-infer',
      requestId: ID,
    });
    const cursor = {
      jobId: 'j1',
      inputTag: 'etag:1',
      model: 'm',
      ref: 'prod',
      version: 1,
      nextPart: 1,
      startedAt: 't',
      succeeded: 0,
      failed: 0,
    };
    expect(parseWorkMessage(JSON.stringify({ type: 'batch-continue', cursor }))).toEqual({
      type: 'batch-continue',
      cursor,
    });
  });

  it.each([
    'not json',
    '{"type":"launch-rockets"}',
    '{"type":"async-infer","requestId":"../../etc"}',
    '{"type":"batch-continue","cursor":{"jobId":"j"}}',
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

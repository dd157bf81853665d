import { describe, expect, it } from 'vitest';
import { S3_KEYS } from '../../functions/contract/env';
import { BATCH_KEYS } from '../../functions/contract/events';
import {
  BatchCursorSchema,
  batchJobIdOfInputKey,
  countOutcomes,
  errorLine,
  hasTimeForAnotherPart,
  isErrorLine,
  parseJobSpec,
  parseRow,
  partCount,
  partRange,
  splitLines,
} from '../../functions/domain/batch';
import { BadRequestError, NotFoundError } from '../../functions/domain/errors';

describe('parseJobSpec', () => {
  it('defaults ref to prod and accepts version numbers and aliases', () => {
    expect(parseJobSpec('{"model":"iris"}')).toEqual({ model: 'iris', ref: 'prod' });
    expect(parseJobSpec('{"model":"iris","ref":3}')).toEqual({ model: 'iris', ref: '3' });
    expect(parseJobSpec('{"model":"iris","ref":"staging"}')).toEqual({ model: 'iris', ref: 'staging' });
  });

  it.each([
    ['not json', /not valid JSON/],
    ['{"ref":"prod"}', /'model'/],
    ['{"model":"Bad Name"}', /model/],
    ['{"model":"iris","ref":0}', /'ref'/],
    ['[]', /job.json/],
  ])('rejects %s with INVALID_JOB', (text, message) => {
    try {
      parseJobSpec(text);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BadRequestError);
      expect((e as BadRequestError).code).toBe('INVALID_JOB');
      expect((e as Error).message).toMatch(message);
    }
  });
});

describe('batchJobIdOfInputKey', () => {
  const id = (key: string) => batchJobIdOfInputKey(key, S3_KEYS.batchPrefix, BATCH_KEYS.inputFileName);
  it('finds the job of batch/{jobId}/input.jsonl only', () => {
    expect(id('batch/job-1/input.jsonl')).toBe('job-1');
    expect(id(BATCH_KEYS.input('2026-01-01.a_b'))).toBe('2026-01-01.a_b');
    expect(id('batch/job-1/output.jsonl')).toBeUndefined();
    expect(id('batch/job-1/sub/input.jsonl')).toBeUndefined();
    expect(id('batch/input.jsonl')).toBeUndefined();
    expect(id('incoming/job-1/input.jsonl')).toBeUndefined();
    expect(id('batch/../input.jsonl')).toBeUndefined();
  });
});

describe('splitLines', () => {
  it('splits on LF and CRLF; a final newline ends the last line; blank lines are rows', () => {
    expect(splitLines('')).toEqual([]);
    expect(splitLines('a')).toEqual(['a']);
    expect(splitLines('a\n')).toEqual(['a']);
    expect(splitLines('a\r\nb\r\n')).toEqual(['a', 'b']);
    expect(splitLines('a\n\nb\n')).toEqual(['a', '', 'b']);
    expect(splitLines('\n')).toEqual(['']);
  });
});

describe('parts', () => {
  it('cuts rows into fixed parts', () => {
    expect(partCount(0, 500)).toBe(0);
    expect(partCount(500, 500)).toBe(1);
    expect(partCount(10_000, 500)).toBe(20);
    expect(partCount(10_001, 500)).toBe(21);
    expect(partRange(0, 1200, 500)).toEqual({ start: 0, end: 500 });
    expect(partRange(2, 1200, 500)).toEqual({ start: 1000, end: 1200 });
  });

  it('always runs the first part of an invocation, then only when the slowest part still fits', () => {
    expect(hasTimeForAnotherPart(0, 10_000, 5_000, 0)).toBe(true);
    expect(hasTimeForAnotherPart(20_000, 10_000, 5_000, 1)).toBe(true);
    expect(hasTimeForAnotherPart(15_000, 10_000, 5_000, 1)).toBe(false);
    expect(hasTimeForAnotherPart(0, 0, 0, 3)).toBe(false);
  });
});

describe('rows and outcomes', () => {
  it('rejects blank and unparsable rows with a reason; passes the rest to the predictor', () => {
    const parse = (t: string) => JSON.parse(t) as unknown;
    expect(parseRow(3, '   ', parse)).toEqual({
      ok: false,
      index: 3,
      error: 'empty line',
      code: 'EMPTY_LINE',
    });
    const bad = parseRow(4, '{"inputs": [', () => {
      throw new BadRequestError('request body is not valid JSON', 'MALFORMED_JSON');
    });
    expect(bad).toMatchObject({ ok: false, index: 4, code: 'MALFORMED_JSON' });
    expect(parseRow(5, '{"inputs":[]}', parse)).toEqual({ ok: true, index: 5, request: { inputs: [] } });
  });

  it('writes error lines as {"error","code"} and counts them', () => {
    const line = errorLine(new NotFoundError('model x does not exist', 'MODEL_NOT_FOUND'));
    expect(JSON.parse(line)).toEqual({ error: 'model x does not exist', code: 'MODEL_NOT_FOUND' });
    expect(JSON.parse(errorLine(new Error('boom')))).toEqual({ error: 'boom', code: 'INTERNAL' });
    expect(isErrorLine(line)).toBe(true);
    expect(isErrorLine('{"model_name":"x","model_version":"1","outputs":[]}')).toBe(false);
    expect(countOutcomes([line, '{"model_name":"x"}', line])).toEqual({ succeeded: 1, failed: 2 });
  });

  it('validates continuation cursors', () => {
    const cursor = {
      jobId: 'j',
      inputTag: 'etag:abc',
      model: 'iris',
      ref: 'prod',
      version: 2,
      nextPart: 3,
      startedAt: '2026-01-01T00:00:00.000Z',
      succeeded: 10,
      failed: 1,
    };
    expect(BatchCursorSchema.parse(cursor)).toEqual(cursor);
    expect(BatchCursorSchema.safeParse({ ...cursor, nextPart: -1 }).success).toBe(false);
    expect(BatchCursorSchema.safeParse({ ...cursor, jobId: '../x' }).success).toBe(false);
  });
});

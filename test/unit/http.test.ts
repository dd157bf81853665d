/** The HTTP glue of the handlers (functions/handlers/http.ts): how errors become answers and log lines. */
import { describe, expect, it } from 'vitest';
import {
  ArtifactIntegrityError,
  BadRequestError,
  MethodNotAllowedError,
  NotFoundError,
  UnavailableError,
} from '../../functions/domain/errors';
import { errorResult } from '../../functions/handlers/http';
import { recordingLogger } from '../helpers/recording-logger';

describe('errorResult', () => {
  it("answers a caller's mistake with its status and code, and logs nothing", () => {
    // Prepare
    const logger = recordingLogger();
    // Act
    const bad = errorResult(new BadRequestError('no inputs', 'INVALID_REQUEST'), logger);
    const missing = errorResult(new NotFoundError("model 'x' does not exist", 'MODEL_NOT_FOUND'), logger);
    // Assess
    expect([bad.statusCode, JSON.parse(bad.body ?? '')]).toEqual([
      400,
      { error: 'no inputs', code: 'INVALID_REQUEST' },
    ]);
    expect([missing.statusCode, JSON.parse(missing.body ?? '').code]).toEqual([404, 'MODEL_NOT_FOUND']);
    expect(logger.lines).toEqual([]);
  });

  it('answers a 503 with Retry-After, and logs it with what caused it (never answered)', () => {
    // Prepare
    const logger = recordingLogger();
    const cause = Object.assign(new Error('connect ETIMEDOUT 10.0.0.1:443'), { code: 'ETIMEDOUT' });
    // Act
    const r = errorResult(new UnavailableError('the model registry is unreachable', 2, { cause }), logger);
    // Assess
    expect(r.statusCode).toBe(503);
    expect(r.headers?.['retry-after']).toBe('2');
    expect(JSON.parse(r.body ?? '')).toEqual({
      error: 'the model registry is unreachable',
      code: 'UNAVAILABLE',
    });
    expect(r.body).not.toContain('ETIMEDOUT');
    expect(logger.lines).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        message: 'the model registry is unreachable',
        extra: expect.objectContaining({
          code: 'UNAVAILABLE',
          cause: expect.objectContaining({ message: 'connect ETIMEDOUT 10.0.0.1:443' }),
        }),
      }),
    ]);
  });

  it('answers the 503 an error of a library carries as its cause (a stalled write under the idempotency guard)', () => {
    const logger = recordingLogger();
    const stalled = new UnavailableError('the model registry did not answer in time', 3);
    // As Powertools Idempotency wraps its persistence layer's failure.
    const wrapped = new Error('Failed to save in progress record to idempotency store', { cause: stalled });
    wrapped.name = 'IdempotencyPersistenceLayerError';
    const r = errorResult(wrapped, logger);
    expect(r.statusCode).toBe(503);
    expect(r.headers?.['retry-after']).toBe('3');
    expect(JSON.parse(r.body ?? '')).toEqual({
      error: 'the model registry did not answer in time',
      code: 'UNAVAILABLE',
    });
    expect(logger.lines).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        extra: expect.objectContaining({
          wrappedBy: expect.objectContaining({ name: 'IdempotencyPersistenceLayerError' }),
        }),
      }),
    ]);
  });

  it('answers a 405 with the Allow header HTTP requires: the methods the path takes', () => {
    const r = errorResult(new MethodNotAllowedError('DELETE is not allowed on /x', ['POST', 'GET']));
    expect(r.statusCode).toBe(405);
    expect(r.headers?.allow).toBe('POST, GET');
    expect(JSON.parse(r.body ?? '').code).toBe('METHOD_NOT_ALLOWED');
  });

  it('logs a server-side domain failure without a cause too', () => {
    const logger = recordingLogger();
    const r = errorResult(new ArtifactIntegrityError('the stored artifact is missing'), logger);
    expect([r.statusCode, JSON.parse(r.body ?? '').code]).toEqual([500, 'ARTIFACT_INTEGRITY']);
    expect(logger.lines.map((l) => [l.level, l.message, l.extra])).toEqual([
      ['ERROR', 'the stored artifact is missing', { code: 'ARTIFACT_INTEGRITY' }],
    ]);
  });

  it('answers anything else with a generic 500 and logs it with its stack', () => {
    const logger = recordingLogger();
    const r = errorResult(new TypeError("Cannot read properties of undefined (reading 'x')"), logger);
    expect([r.statusCode, JSON.parse(r.body ?? '')]).toEqual([
      500,
      { error: 'internal error', code: 'INTERNAL' },
    ]);
    expect(logger.lines).toEqual([
      expect.objectContaining({
        message: 'unhandled error',
        extra: { error: expect.objectContaining({ name: 'TypeError', stack: expect.any(String) }) },
      }),
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { ContentionRetry, isContention } from '../../functions/adapters/dynamodb-contention';
import { LIMITS } from '../../functions/contract/limits';
import { ROUTES, routeKey } from '../../functions/contract/routes';
import { BadRequestError, ConflictError, UnavailableError } from '../../functions/domain/errors';
import { parseVersionNumber, validateAliasName, validateModelName } from '../../functions/domain/names';
import {
  assertPostprocessFits,
  assertStatusChange,
  MAX_S3_KEY_BYTES,
  moveAliasBodySchema,
  objectKeyProblem,
  parseLimit,
  parseS3Uri,
  parseWith,
  patchVersionBodySchema,
  registerVersionBodySchema,
} from '../../functions/domain/registry';
import { rollbackTarget } from '../../functions/domain/registry-plans';
import {
  assertAliasable,
  decodePageToken,
  encodePageToken,
  isPageKeyOf,
} from '../../functions/domain/registry-rules';
import { REGISTRY_ROUTE_KEYS } from '../../functions/handlers/registry';
import { codeOf as code } from '../helpers/errors';

describe('names', () => {
  it('accepts model names of the contract pattern and rejects others', () => {
    for (const ok of ['a', 'iris', 'resnet-50', 'm_1.v2', '0abc', 'a'.repeat(64)]) {
      expect(validateModelName(ok)).toBe(ok);
    }
    for (const bad of ['', 'A', '-a', '.a', 'a/b', 'a b', 'a#b', 'a'.repeat(65), 'ümlaut']) {
      expect(code(() => validateModelName(bad))).toBe('INVALID_NAME');
    }
  });

  it('accepts alias names like model names but not all digits', () => {
    expect(validateAliasName('prod')).toBe('prod');
    expect(validateAliasName('v2')).toBe('v2');
    for (const bad of ['1', '42', 'Prod', '', 'a#b'])
      expect(code(() => validateAliasName(bad))).toBe('INVALID_ALIAS');
  });
});

describe('path and query parameters', () => {
  it('parses positive version numbers only', () => {
    expect(parseVersionNumber('1')).toBe(1);
    expect(parseVersionNumber('123456789')).toBe(123456789);
    for (const bad of ['0', '-1', '01', '1.5', 'abc', '', '1e3', '1234567890']) {
      expect(code(() => parseVersionNumber(bad))).toBe('INVALID_VERSION');
    }
  });

  it('parses limit in 1..maxPageSize with a default', () => {
    expect(parseLimit(undefined)).toBe(LIMITS.defaultPageSize);
    expect(parseLimit('1')).toBe(1);
    expect(parseLimit(String(LIMITS.maxPageSize))).toBe(LIMITS.maxPageSize);
    for (const bad of ['0', String(LIMITS.maxPageSize + 1), '-3', 'x', '2.5']) {
      expect(code(() => parseLimit(bad))).toBe('INVALID_LIMIT');
    }
  });

  it('round-trips page tokens and rejects garbage or tokens of another listing', () => {
    const key = { pk: 'MODEL#a', sk: 'VERSION#000000003' };
    const token = encodePageToken(key);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodePageToken(token, (k) => k.pk === 'MODEL#a')).toEqual(key);
    expect(code(() => decodePageToken(token, (k) => k.pk === 'MODEL#b'))).toBe('INVALID_TOKEN');
    const b64 = (s: string) => Buffer.from(s).toString('base64url');
    for (const bad of [
      '',
      '!!!',
      b64('not json'),
      b64('[1]'),
      b64('{}'),
      b64('{"pk":{"S":"x"}}'),
      b64('null'),
    ]) {
      expect(code(() => decodePageToken(bad, () => true))).toBe('INVALID_TOKEN');
    }
    // A page key holds exactly the key attributes, each a string DynamoDB could hold as a key: never empty.
    expect(isPageKeyOf(key, ['pk', 'sk'])).toBe(true);
    expect(isPageKeyOf({ ...key, sk: '' }, ['pk', 'sk'])).toBe(false);
    expect(isPageKeyOf({ ...key, pk: '' }, ['pk', 'sk'])).toBe(false);
    expect(isPageKeyOf({ ...key, sk: 3 }, ['pk', 'sk'])).toBe(false);
    expect(isPageKeyOf(key, ['pk', 'sk', 'gsi1sk'])).toBe(false);
  });

  it('parses s3:// URIs', () => {
    expect(parseS3Uri('s3://my-bucket/uploads/a/b.onnx')).toEqual({
      bucket: 'my-bucket',
      key: 'uploads/a/b.onnx',
    });
    for (const bad of ['s3://bucket', 'https://bucket/key', 's3:///key', 'bucket/key']) {
      expect(code(() => parseS3Uri(bad))).toBe('INVALID_S3_URI');
    }
  });

  it('refuses s3Uri keys with dot segments, control characters, lone surrogates or over 1024 UTF-8 bytes', () => {
    const bad = [
      'uploads/../models/other/abc.onnx',
      'uploads/./m/u.onnx',
      'uploads/m/..',
      '../uploads/m/u.onnx',
      'uploads/%2e%2e/models/o/a.onnx',
      'uploads/%2E./models/o/a.onnx',
      'uploads/m/a\u0000b.onnx',
      'uploads/m/a\nb.onnx',
      'uploads/m/a\u007fb.onnx',
      'uploads/m/a\u0085b.onnx',
      'uploads/m/\ud800.onnx',
      `uploads/m/${'a'.repeat(2000)}.onnx`,
      `uploads/m/${'é'.repeat(508)}.onnx`, // 1027 bytes in UTF-8, 526 characters
    ];
    for (const key of bad) {
      expect(
        code(() => parseS3Uri(`s3://bucket/${key}`)),
        key,
      ).toBe('INVALID_S3_URI');
      expect(objectKeyProblem(key), key).toBeDefined();
    }
    for (const key of [
      'uploads/m/..a.onnx',
      'uploads/m/a..b.onnx',
      'uploads/.../x.onnx',
      'incoming/m/é.onnx',
    ]) {
      expect(parseS3Uri(`s3://bucket/${key}`).key).toBe(key);
    }
    const longest = `uploads/m/${'a'.repeat(MAX_S3_KEY_BYTES - 'uploads/m/.onnx'.length)}.onnx`;
    expect(Buffer.byteLength(longest)).toBe(1024);
    expect(parseS3Uri(`s3://bucket/${longest}`).key).toBe(longest);
    expect(code(() => parseS3Uri(`s3://bucket/${longest}x`))).toBe('INVALID_S3_URI');
  });

  it('uploadId is one path segment of letters, digits and dashes', () => {
    for (const uploadId of ['..', '.', '../x', 'a/b', 'a%2fb', 'a\u0000', 'a'.repeat(65), '']) {
      expect(
        code(() => parseWith(registerVersionBodySchema, { uploadId })),
        uploadId,
      ).toBe('VALIDATION_ERROR');
    }
  });
});

describe('request schemas', () => {
  it('register: exactly one source, strict fields, typed values', () => {
    expect(parseWith(registerVersionBodySchema, { uploadId: 'abc-1' })).toEqual({ uploadId: 'abc-1' });
    expect(
      parseWith(registerVersionBodySchema, {
        s3Uri: 's3://b/k',
        description: 'd',
        tags: { a: 'b' },
        labels: ['x'],
        postprocess: { softmax: true, argmax: true, topK: 3, output: 'logits' },
      }),
    ).toMatchObject({ s3Uri: 's3://b/k', postprocess: { topK: 3 } });
    const msg = (body: unknown) => {
      try {
        parseWith(registerVersionBodySchema, body);
      } catch (e) {
        expect(e).toBeInstanceOf(BadRequestError);
        return (e as Error).message;
      }
      throw new Error('expected a 400');
    };
    expect(msg({})).toMatch(/exactly one of uploadId or s3Uri/);
    expect(msg({ uploadId: 'a', s3Uri: 's3://b/k' })).toMatch(/exactly one/);
    expect(msg({ uploadId: 'a', extra: 1 })).toMatch(/unknown field\(s\): extra/);
    expect(msg({ uploadId: 'a', description: 5 })).toMatch(/^invalid request: description:/);
    expect(msg({ uploadId: 'a', labels: 'x' })).toMatch(/labels/);
    expect(msg({ uploadId: 'a', postprocess: { topK: 0 } })).toMatch(/postprocess\.topK/);
    expect(msg({ uploadId: 'a', postprocess: { colour: 'red' } })).toMatch(/colour/);
    expect(msg({ uploadId: '../x' })).toMatch(/uploadId/);
    expect(msg({ uploadId: 'a', description: 'x'.repeat(LIMITS.maxDescriptionLength + 1) })).toMatch(
      /description/,
    );
    const manyTags = Object.fromEntries(Array.from({ length: LIMITS.maxTags + 1 }, (_, i) => [`k${i}`, 'v']));
    expect(msg({ uploadId: 'a', tags: manyTags })).toMatch(/tags/);
    const bigLabels = Array.from({ length: 2000 }, () => 'l'.repeat(200));
    expect(msg({ uploadId: 'a', labels: bigLabels })).toMatch(/labels/);
  });

  it('patch: only ARCHIVED as status, at least one field', () => {
    expect(parseWith(patchVersionBodySchema, { status: 'ARCHIVED' })).toEqual({ status: 'ARCHIVED' });
    expect(code(() => parseWith(patchVersionBodySchema, { status: 'READY' }))).toBe('VALIDATION_ERROR');
    expect(code(() => parseWith(patchVersionBodySchema, {}))).toBe('VALIDATION_ERROR');
  });

  it('stored text: surrogate pairs (emoji, rare CJK) are text, a lone surrogate of either half is refused', () => {
    const body = { description: 'café 😀 𠀀', tags: { '🏷': 'ok 😀' } };
    expect(parseWith(patchVersionBodySchema, body)).toEqual(body);
    for (const lone of ['\ud83d', '\ude00', 'a\ude00\ud83d', '😀\ud83d']) {
      for (const b of [{ description: lone }, { tags: { [lone]: 'v' } }, { tags: { t: lone } }]) {
        expect(code(() => parseWith(patchVersionBodySchema, b))).toBe('VALIDATION_ERROR');
      }
      expect(code(() => parseWith(moveAliasBodySchema, { version: 1, reason: lone }))).toBe(
        'VALIDATION_ERROR',
      );
    }
  });

  it('alias move: positive version, expectedVersion >= 0', () => {
    expect(parseWith(moveAliasBodySchema, { version: 2, expectedVersion: 0 })).toEqual({
      version: 2,
      expectedVersion: 0,
    });
    for (const bad of [
      {},
      { version: 0 },
      { version: 1.5 },
      { version: '1' },
      { version: 1, expectedVersion: -1 },
    ]) {
      expect(code(() => parseWith(moveAliasBodySchema, bad))).toBe('VALIDATION_ERROR');
    }
  });
});

describe('rules', () => {
  const v = (status: 'READY' | 'FAILED' | 'ARCHIVED' | 'PENDING') => ({ name: 'm', version: 1, status });

  it('aliases only READY versions', () => {
    expect(() => assertAliasable(v('READY'))).not.toThrow();
    for (const s of ['FAILED', 'ARCHIVED', 'PENDING'] as const) {
      expect(() => assertAliasable(v(s))).toThrow(ConflictError);
    }
  });

  it('archives READY (and ARCHIVED, a no-op) only', () => {
    expect(() => assertStatusChange(v('READY'), 'ARCHIVED')).not.toThrow();
    expect(() => assertStatusChange(v('ARCHIVED'), 'ARCHIVED')).not.toThrow();
    expect(() => assertStatusChange(v('FAILED'), 'ARCHIVED')).toThrow(ConflictError);
    expect(() => assertStatusChange(v('ARCHIVED'), 'READY')).toThrow(ConflictError);
  });

  it('rolls back to the previous version of the latest move, if any', () => {
    const h = (version: number | null, previousVersion: number | null) => ({
      alias: 'prod',
      version,
      previousVersion,
      at: '2026-01-01T00:00:00.000Z',
      actor: 'a',
    });
    expect(rollbackTarget(undefined)).toBeUndefined();
    expect(rollbackTarget(h(1, null))).toBeUndefined();
    expect(rollbackTarget(h(3, 2))).toBe(2);
    expect(rollbackTarget(h(null, 4))).toBe(4);
  });

  it('post-processing must read an existing output', () => {
    const sig = { inputs: [], outputs: [{ name: 'logits', datatype: 'FP32' as const, shape: [-1, 3] }] };
    expect(() => assertPostprocessFits({ output: 'logits', argmax: true }, undefined, sig)).not.toThrow();
    expect(() => assertPostprocessFits({ argmax: true }, undefined, sig)).not.toThrow();
    expect(() => assertPostprocessFits({ output: 'probs' }, undefined, sig)).toThrow(BadRequestError);
    const text = { inputs: [], outputs: [{ name: 'tokens', datatype: 'BYTES' as const, shape: [-1] }] };
    expect(() => assertPostprocessFits({ argmax: true }, undefined, text)).toThrow(/numeric output/);
    expect(() => assertPostprocessFits(undefined, ['a', 'b'], text)).toThrow(/numeric output/);
    const clash = { inputs: [], outputs: [{ name: 'argmax', datatype: 'FP32' as const, shape: [-1, 3] }] };
    expect(() => assertPostprocessFits({ argmax: true }, undefined, clash)).toThrow(
      /already has an output named/,
    );
  });
});

describe('routes', () => {
  it('the handler serves exactly the registry routes of the contract', () => {
    const contract = ROUTES.filter((r) => r.fn === 'registry').map(routeKey);
    expect([...REGISTRY_ROUTE_KEYS].sort()).toEqual([...contract].sort());
  });
});

describe('DynamoDB write retries', () => {
  const cancelled = (...codes: string[]) =>
    Object.assign(new Error('cancelled'), {
      name: 'TransactionCanceledException',
      CancellationReasons: codes.map((Code) => ({ Code })),
    });

  it('retries lost races and conflicts, not writes DynamoDB rejects', () => {
    expect(isContention(cancelled('ConditionalCheckFailed', 'None'))).toBe(true);
    expect(isContention(cancelled('None', 'TransactionConflict'))).toBe(true);
    expect(isContention(Object.assign(new Error('x'), { name: 'TransactionConflictException' }))).toBe(true);
    expect(isContention(cancelled('None', 'ValidationError'))).toBe(false);
    expect(isContention(Object.assign(new Error('x'), { name: 'ValidationException' }))).toBe(false);
    expect(isContention(new Error('boom'))).toBe(false);
  });

  it('gives up after maxAttempts with a 503 that keeps the last conflict as its cause', async () => {
    // Prepare
    const conflict = cancelled('None', 'TransactionConflict');
    let attempts = 0;
    // Act
    const failure = await new ContentionRetry(3)
      .run('moving the alias', async () => {
        attempts++;
        throw conflict;
      })
      .catch((e: unknown) => e);
    // Assess
    expect(attempts).toBe(3);
    expect(failure).toBeInstanceOf(UnavailableError);
    expect((failure as UnavailableError).message).toContain(
      'moving the alias did not succeed after 3 attempts',
    );
    expect((failure as UnavailableError).cause).toBe(conflict);
  });
});

import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MaasError } from '../../functions/domain/errors';
import type { HttpEvent } from '../../functions/handlers/http';
import {
  BINARY_HEADER,
  binaryHeaderLength,
  binaryRequestBytes,
  hasContentEncoding,
  requestBytes,
} from '../../functions/handlers/request-body';

/** A payload 2.0 event carrying `bytes` base64-encoded, as API Gateway passes a binary body. */
function event(bytes: Buffer | undefined, headers: Record<string, string> = {}): HttpEvent {
  return {
    headers,
    ...(bytes !== undefined ? { body: bytes.toString('base64') } : {}),
    isBase64Encoded: true,
  } as unknown as HttpEvent;
}

/** The status and code of the domain error `fn` throws (undefined when it throws none). */
function failure(fn: () => unknown): { status: number; code: string } | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MaasError);
    return { status: (e as MaasError).status, code: (e as MaasError).code };
  }
  return undefined;
}

const LIMIT = 64 * 1024;
/** Bytes that compress well and are not all alike (a wrong decoding cannot pass for a right one). */
const PAYLOAD = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251));

describe('requestBytes: base64 and plain bodies', () => {
  it('decodes a base64 body', () => {
    expect(requestBytes(event(PAYLOAD), LIMIT).equals(PAYLOAD)).toBe(true);
  });

  it('takes a text body (not base64-encoded) as its UTF-8 bytes', () => {
    const e = { headers: {}, body: 'h\u00e9llo', isBase64Encoded: false } as unknown as HttpEvent;
    expect(requestBytes(e, LIMIT)).toEqual(Buffer.from([0x68, 0xc3, 0xa9, 0x6c, 0x6c, 0x6f]));
  });

  it('takes a missing body as no bytes', () => {
    expect(requestBytes(event(undefined), LIMIT).length).toBe(0);
  });

  it('keeps bytes that are not UTF-8 intact', () => {
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x80, 0x7f]);
    expect(requestBytes(event(bytes), LIMIT).equals(bytes)).toBe(true);
  });

  it('takes a body of exactly the limit and refuses one byte more as sent (413)', () => {
    expect(requestBytes(event(Buffer.alloc(LIMIT)), LIMIT).length).toBe(LIMIT);
    expect(failure(() => requestBytes(event(Buffer.alloc(LIMIT + 1)), LIMIT))).toEqual({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    });
  });

  it.each(['', 'identity', ' Identity ', 'identity, identity'])(
    'leaves a body with Content-Encoding %j as sent',
    (coding) => {
      expect(requestBytes(event(PAYLOAD, { 'content-encoding': coding }), LIMIT).equals(PAYLOAD)).toBe(true);
    },
  );
});

describe('binaryRequestBytes: bodies of the binary tensor data extension', () => {
  it('reads a base64 body as requestBytes does, and an empty text body as no bytes (the raw form of no elements)', () => {
    expect(binaryRequestBytes(event(PAYLOAD), LIMIT).equals(PAYLOAD)).toBe(true);
    const empty = { headers: {}, body: '', isBase64Encoded: false } as unknown as HttpEvent;
    expect(binaryRequestBytes(empty, LIMIT).length).toBe(0);
  });

  it('decodes a base64 body with the byte after its header at a multiple of 8 in memory, its bytes as requestBytes reads them', () => {
    const offsets = new Set<number>();
    for (let headerLength = 0; headerLength < 40; headerLength++) {
      for (const size of [0, 1, 7, 100, 2048 + headerLength, 9000]) {
        const sent = Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + headerLength) & 0xff));
        const bytes = binaryRequestBytes(event(sent), LIMIT, headerLength);
        expect(bytes.equals(sent)).toBe(true);
        if (size > headerLength) expect((bytes.byteOffset + headerLength) % 8).toBe(0);
        offsets.add(bytes.byteOffset % 8);
      }
    }
    // Not aligned by chance: the bodies start at every offset modulo 8.
    expect(offsets.size).toBe(8);
  });

  it('reads base64 text that is not canonical (no padding, blanks, the URL alphabet) as Buffer.from does', () => {
    const sent = Buffer.from('\u0000\u00ff binary \u00fe\u0001 data!', 'latin1');
    const canonical = sent.toString('base64');
    for (const text of [
      canonical.replace(/=+$/, ''),
      `${canonical.slice(0, 8)}\n${canonical.slice(8)}`,
      ` ${canonical} `,
      sent.toString('base64url'),
    ]) {
      const e = { headers: {}, body: text, isBase64Encoded: true } as unknown as HttpEvent;
      for (const headerLength of [0, 3, 5]) {
        expect(binaryRequestBytes(e, LIMIT, headerLength).equals(Buffer.from(text, 'base64'))).toBe(true);
      }
    }
  });

  it('refuses a base64 body of more than the limit (413) when aligning it, and one of exactly the limit passes', () => {
    const at = Buffer.alloc(LIMIT, 7);
    expect(binaryRequestBytes(event(at), LIMIT, 13).length).toBe(LIMIT);
    expect(failure(() => binaryRequestBytes(event(Buffer.alloc(LIMIT + 1)), LIMIT, 13))).toEqual({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    });
    // A compressed body is inflated as requestBytes does it (zlib's buffer: its own alignment).
    const gz = event(gzipSync(PAYLOAD), { 'content-encoding': 'gzip' });
    expect(binaryRequestBytes(gz, LIMIT, 13).equals(PAYLOAD)).toBe(true);
  });

  it('refuses a body passed as text, whatever its bytes: API Gateway does not carry bytes that are not UTF-8 in text', () => {
    for (const body of ['{"inputs":[]}\u00ff\ufffd', 'plain ASCII']) {
      const e = {
        headers: { 'content-type': 'application/json' },
        body,
        isBase64Encoded: false,
      } as unknown as HttpEvent;
      expect(failure(() => binaryRequestBytes(e, LIMIT))).toEqual({
        status: 400,
        code: 'INVALID_BINARY_DATA',
      });
    }
  });
});

describe('requestBytes: content codings', () => {
  it.each([
    ['gzip', gzipSync(PAYLOAD)],
    ['x-gzip', gzipSync(PAYLOAD)],
    ['GZip', gzipSync(PAYLOAD)],
    ['deflate (zlib-wrapped, as HTTP specifies)', deflateSync(PAYLOAD)],
    ['deflate (raw, as some clients send)', deflateRawSync(PAYLOAD)],
  ])('undoes %s', (what, sent) => {
    const coding = what.split(' ')[0] as string;
    expect(sent.length).toBeLessThan(PAYLOAD.length);
    expect(requestBytes(event(sent, { 'content-encoding': coding }), LIMIT).equals(PAYLOAD)).toBe(true);
  });

  it.each(['gzip, identity', 'identity, gzip', ' gzip ,identity ', 'identity,,gzip'])(
    'skips identity among stacked codings: %j',
    (coding) => {
      const out = requestBytes(event(gzipSync(PAYLOAD), { 'content-encoding': coding }), LIMIT);
      expect(out.equals(PAYLOAD)).toBe(true);
    },
  );

  it('undoes stacked codings in the reverse of the order they were applied', () => {
    // Content-Encoding: deflate, gzip — deflate applied first, then gzip.
    const sent = gzipSync(deflateSync(PAYLOAD));
    expect(requestBytes(event(sent, { 'content-encoding': 'deflate, gzip' }), LIMIT).equals(PAYLOAD)).toBe(
      true,
    );
    // The other order is not the same body: the outer layer is not deflate data.
    expect(failure(() => requestBytes(event(sent, { 'content-encoding': 'gzip, deflate' }), LIMIT))).toEqual({
      status: 400,
      code: 'INVALID_CONTENT_ENCODING',
    });
  });

  it('undoes a gzip body of several members', () => {
    const sent = Buffer.concat([gzipSync(PAYLOAD.subarray(0, 100)), gzipSync(PAYLOAD.subarray(100))]);
    expect(requestBytes(event(sent, { 'content-encoding': 'gzip' }), LIMIT).equals(PAYLOAD)).toBe(true);
  });

  it('takes a body that inflates to exactly the limit', () => {
    const out = requestBytes(event(gzipSync(Buffer.alloc(LIMIT, 7)), { 'content-encoding': 'gzip' }), LIMIT);
    expect(out.length).toBe(LIMIT);
    expect(out.every((b) => b === 7)).toBe(true);
  });

  it.each([
    ['gzip', gzipSync(Buffer.alloc(LIMIT + 1))],
    ['deflate', deflateSync(Buffer.alloc(LIMIT * 100))],
    ['deflate', deflateRawSync(Buffer.alloc(LIMIT * 100))],
    ['gzip, gzip', gzipSync(gzipSync(Buffer.alloc(LIMIT * 1000)))],
  ])('refuses a %s bomb that inflates beyond the limit with 413', (coding, sent) => {
    expect(sent.length).toBeLessThan(LIMIT);
    expect(failure(() => requestBytes(event(sent, { 'content-encoding': coding }), LIMIT))).toEqual({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    });
  });

  it('refuses a compressed body beyond the limit as sent with 413, before inflating it', () => {
    const sent = Buffer.alloc(LIMIT + 1, 1);
    expect(failure(() => requestBytes(event(sent, { 'content-encoding': 'gzip' }), LIMIT))).toEqual({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    });
  });

  const gz = gzipSync(PAYLOAD);
  const badCrc = Buffer.from(gz);
  badCrc[badCrc.length - 8] = (badCrc[badCrc.length - 8] ?? 0) ^ 0xff;
  const badLength = Buffer.from(gz);
  badLength[badLength.length - 1] = (badLength[badLength.length - 1] ?? 0) ^ 0x01;
  const badMagic = Buffer.from(gz);
  badMagic[0] = 0x1e;
  it.each([
    ['gzip', 'a gzip body with a wrong CRC-32', badCrc],
    ['gzip', 'a gzip body with a wrong length trailer', badLength],
    ['gzip', 'a gzip body with a wrong magic number', badMagic],
    ['gzip', 'a truncated gzip body', gz.subarray(0, gz.length - 12)],
    ['gzip', 'an empty gzip body', Buffer.alloc(0)],
    ['gzip', 'a body that is not compressed', PAYLOAD],
    ['deflate', 'a truncated zlib body', deflateSync(PAYLOAD).subarray(0, 20)],
    ['deflate', 'bytes that are neither zlib nor raw deflate', Buffer.from([0xff, 0xff, 0xff, 0xff])],
    ['gzip', 'a gzip body with zero bytes after its end', Buffer.concat([gz, Buffer.alloc(16)])],
    [
      'deflate',
      'a zlib body with bytes after its end',
      Buffer.concat([deflateSync(PAYLOAD), Buffer.from('more')]),
    ],
    [
      'deflate',
      'a raw deflate body with bytes after its end',
      Buffer.concat([deflateRawSync(PAYLOAD), Buffer.from('more')]),
    ],
    ['x-gzip', 'a deflate body sent as x-gzip', deflateSync(PAYLOAD)],
  ])('refuses (%s) %s with 400 INVALID_CONTENT_ENCODING', (coding, _what, sent) => {
    let message = '';
    try {
      requestBytes(event(sent, { 'content-encoding': coding }), LIMIT);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(failure(() => requestBytes(event(sent, { 'content-encoding': coding }), LIMIT))).toEqual({
      status: 400,
      code: 'INVALID_CONTENT_ENCODING',
    });
    expect(message).toMatch(/not valid (gzip|deflate) data/);
  });

  it.each(['br', 'compress', 'zstd', 'gzip, br', 'br, gzip', '*', 'gzip;q=1'])(
    'refuses Content-Encoding %j with 415 UNSUPPORTED_CONTENT_ENCODING',
    (coding) => {
      expect(
        failure(() => requestBytes(event(gzipSync(PAYLOAD), { 'content-encoding': coding }), LIMIT)),
      ).toEqual({
        status: 415,
        code: 'UNSUPPORTED_CONTENT_ENCODING',
      });
    },
  );

  it('names the unsupported coding in its message', () => {
    let message = '';
    try {
      requestBytes(event(PAYLOAD, { 'content-encoding': 'gzip, Br' }), LIMIT);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('"Br"');
  });
});

describe('hasContentEncoding', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['identity', false],
    [' IDENTITY ', false],
    ['gzip', true],
    ['deflate', true],
    ['br', true],
    ['identity, gzip', true],
  ])('Content-Encoding %j: %s', (coding, expected) => {
    const headers: Record<string, string> = coding === undefined ? {} : { 'content-encoding': coding };
    expect(hasContentEncoding(event(PAYLOAD, headers))).toBe(expected);
  });

  it('is false for an event without headers', () => {
    expect(hasContentEncoding({ body: '' } as unknown as HttpEvent)).toBe(false);
  });
});

describe('binaryHeaderLength', () => {
  it('is the lower-case header name API Gateway payload 2.0 hands over', () => {
    expect(BINARY_HEADER).toBe('Inference-Header-Content-Length'.toLowerCase());
  });

  it.each([
    ['0', 0],
    ['42', 42],
    [' 42 ', 42],
    ['\t17', 17],
    ['007', 7],
    ['999999999999999', 999_999_999_999_999],
  ])('reads %j as %i', (value, expected) => {
    expect(binaryHeaderLength(value)).toBe(expected);
  });

  it.each([
    '',
    ' ',
    'abc',
    '-1',
    '+5',
    '1.5',
    '1.0',
    '1e3',
    '0x10',
    '12abc',
    '4,4',
    '4 4',
    '9999999999999999',
    '99999999999999999999',
    'Infinity',
    'NaN',
    '\u0661\u0662',
  ])('refuses %j with 400 INVALID_BINARY_DATA', (value) => {
    expect(failure(() => binaryHeaderLength(value))).toEqual({ status: 400, code: 'INVALID_BINARY_DATA' });
  });
});

describe('requestBytes: a compressed body that arrived as text', () => {
  it('is a 400 INVALID_CONTENT_ENCODING that says how to send it so its bytes pass', () => {
    // API Gateway hands application/json bodies over as UTF-8 text: gzip bytes do not survive that.
    const mangled = gzipSync(Buffer.from('{"inputs":[]}')).toString('latin1');
    const e: HttpEvent = {
      ...event(undefined, { 'content-encoding': 'gzip', 'content-type': 'application/json' }),
      body: mangled,
      isBase64Encoded: false,
    };
    let thrown: unknown;
    try {
      requestBytes(e, LIMIT);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(MaasError);
    expect((thrown as MaasError & { code: string }).code).toBe('INVALID_CONTENT_ENCODING');
    expect((thrown as Error).message).toMatch(/Content-Type application\/octet-stream \(or none\)/);
  });

  it('says nothing of the kind for a corrupt body that came base64-encoded', () => {
    const corrupt = gzipSync(PAYLOAD).subarray(0, 40);
    let thrown: unknown;
    try {
      requestBytes(event(corrupt, { 'content-encoding': 'gzip' }), LIMIT);
    } catch (err) {
      thrown = err;
    }
    expect((thrown as MaasError & { code: string }).code).toBe('INVALID_CONTENT_ENCODING');
    expect((thrown as Error).message).not.toMatch(/octet-stream/);
  });
});

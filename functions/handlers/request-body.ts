/**
 * Request bodies as bytes: base64-decoded when API Gateway encoded them (payload 2.0 `isBase64Encoded`), then
 * decoded from their `Content-Encoding` (gzip, deflate; the binary tensor data extension allows compressed
 * bodies), never larger than the limit — neither as sent nor once inflated (a small bomb is a 413, not an
 * exhausted heap). Also the `Inference-Header-Content-Length` header of that extension.
 */
import { constants, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import { INVALID_BINARY_DATA } from '../domain/binary-tensors';
import { BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError } from '../domain/errors';
import type { HttpEvent } from './http';

/** `Inference-Header-Content-Length`, as API Gateway (payload 2.0) and the local server hand headers over. */
export const BINARY_HEADER = 'inference-header-content-length';

/** The content codings a request body may carry (`Content-Encoding`), besides `identity`. */
export const CONTENT_ENCODINGS = ['gzip', 'deflate'] as const;

/**
 * The value of `Inference-Header-Content-Length`: a non-negative integer in decimal digits, else a 400
 * `INVALID_BINARY_DATA`.
 */
export function binaryHeaderLength(value: string): number {
  // Digits only (what clients send): read here, without a pattern or a trimmed copy.
  if (value.length > 0 && value.length <= 15) {
    let n = 0;
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i) - 48;
      if (c < 0 || c > 9) return headerLengthOf(value);
      n = n * 10 + c;
    }
    return n;
  }
  return headerLengthOf(value);
}

/** `binaryHeaderLength` of any other value: blanks around the digits are allowed. */
function headerLengthOf(value: string): number {
  const n = /^[0-9]{1,15}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    throw new BadRequestError(
      `Inference-Header-Content-Length must be a non-negative integer, got ${JSON.stringify(value)}`,
      INVALID_BINARY_DATA,
    );
  }
  return n;
}

/** The codings of a `Content-Encoding` value, in the order they were applied; `identity` left out. */
function codingsOf(value: string): string[] {
  const codings: string[] = [];
  for (const part of value.split(',')) {
    const c = part.trim().toLowerCase();
    if (c === '' || c === 'identity') continue;
    if (c !== 'gzip' && c !== 'x-gzip' && c !== 'deflate') {
      throw new UnsupportedMediaTypeError(
        `Content-Encoding ${JSON.stringify(part.trim())} is not supported; send gzip, deflate or no encoding`,
      );
    }
    codings.push(c === 'x-gzip' ? 'gzip' : c);
  }
  return codings;
}

/** Whether the request carries a body coding to undo (a `Content-Encoding` other than `identity`). */
export function hasContentEncoding(event: HttpEvent): boolean {
  const value = event.headers?.['content-encoding'];
  return value !== undefined && value.trim() !== '' && value.trim().toLowerCase() !== 'identity';
}

/** One coding undone, at most `maxBytes` out. `deflate` is zlib-wrapped per HTTP; raw deflate is taken too. */
function decode(coding: string, bytes: Buffer, maxBytes: number): Buffer {
  // `info`: the engine tells how many bytes of the body the stream took.
  const opts = { maxOutputLength: maxBytes, info: true } as const;
  try {
    let inflated: { buffer: Buffer; engine: { bytesWritten: number } };
    if (coding === 'gzip') {
      // Several gzip members in a row are one body (as gunzip reads them).
      inflated = gunzipSync(bytes, opts) as unknown as typeof inflated;
    } else {
      try {
        inflated = inflateSync(bytes, opts) as unknown as typeof inflated;
      } catch (e) {
        if ((e as { errno?: number }).errno !== constants.Z_DATA_ERROR) throw e;
        inflated = inflateRawSync(bytes, opts) as unknown as typeof inflated;
      }
    }
    // zlib stops at the end of the stream and leaves what follows unread: bytes after it are not part of the body.
    if (inflated.engine.bytesWritten !== bytes.length) {
      throw new Error(`${bytes.length - inflated.engine.bytesWritten} bytes follow the end of the stream`);
    }
    return inflated.buffer;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new PayloadTooLargeError(`request body inflates beyond the limit of ${maxBytes} bytes`);
    }
    throw new BadRequestError(
      `request body is not valid ${coding} data (Content-Encoding: ${coding}): ${(e as Error).message}`,
      'INVALID_CONTENT_ENCODING',
    );
  }
}

/**
 * The bytes of a request of the binary tensor data extension, as `requestBytes`. A body that API Gateway passed as
 * text (its `Content-Type` is a text type) lost on the way every byte that is not UTF-8: it is refused, not read
 * altered, whatever its bytes.
 *
 * `alignAfter` (the JSON header's length): a base64 body is decoded so that the byte after the header, where the
 * first tensor starts, lies at a multiple of 8 in memory. Its tensors are then views over the body, not copies,
 * whatever the header's length (docs/performance.md, "Headers sent again": a 2 KiB FP32 input copied because its
 * offset was not a multiple of 4 cost the handler about 1 µs a request).
 */
export function binaryRequestBytes(event: HttpEvent, maxBytes: number, alignAfter?: number): Buffer {
  if (!event.isBase64Encoded && event.body) {
    const type = event.headers?.['content-type'];
    throw new BadRequestError(
      `a request with Inference-Header-Content-Length arrived as text (Content-Type ${JSON.stringify(type ?? '')}), which does not carry raw bytes intact; send it with Content-Type application/octet-stream or none`,
      INVALID_BINARY_DATA,
    );
  }
  const raw = event.body;
  if (
    alignAfter !== undefined &&
    event.isBase64Encoded &&
    raw &&
    event.headers?.['content-encoding'] === undefined
  ) {
    // The decoded length of the text (exact for what API Gateway sends; `write` says what it decoded).
    const length = Buffer.byteLength(raw, 'base64');
    if (length > maxBytes) tooLarge(length, maxBytes);
    const buffer = Buffer.allocUnsafe(length + 7);
    const pad = (8 - ((buffer.byteOffset + alignAfter) % 8)) % 8;
    const written = buffer.write(raw, pad, length, 'base64');
    return buffer.subarray(pad, pad + written);
  }
  return requestBytes(event, maxBytes);
}

function tooLarge(length: number, maxBytes: number): never {
  throw new PayloadTooLargeError(`request body is ${length} bytes; the limit is ${maxBytes} bytes`);
}

/**
 * The bytes of a request body: base64-decoded when API Gateway encoded it, then decoded from its
 * `Content-Encoding`; at most `maxBytes` of them as sent and once decoded, else a 413.
 */
export function requestBytes(event: HttpEvent, maxBytes: number): Buffer {
  const raw = event.body ?? '';
  let bytes: Buffer = event.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  if (bytes.length > maxBytes) tooLarge(bytes.length, maxBytes);
  const encoding = event.headers?.['content-encoding'];
  if (encoding === undefined) return bytes;
  const codings = codingsOf(encoding);
  try {
    for (let i = codings.length - 1; i >= 0; i--) bytes = decode(codings[i] as string, bytes, maxBytes);
  } catch (e) {
    // A compressed body that arrived as text (API Gateway passes text/* and JSON content types as UTF-8) lost
    // its bytes on the way: say how to send it.
    if (!event.isBase64Encoded && e instanceof BadRequestError) {
      throw new BadRequestError(
        `${e.message}; send compressed bodies with Content-Type application/octet-stream (or none), so that they pass as bytes`,
        e.code,
      );
    }
    throw e;
  }
  return bytes;
}

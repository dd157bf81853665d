/**
 * The inference request body parser: `JSON.parse` for OIP bodies, faster on large numeric inputs and exact on
 * 64-bit integers.
 *
 * Flat numeric `data` arrays are read straight from the text into `Float64Array`s, which the decoder
 * (domain/oip-decode.ts) accepts like arrays. Integer literals too big for a double are turned into decimal
 * strings for the INT64/UINT64 inputs before `JSON.parse` would lose their precision.
 * Pure: no I/O.
 */
import { BadRequestError } from './errors';

// Integer literals (outside strings) too long to be exact as doubles: 16+ digits, not part of a decimal or
// exponent. Strings are matched first so their contents are never touched.
const BIG_LITERAL = /"(?:[^"\\]|\\.)*"|(?<![\w.+-])-?\d{16,}(?![\w.+-])/g;

/**
 * `text` (JSON) with its integer literals of 16 digits or more, outside strings, written as decimal strings: read
 * with `JSON.parse`, they keep every digit.
 */
export function withLongIntegersQuoted(text: string): string {
  return text.replace(BIG_LITERAL, (m) => (m.charCodeAt(0) === 34 ? m : `"${m}"`));
}

function hasUnsafeInt64(body: unknown): boolean {
  const inputs = (body as { inputs?: unknown })?.inputs;
  if (!Array.isArray(inputs)) return false;
  for (const input of inputs) {
    const dt = (input as { datatype?: unknown })?.datatype;
    if (dt !== 'INT64' && dt !== 'UINT64') continue;
    const data = (input as { data?: unknown }).data;
    if (Array.isArray(data) && containsUnsafeInteger(data)) return true;
  }
  return false;
}

/** Walks nested arrays with a stack of its own: a body nested thousands deep is the caller's to refuse, not a crash. */
function containsUnsafeInteger(data: unknown[]): boolean {
  const pending: unknown[][] = [data];
  for (let list = pending.pop(); list !== undefined; list = pending.pop()) {
    for (const v of list) {
      if (Array.isArray(v)) pending.push(v);
      else if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) return true;
    }
  }
  return false;
}

/**
 * Parses an inference request body. Malformed JSON is a 400 `MALFORMED_JSON`.
 *
 * Flat numeric `data` arrays are read straight from the text into `Float64Array`s (see `readNumericData`), so
 * the large part of a body never becomes JS arrays of boxed values; the rest is parsed by `JSON.parse`. The
 * result is the same as `JSON.parse` except that those `data` values are `Float64Array`s, which the decoder
 * accepts like arrays. When an INT64/UINT64 input carries integer literals beyond 2^53-1, the body is re-read
 * with those literals as decimal strings so that they stay exact, and only the 64-bit integer inputs take
 * their `data` from that re-read.
 */
export function parseInferenceBody(text: string): unknown {
  let body: unknown;
  try {
    body = (text.length >= FAST_PATH_MIN_LENGTH ? parseWithNumericData(text) : undefined) ?? JSON.parse(text);
  } catch (e) {
    throw new BadRequestError(`request body is not valid JSON: ${(e as Error).message}`, 'MALFORMED_JSON');
  }
  if (hasUnsafeInt64(body)) {
    // Only the INT64/UINT64 inputs take the exact re-read: other inputs and `parameters` keep their numbers.
    const exact = JSON.parse(withLongIntegersQuoted(text)) as {
      inputs: { data?: unknown }[];
    };
    (body as { inputs: { datatype?: unknown; data?: unknown }[] }).inputs.forEach((input, i) => {
      if (input?.datatype === 'INT64' || input?.datatype === 'UINT64') input.data = exact.inputs[i]?.data;
    });
  }
  return body;
}

const FAST_PATH_MIN_LENGTH = 16 * 1024;
/**
 * Where `parseWithNumericData` leaves a numeric array it read, to put it back after `JSON.parse`: a string with a
 * random part drawn once per process, so that no caller can write one (a caller's look-alike string in an input's
 * `data` would otherwise receive an array read from elsewhere in the body). As written into the JSON text
 * (`MARKER_TEXT`) and as parsed (`MARKER`).
 */
const MARKER_NONCE = Array.from(globalThis.crypto.getRandomValues(new Uint32Array(4)), (n) =>
  n.toString(36),
).join('');
const MARKER = `\u0000maas-data:${MARKER_NONCE}:`;
const MARKER_TEXT = `\\u0000maas-data:${MARKER_NONCE}:`;
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);

function skipWs(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return i;
    i++;
  }
}

/**
 * Reads the flat array of JSON numbers starting at `text[start] === '['`. Returns the values and the index after
 * `]`, or undefined when the array is anything else (nested, strings, null, booleans, integers too long to be
 * exact as doubles, or not valid JSON) — such arrays are left to `JSON.parse`. Values are correctly rounded:
 * up to 15 significant digits with a decimal exponent within ±22 they are one exact division or
 * multiplication (Clinger's fast path); anything else goes through `Number()`.
 */
export function readNumericData(
  text: string,
  start: number,
): { values: Float64Array; end: number } | undefined {
  // Numbers take at least two characters each with their separator: one allocation covers the array.
  const close = text.indexOf(']', start);
  if (close < 0) return undefined;
  let values = new Float64Array(((close - start) >> 1) + 1);
  let n = 0;
  let i = skipWs(text, start + 1);
  if (text.charCodeAt(i) === 93) return { values: values.subarray(0, 0), end: i + 1 };
  for (;;) {
    const tokenStart = i;
    let c = text.charCodeAt(i);
    const negative = c === 45;
    if (negative) c = text.charCodeAt(++i);
    if (c < 48 || c > 57) return undefined;
    let mantissa = 0;
    let digits = 0;
    if (c === 48) {
      c = text.charCodeAt(++i);
      if (c >= 48 && c <= 57) return undefined;
    } else {
      while (c >= 48 && c <= 57) {
        mantissa = mantissa * 10 + (c - 48);
        digits++;
        c = text.charCodeAt(++i);
      }
    }
    let scale = 0;
    let fraction = false;
    if (c === 46) {
      fraction = true;
      c = text.charCodeAt(++i);
      if (c < 48 || c > 57) return undefined;
      while (c >= 48 && c <= 57) {
        mantissa = mantissa * 10 + (c - 48);
        if (mantissa !== 0) digits++;
        scale--;
        c = text.charCodeAt(++i);
      }
    }
    let exponent = 0;
    let hasExponent = false;
    if (c === 101 || c === 69) {
      hasExponent = true;
      c = text.charCodeAt(++i);
      let expNegative = false;
      if (c === 43 || c === 45) {
        expNegative = c === 45;
        c = text.charCodeAt(++i);
      }
      if (c < 48 || c > 57) return undefined;
      while (c >= 48 && c <= 57) {
        if (exponent < 100_000) exponent = exponent * 10 + (c - 48);
        c = text.charCodeAt(++i);
      }
      if (expNegative) exponent = -exponent;
    }
    let value: number;
    const p = scale + exponent;
    if (digits <= 15 && p >= -22 && p <= 22) {
      value = p < 0 ? mantissa / POW10[-p]! : mantissa * POW10[p]!;
      if (negative) value = -value;
    } else if (!fraction && !hasExponent) {
      // An integer literal too long for a double: keep it for JSON.parse and the exact 64-bit path.
      return undefined;
    } else {
      value = Number(text.slice(tokenStart, i));
    }
    if (n === values.length) {
      const grown = new Float64Array(n * 2);
      grown.set(values);
      values = grown;
    }
    values[n++] = value;
    i = skipWs(text, i);
    c = text.charCodeAt(i);
    if (c === 93) return { values: values.subarray(0, n), end: i + 1 };
    if (c !== 44) return undefined;
    i = skipWs(text, i + 1);
  }
}

/**
 * JSON.parse with every flat numeric `"data": [...]` array of `inputs` read by `readNumericData`. Returns
 * undefined (the caller then uses plain JSON.parse) when there is nothing to gain or anything is unusual.
 */
function parseWithNumericData(text: string): unknown {
  const arrays: Float64Array[] = [];
  let skeleton = '';
  let copied = 0;
  let i = 0;
  for (;;) {
    const open = text.indexOf('"', i);
    if (open < 0) break;
    let close = open + 1;
    for (;;) {
      close = text.indexOf('"', close);
      if (close < 0) return undefined;
      let backslashes = 0;
      while (text.charCodeAt(close - 1 - backslashes) === 92) backslashes++;
      if (backslashes % 2 === 0) break;
      close++;
    }
    i = close + 1;
    if (close - open !== 5 || !text.startsWith('data', open + 1)) continue;
    let j = skipWs(text, close + 1);
    if (text.charCodeAt(j) !== 58) continue;
    j = skipWs(text, j + 1);
    if (text.charCodeAt(j) !== 91) continue;
    const read = readNumericData(text, j);
    if (!read) continue;
    skeleton += `${text.slice(copied, j)}"${MARKER_TEXT}${arrays.length}"`;
    arrays.push(read.values);
    copied = read.end;
    i = read.end;
  }
  if (arrays.length === 0) return undefined;
  skeleton += text.slice(copied);
  const body = JSON.parse(skeleton) as { inputs?: unknown };
  // Put each array back where it came from; any marker elsewhere (or a look-alike string) means plain parsing.
  let placed = 0;
  const inputs = body?.inputs;
  if (Array.isArray(inputs)) {
    for (const input of inputs) {
      const data = (input as { data?: unknown } | null)?.data;
      if (typeof data !== 'string' || !data.startsWith(MARKER)) continue;
      const k = Number(data.slice(MARKER.length));
      if (!(k === placed)) return undefined;
      (input as { data: unknown }).data = arrays[k];
      placed++;
    }
  }
  return placed === arrays.length ? body : undefined;
}

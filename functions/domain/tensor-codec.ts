/**
 * Tensor codec: Open Inference Protocol (v2 REST) JSON <-> typed arrays, for every OIP datatype.
 *
 * Element representation (`Tensor.data`):
 * - BOOL: `Uint8Array` of 0/1; UINT8..UINT32 / INT8..INT32: the matching typed array;
 *   UINT64 / INT64: `BigUint64Array` / `BigInt64Array`; FP16: `Uint16Array` of IEEE 754 half bits;
 *   FP32 / FP64: `Float32Array` / `Float64Array`; BYTES: `string[]`.
 *
 * 64-bit integers: on input, JSON numbers that are safe integers (|v| <= 2^53-1) and decimal strings of any
 * size in range are accepted. `parseInferenceBody` turns integer literals too big for a double into decimal
 * strings before `JSON.parse` loses their precision, so a raw JSON number such as 9223372036854775807 sent over
 * HTTP is exact. On output, values with |v| <= 2^53-1 are JSON numbers and larger ones decimal strings.
 *
 * Non-finite floating-point outputs (NaN, ±Infinity) have no JSON form and are written as `null`.
 * Pure: no I/O, no onnxruntime.
 */
import { BadRequestError } from './errors';
import type { Datatype } from './types';

export type TensorData =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | BigUint64Array
  | BigInt64Array
  | Float32Array
  | Float64Array
  | string[];

/** A tensor in domain terms: datatype, shape (row-major) and flat data. */
export interface Tensor {
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** One tensor of an OIP request or response body. */
export interface OipTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: Datatype | string;
  readonly data: unknown;
  readonly parameters?: Record<string, unknown>;
}

/** An OIP inference request body. */
export interface OipRequest {
  readonly id?: string;
  readonly parameters?: Record<string, unknown>;
  readonly inputs: readonly OipTensor[];
  readonly outputs?: readonly { readonly name: string; readonly parameters?: Record<string, unknown> }[];
}

/** An OIP inference response body. `model_version` is the concrete version served (a string, as in OIP). */
export interface OipResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: OipTensor[];
}

/** A JSON value of an output's `data` array. */
export type JsonElement = number | string | boolean | null;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = -MAX_SAFE;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const FP32_MAX = 3.4028234663852886e38;
const FP16_MAX = 65504;

/** Number of elements of a shape (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half-precision bits of `v` (round to nearest even; overflow gives ±Infinity). */
export function toHalfBits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** The number an IEEE 754 half-precision bit pattern stands for. */
export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Flattens OIP `data` (flat or nested, row-major) checking that a nested layout matches `shape`. */
export function flattenData(
  name: string,
  shape: readonly number[],
  data: unknown,
): readonly unknown[] | Float64Array {
  // Numbers read straight from the request text by parseInferenceBody: already flat.
  if (data instanceof Float64Array) return data;
  if (!Array.isArray(data)) {
    throw new BadRequestError(`input '${name}': 'data' must be an array`, 'INVALID_DATA');
  }
  if (data.length === 0 || !Array.isArray(data[0])) return data;
  const out: unknown[] = [];
  const walk = (level: unknown[], depth: number, path: string): void => {
    const expected = shape[depth];
    if (depth >= shape.length - 1 && depth > 0) {
      if (level.length !== expected) {
        throw new BadRequestError(
          `input '${name}': nested data${path} has ${level.length} elements; shape [${shape.join(',')}] expects ${expected}`,
          'DATA_LENGTH_MISMATCH',
        );
      }
      for (const v of level) {
        if (Array.isArray(v)) {
          throw new BadRequestError(
            `input '${name}': nested data is deeper than shape [${shape.join(',')}]`,
            'DATA_LENGTH_MISMATCH',
          );
        }
        out.push(v);
      }
      return;
    }
    if (expected === undefined || level.length !== expected) {
      throw new BadRequestError(
        `input '${name}': nested data${path} has ${level.length} elements; shape [${shape.join(',')}] expects ${expected ?? 'no nesting'}`,
        'DATA_LENGTH_MISMATCH',
      );
    }
    for (let i = 0; i < level.length; i++) {
      const v = level[i];
      if (!Array.isArray(v)) {
        throw new BadRequestError(
          `input '${name}': nested data${path}[${i}] is not an array; shape [${shape.join(',')}] expects rank ${shape.length}`,
          'DATA_LENGTH_MISMATCH',
        );
      }
      walk(v, depth + 1, `${path}[${i}]`);
    }
  };
  walk(data, 0, '');
  return out;
}

function invalid(name: string, i: number, expected: string, v: unknown, code = 'INVALID_DATA'): never {
  const shown = typeof v === 'string' ? `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'` : String(v);
  throw new BadRequestError(`input '${name}': data[${i}] is ${shown}; expected ${expected}`, code);
}

const INT_RANGES: Partial<Record<Datatype, readonly [number, number]>> = {
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
};

function decodeInts(
  name: string,
  datatype: Datatype,
  flat: readonly unknown[],
  out: Uint8Array | Uint16Array | Uint32Array | Int8Array | Int16Array | Int32Array,
): void {
  const [min, max] = INT_RANGES[datatype]!;
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== 'number' || !Number.isInteger(v)) invalid(name, i, `an integer (${datatype})`, v);
    if (v < min || v > max)
      invalid(name, i, `an integer in [${min}, ${max}] (${datatype})`, v, 'OUT_OF_RANGE');
    out[i] = v;
  }
}

function decodeBig(name: string, i: number, v: unknown, unsigned: boolean): bigint {
  let b: bigint;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) invalid(name, i, 'an integer', v);
    if (!Number.isSafeInteger(v)) {
      invalid(
        name,
        i,
        'a safe integer (|v| <= 2^53-1) or a decimal string for larger values',
        v,
        'OUT_OF_RANGE',
      );
    }
    b = BigInt(v);
  } else if (typeof v === 'string' && (unsigned ? /^\d{1,20}$/ : /^-?\d{1,20}$/).test(v)) {
    b = BigInt(v);
  } else {
    return invalid(
      name,
      i,
      unsigned ? 'an unsigned integer (number or decimal string)' : 'an integer (number or decimal string)',
      v,
    );
  }
  if (unsigned ? b < 0n || b > UINT64_MAX : b < INT64_MIN || b > INT64_MAX) {
    invalid(
      name,
      i,
      unsigned ? 'a value in [0, 2^64-1] (UINT64)' : 'a value in [-2^63, 2^63-1] (INT64)',
      v,
      'OUT_OF_RANGE',
    );
  }
  return b;
}

/**
 * Decodes flat OIP `data` elements into the typed representation of `datatype`. Floating-point inputs must be
 * finite numbers (and representable: FP32/FP16 overflow is rejected); integers must be in range.
 */
export function decodeData(
  name: string,
  datatype: Datatype,
  flat: readonly unknown[] | Float64Array,
): TensorData {
  // Numbers already read into a Float64Array take their own (monomorphic) path.
  return flat instanceof Float64Array
    ? decodeNumbers(name, datatype, flat)
    : decodeValues(name, datatype, flat);
}

/** Floating-point data from a Float64Array: one native conversion, then a finiteness scan. */
function decodeNumbers(name: string, datatype: Datatype, flat: Float64Array): TensorData {
  if (datatype === 'FP32' || datatype === 'FP64') {
    const out = datatype === 'FP32' ? new Float32Array(flat) : new Float64Array(flat);
    for (let i = 0; i < out.length; i++) {
      // ±Infinity (JSON overflow, or beyond the FP32 range after conversion) fails x - x === 0.
      if (out[i]! - out[i]! !== 0) invalid(name, i, `a finite ${datatype} number`, flat[i], 'NON_FINITE');
    }
    return out;
  }
  return decodeValues(name, datatype, Array.from(flat));
}

function decodeValues(name: string, datatype: Datatype, flat: readonly unknown[]): TensorData {
  const n = flat.length;
  switch (datatype) {
    case 'FP32': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'number') invalid(name, i, 'a finite number (FP32)', v);
        if (!(v >= -FP32_MAX && v <= FP32_MAX)) invalid(name, i, 'a finite FP32 number', v, 'NON_FINITE');
        out[i] = v;
      }
      return out;
    }
    case 'FP64': {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'number') invalid(name, i, 'a finite number (FP64)', v);
        if (!Number.isFinite(v)) invalid(name, i, 'a finite number (FP64)', v, 'NON_FINITE');
        out[i] = v;
      }
      return out;
    }
    case 'FP16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'number') invalid(name, i, 'a finite number (FP16)', v);
        if (!(v > -FP16_MAX - 16 && v < FP16_MAX + 16)) {
          invalid(name, i, `a finite FP16 number (|v| <= ${FP16_MAX})`, v, 'NON_FINITE');
        }
        out[i] = toHalfBits(v);
      }
      return out;
    }
    case 'BOOL': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'boolean') invalid(name, i, 'true or false (BOOL)', v);
        out[i] = v ? 1 : 0;
      }
      return out;
    }
    case 'BYTES': {
      const out: string[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'string') invalid(name, i, 'a string (BYTES)', v);
        out[i] = v;
      }
      return out;
    }
    case 'INT64': {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = decodeBig(name, i, flat[i], false);
      return out;
    }
    case 'UINT64': {
      const out = new BigUint64Array(n);
      for (let i = 0; i < n; i++) out[i] = decodeBig(name, i, flat[i], true);
      return out;
    }
    case 'UINT8': {
      const out = new Uint8Array(n);
      decodeInts(name, datatype, flat, out);
      return out;
    }
    case 'UINT16': {
      const out = new Uint16Array(n);
      decodeInts(name, datatype, flat, out);
      return out;
    }
    case 'UINT32': {
      const out = new Uint32Array(n);
      decodeInts(name, datatype, flat, out);
      return out;
    }
    case 'INT8': {
      const out = new Int8Array(n);
      decodeInts(name, datatype, flat, out);
      return out;
    }
    case 'INT16': {
      const out = new Int16Array(n);
      decodeInts(name, datatype, flat, out);
      return out;
    }
    case 'INT32': {
      const out = new Int32Array(n);
      decodeInts(name, datatype, flat, out);
      return out;
    }
  }
}

/** Decodes one OIP tensor's `data` (flat or nested) for a known datatype and shape. */
export function decodeTensor(
  name: string,
  datatype: Datatype,
  shape: readonly number[],
  data: unknown,
): Tensor {
  const flat = flattenData(name, shape, data);
  const expected = elementCount(shape);
  if (flat.length !== expected) {
    throw new BadRequestError(
      `input '${name}': data has ${flat.length} elements; shape [${shape.join(',')}] needs ${expected}`,
      'DATA_LENGTH_MISMATCH',
    );
  }
  return { datatype, shape, data: decodeData(name, datatype, flat) };
}

function isFloat(datatype: Datatype): boolean {
  return datatype === 'FP32' || datatype === 'FP64' || datatype === 'FP16';
}

/** The JSON values of a tensor's data (flat, row-major), following the module's output rules. */
export function dataToJsonValues(t: Tensor): JsonElement[] {
  const d = t.data;
  switch (t.datatype) {
    case 'BYTES':
      return (d as string[]).slice();
    case 'BOOL':
      return Array.from(d as Uint8Array, (v) => v !== 0);
    case 'FP16':
      return Array.from(d as Uint16Array, (h) => finiteOrNull(fromHalfBits(h)));
    case 'INT64':
    case 'UINT64':
      return Array.from(d as BigInt64Array | BigUint64Array, (v: bigint) =>
        v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v.toString(),
      );
    case 'FP32':
    case 'FP64':
      return Array.from(d as Float32Array | Float64Array, finiteOrNull);
    default:
      return Array.from(d as Int32Array);
  }
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

/** The JSON text of a tensor's data array; equal to `JSON.stringify(dataToJsonValues(t))`, built faster. */
export function dataToJsonText(t: Tensor): string {
  const d = t.data;
  switch (t.datatype) {
    case 'BYTES':
      return JSON.stringify(d);
    case 'BOOL': {
      const u = d as Uint8Array;
      let s = '[';
      for (let i = 0; i < u.length; i++) s += i === 0 ? (u[i] ? 'true' : 'false') : u[i] ? ',true' : ',false';
      return `${s}]`;
    }
    case 'INT64':
    case 'UINT64': {
      const b = d as BigInt64Array | BigUint64Array;
      let s = '[';
      for (let i = 0; i < b.length; i++) {
        const v = b[i]!;
        if (i > 0) s += ',';
        s += v >= MIN_SAFE && v <= MAX_SAFE ? v.toString() : `"${v.toString()}"`;
      }
      return `${s}]`;
    }
    case 'FP16':
      return JSON.stringify(dataToJsonValues(t));
    default: {
      const text = `[${(d as Float32Array).join(',')}]`;
      // Float data may hold NaN/±Infinity, which JSON cannot carry: take the careful path only then.
      if (isFloat(t.datatype) && (text.includes('N') || text.includes('I'))) {
        return JSON.stringify(dataToJsonValues(t));
      }
      return text;
    }
  }
}

/** JSON text of one OIP output tensor: `{"name","datatype","shape","data"}`. */
export function outputToJsonText(name: string, t: Tensor): string {
  return `{"name":${JSON.stringify(name)},"datatype":"${t.datatype}","shape":[${t.shape.join(',')}],"data":${dataToJsonText(t)}}`;
}

/** An OIP output tensor object (the same content as `outputToJsonText`). */
export function outputToJson(name: string, t: Tensor): OipTensor {
  return { name, datatype: t.datatype, shape: [...t.shape], data: dataToJsonValues(t) };
}

// Integer literals (outside strings) too long to be exact as doubles: 16+ digits, not part of a decimal or
// exponent. Strings are matched first so their contents are never touched.
const BIG_LITERAL = /"(?:[^"\\]|\\.)*"|(?<![\w.+-])-?\d{16,}(?![\w.+-])/g;

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

function containsUnsafeInteger(data: unknown[]): boolean {
  for (const v of data) {
    if (Array.isArray(v)) {
      if (containsUnsafeInteger(v)) return true;
    } else if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) {
      return true;
    }
  }
  return false;
}

/**
 * Parses an inference request body. Malformed JSON is a 400 `MALFORMED_JSON`.
 *
 * Flat numeric `data` arrays are read straight from the text into `Float64Array`s (see `readNumericData`), so
 * the large part of a body never becomes JS arrays of boxed values; the rest is parsed by `JSON.parse`. The
 * result is the same as `JSON.parse` except that those `data` values are `Float64Array`s, which the codec
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
    const exact = JSON.parse(text.replace(BIG_LITERAL, (m) => (m.charCodeAt(0) === 34 ? m : `"${m}"`))) as {
      inputs: { data?: unknown }[];
    };
    (body as { inputs: { datatype?: unknown; data?: unknown }[] }).inputs.forEach((input, i) => {
      if (input?.datatype === 'INT64' || input?.datatype === 'UINT64') input.data = exact.inputs[i]?.data;
    });
  }
  return body;
}

const FAST_PATH_MIN_LENGTH = 16 * 1024;
const MARKER = '\\u0000maas-data:';
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
    skeleton += `${text.slice(copied, j)}"${MARKER}${arrays.length}"`;
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
    const prefix = '\u0000maas-data:';
    for (const input of inputs) {
      const data = (input as { data?: unknown } | null)?.data;
      if (typeof data !== 'string' || !data.startsWith(prefix)) continue;
      const k = Number(data.slice(prefix.length));
      if (!(k === placed)) return undefined;
      (input as { data: unknown }).data = arrays[k];
      placed++;
    }
  }
  return placed === arrays.length ? body : undefined;
}

/**
 * Open Inference Protocol (v2 REST) request decoding: the JSON `data` of an input (flat or nested, row-major)
 * into the typed representation of its datatype (see domain/tensor.ts), with every element checked.
 *
 * 64-bit integers: JSON numbers that are safe integers (|v| <= 2^53-1) and decimal strings of any size in range
 * are accepted. `parseInferenceBody` (domain/body-parser.ts) turns integer literals too big for a double into
 * decimal strings before `JSON.parse` loses their precision, so a raw JSON number such as 9223372036854775807
 * sent over HTTP is exact.
 *
 * Floating-point inputs must be finite numbers (and representable: FP32/FP16 overflow is rejected; FP16 takes
 * what rounds to a finite half, |v| < 65520); integers must be in range. BYTES elements must not contain U+0000
 * or a lone surrogate.
 * Pure: no I/O, no onnxruntime.
 */
import { BadRequestError } from './errors';
import { hasLoneSurrogate, shownValue } from './names';
import {
  elementCount,
  FP16_OVERFLOW,
  type OipTensor,
  type Tensor,
  type TensorData,
  toHalfBits,
} from './tensor';
import type { Datatype } from './types';

/** An OIP inference request body. */
export interface OipRequest {
  readonly id?: string;
  readonly parameters?: Record<string, unknown>;
  readonly inputs: readonly OipTensor[];
  readonly outputs?: readonly { readonly name: string; readonly parameters?: Record<string, unknown> }[];
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
/**
 * The least magnitude that rounds to an infinite FP32 (2^128 − 2^103, FLT_MAX plus half its last place): every
 * number below it in magnitude is a finite FP32 once rounded, as the FP32 maximum printed short (3.4028235e38) is.
 */
const FP32_OVERFLOW = 3.4028235677973366e38;

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
  const deeper = () =>
    new BadRequestError(
      `input '${name}': nested data is deeper than shape [${shape.join(',')}]`,
      'DATA_LENGTH_MISMATCH',
    );
  const notOfLength = (level: unknown[], path: string, expected: number) =>
    new BadRequestError(
      `input '${name}': nested data${path} has ${level.length} elements; shape [${shape.join(',')}] expects ${expected}`,
      'DATA_LENGTH_MISMATCH',
    );
  const walk = (level: unknown[], depth: number, path: string): void => {
    if (depth >= shape.length) throw deeper();
    const expected = shape[depth]!;
    if (depth === shape.length - 1) {
      // Arrays among the last dimension's values are a deeper nesting, whatever the length.
      for (const v of level) {
        if (Array.isArray(v)) throw deeper();
        out.push(v);
      }
      if (level.length !== expected) throw notOfLength(level, path, expected);
      return;
    }
    if (level.length !== expected) throw notOfLength(level, path, expected);
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
  const shown = typeof v === 'string' ? `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'` : shownValue(v);
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
        if (!(v > -FP32_OVERFLOW && v < FP32_OVERFLOW))
          invalid(name, i, 'a finite FP32 number', v, 'NON_FINITE');
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
        const bits = toHalfBits(v);
        // Accepted: what rounds to a finite half (|v| < 65520; 65504, the largest half, up to it become 65504).
        if ((bits & 0x7c00) === 0x7c00) {
          invalid(
            name,
            i,
            `a number that rounds to a finite FP16 value (|v| < ${FP16_OVERFLOW})`,
            v,
            'NON_FINITE',
          );
        }
        out[i] = bits;
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
        // onnxruntime passes string elements as C strings: the model would see only the part before a NUL.
        if (v.includes('\u0000')) {
          throw new BadRequestError(
            `input '${name}': data[${i}] contains U+0000 (NUL); BYTES elements reach the model as C strings, which end at the first NUL, so such an element cannot be passed intact`,
            'NUL_IN_BYTES',
          );
        }
        // A lone surrogate has no UTF-8 form: the model would get U+FFFD in its place.
        if (hasLoneSurrogate(v)) {
          throw new BadRequestError(
            `input '${name}': data[${i}] holds a lone surrogate (a \\ud800–\\udfff escape without its pair): it has no UTF-8 form, so the element cannot reach the model as sent`,
            'INVALID_DATA',
          );
        }
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

// Tensor data decoded from binary tensor data (domain/binary-tensors.ts), which decodeTensor takes as it is.
const preDecoded = new WeakSet<object>();

/**
 * Marks `data` as already decoded for its input (binary tensor data: typed arrays over the request body), so
 * that `decodeTensor` takes it as it is, without a copy, once the request's names, datatypes and shapes are
 * validated. Returns `data`.
 */
export function markDecoded<T extends TensorData>(data: T): T {
  preDecoded.add(data);
  return data;
}

/**
 * Decodes one OIP tensor's `data` (flat or nested) for a known datatype and shape. Data marked by
 * `markDecoded` is taken as it is (its length still checked against the shape).
 */
export function decodeTensor(
  name: string,
  datatype: Datatype,
  shape: readonly number[],
  data: unknown,
): Tensor {
  if (typeof data === 'object' && data !== null && preDecoded.has(data)) {
    const d = data as TensorData;
    if (d.length !== elementCount(shape)) {
      throw new BadRequestError(
        `input '${name}': data has ${d.length} elements; shape [${shape.join(',')}] needs ${elementCount(shape)}`,
        'DATA_LENGTH_MISMATCH',
      );
    }
    return { datatype, shape, data: d };
  }
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

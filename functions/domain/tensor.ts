/**
 * Tensors in domain terms, for every Open Inference Protocol datatype, and the helpers every tensor module
 * shares: element counts and IEEE 754 half-precision bits.
 *
 * Element representation (`Tensor.data`), by datatype:
 * - BOOL: `Uint8Array` of 0/1; UINT8..UINT32 / INT8..INT32: the matching typed array;
 *   UINT64 / INT64: `BigUint64Array` / `BigInt64Array`; FP16: `Uint16Array` of IEEE 754 half bits;
 *   FP32 / FP64: `Float32Array` / `Float64Array`; BYTES: `string[]`.
 *
 * Pure: no I/O, no onnxruntime.
 */
import type { Datatype } from './types';

/** The flat, row-major elements of a tensor (see the module comment for the array of each datatype). */
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

/** One tensor of an OIP request or response body (its JSON form). */
export interface OipTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: Datatype | string;
  readonly data: unknown;
  readonly parameters?: Record<string, unknown>;
}

/** True for the floating-point datatypes (FP16, FP32, FP64). */
export function isFloatDatatype(datatype: Datatype): boolean {
  return datatype === 'FP32' || datatype === 'FP64' || datatype === 'FP16';
}

/** Number of elements of a shape (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The largest finite half is 65504; from this magnitude on (the tie with 65536, to even) a number rounds to ±Infinity. */
export const FP16_OVERFLOW = 65520;

/** `x` (>= 0) rounded to an integer, ties to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/**
 * IEEE 754 half-precision bits of `v`, rounded once from the double to the nearest half (ties to even). Magnitudes
 * of `FP16_OVERFLOW` (65520) and more give ±Infinity; everything below it is finite (65504 up to 65520 give ±65504).
 */
export function toHalfBits(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= FP16_OVERFLOW) return sign | 0x7c00;
  // Subnormal halves count units of 2^-24; rounding up from the largest one gives 0x400, the smallest normal.
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  // Exact: a / 2^e is in [1, 2). A mantissa rounded up to 1024 carries into the exponent, as it should.
  const mantissa = roundHalfEven((a / 2 ** e - 1) * 1024);
  return sign | (((e + 15) << 10) + mantissa);
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

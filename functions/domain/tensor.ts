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

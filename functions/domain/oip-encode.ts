/**
 * Open Inference Protocol (v2 REST) response encoding: output tensors into their JSON form, as objects
 * (`outputToJson`) or straight as JSON text (`outputToJsonText`, the HTTP path).
 *
 * 64-bit integers with |v| <= 2^53-1 are JSON numbers and larger ones decimal strings. Non-finite
 * floating-point outputs (NaN, ±Infinity) have no JSON form and are written as `null`.
 * Pure: no I/O, no onnxruntime.
 */
import { fromHalfBits, isFloatDatatype, type OipTensor, type Tensor } from './tensor';

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
      if (isFloatDatatype(t.datatype) && (text.includes('N') || text.includes('I'))) {
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

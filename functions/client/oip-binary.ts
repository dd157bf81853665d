/**
 * A small client for the binary tensor data extension of the Open Inference Protocol (v2 REST), as Triton's
 * `extension_binary_data.md` specifies it: build a binary inference request, and read a binary (or plain JSON)
 * inference response. No dependencies: TypedArrays, DataView, TextEncoder/TextDecoder only, so it runs in Node
 * 18+, Deno, Bun and browsers.
 *
 * Layout (both ways): the JSON header, then the raw data of every tensor whose `parameters.binary_data_size` is
 * given, in the order of `inputs` (or `outputs`), without padding. Data is little-endian and row-major; BOOL is
 * one byte (0 or 1); BYTES elements are a 4-byte little-endian length followed by the bytes. The header's length
 * in bytes travels in the `Inference-Header-Content-Length` HTTP header.
 *
 * @example
 * ```ts
 * import { decodeInferResponse, encodeInferRequest, INFERENCE_HEADER_CONTENT_LENGTH, toJsonData } from './oip-binary';
 *
 * const { body, headers } = encodeInferRequest({
 *   inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: new Float32Array([5.1, 3.5, 1.4, 0.2]) }],
 *   binaryOutputs: true, // ask every output as binary data
 * });
 * const res = await fetch('http://127.0.0.1:3000/v2/models/iris/infer', { method: 'POST', headers, body });
 * if (!res.ok) throw new Error(JSON.stringify(await res.json())); // errors are JSON {"error","code"}
 * const length = res.headers.get(INFERENCE_HEADER_CONTENT_LENGTH);
 * const answer = decodeInferResponse(new Uint8Array(await res.arrayBuffer()), length === null ? undefined : Number(length));
 * for (const o of answer.outputs) console.log(o.name, o.datatype, o.shape, toJsonData(o));
 * ```
 */

/** The extension's name in the `extensions` of `GET /v2` (server metadata). */
export const BINARY_TENSOR_DATA = 'binary_tensor_data';

/** The HTTP header giving the JSON header's length in bytes (header names are case-insensitive). */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'Inference-Header-Content-Length';

/** The datatypes of the protocol. FP16 and BF16 travel as their raw 16-bit patterns. */
export type OipDatatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'BF16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';

/** A typed array the helper reads or returns tensor data as. */
export type TypedTensorArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | BigUint64Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

/**
 * The data of an input, flat and row-major: the typed array of its datatype (Uint8Array for BOOL, Uint16Array of
 * raw halves for FP16 and BF16) is written as it is; plain arrays are converted element by element (numbers to
 * halves for FP16/BF16, numbers, bigints or decimal strings for 64-bit integers, booleans or 0/1 for BOOL,
 * strings (UTF-8) or byte arrays for BYTES).
 */
export type InputData =
  | TypedTensorArray
  | readonly number[]
  | readonly bigint[]
  | readonly boolean[]
  | readonly string[]
  | readonly Uint8Array[]
  | readonly (number | bigint | string)[];

/** One input of a request. */
export interface InferInput {
  readonly name: string;
  readonly datatype: OipDatatype;
  readonly shape: readonly number[];
  readonly data: InputData;
  /** Send this input as binary data (true) or as JSON `data` (false; not for FP16/BF16). @default true */
  readonly binary?: boolean;
  /** Extra parameters of the input (`binary_data_size` is set by the helper). */
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** One output asked for, binary or JSON (`parameters.binary_data`). */
export interface RequestedOutput {
  readonly name: string;
  /** When given, `parameters.binary_data` of this output: overrides {@link InferRequest.binaryOutputs}. */
  readonly binary?: boolean;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** An inference request to encode. */
export interface InferRequest {
  readonly inputs: readonly InferInput[];
  readonly outputs?: readonly RequestedOutput[];
  /** When given, the request's `parameters.binary_data_output`: every output binary unless it says otherwise. */
  readonly binaryOutputs?: boolean;
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** An encoded request: the body to POST, the header's length, and the HTTP headers to send with it. */
export interface EncodedInferRequest {
  readonly body: Uint8Array;
  readonly headerLength: number;
  readonly headers: Record<string, string>;
}

/**
 * The data of a decoded output: binary outputs as the typed array of their datatype (a view over the body when
 * its offset is aligned, else a copy; FP16/BF16 as Uint16Array of raw 16-bit patterns), BOOL as booleans, BYTES
 * as UTF-8 strings; JSON outputs as the server gave them.
 */
export type OutputData = TypedTensorArray | string[] | boolean[] | unknown[];

/** One output of a decoded response. */
export interface DecodedOutput {
  readonly name: string;
  readonly datatype: OipDatatype;
  readonly shape: number[];
  readonly data: OutputData;
  /** Whether the output came as binary data. */
  readonly binary: boolean;
  readonly parameters?: Record<string, unknown>;
}

/** A decoded inference response. */
export interface DecodedInferResponse {
  readonly model_name: string;
  readonly model_version: string;
  readonly id?: string;
  readonly parameters?: Record<string, unknown>;
  readonly outputs: DecodedOutput[];
}

const SIZE: Readonly<Record<Exclude<OipDatatype, 'BYTES'>, number>> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  BF16: 2,
  FP32: 4,
  FP64: 8,
};

type ArrayCtor = {
  new (length: number): TypedTensorArray;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedTensorArray;
};

const ARRAY: Readonly<Record<Exclude<OipDatatype, 'BYTES' | 'BOOL'>, ArrayCtor>> = {
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP16: Uint16Array,
  BF16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
};

const INT_RANGE: Readonly<Record<string, readonly [number, number]>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
};
const BIG_RANGE: Readonly<Record<string, readonly [bigint, bigint]>> = {
  UINT64: [0n, 2n ** 64n - 1n],
  INT64: [-(2n ** 63n), 2n ** 63n - 1n],
};

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');
/** A BYTES element's text as sent: a leading byte order mark is part of it (a plain decoder drops it). */
const elementDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** `x` (>= 0) rounded to an integer, ties to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/**
 * The bits, without the sign, of the binary float with `mantissaBits` and exponent `bias` nearest to `a` (>= 0,
 * not NaN): rounded once from the double (ties to even), ±Infinity past the largest finite value. Going through
 * an FP32 first would round twice, and a number halfway between two 16-bit values after the first rounding (but
 * not before) would go the wrong way.
 */
function roundedBits(a: number, mantissaBits: number, bias: number): number {
  const infinity = (2 * bias + 1) * 2 ** mantissaBits;
  if (a === Number.POSITIVE_INFINITY) return infinity;
  // Subnormals count units of 2^(1 - bias - mantissaBits); the largest one rounded up is the smallest normal.
  if (a < 2 ** (1 - bias)) return roundHalfEven(a * 2 ** (bias - 1 + mantissaBits));
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  // Exact: a / 2^e is in [1, 2). A mantissa rounded up to 2^mantissaBits carries into the exponent, as it should.
  const bits = (e + bias) * 2 ** mantissaBits + roundHalfEven((a / 2 ** e - 1) * 2 ** mantissaBits);
  return Math.min(bits, infinity);
}

/** The IEEE 754 half (FP16) bits nearest to `v` (round to nearest even; overflow to ±Infinity). */
export function numberToHalf(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  return (v < 0 || Object.is(v, -0) ? 0x8000 : 0) | roundedBits(Math.abs(v), 10, 15);
}

/** The number an FP16 bit pattern stands for. */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** The BF16 bits nearest to `v` (round to nearest even; overflow to ±Infinity). */
export function numberToBf16(v: number): number {
  if (Number.isNaN(v)) return 0x7fc0;
  return (v < 0 || Object.is(v, -0) ? 0x8000 : 0) | roundedBits(Math.abs(v), 7, 127);
}

/** The number a BF16 bit pattern stands for. */
export function bf16ToNumber(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0] as number;
}

function count(shape: readonly number[], what: string): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw new RangeError(`${what}: shape [${shape.join(',')}] is not valid`);
    n *= d;
  }
  return n;
}

function asInteger(v: unknown, datatype: string, what: string, i: number): number {
  const [lo, hi] = INT_RANGE[datatype] as readonly [number, number];
  const n = typeof v === 'boolean' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < lo || n > hi) {
    throw new RangeError(`${what}: element ${i} (${String(v)}) is not a ${datatype}`);
  }
  return n;
}

function asBigInt(v: unknown, datatype: string, what: string, i: number): bigint {
  const [lo, hi] = BIG_RANGE[datatype] as readonly [bigint, bigint];
  let b: bigint | undefined;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else if (typeof v === 'string' && (datatype === 'UINT64' ? /^\d+$/ : /^-?\d+$/).test(v)) b = BigInt(v);
  if (b === undefined || b < lo || b > hi) {
    throw new RangeError(`${what}: element ${i} (${String(v)}) is not a ${datatype}`);
  }
  return b;
}

function asNumber(v: unknown, what: string, i: number): number {
  if (typeof v !== 'number') throw new TypeError(`${what}: element ${i} (${String(v)}) is not a number`);
  return v;
}

/** The binary data of one input: its bytes, little-endian. */
function inputBytes(input: InferInput): Uint8Array {
  const what = `input '${input.name}'`;
  const n = count(input.shape, what);
  const data = input.data as ArrayLike<unknown>;
  if (input.datatype === 'BYTES') {
    const parts = Array.from(data, (v, i) => {
      if (typeof v === 'string') return encoder.encode(v);
      if (v instanceof Uint8Array) return v;
      throw new TypeError(`${what}: BYTES element ${i} is neither a string nor a Uint8Array`);
    });
    if (parts.length !== n) {
      throw new RangeError(`${what}: ${parts.length} elements; shape [${input.shape.join(',')}] needs ${n}`);
    }
    let size = 0;
    for (const p of parts) size += 4 + p.length;
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    let at = 0;
    for (const p of parts) {
      view.setUint32(at, p.length, true);
      out.set(p, at + 4);
      at += 4 + p.length;
    }
    return out;
  }
  if (data.length !== n) {
    throw new RangeError(`${what}: ${data.length} elements; shape [${input.shape.join(',')}] needs ${n}`);
  }
  const size = SIZE[input.datatype];
  const Ctor = input.datatype === 'BOOL' ? Uint8Array : ARRAY[input.datatype];
  if (data instanceof Ctor && (HOST_LITTLE_ENDIAN || size === 1)) {
    const t = data as unknown as TypedTensorArray;
    const bytes = new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
    if (input.datatype === 'BOOL' && bytes.some((b) => b > 1)) {
      throw new RangeError(`${what}: BOOL bytes must be 0 or 1`);
    }
    return bytes;
  }
  const out = new Uint8Array(n * size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const v = data[i];
    const at = i * size;
    switch (input.datatype) {
      case 'BOOL':
        if (v !== true && v !== false && v !== 0 && v !== 1) {
          throw new RangeError(`${what}: BOOL element ${i} (${String(v)}) is not a boolean`);
        }
        view.setUint8(at, v ? 1 : 0);
        break;
      case 'UINT8':
        view.setUint8(at, asInteger(v, 'UINT8', what, i));
        break;
      case 'INT8':
        view.setInt8(at, asInteger(v, 'INT8', what, i));
        break;
      case 'UINT16':
        view.setUint16(at, asInteger(v, 'UINT16', what, i), true);
        break;
      case 'INT16':
        view.setInt16(at, asInteger(v, 'INT16', what, i), true);
        break;
      case 'UINT32':
        view.setUint32(at, asInteger(v, 'UINT32', what, i), true);
        break;
      case 'INT32':
        view.setInt32(at, asInteger(v, 'INT32', what, i), true);
        break;
      case 'UINT64':
        view.setBigUint64(at, asBigInt(v, 'UINT64', what, i), true);
        break;
      case 'INT64':
        view.setBigInt64(at, asBigInt(v, 'INT64', what, i), true);
        break;
      case 'FP16':
        view.setUint16(at, numberToHalf(asNumber(v, what, i)), true);
        break;
      case 'BF16':
        view.setUint16(at, numberToBf16(asNumber(v, what, i)), true);
        break;
      case 'FP32':
        view.setFloat32(at, asNumber(v, what, i), true);
        break;
      case 'FP64':
        view.setFloat64(at, asNumber(v, what, i), true);
        break;
    }
  }
  return out;
}

/** The JSON `data` of an input sent as JSON (bigints as decimal strings, typed arrays as plain arrays). */
function jsonData(input: InferInput): unknown[] {
  if (input.datatype === 'FP16' || input.datatype === 'BF16') {
    throw new TypeError(`input '${input.name}': ${input.datatype} has no JSON form; send it as binary`);
  }
  return Array.from(input.data as ArrayLike<unknown>, (v, i) => {
    if (typeof v === 'bigint')
      return v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n ? Number(v) : v.toString();
    if (input.datatype === 'BOOL' && typeof v === 'number') return v !== 0;
    // A BYTES element of bytes is a JSON string only when they are UTF-8 text.
    if (input.datatype === 'BYTES' && v instanceof Uint8Array) {
      try {
        return strictDecoder.decode(v);
      } catch {
        throw new TypeError(
          `input '${input.name}': BYTES element ${i} is not UTF-8 text, which JSON cannot carry; send it as binary`,
        );
      }
    }
    return v;
  });
}

/**
 * Builds a request of the binary tensor data extension: the JSON header (inputs with `binary` not false carry
 * `parameters.binary_data_size` and no `data`), then their data in order. Throws a TypeError or RangeError when
 * an input's data does not fit its datatype or shape (wrong element count, integer out of range, …).
 * `headers` are the HTTP headers to send: `Inference-Header-Content-Length` and `Content-Type:
 * application/octet-stream`.
 */
export function encodeInferRequest(request: InferRequest): EncodedInferRequest {
  const chunks: Uint8Array[] = [];
  const inputs = request.inputs.map((input) => {
    const base = { name: input.name, shape: [...input.shape], datatype: input.datatype };
    if (input.binary === false) {
      return {
        ...base,
        ...(input.parameters ? { parameters: input.parameters } : {}),
        data: jsonData(input),
      };
    }
    const bytes = inputBytes(input);
    chunks.push(bytes);
    return { ...base, parameters: { ...input.parameters, binary_data_size: bytes.length } };
  });
  const parameters =
    request.binaryOutputs === undefined
      ? request.parameters
      : { ...request.parameters, binary_data_output: request.binaryOutputs };
  const header = {
    ...(request.id !== undefined ? { id: request.id } : {}),
    ...(parameters !== undefined ? { parameters } : {}),
    inputs,
    ...(request.outputs
      ? {
          outputs: request.outputs.map((o) => {
            const params = o.binary === undefined ? o.parameters : { ...o.parameters, binary_data: o.binary };
            return { name: o.name, ...(params !== undefined ? { parameters: params } : {}) };
          }),
        }
      : {}),
  };
  const head = encoder.encode(JSON.stringify(header));
  let size = head.length;
  for (const c of chunks) size += c.length;
  const body = new Uint8Array(size);
  body.set(head);
  let at = head.length;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return {
    body,
    headerLength: head.length,
    headers: {
      [INFERENCE_HEADER_CONTENT_LENGTH]: String(head.length),
      'Content-Type': 'application/octet-stream',
    },
  };
}

/** Decodes one binary output's bytes. */
function outputData(
  datatype: OipDatatype,
  shape: readonly number[],
  bytes: Uint8Array,
  what: string,
): OutputData {
  const n = count(shape, what);
  if (datatype === 'BYTES') {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out: string[] = [];
    let at = 0;
    while (at < bytes.length) {
      if (at + 4 > bytes.length) throw new RangeError(`${what}: truncated BYTES length`);
      const length = view.getUint32(at, true);
      if (length > bytes.length - at - 4) throw new RangeError(`${what}: BYTES element overruns its data`);
      out.push(elementDecoder.decode(bytes.subarray(at + 4, at + 4 + length)));
      at += 4 + length;
    }
    if (out.length !== n) throw new RangeError(`${what}: ${out.length} BYTES elements; shape needs ${n}`);
    return out;
  }
  const size = Object.hasOwn(SIZE, datatype) ? SIZE[datatype] : undefined;
  if (size === undefined) throw new TypeError(`${what}: unknown datatype ${String(datatype)}`);
  if (bytes.length !== n * size) {
    throw new RangeError(
      `${what}: ${bytes.length} bytes; shape [${shape.join(',')}] of ${datatype} needs ${n * size}`,
    );
  }
  if (datatype === 'BOOL') {
    const notBool = bytes.findIndex((b) => b > 1);
    if (notBool >= 0)
      throw new RangeError(`${what}: BOOL element ${notBool} is byte ${bytes[notBool]}, not 0 or 1`);
    return Array.from(bytes, (b) => b === 1);
  }
  const Ctor = ARRAY[datatype];
  if (HOST_LITTLE_ENDIAN && bytes.byteOffset % size === 0) return new Ctor(bytes.buffer, bytes.byteOffset, n);
  const out = new Ctor(n);
  const target = new Uint8Array(out.buffer);
  target.set(bytes);
  if (!HOST_LITTLE_ENDIAN)
    for (let i = 0; i < target.length; i += size) target.subarray(i, i + size).reverse();
  return out;
}

/** A response output as its JSON header gives it. */
interface HeaderOutput {
  readonly name: string;
  readonly datatype: OipDatatype;
  readonly shape: number[];
  readonly data?: unknown[];
  readonly parameters?: Record<string, unknown>;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The JSON header of an inference response, checked for what decoding reads of it: an object whose `outputs`
 * (when given) are objects with a string `name` and `datatype`, a `shape` array, `data` an array and `parameters`
 * an object when given, and not both `data` and `binary_data_size`. A TypeError or SyntaxError that says what is
 * wrong otherwise.
 */
function responseHeader(
  bytes: Uint8Array,
  headerLength: number | undefined,
): {
  model_name: string;
  model_version: string;
  id?: string;
  parameters?: Record<string, unknown>;
  outputs?: HeaderOutput[];
} {
  let header: unknown;
  try {
    header = JSON.parse(decoder.decode(bytes));
  } catch (e) {
    throw new SyntaxError(
      headerLength === undefined
        ? `the response is not JSON (${(e as Error).message}); a binary response gives its header's length in ${INFERENCE_HEADER_CONTENT_LENGTH}`
        : `the response's header (its first ${headerLength} bytes, as ${INFERENCE_HEADER_CONTENT_LENGTH} says) is not JSON: ${(e as Error).message}`,
    );
  }
  if (!isRecord(header)) throw new TypeError('the response header is not a JSON object');
  if (header.parameters !== undefined && !isRecord(header.parameters)) {
    throw new TypeError("the response's parameters are not an object");
  }
  const outputs = header.outputs;
  if (outputs === undefined) return header as ReturnType<typeof responseHeader>;
  if (!Array.isArray(outputs)) throw new TypeError("the response's outputs are not an array");
  outputs.forEach((o: unknown, i) => {
    if (!isRecord(o)) throw new TypeError(`response output ${i} is not an object`);
    const what = typeof o.name === 'string' ? `output '${o.name}'` : `response output ${i}`;
    if (typeof o.name !== 'string') throw new TypeError(`${what} has no name`);
    if (typeof o.datatype !== 'string') throw new TypeError(`${what} has no datatype`);
    if (!Array.isArray(o.shape)) throw new TypeError(`${what} has no shape`);
    if (o.parameters !== undefined && !isRecord(o.parameters)) {
      throw new TypeError(`${what}: parameters are not an object`);
    }
    if (o.data !== undefined && !Array.isArray(o.data)) throw new TypeError(`${what}: data is not an array`);
    if (o.data !== undefined && o.parameters?.binary_data_size !== undefined) {
      throw new TypeError(`${what} has both data and binary_data_size`);
    }
  });
  return header as ReturnType<typeof responseHeader>;
}

/**
 * Reads an inference response. `headerLength` is the response's `Inference-Header-Content-Length` (undefined when
 * absent: the body is plain JSON). Binary outputs (those with `parameters.binary_data_size`) are decoded from the
 * bytes after the header, in order; the sizes must add up to the body exactly (else a RangeError).
 */
export function decodeInferResponse(
  body: Uint8Array,
  headerLength: number | undefined,
): DecodedInferResponse {
  const length = headerLength ?? body.length;
  if (!Number.isSafeInteger(length) || length < 0 || length > body.length) {
    throw new RangeError(
      `${INFERENCE_HEADER_CONTENT_LENGTH} ${headerLength} does not fit a body of ${body.length} bytes`,
    );
  }
  const header = responseHeader(body.subarray(0, length), headerLength);
  let at = length;
  const outputs = (header.outputs ?? []).map((o): DecodedOutput => {
    const size = o.parameters?.binary_data_size;
    const params = o.parameters ? { parameters: o.parameters } : {};
    if (size === undefined) {
      return {
        name: o.name,
        datatype: o.datatype,
        shape: o.shape,
        data: o.data ?? [],
        binary: false,
        ...params,
      };
    }
    const what = `output '${o.name}'`;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > body.length - at) {
      throw new RangeError(`${what}: binary_data_size ${String(size)} goes beyond the body`);
    }
    const data = outputData(o.datatype, o.shape, body.subarray(at, at + size), what);
    at += size;
    return { name: o.name, datatype: o.datatype, shape: o.shape, data, binary: true, ...params };
  });
  if (at !== body.length) {
    throw new RangeError(`the body has ${body.length - at} bytes after the outputs' binary data`);
  }
  return {
    model_name: header.model_name,
    model_version: header.model_version,
    ...(header.id !== undefined ? { id: header.id } : {}),
    ...(header.parameters !== undefined ? { parameters: header.parameters } : {}),
    outputs,
  };
}

const finiteOrNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/**
 * An output's data as the JSON form of the protocol gives it: plain numbers (FP16/BF16 converted; NaN and
 * ±Infinity as null), 64-bit integers as numbers when safe and decimal strings otherwise, booleans, strings.
 * JSON outputs are returned as they are.
 */
export function toJsonData(output: DecodedOutput): unknown[] {
  const d = output.data;
  if (!output.binary || !ArrayBuffer.isView(d)) return Array.from(d as unknown[]);
  switch (output.datatype) {
    case 'FP16':
      return Array.from(d as Uint16Array, (h) => finiteOrNull(halfToNumber(h)));
    case 'BF16':
      return Array.from(d as Uint16Array, (h) => finiteOrNull(bf16ToNumber(h)));
    case 'FP32':
    case 'FP64':
      return Array.from(d as Float32Array, finiteOrNull);
    case 'INT64':
    case 'UINT64':
      return Array.from(d as BigInt64Array, (v: bigint) =>
        v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n ? Number(v) : v.toString(),
      );
    default:
      return Array.from(d as Int32Array);
  }
}

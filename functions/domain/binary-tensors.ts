/**
 * The binary tensor data extension of the Open Inference Protocol (v2 REST): request bodies of a JSON header
 * followed by raw tensors, and responses in the same form.
 *
 * Layout: the body is the JSON header (its length in bytes is the `Inference-Header-Content-Length` header),
 * then, in the order of the header's `inputs` (or `outputs`), the bytes of every tensor whose `parameters`
 * carry `binary_data_size`. Data is little-endian and row-major, without padding; BOOL is one byte (0 or 1);
 * BYTES elements are a 4-byte little-endian length followed by that many bytes (UTF-8 here). The extension gives
 * FP16 no JSON form; maas takes FP16 JSON numbers (rounded to the nearest half) in a binary request's JSON inputs
 * as it does in a JSON request, so the two forms accept the same inputs.
 *
 * Decoded binary inputs are domain tensors (domain/tensor.ts). A fixed-size input is a typed array VIEW over
 * the request body when its offset is aligned for the element size, and a copy otherwise; BOOL and 8-bit types
 * are always views. Binary floating-point data is taken as sent (NaN and ±Infinity included: binary data has
 * no rounding or overflow to refuse); BOOL bytes must be 0 or 1; BYTES elements must be UTF-8 without U+0000,
 * as in JSON requests.
 *
 * Pure: no I/O, no onnxruntime.
 */
import { LIMITS } from '../contract/limits';
import { parseInferenceBody } from './body-parser';
import { BadRequestError } from './errors';
import { shownValue } from './names';
import { markDecoded, type OipRequest } from './oip-decode';
import { dataToJsonValues, outputToJsonText } from './oip-encode';
import { elementCount, type Tensor, type TensorData } from './tensor';
import { DATATYPES, type Datatype, type TensorSpec } from './types';

/** Machine code of every malformed binary body (layout, sizes, element bytes). */
export const INVALID_BINARY_DATA = 'INVALID_BINARY_DATA';

/** The name of the HTTP header that gives the JSON header's length (HTTP header names are case-insensitive). */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'Inference-Header-Content-Length';

/** Bytes per element of the fixed-size datatypes (BYTES has none: its elements are length-prefixed). */
export const ELEMENT_SIZE: Readonly<Record<Exclude<Datatype, 'BYTES'>, number>> = {
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
  FP32: 4,
  FP64: 8,
};

/**
 * A binary request, parsed. `request` is the request as JSON validation takes it: the header, with each binary
 * input's `data` set to its decoded `Tensor.data`, marked by `markDecoded` (domain/oip-decode.ts) so that
 * `validateInferenceRequest` checks names, datatypes and shapes against the signature as for JSON and then takes
 * that data as it is (no copy); `binary_data_size` stays in the input's `parameters`. `binaryInputs[i]` is the
 * decoded tensor of `request.inputs[i]` when that input was binary, undefined when it carries JSON `data`
 * (decoded by validation as usual); `validateInferenceRequest` takes them as they are when given them instead.
 */
export interface BinaryRequest {
  readonly request: OipRequest;
  readonly binaryInputs: readonly (Tensor | undefined)[];
}

const DATATYPE_SET: ReadonlySet<string> = new Set(DATATYPES);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
/** A BYTES element's text as sent: a leading byte order mark is part of it (a plain decoder drops it). */
const elementDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

function bad(message: string, code = INVALID_BINARY_DATA): never {
  throw new BadRequestError(message, code);
}

function isShape(shape: unknown): shape is number[] {
  if (!Array.isArray(shape)) return false;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (!Number.isSafeInteger(d) || d < 0) return false;
  }
  return true;
}

/** Reverses the bytes of each `size`-byte element in place (big-endian hosts only). */
function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

type FixedArrayConstructor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): Exclude<TensorData, string[]>;
  new (length: number): Exclude<TensorData, string[]>;
};

const ARRAY_OF: Readonly<Record<Exclude<Datatype, 'BYTES'>, FixedArrayConstructor>> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
};

/** `bytes` as the typed array of `datatype`: a view when aligned (and the host is little-endian), else a copy. */
function fixedData(datatype: Exclude<Datatype, 'BYTES'>, bytes: Uint8Array): Exclude<TensorData, string[]> {
  const size = ELEMENT_SIZE[datatype];
  const Ctor = ARRAY_OF[datatype];
  const n = bytes.length / size;
  if (LITTLE_ENDIAN && bytes.byteOffset % size === 0) return new Ctor(bytes.buffer, bytes.byteOffset, n);
  const out = new Ctor(n);
  const target = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  target.set(bytes);
  if (!LITTLE_ENDIAN && size > 1) swapBytes(target, size);
  return out;
}

/** Decodes a BYTES tensor's length-prefixed elements; their number must be `count`. */
function bytesData(name: string, bytes: Uint8Array, count: number): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (out.length === count) {
      bad(`input '${name}': BYTES data holds more than the ${count} elements its shape gives`);
    }
    if (at + 4 > bytes.length) {
      bad(
        `input '${name}': BYTES element ${out.length} has a truncated length prefix (${bytes.length - at} of 4 bytes)`,
      );
    }
    const length = view.getUint32(at, true);
    at += 4;
    if (length > bytes.length - at) {
      bad(
        `input '${name}': BYTES element ${out.length} declares ${length} bytes; only ${bytes.length - at} remain`,
      );
    }
    out.push(bytesElement(name, out.length, bytes.subarray(at, at + length)));
    at += length;
  }
  if (out.length !== count) {
    bad(`input '${name}': BYTES data holds ${out.length} elements; its shape gives ${count}`);
  }
  return out;
}

/** One BYTES element's text: its bytes as UTF-8, without U+0000. */
function bytesElement(name: string, index: number, bytes: Uint8Array): string {
  let s: string;
  try {
    s = elementDecoder.decode(bytes);
  } catch {
    return bad(`input '${name}': BYTES element ${index} is not valid UTF-8`);
  }
  if (s.includes('\u0000')) {
    bad(
      `input '${name}': BYTES element ${index} contains U+0000 (NUL); BYTES elements reach the model as C strings, which end at the first NUL, so such an element cannot be passed intact`,
      'NUL_IN_BYTES',
    );
  }
  return s;
}

/** Decodes the binary data of one input of known datatype and shape. */
export function decodeBinary(
  name: string,
  datatype: Datatype,
  shape: readonly number[],
  bytes: Uint8Array,
  mark: boolean,
): Tensor {
  const count = elementCount(shape);
  if (datatype === 'BYTES') {
    const strings = bytesData(name, bytes, count);
    return { datatype, shape, data: mark ? markDecoded(strings) : strings };
  }
  const size = ELEMENT_SIZE[datatype];
  if (bytes.length !== count * size) {
    bad(
      `input '${name}': binary data has ${bytes.length} bytes; shape [${shape.join(',')}] of ${datatype} needs ${count} × ${size} = ${count * size}`,
    );
  }
  if (datatype === 'BOOL') {
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! > 1) bad(`input '${name}': BOOL element ${i} is byte ${bytes[i]}; expected 0 or 1`);
    }
  }
  const data = fixedData(datatype, bytes);
  return { datatype, shape, data: mark ? markDecoded(data) : data };
}

/** Checks a request's `binary_data` / `binary_data_output` parameter: a boolean when given. */
export function binaryFlag(parameters: unknown, key: string, what: string): boolean | undefined {
  if (!isObject(parameters)) return undefined;
  const v = parameters[key];
  if (v === undefined || typeof v === 'boolean') return v;
  return bad(`${what}: '${key}' must be true or false, got ${shownValue(v)}`, 'INVALID_PARAMETERS');
}

/**
 * Parses a request of the binary tensor data extension. `headerLength` is the value of the
 * `Inference-Header-Content-Length` header: the first `headerLength` bytes of `body` are the JSON header (parsed
 * like a JSON request, 64-bit integers included), and the rest is the binary data of the inputs whose
 * `parameters.binary_data_size` is given, in the order of `inputs`.
 *
 * `headerLength` 0 is the raw form: the whole body is the data of one input, whose name, datatype and shape
 * `rawInput` gives (the model's only input); its dynamic dimensions are taken as `parseRaw` says.
 *
 * Refused (400, `INVALID_BINARY_DATA` unless said otherwise): a header length beyond the body or not a
 * non-negative integer; a header that is not JSON (`MALFORMED_JSON`) or not an object (`INVALID_REQUEST`);
 * `binary_data_size` not a non-negative safe integer; sizes that do not add up exactly to the rest of the body;
 * an input with both `data` and `binary_data_size`; binary data that does not match shape × element size,
 * malformed BYTES, BOOL bytes other than 0/1; an unknown datatype
 * or a bad shape on a binary input (`INVALID_DATATYPE`, `INVALID_SHAPE`); a raw body without `rawInput`.
 * Everything else (names, shapes against the signature, JSON inputs' data) is left to JSON validation.
 *
 * `marked` false: the decoded data is not marked by `markDecoded`; the caller hands `binaryInputs` to
 * `validateInferenceRequest` itself (one registration less per input).
 */
export function parseBinaryRequest(
  body: Uint8Array,
  headerLength: number,
  rawInput?: TensorSpec,
  marked = true,
): BinaryRequest {
  if (!Number.isSafeInteger(headerLength) || headerLength < 0) {
    bad(`${INFERENCE_HEADER_CONTENT_LENGTH} must be a non-negative integer, got ${headerLength}`);
  }
  if (headerLength > body.length) {
    bad(`${INFERENCE_HEADER_CONTENT_LENGTH} is ${headerLength}; the body has only ${body.length} bytes`);
  }
  if (headerLength === 0) return parseRaw(body, rawInput, marked);
  let text: string;
  try {
    text = utf8Decoder.decode(body.subarray(0, headerLength));
  } catch {
    return bad('the inference header is not valid UTF-8', 'MALFORMED_JSON');
  }
  const header = parseInferenceBody(text);
  if (!isObject(header)) bad('the inference header must be a JSON object', 'INVALID_REQUEST');
  binaryFlag(header.parameters, 'binary_data_output', `'parameters'`);
  const inputs = header.inputs;
  if (!Array.isArray(inputs))
    bad(`'inputs' must be a non-empty array of {name, shape, datatype}`, 'INVALID_REQUEST');
  const binaryInputs: (Tensor | undefined)[] = new Array(inputs.length).fill(undefined);
  let at = headerLength;
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    if (!isObject(input)) continue; // left to validation
    const name = typeof input.name === 'string' ? input.name : `inputs[${i}]`;
    const size = isObject(input.parameters) ? input.parameters.binary_data_size : undefined;
    if (size === undefined) continue; // a JSON input: left to JSON validation
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      bad(`input '${name}': binary_data_size must be a non-negative integer, got ${shownValue(size)}`);
    }
    if (input.data !== undefined) bad(`input '${name}': both 'data' and binary_data_size are given`);
    const datatype = input.datatype;
    if (typeof datatype !== 'string' || !DATATYPE_SET.has(datatype)) {
      bad(
        `input '${name}': datatype ${shownValue(datatype)} is not one of ${DATATYPES.join(', ')}`,
        'INVALID_DATATYPE',
      );
    }
    if (!isShape(input.shape))
      bad(`input '${name}': shape must be an array of non-negative integers`, 'INVALID_SHAPE');
    if (size > body.length - at) {
      bad(
        `input '${name}': binary_data_size ${size} goes beyond the body (${body.length - at} bytes left after the header and the inputs before it)`,
      );
    }
    const tensor = decodeBinary(
      name,
      datatype as Datatype,
      input.shape,
      body.subarray(at, at + size),
      marked,
    );
    at += size;
    input.data = tensor.data;
    binaryInputs[i] = tensor;
  }
  if (at !== body.length) {
    bad(
      `the body has ${body.length - headerLength} bytes after the inference header; the inputs' binary_data_size add up to ${at - headerLength}`,
    );
  }
  return { request: header as unknown as OipRequest, binaryInputs };
}

/**
 * The raw form: the whole body is `rawInput`'s data, as Triton reads it. A fixed-size datatype's shape may have
 * one dynamic dimension, taken from the byte count; with more, a dynamic first dimension is the batch and is 1
 * (the extension: "treated as batch-1"), and one more may be dynamic. A BYTES body is one element, as sent (no
 * length prefix): its shape, dynamic dimensions 1, must hold one element ("the shape must be [1]"). An empty body
 * is refused: it holds no data for the input.
 */
function parseRaw(body: Uint8Array, rawInput: TensorSpec | undefined, marked: boolean): BinaryRequest {
  if (!rawInput) {
    bad(`${INFERENCE_HEADER_CONTENT_LENGTH} 0 (a raw body) needs a model with exactly one input`);
  }
  checkRawBody(body);
  const { name, datatype } = rawInput;
  let tensor: Tensor;
  if (datatype === 'BYTES') {
    const shape = rawInput.shape.map((d) => (d < 0 ? 1 : d));
    if (elementCount(shape) !== 1) {
      bad(
        `input '${name}': a raw BYTES body is one element, and shape [${rawInput.shape.join(',')}] holds more than one; send a header (binary BYTES elements are length-prefixed there)`,
      );
    }
    const data = [bytesElement(name, 0, body)];
    tensor = { datatype, shape, data: marked ? markDecoded(data) : data };
  } else {
    tensor = decodeBinary(name, datatype, rawShape(rawInput, body.length), body, marked);
  }
  return {
    // The spec: a raw request has every output answered as binary data.
    request: {
      inputs: [{ name, datatype, shape: tensor.shape as number[], data: tensor.data }],
      parameters: { binary_data_output: true },
    },
    binaryInputs: [tensor],
  };
}

/** `parameters` without `key`; undefined when nothing else is left (or there were none). */
function withoutParameter(parameters: unknown, key: string): Record<string, unknown> | undefined {
  if (!isObject(parameters)) return undefined;
  const { [key]: _dropped, ...rest } = parameters;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

/** An OIP tensor object of the JSON form: `data` as JSON values, `binary_data_size` (and `sizeKey`) dropped. */
function jsonTensor(object: Record<string, unknown>, tensor: Tensor | undefined, sizeKey: string) {
  const { parameters, data, ...rest } = object;
  const kept = withoutParameter(parameters, sizeKey);
  return {
    ...rest,
    ...(kept ? { parameters: kept } : {}),
    data: tensor ? dataToJsonValues(tensor) : data,
  };
}

/**
 * The JSON form of a binary inference request: its header with each binary input's data as its `data` array (its
 * `binary_data_size` dropped), and without the flags that ask outputs as binary data (`binary_data_output`,
 * outputs' `binary_data`): the JSON request of the same tensors, answered in JSON. What captured records and
 * shadow replays hold, which are JSON texts. A raw body is the request of its one input (`rawInput`). Throws
 * what `parseBinaryRequest` throws.
 */
export function binaryRequestAsJson(body: Uint8Array, headerLength: number, rawInput?: TensorSpec): string {
  const { request, binaryInputs } = parseBinaryRequest(body, headerLength, rawInput, false);
  const { inputs, outputs, parameters, ...rest } = request as unknown as Record<string, unknown>;
  const kept = withoutParameter(parameters, 'binary_data_output');
  return JSON.stringify({
    ...rest,
    inputs: (inputs as Record<string, unknown>[]).map((input, i) =>
      isObject(input) ? jsonTensor(input, binaryInputs[i], 'binary_data_size') : input,
    ),
    ...(Array.isArray(outputs)
      ? {
          outputs: outputs.map((o: unknown) => {
            if (!isObject(o)) return o;
            const { parameters: own, ...output } = o;
            const left = withoutParameter(own, 'binary_data');
            return left ? { ...output, parameters: left } : output;
          }),
        }
      : {}),
    ...(kept ? { parameters: kept } : {}),
  });
}

/**
 * The JSON form of an answer in the binary form (`encodeBinaryResponse`'s body and header length): each binary
 * output's data as its `data` array, its `binary_data_size` dropped — the JSON answer of the same tensors.
 */
export function binaryAnswerAsJson(body: Uint8Array, headerLength: number): string {
  const header = JSON.parse(utf8Decoder.decode(body.subarray(0, headerLength))) as Record<string, unknown>;
  let at = headerLength;
  const outputs = (header.outputs as Record<string, unknown>[]).map((o) => {
    const size = isObject(o.parameters) ? o.parameters.binary_data_size : undefined;
    if (typeof size !== 'number') return o;
    const tensor = decodeBinary(
      o.name as string,
      o.datatype as Datatype,
      o.shape as number[],
      body.subarray(at, at + size),
      false,
    );
    at += size;
    return jsonTensor(o, tensor, 'binary_data_size');
  });
  return JSON.stringify({ ...header, outputs });
}

/** A raw body (header length 0) is the data of the model's input: an empty one is refused. */
export function checkRawBody(body: Uint8Array): void {
  if (body.length === 0) {
    bad(`the body is empty; with ${INFERENCE_HEADER_CONTENT_LENGTH} 0 it is the data of the model's input`);
  }
}

/** The shape of a raw body of `byteLength` bytes of a fixed-size datatype (see `parseRaw`). */
function rawShape(spec: TensorSpec, byteLength: number): readonly number[] {
  const { name, datatype } = spec;
  let shape = spec.shape;
  let dynamic = shape.filter((d) => d < 0).length;
  if (dynamic > 1 && shape[0]! < 0) {
    shape = [1, ...shape.slice(1)];
    dynamic--;
  }
  if (dynamic > 1) {
    bad(
      `input '${name}': a raw body needs a shape with at most one dynamic dimension besides the first (the batch), not [${spec.shape.join(',')}]`,
    );
  }
  if (dynamic === 0) return shape;
  const known = elementCount(shape.filter((d) => d >= 0));
  const inferred = byteLength / ELEMENT_SIZE[datatype as Exclude<Datatype, 'BYTES'>] / known;
  if (!Number.isInteger(inferred)) {
    bad(
      `input '${name}': a raw body of ${byteLength} bytes is not a whole number of [${shape.join(',')}] ${datatype} tensors`,
    );
  }
  return shape.map((d) => (d < 0 ? inferred : d));
}

/**
 * Whether output `outputName` is to be answered as binary data: its own `parameters.binary_data` in the
 * request's `outputs` when given, else the request's `parameters.binary_data_output`, else false. A value that
 * is not a boolean is a 400 `INVALID_PARAMETERS`.
 */
export function wantsBinaryOutput(request: OipRequest, outputName: string): boolean {
  const own = request.outputs?.find((o) => o.name === outputName);
  const flag = own && binaryFlag(own.parameters, 'binary_data', `output '${outputName}'`);
  if (flag !== undefined) return flag;
  return binaryFlag(request.parameters, 'binary_data_output', `'parameters'`) ?? false;
}

/**
 * Whether a JSON request asks any output as binary data (`parameters.binary_data_output`, or an output's
 * `parameters.binary_data`, whatever their value: the encoder decides and checks them). A few field reads, no
 * allocation: the JSON predict path asks it of every request.
 */
export function asksBinaryOutput(request: unknown): boolean {
  const r = request as
    | { parameters?: { binary_data_output?: unknown }; outputs?: unknown }
    | null
    | undefined;
  if (r?.parameters?.binary_data_output !== undefined) return true;
  const outputs = r?.outputs;
  if (!Array.isArray(outputs)) return false;
  for (const o of outputs) {
    if ((o as { parameters?: { binary_data?: unknown } } | null)?.parameters?.binary_data !== undefined) {
      return true;
    }
  }
  return false;
}

/** The head of an inference response: every member before `outputs`. */
export interface ResponseHead {
  readonly model_name: string;
  readonly model_version: string;
  readonly id?: string;
  readonly parameters?: Record<string, unknown>;
}

/** One output of a response, and whether it is answered as binary data. */
export interface ResponseOutput {
  readonly name: string;
  readonly tensor: Tensor;
  readonly binary: boolean;
}

/**
 * An encoded response. `headerLength` is the `Inference-Header-Content-Length` to answer with when some output
 * is binary; undefined when the body is plain JSON.
 */
export interface EncodedResponse {
  readonly body: Uint8Array;
  readonly headerLength?: number;
}

/** The bytes of a tensor's binary data: typed arrays as they are in memory (little-endian), BYTES length-prefixed. */
function binaryChunks(t: Tensor): Uint8Array[] {
  if (t.datatype === 'BYTES') {
    const strings = t.data as string[];
    const chunks: Uint8Array[] = [];
    for (const s of strings) {
      const bytes = utf8Encoder.encode(s);
      const prefix = new Uint8Array(4);
      new DataView(prefix.buffer).setUint32(0, bytes.length, true);
      chunks.push(prefix, bytes);
    }
    return chunks;
  }
  const d = t.data as Exclude<TensorData, string[]>;
  const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  if (LITTLE_ENDIAN || ELEMENT_SIZE[t.datatype] === 1) return [bytes];
  const swapped = bytes.slice();
  swapBytes(swapped, ELEMENT_SIZE[t.datatype]);
  return [swapped];
}

/**
 * `s` as a JSON string literal: the same text as `JSON.stringify(s)`, made without it when `s` needs no escape
 * (printable ASCII without `"` and `\\`: names, versions and most inference ids).
 */
export function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/**
 * Encodes an inference response. When some output is binary, the body is the JSON header (binary outputs carry
 * `parameters.binary_data_size` and no `data`) followed by the binary outputs' bytes in order, written straight
 * from their typed arrays; `headerLength` is the header's length in bytes. When none is, the body is the plain
 * JSON response (the same text as the JSON path) and `headerLength` is undefined.
 */
export function encodeBinaryResponse(
  head: ResponseHead,
  outputs: readonly ResponseOutput[],
): EncodedResponse {
  let text = `{"model_name":${jsonString(head.model_name)},"model_version":${jsonString(head.model_version)}`;
  if (head.id !== undefined) text += `,"id":${jsonString(head.id)}`;
  if (head.parameters !== undefined) text += `,"parameters":${JSON.stringify(head.parameters)}`;
  return encodeResponseAfter(text, outputs);
}

/**
 * `encodeBinaryResponse` with the head already in JSON text: every member before `outputs`, from the opening
 * `{` on (as `ServedVersion.responseHead` and the id make it), without a trailing comma. The binary body is one
 * buffer (the header's text written into it, then the outputs' bytes): no intermediate copy of the header.
 */
export function encodeResponseAfter(head: string, outputs: readonly ResponseOutput[]): EncodedResponse {
  let text = `${head},"outputs":[`;
  // Binary outputs' bytes: one chunk each, except BYTES (its elements, length-prefixed).
  let data: Uint8Array | Uint8Array[] | undefined;
  let dataLength = 0;
  let anyBinary = false;
  for (let i = 0; i < outputs.length; i++) {
    const { name, tensor, binary } = outputs[i]!;
    if (i > 0) text += ',';
    if (!binary) {
      text += outputToJsonText(name, tensor);
      continue;
    }
    anyBinary = true;
    const chunks = binaryChunks(tensor);
    let size = 0;
    for (const c of chunks) size += c.length;
    if (data === undefined && chunks.length === 1) data = chunks[0];
    else {
      if (data === undefined) data = [];
      else if (!Array.isArray(data)) data = [data];
      for (const c of chunks) data.push(c);
    }
    dataLength += size;
    text += `{"name":${jsonString(name)},"datatype":"${tensor.datatype}","shape":[${tensor.shape.join(',')}],"parameters":{"binary_data_size":${size}}}`;
  }
  text += ']}';
  if (!anyBinary) return { body: utf8Encoder.encode(text) };
  // From Node's shared pool for small answers (no memory of its own to allocate), the header written as it is
  // read when it is ASCII (it almost always is), else again as UTF-8.
  let headerLength = text.length;
  let pooled = Buffer.allocUnsafe(headerLength + dataLength);
  for (let i = 0; i < headerLength; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) {
      headerLength = Buffer.byteLength(text, 'utf8');
      pooled = Buffer.allocUnsafe(headerLength + dataLength);
      pooled.write(text, 0, 'utf8');
      break;
    }
    pooled[i] = c;
  }
  const body = new Uint8Array(pooled.buffer, pooled.byteOffset, pooled.byteLength);
  if (data instanceof Uint8Array) body.set(data, headerLength);
  else if (data !== undefined) {
    let at = headerLength;
    for (const c of data) {
      body.set(c, at);
      at += c.length;
    }
  }
  return { body, headerLength };
}

/**
 * At most `capacity` items, the oldest replaced by each new one once full: the headers the binary path keeps
 * (`BinaryAnswerEncoder`, and `BinaryHeaderCache` in binary-header-cache.ts).
 */
export class KeptList<T> {
  private readonly kept: T[] = [];
  private next = 0;

  constructor(private readonly capacity: number) {}

  /** The items, oldest place first (read only: iterate, do not change). */
  get items(): readonly T[] {
    return this.kept;
  }

  add(item: T): void {
    if (this.kept.length < this.capacity) this.kept.push(item);
    else {
      this.kept[this.next] = item;
      this.next = (this.next + 1) % this.capacity;
    }
  }
}

/** An answer's JSON header kept by `BinaryAnswerEncoder`, with what it describes, in two parts around the id. */
interface KeptAnswerHead {
  readonly head: string;
  readonly outputs: readonly {
    readonly name: string;
    readonly datatype: Datatype;
    readonly shape: readonly number[];
  }[];
  /** The header's bytes before the id's value (`{…,"id":`) and after it (`,"outputs":[…]}`). */
  readonly before: Uint8Array;
  readonly after: Uint8Array;
}

/**
 * `encodeResponseAfter` that keeps the JSON header of its last answers whose outputs are all binary data of a
 * fixed-size datatype (on a little-endian host): an answer with the same head (model and version) and the same
 * outputs (names, datatypes, shapes) has that header again, its own id written into it, and its tensors' bytes
 * after it. That is how a client sending the same request shapes is answered, with its ids or generated ones;
 * writing the header's text costs more than the rest of such an answer (docs/performance.md, "Headers sent again").
 * At most `LIMITS.rememberedBinaryHeaders` headers of at most `LIMITS.maxRememberedBinaryHeaderBytes` bytes are
 * kept; the oldest is replaced.
 */
export class BinaryAnswerEncoder {
  private readonly kept: KeptList<KeptAnswerHead>;

  constructor(
    capacity: number = LIMITS.rememberedBinaryHeaders,
    private readonly maxHeaderBytes: number = LIMITS.maxRememberedBinaryHeaderBytes,
  ) {
    this.kept = new KeptList(capacity);
  }

  /** Headers kept (for tests). */
  get size(): number {
    return this.kept.items.length;
  }

  /**
   * The encoded answer of `outputs` with `head` (every member before the id, from the opening `{`, as
   * `ServedVersion.responseHead`) and inference id `id`: the bytes `encodeResponseAfter` writes for that head and id.
   */
  encode(head: string, id: string, outputs: readonly ResponseOutput[]): EncodedResponse {
    const idText = jsonString(id);
    for (const k of this.kept.items)
      if (sameAnswerHead(k, head, outputs)) return withHead(k, idText, outputs);
    const before = `${head},"id":`;
    const encoded = encodeResponseAfter(before + idText, outputs);
    const headerLength = encoded.headerLength;
    if (headerLength === undefined || headerLength > this.maxHeaderBytes || !LITTLE_ENDIAN) return encoded;
    const described: KeptAnswerHead['outputs'][number][] = [];
    for (const { name, tensor, binary } of outputs) {
      if (!binary || tensor.datatype === 'BYTES') return encoded;
      described.push({ name, datatype: tensor.datatype, shape: [...tensor.shape] });
    }
    const beforeBytes = utf8Encoder.encode(before);
    const afterAt = beforeBytes.length + utf8Encoder.encode(idText).length;
    this.kept.add({
      head,
      outputs: described,
      before: beforeBytes,
      after: encoded.body.slice(afterAt, headerLength),
    });
    return encoded;
  }
}

/** Whether a kept header describes an answer of `head` and `outputs` (all binary, the same datatypes and shapes). */
function sameAnswerHead(k: KeptAnswerHead, head: string, outputs: readonly ResponseOutput[]): boolean {
  if (outputs.length !== k.outputs.length || head !== k.head) return false;
  for (let i = 0; i < outputs.length; i++) {
    const { name, tensor, binary } = outputs[i]!;
    const o = k.outputs[i]!;
    if (!binary || name !== o.name || tensor.datatype !== o.datatype) return false;
    const shape = tensor.shape;
    if (shape.length !== o.shape.length) return false;
    for (let d = 0; d < shape.length; d++) if (shape[d] !== o.shape[d]) return false;
    // Same datatype and shape: the same number of bytes.
  }
  return true;
}

/**
 * An answer of a kept header: its bytes before the id, the id's JSON text, its bytes after, then each (binary,
 * fixed-size) output's bytes as they are in memory.
 */
function withHead(k: KeptAnswerHead, idText: string, outputs: readonly ResponseOutput[]): EncodedResponse {
  let ascii = true;
  for (let i = 0; i < idText.length; i++) {
    if (idText.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  const idLength = ascii ? idText.length : Buffer.byteLength(idText, 'utf8');
  const headerLength = k.before.length + idLength + k.after.length;
  let length = headerLength;
  for (const { tensor } of outputs) length += (tensor.data as Exclude<TensorData, string[]>).byteLength;
  const pooled = Buffer.allocUnsafe(length);
  pooled.set(k.before, 0);
  const idAt = k.before.length;
  if (ascii) {
    // Byte by byte: cheaper than a call into Buffer.write for a few dozen characters.
    for (let i = 0; i < idLength; i++) pooled[idAt + i] = idText.charCodeAt(i);
  } else {
    pooled.write(idText, idAt, idLength, 'utf8');
  }
  pooled.set(k.after, idAt + idLength);
  let at = headerLength;
  for (const { tensor } of outputs) {
    const d = tensor.data as Exclude<TensorData, string[]>;
    pooled.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return { body: new Uint8Array(pooled.buffer, pooled.byteOffset, pooled.byteLength), headerLength };
}

/** The response outputs of a request: each tensor binary or JSON as `wantsBinaryOutput` says. */
export function responseOutputs(
  request: OipRequest,
  outputs: readonly (readonly [string, Tensor])[],
): ResponseOutput[] {
  const out: ResponseOutput[] = new Array(outputs.length);
  for (let i = 0; i < outputs.length; i++) {
    const [name, tensor] = outputs[i]!;
    out[i] = { name, tensor, binary: wantsBinaryOutput(request, name) };
  }
  return out;
}

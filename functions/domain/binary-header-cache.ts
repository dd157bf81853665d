/**
 * Binary requests whose header was seen before. A client sends the same JSON header with every request of the
 * same inputs, shapes and outputs (tritonclient does, unless given a new request id each time): the header's
 * bytes and the body's length then say all that parsing the header said, and validating it against a signature
 * gives the same answer again. Only the tensors' bytes differ from request to request.
 *
 * `BinaryHeaderCache.parse` keeps the last `LIMITS.rememberedBinaryHeaders` headers (of at most
 * `LIMITS.maxRememberedBinaryHeaderBytes` bytes each) with their parse and, per signature, what validation made of
 * them. A request whose header bytes and body length equal a kept one's has only its inputs' bytes decoded (the
 * same `decodeBinary` as a first parse: a view when aligned, BOOL bytes and BYTES elements checked): no UTF-8
 * decoding, `JSON.parse`, structure or signature check of its header. That was 3.6 of the 9.5 µs the binary
 * handler spent outside the model at batch 1 (docs/performance.md, "Headers sent again"). Any other request is
 * parsed and validated as always; its header is kept when every input is binary data and one of the last requests
 * parsed in full had the same header (so that a client whose headers all differ, each with its own id, fills the
 * cache with nothing, and clients that take turns each get theirs kept).
 *
 * Pure: no I/O.
 */
import { LIMITS } from '../contract/limits';
import { type BinaryRequest, decodeBinary, KeptList, parseBinaryRequest } from './binary-tensors';
import {
  type CompiledSignature,
  type ValidatedRequest,
  validateInferenceRequest,
} from './inference-validation';
import type { OipRequest } from './oip-decode';
import type { Tensor } from './tensor';
import type { Datatype, TensorSpec } from './types';

/** A binary request parsed: the header (read only), and its validation against a signature. */
export interface ParsedBinaryRequest {
  /** The request as parsed; for a header seen before, the first one's parse (frozen, inputs without `data`). */
  readonly request: OipRequest;
  /** Validates the request against `sig` and decodes its inputs, as `validateInferenceRequest` does. */
  validate(sig: CompiledSignature): ValidatedRequest;
}

/** Where one input's bytes are in the body. */
interface KnownInput {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly size: number;
}

/** What validation against one signature made of a header: all of a validated request but its feeds. */
interface Checked {
  readonly id: string | undefined;
  readonly outputs: readonly string[] | undefined;
}

/** A header seen before, with its parse. */
class KnownHeader {
  /** Per compiled signature (a served version's): the validation of the first request checked against it. */
  private readonly checked = new WeakMap<CompiledSignature, Checked>();

  constructor(
    private readonly bytes: Uint8Array,
    private readonly bodyLength: number,
    readonly request: OipRequest,
    private readonly inputs: readonly KnownInput[],
  ) {}

  matches(body: Uint8Array, headerLength: number): boolean {
    return body.length === this.bodyLength && sameBytes(this.bytes, body, headerLength);
  }

  /** `validate` of `body`, a request that `matches`: from the first validation against `sig` when there was one. */
  validateBody(body: Uint8Array, sig: CompiledSignature): ValidatedRequest | undefined {
    const checked = this.checked.get(sig);
    if (checked === undefined) return undefined;
    const feeds: Record<string, Tensor> = {};
    for (const { name, datatype, shape, offset, size } of this.inputs) {
      feeds[name] = decodeBinary(name, datatype, shape, body.subarray(offset, offset + size), false);
    }
    return { id: checked.id, feeds, outputs: checked.outputs };
  }

  /** Notes what validation against `sig` made of this header. */
  remember(sig: CompiledSignature, validated: ValidatedRequest): void {
    this.checked.set(sig, { id: validated.id, outputs: validated.outputs });
  }
}

/** A request whose header is known: validated from the header's first validation when there was one. */
class KnownBody implements ParsedBinaryRequest {
  constructor(
    private readonly known: KnownHeader,
    private readonly body: Uint8Array,
    private readonly headerLength: number,
  ) {}

  get request(): OipRequest {
    return this.known.request;
  }

  validate(sig: CompiledSignature): ValidatedRequest {
    const fast = this.known.validateBody(this.body, sig);
    if (fast !== undefined) return fast;
    // The first request against this signature: parsed and validated in full (its errors as they would be).
    const parsed = parseBinaryRequest(this.body, this.headerLength, undefined, false);
    const validated = validateInferenceRequest(parsed.request, sig, parsed.binaryInputs);
    this.known.remember(sig, validated);
    return validated;
  }
}

const utf8 = new TextDecoder();

/** Whether `body` starts with `header` (of `headerLength` bytes). */
function sameBytes(header: Uint8Array, body: Uint8Array, headerLength: number): boolean {
  if (header.length !== headerLength) return false;
  for (let i = 0; i < headerLength; i++) if (body[i] !== header[i]) return false;
  return true;
}

/** FNV-1a (32 bit) of the first `length` bytes of `bytes`. */
function fnv1aBytes(bytes: Uint8Array, length: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

/** Freezes a parsed JSON value and everything in it. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Binary request headers seen before (see the module's comment). One per predictor; not shared across threads. */
export class BinaryHeaderCache {
  private readonly known: KeptList<KnownHeader>;
  /**
   * Hashes of the headers of the last requests parsed in full and not kept (at most `capacity`, the newest last):
   * a header is kept the second time it is parsed in full.
   */
  private readonly candidates: number[] = [];

  constructor(
    private readonly capacity: number = LIMITS.rememberedBinaryHeaders,
    private readonly maxHeaderBytes: number = LIMITS.maxRememberedBinaryHeaderBytes,
  ) {
    this.known = new KeptList(capacity);
  }

  /** Headers kept (for tests). */
  get size(): number {
    return this.known.items.length;
  }

  /** The kept header of `body`, if any: the same header bytes and body length. */
  private find(body: Uint8Array, headerLength: number): KnownHeader | undefined {
    for (const k of this.known.items) if (k.matches(body, headerLength)) return k;
    return undefined;
  }

  /**
   * Parses a binary request body (`parseBinaryRequest`, unmarked): from a header kept when its bytes and the body's
   * length match, else in full. `rawInput`: the raw form's only input (header length 0), never kept.
   */
  parse(body: Uint8Array, headerLength: number, rawInput?: TensorSpec): ParsedBinaryRequest {
    const known = headerLength > 0 ? this.find(body, headerLength) : undefined;
    if (known !== undefined) return new KnownBody(known, body, headerLength);
    const parsed = parseBinaryRequest(body, headerLength, rawInput, false);
    return {
      request: parsed.request,
      validate: (sig) => {
        const validated = validateInferenceRequest(parsed.request, sig, parsed.binaryInputs);
        this.keep(body, headerLength, parsed)?.remember(sig, validated);
        return validated;
      },
    };
  }

  /**
   * Keeps the header of a request that parsed and validated, when it can stand for the next ones: not the raw
   * form, every input binary data of a fixed-size or BYTES datatype, a header of at most `maxHeaderBytes`, parsed
   * in full once before (among the last `capacity` candidates). A client that sends a new id with every request
   * (its headers all differ) then costs a hash of its header per request, not a header kept and never used.
   */
  private keep(body: Uint8Array, headerLength: number, parsed: BinaryRequest): KnownHeader | undefined {
    if (headerLength === 0 || headerLength > this.maxHeaderBytes) return undefined;
    // Two requests of a new header parsed before either was validated: the first one kept stands for both.
    const already = this.find(body, headerLength);
    if (already !== undefined) return already;
    const hash = fnv1aBytes(body, headerLength);
    const seen = this.candidates.indexOf(hash);
    if (seen < 0) {
      this.candidates.push(hash);
      if (this.candidates.length > this.capacity) this.candidates.shift();
      return undefined;
    }
    // (Two headers of one hash: one is kept after a single sight, which costs nothing but its place.)
    this.candidates.splice(seen, 1);
    const tensors = parsed.binaryInputs;
    const sizes: number[] = [];
    for (let i = 0; i < tensors.length; i++) {
      const size = parsed.request.inputs[i]?.parameters?.binary_data_size;
      if (tensors[i] === undefined || typeof size !== 'number') return undefined; // a JSON input
      sizes.push(size);
    }
    // Parsed again from its bytes (valid UTF-8 and JSON: it just parsed): the first request's parse holds its
    // tensors (`data`) and stays that request's own.
    const request = deepFreeze(JSON.parse(utf8.decode(body.subarray(0, headerLength))) as OipRequest);
    const inputs: KnownInput[] = [];
    let offset = headerLength;
    for (let i = 0; i < tensors.length; i++) {
      const input = request.inputs[i]!;
      inputs.push({
        name: input.name,
        datatype: (tensors[i] as Tensor).datatype,
        shape: input.shape,
        offset,
        size: sizes[i]!,
      });
      offset += sizes[i]!;
    }
    const known = new KnownHeader(body.slice(0, headerLength), body.length, request, inputs);
    this.known.add(known);
    return known;
  }
}

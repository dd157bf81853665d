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
 * parsed in full had the same header (so that a client whose headers all differ fills the cache with nothing, and
 * clients that take turns each get theirs kept).
 *
 * A client that sends a new `id` with every request (KServe's Python client sends a UUID each time) sends headers
 * that differ in the id alone. Where a kept header's top-level `id` is, is kept too (`IdSpan`): a header of the same
 * bytes before and after it, whose id there is plain printable ASCII (no quote, backslash or control character,
 * at most `LIMITS.maxInferenceIdLength` characters), is that header with its own id, and counts as the same header
 * for keeping it.
 *
 * Pure: no I/O.
 */
import { LIMITS } from '../contract/limits';
import { type BinaryRequest, decodeBinary, KeptList, parseBinaryRequest } from './binary-tensors';
import {
  type CompiledSignature,
  ownInferenceId,
  type ValidatedRequest,
  validateInferenceRequest,
} from './inference-validation';
import type { OipRequest } from './oip-decode';
import type { Tensor } from './tensor';
import type { Datatype, TensorSpec } from './types';

/** A binary request parsed: the header (read only), and its validation against a signature. */
export interface ParsedBinaryRequest {
  /**
   * The request as parsed; for a header seen before, the first one's parse (frozen, inputs without `data`), with
   * this request's own id.
   */
  readonly request: OipRequest;
  /** Validates the request against `sig` and decodes its inputs, as `validateInferenceRequest` does. */
  validate(sig: CompiledSignature): ValidatedRequest;
}

/** Where one input's bytes are in the body: `offset` from the header's end. */
interface KnownInput {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly size: number;
}

/**
 * What validation against one signature made of a header: all of a validated request but its feeds and its id
 * (the request's own, which a header kept with its id's place may change).
 */
interface Checked {
  readonly outputs: readonly string[] | undefined;
}

/** Where a header's top-level `id` string is: the bytes between its quotes, `start` to `end` (exclusive). */
interface IdSpan {
  readonly start: number;
  readonly end: number;
}

/** The same header bytes (`true`), the same but for its id (that id), or another header (`false`). */
type HeaderMatch = boolean | string;

/** A header seen before, with its parse. */
class KnownHeader {
  /** Per compiled signature (a served version's): the validation of the first request checked against it. */
  private readonly checked = new WeakMap<CompiledSignature, Checked>();
  /** The bytes of its tensors, after the header. */
  private readonly dataLength: number;

  constructor(
    private readonly bytes: Uint8Array,
    bodyLength: number,
    readonly request: OipRequest,
    private readonly inputs: readonly KnownInput[],
    private readonly idSpan: IdSpan | undefined,
  ) {
    this.dataLength = bodyLength - bytes.length;
  }

  /** Whether `body` is a request of this header: its bytes, or (with an id span) its bytes but for a plain id. */
  match(body: Uint8Array, headerLength: number): HeaderMatch {
    if (body.length - headerLength !== this.dataLength) return false;
    if (headerLength === this.bytes.length && sameBytes(this.bytes, body, 0, 0, headerLength)) return true;
    const span = this.idSpan;
    if (span === undefined) return false;
    const suffix = this.bytes.length - span.end;
    const idEnd = headerLength - suffix;
    if (idEnd <= span.start || idEnd - span.start > LIMITS.maxInferenceIdLength) return false;
    if (!sameBytes(this.bytes, body, 0, 0, span.start)) return false;
    if (!sameBytes(this.bytes, body, span.end, idEnd, suffix)) return false;
    return plainId(body, span.start, idEnd) && utf8.decode(body.subarray(span.start, idEnd));
  }

  /**
   * `validate` of `body`, a request of this header (`id`: its own id when only that differs): from the first
   * validation against `sig` when there was one.
   */
  validateBody(
    body: Uint8Array,
    headerLength: number,
    sig: CompiledSignature,
    id: string | undefined,
  ): ValidatedRequest | undefined {
    const checked = this.checked.get(sig);
    if (checked === undefined) return undefined;
    const feeds: Record<string, Tensor> = {};
    for (const { name, datatype, shape, offset, size } of this.inputs) {
      const at = headerLength + offset;
      feeds[name] = decodeBinary(name, datatype, shape, body.subarray(at, at + size), false);
    }
    return { id: id ?? (this.request.id as string | undefined), feeds, outputs: checked.outputs };
  }

  /** Notes what validation against `sig` made of this header. */
  remember(sig: CompiledSignature, validated: ValidatedRequest): void {
    this.checked.set(sig, { outputs: validated.outputs });
  }
}

/** A request whose header is known: validated from the header's first validation when there was one. */
class KnownBody implements ParsedBinaryRequest {
  private own: OipRequest | undefined;

  constructor(
    private readonly known: KnownHeader,
    private readonly body: Uint8Array,
    private readonly headerLength: number,
    /** Its own id, when its header is the known one but for that. */
    private readonly id: string | undefined,
  ) {}

  get request(): OipRequest {
    if (this.id === undefined) return this.known.request;
    this.own ??= Object.freeze({ ...this.known.request, id: this.id });
    return this.own;
  }

  validate(sig: CompiledSignature): ValidatedRequest {
    const fast = this.known.validateBody(this.body, this.headerLength, sig, this.id);
    if (fast !== undefined) return fast;
    // The first request against this signature: parsed and validated in full (its errors as they would be).
    const parsed = parseBinaryRequest(this.body, this.headerLength, undefined, false);
    const validated = validateInferenceRequest(parsed.request, sig, parsed.binaryInputs);
    this.known.remember(sig, validated);
    return validated;
  }
}

const utf8 = new TextDecoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The own inference id (`ownInferenceId`) in the JSON header of a binary request that was refused (its binary data
 * malformed, say), when the header is JSON: what names such a request, as a JSON request is named by its id.
 */
export function refusedHeaderId(body: Uint8Array, headerLength: number): string | undefined {
  if (headerLength <= 0 || headerLength > body.length) return undefined;
  try {
    return ownInferenceId(JSON.parse(strictUtf8.decode(body.subarray(0, headerLength))));
  } catch {
    return undefined;
  }
}

/** Whether `length` bytes of `a` from `at` equal those of `b` from `bt`. */
function sameBytes(a: Uint8Array, b: Uint8Array, at: number, bt: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[at + i] !== b[bt + i]) return false;
  return true;
}

/**
 * Whether the bytes of `bytes` from `start` to `end` are the contents of a JSON string that needs no escape and is
 * its own text: printable ASCII without a quote or a backslash (so a valid inference id of `end - start`
 * characters). An id beyond it is parsed in full.
 */
function plainId(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (!isPlainChar(bytes[i]!)) return false;
  return true;
}

/** A character (or byte) of a plain id: printable ASCII but `"` and `\`. */
const isPlainChar = (c: number) => c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c;

/** `plainId` of a parsed id: a string of 1 to `LIMITS.maxInferenceIdLength` such characters. */
function isPlainId(id: unknown): id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > LIMITS.maxInferenceIdLength) return false;
  for (let i = 0; i < id.length; i++) if (!isPlainChar(id.charCodeAt(i))) return false;
  return true;
}

/** FNV-1a (32 bit) of the header's bytes, those of `skip` (its id) left out. */
function fnv1aHeader(bytes: Uint8Array, length: number, skip: IdSpan | undefined): number {
  let h = 0x811c9dc5;
  const from = skip?.start ?? length;
  const to = skip?.end ?? length;
  for (let i = 0; i < from; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  for (let i = to; i < length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

/**
 * Where the top-level `id` of a header is, when its value is a plain id (`plainId`) written as itself, once in the
 * header (a header that is all ASCII): the token `"{id}"` found exactly once. Whether that token is the top-level
 * id's value is checked by `idSpanHolds` before the span is kept.
 */
function idSpanOf(text: string, id: string): IdSpan | undefined {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7e) return undefined;
  const token = `"${id}"`;
  const at = text.indexOf(token);
  if (at < 0 || text.indexOf(token, at + 1) >= 0) return undefined;
  return { start: at + 1, end: at + 1 + id.length };
}

/**
 * Whether `span` of `text` is its top-level id's value and nothing else: the header with another id there parses
 * to the same request but for its id.
 */
function idSpanHolds(text: string, span: IdSpan, request: OipRequest): boolean {
  const probe = request.id === 'x' ? 'y' : 'x';
  let other: unknown;
  try {
    other = JSON.parse(text.slice(0, span.start) + probe + text.slice(span.end));
  } catch {
    return false;
  }
  if ((other as { id?: unknown } | null)?.id !== probe) return false;
  return JSON.stringify({ ...(other as object), id: request.id }) === JSON.stringify(request);
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

  /** The kept header of `body`, if any (`KnownHeader.match`), and the request's own id when only that differs. */
  private find(body: Uint8Array, headerLength: number): { known: KnownHeader; id?: string } | undefined {
    for (const known of this.known.items) {
      const m = known.match(body, headerLength);
      if (m === true) return { known };
      if (m !== false) return { known, id: m };
    }
    return undefined;
  }

  /**
   * Parses a binary request body (`parseBinaryRequest`, unmarked): from a header kept when it matches
   * (`KnownHeader.match`: its bytes and the tensors' length, or those but for a plain id), else in full. `rawInput`: the raw form's only input (header length 0), never kept.
   */
  parse(body: Uint8Array, headerLength: number, rawInput?: TensorSpec): ParsedBinaryRequest {
    const found = headerLength > 0 ? this.find(body, headerLength) : undefined;
    if (found !== undefined) return new KnownBody(found.known, body, headerLength, found.id);
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
   * in full once before (among the last `capacity` candidates; a header with a plain id counts as the same with
   * any other plain id there). A client whose headers all differ then costs a hash of its header per request (and,
   * with a plain id, a search for it), not a header kept and never used.
   */
  private keep(body: Uint8Array, headerLength: number, parsed: BinaryRequest): KnownHeader | undefined {
    if (headerLength === 0 || headerLength > this.maxHeaderBytes) return undefined;
    // Two requests of a new header parsed before either was validated: the first one kept stands for both.
    const already = this.find(body, headerLength);
    if (already !== undefined) return already.known;
    // A header whose id is plain counts as the same header with any other plain id there.
    const id = parsed.request.id;
    let text: string | undefined;
    let span: IdSpan | undefined;
    if (isPlainId(id)) {
      text = utf8.decode(body.subarray(0, headerLength));
      span = idSpanOf(text, id);
    }
    const hash = fnv1aHeader(body, headerLength, span);
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
    const header = text ?? utf8.decode(body.subarray(0, headerLength));
    const request = deepFreeze(JSON.parse(header) as OipRequest);
    const idSpan = span !== undefined && idSpanHolds(header, span, request) ? span : undefined;
    const inputs: KnownInput[] = [];
    let offset = 0;
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
    const known = new KnownHeader(body.slice(0, headerLength), body.length, request, inputs, idSpan);
    this.known.add(known);
    return known;
  }
}

/**
 * Request capture (docs/ARCHITECTURE.md, "Observability"): what an alias or a version declares, which requests
 * are sampled, and the record a sampled request becomes — SageMaker Data Capture's JSONL shape plus the model,
 * version, alias and route that served it.
 *
 * Sampling is decided by a hash of the inference id, never by a random draw: a request and its response are
 * always kept (or dropped) together, the same id is sampled the same way wherever it is looked at, and an
 * unsampled request costs one hash of its id (none at 0 % or 100 %).
 */
import { LIMITS } from '../contract/limits';
import { BadRequestError } from './errors';

/** What an alias or a version declares: the share of requests recorded, and which halves of them. */
export interface CaptureConfig {
  /** 0-100, in steps of 0.01. */
  readonly samplePercent: number;
  /** Record the request body. */
  readonly input: boolean;
  /** Record the response body. */
  readonly output: boolean;
}

/**
 * Parses a capture declaration from a request body: `{samplePercent, input?, output?}` (`input` and `output`
 * default to true). 400 `INVALID_CAPTURE` for anything else.
 */
export function parseCaptureConfig(value: unknown): CaptureConfig {
  const bad = (why: string) => new BadRequestError(`capture ${why}`, 'INVALID_CAPTURE');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bad('must be an object {samplePercent, input?, output?}');
  }
  const { samplePercent, input = true, output = true, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw bad(`has unknown field(s): ${unknown.join(', ')}`);
  if (!isPercent(samplePercent, 0.01)) {
    throw bad('samplePercent must be a number from 0 to 100 in steps of 0.01 (0, 0.01, 0.02 … 100)');
  }
  if (typeof input !== 'boolean' || typeof output !== 'boolean')
    throw bad('input and output must be booleans');
  if (!input && !output) throw bad('records nothing: input and output are both false');
  return { samplePercent, input, output };
}

/**
 * Whether `value` is a percentage (0 to 100) in steps of `step` (0.1, 0.01…): 0, or exactly the number a decimal
 * with that many fractional digits reads as (at 0.1: `0.3`, `12.5`; not `0.05`, `1e-11` or `0.30000000000000004`).
 * No tolerance: a number near 0 is no step, and one the registry cannot store (`1e-300`) must be refused, not written.
 */
export function isPercent(value: unknown, step: number): value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 100) return false;
  // n / perUnit is the double nearest to the decimal n·step, as parsing that decimal gives.
  const perUnit = Math.round(1 / step);
  return Math.round(value * perUnit) / perUnit === value;
}

/** FNV-1a (32 bit) of a string's UTF-16 code units (of ASCII text: the published FNV-1a of its bytes). */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The sampling hash of an inference id: FNV-1a, then murmur3's final mix (fmix32), so that ids differing only in
 * their last characters spread over all buckets. Fast and allocation-free.
 */
export function sampleHash(id: string): number {
  let h = fnv1a(id);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Whether the request with inference id `id` is recorded at `samplePercent` (0.01 % resolution). */
export function isSampled(id: string, samplePercent: number): boolean {
  if (samplePercent <= 0) return false;
  if (samplePercent >= 100) return true;
  return sampleHash(id) % 10_000 < Math.round(samplePercent * 100);
}

/** One half of a captured exchange, as SageMaker Data Capture records it. */
export interface CapturedPayload {
  readonly observedContentType: string;
  readonly mode: 'INPUT' | 'OUTPUT';
  /** The body as sent (JSON text), or base64 for a binary body; absent when the record was too large. */
  readonly data?: string;
  readonly encoding: 'JSON' | 'BASE64';
}

/** A capture record: one JSON line of `capture/{model}/{version}/yyyy/mm/dd/hh/*.jsonl`. */
export interface CaptureRecord {
  readonly captureData: {
    readonly endpointInput?: CapturedPayload;
    readonly endpointOutput?: CapturedPayload;
  };
  readonly eventMetadata: {
    /** A unique id of this record. */
    readonly eventId: string;
    /** The inference id (the request's `id`, else the generated one): what feedback joins on. */
    readonly inferenceId: string;
    /** ISO 8601 time the inference was answered. */
    readonly inferenceTime: string;
  };
  readonly eventVersion: '0';
  readonly model: string;
  readonly version: number;
  readonly alias?: string;
  readonly route: string;
  /** The HTTP status of the answer. */
  readonly status: number;
  /** True when the bodies were dropped because the record exceeded `LIMITS.captureMaxRecordBytes`. */
  readonly truncated?: true;
}

/** What one captured exchange is made from. */
export interface CaptureInput {
  readonly config: CaptureConfig;
  readonly eventId: string;
  readonly inferenceId: string;
  readonly at: Date;
  readonly model: string;
  readonly version: number;
  readonly alias: string | undefined;
  readonly route: string;
  readonly status: number;
  readonly request: { readonly text: string; readonly contentType: string; readonly base64?: boolean };
  readonly response: { readonly text: string; readonly contentType: string };
}

/**
 * The record of a captured exchange, as the JSON line it is written as. Over `maxBytes`, the line keeps its
 * metadata, drops both bodies and says `"truncated": true` (a capture never alters what it records).
 */
export function captureLine(c: CaptureInput, maxBytes: number = LIMITS.captureMaxRecordBytes): string {
  const full = JSON.stringify(captureRecord(c, true));
  // A UTF-16 unit is at most 3 UTF-8 bytes: the exact count is needed only for long lines.
  if (full.length * 3 <= maxBytes || Buffer.byteLength(full, 'utf8') <= maxBytes) return full;
  return JSON.stringify(captureRecord(c, false));
}

function captureRecord(c: CaptureInput, withData: boolean): CaptureRecord {
  const payload = (
    mode: 'INPUT' | 'OUTPUT',
    body: { text: string; contentType: string; base64?: boolean },
  ): CapturedPayload => ({
    observedContentType: body.contentType,
    mode,
    ...(withData ? { data: body.text } : {}),
    encoding: body.base64 ? 'BASE64' : 'JSON',
  });
  return {
    captureData: {
      ...(c.config.input ? { endpointInput: payload('INPUT', c.request) } : {}),
      ...(c.config.output ? { endpointOutput: payload('OUTPUT', c.response) } : {}),
    },
    eventMetadata: { eventId: c.eventId, inferenceId: c.inferenceId, inferenceTime: c.at.toISOString() },
    eventVersion: '0',
    model: c.model,
    version: c.version,
    ...(c.alias !== undefined ? { alias: c.alias } : {}),
    route: c.route,
    status: c.status,
    ...(withData ? {} : { truncated: true as const }),
  };
}

/** One ground-truth item of `POST /v2/models/{name}/feedback`. */
export interface FeedbackItem {
  readonly inferenceId: string;
  readonly label?: string | number | boolean;
  readonly value?: number;
}

/** A stored feedback record: one JSON line of `feedback/{model}/yyyy/mm/dd/hh/*.jsonl`. */
export interface FeedbackRecord extends FeedbackItem {
  readonly model: string;
  readonly receivedAt: string;
  readonly actor: string;
}

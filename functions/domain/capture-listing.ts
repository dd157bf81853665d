/**
 * Reading captured records back (`GET /models/{name}/capture`, docs/api.md "Reading captured records"): the query
 * checked, the capture keys understood (`capture/{model}/{version}/yyyy/mm/dd/hh/{file}.jsonl`), JSONL records
 * parsed, and the opaque page token (where the next page starts: after a key, or within it at a line).
 */
import { CAPTURE_KEYS, hourPath } from '../contract/observability';
import type { CaptureRecord } from './capture';
import { BadRequestError } from './errors';
import { parseVersionNumber, quoted, validateModelName } from './names';
import { objectKeyProblem } from './registry';
import { decodePageToken, encodePageToken } from './registry-rules';

/** Records per page when `limit` is not given, and the most a page may ask for. */
export const CAPTURE_PAGE = { defaultLimit: 100, maxLimit: 1000 } as const;

/** Where a page starts: after `key`, or, with `offset`, within `key` at that byte (the start of a line). */
export interface CaptureCursor {
  readonly key: string;
  readonly offset?: number;
}

export interface CaptureQuery {
  readonly model: string;
  readonly version?: number;
  /** Keep records answered at or after this time. */
  readonly since?: Date;
  readonly limit: number;
  readonly after?: CaptureCursor;
}

/** The query parameters of the route as sent (`version`, `since`, `limit`, `nextToken`). */
export type CaptureQueryParams = Readonly<Record<string, string | undefined>>;

/** `capture/{model}/`, or `capture/{model}/{version}/`. */
export function capturePrefix(model: string, version?: number): string {
  return `${CAPTURE_KEYS.capturePrefix}${model}/${version !== undefined ? `${version}/` : ''}`;
}

/** Checks the model name and the query; 400 (`INVALID_NAME`, `INVALID_VERSION`, `INVALID_SINCE`, `INVALID_LIMIT`, `INVALID_TOKEN`). */
export function parseCaptureQuery(model: string, params: CaptureQueryParams): CaptureQuery {
  validateModelName(model);
  const version = params.version !== undefined ? parseVersionNumber(params.version) : undefined;
  const since = params.since !== undefined ? parseSince(params.since) : undefined;
  const limit = parseCaptureLimit(params.limit);
  const after =
    params.nextToken !== undefined ? decodeCaptureToken(params.nextToken, model, version) : undefined;
  return {
    model,
    ...(version !== undefined ? { version } : {}),
    ...(since !== undefined ? { since } : {}),
    limit,
    ...(after !== undefined ? { after } : {}),
  };
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** An ISO 8601 time (`2026-12-01T04:00:00Z`, a date, or with an offset); 400 `INVALID_SINCE` otherwise. */
export function parseSince(raw: string): Date {
  const ms = ISO_TIME.test(raw) && isCalendarDate(raw) ? Date.parse(raw) : Number.NaN;
  if (!Number.isFinite(ms)) {
    throw new BadRequestError(
      `invalid since '${quoted(raw)}': an ISO 8601 time such as 2026-12-01T04:00:00Z is required`,
      'INVALID_SINCE',
    );
  }
  return new Date(ms);
}

/** Whether the `yyyy-mm-dd` a time starts with is a day of the calendar (`Date.parse` takes 02-31 as 03-03). */
function isCalendarDate(raw: string): boolean {
  const [y, m, d] = raw.slice(0, 10).split('-').map(Number) as [number, number, number];
  const day = new Date(0);
  day.setUTCFullYear(y, m - 1, d); // not Date.UTC, which reads years 0 to 99 as 1900 to 1999
  return day.getUTCFullYear() === y && day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

/** `limit`: an integer from 1 to 1000, default 100; 400 `INVALID_LIMIT` otherwise. */
export function parseCaptureLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return CAPTURE_PAGE.defaultLimit;
  if (!/^[0-9]{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > CAPTURE_PAGE.maxLimit) {
    throw new BadRequestError(
      `invalid limit '${quoted(raw)}': an integer from 1 to ${CAPTURE_PAGE.maxLimit} is required`,
      'INVALID_LIMIT',
    );
  }
  return Number(raw);
}

/** The opaque token of a cursor. */
export function encodeCaptureToken(cursor: CaptureCursor): string {
  return encodePageToken(
    cursor.offset !== undefined ? { k: cursor.key, o: cursor.offset } : { k: cursor.key },
  );
}

/** A token of this listing (its key under the model's, or the version's, prefix); 400 `INVALID_TOKEN` otherwise. */
export function decodeCaptureToken(token: string, model: string, version?: number): CaptureCursor {
  const prefix = capturePrefix(model, version);
  const key = decodePageToken(token, (k) => {
    const names = Object.keys(k);
    if (!names.every((n) => n === 'k' || n === 'o')) return false;
    // A key S3 could hold (its bytes, no control characters or lone surrogates): S3 is never asked another.
    if (typeof k.k !== 'string' || !k.k.startsWith(prefix) || objectKeyProblem(k.k) !== undefined)
      return false;
    return k.o === undefined || (typeof k.o === 'number' && Number.isSafeInteger(k.o) && k.o >= 0);
  });
  return { key: key.k as string, ...(key.o !== undefined ? { offset: key.o as number } : {}) };
}

/** What a capture key says: the version and the hour (`yyyy/mm/dd/hh`) of the records it holds. */
export interface CaptureKey {
  readonly version: number;
  readonly hour: string;
}

/** Parses `capture/{model}/{version}/yyyy/mm/dd/hh/{file}.jsonl`; undefined for any other key. */
export function parseCaptureKey(key: string, model: string): CaptureKey | undefined {
  const prefix = capturePrefix(model);
  if (!key.startsWith(prefix)) return undefined;
  const m = /^([1-9][0-9]{0,8})\/(\d{4}\/\d{2}\/\d{2}\/\d{2})\/[^/]+\.jsonl$/.exec(key.slice(prefix.length));
  return m ? { version: Number(m[1]), hour: m[2] as string } : undefined;
}

/**
 * Where the listing of a version jumps to skip the hours before `since`: listing after this key starts with
 * the hour of `since` (`capture/{model}/{version}/yyyy/mm/dd/hh/` sorts before every key of that hour, after
 * every key of an earlier one).
 */
export function sinceStartKey(model: string, version: number, since: Date): string {
  return `${capturePrefix(model, version)}${hourPath(since)}/`;
}

/** Whether a key's hour is before the hour of `since` (none of its records can be kept). */
export const isBeforeSinceHour = (key: CaptureKey, since: Date): boolean => key.hour < hourPath(since);

/** One line of a capture object parsed as a record; undefined for a line that is blank or not a capture record. */
export function parseCaptureLine(line: string): CaptureRecord | undefined {
  if (line.trim() === '') return undefined;
  try {
    const r = JSON.parse(line) as Partial<CaptureRecord> | null;
    return r !== null &&
      typeof r === 'object' &&
      typeof r.eventMetadata === 'object' &&
      r.eventMetadata !== null &&
      typeof r.eventMetadata.inferenceTime === 'string'
      ? (r as CaptureRecord)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a record was answered at or after `since` (always, without `since`). */
export function isAtOrAfter(record: CaptureRecord, since: Date | undefined): boolean {
  if (since === undefined) return true;
  const t = Date.parse(record.eventMetadata.inferenceTime);
  return Number.isFinite(t) && t >= since.getTime();
}

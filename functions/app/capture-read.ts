/**
 * Reading captured records back (`GET /models/{name}/capture`, docs/api.md "Reading captured records"): the keys
 * under `capture/{model}/` (or `capture/{model}/{version}/`) are listed in key order — by version, then hour —,
 * the hours before `since` are skipped by listing after the hour of `since`, at most
 * `LIMITS.maxCaptureObjectsPerPage` objects are read per page, and their records answered at or after `since`
 * are returned, at most `limit` of them and at most `LIMITS.maxCapturePageBytes` of JSON (as the response carries
 * it, `answerBytes`), with a token where the next page starts (a key, and a byte offset within it when the page
 * ended inside an object). Objects are read `LIMITS.captureReadBlockBytes` at a time by ranged GETs: a page never
 * holds a whole object (Firehose writes up to 128 MiB), and a page that resumes inside one reads from its offset on.
 */
import { carriedTextBytes, LIMITS } from '../contract/limits';
import type { CaptureRecord } from '../domain/capture';
import {
  type CaptureQuery,
  capturePrefix,
  encodeCaptureToken,
  isAtOrAfter,
  isBeforeSinceHour,
  parseCaptureKey,
  parseCaptureLine,
  sinceStartKey,
} from '../domain/capture-listing';
import { BadRequestError } from '../domain/errors';
import type { ObjectReader } from '../ports/objects';

export interface CaptureReadDeps {
  readonly objects: ObjectReader;
  /** Objects read per page at most. @default LIMITS.maxCaptureObjectsPerPage */
  readonly maxObjectsPerPage?: number;
  /** Keys asked for per listing call. @default 1000 (S3's most) */
  readonly listPageSize?: number;
  /**
   * Serialized records per page at most (a page holds at least one record).
   * @default LIMITS.maxCapturePageBytes (within Lambda's 6 MB answer)
   */
  readonly maxPageBytes?: number;
  /** Bytes of an object read per ranged GET. @default LIMITS.captureReadBlockBytes */
  readonly blockBytes?: number;
}

const NEWLINE = 0x0a;

export interface CapturePage {
  readonly records: CaptureRecord[];
  readonly nextToken?: string;
}

const LIST_PAGE = 1000;

/** One page of a model's (or a version's) captured records. */
export async function listCapture(deps: CaptureReadDeps, q: CaptureQuery): Promise<CapturePage> {
  const maxObjects = deps.maxObjectsPerPage ?? LIMITS.maxCaptureObjectsPerPage;
  const prefix = capturePrefix(q.model, q.version);
  const records: CaptureRecord[] = [];
  const maxBytes = deps.maxPageBytes ?? LIMITS.maxCapturePageBytes;
  let pageBytes = 0;
  let objectsRead = 0;
  /** The listing continues after this key (a key read whole, or a jump past the hours before `since`). */
  let after = q.after?.key;

  const blockBytes = deps.blockBytes ?? LIMITS.captureReadBlockBytes;
  const decoder = new TextDecoder();
  /**
   * Takes the records of one object from byte `from` (the start of a line) on, reading it `blockBytes` at a time
   * (more at once only for a line longer than that); answers the byte to resume at when the page filled up before
   * the object's end.
   */
  const take = async (key: string, from: number): Promise<number | 'done' | 'full'> => {
    objectsRead++;
    let offset = from;
    let want = blockBytes;
    // A page resumed inside an object reads the byte before its offset too: a line break there, or the token
    // does not point at a record's start (an edited token would otherwise skip a partial record unseen).
    let check = from > 0;
    for (;;) {
      const lead = check ? 1 : 0;
      const read = await deps.objects.getRange(key, offset - lead, offset + want);
      if (check && read !== undefined && read.byteLength > 0 && read[0] !== NEWLINE) {
        throw new BadRequestError('invalid nextToken: it does not point at a record', 'INVALID_TOKEN');
      }
      const bytes = read?.subarray(lead);
      if (bytes === undefined || bytes.byteLength === 0) return 'done';
      check = false;
      const atEnd = bytes.byteLength < want;
      // The block's whole lines: up to its last line break, or all of it at the object's end.
      const whole = atEnd ? bytes.byteLength : bytes.lastIndexOf(NEWLINE) + 1;
      if (whole === 0) {
        want *= 2;
        continue;
      }
      for (let start = 0; start < whole; ) {
        const nl = bytes.indexOf(NEWLINE, start);
        const lineEnd = nl === -1 || nl >= whole ? whole : nl;
        const next = lineEnd === whole ? whole : lineEnd + 1;
        const r = parseCaptureLine(decoder.decode(bytes.subarray(start, lineEnd)));
        if (r !== undefined && isAtOrAfter(r, q.since)) {
          const size = answerBytes(r);
          // A full page (in bytes) resumes at this record.
          if (records.length > 0 && pageBytes + size > maxBytes) return offset + start;
          pageBytes += size;
          records.push(r);
          if (records.length >= q.limit) return atEnd && next >= whole ? 'full' : offset + next;
        }
        start = next;
      }
      if (atEnd) return 'done';
      offset += whole;
      want = blockBytes;
    }
  };

  if (q.after?.offset !== undefined) {
    const end = await take(q.after.key, q.after.offset);
    if (typeof end === 'number')
      return { records, nextToken: encodeCaptureToken({ key: q.after.key, offset: end }) };
    if (end === 'full') return page(records, q.after.key, await hasMore(deps.objects, prefix, q.after.key));
  }

  for (;;) {
    const listing = await deps.objects.list(prefix, {
      ...(after !== undefined ? { startAfter: after } : {}),
      maxKeys: deps.listPageSize ?? LIST_PAGE,
    });
    let jumped = false;
    for (let i = 0; i < listing.objects.length; i++) {
      const { key, sizeBytes } = listing.objects[i]!;
      const parsed = parseCaptureKey(key, q.model);
      // An empty object holds no record (and is not read: not every S3 answers a ranged GET of one).
      if (
        parsed === undefined ||
        (q.version !== undefined && parsed.version !== q.version) ||
        sizeBytes === 0
      ) {
        after = key;
        continue;
      }
      if (q.since !== undefined && isBeforeSinceHour(parsed, q.since)) {
        // Every key of this version before the hour of `since` is skipped by listing again after that hour.
        after = sinceStartKey(q.model, parsed.version, q.since);
        jumped = true;
        break;
      }
      if (objectsRead >= maxObjects) return page(records, after, true);
      const end = await take(key, 0);
      if (typeof end === 'number') return { records, nextToken: encodeCaptureToken({ key, offset: end }) };
      after = key;
      if (end === 'full') {
        const more = i + 1 < listing.objects.length || listing.truncated;
        return page(records, key, more);
      }
    }
    if (!jumped && !listing.truncated) return { records };
  }
}

/**
 * What a record adds to the page's answer as Lambda returns it: its JSON is the text of the HTTP body, which the
 * function's response (`{"statusCode", "body": "…"}`) carries as a JSON string, so every `"` and `\` is escaped
 * once more — and a record's request and answer texts are JSON inside strings already. Counted in UTF-8 bytes.
 */
function answerBytes(r: CaptureRecord): number {
  return carriedTextBytes(JSON.stringify(r));
}

function page(records: CaptureRecord[], after: string | undefined, more: boolean): CapturePage {
  return more && after !== undefined
    ? { records, nextToken: encodeCaptureToken({ key: after }) }
    : { records };
}

async function hasMore(objects: ObjectReader, prefix: string, after: string): Promise<boolean> {
  return (await objects.list(prefix, { startAfter: after, maxKeys: 1 })).objects.length > 0;
}

/**
 * Feedback and the capture listing against s3rver: feedback stored as one JSONL object per request (exact lines,
 * the hour layout), its refusals; captured records the test writes under the real layout read back with the
 * version and since filters, the limit, and pagination that neither repeats nor skips a record.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../../functions/adapters/s3-blob-store';
import { listCapture } from '../../functions/app/capture-read';
import { LIMITS } from '../../functions/contract/limits';
import { CAPTURE_KEYS } from '../../functions/contract/observability';
import { type CaptureRecord, captureLine } from '../../functions/domain/capture';
import { parseCaptureQuery } from '../../functions/domain/capture-listing';
import { createAsyncApiHandler } from '../../functions/handlers/async-api';
import { apiEvent, parseResult } from '../helpers/apigw';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { RecordingQueue } from '../helpers/events-fakes';
import { silentLogger } from '../helpers/recording-logger';

let aws: TestAwsEnv;
let blobs: S3BlobStore;
let handler: ReturnType<typeof createAsyncApiHandler>;
const NOW = new Date('2026-12-01T04:05:06.789Z');
let ids = 0;

beforeAll(async () => {
  aws = await createTestAwsEnv('observe');
  blobs = new S3BlobStore(aws.s3, aws.bucket);
  handler = createAsyncApiHandler({
    blobs,
    links: blobs,
    objects: blobs,
    queue: new RecordingQueue(),
    clock: { now: () => NOW },
    newId: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`,
    maxBodyBytes: 256 * 1024,
    logger: silentLogger,
  });
});
afterAll(async () => {
  await aws?.dispose();
});

const call = async (method: string, path: string, opts: Parameters<typeof apiEvent>[2] = {}) =>
  parseResult<Record<string, unknown>>(await handler(apiEvent(method, path, opts)));

const keysUnder = async (prefix: string): Promise<string[]> =>
  ((await aws.s3.send(new ListObjectsV2Command({ Bucket: aws.bucket, Prefix: prefix }))).Contents ?? []).map(
    (o) => o.Key as string,
  );

const text = async (key: string): Promise<string> =>
  (await (
    await aws.s3.send(new GetObjectCommand({ Bucket: aws.bucket, Key: key }))
  ).Body?.transformToString()) ?? '';

describe('POST /v2/models/{name}/feedback', () => {
  it('stores one item as one JSONL object under the hour, with the caller as actor', async () => {
    const r = await call('POST', '/v2/models/fb-one/feedback', {
      body: { inferenceId: 'req-1', label: 'setosa' },
      actor: 'arn:aws:iam::123456789012:user/alice',
    });
    expect(r).toMatchObject({ status: 201, body: { accepted: 1 } });
    const keys = await keysUnder('feedback/fb-one/');
    expect(keys).toEqual([
      `${CAPTURE_KEYS.feedbackHour('fb-one', NOW)}00000000-0000-4000-8000-${String(ids).padStart(12, '0')}.jsonl`,
    ]);
    expect(keys[0]).toMatch(/^feedback\/fb-one\/2026\/12\/01\/04\/[0-9a-f-]{36}\.jsonl$/);
    expect(await text(keys[0] as string)).toBe(
      '{"inferenceId":"req-1","label":"setosa","model":"fb-one","receivedAt":"2026-12-01T04:05:06.789Z","actor":"arn:aws:iam::123456789012:user/alice"}\n',
    );
  });

  it('stores an array as one object with one line per item, labels of every kind and values', async () => {
    const items = [
      { inferenceId: 'a', label: 2 },
      { inferenceId: 'b', label: false },
      { inferenceId: 'c', value: 0.25 },
      { inferenceId: 'd', label: 'x'.repeat(1024) },
    ];
    const r = await call('POST', '/v2/models/fb-many/feedback', { body: items });
    expect(r).toMatchObject({ status: 201, body: { accepted: 4 } });
    const keys = await keysUnder('feedback/fb-many/');
    expect(keys).toHaveLength(1);
    const lines = (await text(keys[0] as string)).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => JSON.parse(l))).toEqual(
      items.map((i) => ({ ...i, model: 'fb-many', receivedAt: NOW.toISOString(), actor: 'anonymous' })),
    );
  });

  it(`accepts ${LIMITS.maxFeedbackItems} items and refuses one more, storing nothing`, async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ inferenceId: `i${i}`, value: i }));
    const ok = await call('POST', '/v2/models/fb-limit/feedback', { body: many(LIMITS.maxFeedbackItems) });
    expect(ok).toMatchObject({ status: 201, body: { accepted: LIMITS.maxFeedbackItems } });
    const over = await call('POST', '/v2/models/fb-limit/feedback', {
      body: many(LIMITS.maxFeedbackItems + 1),
    });
    expect(over).toMatchObject({ status: 400, body: { code: 'INVALID_FEEDBACK' } });
    expect(await keysUnder('feedback/fb-limit/')).toHaveLength(1);
  });

  it.each([
    ['an empty body', '', 'MALFORMED_JSON'],
    ['truncated JSON', '{"inferenceId":', 'MALFORMED_JSON'],
    ['an empty array', [], 'INVALID_FEEDBACK'],
    ['a string', '"x"', 'INVALID_FEEDBACK'],
    ['no inferenceId', { label: 'a' }, 'INVALID_FEEDBACK'],
    ['an empty inferenceId', { inferenceId: '', label: 'a' }, 'INVALID_FEEDBACK'],
    ['a numeric inferenceId', { inferenceId: 7, label: 'a' }, 'INVALID_FEEDBACK'],
    [
      'an inferenceId over the limit',
      { inferenceId: 'i'.repeat(LIMITS.maxInferenceIdLength + 1), label: 'a' },
      'INVALID_FEEDBACK',
    ],
    ['neither label nor value', { inferenceId: 'a' }, 'INVALID_FEEDBACK'],
    ['both label and value', { inferenceId: 'a', label: 'x', value: 1 }, 'INVALID_FEEDBACK'],
    ['a label over 1024 characters', { inferenceId: 'a', label: 'x'.repeat(1025) }, 'INVALID_FEEDBACK'],
    ['an object label', { inferenceId: 'a', label: { k: 1 } }, 'INVALID_FEEDBACK'],
    ['a null label', { inferenceId: 'a', label: null }, 'INVALID_FEEDBACK'],
    ['a string value', { inferenceId: 'a', value: '1' }, 'INVALID_FEEDBACK'],
    ['an unknown field', { inferenceId: 'a', label: 'x', note: 'hi' }, 'INVALID_FEEDBACK'],
    [
      'one bad item among good ones',
      [{ inferenceId: 'a', value: 1 }, { inferenceId: 'b' }],
      'INVALID_FEEDBACK',
    ],
  ])('refuses %s with 400 and stores nothing', async (_what, body, code) => {
    const r = await call('POST', '/v2/models/fb-bad/feedback', { body });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ error: expect.any(String), code });
    expect(await keysUnder('feedback/fb-bad/')).toEqual([]);
  });

  it('refuses a bad model name (400 INVALID_NAME)', async () => {
    const r = await call('POST', '/v2/models/Bad!/feedback', { body: { inferenceId: 'a', value: 1 } });
    expect(r).toMatchObject({ status: 400, body: { code: 'INVALID_NAME' } });
  });
});

// ---------------------------------------------------------------------------------------------------------

/** A captured record of `model` version `version`, answered at `at`. */
function record(model: string, version: number, at: string, n: number): string {
  return captureLine({
    config: { samplePercent: 100, input: true, output: true },
    eventId: `e-${model}-${version}-${n}`,
    inferenceId: `r-${version}-${n}`,
    at: new Date(at),
    model,
    version,
    alias: 'prod',
    route: 'stable',
    status: 200,
    request: { text: `{"inputs":[${n}]}`, contentType: 'application/json' },
    response: { text: `{"outputs":[${n}]}`, contentType: 'application/json' },
  });
}

/** Writes the records (grouped into objects by version and hour, as the capture sink does) under the real layout. */
async function writeCapture(model: string, objects: { version: number; at: string[]; file: string }[]) {
  for (const o of objects) {
    const key = `${CAPTURE_KEYS.captureHour(model, o.version, new Date(o.at[0] as string))}${o.file}.jsonl`;
    const body = o.at.map((at, i) => `${record(model, o.version, at, i)}\n`).join('');
    await aws.s3.send(new PutObjectCommand({ Bucket: aws.bucket, Key: key, Body: body }));
  }
}

const idsOf = (records: readonly CaptureRecord[]) => records.map((r) => r.eventMetadata.eventId);

describe('GET /models/{name}/capture', () => {
  beforeAll(async () => {
    await writeCapture('cap', [
      { version: 1, file: 'a', at: ['2026-11-30T22:10:00.000Z', '2026-11-30T22:20:00.000Z'] },
      {
        version: 1,
        file: 'b',
        at: ['2026-12-01T03:00:00.000Z', '2026-12-01T03:30:00.000Z', '2026-12-01T03:59:00.000Z'],
      },
      { version: 1, file: 'c', at: ['2026-12-01T04:00:00.000Z'] },
      { version: 2, file: 'a', at: ['2026-11-29T10:00:00.000Z'] },
      { version: 2, file: 'b', at: ['2026-12-01T03:45:00.000Z', '2026-12-01T03:46:00.000Z'] },
    ]);
    // Not capture records of `cap`: another model whose name extends it, a key off the layout, a bad line.
    await writeCapture('cap2', [{ version: 1, file: 'a', at: ['2026-12-01T03:00:00.000Z'] }]);
    await aws.s3.send(
      new PutObjectCommand({ Bucket: aws.bucket, Key: 'capture/cap/1/readme.txt', Body: 'not a record' }),
    );
    await aws.s3.send(
      new PutObjectCommand({
        Bucket: aws.bucket,
        Key: 'capture/cap/2/2026/12/01/05/z.jsonl',
        Body: `not json\n${record('cap', 2, '2026-12-01T05:00:00.000Z', 0)}\n`,
      }),
    );
  });

  const ALL = [
    'e-cap-1-0', // v1 22h a
    'e-cap-1-1',
    'e-cap-1-0', // v1 03h b
    'e-cap-1-1',
    'e-cap-1-2',
    'e-cap-1-0', // v1 04h c
    'e-cap-2-0', // v2 10h (29th)
    'e-cap-2-0', // v2 03h b
    'e-cap-2-1',
    'e-cap-2-0', // v2 05h z (after a line that is not a record)
  ];

  it('lists every record of every version in key order (version, then hour), skipping what is not a record', async () => {
    const r = await call('GET', '/models/cap/capture');
    expect(r.status).toBe(200);
    const body = r.body as { records: CaptureRecord[]; nextToken?: string };
    expect(idsOf(body.records)).toEqual(ALL);
    expect(body.nextToken).toBeUndefined();
    expect(body.records[0]).toMatchObject({
      eventVersion: '0',
      model: 'cap',
      version: 1,
      alias: 'prod',
      route: 'stable',
      status: 200,
      eventMetadata: { inferenceId: 'r-1-0', inferenceTime: '2026-11-30T22:10:00.000Z' },
      captureData: { endpointInput: { data: '{"inputs":[0]}', mode: 'INPUT' } },
    });
  });

  it('filters by version and by since (the hours before it skipped, the records before it within its hour dropped)', async () => {
    const v2 = (await call('GET', '/models/cap/capture', { query: { version: '2' } })).body as {
      records: CaptureRecord[];
    };
    expect(v2.records.map((r) => r.version)).toEqual([2, 2, 2, 2]);
    const since = (await call('GET', '/models/cap/capture', { query: { since: '2026-12-01T03:30:00Z' } }))
      .body as { records: CaptureRecord[] };
    expect(since.records.map((r) => r.eventMetadata.inferenceTime)).toEqual([
      '2026-12-01T03:30:00.000Z',
      '2026-12-01T03:59:00.000Z',
      '2026-12-01T04:00:00.000Z',
      '2026-12-01T03:45:00.000Z',
      '2026-12-01T03:46:00.000Z',
      '2026-12-01T05:00:00.000Z',
    ]);
    const both = (
      await call('GET', '/models/cap/capture', {
        query: { version: '1', since: '2026-12-01T04:00:00+00:00' },
      })
    ).body as { records: CaptureRecord[] };
    expect(both.records.map((r) => r.eventMetadata.inferenceTime)).toEqual(['2026-12-01T04:00:00.000Z']);
  });

  it('pages with limit and nextToken, within an object and across objects, without repeats or gaps', async () => {
    for (const limit of [1, 2, 3, 4, 7]) {
      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const r = await call('GET', '/models/cap/capture', {
          query: { limit: String(limit), ...(token ? { nextToken: token } : {}) },
        });
        expect(r.status).toBe(200);
        const body = r.body as { records: CaptureRecord[]; nextToken?: string };
        expect(body.records.length).toBeLessThanOrEqual(limit);
        seen.push(...idsOf(body.records));
        token = body.nextToken;
        pages++;
      } while (token && pages < 20);
      expect(seen, `limit ${limit}`).toEqual(ALL);
    }
  });

  it('reads at most maxCaptureObjectsPerPage objects per page and continues after the last one read', async () => {
    const q = parseCaptureQuery('cap', {});
    const first = await listCapture({ objects: blobs, maxObjectsPerPage: 2 }, q);
    expect(idsOf(first.records)).toEqual(ALL.slice(0, 5));
    expect(first.nextToken).toBeDefined();
    const second = await listCapture(
      { objects: blobs, maxObjectsPerPage: 2 },
      parseCaptureQuery('cap', { nextToken: first.nextToken }),
    );
    expect(idsOf(second.records)).toEqual(ALL.slice(5, 7));
  });

  it('stops a page at its byte budget (always one record at least) and resumes at the next record', async () => {
    const one = JSON.stringify(
      (await listCapture({ objects: blobs }, parseCaptureQuery('cap', { limit: '1' }))).records[0],
    ).length;
    const seen: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      // Room for two records of that size per page (the first record alone may exceed a tiny budget).
      const page = await listCapture(
        { objects: blobs, maxPageBytes: Math.floor(one * 2.5) },
        parseCaptureQuery('cap', nextToken ? { nextToken } : {}),
      );
      expect(page.records.length).toBeGreaterThan(0);
      expect(page.records.length).toBeLessThanOrEqual(3);
      seen.push(...idsOf(page.records));
      nextToken = page.nextToken;
      pages++;
    } while (nextToken && pages < 50);
    expect(seen).toEqual(ALL);
    expect(pages).toBeGreaterThan(2);
    const tiny = await listCapture({ objects: blobs, maxPageBytes: 1 }, parseCaptureQuery('cap', {}));
    expect(tiny.records).toHaveLength(1);
    expect(tiny.nextToken).toBeDefined();
  });

  it('counts a page as Lambda answers it: UTF-8 bytes, quotes escaped once more in the response', async () => {
    // Records whose request text is 2 000 CJK characters (6 000 bytes in UTF-8, 2 000 UTF-16 units) and 1 000
    // quotes (each 2 bytes in the record's JSON, 4 in the function's response that carries it as a string).
    const wide = (n: number) =>
      captureLine({
        config: { samplePercent: 100, input: true, output: true },
        eventId: `w-${n}`,
        inferenceId: `w-${n}`,
        at: new Date('2026-12-01T06:00:00.000Z'),
        model: 'wide',
        version: 1,
        alias: 'prod',
        route: 'stable',
        status: 200,
        request: {
          text: `{"note":"${'漢'.repeat(2000)}","empty":[${Array(500).fill('""').join(',')}]}`,
          contentType: 'application/json',
        },
        response: { text: '{"outputs":[]}', contentType: 'application/json' },
      });
    const key = `${CAPTURE_KEYS.captureHour('wide', 1, new Date('2026-12-01T06:00:00.000Z'))}a.jsonl`;
    const body = Array.from({ length: 12 }, (_, i) => `${wide(i)}\n`).join('');
    await aws.s3.send(new PutObjectCommand({ Bucket: aws.bucket, Key: key, Body: body }));
    // A record's bytes in the function's response: its JSON, as a JSON string (quotes and backslashes escaped).
    const bytes = (r: CaptureRecord) => Buffer.byteLength(JSON.stringify(JSON.stringify(r))) - 2;
    const maxPageBytes = 20_000; // two records by their JSON's bytes, one by the response's
    const seen: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await listCapture(
        { objects: blobs, maxPageBytes },
        parseCaptureQuery('wide', nextToken ? { nextToken } : {}),
      );
      expect(page.records.length).toBeGreaterThan(0);
      if (page.records.length > 1) {
        expect(page.records.reduce((n, r) => n + bytes(r), 0)).toBeLessThanOrEqual(maxPageBytes);
      }
      seen.push(...idsOf(page.records));
      nextToken = page.nextToken;
    } while (nextToken && seen.length < 50);
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => `w-${i}`));
  });

  it('reads an object by ranged GETs of a block, never whole, and resumes a page at its byte offset', async () => {
    // 40 records of one hour, one of them longer than the block (read by a larger range, not skipped).
    const at = (i: number) => new Date(Date.parse('2026-12-01T07:00:00.000Z') + i * 1000).toISOString();
    const lines = Array.from({ length: 40 }, (_, i) => record('ranged', 1, at(i), i));
    lines[17] = lines[17]!.replace('"eventId"', `"pad":"${'x'.repeat(3000)}","eventId"`);
    expect(lines[17]!.length).toBeGreaterThan(3000);
    const key = `${CAPTURE_KEYS.captureHour('ranged', 1, new Date(at(0)))}a.jsonl`;
    const body = lines.map((l) => `${l}\n`).join('');
    await aws.s3.send(new PutObjectCommand({ Bucket: aws.bucket, Key: key, Body: body }));
    const ranges: [number, number][] = [];
    const objects = {
      list: blobs.list.bind(blobs),
      getRange: (k: string, start: number, end: number) => {
        ranges.push([start, end]);
        return blobs.getRange(k, start, end);
      },
    };
    const blockBytes = 1024;
    for (const limit of [1, 3, 7, 1000]) {
      ranges.length = 0;
      const seen: string[] = [];
      let nextToken: string | undefined;
      do {
        const before = ranges.length;
        const page = await listCapture(
          { objects, blockBytes },
          parseCaptureQuery('ranged', { limit: String(limit), ...(nextToken ? { nextToken } : {}) }),
        );
        // A page that resumes inside the object starts reading where the one before stopped (a line's start),
        // from the line break before it, which it checks.
        const first = ranges[before];
        // (The body is ASCII: its byte offsets are its character offsets.)
        if (nextToken && first) expect(body[first[0]]).toBe('\n');
        seen.push(...idsOf(page.records));
        nextToken = page.nextToken;
      } while (nextToken && seen.length < 100);
      expect(seen, `limit ${limit}`).toEqual(Array.from({ length: 40 }, (_, i) => `e-ranged-1-${i}`));
      // Every read is one block (with the line break before it when a page resumes inside the object), but the
      // one that holds the long line, which doubles until the line fits.
      const sizes = ranges.map(([a, b]) => (body[a] === '\n' && a > 0 ? b - a - 1 : b - a));
      expect(Math.max(...sizes)).toBeLessThanOrEqual(4 * blockBytes);
      expect(sizes.filter((n) => n > blockBytes).length).toBeGreaterThan(0);
      expect(sizes.filter((n) => n === blockBytes).length).toBeGreaterThan(sizes.length / 2);
    }
    // With limit 1000, the body is read once (one page), block by block.
    expect(ranges.reduce((n, [a, b]) => n + Math.min(b, body.length) - a, 0)).toBeLessThan(3 * body.length);
  });

  it('refuses a token whose offset is not at a record of its object (400 INVALID_TOKEN), and reads on from one that is', async () => {
    const at = (i: number) => new Date(Date.parse('2026-12-01T09:00:00.000Z') + i * 1000).toISOString();
    const lines = Array.from({ length: 3 }, (_, i) => record('edited', 1, at(i), i));
    const key = `${CAPTURE_KEYS.captureHour('edited', 1, new Date(at(0)))}a.jsonl`;
    await aws.s3.send(
      new PutObjectCommand({ Bucket: aws.bucket, Key: key, Body: lines.map((l) => `${l}\n`).join('') }),
    );
    const token = (offset: number) =>
      Buffer.from(JSON.stringify({ k: key, o: offset })).toString('base64url');
    const second = lines[0]!.length + 1;
    const ok = await call('GET', '/models/edited/capture', { query: { nextToken: token(second) } });
    expect(ok.status).toBe(200);
    expect(idsOf((ok.body as { records: CaptureRecord[] }).records)).toEqual([
      'e-edited-1-1',
      'e-edited-1-2',
    ]);
    for (const offset of [1, second - 1, second + 5]) {
      const r = await call('GET', '/models/edited/capture', { query: { nextToken: token(offset) } });
      expect(r, `offset ${offset}`).toMatchObject({ status: 400, body: { code: 'INVALID_TOKEN' } });
    }
  });

  it('passes over an empty object without reading it', async () => {
    const hour = CAPTURE_KEYS.captureHour('hollow', 1, new Date('2026-12-01T08:00:00.000Z'));
    const put = (file: string, body: string) =>
      aws.s3.send(new PutObjectCommand({ Bucket: aws.bucket, Key: `${hour}${file}.jsonl`, Body: body }));
    await put('a', `${record('hollow', 1, '2026-12-01T08:00:00.000Z', 0)}\n`);
    await put('b', '');
    await put('c', `${record('hollow', 1, '2026-12-01T08:10:00.000Z', 2)}\n`);
    const read: string[] = [];
    const objects = {
      list: blobs.list.bind(blobs),
      getRange: (k: string, start: number, end: number) => {
        read.push(k);
        return blobs.getRange(k, start, end);
      },
    };
    const page = await listCapture({ objects }, parseCaptureQuery('hollow', {}));
    expect(idsOf(page.records)).toEqual(['e-hollow-1-0', 'e-hollow-1-2']);
    expect(read.some((k) => k.endsWith('/b.jsonl'))).toBe(false);
  });

  it('continues truncated listings and jumps past the hours before since, listing 2 keys at a time', async () => {
    const deps = { objects: blobs, listPageSize: 2 };
    const seen: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const page = await listCapture(
        deps,
        parseCaptureQuery('cap', { limit: '3', ...(nextToken ? { nextToken } : {}) }),
      );
      seen.push(...idsOf(page.records));
      nextToken = page.nextToken;
      pages++;
    } while (nextToken && pages < 20);
    expect(seen).toEqual(ALL);
    const read: string[] = [];
    const counting = {
      list: blobs.list.bind(blobs),
      getRange: (key: string, start: number, end: number) => {
        read.push(key);
        return blobs.getRange(key, start, end);
      },
    };
    const since = await listCapture(
      { objects: counting, listPageSize: 2 },
      parseCaptureQuery('cap', { since: '2026-12-01T03:46:00Z' }),
    );
    // The objects of the hours before since are never read.
    expect(read).toEqual([
      'capture/cap/1/2026/12/01/03/b.jsonl',
      'capture/cap/1/2026/12/01/04/c.jsonl',
      'capture/cap/2/2026/12/01/03/b.jsonl',
      'capture/cap/2/2026/12/01/05/z.jsonl',
    ]);
    expect(since.records.map((r) => r.eventMetadata.inferenceTime)).toEqual([
      '2026-12-01T03:59:00.000Z',
      '2026-12-01T04:00:00.000Z',
      '2026-12-01T03:46:00.000Z',
      '2026-12-01T05:00:00.000Z',
    ]);
    expect(since.nextToken).toBeUndefined();
  });

  it('answers an empty list for a model without records', async () => {
    expect(await call('GET', '/models/nothing/capture')).toMatchObject({
      status: 200,
      body: { records: [] },
    });
  });

  it.each([
    ['version', { version: '0' }, 'INVALID_VERSION'],
    ['version', { version: 'abc' }, 'INVALID_VERSION'],
    ['since', { since: 'yesterday' }, 'INVALID_SINCE'],
    ['since', { since: '1h' }, 'INVALID_SINCE'],
    ['since', { since: '2026-13-45T00:00:00Z' }, 'INVALID_SINCE'],
    ['limit', { limit: '0' }, 'INVALID_LIMIT'],
    ['limit', { limit: '1001' }, 'INVALID_LIMIT'],
    ['limit', { limit: '1.5' }, 'INVALID_LIMIT'],
    ['nextToken', { nextToken: 'garbage!' }, 'INVALID_TOKEN'],
    [
      'nextToken',
      { nextToken: Buffer.from('{"k":"capture/other/1/x"}').toString('base64url') },
      'INVALID_TOKEN',
    ],
    [
      'nextToken',
      { nextToken: Buffer.from('{"k":"capture/cap/1/x","l":-1}').toString('base64url') },
      'INVALID_TOKEN',
    ],
  ])('refuses a bad %s (%j) with 400', async (_what, query, code) => {
    const r = await call('GET', '/models/cap/capture', { query });
    expect(r).toMatchObject({ status: 400, body: { code } });
  });

  it('refuses a token of the whole model on a version listing', async () => {
    const first = (await call('GET', '/models/cap/capture', { query: { limit: '1' } })).body as {
      nextToken: string;
    };
    const r = await call('GET', '/models/cap/capture', {
      query: { version: '2', nextToken: first.nextToken },
    });
    expect(r).toMatchObject({ status: 400, body: { code: 'INVALID_TOKEN' } });
  });
});

import { describe, expect, it } from 'vitest';
import { S3_KEYS } from '../../functions/contract/env';
import { BATCH, BATCH_KEYS } from '../../functions/contract/events';
import {
  BatchPartMessageSchema,
  batchEventOfKey,
  batchStatusOf,
  byteLineBlocks,
  chunkRowsAt,
  countOutcomes,
  decodeLines,
  errorLine,
  hasTimeForAnotherChunk,
  inputObjectKind,
  isErrorLine,
  JOB_ID_RULE,
  LineBytes,
  lineBlocks,
  type OutputPartPlan,
  PartCursorSchema,
  parseJobSpec,
  parseRow,
  planOutputParts,
  type SizedObject,
  splitLines,
} from '../../functions/domain/batch';
import { BadRequestError, NotFoundError } from '../../functions/domain/errors';
import { seededRandom } from '../../functions/local/onnx-builder';

describe('parseJobSpec', () => {
  it('defaults ref to prod and accepts version numbers and aliases', () => {
    expect(parseJobSpec('{"model":"iris"}')).toEqual({ model: 'iris', ref: 'prod' });
    expect(parseJobSpec('{"model":"iris","ref":3}')).toEqual({ model: 'iris', ref: '3' });
    expect(parseJobSpec('{"model":"iris","ref":"staging"}')).toEqual({ model: 'iris', ref: 'staging' });
  });

  it('takes partBytes and maxConcurrency within their bounds', () => {
    expect(parseJobSpec(JSON.stringify({ model: 'iris', partBytes: 65_536, maxConcurrency: 1 }))).toEqual({
      model: 'iris',
      ref: 'prod',
      partBytes: 65_536,
      maxConcurrency: 1,
    });
    expect(
      parseJobSpec(JSON.stringify({ model: 'iris', partBytes: BATCH.maxPartBytes, maxConcurrency: 1000 })),
    ).toMatchObject({ partBytes: 512 * 1024 * 1024, maxConcurrency: 1000 });
  });

  it.each([
    ['not json', /not valid JSON/],
    ['{"ref":"prod"}', /'model'/],
    ['{"model":"Bad Name"}', /model/],
    ['{"model":"iris","ref":0}', /'ref'/],
    ['[]', /job.json/],
    ['{"model":"iris","partBytes":65535}', /'partBytes'/],
    ['{"model":"iris","partBytes":536870913}', /'partBytes'/],
    ['{"model":"iris","partBytes":100000.5}', /'partBytes'/],
    ['{"model":"iris","maxConcurrency":0}', /'maxConcurrency'/],
    ['{"model":"iris","maxConcurrency":1001}', /'maxConcurrency'/],
    // A misspelt option would otherwise run with the default.
    [
      '{"model":"iris","partbytes":65536}',
      /unknown key 'partbytes': it takes model, ref, partBytes and maxConcurrency/,
    ],
    ['{"model":"iris","max_concurrency":2,"Ref":"x"}', /unknown keys 'max_concurrency', 'Ref'/],
  ])('rejects %s with INVALID_JOB', (text, message) => {
    try {
      parseJobSpec(text);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BadRequestError);
      expect((e as BadRequestError).code).toBe('INVALID_JOB');
      expect((e as Error).message).toMatch(message);
    }
  });
});

describe('batchEventOfKey', () => {
  const ev = (key: string) => batchEventOfKey(key, S3_KEYS.batchPrefix);
  it('starts on input.jsonl or input/_SUCCESS, cancels on cancel, and means nothing else', () => {
    expect(ev(BATCH_KEYS.input('j-1'))).toEqual({ kind: 'start', jobId: 'j-1', input: 'file' });
    expect(ev(BATCH_KEYS.inputMarker('j-1'))).toEqual({ kind: 'start', jobId: 'j-1', input: 'prefix' });
    expect(ev(BATCH_KEYS.cancel('j-1'))).toEqual({ kind: 'cancel', jobId: 'j-1' });
    for (const key of [
      'batch/j-1/input/a.jsonl',
      'batch/j-1/input/sub/_SUCCESS',
      BATCH_KEYS.output('j-1'),
      BATCH_KEYS.status('j-1'),
      BATCH_KEYS.plan('j-1'),
      BATCH_KEYS.segment('j-1', 'r', 0, 0, 10),
      'batch/cancel',
      'incoming/j-1/input.jsonl',
    ]) {
      expect(ev(key), key).toBeUndefined();
    }
  });

  it('says why a key that would start or cancel a job under a folder that is no job id does nothing', () => {
    for (const jobId of ['..', '_lead', 'job ü', 'a+b', 'x'.repeat(129)]) {
      for (const key of [
        `batch/${jobId}/input.jsonl`,
        `batch/${jobId}/input/_SUCCESS`,
        `batch/${jobId}/cancel`,
      ]) {
        expect(ev(key), key).toEqual({ kind: 'invalid', jobId, reason: JOB_ID_RULE });
      }
    }
    expect(JOB_ID_RULE).toMatch(/1-128 characters/);
    expect(ev('batch/job ü/output.jsonl')).toBeUndefined();
  });
});

describe('keys', () => {
  it('names segments by input, part and rows so that they sort in output order', () => {
    expect(BATCH_KEYS.segment('j', 'abc', 12, 0, 512)).toBe(
      'batch/j/parts/abc/000012/000000000-000000512.jsonl',
    );
    expect(BATCH_KEYS.segments('j', 'abc')).toBe('batch/j/parts/abc/');
    expect(BATCH_KEYS.inputPrefix('j')).toBe('batch/j/input/');
  });
});

describe('splitLines', () => {
  it('splits on LF and CRLF; a final newline ends the last line; blank lines are rows', () => {
    expect(splitLines('')).toEqual([]);
    expect(splitLines('a')).toEqual(['a']);
    expect(splitLines('a\n')).toEqual(['a']);
    expect(splitLines('a\r\nb\r\n')).toEqual(['a', 'b']);
    expect(splitLines('a\n\nb\n')).toEqual(['a', '', 'b']);
    expect(splitLines('\n')).toEqual(['']);
  });
});

const bytesOf = (s: string) => new TextEncoder().encode(s);

async function* chunked(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = sizes[i++ % sizes.length] ?? 1;
    yield bytes.slice(at, at + n);
    at += n;
  }
}

async function collect(text: string, sizes: number[], maxLines: number) {
  const blocks: { lines: string[]; bytes: number }[] = [];
  for await (const b of lineBlocks(chunked(bytesOf(text), sizes), maxLines)) blocks.push(b);
  return blocks;
}

describe('lineBlocks', () => {
  it('gives the lines of splitLines however the bytes are chunked, with the bytes each block took', async () => {
    const texts = ['', 'a', 'a\n', '\n', 'a\r\nb\r\n', 'a\n\nb\n', 'é€😀\n{"x":"ü"}\r\nlast', '\n\n\n'];
    for (const text of texts) {
      for (const sizes of [[1], [2], [3, 1], [7], [1000]]) {
        for (const maxLines of [1, 2, 512]) {
          const blocks = await collect(text, sizes, maxLines);
          expect(
            blocks.flatMap((b) => b.lines),
            JSON.stringify({ text, sizes, maxLines }),
          ).toEqual(splitLines(text));
          expect(blocks.reduce((n, b) => n + b.bytes, 0)).toBe(bytesOf(text).length);
          for (const b of blocks) expect(b.lines.length).toBeLessThanOrEqual(maxLines);
        }
      }
    }
  });

  it('counts the line breaks into the bytes of their block', async () => {
    expect(await collect('ab\ncd\r\nef', [4], 1)).toEqual([
      { lines: ['ab'], bytes: 3 },
      { lines: ['cd'], bytes: 4 },
      { lines: ['ef'], bytes: 2 },
    ]);
  });
});

describe('byteLineBlocks', () => {
  it('gives the same lines as ranges of one array, fresh or reused, the block of a line break holding it', async () => {
    const text = 'é€😀\n{"x":"ü"}\r\n\nab\rc\r\n\n\xff last';
    for (const sizes of [[1], [3, 1], [7], [1000]]) {
      for (const maxLines of [1, 2, 512]) {
        for (const reuse of [false, true]) {
          const lines: string[] = [];
          let bytes = 0;
          const arrays = new Set<ArrayBufferLike>();
          for await (const b of byteLineBlocks(chunked(bytesOf(text), sizes), maxLines, reuse)) {
            // Decoded now: with reuse, a block is valid until the next one is asked for.
            lines.push(...decodeLines(b.lines));
            bytes += b.bytes;
            expect(b.lines.data.length).toBe(b.bytes);
            arrays.add(b.lines.data.buffer);
          }
          const where = JSON.stringify({ sizes, maxLines, reuse });
          expect(lines, where).toEqual(splitLines(text));
          expect(bytes).toBe(bytesOf(text).length);
          if (reuse && maxLines === 1) expect(arrays.size, where).toBeLessThan(lines.length);
        }
      }
    }
  });
});

describe('chunkRowsAt', () => {
  it('grows the first chunks from firstRows to rowsPerChunk, chunks ending at the same lines wherever a part is taken up', () => {
    const boundaries = (rows: number, per: number, first: number, from = 0) => {
      const ends: number[] = [];
      for (let r = from; r < rows; ) {
        r += chunkRowsAt(r, per, first);
        ends.push(r);
      }
      return ends;
    };
    expect(boundaries(2000, 512, 64)).toEqual([64, 192, 448, 960, 1472, 1984, 2496]);
    // Taken up inside a chunk (a cursor is always at an end; any row is answered alike): the same ends after it.
    expect(boundaries(2000, 512, 64, 100)).toEqual([192, 448, 960, 1472, 1984, 2496]);
    expect(boundaries(2000, 512, 64, 1000)).toEqual([1472, 1984, 2496]);
    // A first chunk as large as a whole one (or larger): every chunk is whole; not a number of rows below 1.
    expect(boundaries(25, 10, 10)).toEqual([10, 20, 30]);
    expect(boundaries(25, 10, 64)).toEqual([10, 20, 30]);
    expect(boundaries(3, 2, 0)).toEqual([1, 3]);
    // Sizes that do not double into rowsPerChunk reach it all the same.
    expect(boundaries(1000, 300, 64)).toEqual([64, 192, 448, 748, 1048]);
  });

  it('splits a stream at the lines it names for each block', async () => {
    const text = Array.from({ length: 20 }, (_, i) => `l${i}`).join('\n');
    const counts: number[] = [];
    const firsts: string[] = [];
    for await (const b of byteLineBlocks(chunked(bytesOf(text), [5]), (line) =>
      chunkRowsAt(line + 1, 8, 2),
    )) {
      counts.push(b.lines.count);
      firsts.push(decodeLines(b.lines)[0]!);
    }
    // Line 0 of the stream is row 1 of its part: chunk ends at rows 2, 6, 14, 22.
    expect(counts).toEqual([1, 4, 8, 7]);
    expect(firsts).toEqual(['l0', 'l1', 'l5', 'l13']);
  });
});

describe('LineBytes', () => {
  it('writes what TextEncoder makes of the lines joined by line breaks, across growths and takes', () => {
    const rand = seededRandom(3);
    const pieces = ['{"a":1}', 'é', '€', '😀', '\ud800', '\udc00', 'x\udc00y', '', 'plain text'];
    const writer = new LineBytes(8);
    for (let round = 0; round < 3; round++) {
      const all: string[] = [];
      for (let chunk = 0; chunk < 5; chunk++) {
        const lines = Array.from({ length: Math.floor(rand() * 40) }, () =>
          Array.from(
            { length: Math.floor(rand() * 6) },
            () => pieces[Math.floor(rand() * pieces.length)],
          ).join(''),
        );
        writer.append(lines);
        all.push(...lines);
      }
      const want = new TextEncoder().encode(`${all.join('\n')}\n`);
      expect(writer.length).toBe(want.length);
      const got = writer.take();
      expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
      expect(writer.length).toBe(0);
    }
    expect(writer.take().length).toBe(0);
  });

  it('grows by what a line can take in UTF-8, three bytes a UTF-16 unit', () => {
    const writer = new LineBytes(4);
    writer.append(['€€€€', '😀😀']);
    expect(Buffer.from(writer.take()).toString('utf8')).toBe('€€€€\n😀😀\n');
  });

  it('writes nothing for no lines, and pairs no surrogates across lines', () => {
    const writer = new LineBytes(4);
    writer.append([]);
    expect(writer.length).toBe(0);
    writer.append(['a\ud800', '\udc00b']);
    writer.append([]);
    expect(Buffer.from(writer.take()).toString('utf8')).toBe('a\ufffd\n\ufffdb\n');
  });
});

describe('time budget', () => {
  it('always runs the first chunk of an invocation, then only when the slowest chunk still fits', () => {
    expect(hasTimeForAnotherChunk(0, 10_000, 5_000, 0)).toBe(true);
    expect(hasTimeForAnotherChunk(20_000, 10_000, 5_000, 1)).toBe(true);
    expect(hasTimeForAnotherChunk(15_000, 10_000, 5_000, 1)).toBe(false);
    expect(hasTimeForAnotherChunk(0, 0, 0, 3)).toBe(false);
  });
});

describe('planOutputParts', () => {
  const MIN = 100;
  const objs = (...sizes: number[]): SizedObject[] =>
    sizes.map((sizeBytes, i) => ({ key: `s${i}`, sizeBytes }));
  const sizeOf = (p: OutputPartPlan) => (p.kind === 'copy' ? p.source.end - p.source.start : p.sizeBytes);
  const bytes = (p: OutputPartPlan) => (p.kind === 'copy' ? [p.source] : p.pieces);

  /**
   * The plan is the objects' bytes in order; every part but the last has MIN; a merge holds < 2 MIN; a copy of
   * part of an object (a byte range) is of an object larger than MIN (S3 copies no range of a source of 5 MB or less).
   */
  function expectSound(objects: SizedObject[], plan: OutputPartPlan[]) {
    const sizes = new Map(objects.map((o) => [o.key, o.sizeBytes]));
    for (const p of plan) {
      if (p.kind !== 'copy') continue;
      const whole = p.source.start === 0 && p.source.end === sizes.get(p.source.key);
      if (!whole) expect(sizes.get(p.source.key)).toBeGreaterThan(MIN);
    }
    const ranges = plan.flatMap(bytes);
    const flat = objects.flatMap((o) => (o.sizeBytes ? [o] : []));
    let at = 0;
    let k = 0;
    for (const r of ranges) {
      const o = flat[k];
      expect(r.key).toBe(o?.key);
      expect(r.start).toBe(at);
      at = r.end;
      if (at === o?.sizeBytes) {
        k++;
        at = 0;
      }
    }
    expect(k).toBe(flat.length);
    plan.forEach((p, i) => {
      if (i < plan.length - 1) expect(sizeOf(p)).toBeGreaterThanOrEqual(MIN);
      if (p.kind === 'upload') {
        expect(p.sizeBytes).toBeLessThan(2 * MIN);
        expect(p.pieces.reduce((n, r) => n + r.end - r.start, 0)).toBe(p.sizeBytes);
      }
    });
  }

  it('copies every object of at least the minimum whole, reading nothing', () => {
    const o = objs(100, 250, 100, 7_000);
    const plan = planOutputParts(o, MIN);
    expect(plan.every((p) => p.kind === 'copy')).toBe(true);
    expect(plan).toHaveLength(4);
    expectSound(o, plan);
  });

  it('merges small objects until the minimum; the last part may be small', () => {
    const o = objs(30, 40, 50, 10);
    const plan = planOutputParts(o, MIN);
    expect(plan.map((p) => p.kind)).toEqual(['upload', 'upload']);
    expect(plan.map(sizeOf)).toEqual([120, 10]);
    expectSound(o, plan);
    expect(planOutputParts(objs(30), MIN)).toEqual([
      { kind: 'upload', pieces: [{ key: 's0', start: 0, end: 30 }], sizeBytes: 30 },
    ]);
    expect(planOutputParts(objs(), MIN)).toEqual([]);
    expect(planOutputParts(objs(0, 0), MIN)).toEqual([]);
  });

  it('tops a merge up from the start of a large object and copies the rest of it', () => {
    const o = objs(30, 500, 20);
    const plan = planOutputParts(o, MIN);
    expect(plan).toEqual([
      {
        kind: 'upload',
        pieces: [
          { key: 's0', start: 0, end: 30 },
          { key: 's1', start: 0, end: 70 },
        ],
        sizeBytes: 100,
      },
      { kind: 'copy', source: { key: 's1', start: 70, end: 500 } },
      { kind: 'upload', pieces: [{ key: 's2', start: 0, end: 20 }], sizeBytes: 20 },
    ]);
    // When the rest would be too small to copy, the object is merged whole (unless it ends the output).
    expect(planOutputParts(objs(30, 150, 20), MIN).map(sizeOf)).toEqual([180, 20]);
    expect(planOutputParts(objs(30, 150), MIN).map((p) => [p.kind, sizeOf(p)])).toEqual([
      ['upload', 100],
      ['copy', 80],
    ]);
  });

  it('never copies a range of an object of MIN or less: a small last object is merged whole', () => {
    // S3: "You can copy a range only if the source object is greater than 5 MB". Topping 30 up from the last object
    // (80) and copying the rest of it would be a range of an 80-byte source.
    expect(planOutputParts(objs(30, 80), MIN)).toEqual([
      {
        kind: 'upload',
        pieces: [
          { key: 's0', start: 0, end: 30 },
          { key: 's1', start: 0, end: 80 },
        ],
        sizeBytes: 110,
      },
    ]);
    expect(planOutputParts(objs(99, 100), MIN).map((p) => [p.kind, sizeOf(p)])).toEqual([['upload', 199]]);
    // One byte more and the last object can be copied in a range.
    expect(planOutputParts(objs(99, 101), MIN).map((p) => [p.kind, sizeOf(p)])).toEqual([
      ['upload', 100],
      ['copy', 100],
    ]);
    // The sizes of the finding, in MiB: 3 then 4 is one merged part of 7, no copy.
    const MiB = 1024 * 1024;
    const plan = planOutputParts(
      [
        { key: 'seg0', sizeBytes: 3 * MiB },
        { key: 'seg1', sizeBytes: 4 * MiB },
      ],
      5 * MiB,
      5 * 1024 * MiB,
    );
    expect(plan.map((p) => [p.kind, sizeOf(p)])).toEqual([['upload', 7 * MiB]]);
  });

  it('keeps the rules on every sequence of up to four sizes around MIN', () => {
    const around = [0, 1, 70, 99, 100, 101, 199, 201];
    let sequences = 0;
    const walk = (prefix: number[]) => {
      if (prefix.length > 0) {
        const o = objs(...prefix);
        expectSound(o, planOutputParts(o, MIN));
        const plan = planOutputParts(o, MIN, 200);
        expectSound(o, plan);
        for (const p of plan) expect(sizeOf(p)).toBeLessThanOrEqual(200);
        sequences++;
      }
      if (prefix.length < 4) for (const n of around) walk([...prefix, n]);
    };
    walk([]);
    expect(sequences).toBe(8 + 8 ** 2 + 8 ** 3 + 8 ** 4);
  });

  it('splits a copy larger than the largest part into nearly equal ranges', () => {
    const MAX = 1_000;
    const o = objs(2_500, 30, 1_000, 4_003);
    const plan = planOutputParts(o, MIN, MAX);
    expectSound(o, plan);
    expect(plan.map((p) => [p.kind, sizeOf(p)])).toEqual([
      ['copy', 833],
      ['copy', 833],
      ['copy', 834],
      ['upload', 100],
      ['copy', 930],
      ['copy', 800],
      ['copy', 801],
      ['copy', 800],
      ['copy', 801],
      ['copy', 801],
    ]);
    expect(() => planOutputParts(o, MIN, 150)).toThrow(/at least twice minPartBytes/);
  });

  it('keeps the rules on generated sizes', () => {
    let seed = 11;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let t = 0; t < 1_000; t++) {
      const n = Math.floor(rnd() * 12);
      const o = objs(...Array.from({ length: n }, () => Math.floor(rnd() ** 2 * 400)));
      expectSound(o, planOutputParts(o, MIN));
      const plan = planOutputParts(o, MIN, 250);
      expectSound(o, plan);
      for (const p of plan) expect(sizeOf(p)).toBeLessThanOrEqual(250);
    }
  });
});

describe('inputObjectKind', () => {
  it.each([
    ['0000-a.jsonl', 'input'],
    ['part-00001.JSONL', 'input'],
    ['events.ndjson', 'input'],
    ['_SUCCESS', 'ignored'],
    ['_committed_123', 'ignored'],
    ['.part-00000.jsonl.crc', 'ignored'],
    ['part-00000-abc-c000.json', 'other'],
    ['notes.txt', 'other'],
    ['jsonl', 'other'],
    ['date=2026-01-01/part-0.jsonl', 'other'],
    // Folder markers, and paths Hadoop and Spark hide (a first part starting with _ or .).
    ['', 'ignored'],
    ['sub/', 'ignored'],
    ['_temporary/0/part-0.jsonl', 'ignored'],
    ['.spark-staging-1/part-0.jsonl', 'ignored'],
    ['_a.jsonl', 'ignored'],
  ] as const)('%s is %s', (name, kind) => {
    expect(inputObjectKind(name)).toBe(kind);
  });
});

describe('batchStatusOf', () => {
  const job = {
    jobId: 'j',
    inputTag: 'etag:1',
    state: 'running' as const,
    model: 'm',
    ref: 'prod',
    version: 3,
    partsTotal: 10,
    partsDone: 4,
    queued: 4,
    bytesTotal: 1000,
    bytesDone: 250,
    rows: 800,
    failedRows: 8,
    startedAt: '2026-01-01T00:00:00.000Z',
  };
  it('gives rows per second since the start and an ETA from the input bytes done', () => {
    expect(batchStatusOf(job, new Date('2026-01-01T00:00:20.000Z'))).toEqual({
      jobId: 'j',
      inputTag: 'etag:1',
      state: 'running',
      model: 'm',
      ref: 'prod',
      version: 3,
      partsDone: 4,
      partsTotal: 10,
      total: 800,
      succeeded: 792,
      failed: 8,
      rowsPerSecond: 40,
      etaSeconds: 60,
      bytesDone: 250,
      bytesTotal: 1000,
      startedAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:20.000Z',
    });
  });

  it('counts the parts in flight half done: rows/s and ETA of parts that run at once', () => {
    // Two parts in flight of 100 bytes each on average: 100 bytes more done, at 3.2 rows a byte.
    const at20 = new Date('2026-01-01T00:00:20.000Z');
    expect(batchStatusOf({ ...job, queued: 6 }, at20)).toMatchObject({
      total: 800,
      rowsPerSecond: 56,
      etaSeconds: 37,
      bytesDone: 250,
    });
    // Nine parts of 1 MB all at once: the first ends at 11.9 s. Counted alone it said 95 s more (and 1/9 of the
    // rows per second); with the eight in flight half done, 9.5 s.
    const nine = {
      ...job,
      partsTotal: 9,
      queued: 9,
      partsDone: 1,
      bytesTotal: 9e6,
      bytesDone: 1e6,
      rows: 30_000,
    };
    const first = batchStatusOf(nine, new Date('2026-01-01T00:00:11.900Z'));
    expect(first.etaSeconds).toBe(10);
    expect(first.rowsPerSecond).toBe(Math.round((150_000 / 11.9) * 10) / 10);
    expect(batchStatusOf({ ...nine, queued: 1 }, new Date('2026-01-01T00:00:11.900Z')).etaSeconds).toBe(95);
    // Parts handed out beyond the total (a redelivery) are no more than the parts left; the estimate never passes
    // the input.
    const last = batchStatusOf({ ...nine, partsDone: 8, queued: 12, bytesDone: 8.9e6 }, at20);
    expect(last.etaSeconds).toBe(0);
    // A short last part in flight counts as half of what is left, not half of a mean part: never done early.
    const short = batchStatusOf(
      { ...nine, partsDone: 8, queued: 9, bytesTotal: 8.2e6, bytesDone: 8e6 },
      new Date('2026-01-01T00:01:40.000Z'),
    );
    expect(short.etaSeconds).toBe(1);
    // Once ended: rows over time, whatever was in flight.
    expect(batchStatusOf({ ...job, queued: 6, state: 'done' }, at20).rowsPerSecond).toBe(40);
  });

  it('has no ETA before a part is done nor once the job ended; keeps the error of a failed job', () => {
    const start = new Date(job.startedAt);
    expect(batchStatusOf({ ...job, bytesDone: 0, rows: 0, failedRows: 0 }, start)).toMatchObject({
      rowsPerSecond: 0,
    });
    expect(
      batchStatusOf({ ...job, bytesDone: 0 }, new Date('2026-01-01T00:00:01Z')).etaSeconds,
    ).toBeUndefined();
    const failed = batchStatusOf({ ...job, state: 'failed', error: 'e', code: 'C' }, start);
    expect(failed).toMatchObject({ state: 'failed', error: 'e', code: 'C' });
    expect(failed.etaSeconds).toBeUndefined();
  });
});

describe('rows and outcomes', () => {
  it('rejects blank and unparsable rows with a reason; passes the rest to the predictor', () => {
    const parse = (t: string) => JSON.parse(t) as unknown;
    expect(parseRow(3, '   ', parse)).toEqual({
      ok: false,
      index: 3,
      error: 'empty line',
      code: 'EMPTY_LINE',
    });
    const bad = parseRow(4, '{"inputs": [', () => {
      throw new BadRequestError('request body is not valid JSON', 'MALFORMED_JSON');
    });
    expect(bad).toMatchObject({ ok: false, index: 4, code: 'MALFORMED_JSON' });
    expect(parseRow(5, '{"inputs":[]}', parse)).toEqual({ ok: true, index: 5, request: { inputs: [] } });
  });

  it('writes error lines as {"error","code"} and counts them', () => {
    const line = errorLine(new NotFoundError('model x does not exist', 'MODEL_NOT_FOUND'));
    expect(JSON.parse(line)).toEqual({ error: 'model x does not exist', code: 'MODEL_NOT_FOUND' });
    expect(JSON.parse(errorLine(new Error('boom')))).toEqual({ error: 'boom', code: 'INTERNAL' });
    expect(isErrorLine(line)).toBe(true);
    expect(isErrorLine('{"model_name":"x","model_version":"1","outputs":[]}')).toBe(false);
    expect(countOutcomes([line, '{"model_name":"x"}', line])).toEqual({ succeeded: 1, failed: 2 });
  });

  it('validates part messages and their cursors', () => {
    const cursor = { offset: 10, row: 512, failed: 1, segments: [{ fromRow: 0, toRow: 512, sizeBytes: 99 }] };
    expect(PartCursorSchema.parse(cursor)).toEqual(cursor);
    expect(PartCursorSchema.safeParse({ ...cursor, row: -1 }).success).toBe(false);
    expect(
      PartCursorSchema.safeParse({ ...cursor, segments: [{ fromRow: 0, toRow: 0, sizeBytes: 1 }] }).success,
    ).toBe(false);
    const m = { type: 'batch-part', jobId: 'j', inputTag: 'etag:1', index: 0, cursor };
    expect(BatchPartMessageSchema.parse(m)).toEqual(m);
    expect(BatchPartMessageSchema.safeParse({ ...m, jobId: '../x' }).success).toBe(false);
  });
});

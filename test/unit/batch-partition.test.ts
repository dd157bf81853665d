/** The partition of batch inputs into line-aligned byte ranges, read through ranged reads of an in-memory store. */
import { describe, expect, it } from 'vitest';
import { MemoryRangedObjects } from '../../functions/adapters/memory-batch';
import { splitLines } from '../../functions/domain/batch';
import {
  effectivePartBytes,
  type InputObject,
  mapConcurrent,
  type PlannedPart,
  parsePlan,
  partitionInputs,
} from '../../functions/domain/batch-partition';
import { BadRequestError } from '../../functions/domain/errors';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Puts `files` (key → text) and partitions them with a counting store. */
async function cut(
  files: Record<string, string>,
  partBytes: number,
  opts: { scanBytes?: number; maxParts?: number } = {},
) {
  const store = new MemoryRangedObjects();
  const inputs: InputObject[] = [];
  for (const [key, text] of Object.entries(files)) {
    await store.put(key, text);
    inputs.push({ key, sizeBytes: enc(text).length });
  }
  let bytesRead = 0;
  const result = await partitionInputs(inputs, {
    partBytes,
    scanBytes: opts.scanBytes ?? 4,
    ...(opts.maxParts !== undefined ? { maxParts: opts.maxParts } : {}),
    readRange: async (key, start, end) => {
      const b = await store.getRange(key, start, end);
      bytesRead += b?.length ?? 0;
      return b;
    },
  });
  const text = (p: PlannedPart) => dec(enc(files[p.key] ?? '').slice(p.start, p.end));
  return { ...result, bytesRead, texts: result.parts.map(text), store };
}

/** Every rule a partition keeps, whatever the input. */
function expectSound(files: Record<string, string>, parts: readonly PlannedPart[], texts: readonly string[]) {
  const keys = Object.keys(files);
  // Parts cover every object, in key order, contiguous, none empty.
  for (const key of keys) {
    const own = parts.filter((p) => p.key === key);
    let at = 0;
    for (const p of own) {
      expect(p.start).toBe(at);
      expect(p.end).toBeGreaterThan(p.start);
      at = p.end;
    }
    expect(at).toBe(enc(files[key] ?? '').length);
  }
  expect(parts.map((p) => keys.indexOf(p.key))).toEqual(
    [...parts.map((p) => keys.indexOf(p.key))].sort((a, b) => a - b),
  );
  // Each part ends after a line break or at the end of its object: its lines are whole.
  parts.forEach((p, i) => {
    const size = enc(files[p.key] ?? '').length;
    if (p.end < size) expect(texts[i]?.endsWith('\n')).toBe(true);
  });
  // The lines of the parts, in order, are the lines of the objects.
  const fromParts = texts.flatMap((t) => splitLines(t));
  const whole = keys.flatMap((k) => splitLines(files[k] ?? ''));
  expect(fromParts).toEqual(whole);
}

describe('partitionInputs', () => {
  it('moves each nominal cut to the byte after the next line break; a cut after a line break stays', async () => {
    const file = 'abc\ndefgh\nij\nklmnop\n';
    const { parts, texts } = await cut({ f: file }, 4);
    // Nominal cuts 4 (after "abc\n": stays), 8 (→ 10), 12 (→ 13), 16 (→ 20 = the end: dropped).
    expect(parts.map((p) => [p.start, p.end])).toEqual([
      [0, 4],
      [4, 10],
      [10, 13],
      [13, 20],
    ]);
    expect(texts).toEqual(['abc\n', 'defgh\n', 'ij\n', 'klmnop\n']);
    expectSound({ f: file }, parts, texts);
  });

  it('keeps a line longer than a part and than a scan window whole, reading each byte at most once', async () => {
    const long = 'x'.repeat(50);
    const file = `a\n${long}\nb\n${long}${long}\nc`;
    const { parts, texts, bytesRead } = await cut({ f: file }, 7, { scanBytes: 3 });
    expectSound({ f: file }, parts, texts);
    // Whole lines: the long ones are lines of one part each.
    expect(texts.filter((t) => splitLines(t).includes(long))).toHaveLength(1);
    expect(texts.filter((t) => splitLines(t).includes(`${long}${long}`))).toHaveLength(1);
    expect(parts.length).toBeGreaterThan(2);
    expect(texts.at(-1)).toBe('c');
    expect(bytesRead).toBeLessThanOrEqual(enc(file).length);
  });

  it('drops a cut with no line break after it (a last line without newline is a line)', async () => {
    const { parts, texts } = await cut({ f: 'abcdefgh' }, 3);
    expect(parts).toEqual([{ key: 'f', start: 0, end: 8 }]);
    expect(texts).toEqual(['abcdefgh']);
    // Cut 2 moves to 3; cut 4 finds no line break at or after byte 3: dropped, as are the later ones.
    const tail = await cut({ f: 'ab\ncdefghij' }, 2);
    expect(tail.texts).toEqual(['ab\n', 'cdefghij']);
    expect((await cut({ f: 'ab\ncdefghij' }, 4)).texts).toEqual(['ab\ncdefghij']);
  });

  it('cuts CRLF lines after their \\n; blank lines are rows of their part', async () => {
    const file = '{"a":1}\r\n\r\n{"b":2}\r\n\n\n{"c":3}\r\n';
    for (const partBytes of [1, 2, 3, 5, 8, 13, 100]) {
      const { parts, texts } = await cut({ f: file }, partBytes);
      expectSound({ f: file }, parts, texts);
      for (const t of texts) expect(t.endsWith('\n')).toBe(true);
    }
    const { texts } = await cut({ f: file }, 1);
    expect(texts.flatMap((t) => splitLines(t))).toEqual(['{"a":1}', '', '{"b":2}', '', '', '{"c":3}']);
  });

  it('has no part for an empty object, and numbers the parts of several objects in key order', async () => {
    expect((await cut({ f: '' }, 4)).parts).toEqual([]);
    const files = { 'in/a.jsonl': 'a1\na2\na3\n', 'in/b.jsonl': '', 'in/c.jsonl': 'c1\nc2' };
    const { parts, texts } = await cut(files, 3);
    expectSound(files, parts, texts);
    expect(texts).toEqual(['a1\n', 'a2\n', 'a3\n', 'c1\n', 'c2']);
    expect(parts.map((p) => p.key)).toEqual([
      'in/a.jsonl',
      'in/a.jsonl',
      'in/a.jsonl',
      'in/c.jsonl',
      'in/c.jsonl',
    ]);
  });

  it('keeps every rule on generated inputs (random line lengths, blank and CRLF lines, long lines)', async () => {
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let trial = 0; trial < 40; trial++) {
      const files: Record<string, string> = {};
      const nFiles = 1 + Math.floor(rnd() * 3);
      for (let f = 0; f < nFiles; f++) {
        const lines: string[] = [];
        const n = Math.floor(rnd() * 30);
        for (let l = 0; l < n; l++) {
          const kind = rnd();
          const body = kind < 0.15 ? '' : 'é'.repeat(Math.floor(rnd() * (kind > 0.9 ? 60 : 8)));
          lines.push(rnd() < 0.2 ? `${body}\r` : body);
        }
        files[`in/${f}.jsonl`] = lines.join('\n') + (rnd() < 0.5 ? '\n' : '');
      }
      const partBytes = 1 + Math.floor(rnd() * 40);
      const { parts, texts } = await cut(files, partBytes, { scanBytes: 1 + Math.floor(rnd() * 9) });
      expectSound(files, parts, texts);
    }
  });

  it('raises partBytes when the input would need more than maxParts parts', async () => {
    const file = `${'0123456789\n'.repeat(100)}`; // 1 100 bytes
    const { partBytes, parts, texts } = await cut({ f: file }, 10, { maxParts: 8 });
    expect(partBytes).toBe(Math.ceil(1100 / 8));
    expect(parts.length).toBeLessThanOrEqual(8);
    expectSound({ f: file }, parts, texts);
    expect(effectivePartBytes([{ key: 'f', sizeBytes: 1100 }], 10, 8)).toBe(138);
    expect(effectivePartBytes([{ key: 'f', sizeBytes: 1100 }], 200, 8)).toBe(200);
    // Several objects: the count is over all of them.
    const inputs = [
      { key: 'a', sizeBytes: 101 },
      { key: 'b', sizeBytes: 101 },
      { key: 'c', sizeBytes: 0 },
    ];
    const p = effectivePartBytes(inputs, 10, 5);
    expect(Math.ceil(101 / p) * 2).toBeLessThanOrEqual(5);
    expect(Math.ceil(101 / (p - 1)) * 2).toBeGreaterThan(5);
  });

  it('refuses an input of more non-empty objects than maxParts', () => {
    const inputs = Array.from({ length: 4 }, (_, i) => ({ key: `k${i}`, sizeBytes: 5 }));
    try {
      effectivePartBytes(inputs, 1, 3);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BadRequestError);
      expect((e as BadRequestError).code).toBe('TOO_MANY_INPUT_OBJECTS');
    }
  });

  it('fails when an object changed under the partition (a read comes back short)', async () => {
    await expect(
      partitionInputs([{ key: 'f', sizeBytes: 100 }], {
        partBytes: 10,
        readRange: async () => new Uint8Array(2),
      }),
    ).rejects.toThrow(/changed while the job started/);
  });
});

describe('plan.json and mapConcurrent', () => {
  it('parses a plan and refuses a malformed one', () => {
    const plan = {
      inputTag: 'etag:1',
      partBytes: 10,
      bytesTotal: 20,
      parts: [{ key: 'k', start: 0, end: 20 }],
    };
    expect(parsePlan(JSON.stringify(plan))).toEqual(plan);
    expect(() => parsePlan('{"inputTag":"x"}')).toThrow();
  });

  it('runs at most `limit` calls at once and keeps the order of results', async () => {
    let running = 0;
    let most = 0;
    const out = await mapConcurrent([5, 1, 4, 2, 3, 0], 2, async (n) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, n));
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30, 0]);
    expect(most).toBe(2);
    expect(await mapConcurrent([], 4, async () => 1)).toEqual([]);
  });
});

/**
 * The row scanner (functions/domain/fast-rows.ts) against the general path (the line decoded, parseRow with
 * parseInferenceBody, validateInferenceRequest): on many generated lines — edge numbers, whitespace, key orders,
 * escapes, unicode and invalid UTF-8 in ids, extra fields, wrong shapes and datatypes, bad JSON — a line the scanner
 * accepts is one the general path accepts, with the same id, shapes and bit-identical FP32 values; a line it does
 * not accept is handed on as the text the general path decodes.
 */
import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';
import { byteLineBlocks, decodeLines, parseRow } from '../../functions/domain/batch';
import { parseInferenceBody } from '../../functions/domain/body-parser';
import { createRowScanner, rowFormOf, type ScannedBlock } from '../../functions/domain/fast-rows';
import { compileSignature, validateInferenceRequest } from '../../functions/domain/inference-validation';
import type { TensorSpec } from '../../functions/domain/types';
import { seededRandom } from '../../functions/local/onnx-builder';

const enc = new TextEncoder();

/** One block of lines, as byteLineBlocks makes it. */
async function blockOf(lines: readonly Uint8Array[]) {
  const parts: Uint8Array[] = [];
  for (const l of lines) parts.push(l, Uint8Array.of(0x0a));
  async function* chunks() {
    for (const p of parts) yield p;
  }
  const blocks = [];
  for await (const b of byteLineBlocks(chunks(), lines.length + 1)) blocks.push(b);
  expect(blocks).toHaveLength(1);
  return blocks[0]!.lines;
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** Checks every line of `lines` against the general path; returns how many the scanner accepted. */
async function compare(specs: TensorSpec[], lines: readonly Uint8Array[]): Promise<number> {
  const form = rowFormOf(specs, LIMITS.maxInferenceIdLength);
  if (!form) throw new Error('no row form');
  const sig = compileSignature({ inputs: specs, outputs: [] }, "model 'm' version 1");
  const block = await blockOf(lines);
  const texts = decodeLines(block);
  const scanned: ScannedBlock = createRowScanner(form).scanBlock(block);
  let accepted = 0;
  for (let i = 0; i < lines.length; i++) {
    const where = `line ${i}: ${texts[i]!.slice(0, 200)}`;
    const rows = scanned.rows[i]!;
    if (rows === 0) {
      expect(scanned.texts[i], where).toBe(texts[i]);
      continue;
    }
    accepted++;
    const general = parseRow(i, texts[i]!, parseInferenceBody);
    expect(general.ok, where).toBe(true);
    if (!general.ok) continue;
    const req = validateInferenceRequest(general.request, sig);
    expect(req.id, where).toBe(scanned.ids[i]);
    expect(req.outputs, where).toBeUndefined();
    form.inputs.forEach((spec, k) => {
      const t = req.feeds[spec.name]!;
      expect(t.datatype).toBe('FP32');
      expect(t.shape, where).toEqual([rows, ...spec.rowDims]);
      const start = scanned.offsets[i * form.inputs.length + k]!;
      const values = scanned.values[k]!.subarray(start, start + rows * spec.perRow);
      expect(bits(values), where).toEqual(bits(t.data as Float32Array));
    });
  }
  return accepted;
}

/** Numbers' texts: edge cases first, then random ones of every form. */
const EDGE_NUMBERS = [
  '0',
  '-0',
  '0.0',
  '-0.0',
  '1e-7',
  '0.1',
  '-0.1',
  '0.5',
  '123456789012345678',
  '9007199254740993',
  '9007199254740992',
  '1.7976931348623157e308',
  '5e-324',
  '-5e-324',
  '1e-45',
  '1.4e-45',
  '7e-46',
  '1E5',
  '1e+5',
  '-2.5E-3',
  '3.4028234663852886e38',
  '-3.4028234663852886e38',
  '3.4028235e38',
  '3.4028235677973366e38',
  '1e39',
  '1e400',
  '-1e-400',
  '0e400',
  '1.00000000000000011102230246251565404236316680908203125',
  '0.30000000000000004',
  '123456789.123456789',
  '1234567890123456.7',
  '0.000001',
  '0.0000000000000000000000001',
  '1e22',
  '1e23',
  '1e-22',
  '1e-23',
  '4.35',
  '16777217',
  '33554433',
  '0.1e1',
  '10e-1',
  '100000000000000000000000000000',
  '1.5e-100000000',
  '2e100000000',
];

/** Texts that are not JSON numbers (the line is bad JSON, or a string, or null …). */
const NOT_NUMBERS = [
  '00',
  '01',
  '1.',
  '.5',
  '+1',
  '-',
  '1e',
  '1e+',
  'NaN',
  'Infinity',
  '"1"',
  'null',
  'true',
  '0x10',
  '1_0',
];

function randomNumber(rand: () => number): string {
  const r = rand();
  if (r < 0.3) return EDGE_NUMBERS[Math.floor(rand() * EDGE_NUMBERS.length)]!;
  if (r < 0.6) return String(Math.round((rand() * 2 - 1) * 1e6) / 1e6);
  if (r < 0.75) {
    const digits = 1 + Math.floor(rand() * 22);
    let s = String(1 + Math.floor(rand() * 9));
    for (let i = 1; i < digits; i++) s += String(Math.floor(rand() * 10));
    const point = Math.floor(rand() * (digits + 1));
    if (point > 0 && point < digits) s = `${s.slice(0, point)}.${s.slice(point)}`;
    return rand() < 0.5 ? `-${s}` : s;
  }
  if (r < 0.9) {
    const m = (rand() * 10).toFixed(Math.floor(rand() * 12));
    const e = Math.floor(rand() * 90) - 45;
    return `${rand() < 0.3 ? '-' : ''}${m}${rand() < 0.5 ? 'e' : 'E'}${e >= 0 && rand() < 0.5 ? '+' : ''}${e}`;
  }
  return String(Math.fround((rand() * 2 - 1) * 10 ** (Math.floor(rand() * 20) - 10)));
}

const WS = ['', ' ', '  ', '\t', ' \t '];

describe('the row scanner against the general path', () => {
  const spec: TensorSpec[] = [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }];

  it('reads the common form of the bench rows, every value bit-identical', async () => {
    const rand = seededRandom(1);
    const lines = Array.from({ length: 300 }, (_, i) =>
      enc.encode(
        JSON.stringify({
          id: `r${i}`,
          inputs: [
            {
              name: 'x',
              datatype: 'FP32',
              shape: [1, 4],
              data: Array.from({ length: 4 }, () => Math.round((rand() * 2 - 1) * 1e6) / 1e6),
            },
          ],
        }),
      ),
    );
    expect(await compare(spec, lines)).toBe(300);
  });

  it('edge numbers: correctly rounded like JSON.parse, then FP32; beyond the FP32 range left to the general path', async () => {
    const lines = EDGE_NUMBERS.map((n) =>
      enc.encode(
        `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[${n},${n}, ${n} ,-${n.replace(/^-/, '')}]}]}`,
      ),
    );
    const accepted = await compare(spec, lines);
    // Everything in the FP32 range is read by the scanner; these six are beyond it.
    const beyond = [
      '1.7976931348623157e308',
      '3.4028235e38',
      '3.4028235677973366e38',
      '1e39',
      '1e400',
      '2e100000000',
    ];
    expect(accepted).toBe(EDGE_NUMBERS.length - beyond.length);
  });

  it('random numbers, whitespace, key orders, ids and rows: the same answers', async () => {
    const rand = seededRandom(7);
    const lines: Uint8Array[] = [];
    for (let i = 0; i < 3000; i++) {
      const w = () => WS[Math.floor(rand() * WS.length)]!;
      const rows = rand() < 0.8 ? 1 : 1 + Math.floor(rand() * 3);
      const values = Array.from({ length: 4 * rows }, () => randomNumber(rand));
      const fields: [string, string][] = [
        ['name', '"x"'],
        ['datatype', '"FP32"'],
        ['shape', `[${w()}${rows}${w()},${w()}4${w()}]`],
        ['data', `[${w()}${values.join(`${w()},${w()}`)}${w()}]`],
      ];
      if (rand() < 0.3) fields.sort(() => rand() - 0.5);
      const input = `{${w()}${fields.map(([k, v]) => `"${k}"${w()}:${w()}${v}`).join(`${w()},${w()}`)}${w()}}`;
      const top: string[] = [`"inputs"${w()}:${w()}[${w()}${input}${w()}]`];
      if (rand() < 0.7) top.push(`"id"${w()}:${w()}${JSON.stringify(`row-${i}`)}`);
      if (rand() < 0.5) top.reverse();
      lines.push(enc.encode(`${w()}{${w()}${top.join(`${w()},${w()}`)}${w()}}${w()}`));
    }
    const accepted = await compare(spec, lines);
    expect(accepted).toBeGreaterThan(2000);
  });

  it('ids: escapes, unicode, invalid UTF-8, empty and too long', async () => {
    const line = (idJson: string) =>
      `{"id":${idJson},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`;
    const texts = [
      '"a\\"b"',
      '"\\u00e9t\\u00e9"',
      '"\\ud800"',
      '"é€😀"',
      '"\u2028"',
      '""',
      JSON.stringify('i'.repeat(256)),
      JSON.stringify('i'.repeat(257)),
      JSON.stringify('é'.repeat(256)),
      JSON.stringify('😀'.repeat(128)),
      JSON.stringify('😀'.repeat(129)),
      '"\ufeffbom"',
      '"tab\there"',
      '1',
      'null',
      '["a"]',
    ];
    const lines = texts.map((t) => enc.encode(line(t)));
    // Invalid UTF-8 in the id (a lone continuation byte, a truncated sequence), and a BOM before the line.
    const prefix = enc.encode('{"id":"a');
    const suffix = enc.encode('","inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}');
    for (const bad of [[0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xff]]) {
      lines.push(Uint8Array.from([...prefix, ...bad, ...suffix]));
    }
    lines.push(Uint8Array.from([0xef, 0xbb, 0xbf, ...enc.encode(line('"bom"'))]));
    const accepted = await compare(spec, lines);
    // é€😀, U+2028, 256 × 'i', 256 × 'é', 128 × '😀' and a BOM inside the id are read; the rest goes the general way.
    expect(accepted).toBe(6);
  });

  it('anything but the common form goes the general path (errors included)', async () => {
    const ok = '"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]';
    const texts = [
      `{"inputs":[{${ok}}]}`,
      `{"inputs":[{${ok},"parameters":{}}]}`,
      `{"inputs":[{${ok}}],"parameters":{"binary_data_output":true}}`,
      `{"inputs":[{${ok}}],"outputs":[{"name":"y"}]}`,
      `{"inputs":[{${ok}}],"id":"a","id":"b"}`,
      `{"inputs":[{${ok},"name":"x"}]}`,
      `{"inputs":[{${ok}}]} x`,
      `{"inputs":[{${ok}}]`,
      `{"inputs":[{${ok}},]}`,
      `{"inputs":[{${ok}},{${ok}}]}`,
      `{"inputs":[]}`,
      '{"inputs":[{"name":"x","datatype":"FP64","shape":[1,4],"data":[1,2,3,4]}]}',
      '{"inputs":[{"name":"y","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,5],"data":[1,2,3,4,5]}]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3]}]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[0,4],"data":[]}]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[4],"data":[1,2,3,4]}]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[1.0,4],"data":[1,2,3,4]}]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[[1,2,3,4]]}]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4],"data":[1,2,3,4]}]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4]}]}',
      '{"inputs":[{"name":"\\u0078","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}',
      '{"in\\u0070uts":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}',
      '[]',
      '',
      '   ',
      '{}',
      ...NOT_NUMBERS.map(
        (n) => `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,${n}]}]}`,
      ),
    ];
    expect(
      await compare(
        spec,
        texts.map((t) => enc.encode(t)),
      ),
    ).toBe(1);
  });

  it('a line cut anywhere is never accepted half-read', async () => {
    // Fraction digits of odd and even counts: the scanner reads them two at a time.
    for (const full of [
      '{"id":"r1","inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[-0.25,1e-7,3.5E+2,0.000001]}]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[-0.1,0.12,-12.123,0.1234567]}]}',
    ]) {
      const lines = Array.from({ length: full.length }, (_, n) => enc.encode(full.slice(0, n)));
      expect(await compare(spec, lines)).toBe(0);
      expect(await compare(spec, [enc.encode(full)])).toBe(1);
    }
  });

  it('several inputs, in any order, with their own rows and dimensions', async () => {
    const specs: TensorSpec[] = [
      { name: 'a', datatype: 'FP32', shape: [-1, 2] },
      { name: 'b', datatype: 'FP32', shape: [-1, 3, 2] },
    ];
    const a = (rows: number) =>
      `{"name":"a","datatype":"FP32","shape":[${rows},2],"data":[${'1.5,'.repeat(2 * rows - 1)}2]}`;
    const b = (rows: number) =>
      `{"name":"b","data":[${'0.1,'.repeat(6 * rows - 1)}7],"shape":[${rows},3,2],"datatype":"FP32"}`;
    const texts = [
      `{"inputs":[${a(1)},${b(1)}]}`,
      `{"inputs":[${b(2)},${a(2)}]}`,
      `{"inputs":[${a(1)},${b(2)}]}`,
      `{"inputs":[${a(1)}]}`,
      `{"inputs":[${a(1)},${a(1)}]}`,
      '{"inputs":[{"data":[1,2],"name":"a","shape":[1,2],"datatype":"FP32"},{"name":"b","datatype":"FP32","shape":[1,3,2],"data":[1,2,3,4,5,6]}]}',
    ];
    // Rows that differ between inputs, a missing input, a repeated one, and data before the name of one input of
    // several go the general path.
    expect(
      await compare(
        specs,
        texts.map((t) => enc.encode(t)),
      ),
    ).toBe(2);
  });

  it('has no row form for inputs it does not read', () => {
    const of = (s: Partial<TensorSpec>) =>
      rowFormOf([{ name: 'x', datatype: 'FP32', shape: [-1, 4], ...s } as TensorSpec], 256);
    expect(of({})).toBeDefined();
    expect(of({ shape: [1, 4] })).toBeDefined();
    expect(of({ datatype: 'INT64' })).toBeUndefined();
    expect(of({ shape: [-1, -1] })).toBeUndefined();
    expect(of({ shape: [] })).toBeUndefined();
    expect(of({ name: 'a"b' })).toBeUndefined();
    expect(of({ name: 'é' })).toBeUndefined();
  });

  it('is self-contained: its source alone makes a working scanner', async () => {
    const make = new Function(`return (${createRowScanner.toString()})`)() as typeof createRowScanner;
    const form = rowFormOf(spec, 256)!;
    const block = await blockOf([
      enc.encode('{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,0.1]}]}'),
    ]);
    const scanned = make(form).scanBlock(block);
    expect(scanned.rows[0]).toBe(1);
    expect(Array.from(scanned.values[0]!.subarray(0, 4))).toEqual([1, 2, 3, Math.fround(0.1)]);
  });
});

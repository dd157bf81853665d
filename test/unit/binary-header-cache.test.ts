import { describe, expect, it } from 'vitest';
import { BinaryHeaderCache } from '../../functions/domain/binary-header-cache';
import {
  BinaryAnswerEncoder,
  encodeResponseAfter,
  jsonString,
  parseBinaryRequest,
  type ResponseOutput,
} from '../../functions/domain/binary-tensors';
import { BadRequestError } from '../../functions/domain/errors';
import {
  type CompiledSignature,
  compileSignature,
  type ValidatedRequest,
  validateInferenceRequest,
} from '../../functions/domain/inference-validation';
import { seededRandom } from '../../functions/local/onnx-builder';
import { binaryBody as body } from '../helpers/binary-body';
import { codeOf as anyCodeOf } from '../helpers/errors';

const codeOf = (fn: () => unknown) => anyCodeOf(fn, BadRequestError);
const utf8 = new TextEncoder();

const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
const bytesOf = (strings: string[]) => {
  const parts: number[] = [];
  for (const s of strings) {
    const b = utf8.encode(s);
    parts.push(b.length & 0xff, (b.length >>> 8) & 0xff, 0, 0, ...b);
  }
  return Uint8Array.from(parts);
};

const sigOf = (inputs: { name: string; datatype: string; shape: number[] }[]): CompiledSignature =>
  compileSignature(
    { inputs, outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] } as never,
    "model 'm' version 1",
  );

/** What a request validates to when parsed in full, as before any header was kept. */
const fresh = (b: Uint8Array, hl: number, sig: CompiledSignature): ValidatedRequest => {
  const parsed = parseBinaryRequest(b, hl, undefined, false);
  return validateInferenceRequest(parsed.request, sig, parsed.binaryInputs);
};

/** A validated request as plain values (typed arrays as arrays), to compare two of them. */
const plain = (v: ValidatedRequest) => ({
  id: v.id,
  outputs: v.outputs,
  feeds: Object.fromEntries(
    Object.entries(v.feeds).map(([n, t]) => [
      n,
      { datatype: t.datatype, shape: [...t.shape], data: Array.from(t.data as ArrayLike<unknown>) },
    ]),
  ),
});

const sig = sigOf([
  { name: 'x', datatype: 'FP32', shape: [-1, 2] },
  { name: 's', datatype: 'BYTES', shape: [-1] },
]);
const header = (id = 'r1') => ({
  id,
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } },
    { name: 's', datatype: 'BYTES', shape: [2], parameters: { binary_data_size: 13 } },
  ],
  outputs: [{ name: 'y', parameters: { binary_data: true } }],
});

describe('BinaryHeaderCache', () => {
  it('keeps a header seen twice in a row and decodes the next requests of that header from it, each with its own bytes', () => {
    const cache = new BinaryHeaderCache();
    const [b1, hl] = body(header(), [f32([1, 2, 3, 4]), bytesOf(['ab', 'cde'])]);
    const first = cache.parse(b1, hl).validate(sig);
    expect(plain(first)).toEqual(plain(fresh(b1, hl, sig)));
    expect(cache.size).toBe(0);
    const [b0] = body(header(), [f32([0, 0, 0, 0]), bytesOf(['', 'abcde'])]);
    expect(plain(cache.parse(b0, hl).validate(sig))).toEqual(plain(fresh(b0, hl, sig)));
    expect(cache.size).toBe(1);

    // Same header bytes, other tensors (BYTES elements of the same total size).
    const [b2] = body(header(), [f32([5, 6, 7, 8]), bytesOf(['xyz', 'uv'])]);
    const second = cache.parse(b2, hl);
    const v = second.validate(sig);
    expect(plain(v)).toEqual(plain(fresh(b2, hl, sig)));
    expect(Array.from(v.feeds.x!.data as Float32Array)).toEqual([5, 6, 7, 8]);
    expect(v.feeds.s!.data).toEqual(['xyz', 'uv']);
    expect(v.id).toBe('r1');
    expect(v.outputs).toEqual(['y']);
    // The kept parse: the header as sent, frozen, without the first request's tensors.
    expect(Object.isFrozen(second.request)).toBe(true);
    expect(Object.isFrozen(second.request.inputs[0])).toBe(true);
    expect(second.request.inputs[0]).not.toHaveProperty('data');
    expect(second.request.outputs?.[0]?.parameters).toEqual({ binary_data: true });
    expect(cache.size).toBe(1);
  });

  it('reads a view of aligned data and a copy of data that is not, whatever the first request was', () => {
    const cache = new BinaryHeaderCache();
    const h = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } }],
    };
    const only = sigOf([{ name: 'x', datatype: 'FP32', shape: [-1, 2] }]);
    const hl = utf8.encode(JSON.stringify(h)).length;
    // Pads that put the data at every alignment, two requests each.
    for (const pad of [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]) {
      const [b] = body(h, [f32([pad, -pad])], pad);
      const v = cache.parse(b, hl).validate(only);
      const data = v.feeds.x!.data as Float32Array;
      expect(Array.from(data)).toEqual([pad, -pad]);
      expect(data.buffer === b.buffer).toBe((b.byteOffset + hl) % 4 === 0);
    }
    expect(cache.size).toBe(1);
  });

  it('checks every request’s own bytes: BOOL bytes and BYTES elements of a known header', () => {
    const cache = new BinaryHeaderCache();
    const bools = sigOf([{ name: 'b', datatype: 'BOOL', shape: [3] }]);
    const h = { inputs: [{ name: 'b', datatype: 'BOOL', shape: [3], parameters: { binary_data_size: 3 } }] };
    const [ok, hl] = body(h, [Uint8Array.of(1, 0, 1)]);
    cache.parse(ok, hl).validate(bools);
    cache.parse(ok, hl).validate(bools);
    expect(cache.size).toBe(1);
    const [bad] = body(h, [Uint8Array.of(1, 2, 0)]);
    expect(codeOf(() => cache.parse(bad, hl).validate(bools))).toBe('INVALID_BINARY_DATA');

    const strings = sigOf([{ name: 's', datatype: 'BYTES', shape: [2] }]);
    const hs = {
      inputs: [{ name: 's', datatype: 'BYTES', shape: [2], parameters: { binary_data_size: 11 } }],
    };
    const [good, hsl] = body(hs, [bytesOf(['a', 'bc'])]);
    cache.parse(good, hsl).validate(strings);
    cache.parse(good, hsl).validate(strings);
    expect(cache.size).toBe(2);
    // The same 11 bytes as one element of 7 bytes: the shape asks for two.
    const [one] = body(hs, [bytesOf(['abcdefg'])]);
    expect(codeOf(() => cache.parse(one, hsl).validate(strings))).toBe('INVALID_BINARY_DATA');
    // Invalid UTF-8 in an element.
    const [notUtf8] = body(hs, [Uint8Array.of(1, 0, 0, 0, 0xff, 2, 0, 0, 0, 0x61, 0x62)]);
    expect(codeOf(() => cache.parse(notUtf8, hsl).validate(strings))).toBe('INVALID_BINARY_DATA');
  });

  it('parses in full a known header whose body length differs, with the error a first parse gives', () => {
    const cache = new BinaryHeaderCache();
    const [b, hl] = body(header(), [f32([1, 2, 3, 4]), bytesOf(['ab', 'cde'])]);
    cache.parse(b, hl).validate(sig);
    cache.parse(b, hl).validate(sig);
    expect(cache.size).toBe(1);
    const [longer] = body(header(), [f32([1, 2, 3, 4]), bytesOf(['ab', 'cde']), Uint8Array.of(0)]);
    expect(() => cache.parse(longer, hl)).toThrow(/after the inference header.*add up to 29/);
    const shorter = b.subarray(0, b.length - 1);
    expect(codeOf(() => cache.parse(shorter, hl))).toBe('INVALID_BINARY_DATA');
  });

  it('validates a known header against each signature once: another version’s refusal is its own', () => {
    const cache = new BinaryHeaderCache();
    const [b, hl] = body(header(), [f32([1, 2, 3, 4]), bytesOf(['ab', 'cde'])]);
    cache.parse(b, hl).validate(sig);
    cache.parse(b, hl).validate(sig);
    const other = sigOf([
      { name: 'x', datatype: 'FP64', shape: [-1, 2] },
      { name: 's', datatype: 'BYTES', shape: [-1] },
    ]);
    expect(codeOf(() => cache.parse(b, hl).validate(other))).toBe('DATATYPE_MISMATCH');
    expect(codeOf(() => cache.parse(b, hl).validate(other))).toBe('DATATYPE_MISMATCH');
    const fewer = sigOf([{ name: 'x', datatype: 'FP32', shape: [-1, 2] }]);
    expect(codeOf(() => cache.parse(b, hl).validate(fewer))).toBe('UNKNOWN_INPUT');
    // The first signature still takes it.
    expect(plain(cache.parse(b, hl).validate(sig))).toEqual(plain(fresh(b, hl, sig)));
    expect(cache.size).toBe(1);
  });

  it('keeps no header that failed validation, carried JSON inputs, was the raw form or is too long', () => {
    const cache = new BinaryHeaderCache(16, 300);
    const [b, hl] = body(header(), [f32([1, 2, 3, 4]), bytesOf(['ab', 'cde'])]);
    for (let i = 0; i < 2; i++) {
      expect(() =>
        cache.parse(b, hl).validate(sigOf([{ name: 'x', datatype: 'FP32', shape: [-1, 2] }])),
      ).toThrow();
    }
    expect(cache.size).toBe(0);

    const mixed = {
      inputs: [
        { name: 'x', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } },
        { name: 's', datatype: 'BYTES', shape: [1], data: ['json'] },
      ],
    };
    const [m, ml] = body(mixed, [f32([1, 2])]);
    for (let i = 0; i < 2; i++) expect(cache.parse(m, ml).validate(sig).feeds.s!.data).toEqual(['json']);
    expect(cache.size).toBe(0);

    const only = sigOf([{ name: 'x', datatype: 'FP32', shape: [-1, 2] }]);
    const raw = f32([1, 2]);
    for (let i = 0; i < 2; i++) {
      const rawFeed = cache.parse(raw, 0, only.inputs.get('x')).validate(only).feeds.x?.data as Float32Array;
      expect(Array.from(rawFeed)).toEqual([1, 2]);
    }
    expect(cache.size).toBe(0);

    const long = { ...header(), parameters: { note: 'n'.repeat(300) } };
    const [l, ll] = body(long, [f32([1, 2, 3, 4]), bytesOf(['ab', 'cde'])]);
    cache.parse(l, ll).validate(sig);
    cache.parse(l, ll).validate(sig);
    expect(cache.size).toBe(0);
    cache.parse(b, hl).validate(sig);
    cache.parse(b, hl).validate(sig);
    expect(cache.size).toBe(1);
  });

  it('keeps the headers of clients that take turns, each from its second request on', () => {
    const cache = new BinaryHeaderCache();
    // Clients whose headers differ beyond their ids (requests of one client with other ids: the next test).
    const clients = ['a', 'b', 'c'].map((client) =>
      body({ ...header(client), parameters: { client } }, [f32([1, 2, 3, 4]), bytesOf(['ab', 'cde'])]),
    );
    for (const [b, hl] of clients) cache.parse(b, hl).validate(sig);
    expect(cache.size).toBe(0);
    for (const [b, hl] of clients) cache.parse(b, hl).validate(sig);
    expect(cache.size).toBe(3);
    for (const [b, hl] of clients) {
      const parsed = cache.parse(b, hl);
      expect(Object.isFrozen(parsed.request)).toBe(true);
      expect(plain(parsed.validate(sig))).toEqual(plain(fresh(b, hl, sig)));
    }
    expect(cache.size).toBe(3);
  });

  it('keeps nothing for a client whose headers all differ beyond the id, and answers each as a first parse', () => {
    const cache = new BinaryHeaderCache();
    for (let i = 0; i < 50; i++) {
      const h = { ...header(`request-${i}`), parameters: { attempt: i } };
      const [b, hl] = body(h, [f32([i, -i, i, -i]), bytesOf(['ab', 'cde'])]);
      expect(plain(cache.parse(b, hl).validate(sig))).toEqual(plain(fresh(b, hl, sig)));
    }
    expect(cache.size).toBe(0);
  });

  it('keeps the header of a client that sends a new id each time: each request decoded from it, with its own id', () => {
    const cache = new BinaryHeaderCache();
    const ids = Array.from({ length: 40 }, (_, i) =>
      i % 3 === 0 ? `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` : `r-${'x'.repeat(i)}`,
    );
    for (const [i, id] of ids.entries()) {
      const [b, hl] = body(header(id), [f32([i, -i, i, -i]), bytesOf(['ab', 'cde'])]);
      const parsed = cache.parse(b, hl);
      // From the third request on, decoded from the header kept at the second: frozen, with its own id.
      expect(Object.isFrozen(parsed.request), id).toBe(i >= 2);
      expect(parsed.request.id).toBe(id);
      const v = parsed.validate(sig);
      expect(plain(v)).toEqual(plain(fresh(b, hl, sig)));
      expect(v.id).toBe(id);
    }
    expect(cache.size).toBe(1);
    // The kept header's own id still answers from it; ids that are not plain (an escape, beyond ASCII, too long)
    // and a header without id are parsed in full, each as a first parse.
    const others = ['r-', 'quote"d', 'caf\u00e9', 'café', 'n'.repeat(257), undefined];
    for (const id of others) {
      const h = id === undefined ? { ...header(), id: undefined } : header(id);
      const [b, hl] = body(h, [f32([1, 2, 3, 4]), bytesOf(['ab', 'cde'])]);
      const parsed = cache.parse(b, hl);
      expect(Object.isFrozen(parsed.request), String(id)).toBe(id === 'r-');
      const outcome = (fn: () => ValidatedRequest) => {
        try {
          return plain(fn());
        } catch (e) {
          return { error: (e as BadRequestError).code };
        }
      };
      expect(outcome(() => parsed.validate(sig))).toEqual(outcome(() => fresh(b, hl, sig)));
    }
  });

  it('merges no ids where the id is written twice or is not the top-level one as written', () => {
    const cache = new BinaryHeaderCache();
    // The id is also an input's name: its token is twice in the header, so only its own bytes count.
    const same = (id: string) => body(header(id), [f32([1, 2, 3, 4]), bytesOf(['ab', 'cde'])]);
    for (let i = 0; i < 3; i++) cache.parse(...same('x')).validate(sig);
    expect(cache.size).toBe(1);
    expect(Object.isFrozen(cache.parse(...same('x')).request)).toBe(true);
    const [other, ohl] = same('w');
    const parsed = cache.parse(other, ohl);
    expect(Object.isFrozen(parsed.request)).toBe(false);
    expect(parsed.validate(sig).id).toBe('w');
    // The top-level id written with an escape, its value plain elsewhere (a parameter): changing that other place
    // is another header, never the kept one with another id.
    const escaped = (tag: string) => {
      const text = JSON.stringify({ ...header('k'), parameters: { tag } }).replace(
        '"id":"k"',
        '"id":"\\u006b"',
      );
      const hb = utf8.encode(text);
      const all = new Uint8Array(hb.length + 29);
      all.set(hb);
      all.set(f32([1, 2, 3, 4]), hb.length);
      all.set(bytesOf(['ab', 'cde']), hb.length + 16);
      return [all, hb.length] as const;
    };
    const fresh2 = new BinaryHeaderCache();
    for (let i = 0; i < 3; i++) expect(fresh2.parse(...escaped('k')).validate(sig).id).toBe('k');
    expect(fresh2.size).toBe(1);
    const changed = fresh2.parse(...escaped('m'));
    expect(Object.isFrozen(changed.request)).toBe(false);
    expect(changed.request.parameters).toEqual({ tag: 'm' });
    expect(changed.validate(sig).id).toBe('k');
  });

  it('keeps at most its capacity, replacing the oldest, and each kept header still answers as a first parse', () => {
    const cache = new BinaryHeaderCache(4);
    const requests = Array.from({ length: 7 }, (_, i) =>
      body({ ...header(`r${i}`), parameters: { client: i } }, [f32([i, i, i, i]), bytesOf(['ab', 'cde'])]),
    );
    for (const [b, hl] of requests) {
      cache.parse(b, hl).validate(sig);
      cache.parse(b, hl).validate(sig);
    }
    expect(cache.size).toBe(4);
    for (const [b, hl] of [...requests, ...requests]) {
      expect(plain(cache.parse(b, hl).validate(sig))).toEqual(plain(fresh(b, hl, sig)));
    }
    expect(cache.size).toBe(4);
  });

  it('answers as a first parse would, for random requests sent again and again (property)', () => {
    const rand = seededRandom(42);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    const cache = new BinaryHeaderCache(3);
    const wide = sigOf([
      { name: 'a', datatype: 'INT32', shape: [-1] },
      { name: 'b', datatype: 'UINT8', shape: [-1] },
    ]);
    const narrow = sigOf([
      { name: 'a', datatype: 'INT32', shape: [2] },
      { name: 'b', datatype: 'UINT8', shape: [-1] },
    ]);
    const outcome = (fn: () => ValidatedRequest) => {
      try {
        return plain(fn());
      } catch (e) {
        return { error: (e as BadRequestError).code };
      }
    };
    let hits = 0;
    for (let i = 0; i < 600; i++) {
      const n = pick([1, 2, 3]);
      const h = {
        // Ids that differ alone (plain, of other lengths), one that is an input's name, ones parsed in full.
        ...(rand() < 0.5 ? { id: pick(['p', 'q', 'request-17', 'a', 'b"q', 'é', '']) } : {}),
        inputs: [
          { name: 'a', datatype: 'INT32', shape: [n], parameters: { binary_data_size: 4 * n } },
          { name: 'b', datatype: pick(['UINT8', 'INT8']), shape: [2], parameters: { binary_data_size: 2 } },
        ],
      };
      const data = Int32Array.from({ length: n }, () => Math.floor(rand() * 2000) - 1000);
      const [b, hl] = body(h, [new Uint8Array(data.buffer), Uint8Array.of(i & 0xff, 7)], pick([0, 1, 2, 3]));
      const s = pick([wide, narrow]);
      const before = cache.size;
      expect(outcome(() => cache.parse(b, hl).validate(s))).toEqual(outcome(() => fresh(b, hl, s)));
      if (cache.size === before && before > 0) hits++;
    }
    // The 24 headers and two signatures repeat: most requests were answered from a kept header.
    expect(hits).toBeGreaterThan(100);
  });
});

describe('BinaryAnswerEncoder', () => {
  const out = (name: string, shape: number[], values: number[], binary = true): ResponseOutput => ({
    name,
    tensor: { datatype: 'FP32', shape, data: Float32Array.from(values) },
    binary,
  });
  const HEAD = '{"model_name":"m","model_version":"1"';
  /** What encodeResponseAfter writes for the head and id (the reference). */
  const reference = (head: string, id: string, outputs: readonly ResponseOutput[]) =>
    encodeResponseAfter(`${head},"id":${jsonString(id)}`, outputs);
  const same = (a: { body: Uint8Array; headerLength?: number }, b: typeof a) => {
    expect(a.headerLength).toBe(b.headerLength);
    expect(Buffer.from(a.body).toString('latin1')).toBe(Buffer.from(b.body).toString('latin1'));
  };

  it('writes the same bytes as encodeResponseAfter, the header kept for answers of the same head and shapes', () => {
    const encoder = new BinaryAnswerEncoder();
    for (const values of [
      [1, 2],
      [3, 4],
      [5, 6],
    ]) {
      const outputs = [out('y', [1, 2], values), out('z', [1], [values[0]! * 10])];
      same(encoder.encode(HEAD, 'a', outputs), reference(HEAD, 'a', outputs));
    }
    expect(encoder.size).toBe(1);
    // Another shape, name, datatype or head: each its own header.
    const variants: [string, ResponseOutput[]][] = [
      [HEAD, [out('y', [2, 1], [1, 2]), out('z', [1], [3])]],
      [HEAD, [out('y', [1, 3], [1, 2, 3]), out('z', [1], [3])]],
      [HEAD, [out('y', [1], [1]), out('z', [1], [3])]],
      [HEAD, [out('w', [1, 2], [1, 2]), out('z', [1], [3])]],
      [HEAD, [out('y', [1, 2], [1, 2])]],
      ['{"model_name":"m","model_version":"2"', [out('y', [1, 2], [1, 2]), out('z', [1], [3])]],
      [
        HEAD,
        [
          {
            name: 'y',
            tensor: { datatype: 'INT32', shape: [1, 2], data: Int32Array.of(1, 2) },
            binary: true,
          },
          out('z', [1], [3]),
        ],
      ],
    ];
    for (let round = 0; round < 2; round++) {
      for (const [h, outputs] of variants) same(encoder.encode(h, 'a', outputs), reference(h, 'a', outputs));
    }
    expect(encoder.size).toBe(1 + variants.length);
  });

  it('writes each answer’s own id into a kept header: generated ids, ids to escape, ids beyond ASCII', () => {
    const encoder = new BinaryAnswerEncoder();
    const outputs = [out('y', [1, 2], [1, 2])];
    const ids = [
      ...Array.from({ length: 20 }, () => crypto.randomUUID()),
      'a"quoted"\\id',
      'tab\there',
      'été-Ω-😀',
      'x',
      'a much longer id than the others, to change the header length by far',
    ];
    for (const id of [...ids, ...ids]) same(encoder.encode(HEAD, id, outputs), reference(HEAD, id, outputs));
    expect(encoder.size).toBe(1);
  });

  it('answers JSON and BYTES outputs as encodeResponseAfter does, never from a kept header', () => {
    const encoder = new BinaryAnswerEncoder();
    const binary = [out('y', [1, 2], [1, 2])];
    encoder.encode(HEAD, 'a', binary);
    const json = [out('y', [1, 2], [1, 2], false)];
    const answer = encoder.encode(HEAD, 'a', json);
    expect(answer.headerLength).toBeUndefined();
    same(answer, reference(HEAD, 'a', json));
    const labels: ResponseOutput[] = [
      { name: 'y', tensor: { datatype: 'BYTES', shape: [2], data: ['cat', 'é'] }, binary: true },
    ];
    for (let i = 0; i < 2; i++) same(encoder.encode(HEAD, 'a', labels), reference(HEAD, 'a', labels));
    same(encoder.encode(HEAD, 'b', binary), reference(HEAD, 'b', binary));
    expect(encoder.size).toBe(1);
  });
});

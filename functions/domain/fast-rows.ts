/**
 * The common form of a batch row read straight from its bytes: `{"id": "…", "inputs": [{"name", "datatype": "FP32",
 * "shape", "data": [numbers]}]}` (keys in any order, any JSON whitespace) against a signature whose inputs are all
 * FP32 with fixed dimensions but the first. The numbers of each input's `data` are written into one Float32Array
 * per input that the rows of a block share, row after row, so that a block's rows are already stacked: no JS
 * array, no boxed number, no copy.
 *
 * The scanner accepts a line only when it is sure of what the general path (the line decoded, `parseInferenceBody`,
 * `jsonOnly`, `validateInferenceRequest`) makes of it: a valid request whose values, id and shapes are the ones the
 * general path gives, bit for bit. Anything else — any other key (`parameters`, `outputs`, …), an escape or a
 * control character in a string, nested `data`, a number beyond the FP32 range, a shape or a length the signature
 * does not take, inputs of different rows, a duplicate key, bad JSON, invalid UTF-8 in the id — is not accepted,
 * and the line goes the general path, which answers it as always (errors included). Numbers are correctly rounded
 * doubles, then FP32, as `Math.fround(JSON.parse(text))`: a decimal significand below 2^53 with a decimal exponent
 * within ±22 is one exact multiplication or division (Clinger's fast path), any other number is `Number()` of its
 * text.
 *
 * `createRowScanner` is self-contained (it refers to nothing outside its own body but JavaScript's globals), so its
 * source can also run in a thread of its own. Pure: no I/O.
 */
import type { TensorSpec } from './types';

/** One input of the form: its name, and the dimensions of one row (the spec's shape without its first dimension). */
export interface RowFormInput {
  readonly name: string;
  /** The spec's first dimension: -1 (any number of rows), or the fixed number. */
  readonly firstDim: number;
  readonly rowDims: readonly number[];
  /** Elements of one row (the product of `rowDims`). */
  readonly perRow: number;
}

/** The one row form a signature's lines are read in (plain data: it is also sent to a parsing thread). */
export interface RowForm {
  readonly inputs: readonly RowFormInput[];
  /** The longest id accepted (`LIMITS.maxInferenceIdLength`). */
  readonly maxIdLength: number;
}

/**
 * The row form of a model's inputs, or undefined when the scanner has none for them: every input FP32 with a
 * rank of at least 1, every dimension but the first fixed, a name of printable ASCII without `"` or `\` (its JSON
 * text is its bytes).
 */
export function rowFormOf(inputs: readonly TensorSpec[], maxIdLength: number): RowForm | undefined {
  if (inputs.length === 0 || inputs.length > 30) return undefined;
  const out: RowFormInput[] = [];
  for (const spec of inputs) {
    if (spec.datatype !== 'FP32' || spec.shape.length === 0) return undefined;
    if (!/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/.test(spec.name)) return undefined;
    const [firstDim, ...rowDims] = spec.shape as [number, ...number[]];
    if (!(firstDim === -1 || firstDim >= 1) || rowDims.some((d) => !(d >= 0))) return undefined;
    out.push({ name: spec.name, firstDim, rowDims, perRow: rowDims.reduce((a, d) => a * d, 1) });
  }
  return { inputs: out, maxIdLength };
}

/**
 * A block of lines as bytes: line `i` is `data[starts[i], ends[i])` (without its line break and trailing `\r`).
 */
export interface ByteLines {
  readonly data: Uint8Array;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  readonly count: number;
}

/** What the scanner made of a block of lines (plain data and typed arrays: it crosses threads as it is). */
export interface ScannedBlock {
  readonly count: number;
  /** Per line: the rows (first dimension) of an accepted line; 0 for a line left to the general path. */
  readonly rows: Int32Array;
  /** Per line and input (`line * inputs + k`): where the line's values of input `k` start in `values[k]`. */
  readonly offsets: Int32Array;
  /** Per line: the id of an accepted line (undefined: none). */
  readonly ids: (string | undefined)[];
  /** Per line: the text of a line left to the general path (as the general path decodes it). */
  readonly texts: (string | undefined)[];
  /** Per input (form order): the values of the accepted lines, stacked. */
  readonly values: Float32Array[];
}

/** Reads blocks of lines of one row form (see the module comment). */
export interface RowScanner {
  /**
   * What the scanner makes of a block. With `reuse`, the values are written into the arrays of the previous call
   * (grown when needed): the previous block's values are then overwritten.
   */
  scanBlock(block: ByteLines, reuse?: boolean): ScannedBlock;
}

/**
 * The scanner of a row form. Self-contained (see the module comment): everything it uses is declared inside.
 */
export function createRowScanner(form: RowForm): RowScanner {
  const inputs = form.inputs;
  const nInputs = inputs.length;
  const maxId = form.maxIdLength;
  const FP32_MAX = 3.4028234663852886e38;
  const TWO_53 = 9007199254740992;
  const POW10 = new Float64Array(23);
  for (let i = 0; i < 23; i++) POW10[i] = 10 ** i;
  const NO = -1;
  /** `memberEnd`: a ',' follows the member, another member comes (at `next`). */
  const MORE = -2;
  const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  const K_ID = latin1('id');
  const K_INPUTS = latin1('inputs');
  const K_NAME = latin1('name');
  const K_DATATYPE = latin1('datatype');
  const K_SHAPE = latin1('shape');
  const K_DATA = latin1('data');
  const FP32 = latin1('FP32');
  const names = inputs.map((i) => latin1(i.name));
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  // The general path's decoding of a line (a BOM at its start dropped, invalid bytes replaced).
  const lineDecoder = new TextDecoder();

  // State of the line being read (the scanning functions return an index, or NO, and leave the rest here).
  let b: Uint8Array = new Uint8Array(0);
  let end = 0;
  let strStart = 0;
  let strEnd = 0;
  let strAscii = true;
  let count = 0;
  let which = 0;
  let next = 0;
  const dims: number[] = [];
  let buffers: Float32Array[] = [];
  let kept: Float32Array[] = [];
  const used: number[] = new Array(nInputs).fill(0);
  const lineStart: number[] = new Array(nInputs).fill(0);

  function ws(i: number): number {
    for (;;) {
      if (i >= end) return i;
      const c = b[i];
      if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) return i;
      i++;
    }
  }

  /** A JSON string without escapes or control characters at `i`; the index after its closing quote. */
  function string(i: number): number {
    if (i >= end || b[i] !== 0x22) return NO;
    const start = i + 1;
    let ascii = true;
    for (let j = start; j < end; j++) {
      const c = b[j]!;
      if (c === 0x22) {
        strStart = start;
        strEnd = j;
        strAscii = ascii;
        return j + 1;
      }
      if (c === 0x5c || c < 0x20) return NO;
      if (c >= 0x80) ascii = false;
    }
    return NO;
  }

  function strIs(want: Uint8Array): boolean {
    if (strEnd - strStart !== want.length) return false;
    for (let j = 0; j < want.length; j++) if (b[strStart + j] !== want[j]) return false;
    return true;
  }

  function asciiText(from: number, to: number): string {
    let s = '';
    for (let j = from; j < to; j++) s += String.fromCharCode(b[j]!);
    return s;
  }

  /** The last string as an inference id: 1 to maxId characters of valid UTF-8 (the general path's rule). */
  function idText(): string | undefined {
    if (strEnd === strStart || strEnd - strStart > 4 * maxId) return undefined;
    let text: string;
    if (strAscii) text = asciiText(strStart, strEnd);
    else {
      try {
        text = utf8.decode(b.subarray(strStart, strEnd));
      } catch {
        return undefined;
      }
    }
    return text.length <= maxId ? text : undefined;
  }

  /** `[ints]` at `i` into `dims`. */
  function shape(i: number): number {
    dims.length = 0;
    if (i >= end || b[i] !== 0x5b) return NO;
    i = ws(i + 1);
    if (i < end && b[i] === 0x5d) return i + 1;
    for (;;) {
      if (i >= end) return NO;
      let c = b[i]!;
      if (!(c >= 0x30 && c <= 0x39)) return NO;
      let v = c - 0x30;
      let digits = 1;
      c = ++i < end ? b[i]! : 0;
      if (v === 0) {
        if (c >= 0x30 && c <= 0x39) return NO;
      } else {
        while (c >= 0x30 && c <= 0x39) {
          if (++digits > 9) return NO;
          v = v * 10 + (c - 0x30);
          c = ++i < end ? b[i]! : 0;
        }
      }
      // A fraction or an exponent (`1.0`, `1e0`): JSON.parse takes it, the general path decides.
      if (c === 0x2e || c === 0x65 || c === 0x45) return NO;
      dims.push(v);
      i = ws(i);
      if (i < end && b[i] === 0x2c) {
        i = ws(i + 1);
        continue;
      }
      if (i >= end || b[i] !== 0x5d) return NO;
      return i + 1;
    }
  }

  /** A flat array of JSON numbers at `i`, written to buffer `k` from `used[k]`; sets `count`. */
  function numbers(from: number, k: number): number {
    // Locals, not the closure's variables: the loop below is the scanner's time.
    const bytes = b;
    const stop = end;
    let i = from;
    if (i >= stop || bytes[i] !== 0x5b) return NO;
    let at = used[k]!;
    const first = at;
    // Every value but the last takes two bytes at least (a digit and a comma): room for all of them at once.
    const room = at + ((stop - i) >> 1) + 1;
    let out = buffers[k]!;
    if (room > out.length) {
      const grown = new Float32Array(Math.max(out.length * 2, room));
      grown.set(out.subarray(0, at));
      buffers[k] = grown;
      out = grown;
    }
    i = ws(i + 1);
    if (i < stop && bytes[i] === 0x5d) {
      count = 0;
      return i + 1;
    }
    // A number ends before `last` (at least the array's `]` follows it): every read below is within the line.
    const last = stop - 1;
    const pow10 = POW10;
    const exactBelow = TWO_53;
    const max = FP32_MAX;
    for (;;) {
      if (i >= last) return NO;
      const tokenStart = i;
      // The sign without a branch (as likely one way as the other): a mispredicted branch a number cost about a
      // fifth of the scan (docs/performance.md, "Two number-reading costs").
      const negative = +(bytes[i]! === 0x2d);
      i += negative;
      let c = bytes[i]!;
      let mantissa = 0;
      let d = c - 0x30;
      if (d === 0) {
        if (i >= last) return NO;
        c = bytes[++i]!;
        if (c >= 0x30 && c <= 0x39) return NO;
      } else if (d > 0 && d < 10) {
        do {
          mantissa = mantissa * 10 + d;
          if (i >= last) return NO;
          c = bytes[++i]!;
          d = c - 0x30;
        } while (d >= 0 && d < 10);
      } else {
        return NO;
      }
      let scale = 0;
      if (c === 0x2e) {
        if (i >= last) return NO;
        c = bytes[++i]!;
        d = c - 0x30;
        if (!(d >= 0 && d < 10)) return NO;
        const fractionStart = i;
        // Two digits a step: the chain of multiply-adds each number waits for is half as long.
        for (;;) {
          if (i >= last) return NO;
          c = bytes[i + 1]!;
          const e = c - 0x30;
          if (!(e >= 0 && e < 10)) {
            mantissa = mantissa * 10 + d;
            i++;
            break;
          }
          mantissa = mantissa * 100 + (d * 10 + e);
          i += 2;
          if (i > last) return NO;
          c = bytes[i]!;
          d = c - 0x30;
          if (!(d >= 0 && d < 10)) break;
        }
        scale = fractionStart - i;
      }
      let exponent = 0;
      if (c === 0x65 || c === 0x45) {
        if (i >= last) return NO;
        c = bytes[++i]!;
        let expNegative = false;
        if (c === 0x2b || c === 0x2d) {
          expNegative = c === 0x2d;
          if (i >= last) return NO;
          c = bytes[++i]!;
        }
        if (!(c >= 0x30 && c <= 0x39)) return NO;
        do {
          if (exponent < 100_000) exponent = exponent * 10 + (c - 0x30);
          if (i >= last) return NO;
          c = bytes[++i]!;
        } while (c >= 0x30 && c <= 0x39);
        if (expNegative) exponent = -exponent;
      }
      let value: number;
      const p = scale + exponent;
      // The significand is exact below 2^53 (a rounded accumulation cannot fall below it again).
      if (mantissa < exactBelow && p >= -22 && p <= 22) {
        value = (p < 0 ? mantissa / pow10[-p]! : mantissa * pow10[p]!) * (1 - 2 * negative);
      } else {
        value = Number(asciiText(tokenStart, i));
      }
      // Beyond the FP32 range (or not finite) the general path decides: an error there, or a rounding.
      if (!(value <= max && value >= -max)) return NO;
      out[at++] = value;
      if (c === 0x2c) {
        c = bytes[++i]!;
        if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) i = ws(i);
        continue;
      }
      if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) {
        i = ws(i);
        c = i < stop ? bytes[i]! : 0;
        if (c === 0x2c) {
          i = ws(i + 1);
          continue;
        }
      }
      if (c !== 0x5d) return NO;
      count = at - first;
      used[k] = at;
      return i + 1;
    }
  }

  /** A member's key and ':' at `i` (the key is then matched with `strIs`): the index of its value, or NO. */
  function memberKey(i: number): number {
    i = string(i);
    if (i === NO) return NO;
    i = ws(i);
    if (i >= end || b[i] !== 0x3a) return NO;
    return ws(i + 1);
  }

  /** After a member's value at `i`: MORE (the next member's key at `next`) on ',', the index past '}', or NO. */
  function memberEnd(i: number): number {
    i = ws(i);
    if (i < end && b[i] === 0x2c) {
      next = ws(i + 1);
      return MORE;
    }
    return i < end && b[i] === 0x7d ? i + 1 : NO;
  }

  /** One input object at `i`; sets `which` (its input in the form) and `count` (its rows). */
  function input(i: number): number {
    if (i >= end || b[i] !== 0x7b) return NO;
    let named = -1;
    let seenDatatype = false;
    let seenShape = false;
    let dataCount = -1;
    let dataInput = -1;
    i = ws(i + 1);
    for (;;) {
      i = memberKey(i);
      if (i === NO) return NO;
      if (strIs(K_DATA)) {
        if (dataCount !== -1) return NO;
        // The values go to the buffer of the input named; before its name only a one-input form knows which.
        dataInput = named !== -1 ? named : nInputs === 1 ? 0 : -1;
        if (dataInput === -1 || used[dataInput] !== lineStart[dataInput]) return NO;
        i = numbers(i, dataInput);
        if (i === NO) return NO;
        dataCount = count;
      } else if (strIs(K_NAME)) {
        if (named !== -1) return NO;
        i = string(i);
        if (i === NO) return NO;
        for (let k = 0; k < nInputs; k++) {
          if (strIs(names[k]!)) {
            named = k;
            break;
          }
        }
        if (named === -1) return NO;
      } else if (strIs(K_DATATYPE)) {
        if (seenDatatype) return NO;
        seenDatatype = true;
        i = string(i);
        if (i === NO || !strIs(FP32)) return NO;
      } else if (strIs(K_SHAPE)) {
        if (seenShape) return NO;
        seenShape = true;
        i = shape(i);
        if (i === NO) return NO;
      } else {
        return NO;
      }
      i = memberEnd(i);
      if (i === MORE) {
        i = next;
        continue;
      }
      if (i === NO) return NO;
      break;
    }
    if (named === -1 || !seenDatatype || !seenShape || dataCount === -1 || dataInput !== named) return NO;
    // The shape against the spec: same rank, the fixed dimensions equal, at least one row, as many values.
    const spec = inputs[named]!;
    if (dims.length !== spec.rowDims.length + 1) return NO;
    const rows = dims[0]!;
    if (rows < 1 || (spec.firstDim !== -1 && rows !== spec.firstDim)) return NO;
    for (let j = 0; j < spec.rowDims.length; j++) if (dims[j + 1] !== spec.rowDims[j]) return NO;
    if (dataCount !== rows * spec.perRow) return NO;
    which = named;
    count = rows;
    return i;
  }

  /** Line `[from, to)` of `data`: its rows and id, or NO (the line goes the general path). */
  let lineId: string | undefined;
  function line(from: number): number {
    let i = ws(from);
    if (i >= end || b[i] !== 0x7b) return NO;
    let seenId = false;
    let seenInputs = false;
    let rows = 0;
    lineId = undefined;
    i = ws(i + 1);
    for (;;) {
      i = memberKey(i);
      if (i === NO) return NO;
      if (strIs(K_INPUTS)) {
        if (seenInputs) return NO;
        seenInputs = true;
        if (i >= end || b[i] !== 0x5b) return NO;
        let seen = 0;
        for (let n = 0; ; n++) {
          if (n === nInputs) return NO;
          i = input(ws(i + 1));
          if (i === NO) return NO;
          // Inputs of different rows are not stacked together: the general path takes such a line.
          if (n === 0) rows = count;
          else if (count !== rows) return NO;
          const bit = 1 << which;
          if (seen & bit) return NO;
          seen |= bit;
          i = ws(i);
          if (i < end && b[i] === 0x2c) continue;
          if (i >= end || b[i] !== 0x5d || n + 1 !== nInputs) return NO;
          i++;
          break;
        }
      } else if (strIs(K_ID)) {
        if (seenId) return NO;
        seenId = true;
        i = string(i);
        if (i === NO) return NO;
        lineId = idText();
        if (lineId === undefined) return NO;
      } else {
        return NO;
      }
      i = memberEnd(i);
      if (i === MORE) {
        i = next;
        continue;
      }
      if (i === NO || ws(i) !== end || !seenInputs) return NO;
      return rows;
    }
  }

  return {
    scanBlock(block: ByteLines, reuse = false): ScannedBlock {
      const n = block.count;
      const rowsOf = new Int32Array(n);
      const offsets = new Int32Array(n * nInputs);
      const ids: (string | undefined)[] = new Array(n);
      const texts: (string | undefined)[] = new Array(n);
      buffers = inputs.map((spec, k) => {
        const want = Math.max(16, n * spec.perRow);
        const old = kept[k];
        return reuse && old && old.length >= want ? old : new Float32Array(want);
      });
      used.fill(0);
      b = block.data;
      for (let l = 0; l < n; l++) {
        const from = block.starts[l]!;
        end = block.ends[l]!;
        for (let k = 0; k < nInputs; k++) lineStart[k] = used[k]!;
        const rows = line(from);
        if (rows > 0) {
          rowsOf[l] = rows;
          for (let k = 0; k < nInputs; k++) offsets[l * nInputs + k] = lineStart[k]!;
          ids[l] = lineId;
        } else {
          // Nothing of the line is kept: its values are overwritten by the next line's.
          for (let k = 0; k < nInputs; k++) used[k] = lineStart[k]!;
          texts[l] = lineDecoder.decode(b.subarray(from, end));
        }
      }
      const values = buffers;
      kept = reuse ? buffers : [];
      buffers = [];
      b = new Uint8Array(0);
      return { count: n, rows: rowsOf, offsets, ids, texts, values };
    },
  };
}

/**
 * What the `maas` commands read from their arguments: model references, files, `--input` JSON turned into
 * inference requests, labels, JSON and integer options. Every mistake is a UsageError (exit code 2).
 */
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { LIMITS } from '../contract/limits';
import { pathFor } from '../contract/routes';
import { withLongIntegersQuoted } from '../domain/body-parser';
import { UsageError } from './context';

/** A model reference: the model's name and, for `name@3` or `name@prod`, the version or alias. */
export interface ModelRef {
  readonly name: string;
  readonly ref?: string;
}

/** `name`, `name@3` or `name@prod` -> the model, its ref and the OIP path of that model (and ref). */
export function modelPath(spec: string): ModelRef & { readonly path: string } {
  const at = spec.indexOf('@');
  const name = at < 0 ? spec : spec.slice(0, at);
  const ref = at < 0 ? undefined : spec.slice(at + 1);
  if (!name || ref === '')
    throw new UsageError(`'${spec}' is not a model reference (name, name@version or name@alias)`);
  const path = pathFor('modelMetadata', { name, ref });
  return ref ? { name, ref, path } : { name, path };
}

/** The usage error of a file (or standard input) that could not be read. */
const cannotRead = (name: string, e: unknown) =>
  new UsageError(`cannot read ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
    cause: e,
  });

/** The bytes of a file the command was given; an unreadable one is a usage error. */
export function readBytes(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw cannotRead(path, e);
  }
}

/**
 * The most bytes of text a command reads as `--input` or `--labels-file`: ten times the largest request body, room
 * for JSON text that a binary request carries in far fewer bytes. Beyond it the read stops with a usage error, so
 * that a source without end (`/dev/zero`, a pipe that keeps writing) is not read until memory runs out.
 */
export const MAX_TEXT_INPUT_BYTES = 10 * LIMITS.maxBodyBytes;

/** The text of a file (or standard input, 0), read up to `maxBytes`; more is a usage error. */
export function readText(path: string | 0, maxBytes: number = MAX_TEXT_INPUT_BYTES): string {
  const name = path === 0 ? 'standard input' : path;
  let fd: number;
  try {
    fd = path === 0 ? 0 : openSync(path, 'r');
  } catch (e) {
    throw cannotRead(name, e);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1 << 20, maxBytes + 1 - total));
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // A non-blocking standard input with nothing yet: wait and read again.
        if (code === 'EAGAIN') {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          continue;
        }
        // A pipe whose writer has gone reads as its end.
        if (code === 'EOF') break;
        throw cannotRead(name, e);
      }
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes) {
        throw new UsageError(
          `${name} holds more than ${maxBytes} bytes, the most read as --input or --labels-file`,
        );
      }
    }
  } finally {
    if (path !== 0) closeSync(fd);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

/**
 * The parse of an `--input` that holds integer literals of 16 digits or more, with those literals as decimal
 * strings (`withLongIntegersQuoted`), by the parse `readInput` returned: what the INT64/UINT64 inputs' `data` is
 * taken from, so that integers beyond 2^53 - 1 keep every digit (as the server keeps them in a JSON body). Every
 * other place keeps the plain parse's numbers.
 */
const exactTwins = new WeakMap<object, unknown>();

const is64BitInteger = (datatype: unknown) => datatype === 'INT64' || datatype === 'UINT64';
/** A JSON object (not null, not an array). */
export const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * A full inference request of `--input` as sent: the `data` of its INT64/UINT64 inputs from the exact parse when
 * it has long integers (`request` itself otherwise).
 */
export function settleRequest(request: Record<string, unknown>): Record<string, unknown> {
  const exact = exactTwins.get(request);
  const inputs = request.inputs;
  if (!isRecord(exact) || !Array.isArray(inputs) || !Array.isArray(exact.inputs)) return request;
  const exactInputs = exact.inputs as unknown[];
  return {
    ...request,
    inputs: inputs.map((input: unknown, i) => {
      const twin = exactInputs[i];
      return isRecord(input) && is64BitInteger(input.datatype) && isRecord(twin) && 'data' in twin
        ? { ...input, data: twin.data }
        : input;
    }),
  };
}

/** Characters a JSON text can start with (after blanks). */
const JSON_START = /^\s*[[{"\d-]|^\s*(?:true|false|null)\b/;

/**
 * Reads `--input`: inline JSON, `@file`, `-` (standard input), or the path of an existing file. Integers too long
 * for a double keep their digits for the 64-bit integer inputs (see {@link settleRequest},
 * {@link toInferenceRequest}); a file's leading byte order mark is skipped.
 */
export function readInput(value: string): unknown {
  let text = value;
  if (value === '-') text = readText(0);
  else if (value.startsWith('@')) text = readText(value.slice(1));
  else if (!/^\s*[[{]/.test(value) && existsSync(value)) text = readText(value);
  else if (!JSON_START.test(value)) {
    throw new UsageError(`--input '${value}' is neither JSON nor a file that exists`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--input is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (holdsNonFinite(parsed)) {
    // JSON has no text for it: sent, it would travel as null.
    throw new UsageError('--input holds a number beyond the range of a double (such as 1e400)');
  }
  const quoted = withLongIntegersQuoted(text);
  if (quoted !== text && parsed !== null && typeof parsed === 'object') {
    exactTwins.set(parsed, JSON.parse(quoted));
  }
  return parsed;
}

/** Whether a parsed JSON value holds a number JSON.parse made infinite (walked without recursion: any depth). */
function holdsNonFinite(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return true;
    } else if (v !== null && typeof v === 'object') {
      for (const item of Object.values(v)) stack.push(item);
    }
  }
  return false;
}

/** One input of a model as its metadata describes it. */
export interface InputSpec {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

/** Shape of a nested array (`[[1,2],[3,4]]` -> [2,2]); ragged arrays are a usage error. */
export function shapeOf(value: unknown): number[] {
  const shape: number[] = [];
  let level: unknown = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const check = (v: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw new UsageError('input arrays are ragged (rows of different lengths)');
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new UsageError('input arrays are ragged (rows of different lengths)');
    }
    for (const item of v) check(item, depth + 1);
  };
  check(value, 0);
  return shape;
}

/** Whether `--input` is already a full OIP request (`{"inputs":[…]}`), sent as it is. */
export function isInferenceRequest(input: unknown): input is Record<string, unknown> {
  return input !== null && typeof input === 'object' && !Array.isArray(input) && 'inputs' in input;
}

/**
 * Turns `--input` into an OIP request. Accepted: a full request (`{"inputs":[…]}`), an array of rows (or
 * one row) for a model with one input, or `{"<input name>": rows, …}`. `inputs` are the model's inputs.
 */
export function toInferenceRequest(input: unknown, inputs: readonly InputSpec[]): Record<string, unknown> {
  if (isInferenceRequest(input)) return settleRequest(input);
  const tensor = (spec: InputSpec, data: unknown) => {
    if (!Array.isArray(data)) throw new UsageError(`input '${spec.name}' must be an array`);
    if (data.length === 0) throw new UsageError(`input '${spec.name}' has no rows: give at least one`);
    let shape = shapeOf(data);
    // One row for a batched model: [a, b, c, d] -> [[a, b, c, d]].
    if (shape.length === spec.shape.length - 1) shape = [1, ...shape];
    return { name: spec.name, shape, datatype: spec.datatype, data: data.flat(Number.POSITIVE_INFINITY) };
  };
  // The rows of a 64-bit integer input come from the exact parse when there is one (same shape, long integers kept).
  const exact = exactTwins.get(input as object);
  const rowsOf = (spec: InputSpec, rows: unknown, exactRows: unknown) =>
    is64BitInteger(spec.datatype) && exactRows !== undefined ? exactRows : rows;
  if (Array.isArray(input)) {
    if (inputs.length !== 1) {
      throw new UsageError(
        `the model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}): pass {"<input>": [...], ...}`,
      );
    }
    const spec = inputs[0] as InputSpec;
    return { inputs: [tensor(spec, rowsOf(spec, input, exact))] };
  }
  if (input !== null && typeof input === 'object') {
    return {
      inputs: Object.entries(input).map(([name, data]) => {
        const spec = inputs.find((i) => i.name === name);
        if (!spec)
          throw new UsageError(
            `the model has no input '${name}' (it has ${inputs.map((i) => i.name).join(', ')})`,
          );
        return tensor(spec, rowsOf(spec, data, isRecord(exact) ? exact[name] : undefined));
      }),
    };
  }
  throw new UsageError('--input must be a JSON array of rows, {"<input>": rows} or an inference request');
}

/** Parses `--labels a,b,c` / `--labels-file` (a JSON array or one label per line). */
export function readLabels(labels: string | undefined, labelsFile: string | undefined): string[] | undefined {
  if (labels !== undefined && labelsFile !== undefined)
    throw new UsageError('use --labels or --labels-file, not both');
  if (labels !== undefined) return labels.split(',').map((l) => l.trim());
  if (labelsFile === undefined) return undefined;
  const text = readText(labelsFile);
  if (text.trim().startsWith('[')) {
    try {
      const parsed = JSON.parse(text) as unknown;
      if (Array.isArray(parsed) && parsed.every((l) => typeof l === 'string')) return parsed;
    } catch {
      // fall through
    }
    throw new UsageError(`${labelsFile} must hold a JSON array of strings or one label per line`);
  }
  return text.split(/\r?\n/).filter((l) => l.trim() !== '');
}

/** Parses the JSON value of option `name` (undefined when the option was not given). */
export function parseJsonOption(name: string, value: string | undefined): unknown {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (e) {
    throw new UsageError(`${name} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * A non-negative decimal number as the options take it: digits with an optional fraction (`12`, `0.5`), nothing
 * else — no sign, blanks, exponent, hexadecimal, `Infinity` or leading zeros (the form of a rollout step's weight). Undefined for anything else, which `Number` would turn into another value (`0x10` 16, `1e1` 10,
 * `' 5'` 5).
 */
export function decimalNumber(text: string): number | undefined {
  return DECIMAL.test(text) ? Number(text) : undefined;
}

const DECIMAL = /^(?:0|[1-9]\d*)(?:\.\d+)?$/;

/** An option or argument parser for non-negative integers written in decimal (`--limit`, `<version>`…). */
export function nonNegativeInt(name: string) {
  return (value: string): number => {
    const n = decimalNumber(value);
    if (n === undefined || !Number.isSafeInteger(n))
      throw new UsageError(`${name} must be a non-negative integer, got '${value}'`);
    return n;
  };
}

/** A TCP port, 0-65535 (0: any free one), as the option or variable `name` gives it. */
export function portOf(name: string, value: string): number {
  const n = nonNegativeInt(name)(value);
  if (n > 65535) throw new UsageError(`${name} must be from 0 to 65535, got '${value}'`);
  return n;
}

/** An option parser for a percentage (a decimal number; the service checks the range and the step). */
export function percent(name: string) {
  return (value: string): number => {
    const n = decimalNumber(value);
    if (n === undefined) {
      throw new UsageError(`${name} must be a decimal number from 0 to 100 (e.g. 12.5), got '${value}'`);
    }
    return n;
  };
}

/**
 * An option parser for a measured value (`--value` of `maas feedback`): a JSON number — a decimal one, negative too,
 * or with an exponent (`2.5e-7`), the forms a value is written in, which keep their number — and nothing else
 * (hexadecimal, blanks, `Infinity`).
 */
export function signedNumber(name: string) {
  return (value: string): number => {
    const n = JSON_NUMBER.test(value) ? Number(value) : undefined;
    if (n === undefined || !Number.isFinite(n))
      throw new UsageError(`${name} must be a decimal number (e.g. -3.75 or 2.5e-7), got '${value}'`);
    return n;
  };
}

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * How the onnxruntime engine adapter (functions/adapters/ort-engine.ts) reports a failed run: a category that a
 * `oneHot` pre-processing declared with `handleUnknown: 'error'` does not know is 400 `UNKNOWN_CATEGORY` naming
 * the input (string and integer categories, the right one of two, a compiled node name suffixed to keep it unique,
 * "an input" when no pre-processing node is named); any other failure of the run stays what it is, 400
 * `INFERENCE_FAILED` with onnxruntime's message in one line; a tensor that cannot be built is not turned into
 * either. A failing native run rejects (never throws), and is over when the engine's run returns: a release right
 * after it frees the session at once.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { BadRequestError } from '../../functions/domain/errors';
import { parsePreprocessSpec } from '../../functions/domain/preprocess-spec';
import type { Tensor } from '../../functions/domain/tensor';
import { buildModel, ElemType } from '../../functions/local/onnx-builder';
import type { ModelSession } from '../../functions/ports/inference';
import { decodeModel, encodeModel } from '../../functions/transforms/onnx-model';
import { applyPreprocess } from '../../functions/transforms/preprocess';

/** `y = Concat(color, code)`: the model answers its preprocessed inputs themselves. */
function concatModel(): Uint8Array {
  return buildModel({
    inputs: [
      { name: 'color', elemType: ElemType.FLOAT, shape: ['batch', 3] },
      { name: 'code', elemType: ElemType.FLOAT, shape: ['batch', 2] },
    ],
    outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', 5] }],
    nodes: [{ opType: 'Concat', inputs: ['color', 'code'], outputs: ['y'], attributes: { axis: 1 } }],
  });
}

const COLORS = ['red', 'green', 'blue'];
const CODES = [3, 7];

/** Both inputs one-hot encoded, each with its own policy for an unknown category. */
function preprocessed(color: 'error' | 'ignore', code: 'error' | 'ignore'): Uint8Array {
  return applyPreprocess(
    concatModel(),
    parsePreprocessSpec({
      color: { oneHot: { categories: COLORS, handleUnknown: color } },
      code: { oneHot: { categories: CODES, handleUnknown: code } },
    }),
  );
}

/** `model` with the node named `from` renamed `to`. */
function renameNode(model: Uint8Array, from: string, to: string): Uint8Array {
  const decoded = decodeModel(model);
  const node = decoded.graph?.node?.find((n) => n.name === from);
  if (!node) throw new Error(`no node '${from}'`);
  node.name = to;
  return encodeModel(decoded);
}

const feeds = (colors: string[], codes: number[]): Record<string, Tensor> => ({
  color: { datatype: 'BYTES', shape: [colors.length, 1], data: colors },
  code: { datatype: 'INT64', shape: [codes.length, 1], data: BigInt64Array.from(codes, (c) => BigInt(c)) },
});

/** The error a run rejects with (failing the test when it answers). */
async function failure(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('the run answered; a failure was expected');
    },
    (e: unknown) => e as Error,
  );
}

const engine = new OrtEngine();
beforeAll(() => engine.init());

async function withSession<T>(model: Uint8Array, f: (s: ModelSession) => Promise<T>): Promise<T> {
  const s = await engine.createSession(model);
  try {
    return await f(s);
  } finally {
    await engine.release(s);
  }
}

describe('an unknown category under handleUnknown error', () => {
  it('is 400 UNKNOWN_CATEGORY naming the string input; known categories still run on the same session', async () => {
    await withSession(preprocessed('error', 'error'), async (s) => {
      const e = await failure(engine.run(s, feeds(['green', 'purple'], [3, 7]), ['y']));
      expect(e).toBeInstanceOf(BadRequestError);
      expect(e).toMatchObject({ status: 400, code: 'UNKNOWN_CATEGORY' });
      expect(e.message).toMatch(/^input 'color' has a category its oneHot pre-processing does not know/);
      expect(e.message).not.toMatch(/code|onnxruntime|OneHotEncoder|Status Message/);
      const y = await engine.run(s, feeds(['blue', 'red'], [7, 3]), ['y']);
      expect(y.y?.shape).toEqual([2, 5]);
      expect(Array.from(y.y?.data as Float32Array)).toEqual([0, 0, 1, 0, 1, 1, 0, 0, 1, 0]);
    });
  });

  it('names the integer input when its category is the unknown one, not the other input', async () => {
    await withSession(preprocessed('error', 'error'), async (s) => {
      const e = await failure(engine.run(s, feeds(['red'], [4]), ['y']));
      expect(e).toMatchObject({ status: 400, code: 'UNKNOWN_CATEGORY' });
      expect(e.message).toMatch(/^input 'code' /);
    });
  });

  it('is per input: an unknown category of an input declared ignore is an all-zeros row, not a refusal', async () => {
    await withSession(preprocessed('ignore', 'error'), async (s) => {
      const y = await engine.run(s, feeds(['purple'], [3]), ['y']);
      expect(Array.from(y.y?.data as Float32Array)).toEqual([0, 0, 0, 1, 0]);
      const e = await failure(engine.run(s, feeds(['purple'], [5]), ['y']));
      expect(e).toMatchObject({ code: 'UNKNOWN_CATEGORY' });
      expect(e.message).toMatch(/^input 'code' /);
    });
  });

  it('names the input when the compiled node was suffixed to keep its name unique', async () => {
    const model = renameNode(
      preprocessed('error', 'ignore'),
      'preprocess_oneHot[color]',
      'preprocess_oneHot[color]_2',
    );
    await withSession(model, async (s) => {
      const e = await failure(engine.run(s, feeds(['teal'], [3]), ['y']));
      expect(e).toMatchObject({ status: 400, code: 'UNKNOWN_CATEGORY' });
      expect(e.message).toMatch(/^input 'color' /);
    });
  });

  it('says "an input" when the failing encoder is not a compiled pre-processing node', async () => {
    const model = renameNode(
      preprocessed('error', 'ignore'),
      'preprocess_oneHot[color]',
      'their_own_encoder',
    );
    await withSession(model, async (s) => {
      const e = await failure(engine.run(s, feeds(['teal'], [3]), ['y']));
      expect(e).toMatchObject({ status: 400, code: 'UNKNOWN_CATEGORY' });
      expect(e.message).toMatch(/^an input has a category its oneHot pre-processing does not know/);
    });
  });
});

describe('other run failures', () => {
  it('stay 400 INFERENCE_FAILED with onnxruntime’s message in one line', async () => {
    await withSession(preprocessed('error', 'error'), async (s) => {
      // Known categories, but two rows of one input and one of the other: Concat cannot join them.
      const e = await failure(engine.run(s, feeds(['red', 'green'], [3]), ['y']));
      expect(e).toBeInstanceOf(BadRequestError);
      expect(e).toMatchObject({ status: 400, code: 'INFERENCE_FAILED' });
      expect(e.message).toMatch(/^the model could not run on this input: .*Concat/);
      expect(e.message).not.toMatch(/\n/);
    });
  });

  it('leave out where in onnxruntime’s sources the failure was raised (file, line and C++ function)', async () => {
    // Reshape to a shape of another size: onnxruntime's message names its source file and function.
    const reshape = buildModel({
      inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: ['b', 'k'] }],
      outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: null }],
      nodes: [{ opType: 'Reshape', inputs: ['x', 'shape'], outputs: ['y'] }],
      initializers: [{ name: 'shape', elemType: ElemType.INT64, dims: [2], int64s: [7, 3] }],
    });
    await withSession(reshape, async (s) => {
      const x: Tensor = { datatype: 'FP32', shape: [1, 5], data: new Float32Array(5) };
      const e = await failure(engine.run(s, { x }, ['y']));
      expect(e).toMatchObject({ status: 400, code: 'INFERENCE_FAILED' });
      expect(e.message).toContain(
        'cannot be reshaped to the requested shape. Input shape:{1,5}, requested shape:{7,3}',
      );
      expect(e.message).not.toMatch(/onnxruntime_src|\.h:\d|ReshapeHelper|TensorShape&/);
    });
  });

  it('leave out the C++ function with its return type: an output too large to allocate', async () => {
    // Expand to 10^6 × 10^6 floats (4 TB): onnxruntime's allocator refuses it at once, naming its function.
    const expand = buildModel({
      inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: [1, 1] }],
      outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: null }],
      nodes: [{ opType: 'Expand', inputs: ['x', 'shape'], outputs: ['y'] }],
      initializers: [{ name: 'shape', elemType: ElemType.INT64, dims: [2], int64s: [1_000_000, 1_000_000] }],
    });
    await withSession(expand, async (s) => {
      const x: Tensor = { datatype: 'FP32', shape: [1, 1], data: new Float32Array(1) };
      const e = await failure(engine.run(s, { x }, ['y']));
      expect(e).toMatchObject({ status: 400, code: 'INFERENCE_FAILED' });
      expect(e.message).toMatch(
        /Status Message: Failed to allocate memory for requested buffer of size 4000000000000$/,
      );
      expect(e.message).not.toMatch(/void\*|BFCArena|onnxruntime::|\.cc:\d/);
    });
  });

  it('a tensor that cannot be built is not taken for a failed run', async () => {
    await withSession(preprocessed('error', 'error'), async (s) => {
      const bad = {
        color: { datatype: 'BYTES', shape: [2, 1], data: ['red'] },
        code: { datatype: 'INT64', shape: [1, 1], data: BigInt64Array.of(3n) },
      } satisfies Record<string, Tensor>;
      const e = await failure(engine.run(s, bad, ['y']));
      expect(e).not.toBeInstanceOf(BadRequestError);
      expect(e.message).toMatch(/size\(2\) does not match data length\(1\)/);
    });
  });
});

/** A handle of the engine's own shape around a stand-in native session whose run throws `run`'s error. */
function fakeSession(run: () => never) {
  const calls = { runs: 0, disposed: 0 };
  const handle = {
    inputNames: ['x'],
    outputNames: ['y'],
    native: {
      run: () => {
        calls.runs++;
        return run();
      },
      dispose: () => {
        calls.disposed++;
        if (calls.disposed > 1) throw new Error('Session already disposed.');
      },
    },
  };
  return { handle: handle as ModelSession, calls };
}

const X: Record<string, Tensor> = { x: { datatype: 'FP32', shape: [1], data: Float32Array.of(1) } };
const UNKNOWN =
  "Non-zero status code returned while running OneHotEncoder node. Name:'preprocess_oneHot[city]' Status Message: Unknown Category and zeros = 0.";
const throwing = (m: string) => (): never => {
  throw new Error(m);
};

describe('a failing native run', () => {
  it('is mapped, and the engine answers a rejected promise rather than throwing', async () => {
    const unknown = fakeSession(throwing(UNKNOWN));
    let p: Promise<unknown> | undefined;
    expect(() => {
      p = engine.run(unknown.handle, X, ['y']);
    }).not.toThrow();
    const e = await failure(p!);
    expect(e).toMatchObject({ status: 400, code: 'UNKNOWN_CATEGORY' });
    expect(e.message).toMatch(/^input 'city' /);

    const other = fakeSession(throwing(`  device\n  lost:\t${'x'.repeat(600)}`));
    const f = await failure(engine.run(other.handle, X, ['y']));
    expect(f).toMatchObject({ status: 400, code: 'INFERENCE_FAILED' });
    expect(f.message).toBe(`the model could not run on this input: device lost: ${'x'.repeat(487)}…`);
  });

  it('is over when run returns: release right after frees the session at once, and a second release is harmless', async () => {
    const { handle, calls } = fakeSession(throwing(UNKNOWN));
    const p = failure(engine.run(handle, X, ['y']));
    expect(calls.runs).toBe(1);
    await engine.release(handle);
    expect(calls.disposed).toBe(1);
    expect(await p).toMatchObject({ code: 'UNKNOWN_CATEGORY' });
    await expect(engine.release(handle)).resolves.toBeUndefined();
    expect(calls.disposed).toBe(2);
  });
});

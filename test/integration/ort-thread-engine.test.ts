/**
 * onnxruntime in a thread of its own (functions/adapters/ort-thread-engine.ts), against the synchronous engine on
 * the main thread: the same outputs for every element type a model here takes (FP16 as its bits, BYTES as strings,
 * INT64 as BigInt64Array), the same errors (a run the model cannot do is 400 INFERENCE_FAILED; a tensor that cannot
 * be built is not), the caller's arrays left as they were, the main thread free while a run goes on, and a thread
 * that closes (what was sent before answered) or stops (its calls rejected), its sessions refused, a new thread
 * for what comes next.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { OrtThreadEngine } from '../../functions/adapters/ort-thread-engine';
import { BadRequestError } from '../../functions/domain/errors';
import type { Tensor } from '../../functions/domain/tensor';
import { buildMlp, buildModel, ElemType, type ElemTypeCode } from '../../functions/local/onnx-builder';

const thread = new OrtThreadEngine({ threads: 1 });
const main = new OrtEngine({ threads: 1 });
afterAll(() => thread.close());

/** `y = Identity(x)` of one element type, batch dimension dynamic. */
function identity(elemType: ElemTypeCode): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', elemType, shape: ['n', 2] }],
    outputs: [{ name: 'y', elemType, shape: ['n', 2] }],
    nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
  });
}

const CASES: [string, ElemTypeCode, Tensor][] = [
  [
    'FP32',
    ElemType.FLOAT,
    { datatype: 'FP32', shape: [2, 2], data: Float32Array.of(-0, 1.5, Number.NaN, 3e38) },
  ],
  ['FP64', ElemType.DOUBLE, { datatype: 'FP64', shape: [1, 2], data: Float64Array.of(Math.PI, -1e-300) }],
  [
    'FP16',
    ElemType.FLOAT16,
    { datatype: 'FP16', shape: [2, 2], data: Uint16Array.of(0x3c00, 0x8000, 0x7e01, 1) },
  ],
  [
    'INT64',
    ElemType.INT64,
    { datatype: 'INT64', shape: [1, 2], data: BigInt64Array.of(-(2n ** 63n), 2n ** 62n) },
  ],
  ['INT8', ElemType.INT8, { datatype: 'INT8', shape: [1, 2], data: Int8Array.of(-128, 127) }],
  ['BOOL', ElemType.BOOL, { datatype: 'BOOL', shape: [1, 2], data: Uint8Array.of(1, 0) }],
  ['BYTES', ElemType.STRING, { datatype: 'BYTES', shape: [2, 2], data: ['', 'é€😀', 'a', 'b'] }],
];

/** What a call rejects with (failing the test when it answers). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('onnxruntime in a thread of its own', () => {
  it.each(CASES)('answers %s as the engine on the main thread does', async (_name, elemType, x) => {
    const bytes = identity(elemType);
    const [t, m] = [await thread.createSession(bytes), await main.createSession(bytes)];
    expect(t.inputNames).toEqual(['x']);
    expect(t.outputNames).toEqual(['y']);
    const got = await thread.run(t, { x }, ['y']);
    const want = await main.run(m, { x }, ['y']);
    expect(got.y!.datatype).toBe(want.y!.datatype);
    expect(got.y!.shape).toEqual(want.y!.shape);
    expect(got.y!.data).toEqual(want.y!.data);
    expect(got.y!.data.constructor).toBe(want.y!.data.constructor);
    await Promise.all([thread.release(t), main.release(m)]);
  });

  it('runs an MLP on a view of a larger array and leaves the array as it was', async () => {
    const bytes = buildMlp({ inFeatures: 8, layers: [16, 3], seed: 9 });
    const [t, m] = [await thread.createSession(bytes), await main.createSession(bytes)];
    const all = Float32Array.from({ length: 80 }, (_, i) => Math.sin(i));
    const before = all.slice();
    const view = all.subarray(16, 16 + 5 * 8);
    const x: Tensor = { datatype: 'FP32', shape: [5, 8], data: view };
    const got = await thread.run(t, { input: x }, ['output']);
    const want = await main.run(m, { input: x }, ['output']);
    expect(got.output!.shape).toEqual([5, 3]);
    expect(got.output!.data).toEqual(want.output!.data);
    // Not moved to the thread: the caller's buffer is whole and unchanged.
    expect(all.buffer.byteLength).toBe(320);
    expect(all).toEqual(before);
    await Promise.all([thread.release(t), main.release(m)]);
  });

  it('leaves the main thread free while a run goes on', async () => {
    const bytes = buildMlp({ inFeatures: 512, layers: [1024, 512, 10], seed: 2 });
    const s = await thread.createSession(bytes);
    const x: Tensor = { datatype: 'FP32', shape: [256, 512], data: new Float32Array(256 * 512).fill(0.5) };
    // Each timer turn notes how many runs had answered. An engine that held the event loop would answer all
    // eight before any timer could fire; a free loop fires timers while runs are still pending. (How many
    // turns fire depends on the machine's load; that one fires before the last answer does not.)
    let answered = 0;
    const seen: number[] = [];
    const counting = setInterval(() => seen.push(answered), 0);
    const runs = [];
    for (let i = 0; i < 8; i++) {
      runs.push(
        thread.run(s, { input: x }, ['output']).then((o) => {
          answered++;
          return o;
        }),
      );
    }
    const outs = await Promise.all(runs);
    clearInterval(counting);
    expect(outs.every((o) => o.output!.shape[0] === 256)).toBe(true);
    expect(
      seen.some((n) => n < runs.length),
      `answers seen by the timer turns: ${seen}`,
    ).toBe(true);
    await thread.release(s);
  });

  it('rejects a run the model cannot do as 400 INFERENCE_FAILED, and a tensor it cannot build as it is', async () => {
    const s = await thread.createSession(buildMlp({ inFeatures: 4, layers: [3], seed: 1 }));
    const wrong = await rejection(
      thread.run(s, { input: { datatype: 'FP32', shape: [1, 5], data: new Float32Array(5) } }, ['output']),
    );
    expect(wrong).toBeInstanceOf(BadRequestError);
    expect((wrong as BadRequestError).code).toBe('INFERENCE_FAILED');
    expect(wrong.message).toMatch(/^the model could not run on this input: .*input/);
    const unbuildable = await rejection(
      thread.run(s, { input: { datatype: 'FP32', shape: [1, 4], data: new Float32Array(3) } }, ['output']),
    );
    expect(unbuildable).not.toBeInstanceOf(BadRequestError);
    expect(unbuildable.message).toMatch(/onnxruntime thread: .*size/i);
    // The session still runs.
    const ok = await thread.run(
      s,
      { input: { datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) } },
      ['output'],
    );
    expect(ok.output!.shape).toEqual([1, 3]);
    await thread.release(s);
    const released = await rejection(
      thread.run(s, { input: { datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) } }, ['output']),
    );
    expect(released.message).toMatch(/released/);
  });

  it('closes after answering what was sent before; a thread that stops rejects what it had pending; then a new one', async () => {
    const engine = new OrtThreadEngine();
    const bytes = buildMlp({ inFeatures: 512, layers: [1024, 512, 10], seed: 2 });
    const s = await engine.createSession(bytes);
    const x: Tensor = { datatype: 'FP32', shape: [256, 512], data: new Float32Array(256 * 512) };
    // Runs sent before the close are answered: no run is cut off half-way.
    const pending = [1, 2, 3].map(() => engine.run(s, { input: x }, ['output']));
    await engine.close();
    const answered = await Promise.all(pending);
    expect(answered.map((o) => o.output!.shape)).toEqual([
      [256, 10],
      [256, 10],
      [256, 10],
    ]);
    // The thread's sessions went with it: an old handle is refused, not run in the next thread.
    const old = await rejection(engine.run(s, { input: x }, ['output']));
    expect(old.message).toMatch(/lost with the thread/);
    // A thread that stops on its own (here: before it answered its first message) rejects what it had pending.
    const starting = engine.init();
    await (engine as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    expect((await rejection(starting)).message).toMatch(/onnxruntime thread stopped/);
    const again = await engine.createSession(bytes);
    const out = await engine.run(again, { input: x }, ['output']);
    expect(out.output!.shape).toEqual([256, 10]);
    await engine.release(again);
    await engine.close();
  });
});

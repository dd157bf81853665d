/**
 * The onnxruntime warm-up: the model it creates a session of at INIT is the builder's and runs in onnxruntime-node;
 * and the engine's sessions over it: create, run, and release (a run is over when it returns, so a release after it frees the session at once).
 */
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { OrtEngine, WARM_UP_MODEL } from '../../functions/adapters/ort-engine';
import { warmUpModel } from '../../functions/local/onnx-builder';

describe('onnxruntime warm-up', () => {
  it('uses the bytes the builder makes for the identity model', () => {
    expect(Buffer.from(WARM_UP_MODEL).equals(Buffer.from(warmUpModel()))).toBe(true);
  });

  it('is a model onnxruntime loads and runs', async () => {
    const session = await ort.InferenceSession.create(WARM_UP_MODEL);
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(3.5), [1]) });
    expect(Array.from(out.y!.data as Float32Array)).toEqual([3.5]);
    await session.release();
  });
});

describe('OrtEngine sessions', () => {
  const feeds = { x: { datatype: 'FP32', shape: [1], data: Float32Array.of(3.5) } } as const;

  it('creates, runs and releases a session in domain tensor terms', async () => {
    const engine = new OrtEngine();
    const session = await engine.createSession(WARM_UP_MODEL);
    expect(session.inputNames).toEqual(['x']);
    expect(session.outputNames).toEqual(['y']);
    const out = await engine.run(session, feeds, ['y']);
    expect(out.y).toEqual({ datatype: 'FP32', shape: [1], data: Float32Array.of(3.5) });
    await engine.release(session);
    await expect(engine.run(session, feeds, ['y'])).rejects.toMatchObject({ code: 'INFERENCE_FAILED' });
  });

  it('answers a run issued before a release, and refuses one issued after it', async () => {
    const engine = new OrtEngine();
    const session = await engine.createSession(WARM_UP_MODEL);
    const running = engine.run(session, feeds, ['y']);
    await engine.release(session);
    expect((await running).y?.data).toEqual(Float32Array.of(3.5));
    await new Promise((resolve) => setImmediate(resolve));
    await expect(engine.run(session, feeds, ['y'])).rejects.toMatchObject({ code: 'INFERENCE_FAILED' });
  });
});

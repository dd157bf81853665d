/**
 * The onnxruntime warm-up: the model it creates a session of at INIT is the builder's and runs in onnxruntime-node.
 */
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { WARM_UP_MODEL } from '../../functions/adapters/ort-engine';
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

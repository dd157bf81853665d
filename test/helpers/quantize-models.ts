/** Models the int8 tests share (the accuracy test and the gate's own test quantise the same small Gemm model). */
import { buildModel, ElemType, seededRandom } from '../../functions/local/onnx-builder';

/** x [batch, 128] -> Gemm(transB = 1, W1 [64, 128], b1) -> Relu -> Gemm(W2 [64, 10], b2, beta 0.5) -> logits. */
export function smallGemm(): Uint8Array {
  const rand = seededRandom(5);
  const uniform = (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  return buildModel({
    name: 'small-gemm',
    inputs: [{ name: 'input', elemType: ElemType.FLOAT, shape: ['batch', 128] }],
    outputs: [{ name: 'output', elemType: ElemType.FLOAT, shape: ['batch', 10] }],
    nodes: [
      { opType: 'Gemm', inputs: ['input', 'W1', 'b1'], outputs: ['h'], attributes: { transB: 1 } },
      { opType: 'Relu', inputs: ['h'], outputs: ['r'] },
      { opType: 'Gemm', inputs: ['r', 'W2', 'b2'], outputs: ['output'], attributes: { beta: 0.5 } },
    ],
    initializers: [
      {
        name: 'W1',
        elemType: ElemType.FLOAT,
        dims: [64, 128],
        floats: uniform(64 * 128, Math.sqrt(6 / 128)),
      },
      { name: 'b1', elemType: ElemType.FLOAT, dims: [64], floats: uniform(64, 0.05) },
      { name: 'W2', elemType: ElemType.FLOAT, dims: [64, 10], floats: uniform(64 * 10, Math.sqrt(6 / 64)) },
      { name: 'b2', elemType: ElemType.FLOAT, dims: [10], floats: uniform(10, 0.05) },
    ],
  });
}

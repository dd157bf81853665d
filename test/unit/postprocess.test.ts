import { describe, expect, it } from 'vitest';
import {
  applyPostprocess,
  argmax,
  checkPostprocess,
  postprocessOutputNames,
  postprocessOutputSpecs,
  servedOutputSpecs,
  softmax,
  topK,
} from '../../functions/domain/postprocess';
import type { Tensor } from '../../functions/domain/tensor';
import type { ModelSignature } from '../../functions/domain/types';

const logits: Tensor = { datatype: 'FP32', shape: [2, 3], data: Float32Array.from([1, 3, 2, 0, 0, 5]) };
const values = (t: Tensor) => Array.from(t.data as ArrayLike<number | bigint | string>);

describe('post-processing', () => {
  it('softmax normalises each row over the last axis', () => {
    const p = softmax(logits);
    const d = p.data as Float32Array;
    expect(d[0]! + d[1]! + d[2]!).toBeCloseTo(1, 6);
    expect(d[3]! + d[4]! + d[5]!).toBeCloseTo(1, 6);
    expect(d[1]).toBeCloseTo(Math.exp(3) / (Math.exp(1) + Math.exp(3) + Math.exp(2)), 6);
    expect(p.shape).toEqual([2, 3]);
  });

  it('argmax picks the best class per row', () => {
    const a = argmax(logits);
    expect(a.datatype).toBe('INT64');
    expect(a.shape).toEqual([2]);
    expect(values(a)).toEqual([1n, 2n]);
  });

  it('topK returns the best k classes, best first, clamped to the class count', () => {
    const { indices, scores } = topK(logits, 2);
    expect(indices.shape).toEqual([2, 2]);
    expect(values(indices)).toEqual([1n, 2n, 2n, 0n]);
    expect(values(scores)).toEqual([3, 2, 5, 0]);
    expect(topK(logits, 10).indices.shape).toEqual([2, 3]);
  });

  it('labels decode argmax and topK indices into names', () => {
    const out = applyPostprocess({ topK: 2, softmax: true }, ['cat', 'dog', 'eel'], logits);
    expect([...out.keys()]).toEqual(['softmax', 'label', 'topk_indices', 'topk_scores', 'topk_labels']);
    expect(values(out.get('label')!)).toEqual(['dog', 'eel']);
    expect(values(out.get('topk_labels')!)).toEqual(['dog', 'eel', 'eel', 'cat']);
    const s = values(out.get('topk_scores')!) as number[];
    expect(s[0]).toBeCloseTo(Math.exp(3) / (Math.exp(1) + Math.exp(3) + Math.exp(2)), 6);
  });

  it('computes only the wanted outputs', () => {
    const out = applyPostprocess({ argmax: true, softmax: true }, undefined, logits, new Set(['argmax']));
    expect([...out.keys()]).toEqual(['argmax']);
  });

  it('names and describes the extra outputs', () => {
    expect(postprocessOutputNames(undefined)).toEqual([]);
    expect(postprocessOutputNames({ argmax: true }, ['a'])).toEqual(['argmax', 'label']);
    const sig: ModelSignature = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }],
    };
    expect(postprocessOutputSpecs({ topK: 2 }, undefined, sig)).toEqual([
      { name: 'topk_indices', datatype: 'INT64', shape: [-1, 2] },
      { name: 'topk_scores', datatype: 'FP32', shape: [-1, 2] },
    ]);
    expect(checkPostprocess({ softmax: true }, undefined, sig)).toBeUndefined();
    expect(checkPostprocess({ output: 'z', softmax: true }, undefined, sig)).toMatch(/'z'/);
    expect(checkPostprocess({ topK: 0 }, undefined, sig)).toMatch(/topK/);
  });

  it('wants one label per class where the class count is fixed, and takes any count where it is dynamic', () => {
    const sig = (shape: number[]): ModelSignature => ({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape }],
    });
    expect(checkPostprocess({ argmax: true }, ['a', 'b', 'c'], sig([-1, 3]))).toBeUndefined();
    expect(checkPostprocess({ argmax: true }, ['a', 'b'], sig([-1, 3]))).toBe(
      "labels lists 2 name(s), but output 'y' has 3 classes (its last dimension); give one label per class",
    );
    expect(checkPostprocess(undefined, ['a', 'b', 'c', 'd'], sig([-1, 3]))).toMatch(/4 name\(s\)/);
    expect(checkPostprocess(undefined, ['a', 'b'], sig([-1, -1]))).toBeUndefined();
    expect(checkPostprocess({ argmax: true }, [], sig([-1, 3]))).toBeUndefined();
  });

  it('refuses a topK larger than a fixed class count, and advertises -1 where the class count is dynamic', () => {
    const sig = (shape: number[]): ModelSignature => ({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape }],
    });
    expect(checkPostprocess({ topK: 4 }, undefined, sig([-1, 3]))).toBe(
      "topK 4 exceeds the 3 classes of output 'y' (its last dimension); give a topK of at most 3",
    );
    expect(checkPostprocess({ topK: 4 }, ['a', 'b', 'c'], sig([-1, 3]))).toMatch(/3 classes/);
    expect(checkPostprocess({ topK: 3 }, undefined, sig([-1, 3]))).toBeUndefined();
    expect(checkPostprocess({ topK: 1 }, undefined, sig([-1, 0]))).toBe(
      "topK 1 exceeds the 0 classes of output 'y' (its last dimension); give a topK of at most 0",
    );
    // Dynamic class count: any k is taken, the run-time clamp applies, and the width is advertised as -1.
    expect(checkPostprocess({ topK: 40 }, undefined, sig([-1, -1]))).toBeUndefined();
    expect(postprocessOutputSpecs({ topK: 40 }, ['a'], sig([-1, -1]))).toEqual([
      { name: 'label', datatype: 'BYTES', shape: [-1] },
      { name: 'topk_indices', datatype: 'INT64', shape: [-1, -1] },
      { name: 'topk_scores', datatype: 'FP32', shape: [-1, -1] },
      { name: 'topk_labels', datatype: 'BYTES', shape: [-1, -1] },
    ]);
    // An output of any rank (shape []) has no fixed class count either; its top-k outputs are of any rank too.
    expect(checkPostprocess({ topK: 40 }, undefined, sig([]))).toBeUndefined();
    expect(postprocessOutputSpecs({ topK: 40 }, undefined, sig([])).map((o) => o.shape)).toEqual([[], []]);
    // A version stored before the check advertises what its answers hold.
    expect(postprocessOutputSpecs({ topK: 4 }, undefined, sig([-1, 3])).map((o) => o.shape)).toEqual([
      [-1, 3],
      [-1, 3],
    ]);
  });

  it('serves the model outputs then the post-processing outputs', () => {
    const sig: ModelSignature = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }],
    };
    expect(servedOutputSpecs({ argmax: true }, ['a', 'b', 'c'], sig)).toEqual([
      { name: 'y', datatype: 'FP32', shape: [-1, 3] },
      { name: 'argmax', datatype: 'INT64', shape: [-1] },
      { name: 'label', datatype: 'BYTES', shape: [-1] },
    ]);
    expect(servedOutputSpecs(undefined, undefined, sig)).toEqual(sig.outputs);
  });
});

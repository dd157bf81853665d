import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  accuracy,
  classify,
  exportIrisModel,
  IRIS_LABELS,
  loadIris,
  parseIrisCsv,
  SAMPLE_MODEL,
  trainSoftmaxRegression,
} from '../../functions/local/sample-model';

describe('bundled iris data', () => {
  const data = loadIris();

  it('is the 150-row Fisher table: 50 per class and the classic column means', () => {
    expect(data.features).toHaveLength(150);
    for (let c = 0; c < 3; c++) expect(data.classes.filter((k) => k === c)).toHaveLength(50);
    const means = [0, 1, 2, 3].map((j) => data.features.reduce((s, r) => s + r[j]!, 0) / 150);
    expect(means[0]).toBeCloseTo(5.843, 3);
    expect(means[1]).toBeCloseTo(3.057, 3);
    expect(means[2]).toBeCloseTo(3.758, 3);
    expect(means[3]).toBeCloseTo(1.199, 3);
  });

  it('rejects a malformed row', () => {
    expect(() => parseIrisCsv('h\n5.1,3.5,1.4,0.2,rose\n')).toThrow(/malformed row/);
    expect(() => parseIrisCsv('h\n5.1,x,1.4,0.2,setosa\n')).toThrow(/malformed row/);
  });
});

describe('softmax regression', () => {
  const data = loadIris();
  const model = trainSoftmaxRegression(data);

  it('reaches at least 95% training accuracy', () => {
    expect(accuracy(model, data)).toBeGreaterThanOrEqual(0.95);
  });

  it('is deterministic', () => {
    const again = trainSoftmaxRegression(data);
    expect(Array.from(again.weights)).toEqual(Array.from(model.weights));
    expect(Array.from(again.bias)).toEqual(Array.from(model.bias));
  });

  it('an untrained model is not that accurate (the accuracy check can fail)', () => {
    const untrained = trainSoftmaxRegression(data, { iterations: 0 });
    expect(accuracy(untrained, data)).toBeLessThan(0.5);
  });

  it('exports an ONNX model whose probabilities agree with the fitted weights', async () => {
    const bytes = exportIrisModel(model);
    const session = await ort.InferenceSession.create(bytes);
    expect(session.inputNames).toEqual([SAMPLE_MODEL.inputName]);
    expect(session.outputNames).toEqual([SAMPLE_MODEL.outputName]);
    const flat = Float32Array.from(data.features.flat());
    const out = await session.run({ features: new ort.Tensor('float32', flat, [150, 4]) });
    const probs = out.probabilities!;
    expect(probs.dims).toEqual([150, 3]);
    const p = probs.data as Float32Array;
    let correct = 0;
    for (let i = 0; i < 150; i++) {
      const row = Array.from(p.subarray(i * 3, i * 3 + 3));
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      const argmax = row.indexOf(Math.max(...row));
      expect(argmax).toBe(classify(model, data.features[i]!));
      if (argmax === data.classes[i]) correct++;
    }
    expect(correct / 150).toBeGreaterThanOrEqual(0.95);
    expect(SAMPLE_MODEL.labels).toEqual([...IRIS_LABELS]);
  });
});

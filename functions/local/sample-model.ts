/**
 * The bundled sample model: an iris classifier whose weights the project computes itself from Fisher's
 * iris data (functions/local/iris.csv, 150 rows, public domain). Softmax regression on standardized
 * features, trained by plain full-batch gradient descent from zero weights (fully deterministic); the
 * standardization is folded into the exported weights so the ONNX graph is one Gemm and one Softmax.
 */
import { readFileSync } from 'node:fs';
import type { PostprocessSpec } from '../domain/types';
import { buildModel, ElemType } from './onnx-builder';

/** Class names, in the order of the model's output columns. */
export const IRIS_LABELS = ['setosa', 'versicolor', 'virginica'] as const;

/** Feature order of the model's input columns (centimetres). */
export const IRIS_FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;

/** How `maas dev` registers the sample on first start. */
export const SAMPLE_MODEL = {
  name: 'iris',
  description:
    'Iris species from sepal/petal length and width (cm); softmax regression fitted on Fisher’s iris data',
  labels: [...IRIS_LABELS] as string[],
  postprocess: { argmax: true } as PostprocessSpec,
  inputName: 'features',
  outputName: 'probabilities',
} as const;

export interface IrisDataset {
  /** 150 rows of 4 features. */
  readonly features: number[][];
  /** Class index per row (0 setosa, 1 versicolor, 2 virginica). */
  readonly classes: number[];
}

/** Parses the iris CSV (header `sepal_length,sepal_width,petal_length,petal_width,species`). */
export function parseIrisCsv(text: string): IrisDataset {
  const features: number[][] = [];
  const classes: number[] = [];
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  for (const line of lines.slice(1)) {
    const cells = line.split(',');
    const species = cells[4]?.trim() ?? '';
    const cls = (IRIS_LABELS as readonly string[]).indexOf(species);
    const row = cells.slice(0, 4).map(Number);
    if (cls < 0 || row.length !== 4 || row.some((v) => !Number.isFinite(v))) {
      throw new Error(`iris.csv: malformed row '${line}'`);
    }
    features.push(row);
    classes.push(cls);
  }
  return { features, classes };
}

/** The bundled dataset. */
export function loadIris(): IrisDataset {
  return parseIrisCsv(readFileSync(new URL('./iris.csv', import.meta.url), 'utf8'));
}

export interface LinearClassifier {
  /** Row-major `[4, 3]` weights on raw (unstandardized) features, as Gemm's B input. */
  readonly weights: Float32Array;
  /** `[3]` biases. */
  readonly bias: Float32Array;
}

export interface TrainOptions {
  readonly iterations?: number;
  readonly learningRate?: number;
  /** L2 penalty on the weights (not the biases). */
  readonly l2?: number;
}

/** Fits multinomial logistic regression by full-batch gradient descent; same data in, same weights out. */
export function trainSoftmaxRegression(data: IrisDataset, opts: TrainOptions = {}): LinearClassifier {
  const iterations = opts.iterations ?? 3000;
  const lr = opts.learningRate ?? 0.5;
  const l2 = opts.l2 ?? 1e-4;
  const n = data.features.length;
  const d = 4;
  const k = IRIS_LABELS.length;
  const mean = new Array<number>(d).fill(0);
  const std = new Array<number>(d).fill(0);
  for (const row of data.features) for (let j = 0; j < d; j++) mean[j]! += row[j]! / n;
  for (const row of data.features) for (let j = 0; j < d; j++) std[j]! += (row[j]! - mean[j]!) ** 2 / n;
  for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]!) || 1;
  const z = data.features.map((row) => row.map((v, j) => (v - mean[j]!) / std[j]!));

  const w = new Float64Array(d * k); // w[j * k + c]
  const b = new Float64Array(k);
  const gw = new Float64Array(d * k);
  const gb = new Float64Array(k);
  const p = new Float64Array(k);
  for (let it = 0; it < iterations; it++) {
    gw.fill(0);
    gb.fill(0);
    for (let i = 0; i < n; i++) {
      const x = z[i]!;
      softmaxInto(x, w, b, p);
      p[data.classes[i]!]! -= 1;
      for (let c = 0; c < k; c++) {
        gb[c]! += p[c]! / n;
        for (let j = 0; j < d; j++) gw[j * k + c]! += (p[c]! * x[j]!) / n;
      }
    }
    for (let q = 0; q < d * k; q++) w[q]! -= lr * (gw[q]! + l2 * w[q]!);
    for (let c = 0; c < k; c++) b[c]! -= lr * gb[c]!;
  }

  // Fold the standardization in: logits = ((x - mean) / std) W + b = x (W / std) + (b - Σ mean W / std).
  const weights = new Float32Array(d * k);
  const bias = new Float32Array(k);
  for (let c = 0; c < k; c++) {
    let shift = 0;
    for (let j = 0; j < d; j++) {
      const folded = w[j * k + c]! / std[j]!;
      weights[j * k + c] = folded;
      shift += mean[j]! * folded;
    }
    bias[c] = b[c]! - shift;
  }
  return { weights, bias };
}

function softmaxInto(x: readonly number[], w: Float64Array, b: Float64Array, out: Float64Array): void {
  const k = out.length;
  let max = -Infinity;
  for (let c = 0; c < k; c++) {
    let s = b[c]!;
    for (let j = 0; j < x.length; j++) s += x[j]! * w[j * k + c]!;
    out[c] = s;
    if (s > max) max = s;
  }
  let sum = 0;
  for (let c = 0; c < k; c++) {
    out[c] = Math.exp(out[c]! - max);
    sum += out[c]!;
  }
  for (let c = 0; c < k; c++) out[c]! /= sum;
}

/** Class index the classifier predicts for one row of raw features. */
export function classify(model: LinearClassifier, row: readonly number[]): number {
  const k = model.bias.length;
  let best = 0;
  let bestScore = -Infinity;
  for (let c = 0; c < k; c++) {
    let s = model.bias[c]!;
    for (let j = 0; j < row.length; j++) s += row[j]! * model.weights[j * k + c]!;
    if (s > bestScore) {
      bestScore = s;
      best = c;
    }
  }
  return best;
}

/** Fraction of rows classified correctly. */
export function accuracy(model: LinearClassifier, data: IrisDataset): number {
  let ok = 0;
  data.features.forEach((row, i) => {
    if (classify(model, row) === data.classes[i]) ok++;
  });
  return ok / data.features.length;
}

/** Exports a classifier as ONNX: `features` FP32 [-1,4] -> Gemm -> Softmax -> `probabilities` FP32 [-1,3]. */
export function exportIrisModel(model: LinearClassifier): Uint8Array {
  return buildModel({
    name: 'iris-softmax-regression',
    inputs: [{ name: SAMPLE_MODEL.inputName, elemType: ElemType.FLOAT, shape: ['batch', 4] }],
    outputs: [{ name: SAMPLE_MODEL.outputName, elemType: ElemType.FLOAT, shape: ['batch', 3] }],
    initializers: [
      { name: 'W', elemType: ElemType.FLOAT, dims: [4, 3], floats: model.weights },
      { name: 'B', elemType: ElemType.FLOAT, dims: [3], floats: model.bias },
    ],
    nodes: [
      { opType: 'Gemm', inputs: [SAMPLE_MODEL.inputName, 'W', 'B'], outputs: ['logits'] },
      {
        opType: 'Softmax',
        inputs: ['logits'],
        outputs: [SAMPLE_MODEL.outputName],
        attributes: { axis: -1 },
      },
    ],
  });
}

/** Trains on the bundled data and returns the ONNX bytes of the sample model. */
export function buildIrisModel(): Uint8Array {
  return exportIrisModel(trainSoftmaxRegression(loadIris()));
}

/**
 * The accuracy of `quantize: int8` against the FP32 parent, under onnxruntime with the predict path's session
 * options, on the bench MLP (512-1024-512-10, Gemm + Relu) and on a small Gemm model (transB, bias): argmax
 * agreement on 1 000 zero-centred random inputs that are not near-ties, and the size of the int8 model.
 *
 * Near-ties: an input whose two largest FP32 logits are closer than NEAR_TIE_MARGIN (the accuracy gate's `nearTieMargin`, 2 %) of the range of its
 * logits (max − min) is drawn again. Which of two almost equal classes wins is not a decision the model makes
 * reliably even in FP32 (a different summation order flips it), and int8 moves the MLP's logits by up to
 * 0.006–0.012 (max |int8 − FP32| over the sample, by form), 1–2.5 % of their median range (0.46). About 7 % of
 * the MLP's random inputs, 8 % of the small Gemm model's, are such near-ties.
 *
 * Asserted: the default form (`defaultReduceRange()`, per tensor) agrees on ≥ 99 % and is ≤ 0.3× the parent's
 * size. The other forms (8-bit or 7-bit weights, per tensor or per column) are measured and printed.
 */
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { DERIVE_DEFAULTS, rowsAboveMargin } from '../../functions/domain/derive';
import { buildMlp, seededRandom } from '../../functions/local/onnx-builder';
import { defaultReduceRange, quantizeInt8 } from '../../functions/transforms/quantize';
import { smallGemm } from '../helpers/quantize-models';

/** The FP32 top-2 gap, as a fraction of the row's logit range, below which an input is a near-tie: the gate's own. */
const NEAR_TIE_MARGIN = DERIVE_DEFAULTS.nearTieMargin;
const ROWS = 1000;
const MIN_AGREEMENT = 0.99;
const MAX_SIZE_RATIO = 0.3;

const options = new OrtEngine({ threads: 1 }).sessionOptions;

interface Case {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly inFeatures: number;
  readonly classes: number;
  /** Its MatMul and Gemm nodes with constant weights. */
  readonly layers: number;
}

const CASES: Case[] = [
  {
    name: 'bench MLP 512-1024-512-10',
    bytes: buildMlp({ inFeatures: 512, layers: [1024, 512, 10], seed: 2 }),
    inFeatures: 512,
    classes: 10,
    layers: 3,
  },
  { name: 'small Gemm 128-64-10', bytes: smallGemm(), inFeatures: 128, classes: 10, layers: 2 },
];

const argmax = (v: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
};

/** Runs one row (batch 1, as requests are served). */
async function logits(session: ort.InferenceSession, row: Float32Array): Promise<Float32Array> {
  const out = await session.run({ input: new ort.Tensor('float32', row, [1, row.length]) });
  return out.output!.data as Float32Array;
}

/** ROWS zero-centred uniform inputs in [-1, 1) whose FP32 top-2 gap is at least the margin, and their logits. */
async function sample(c: Case, fp32: ort.InferenceSession) {
  const rand = seededRandom(c.inFeatures * 31 + 1);
  const rows: Float32Array[] = [];
  const reference: Float32Array[] = [];
  let drawn = 0;
  while (rows.length < ROWS && drawn < ROWS * 3) {
    drawn++;
    const row = Float32Array.from({ length: c.inFeatures }, () => rand() * 2 - 1);
    const y = await logits(fp32, row);
    if (rowsAboveMargin({ datatype: 'FP32', shape: [1, y.length], data: y }, NEAR_TIE_MARGIN).length === 0)
      continue;
    rows.push(row);
    reference.push(y);
  }
  return { rows, reference, drawn };
}

const measured: Record<string, unknown>[] = [];
afterAll(() => {
  console.info(
    `int8 accuracy (margin ${NEAR_TIE_MARGIN} of the logit range):\n${measured.map((m) => JSON.stringify(m)).join('\n')}`,
  );
});

describe('int8 quantisation: argmax agreement with the FP32 parent and size', () => {
  for (const c of CASES) {
    it(`${c.name}: the default int8 form agrees on ≥ 99 % of 1 000 non-tie inputs and is ≤ 0.3× the size`, async () => {
      const fp32 = await ort.InferenceSession.create(c.bytes, options);
      const { rows, reference, drawn } = await sample(c, fp32);
      expect(rows).toHaveLength(ROWS);
      const forms = [
        { reduceRange: defaultReduceRange(), perChannel: false, asserted: true },
        { reduceRange: !defaultReduceRange(), perChannel: false, asserted: false },
        { reduceRange: true, perChannel: true, asserted: false },
        { reduceRange: false, perChannel: true, asserted: false },
      ];
      for (const form of forms) {
        const q = quantizeInt8(c.bytes, form);
        expect(q.quantized).toHaveLength(c.layers);
        const session = await ort.InferenceSession.create(q.model, options);
        let agree = 0;
        let maxAbs = 0;
        for (let i = 0; i < ROWS; i++) {
          const y = await logits(session, rows[i]!);
          if (argmax(y) === argmax(reference[i]!)) agree++;
          for (let j = 0; j < c.classes; j++) maxAbs = Math.max(maxAbs, Math.abs(y[j]! - reference[i]![j]!));
        }
        await session.release();
        const agreement = agree / ROWS;
        const sizeRatio = q.model.length / c.bytes.length;
        measured.push({
          model: c.name,
          reduceRange: form.reduceRange,
          perChannel: form.perChannel,
          agreement,
          maxAbs: Number(maxAbs.toPrecision(3)),
          sizeRatio: Number(sizeRatio.toFixed(3)),
          nearTiesRedrawn: drawn - ROWS,
        });
        if (form.asserted) {
          expect(agreement).toBeGreaterThanOrEqual(MIN_AGREEMENT);
          expect(sizeRatio).toBeLessThanOrEqual(MAX_SIZE_RATIO);
        }
      }
      await fp32.release();
    });
  }
});

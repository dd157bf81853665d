/**
 * The accuracy gate of derived versions, checked from outside on DynamoDB Local + s3rver + onnxruntime-node:
 * the rows the gate compares are recorded as it runs them (a recording engine around the real one) and checked
 * against an onnxruntime session of the parent's own.
 *
 * - int8 of the bench MLP and of a small Gemm model (transB, bias, beta) pass the gate on 1 000 generated rows,
 *   every one of them clear of the near-tie margin (the parent's top-2 gap at least `nearTieMargin`), the
 *   near-ties left out counted, the agreement recorded the one the rows give, and the int8 artifact ≤ 0.3× the
 *   parent's size.
 * - The near-tie rule decides: a derived model that differs from its parent only on near-ties passes when they
 *   are left out, and fails the same gate with a margin of 0.
 * - A user sample is used as given: its near-ties are compared too, none left out.
 */
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { OnnxModelTransformer } from '../../functions/adapters/onnx-transformer';
import { OrtEngine, sharedOrtEngine } from '../../functions/adapters/ort-engine';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { S3ArtifactStore } from '../../functions/adapters/s3-artifact-store';
import { type DeriveDeps, runDerive } from '../../functions/app/derive';
import { S3_KEYS } from '../../functions/contract/env';
import { DERIVE_DEFAULTS, type DeriveMessage, DeriveMessageSchema } from '../../functions/domain/derive';
import type { Tensor } from '../../functions/domain/tensor';
import { createRegistryHandler } from '../../functions/handlers/registry';
import { buildMlp, buildModel, ElemType } from '../../functions/local/onnx-builder';
import type { DeriveTransformer } from '../../functions/ports/derive';
import type { InferenceEngine, ModelSession } from '../../functions/ports/inference';
import { type ApiEventOptions, apiEvent, parseResult } from '../helpers/apigw';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { smallGemm } from '../helpers/quantize-models';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected loosely in assertions
type Json = Record<string, any>;

/** `output = input · W + b`, FP32, `input` [batch, rows of W], `output` [batch, columns of W]. */
function linear(w: number[][], b: number[]): Uint8Array {
  const n = w.length;
  const k = b.length;
  return buildModel({
    name: 'linear',
    inputs: [{ name: 'input', elemType: ElemType.FLOAT, shape: ['batch', n] }],
    outputs: [{ name: 'output', elemType: ElemType.FLOAT, shape: ['batch', k] }],
    nodes: [
      { opType: 'MatMul', inputs: ['input', 'W'], outputs: ['z'] },
      { opType: 'Add', inputs: ['z', 'b'], outputs: ['output'] },
    ],
    initializers: [
      { name: 'W', elemType: ElemType.FLOAT, dims: [n, k], floats: w.flat() },
      { name: 'b', elemType: ElemType.FLOAT, dims: [k], floats: b },
    ],
  });
}

/** One run of the gate, as the recording engine saw it. */
interface Run {
  readonly role: 'parent' | 'child';
  readonly feeds: Readonly<Record<string, Tensor>>;
  readonly outputs: Readonly<Record<string, Tensor>>;
}

/**
 * The real engine, recording each run: sessions created in turn by one gate are the parent's, then the derived
 * model's (runGate creates them in that order).
 */
class RecordingEngine implements InferenceEngine {
  readonly runs: Run[] = [];
  private readonly roles = new Map<ModelSession, Run['role']>();
  constructor(private readonly real: InferenceEngine) {}
  reset(): void {
    this.runs.length = 0;
    this.roles.clear();
  }
  async createSession(bytes: Uint8Array): Promise<ModelSession> {
    const s = await this.real.createSession(bytes);
    this.roles.set(s, this.roles.size === 0 ? 'parent' : 'child');
    return s;
  }
  async run(s: ModelSession, feeds: Readonly<Record<string, Tensor>>, names: readonly string[]) {
    const outputs = await this.real.run(s, feeds, names);
    this.runs.push({ role: this.roles.get(s)!, feeds, outputs });
    return outputs;
  }
  release(s: ModelSession): Promise<void> {
    return this.real.release(s);
  }
}

/** A transformer that answers `model` whatever it is asked (a derived model of the test's choosing). */
const answering = (model: Uint8Array): DeriveTransformer => ({
  apply: async () => model,
  resolve: (t) => [...t],
});

const rowsOf = (t: Tensor) => t.shape[0] ?? 1;

/** The rows of `data` ([rows, k], flat) as arrays. */
function rows(data: ArrayLike<number>, k: number): number[][] {
  return Array.from({ length: data.length / k }, (_, r) =>
    Array.from({ length: k }, (_, j) => data[r * k + j]!),
  );
}
const argmax = (v: readonly number[]) => v.reduce((best, x, i) => (x > v[best]! ? i : best), 0);
/** The top-2 gap over the row's range: the gate's near-tie rule, computed here on its own. */
const topGap = (v: readonly number[]) => {
  const sorted = [...v].sort((x, y) => y - x);
  const range = sorted[0]! - sorted.at(-1)!;
  return range > 0 ? (sorted[0]! - sorted[1]!) / range : 0;
};

const options = new OrtEngine({ threads: 1 }).sessionOptions;

/** `model` run by an onnxruntime session of the test's own, on the FP32 `input` [n, features]. */
async function logits(model: Uint8Array, input: Float32Array, n: number, k: number): Promise<number[][]> {
  const s = await ort.InferenceSession.create(model, options);
  try {
    const out = await s.run({ input: new ort.Tensor('float32', input, [n, input.length / n]) });
    return rows(out.output!.data as Float32Array, k);
  } finally {
    await s.release();
  }
}

describe('the accuracy gate of derived versions (DynamoDB Local, s3rver, onnxruntime)', () => {
  let env: TestAwsEnv;
  let deps: DeriveDeps;
  const engine = new RecordingEngine(sharedOrtEngine());
  const sent: DeriveMessage[] = [];

  beforeAll(async () => {
    env = await createTestAwsEnv('gate');
    deps = {
      repo: new DynamoRegistryRepository({ doc: env.doc, table: env.table }),
      store: new S3ArtifactStore({ s3: env.s3, bucket: env.bucket }),
      inspector: new OrtModelInspector(),
      transformer: new OnnxModelTransformer(),
      engine,
    };
  });
  afterAll(() => env?.dispose());

  const handler = () =>
    createRegistryHandler({
      repo: deps.repo,
      store: deps.store,
      inspector: deps.inspector,
      queue: {
        send: async (m) => {
          sent.push(DeriveMessageSchema.parse(m));
          return `m-${sent.length}`;
        },
      },
    });
  const call = async (method: string, path: string, opts: ApiEventOptions = {}) =>
    parseResult<Json>(await handler()(apiEvent(method, path, opts)));
  let uploads = 0;
  const upload = async (name: string, bytes: Uint8Array) => {
    const id = `u-${++uploads}`;
    await deps.store.putObject(S3_KEYS.upload(name, id), bytes);
    return id;
  };
  const register = async (name: string, bytes: Uint8Array) => {
    const r = await call('POST', `/models/${name}/versions`, {
      body: { uploadId: await upload(name, bytes) },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body;
  };
  /** Derives version 2 of `name` from version 1 with `body` and runs the worker on it, recording the gate. */
  const derive = async (name: string, body: Json, d: Partial<DeriveDeps> = {}) => {
    const r = await call('POST', `/models/${name}/versions/1/derive`, { body });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    engine.reset();
    const outcome = await runDerive({ ...deps, ...d }, sent.at(-1)!);
    const v = (await call('GET', `/models/${name}/versions/${r.body.version}`)).body;
    return { outcome, v };
  };

  it.each([
    {
      what: 'the bench MLP 512-1024-512-10',
      name: 'bench',
      bytes: buildMlp({ inFeatures: 512, layers: [1024, 512, 10], seed: 2 }),
    },
    { what: 'a small Gemm model 128-64-10 (transB, bias, beta)', name: 'gemm', bytes: smallGemm() },
  ])(
    'int8 of $what passes the gate on 1 000 generated rows, none a near-tie, and is ≤ 0.3× its parent',
    { timeout: 180_000 },
    async ({ name, bytes }) => {
      const parent = await register(name, bytes);
      const { outcome, v } = await derive(name, { transforms: [{ quantize: 'int8' }] });
      expect(outcome, v.failureReason).toBe('READY');
      expect(v.sizeBytes / parent.sizeBytes).toBeLessThanOrEqual(0.3);
      const margin = DERIVE_DEFAULTS.nearTieMargin;
      expect(v.evaluation).toMatchObject({
        rows: 1000,
        source: 'generated',
        passed: true,
        thresholds: { minAgreement: 0.99, rows: 1000, nearTieMargin: margin },
      });

      // The rows the derived model was compared on, each checked on the parent by a session of the test's own.
      const childRuns = engine.runs.filter((r) => r.role === 'child');
      const parentRuns = engine.runs.filter((r) => r.role === 'parent');
      const compared = childRuns.reduce((n, r) => n + rowsOf(r.feeds.input!), 0);
      expect(compared).toBe(1000);
      const generated = parentRuns.reduce((n, r) => n + rowsOf(r.feeds.input!), 0);
      expect(generated - compared).toBe(v.evaluation.nearTiesExcluded);
      // Near-ties were met and left out, exactly those below the margin.
      const below = parentRuns
        .flatMap((r) => rows(r.outputs.output!.data as Float32Array, 10))
        .filter((y) => topGap(y) < margin).length;
      expect(below).toBe(v.evaluation.nearTiesExcluded);
      expect(below).toBeGreaterThan(0);

      const int8 = await deps.store.getObject(S3_KEYS.model(name, v.sha256));
      let agree = 0;
      for (const run of childRuns) {
        const x = run.feeds.input!.data as Float32Array;
        const n = rowsOf(run.feeds.input!);
        const fp32 = await logits(bytes, x, n, 10);
        const q = await logits(int8, x, n, 10);
        for (let i = 0; i < n; i++) {
          expect(topGap(fp32[i]!)).toBeGreaterThanOrEqual(margin);
          if (argmax(q[i]!) === argmax(fp32[i]!)) agree++;
        }
      }
      expect(agree / 1000).toBeGreaterThanOrEqual(0.99);
      expect(v.evaluation.argmaxAgreement).toBe(agree / 1000);
    },
  );

  // A 3-class linear model, and the same model with class 1's logit raised by EPS: the two disagree exactly on
  // rows whose class-1 logit is within EPS below the largest: near-ties, for a margin of 0.2 of the row's range,
  // on these rows (whose range is never below EPS / 0.2 here).
  const W = [
    [0.9, -0.4, 0.2],
    [-0.3, 0.8, -0.6],
    [0.5, 0.1, -0.9],
    [-0.7, 0.6, 0.4],
  ];
  const EPS = 0.02;
  const parentModel = linear(W, [0.1, 0, -0.1]);
  const raised = linear(W, [0.1, EPS, -0.1]);

  it('the near-tie rule decides: a model that differs only on near-ties passes, and fails with a margin of 0', {
    timeout: 60_000,
  }, async () => {
    await register('ties', parentModel);
    const gate = { minAgreement: 1, rows: 1000, nearTieMargin: 0.2 };
    const kept = await derive(
      'ties',
      { transforms: [{ quantize: 'int8' }], gate },
      { transformer: answering(raised) },
    );
    expect(kept.outcome, kept.v.failureReason).toBe('READY');
    expect(kept.v.evaluation).toMatchObject({ rows: 1000, argmaxAgreement: 1, passed: true });
    expect(kept.v.evaluation.nearTiesExcluded).toBeGreaterThan(0);
    // The rows compared: every one clear of the margin on the parent.
    for (const run of engine.runs.filter((r) => r.role === 'child')) {
      const x = run.feeds.input!.data as Float32Array;
      for (const y of await logits(parentModel, x, rowsOf(run.feeds.input!), 3)) {
        expect(topGap(y)).toBeGreaterThanOrEqual(0.2);
      }
    }

    const all = await derive(
      'ties',
      { transforms: [{ quantize: 'int8' }], gate: { ...gate, nearTieMargin: 0 } },
      { transformer: answering(raised) },
    );
    expect(all.outcome).toBe('FAILED');
    expect(all.v.evaluation).toMatchObject({ rows: 1000, nearTiesExcluded: 0, passed: false });
    // Every disagreement is a row the first gate left out as a near-tie.
    const disagreeing = engine.runs
      .filter((r) => r.role === 'parent')
      .flatMap((r) => rows(r.outputs.output!.data as Float32Array, 3))
      .filter((y) => argmax(y) !== 1 && y[1]! + EPS > Math.max(...y));
    expect(disagreeing.length).toBeGreaterThan(0);
    expect(disagreeing.every((y) => topGap(y) < 0.2)).toBe(true);
    expect(all.v.evaluation.argmaxAgreement).toBeCloseTo(1 - disagreeing.length / 1000, 10);
    expect(all.v.failureReason).toMatch(/^the accuracy gate failed on 1000 generated rows: argmax agreement/);
  });

  it('a gate that could compare fewer than half its rows fails, naming the numbers, though every row agrees', {
    timeout: 60_000,
  }, async () => {
    // Classes 0 and 1 differ by 0.07·x1 over a range of about 10 (class 2 sits at -10): a row is clear of the
    // default margin (0.02 of its range) only when |x1| is beyond about 2.9, so nearly every candidate is a near-tie.
    const tied = linear(
      [
        [1, 1, 0],
        [0, 0.07, 0],
        [0, 0, 0],
        [0, 0, 0],
      ],
      [0, 0, -10],
    );
    await register('tied', tied);
    // The derived model is the parent itself: every row compared agrees.
    const { outcome, v } = await derive(
      'tied',
      { transforms: [{ quantize: 'int8' }] },
      { transformer: answering(tied) },
    );
    const e = v.evaluation;
    expect(outcome).toBe('FAILED');
    expect(e).toMatchObject({ source: 'generated', argmaxAgreement: 1, passed: false });
    expect(e.rows).toBeGreaterThan(0);
    expect(e.rows).toBeLessThan(500);
    // Every candidate the gate may generate (20 per row asked for) was tried.
    expect(e.rows + e.nearTiesExcluded).toBe(1000 * 20);
    expect(v.failureReason).toBe(
      `the accuracy gate failed on ${e.rows} generated rows: only ${e.rows} of the 1000 rows asked for were compared (${e.nearTiesExcluded} near-ties left out); at least 500 must be (output: max abs diff 0, max rel diff 0)`,
    );
  });

  it('a user sample is used as given: its near-ties are compared too, none left out', {
    timeout: 60_000,
  }, async () => {
    // The identity on 3 classes: a row's logits are the row itself.
    const identity = linear(
      [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
      [0, 0, 0],
    );
    const raisedIdentity = linear(
      [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
      [0, 0.05, 0],
    );
    await register('given', identity);
    const clear = [
      [5, 0, 0],
      [0, 5, 0],
      [0, 0, 5],
      [2, -1, 0],
      [-1, 0, 3],
      [0, 4, 1],
      [1, 0, -3],
      [0, 0, 1],
    ];
    // Top-2 gaps of 0.005 and 0: near-ties by the default margin (0.01), which the raised model decides otherwise.
    const ties = [
      [1, 0.995, 0],
      [0.5, 0.5, -1],
    ];
    const line = (r: number[][]) =>
      JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [r.length, 3], data: r.flat() }] });
    const sample = `${line(clear.slice(0, 4))}\n\n${line([...ties, ...clear.slice(4, 6)])}\n${line(clear.slice(6))}\n`;
    const uploadId = await upload('given', new TextEncoder().encode(sample));
    const { outcome, v } = await derive(
      'given',
      { transforms: [{ quantize: 'int8' }], sample: { uploadId }, gate: { minAgreement: 0.5 } },
      { transformer: answering(raisedIdentity) },
    );
    expect(outcome, v.failureReason).toBe('READY');
    expect(v.evaluation).toMatchObject({
      rows: 10,
      source: 'sample',
      nearTiesExcluded: 0,
      argmaxAgreement: 0.8,
      thresholds: { minAgreement: 0.5, nearTieMargin: DERIVE_DEFAULTS.nearTieMargin },
    });
    // The derived model ran on every row of the sample, line by line, as given.
    const inputs = engine.runs
      .filter((r) => r.role === 'child')
      .map((r) => Array.from(r.feeds.input!.data as Float32Array));
    expect(inputs).toEqual([
      clear.slice(0, 4).flat(),
      [...ties, ...clear.slice(4, 6)].flat().map(Math.fround),
      clear.slice(6).flat(),
    ]);
  });
});

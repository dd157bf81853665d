/**
 * Derived versions: the request rules, the generated rows and the gate's figures (functions/domain/derive.ts), and
 * the use cases (functions/app/derive.ts) on the in-memory repository with a fake transformer and onnxruntime.
 */
import { describe, expect, it } from 'vitest';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import { OnnxModelTransformer } from '../../functions/adapters/onnx-transformer';
import { sharedOrtEngine } from '../../functions/adapters/ort-engine';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { type DeriveDeps, failDerivation, runDerive, runGate, startDerive } from '../../functions/app/derive';
import { registerVersion } from '../../functions/app/registry';
import { S3_KEYS } from '../../functions/contract/env';
import {
  checkTransforms,
  DERIVE_DEFAULTS,
  DERIVE_LIMITS,
  type DeriveMessage,
  DeriveMessageSchema,
  deriveBodySchema,
  describeTransform,
  GateTally,
  gateFailure,
  gateThresholds,
  generateFeeds,
  minComparedRows,
  parseSample,
  relativeTopGap,
  rowsAboveMargin,
  seededNormal,
  type TransformSpec,
  takeRows,
  topGap,
} from '../../functions/domain/derive';
import { BadRequestError } from '../../functions/domain/errors';
import { parseWith } from '../../functions/domain/registry';
import type { Tensor } from '../../functions/domain/tensor';
import type { ModelSignature } from '../../functions/domain/types';
import { buildMlp } from '../../functions/local/onnx-builder';
import type { DeriveTransformer, ModelTransformer } from '../../functions/ports/derive';
import { MemoryArtifactStore } from '../helpers/memory-artifact-store';

const f32 = (shape: number[], data: number[]): Tensor => ({
  datatype: 'FP32',
  shape,
  data: Float32Array.from(data),
});

describe('derive request', () => {
  it('parses the transforms, the gate and the sample', () => {
    const body = parseWith(deriveBodySchema, {
      transforms: [{ quantize: 'int8', perChannel: true }, { optimize: 'basic' }],
      sample: { uploadId: 'abc-1' },
      gate: { minAgreement: 0.95, rows: 200 },
    });
    expect(body.transforms).toHaveLength(2);
    expect(gateThresholds(body.gate)).toEqual({
      minAgreement: 0.95,
      rows: 200,
      nearTieMargin: DERIVE_DEFAULTS.nearTieMargin,
      seed: DERIVE_DEFAULTS.seed,
    });
    expect(gateThresholds()).toMatchObject({ minAgreement: 0.99, rows: 1000 });
  });

  it('refuses unknown transforms, unknown fields, an empty list and thresholds out of range', () => {
    for (const body of [
      { transforms: [{ quantize: 'int4' }] },
      { transforms: [{ prune: true }] },
      { transforms: [] },
      { transforms: [{ optimize: 'basic' }], extra: 1 },
      { transforms: [{ optimize: 'basic' }], gate: { minAgreement: 1.5 } },
      { transforms: [{ optimize: 'basic' }], gate: { rows: 0 } },
      { transforms: [{ optimize: 'basic' }], sample: { uploadId: '../x' } },
    ]) {
      expect(() => parseWith(deriveBodySchema, body), JSON.stringify(body)).toThrow(BadRequestError);
    }
  });

  it('bounds maxRelDiff by 1 and nearTieMargin by 0.5, naming the field and its range', () => {
    const refusal = (gate: Record<string, number>) => {
      try {
        parseWith(deriveBodySchema, { transforms: [{ optimize: 'basic' }], gate });
      } catch (e) {
        expect(e).toBeInstanceOf(BadRequestError);
        return [(e as BadRequestError).code, (e as BadRequestError).message];
      }
      return undefined;
    };
    expect(refusal({ maxRelDiff: 1.01 })).toEqual([
      'VALIDATION_ERROR',
      'invalid request: gate.maxRelDiff: must be from 0 to 1',
    ]);
    expect(refusal({ nearTieMargin: 0.6 })).toEqual([
      'VALIDATION_ERROR',
      'invalid request: gate.nearTieMargin: must be from 0 to 0.5',
    ]);
    expect(refusal({ nearTieMargin: -0.1 })?.[1]).toBe(
      'invalid request: gate.nearTieMargin: must be from 0 to 0.5',
    );
    expect(refusal({ minAgreement: 1.5 })?.[1]).toBe(
      'invalid request: gate.minAgreement: must be from 0 to 1',
    );
    // The bounds themselves are accepted; maxAbsDiff is in the output's units, without an upper bound.
    expect(
      refusal({ maxRelDiff: DERIVE_LIMITS.maxRelDiff, nearTieMargin: DERIVE_LIMITS.maxNearTieMargin }),
    ).toBeUndefined();
    expect(refusal({ maxAbsDiff: 1e6 })).toBeUndefined();
  });

  it('a kind given twice, or preprocess before another transform, is refused', () => {
    const q: TransformSpec = { quantize: 'int8' };
    const p: TransformSpec = { preprocess: { x: { normalize: { mean: 0, std: 1 } } } };
    expect(() => checkTransforms([q, q])).toThrow(/more than once/);
    expect(() => checkTransforms([p, q])).toThrow(/last/);
    expect(() => checkTransforms([q, p])).not.toThrow();
    expect(() => checkTransforms([{ preprocess: { x: { bogus: 1 } } }])).toThrow(BadRequestError);
  });

  it('describes transforms in a few words', () => {
    expect(describeTransform({ quantize: 'int8', perChannel: true, reduceRange: false })).toBe(
      'quantize int8 (per-channel, full range)',
    );
    expect(describeTransform({ optimize: 'basic' })).toBe('optimize basic');
  });

  it('the work message carries the name, the version and the resolved gate', () => {
    const m = {
      type: 'derive',
      name: 'm',
      version: 2,
      gate: gateThresholds(),
      sampleKey: 'uploads/m/u.onnx',
    };
    expect(DeriveMessageSchema.parse(m)).toEqual(m);
    expect(DeriveMessageSchema.safeParse({ ...m, name: 'bad name' }).success).toBe(false);
  });
});

describe('generated rows', () => {
  const sig: ModelSignature = {
    inputs: [
      { name: 'x', datatype: 'FP32', shape: [-1, 4] },
      { name: 'n', datatype: 'INT64', shape: [-1, -1] },
    ],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }],
  };

  it('are zero-centred, seeded, batched along the first dimension, other dynamic dimensions 1', () => {
    const a = generateFeeds(sig, 2000, seededNormal(7));
    const b = generateFeeds(sig, 2000, seededNormal(7));
    expect(a.x?.shape).toEqual([2000, 4]);
    expect(a.n?.shape).toEqual([2000, 1]);
    expect(a.n?.data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(a.x?.data as Float32Array)).toEqual(Array.from(b.x?.data as Float32Array));
    const xs = Array.from(a.x?.data as Float32Array);
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(sd).toBeGreaterThan(0.9);
    expect(sd).toBeLessThan(1.1);
  });

  it('a fixed first dimension gives one request of the fixed shape', () => {
    const fixed: ModelSignature = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3] }], outputs: [] };
    expect(generateFeeds(fixed, 50, seededNormal(1)).x?.shape).toEqual([1, 3]);
  });

  it('near-ties (top-2 gap below the margin of the row’s range) are left out; other rows are kept', () => {
    const out = f32([3, 3], [0.5, 0.495, 0, 1, 0, 0, 0.2, 0.3, 0.25]);
    expect(topGap(out.data, 0, 3)).toBeCloseTo(0.005, 6);
    expect(relativeTopGap(out.data, 0, 3)).toBeCloseTo(0.01, 6);
    expect(relativeTopGap(out.data, 6, 3)).toBeCloseTo(0.5, 6);
    expect(rowsAboveMargin(out, 0.02)).toEqual([1, 2]);
    expect(rowsAboveMargin(out, 0.6)).toEqual([1]);
    // The rule does not depend on the scale of the logits.
    const scaled = f32(
      [3, 3],
      Array.from(out.data as Float32Array, (v) => v * 1000 - 7),
    );
    expect(rowsAboveMargin(scaled, 0.02)).toEqual([1, 2]);
    // All values equal: a tie.
    expect(relativeTopGap(f32([1, 3], [2, 2, 2]).data, 0, 3)).toBe(0);
    // A regressor's output has no decision: every row is kept.
    expect(rowsAboveMargin(f32([3, 1], [1, 1, 1]), 0.5)).toEqual([0, 1, 2]);
  });

  it('takeRows selects rows of any tensor', () => {
    expect(Array.from(takeRows(f32([3, 2], [1, 2, 3, 4, 5, 6]), [2, 0]).data as Float32Array)).toEqual([
      5, 6, 1, 2,
    ]);
    const s: Tensor = { datatype: 'BYTES', shape: [3], data: ['a', 'b', 'c'] };
    expect(takeRows(s, [1]).data).toEqual(['b']);
  });
});

describe('the gate', () => {
  it('argmax agreement, max abs and relative difference, per output, against the thresholds', () => {
    const t = new GateTally('generated');
    t.add({ y: f32([2, 2], [1, 0, 0, 2]) }, { y: f32([2, 2], [0.9, 0, 0, 2.2]) });
    t.add({ y: f32([2, 2], [1, 0, 0, 4]) }, { y: f32([2, 2], [0, 1, 0, 4]) });
    t.exclude(3);
    const e = t.evaluate(gateThresholds());
    expect(e.rows).toBe(4);
    expect(e.nearTiesExcluded).toBe(3);
    expect(e.argmaxAgreement).toBe(0.75);
    expect(e.perOutput[0]?.name).toBe('y');
    expect(e.perOutput[0]?.argmaxAgreement).toBe(0.75);
    expect(e.perOutput[0]?.maxAbsDiff).toBeCloseTo(1, 6);
    expect(e.perOutput[0]?.maxRelDiff).toBeCloseTo(0.25, 6);
    expect(e.passed).toBe(false);
    expect(gateFailure(e)).toMatch(/argmax agreement 0\.75.* < 0\.99/);
    // 4 rows compared are enough only when 4 were asked for (minComparedRows).
    expect(t.evaluate(gateThresholds({ minAgreement: 0.75, rows: 4 })).passed).toBe(true);
    expect(t.evaluate(gateThresholds({ minAgreement: 0.5, maxAbsDiff: 0.5, rows: 4 })).passed).toBe(false);
  });

  it('a regressor is held to the default relative bound', () => {
    const t = new GateTally('sample');
    t.add({ y: f32([2, 1], [10, 20]) }, { y: f32([2, 1], [10.5, 20]) });
    const e = t.evaluate(gateThresholds());
    expect(e.argmaxAgreement).toBe(1);
    expect(e.perOutput[0]?.maxRelDiff).toBeCloseTo(0.025, 6);
    expect(e.passed).toBe(true);
    const worse = new GateTally('sample');
    worse.add({ y: f32([2, 1], [10, 20]) }, { y: f32([2, 1], [12, 20]) });
    expect(worse.evaluate(gateThresholds()).passed).toBe(false);
    expect(gateFailure(worse.evaluate(gateThresholds()))).toMatch(/max rel diff 0\.1000 > 0\.05/);
  });

  it('no rows compared never passes', () => {
    expect(new GateTally('generated').evaluate(gateThresholds()).passed).toBe(false);
  });

  it('rows to compare: at least half of those asked for, and at least 100 (all when fewer are asked for)', () => {
    expect(
      [1, 10, 99, 100, 150, 200, 201, 1000, 10_000].map((rows) => [rows, minComparedRows(rows)]),
    ).toEqual([
      [1, 1],
      [10, 10],
      [99, 99],
      [100, 100],
      [150, 100],
      [200, 100],
      [201, 101],
      [1000, 500],
      [10_000, 5000],
    ]);
  });

  it('generated rows: too few compared fails, naming the numbers, however well they agree', () => {
    /** A tally of `n` rows that all agree, `excluded` rows left out as near-ties. */
    const agreeing = (source: 'generated' | 'sample', n: number, excluded = 0) => {
      const t = new GateTally(source);
      const y = f32([n, 2], Array.from({ length: n }, () => [1, 0]).flat());
      t.add({ y }, { y });
      t.exclude(excluded);
      return t;
    };
    const few = agreeing('generated', 58, 19_942).evaluate(gateThresholds());
    expect(few).toMatchObject({ rows: 58, argmaxAgreement: 1, nearTiesExcluded: 19_942, passed: false });
    expect(gateFailure(few)).toBe(
      'the accuracy gate failed on 58 generated rows: only 58 of the 1000 rows asked for were compared (19942 near-ties left out); at least 500 must be (y: max abs diff 0, max rel diff 0)',
    );
    expect(agreeing('generated', 499).evaluate(gateThresholds()).passed).toBe(false);
    expect(agreeing('generated', 500).evaluate(gateThresholds()).passed).toBe(true);
    expect(agreeing('generated', 99).evaluate(gateThresholds({ rows: 150 })).passed).toBe(false);
    expect(agreeing('generated', 100).evaluate(gateThresholds({ rows: 150 })).passed).toBe(true);
    // A sample's rows are all compared, as given: a small one passes.
    expect(agreeing('sample', 8).evaluate(gateThresholds()).passed).toBe(true);
  });
});

describe('samples', () => {
  const sig: ModelSignature = {
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 2] }],
    outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 2] }],
  };
  const line = (data: number[][]) =>
    JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [data.length, 2], data }] });

  it('one request per non-blank line, checked against the signature', () => {
    const rows = parseSample(
      `${line([[1, 2]])}\n\n${line([
        [3, 4],
        [5, 6],
      ])}\n`,
      sig,
      'm v1',
    );
    expect(rows.map((r) => r.line)).toEqual([1, 3]);
    expect(rows[1]?.feeds.input?.shape).toEqual([2, 2]);
  });

  it('a line that is not a fitting request is refused with its number', () => {
    expect(() => parseSample(`${line([[1, 2]])}\n{"inputs":`, sig, 'm')).toThrow(/line 2 is not JSON/);
    expect(() =>
      parseSample(
        JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }),
        sig,
        'm',
      ),
    ).toThrow(/sample line 1: input 'x' is not an input/);
    expect(() => parseSample('\n', sig, 'm')).toThrow(/no request/);
  });
});

describe('runGate on a sample', () => {
  it('names the sample line of a request the model refuses', async () => {
    const sig: ModelSignature = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
    };
    // An engine that refuses the value 99 as a category its pre-processing does not know.
    const engine = {
      createSession: async () => ({ inputNames: ['x'], outputNames: ['y'] }),
      release: async () => {},
      run: async (_s: unknown, feeds: Record<string, Tensor>) => {
        if ((feeds.x!.data as Float32Array)[0] === 99) {
          throw new BadRequestError("input 'x' has a category it does not know", 'UNKNOWN_CATEGORY');
        }
        return { y: { datatype: 'FP32', shape: [1, 2], data: Float32Array.from([1, 0]) } as Tensor };
      },
    };
    const row = (v: number) =>
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [v] }] });
    const sample = parseSample(`${row(1)}\n\n${row(99)}\n`, sig, 'm v1');
    const e = await runGate(engine, new Uint8Array(), new Uint8Array(), sig, gateThresholds({}), sample).then(
      () => undefined,
      (x: unknown) => x as BadRequestError,
    );
    expect([e?.code, e?.message]).toEqual([
      'UNKNOWN_CATEGORY',
      "sample line 3: input 'x' has a category it does not know",
    ]);
  });
});

describe('derive use cases (in-memory registry, onnxruntime)', () => {
  const parentBytes = buildMlp({ inFeatures: 4, layers: [16, 3], seed: 5 });
  /** A transformer that returns a model of its own choosing (or the model itself). */
  const fake = (make: (m: Uint8Array) => Uint8Array): ModelTransformer & { calls: TransformSpec[][] } => {
    const calls: TransformSpec[][] = [];
    return {
      calls,
      apply: async (m, t) => {
        calls.push([...t]);
        return make(m);
      },
    };
  };

  /** `transformer`, which leaves the transforms' options as given unless it says otherwise. */
  async function setup(transformer: ModelTransformer & Partial<Pick<DeriveTransformer, 'resolve'>>) {
    const store = new MemoryArtifactStore();
    const sent: DeriveMessage[] = [];
    const deps: DeriveDeps = {
      repo: new MemoryRegistryRepository(),
      store,
      inspector: new OrtModelInspector(),
      transformer: { resolve: (t) => [...t], ...transformer },
      engine: sharedOrtEngine(),
    };
    await store.putObject(S3_KEYS.upload('m', 'u1'), parentBytes);
    const parent = await registerVersion(deps, { name: 'm', sourceKey: S3_KEYS.upload('m', 'u1') });
    const queue = { send: async (m: DeriveMessage) => String(sent.push(m)) };
    return { deps, store, parent, sent, queue };
  }

  it('an unchanged model passes: READY with its evaluation and lineage; a redelivery leaves it alone', async () => {
    const transformer = fake((m) => m);
    const { deps, sent, queue } = await setup(transformer);
    const pending = await startDerive(
      deps,
      {
        name: 'm',
        version: 1,
        body: { transforms: [{ quantize: 'int8' }], gate: { rows: 300 } },
        actor: 't',
      },
      queue,
    );
    expect(pending).toMatchObject({
      version: 2,
      status: 'PENDING',
      derivedFrom: 1,
      transforms: [{ quantize: 'int8' }],
      description: 'derived from version 1: quantize int8',
      createdBy: 't',
    });
    expect(sent).toEqual([{ type: 'derive', name: 'm', version: 2, gate: gateThresholds({ rows: 300 }) }]);
    expect(await runDerive(deps, sent[0]!)).toBe('READY');
    const v = await deps.repo.getVersion('m', 2);
    expect(v).toMatchObject({ status: 'READY', derivedFrom: 1, transforms: [{ quantize: 'int8' }] });
    expect(v?.evaluation).toMatchObject({ rows: 300, source: 'generated', argmaxAgreement: 1, passed: true });
    expect(v?.evaluation?.perOutput).toEqual([
      { name: 'output', argmaxAgreement: 1, maxAbsDiff: 0, maxRelDiff: 0 },
    ]);
    expect(await runDerive(deps, sent[0]!)).toBe('READY');
    expect(transformer.calls).toHaveLength(1);
  });

  it('refuses at once to derive from a version whose labels no longer pass the registration check', async () => {
    const { deps, sent, queue, parent } = await setup(fake((m) => m));
    // A version registered before labels had to match the class count (3): written as it was then.
    const { version: _v, createdAt: _c, ...rest } = parent;
    const old = await deps.repo.createVersion({ ...rest, status: 'READY', labels: ['a', 'b'] });
    const e = await startDerive(
      deps,
      { name: 'm', version: old.version, body: { transforms: [{ quantize: 'int8' }] } },
      queue,
    ).catch((x) => x);
    expect([e.status, e.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect(e.message).toMatch(/labels lists 2 name\(s\), but output 'output' has 3 classes/);
    expect(sent).toEqual([]);
    expect((await deps.repo.listVersions('m', 10)).items.map((v) => v.version)).toEqual([old.version, 1]);
  });

  it('the version records its transforms as the transformer applies them, READY or FAILED', async () => {
    const ranged = (m: Uint8Array) => ({
      ...fake(() => m),
      resolve: (ts: readonly TransformSpec[]) =>
        ts.map((t) => ('quantize' in t ? { ...t, reduceRange: true, perChannel: t.perChannel ?? false } : t)),
    });
    const ready = await setup(ranged(parentBytes));
    const asked: TransformSpec[] = [{ optimize: 'basic' }, { quantize: 'int8' }];
    const pending = await startDerive(
      ready.deps,
      { name: 'm', version: 1, body: { transforms: asked, gate: { rows: 100 } } },
      ready.queue,
    );
    expect(pending.transforms).toEqual(asked);
    expect(await runDerive(ready.deps, ready.sent[0]!)).toBe('READY');
    expect((await ready.deps.repo.getVersion('m', 2))?.transforms).toEqual([
      { optimize: 'basic' },
      { quantize: 'int8', reduceRange: true, perChannel: false },
    ]);

    const failed = await setup(ranged(buildMlp({ inFeatures: 4, layers: [16, 3], seed: 99 })));
    await startDerive(
      failed.deps,
      { name: 'm', version: 1, body: { transforms: [{ quantize: 'int8', perChannel: true }] } },
      failed.queue,
    );
    expect(await runDerive(failed.deps, failed.sent[0]!)).toBe('FAILED');
    expect((await failed.deps.repo.getVersion('m', 2))?.transforms).toEqual([
      { quantize: 'int8', perChannel: true, reduceRange: true },
    ]);
  });

  it('OnnxModelTransformer writes out int8 options: the range of its architecture, per tensor, unless given', () => {
    const resolve = (arch: string, t: TransformSpec[]) => new OnnxModelTransformer(arch).resolve(t);
    expect(resolve('x64', [{ quantize: 'int8' }])).toEqual([
      { quantize: 'int8', reduceRange: true, perChannel: false },
    ]);
    expect(resolve('arm64', [{ quantize: 'int8' }, { optimize: 'basic' }])).toEqual([
      { quantize: 'int8', reduceRange: false, perChannel: false },
      { optimize: 'basic' },
    ]);
    expect(resolve('x64', [{ quantize: 'int8', reduceRange: false, perChannel: true }])).toEqual([
      { quantize: 'int8', reduceRange: false, perChannel: true },
    ]);
    const pre: TransformSpec = { preprocess: { x: { clip: { min: 0 } } } };
    expect(resolve('x64', [pre])).toEqual([pre]);
    expect(describeTransform(resolve('x64', [{ quantize: 'int8' }])[0]!)).toBe(
      'quantize int8 (reduced range)',
    );
  });

  it('a model that answers differently fails the gate: FAILED with the figures and its evaluation', async () => {
    const { deps, sent, queue } = await setup(
      fake(() => buildMlp({ inFeatures: 4, layers: [16, 3], seed: 99 })),
    );
    await startDerive(deps, { name: 'm', version: 1, body: { transforms: [{ quantize: 'int8' }] } }, queue);
    expect(await runDerive(deps, sent[0]!)).toBe('FAILED');
    const v = await deps.repo.getVersion('m', 2);
    expect(v?.status).toBe('FAILED');
    expect(v?.failureReason).toMatch(
      /accuracy gate failed on 1000 generated rows: argmax agreement .* < 0\.99/,
    );
    expect(v?.evaluation?.passed).toBe(false);
    expect(v?.evaluation?.argmaxAgreement).toBeLessThan(0.99);
  });

  it('bytes that are no model end FAILED; a transient transformer error is thrown for a retry', async () => {
    const broken = await setup(fake(() => Uint8Array.from([1, 2, 3])));
    await startDerive(
      broken.deps,
      { name: 'm', version: 1, body: { transforms: [{ optimize: 'basic' }] } },
      broken.queue,
    );
    expect(await runDerive(broken.deps, broken.sent[0]!)).toBe('FAILED');
    expect((await broken.deps.repo.getVersion('m', 2))?.failureReason).toMatch(
      /cannot load the derived model/,
    );

    const flaky = await setup({
      apply: async () => {
        throw new Error('out of memory');
      },
    });
    await startDerive(
      flaky.deps,
      { name: 'm', version: 1, body: { transforms: [{ optimize: 'basic' }] } },
      flaky.queue,
    );
    await expect(runDerive(flaky.deps, flaky.sent[0]!)).rejects.toThrow('out of memory');
    expect((await flaky.deps.repo.getVersion('m', 2))?.status).toBe('PENDING');
  });

  it("out of the worker's time: thrown for a retry; the last attempt ends it FAILED", async () => {
    const { deps, sent, queue } = await setup({ apply: () => new Promise<Uint8Array>(() => {}) });
    await startDerive(deps, { name: 'm', version: 1, body: { transforms: [{ optimize: 'basic' }] } }, queue);
    const time = { budget: { getRemainingTimeInMillis: () => 60 }, reserveMs: 10 };
    await expect(runDerive(deps, sent[0]!, time)).rejects.toThrow(/did not finish within the worker's time/);
    expect((await deps.repo.getVersion('m', 2))?.status).toBe('PENDING');
    expect(await failDerivation(deps, sent[0]!, 5, new Error('timed out'))).toBe(true);
    expect(await deps.repo.getVersion('m', 2)).toMatchObject({
      status: 'FAILED',
      failureReason: 'the derivation could not be completed after 5 attempts: timed out',
    });
    // Completed already: nothing more to do.
    expect(await failDerivation(deps, sent[0]!, 6, new Error('again'))).toBe(false);
  });

  it('a sample is used as given: its rows, no near-tie left out', async () => {
    const { deps, store, sent, queue } = await setup(fake((m) => m));
    const lines = [0, 1, 2].map((i) =>
      JSON.stringify({
        inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: [i, 0, 0, 0, 0, i, 0, 0] }],
      }),
    );
    await store.putObject(S3_KEYS.upload('m', 's1'), new TextEncoder().encode(lines.join('\n')));
    await startDerive(
      deps,
      { name: 'm', version: 1, body: { transforms: [{ quantize: 'int8' }], sample: { uploadId: 's1' } } },
      queue,
    );
    expect(sent[0]?.sampleKey).toBe(S3_KEYS.upload('m', 's1'));
    expect(await runDerive(deps, sent[0]!)).toBe('READY');
    expect((await deps.repo.getVersion('m', 2))?.evaluation).toMatchObject({
      rows: 6,
      source: 'sample',
      nearTiesExcluded: 0,
    });
  });

  it('refuses: unknown or not READY parents, a missing sample, a BYTES model without one', async () => {
    const { deps, queue } = await setup(fake((m) => m));
    const body = { transforms: [{ quantize: 'int8' as const }] };
    await expect(startDerive(deps, { name: 'm', version: 9, body }, queue)).rejects.toMatchObject({
      status: 404,
    });
    await expect(startDerive(deps, { name: 'nope', version: 1, body }, queue)).rejects.toMatchObject({
      status: 404,
    });
    await expect(
      startDerive(deps, { name: 'm', version: 1, body: { ...body, sample: { uploadId: 'none' } } }, queue),
    ).rejects.toMatchObject({ code: 'SAMPLE_NOT_FOUND' });
    const pending = await startDerive(deps, { name: 'm', version: 1, body }, queue);
    await expect(
      startDerive(deps, { name: 'm', version: pending.version, body }, queue),
    ).rejects.toMatchObject({
      status: 409,
      code: 'VERSION_NOT_READY',
    });
  });

  it('refuses at once a preprocess naming an input the parent does not have: 400, nothing written or queued', async () => {
    const { deps, sent, queue } = await setup(fake((m) => m));
    const before = (await deps.repo.listVersions('m', 10)).items;
    for (const transforms of [
      [{ preprocess: { nope: { clip: { min: 0 } } } }],
      [
        { quantize: 'int8' as const },
        { preprocess: { input: { clip: { min: 0 } }, other: { clip: { max: 1 } } } },
      ],
    ]) {
      const e = await startDerive(deps, { name: 'm', version: 1, body: { transforms } }, queue).then(
        () => undefined,
        (x: unknown) => x as BadRequestError,
      );
      if (!e) throw new Error('expected a refusal');
      expect([e.status, e.code]).toEqual([400, 'INVALID_PREPROCESS']);
      expect(e.message).toMatch(
        /^preprocess names '(nope|other)', which version 1 of model 'm' does not have \(inputs: 'input'\)$/,
      );
    }
    expect(sent).toEqual([]);
    expect((await deps.repo.listVersions('m', 10)).items).toEqual(before);
    // An input it has is taken.
    await startDerive(
      deps,
      { name: 'm', version: 1, body: { transforms: [{ preprocess: { input: { clip: { min: 0 } } } }] } },
      queue,
    );
    expect(sent).toHaveLength(1);
  });

  it('a message that cannot be queued leaves the version FAILED, never PENDING', async () => {
    const { deps } = await setup(fake((m) => m));
    const down = {
      send: async () => {
        throw new Error('queue down');
      },
    };
    await expect(
      startDerive(deps, { name: 'm', version: 1, body: { transforms: [{ quantize: 'int8' }] } }, down),
    ).rejects.toThrow('queue down');
    expect(await deps.repo.getVersion('m', 2)).toMatchObject({
      status: 'FAILED',
      failureReason: 'the derivation could not be queued',
    });
  });
});

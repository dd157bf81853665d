/**
 * `npm run bench` — the predict-path benchmark (not a test). On generated models (a tiny classifier and a ~1M
 * parameter MLP, batch 1 and 32) it measures, in one run:
 *   (a) raw `session.run` (onnxruntime-node, the predict path's session options);
 *   (b) the full predict handler from an API Gateway v2 event to its response, caches warm;
 *   (e) the floor a JSON protocol cannot beat: (a) + `JSON.parse` of the same body + `JSON.stringify` of the
 *       same response;
 *   (c) onnxruntime-web (WASM, one thread) on the same model, over raw `session.run` in a rotation of their own
 *       after the others (`wasmOverNative`): its runs, in the rotation of the predict path's variants, slowed
 *       every variant measured after them, which no predict function does (see measureWarm);
 *   (d) cold start of the esbuild bundle as deployed: a fresh process imports the handler and answers its first
 *       request against DynamoDB Local + s3rver (registry lookup, artifact fetch, sha256, session) vs a fresh
 *       process that imports onnxruntime-node, creates the session from a local file and runs once;
 *   (f) the handler as deployed observes it: one EMF document per request (`EmfLineSink`, made and written after
 *       the answer) and capture declared at 0 % on the alias, each line written to /dev/null as Lambda's stdout
 *       would take it;
 *   (h) split: the handler (b) through an alias with a 10 % canary active (a second version of the same model),
 *       requests without a routing key (routed at random);
 *   (g) the same with capture at 100 % (a second alias of the same version): every request also writes its record,
 *       after its answer. (f) and (g) measure what a caller waits for; the work they do after their answer (the
 *       EMF line, the capture record, each in a `setImmediate`) is run, untimed, before the next variant starts and
 *       reported on its own (`afterAnswer`, the time the event loop takes to drain it). Left pending, it ran inside
 *       whichever variant came next — the first `setImmediate` of that variant's run (onnxruntime-node's
 *       `session.run` is one) ran it first — and charged every variant, raw included, up to 30 µs at p50 for
 *       work none of them does: on the tiny model at batch 1, raw right after (g) took 47 µs against 20 µs after
 *       another raw. Every variant is followed by the same untimed drain, so none is charged another's work;
 *   (i) binary: the handler (b) answering the same input in the binary tensor data extension — a base64 API Gateway
 *       event (JSON header + raw FP32 bytes, `Inference-Header-Content-Length`) asking its output as binary data
 *       (`binary_data_output`), answered base64 — over (a): `binaryHandlerOverRaw`;
 *   (j) int8 (MLP only): raw `session.run` of the MLP quantised to int8 (`quantizeInt8`, the architecture's default
 *       range, as bench/quantize.ts) over raw `session.run` of the FP32 MLP (the session of (a)), the two
 *       alternating on their own after the rotation (`measureInt8Pair`, bench/int8-pair.ts, which says why not in
 *       it): `int8OverFp32` (batch 1), `int8OverFp32Batch32`, and `int8SizeRatio` (its bytes over the FP32
 *       model's). About 2 s more in all;
 *   (k) batch (bench/batch.ts): `batchOverRaw`, one worker scoring a part of 8,192 MLP rows (`runBatchPart` over the
 *       in-memory ports, the real predictor) over raw batched `session.run` of the same rows (BATCH.ortBatchRows rows
 *       a run), `batchCeilingOverRaw`, the same part over an engine whose runs cost nothing (the bound the part's own
 *       work sets), and `batchLocalRowsPerSecond`, a job over the same rows on DynamoDB Local + s3rver with an in-process
 *       batch queue of BATCH.maxConcurrency workers at once. About 12 s more.
 * `npm run bench -- --json` prints one JSON object instead of the tables.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import ort from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { StdoutCaptureSink } from '../functions/adapters/capture-sinks';
import { DynamoRegistryRepository } from '../functions/adapters/dynamodb-registry';
import { DynamoRegistryReader } from '../functions/adapters/dynamodb-registry-reader';
import { EmfLineSink } from '../functions/adapters/emf-lines';
import { OrtEngine } from '../functions/adapters/ort-engine';
import { OrtModelInspector } from '../functions/adapters/ort-inspector';
import { S3ArtifactReader } from '../functions/adapters/s3-artifact-reader';
import { S3ArtifactStore } from '../functions/adapters/s3-artifact-store';
import { moveAlias, registerVersion } from '../functions/app/registry';
import { SessionCache, sha256Hex } from '../functions/app/session-cache';
import { processEnv } from '../functions/config/environment';
import { BUNDLE_OPTIONS } from '../functions/contract/bundling';
import { ENV, HANDLER_ENTRIES, S3_KEYS } from '../functions/contract/env';
import { pathFor } from '../functions/contract/routes';
import { createPredictHandler } from '../functions/handlers/predict';
import { LOCAL_CREDENTIALS, LOCAL_REGION, localClientOptions } from '../functions/local/emulators';
import { buildMlp, seededRandom } from '../functions/local/onnx-builder';
import { defaultReduceRange, quantizeInt8 } from '../functions/transforms/quantize';
import { apiEvent } from '../test/helpers/apigw';
import { type BatchBenchResult, batchReportLines, batchSummary, measureBatch } from './batch';
import { startBenchEmulators } from './emulators';
import { measureInt8Pair } from './int8-pair';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const asJson = process.argv.includes('--json');
const say = (...args: unknown[]) => {
  if (!asJson) console.log(...args);
};
const progress = (msg: string) => process.stderr.write(`${msg}\n`);

interface Stats {
  p50: number;
  p99: number;
}

function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * (s.length - 1)))]!;
  return { p50: round(at(0.5)), p99: round(at(0.99)) };
}

const round = (ms: number) => Math.round(ms * 10000) / 10000;
const now = () => performance.now();

interface ModelCase {
  readonly name: string;
  readonly inFeatures: number;
  readonly bytes: Uint8Array;
}

interface CaseResult {
  model: string;
  batch: number;
  raw: Stats;
  handler: Stats;
  floor: Stats;
  wasm: Stats;
  /** Raw `session.run` in the rotation of (c) alone: `wasmOverNative`'s baseline. */
  wasmRaw: Stats;
  observed: Stats;
  captured: Stats;
  split: Stats;
  binary: Stats;
  /** (j), the int8 MLP's raw run, alternating with the FP32 one's (absent for the tiny model). */
  int8?: Stats;
  /** (j), the FP32 MLP's raw run alternating with the int8 one's: `int8OverFp32`'s baseline. */
  int8Fp32?: Stats;
  /** The after-answer work of (f) and (g), drained untimed after each of their requests. */
  afterAnswer: { observed: Stats; captured: Stats };
}

/** The alias of the benchmark's models that splits its traffic: version 1 stable, a 10 % canary on version 2. */
const SPLIT_ALIAS = 'split';

/** The alias of the benchmark's models that captures every request (`prod` captures none). */
const CAPTURED_ALIAS = 'captured';

async function main() {
  const started = now();
  const work = join(ROOT, '.bench', `run-${process.pid}`);
  const { dynamo, s3rver, doc, s3, table, bucket, stop } = await startBenchEmulators(
    work,
    'maas-bench',
    progress,
  );
  try {
    const repo = new DynamoRegistryRepository({ doc, table });
    const store = new S3ArtifactStore({ s3, bucket });
    const inspector = new OrtModelInspector();

    const models: ModelCase[] = [
      { name: 'tiny', inFeatures: 4, bytes: buildMlp({ inFeatures: 4, layers: [3], seed: 1 }) },
      {
        name: 'mlp',
        inFeatures: 512,
        bytes: buildMlp({ inFeatures: 512, layers: [1024, 512, 10], seed: 2 }),
      },
    ];
    for (const m of models) {
      const key = S3_KEYS.upload(m.name, 'bench');
      await store.putObject(key, m.bytes);
      await registerVersion({ repo, store, inspector }, { name: m.name, sourceKey: key });
      await moveAlias({ repo }, { name: m.name, alias: CAPTURED_ALIAS, version: 1, actor: 'bench' });
      await repo.setAliasCapture(m.name, 'prod', { samplePercent: 0, input: true, output: true });
      await repo.setAliasCapture(m.name, CAPTURED_ALIAS, { samplePercent: 100, input: true, output: true });
      // Version 2: the same artifact registered again (one session serves both), the canary of `split`.
      const again = S3_KEYS.upload(m.name, 'bench-2');
      await store.putObject(again, m.bytes);
      await registerVersion({ repo, store, inspector }, { name: m.name, sourceKey: again });
      await moveAlias({ repo }, { name: m.name, alias: SPLIT_ALIAS, version: 1, actor: 'bench' });
      await repo.setAliasRouting({
        name: m.name,
        alias: SPLIT_ALIAS,
        routing: { canary: { version: 2, weight: 10 } },
        actor: 'bench',
      });
    }

    const engine = new OrtEngine({ threads: 1 });
    const sessions = new SessionCache({ engine });
    // The predict Lambda's own readers (its warm path makes no registry call anyway).
    const reader = new DynamoRegistryReader({ ...localClientOptions(dynamo.endpoint), table });
    const artifacts = new S3ArtifactReader({ ...localClientOptions(s3rver.endpoint), bucket });
    const handler = createPredictHandler({ repo: reader, store: artifacts, sessions });
    // As deployed: EMF and capture lines go to stdout, a pipe in Lambda; here the same writes go to /dev/null.
    const devNull = openSync('/dev/null', 'w');
    const toStdout = (line: string) => {
      writeSync(devNull, line.endsWith('\n') ? line : `${line}\n`);
    };
    const observed = createPredictHandler({
      repo: reader,
      store: artifacts,
      sessions,
      metrics: new EmfLineSink({ serviceName: 'maas-predict', output: toStdout, afterAnswer: true }),
      capture: new StdoutCaptureSink(toStdout),
    });
    ortWeb.env.wasm.numThreads = 1;
    ortWeb.env.wasm.wasmPaths = `${join(ROOT, 'node_modules', 'onnxruntime-web', 'dist')}/`;

    // (j): the MLP quantised to int8, as bench/quantize.ts and `maas derive` make it.
    const int8Bytes = quantizeInt8(models[1]!.bytes, { reduceRange: defaultReduceRange() }).model;
    const int8Session = await ort.InferenceSession.create(int8Bytes, engine.sessionOptions);
    const results: CaseResult[] = [];
    for (const m of models) {
      // (a) and (e) run the very session the handler uses (same weights in the CPU caches).
      const first = await handler(apiEvent('GET', pathFor('modelReady', { name: m.name })));
      if (first.statusCode !== 200) throw new Error(`model ${m.name} is not ready: ${first.body}`);
      const served = await sessions.load(sha256Hex(m.bytes), () =>
        store.getObject(S3_KEYS.model(m.name, sha256Hex(m.bytes))),
      );
      const rawSession = engine.ortSession(served.session);
      const webSession = await ortWeb.InferenceSession.create(m.bytes, { executionProviders: ['wasm'] });
      for (const batch of [1, 32]) {
        progress(`bench: ${m.name} batch ${batch}`);
        const result = await measureWarm(m, batch, handler, observed, rawSession, webSession);
        if (m.name === 'mlp') {
          const { data } = requestBody(m, batch);
          const pair = await measureInt8Pair(
            { fp32: rawSession, int8: int8Session },
            { input: new ort.Tensor('float32', data, [batch, m.inFeatures]) },
            { seed: batch * 7919 + m.inFeatures, warmup: 500, iterations: batch === 1 ? 1000 : 300 },
          );
          result.int8 = stats(pair.int8);
          result.int8Fp32 = stats(pair.fp32);
        }
        results.push(result);
      }
      await webSession.release();
    }
    await sessions.close();
    await int8Session.release();
    closeSync(devNull);

    progress('bench: cold starts');
    const cold = await measureCold(work, models[1]!, {
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_ENDPOINT_URL_S3: s3rver.endpoint,
      [ENV.table]: table,
      [ENV.bucket]: bucket,
    });

    const batch = await measureBatch({ doc, s3, table, bucket }, { progress });

    report(
      results,
      cold,
      { fp32: models[1]!.bytes.length, int8: int8Bytes.length },
      batch,
      (now() - started) / 1000,
    );
  } finally {
    await stop();
  }
}

/**
 * The binary tensor data form of `requestBody`'s request: the JSON header (asking every output as binary data),
 * then the input's FP32 bytes, as an API Gateway event carries it (base64, `Inference-Header-Content-Length`).
 */
function binaryRequestEvent(m: ModelCase, batch: number, data: Float32Array, ref?: string) {
  const header = Buffer.from(
    JSON.stringify({
      id: 'bench',
      inputs: [
        {
          name: 'input',
          datatype: 'FP32',
          shape: [batch, m.inFeatures],
          parameters: { binary_data_size: data.byteLength },
        },
      ],
      parameters: { binary_data_output: true },
    }),
    'utf8',
  );
  const body = Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
  const event = apiEvent('POST', pathFor('modelInfer', { name: m.name, ...(ref ? { ref } : {}) }), {
    headers: { 'Inference-Header-Content-Length': String(header.length) },
  });
  return {
    ...event,
    headers: { ...event.headers, 'content-length': String(body.length) },
    body: body.toString('base64'),
    isBase64Encoded: true,
  };
}

/** The FP32 values of a binary answer's only output (its JSON header, then the raw bytes). */
function binaryAnswerValues(r: { headers?: Record<string, unknown>; body?: string }): Float32Array {
  const bytes = Buffer.from(r.body ?? '', 'base64');
  const headerLength = Number(r.headers?.['inference-header-content-length']);
  const header = JSON.parse(bytes.subarray(0, headerLength).toString('utf8')) as {
    outputs: { parameters?: { binary_data_size?: number } }[];
  };
  const size = header.outputs[0]?.parameters?.binary_data_size;
  if (size === undefined || headerLength + size !== bytes.length) {
    throw new Error('the binary answer does not carry its output as binary data');
  }
  return new Float32Array(
    bytes.buffer.slice(bytes.byteOffset + headerLength, bytes.byteOffset + bytes.length),
  );
}

function requestBody(m: ModelCase, batch: number): { body: string; data: Float32Array } {
  const rand = seededRandom(batch * 1000 + m.inFeatures);
  const values = Array.from({ length: batch * m.inFeatures }, () => Math.round((rand() * 2 - 1) * 1e6) / 1e6);
  const body = JSON.stringify({
    id: 'bench',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [batch, m.inFeatures], data: values }],
  });
  return { body, data: Float32Array.from(values) };
}

async function measureWarm(
  m: ModelCase,
  batch: number,
  handler: ReturnType<typeof createPredictHandler>,
  observedHandler: ReturnType<typeof createPredictHandler>,
  rawSession: ort.InferenceSession,
  webSession: ortWeb.InferenceSession,
): Promise<CaseResult> {
  const { body, data } = requestBody(m, batch);
  const event = apiEvent('POST', pathFor('modelInfer', { name: m.name }), { body });
  const capturedEvent = apiEvent('POST', pathFor('modelInfer', { name: m.name, ref: CAPTURED_ALIAS }), {
    body,
  });
  const splitEvent = apiEvent('POST', pathFor('modelInfer', { name: m.name, ref: SPLIT_ALIAS }), { body });
  const versionsSeen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const r = await handler(splitEvent);
    if (r.statusCode !== 200) throw new Error(`split alias answered ${r.statusCode}: ${r.body}`);
    versionsSeen.add((JSON.parse(r.body as string) as { model_version: string }).model_version);
  }
  if (versionsSeen.size !== 2) throw new Error(`the split alias served versions ${[...versionsSeen]} only`);
  for (const e of [event, capturedEvent]) {
    const r = await observedHandler(e);
    if (r.statusCode !== 200) throw new Error(`observed handler answered ${r.statusCode}: ${r.body}`);
  }
  const feeds = { input: new ort.Tensor('float32', data, [batch, m.inFeatures]) };
  const webFeeds = { input: new ortWeb.Tensor('float32', data, [batch, m.inFeatures]) };
  const first = await handler(event);
  if (first.statusCode !== 200) throw new Error(`handler answered ${first.statusCode}: ${first.body}`);
  const response = JSON.parse(first.body as string) as unknown;
  const binaryEvent = binaryRequestEvent(m, batch, data);
  const binaryFirst = await handler(binaryEvent);
  if (binaryFirst.statusCode !== 200 || !binaryFirst.isBase64Encoded) {
    throw new Error(`binary request answered ${binaryFirst.statusCode}: ${binaryFirst.body}`);
  }
  // The same answer in both forms (JSON numbers are the shortest round-trip text of each float32).
  const jsonValues = (response as { outputs: { data: number[] }[] }).outputs[0]!.data;
  const binaryValues = binaryAnswerValues(binaryFirst);
  if (binaryValues.length !== jsonValues.length || binaryValues.some((v, i) => v !== jsonValues[i])) {
    throw new Error('the binary answer differs from the JSON one');
  }

  /** Times one call of `work`, in ms. */
  const timed = (work: () => Promise<unknown>) => async () => {
    const t = now();
    await work();
    return now() - t;
  };
  const raw = timed(() => rawSession.run(feeds));
  const floor = timed(async () => {
    JSON.parse(body);
    await rawSession.run(feeds);
    JSON.stringify(response);
  });
  const full = timed(() => handler(event));
  const wasm = timed(() => webSession.run(webFeeds));
  const observed = timed(() => observedHandler(event));
  const captured = timed(() => observedHandler(capturedEvent));
  const split = timed(() => handler(splitEvent));
  const binary = timed(() => handler(binaryEvent));
  /** Two turns of the event loop: the after-answer work of the request before (and what it schedules) runs. */
  const drain = timed(async () => {
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  });

  const iterations = batch === 1 ? 600 : 200;
  // Untimed rounds first, for every variant alike: the handler's JavaScript (parsing, validation, encoding)
  // runs interpreted or baseline-compiled for its first few hundred calls, which a warm Lambda has long left
  // behind; 60 rounds measured the JIT tiers, not the steady state (about +10 µs per request at p50).
  const warmup = 1000;
  /** Calls of each variant on its own before the rounds (see below). */
  const soloWarmup = batch === 1 ? 3000 : 1000;
  const samples = {
    raw: [] as number[],
    floor: [] as number[],
    full: [] as number[],
    observed: [] as number[],
    captured: [] as number[],
    split: [] as number[],
    binary: [] as number[],
  };
  const after = { observed: [] as number[], captured: [] as number[] };
  const variants = [
    ['raw', raw],
    ['floor', floor],
    ['full', full],
    ['observed', observed],
    ['captured', captured],
    ['split', split],
    ['binary', binary],
  ] as const;
  // Each variant on its own first, untimed: code that only one variant runs (the binary path's parsing and
  // encoding) is called once a round, and after the 1000 rounds below it had run only 1000 times — TurboFan was
  // still compiling parts of it during the timed rounds, whose first 500 took 30 % longer than the next ones (tiny
  // model, binary request: 16.3 µs against 11.9–12.7 µs). A warm function serving one kind of request has run
  // its code many thousand times.
  for (const [, fn] of variants) {
    for (let i = 0; i < soloWarmup; i++) {
      await fn();
      await drain();
    }
  }
  // Interleaved, in a new (seeded) order each round: background load and frequency drift affect all variants
  // alike, and every variant follows every other one as often (a fixed rotation would always run one variant after
  // the same other one, whose caches and leftover work it would inherit).
  const order = [...variants];
  const shuffle = seededRandom(batch * 7919 + m.inFeatures);
  for (let i = 0; i < warmup + iterations; i++) {
    for (let j = order.length - 1; j > 0; j--) {
      const k = Math.floor(shuffle() * (j + 1));
      [order[j], order[k]] = [order[k]!, order[j]!];
    }
    for (const [name, fn] of order) {
      const ms = await fn();
      const drained = await drain();
      if (i < warmup) continue;
      samples[name].push(ms);
      if (name === 'observed' || name === 'captured') after[name].push(drained);
    }
  }
  // (c) in a rotation of its own, against raw: onnxruntime-web's runs in the rotation above slowed every variant
  // after them, the handlers most (MLP at batch 1: raw and the binary handler 6 µs apart without them, 13 with
  // them; the tiny model's raw run 12 µs without them, 31 with them), and no predict function runs a WebAssembly
  // engine beside onnxruntime-node.
  const web = { raw: [] as number[], wasm: [] as number[] };
  for (let i = 0; i < soloWarmup / 10; i++) await wasm();
  for (let i = 0; i < warmup / 5 + iterations; i++) {
    const pair = shuffle() < 0.5 ? (['raw', 'wasm'] as const) : (['wasm', 'raw'] as const);
    for (const name of pair) {
      const ms = await (name === 'raw' ? raw : wasm)();
      await drain();
      if (i >= warmup / 5) web[name].push(ms);
    }
  }
  return {
    model: m.name,
    batch,
    raw: stats(samples.raw),
    handler: stats(samples.full),
    floor: stats(samples.floor),
    wasm: stats(web.wasm),
    wasmRaw: stats(web.raw),
    observed: stats(samples.observed),
    captured: stats(samples.captured),
    split: stats(samples.split),
    binary: stats(samples.binary),
    afterAnswer: { observed: stats(after.observed), captured: stats(after.captured) },
  };
}

interface ColdPhases {
  bootMs: number;
  importMs: number;
  firstMs: number;
}

interface ColdResult {
  handlerPhases: ColdPhases;
  baselinePhases: ColdPhases;
  handlerMs: number[];
  baselineMs: number[];
  handler: number;
  baseline: number;
  bundleBytes: number;
}

/** Bundles the predict handler as deployed (target node20 to run here) and times fresh processes. */
async function measureCold(work: string, m: ModelCase, awsEnv: Record<string, string>): Promise<ColdResult> {
  const outdir = join(work, 'bundle');
  const built = await build({
    ...BUNDLE_OPTIONS,
    mainFields: [...BUNDLE_OPTIONS.mainFields],
    external: [...BUNDLE_OPTIONS.external],
    target: 'node20',
    entryPoints: [join(ROOT, HANDLER_ENTRIES.predict)],
    outdir,
    metafile: true,
    logLevel: 'error',
  });
  const bundleBytes = Object.entries(built.metafile.outputs)
    .filter(([k]) => k.endsWith('.mjs'))
    .reduce((a, [, v]) => a + v.bytes, 0);
  const bundle = join(outdir, 'predict.mjs');
  const modelFile = join(work, 'model.onnx');
  writeFileSync(modelFile, m.bytes);
  const { body } = requestBody(m, 1);
  const event = apiEvent('POST', pathFor('modelInfer', { name: m.name }), { body });
  writeFileSync(join(work, 'event.json'), JSON.stringify(event));
  const engineOptions = new OrtEngine({ threads: 1 }).sessionOptions;

  const handlerDriver = join(work, 'cold-handler.mjs');
  writeFileSync(
    handlerDriver,
    `import { readFileSync } from 'node:fs';
const event = JSON.parse(readFileSync(${JSON.stringify(join(work, 'event.json'))}, 'utf8'));
const t0 = performance.now();
const { handler } = await import(${JSON.stringify(bundle)});
const t1 = performance.now();
const r = await handler(event);
const t2 = performance.now();
if (r.statusCode !== 200) { console.error(r.body); process.exit(1); }
process.stdout.write(JSON.stringify({ boot: t0, import: t1 - t0, first: t2 - t1 }) + '\\n');
`,
  );
  const baselineDriver = join(work, 'cold-baseline.mjs');
  writeFileSync(
    baselineDriver,
    `const t0 = performance.now();
const { default: ort } = await import('onnxruntime-node');
const t1 = performance.now();
const session = await ort.InferenceSession.create(${JSON.stringify(modelFile)}, ${JSON.stringify(engineOptions)});
await session.run({ input: new ort.Tensor('float32', new Float32Array(${m.inFeatures}).fill(0.5), [1, ${m.inFeatures}]) });
const t2 = performance.now();
process.stdout.write(JSON.stringify({ boot: t0, import: t1 - t0, first: t2 - t1 }) + '\\n');
`,
  );

  const env = { ...processEnv(), ...awsEnv, [ENV.memoryMb]: '1769', NODE_NO_WARNINGS: '1' };
  const phases: Record<string, { boot: number; import: number; first: number }[]> = {};
  // Spawn to first answer: the clock stops when the child's answer line arrives (each driver writes it right
  // after its first result), so process teardown, which differs between the two, is not counted.
  const once = (script: string) =>
    new Promise<number>((res, rej) => {
      const t = now();
      const child = spawn(process.execPath, [script], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      let out = '';
      let answeredAt: number | undefined;
      // The handler writes its EMF document first; the driver's own line ({"boot":…}) marks the answer.
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (answeredAt === undefined && /^\{"boot":.*\n/m.test(out)) answeredAt = now();
      });
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      child.on('exit', (code) => {
        if (code !== 0 || answeredAt === undefined) {
          return rej(new Error(`${script} exited ${code}: ${err.slice(-2000)}`));
        }
        const list = phases[script] ?? [];
        list.push(JSON.parse(out.split('\n').find((l) => l.startsWith('{"boot":')) as string));
        phases[script] = list;
        res(answeredAt - t);
      });
    });
  const runs = 11;
  const handlerMs: number[] = [];
  const baselineMs: number[] = [];
  await once(baselineDriver); // warms the OS file cache for both
  await once(handlerDriver);
  for (let i = 0; i < runs; i++) {
    handlerMs.push(round(await once(handlerDriver)));
    baselineMs.push(round(await once(baselineDriver)));
  }
  const median = (k: 'boot' | 'import' | 'first', script: string) =>
    stats((phases[script] ?? []).slice(1).map((p) => p[k])).p50;
  const phaseOf = (script: string) => ({
    bootMs: median('boot', script),
    importMs: median('import', script),
    firstMs: median('first', script),
  });
  return {
    handlerPhases: phaseOf(handlerDriver),
    baselinePhases: phaseOf(baselineDriver),
    handlerMs,
    baselineMs,
    handler: stats(handlerMs).p50,
    baseline: stats(baselineMs).p50,
    bundleBytes,
  };
}

function report(
  results: CaseResult[],
  cold: ColdResult,
  modelBytes: { fp32: number; int8: number },
  batch: BatchBenchResult,
  seconds: number,
) {
  const mlp1 = results.find((r) => r.model === 'mlp' && r.batch === 1)!;
  const mlp32 = results.find((r) => r.model === 'mlp' && r.batch === 32)!;
  const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
  const summary = {
    model: 'mlp 512-1024-512-10 (1.06M parameters), batch 1, p50',
    handlerOverFloor: ratio(mlp1.handler.p50, mlp1.floor.p50),
    handlerOverFloorObserved: ratio(mlp1.observed.p50, mlp1.floor.p50),
    captureOverhead: ratio(mlp1.captured.p50, mlp1.observed.p50),
    handlerOverFloorSplit: ratio(mlp1.split.p50, mlp1.floor.p50),
    handlerOverRaw: ratio(mlp1.handler.p50, mlp1.raw.p50),
    binaryHandlerOverRaw: ratio(mlp1.binary.p50, mlp1.raw.p50),
    handlerOverRaw32: ratio(mlp32.handler.p50, mlp32.raw.p50),
    binaryHandlerOverRaw32: ratio(mlp32.binary.p50, mlp32.raw.p50),
    wasmOverNative: ratio(mlp1.wasm.p50, mlp1.wasmRaw.p50),
    int8OverFp32: ratio(mlp1.int8!.p50, mlp1.int8Fp32!.p50),
    int8OverFp32Batch32: ratio(mlp32.int8!.p50, mlp32.int8Fp32!.p50),
    int8SizeRatio: ratio(modelBytes.int8, modelBytes.fp32),
    coldRatio: ratio(cold.handler, cold.baseline),
    /** p50 of the work (f) and (g) leave after their answer (EMF line; EMF line and capture record), in ms. */
    afterAnswerObservedMs: mlp1.afterAnswer.observed.p50,
    afterAnswerCapturedMs: mlp1.afterAnswer.captured.p50,
    rawP50Ms: mlp1.raw.p50,
    rawP99Ms: mlp1.raw.p99,
    ...batchSummary(batch),
    targets: {
      handlerOverFloor: 1.1,
      handlerOverFloorObserved: 1.1,
      captureOverhead: 1.15,
      handlerOverFloorSplit: 1.1,
      binaryHandlerOverRaw: 1.1,
      int8OverFp32: 0.6,
      coldRatio: 1.5,
      wasmOverNative: '> 1',
      batchOverRaw: 0.8,
    },
    cases: results.map((r) => ({
      ...r,
      handlerOverFloor: ratio(r.handler.p50, r.floor.p50),
      handlerOverFloorObserved: ratio(r.observed.p50, r.floor.p50),
      captureOverhead: ratio(r.captured.p50, r.observed.p50),
      handlerOverFloorSplit: ratio(r.split.p50, r.floor.p50),
      handlerOverRaw: ratio(r.handler.p50, r.raw.p50),
      binaryHandlerOverRaw: ratio(r.binary.p50, r.raw.p50),
      wasmOverNative: ratio(r.wasm.p50, r.wasmRaw.p50),
    })),
    cold: {
      handlerFirstResponseMs: cold.handler,
      ortOnlyFirstRunMs: cold.baseline,
      handlerRunsMs: cold.handlerMs,
      ortOnlyRunsMs: cold.baselineMs,
      bundleBytes: cold.bundleBytes,
      handlerPhasesMs: cold.handlerPhases,
      ortOnlyPhasesMs: cold.baselinePhases,
    },
    node: process.version,
    seconds: Math.round(seconds),
  };
  if (asJson) {
    console.log(JSON.stringify(summary));
    return;
  }
  const f = (s: Stats) => `${s.p50.toFixed(3)} / ${s.p99.toFixed(3)}`;
  say('\nwarm latency, ms (p50 / p99)');
  say(
    [
      'model',
      'batch',
      '(a) raw run',
      '(b) handler',
      '(e) floor',
      '(c) wasm',
      '(f) observed',
      '(g) captured',
      '(i) binary',
      'b/e',
      'f/e',
      'g/f',
      'b/a',
      'c/a (own rotation)',
      'i/a',
    ]
      .map((h) => h.padEnd(16))
      .join(''),
  );
  for (const c of summary.cases) {
    say(
      [
        c.model,
        String(c.batch),
        f(c.raw),
        f(c.handler),
        f(c.floor),
        f(c.wasm),
        f(c.observed),
        f(c.captured),
        f(c.binary),
        String(c.handlerOverFloor),
        String(c.handlerOverFloorObserved),
        String(c.captureOverhead),
        String(c.handlerOverRaw),
        String(c.wasmOverNative),
        String(c.binaryHandlerOverRaw),
      ]
        .map((v) => v.padEnd(16))
        .join(''),
    );
  }
  say(
    `\ncold start, ms (median of ${cold.handlerMs.length}): handler bundle first response ${cold.handler.toFixed(0)}` +
      ` vs onnxruntime-only first run ${cold.baseline.toFixed(0)} (bundle ${(cold.bundleBytes / 1024).toFixed(0)} KiB)`,
  );
  const ph = (p: ColdPhases) =>
    `node boot ${p.bootMs.toFixed(0)}, import ${p.importMs.toFixed(0)}, first answer ${p.firstMs.toFixed(0)}`;
  say(`  handler:          ${ph(cold.handlerPhases)}`);
  say(`  onnxruntime-only: ${ph(cold.baselinePhases)}`);
  say('\nratios (mlp, batch 1, p50):');
  say(`  handlerOverFloor ${summary.handlerOverFloor}  (target <= 1.10)`);
  say(
    `  handlerOverFloorObserved ${summary.handlerOverFloorObserved}  (metrics on, capture 0 %; target <= 1.10)`,
  );
  say(`  captureOverhead  ${summary.captureOverhead}  (capture 100 % over 0 %; target <= 1.15)`);
  say(`  handlerOverFloorSplit ${summary.handlerOverFloorSplit}  (a 10 % canary active; target <= 1.10)`);
  say(`  handlerOverRaw   ${summary.handlerOverRaw}  (batch 32: ${summary.handlerOverRaw32})`);
  say(
    `  binaryHandlerOverRaw ${summary.binaryHandlerOverRaw}  (binary tensor data in and out; target <= 1.10; batch 32: ${summary.binaryHandlerOverRaw32})`,
  );
  say(`  wasmOverNative   ${summary.wasmOverNative}  (target > 1: native faster)`);
  say(
    `  int8OverFp32     ${summary.int8OverFp32}  (raw run, int8 MLP over FP32; target <= 0.6; batch 32: ${summary.int8OverFp32Batch32}; size ${summary.int8SizeRatio})`,
  );
  say(`  coldRatio        ${summary.coldRatio}  (target <= 1.5)`);
  for (const line of batchReportLines(batch)) say(line);
  say(
    `  after the answer (untimed above): observed ${summary.afterAnswerObservedMs} ms, captured ${summary.afterAnswerCapturedMs} ms (p50)`,
  );
  say(`  raw p50 ${summary.rawP50Ms} ms, p99 ${summary.rawP99Ms} ms; ${summary.seconds} s in all`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * `npx tsx bench/profile-binary.ts [iterations] [binary] [tiny]` — where the predict handler's time goes on the binary path
 * (not a test): the ~1M parameter MLP of `npm run bench` at batch 1 and 32, in memory (no emulators), timing
 * raw `session.run`, the handler on a JSON request and on a binary one, and each step of the binary path on
 * its own (base64 decode, header parse, validation, response encoding, base64 encode). Median µs per call, and the handler's own time
 * (its time outside the engine's run).
 * At batch 1 it also times a raw run after different work (another run, plain JavaScript, the binary handler,
 * memory touched): what the work before a run costs the run itself.
 * `--cpu-prof` on node (`node --cpu-prof --import tsx bench/profile-binary.ts`) gives a profile; with
 * `binary`, only the binary handler at batch 1 runs (a profile of that path alone).
 */
import { randomUUID } from 'node:crypto';
import ort from 'onnxruntime-node';
import { MemoryRegistryRepository } from '../functions/adapters/memory-registry';
import { OrtEngine } from '../functions/adapters/ort-engine';
import { OrtModelInspector } from '../functions/adapters/ort-inspector';
import { registerVersion } from '../functions/app/registry';
import { SessionCache, sha256Hex } from '../functions/app/session-cache';
import { S3_KEYS } from '../functions/contract/env';
import { pathFor } from '../functions/contract/routes';
import {
  encodeBinaryResponse,
  parseBinaryRequest,
  responseOutputs,
} from '../functions/domain/binary-tensors';
import { compileSignature, validateInferenceRequest } from '../functions/domain/inference-validation';
import type { Tensor } from '../functions/domain/tensor';
import { createPredictHandler } from '../functions/handlers/predict';
import { requestBytes } from '../functions/handlers/request-body';
import { buildMlp, seededRandom } from '../functions/local/onnx-builder';
import type { ArtifactStore } from '../functions/ports/index';
import type { InferenceEngine } from '../functions/ports/inference';
import { apiEvent } from '../test/helpers/apigw';

const iterations = Number(process.argv[2] ?? 20000);
const onlyBinary = process.argv.includes('binary');
/** `tiny`: the bench's tiny classifier (4 features) instead of the MLP. */
const tiny = process.argv.includes('tiny');
const F = tiny ? 4 : 512;

/** Objects in memory: what registration and the predict path read and write. */
function memoryStore(): ArtifactStore {
  const objects = new Map<string, Uint8Array>();
  return {
    bucket: 'profile',
    getObject: async (key) => {
      const o = objects.get(key);
      if (!o) throw Object.assign(new Error(`no ${key}`), { name: 'NoSuchKey' });
      return o;
    },
    putObject: async (key, body) => {
      objects.set(key, body);
    },
    headObject: async (key) => {
      const o = objects.get(key);
      return o ? { sizeBytes: o.byteLength } : undefined;
    },
    deleteObject: async (key) => {
      objects.delete(key);
    },
  } as ArtifactStore;
}

/** Median µs of `iterations` calls of `fn`, after as many untimed ones. */
async function median(fn: () => unknown, returnsMs = false): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 2 * iterations; i++) {
    const t = performance.now();
    const r = await fn();
    if (i >= iterations) samples.push(returnsMs ? (r as number) : performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return Math.round(samples[samples.length >> 1]! * 10000) / 10;
}

/**
 * Median µs of each of `fns`, called in a new random order each round. `selfTimed`: each returns its own ms (the
 * part of its work to time).
 */
async function interleaved(fns: (() => unknown)[], selfTimed = false): Promise<number[]> {
  const samples: number[][] = fns.map(() => []);
  const order = fns.map((_, i) => i);
  const rand = seededRandom(7);
  for (let i = 0; i < 2 * iterations; i++) {
    for (let j = order.length - 1; j > 0; j--) {
      const k = Math.floor(rand() * (j + 1));
      [order[j], order[k]] = [order[k]!, order[j]!];
    }
    for (const f of order) {
      const t = performance.now();
      const r = await fns[f]!();
      if (i >= iterations) samples[f]!.push(selfTimed ? (r as number) : performance.now() - t);
    }
  }
  return samples.map((s) => {
    s.sort((a, b) => a - b);
    return Math.round(s[s.length >> 1]! * 10000) / 10;
  });
}

async function main() {
  const repo = new MemoryRegistryRepository();
  const store = memoryStore();
  const bytes = tiny
    ? buildMlp({ inFeatures: 4, layers: [3], seed: 1 })
    : buildMlp({ inFeatures: 512, layers: [1024, 512, 10], seed: 2 });
  await store.putObject(S3_KEYS.upload('mlp', 'profile'), bytes);
  const version = await registerVersion(
    { repo, store, inspector: new OrtModelInspector() },
    { name: 'mlp', sourceKey: S3_KEYS.upload('mlp', 'profile') },
  );
  const engine = new OrtEngine({ threads: 1 });
  // The handler's engine, timing each run it makes: a call's time outside it is the handler's own.
  let lastRunMs = 0;
  const timedEngine: InferenceEngine = {
    init: () => engine.init(),
    createSession: (b) => engine.createSession(b),
    release: (s) => engine.release(s),
    async run(session, feeds, names) {
      const t = performance.now();
      const out = await engine.run(session, feeds, names);
      lastRunMs = performance.now() - t;
      return out;
    },
  };
  const sessions = new SessionCache({ engine: timedEngine });
  const handler = createPredictHandler({ repo, store, sessions });
  const signature = compileSignature(version.signature, 'mlp');

  for (const batch of [1, 32]) {
    const rand = seededRandom(batch * 1000 + F);
    const values = Array.from({ length: batch * F }, () => Math.round((rand() * 2 - 1) * 1e6) / 1e6);
    const data = Float32Array.from(values);
    const path = pathFor('modelInfer', { name: 'mlp' });
    const jsonEvent = apiEvent('POST', path, {
      body: { id: 'bench', inputs: [{ name: 'input', datatype: 'FP32', shape: [batch, F], data: values }] },
    });
    /** A binary request of `data` with request id `id`: its header, body and event. */
    const binaryRequest = (id: string) => {
      const header = Buffer.from(
        JSON.stringify({
          id,
          inputs: [
            {
              name: 'input',
              datatype: 'FP32',
              shape: [batch, F],
              parameters: { binary_data_size: data.byteLength },
            },
          ],
          parameters: { binary_data_output: true },
        }),
      );
      const body = Buffer.concat([header, Buffer.from(data.buffer)]);
      const event = {
        ...apiEvent('POST', path, { headers: { 'Inference-Header-Content-Length': String(header.length) } }),
        body: body.toString('base64'),
        isBase64Encoded: true,
      };
      return { header, body, event };
    };
    const { header, body, event: binaryEvent } = binaryRequest('bench');
    // A client that sends a new id with every request (KServe's Python client): 1024 of them, in turn.
    const idEvents = Array.from({ length: 1024 }, () => binaryRequest(randomUUID()).event);
    let nextId = 0;
    const newIdEvent = () => idEvents[nextId++ & 1023]!;
    const first = await handler(binaryEvent);
    if (first.statusCode !== 200) throw new Error(`binary: ${first.statusCode} ${first.body}`);
    const session = engine.ortSession((await sessions.load(sha256Hex(bytes), async () => bytes)).session);
    const feeds = { input: new ort.Tensor('float32', data, [batch, F]) };
    const out = (await session.run(feeds)) as Record<string, ort.Tensor>;
    const outputs: [string, Tensor][] = Object.entries(out).map(([n, t]) => [
      n,
      { datatype: 'FP32', shape: t.dims, data: t.data as Float32Array },
    ]);
    const parsed = parseBinaryRequest(body, header.length).request;
    const encoded = encodeBinaryResponse(
      { model_name: 'mlp', model_version: '1', id: 'bench' },
      responseOutputs(parsed, outputs),
    );

    if (onlyBinary) {
      // Under `--cpu-prof`: the binary handler alone, batch 1.
      for (let i = 0; i < iterations; i++) await handler(binaryEvent);
      break;
    }
    const rows: [string, () => unknown][] = [
      ['raw session.run', () => session.run(feeds)],
      ['handler, JSON', () => handler(jsonEvent)],
      ['handler, binary', () => handler(binaryEvent)],
      ['  requestBytes (base64 decode)', () => requestBytes(binaryEvent, 6 * 1024 * 1024)],
      ['  parseBinaryRequest', () => parseBinaryRequest(body, header.length)],
      [
        '  parse + validate',
        () => validateInferenceRequest(parseBinaryRequest(body, header.length).request, signature),
      ],
      ['  new ort.Tensor', () => new ort.Tensor('float32', data, [batch, F])],
      [
        '  responseOutputs + encode',
        () =>
          encodeBinaryResponse(
            { model_name: 'mlp', model_version: '1', id: 'bench' },
            responseOutputs(parsed, outputs),
          ),
      ],
      [
        '  answer base64',
        () =>
          Buffer.from(encoded.body.buffer, encoded.body.byteOffset, encoded.body.byteLength).toString(
            'base64',
          ),
      ],
    ];
    // The first three interleaved, in a new order each round (as `npm run bench` measures them).
    const together = await interleaved(rows.slice(0, 3).map(([, fn]) => fn));
    console.log(
      `batch ${batch}, interleaved, median µs: raw ${together[0]}, JSON ${together[1]}, binary ${together[2]}`,
    );
    if (batch === 1) {
      // What a run inherits from the work before it: onnxruntime-node runs a session in a setImmediate, then
      // synchronously on the main thread (no worker to wake). A run right after another, after ~20 µs of
      // JavaScript that touches little memory, after the binary handler (untimed), and after 8 MB of memory
      // touched (caches evicted).
      const big = new Float64Array(1 << 20);
      const spin = () => {
        const end = performance.now() + 0.02;
        while (performance.now() < end);
      };
      const runAfter = (before: () => unknown) => async () => {
        await before();
        const t = performance.now();
        await session.run(feeds);
        return performance.now() - t;
      };
      const after = await interleaved(
        [
          runAfter(() => session.run(feeds)),
          runAfter(spin),
          runAfter(() => handler(binaryEvent)),
          runAfter(() => {
            for (let i = 0; i < big.length; i += 8) big[i]! += 1;
          }),
        ],
        true,
      );
      console.log(
        `batch 1, raw run after: a raw run ${after[0]}, 20 µs of JS ${after[1]}, the binary handler ${after[2]}, 8 MB touched ${after[3]}`,
      );
    }
    const outside = async (fn: () => unknown) =>
      median(async () => {
        const t = performance.now();
        await fn();
        return performance.now() - t - lastRunMs;
      }, true);
    console.log(
      `batch ${batch}, median µs outside engine.run: JSON ${await outside(() => handler(jsonEvent))}, binary ${await outside(() => handler(binaryEvent))}, binary with a new id each ${await outside(() => handler(newIdEvent()))}`,
    );
    console.log(
      `batch ${batch} (request ${body.length} bytes, answer ${encoded.body.length} bytes), median µs:`,
    );
    for (const [name, fn] of rows) console.log(`  ${name.padEnd(34)} ${(await median(fn)).toFixed(1)}`);
  }
  await sessions.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

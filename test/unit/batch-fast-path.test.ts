/**
 * A part scored with the row scanner (functions/domain/fast-rows.ts) writes the very bytes the general path writes
 * (every line decoded and parsed as JSON): the real predictor on onnxruntime-node, the in-memory batch ports, lines
 * of the common form mixed with lines the scanner leaves to the general path (extra fields, nested data, errors,
 * blank lines, bad JSON, CRLF, unicode ids) in the same chunks, lines crossing the stream's chunks, several chunks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBatchJobs, MemoryRangedObjects } from '../../functions/adapters/memory-batch';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { OrtThreadEngine } from '../../functions/adapters/ort-thread-engine';
import { PreparedRequest, responseText } from '../../functions/app/batch-inference';
import {
  aggregateBatchJob,
  type BatchScoreDeps,
  runBatchPart,
  startBatchJob,
} from '../../functions/app/batch-score';
import { createPredictor, type Predictor } from '../../functions/app/predict';
import { registerVersion } from '../../functions/app/registry';
import { SessionCache } from '../../functions/app/session-cache';
import { S3_KEYS } from '../../functions/contract/env';
import { BATCH_KEYS } from '../../functions/contract/events';
import type { WorkMessage } from '../../functions/domain/async';
import { outputToJson } from '../../functions/domain/oip-encode';
import { buildMlp, seededRandom } from '../../functions/local/onnx-builder';
import { MemoryArtifactStore } from '../helpers/memory-artifact-store';

const sessions = new SessionCache({ engine: new OrtEngine({ threads: 1 }) });
/** As the worker function scores: onnxruntime in a thread of its own. */
const threadEngine = new OrtThreadEngine({ threads: 1 });
const threadSessions = new SessionCache({ engine: threadEngine });
let predictor: Predictor;
let threaded: Predictor;

beforeAll(async () => {
  const repo = new MemoryRegistryRepository();
  const store = new MemoryArtifactStore();
  const sourceKey = S3_KEYS.upload('mlp', 'fast');
  await store.putObject(sourceKey, buildMlp({ inFeatures: 4, layers: [6, 3], seed: 5 }));
  await registerVersion({ repo, store, inspector: new OrtModelInspector() }, { name: 'mlp', sourceKey });
  predictor = createPredictor({ repo, store, sessions, maxBatchRows: 16 });
  threaded = createPredictor({ repo, store, sessions: threadSessions, maxBatchRows: 16 });
});
afterAll(async () => {
  await sessions.close();
  await threadSessions.close();
  await threadEngine.close();
});

const NUMBERS = [
  '-0',
  '0.1',
  '1e-7',
  '123456789012345678',
  '5e-324',
  '3.4028234663852886e38',
  '2.5E+1',
  '-7.25e-3',
];

/** Lines of every kind; most of the common form. */
function inputLines(n: number): string[] {
  const rand = seededRandom(11);
  const value = () =>
    rand() < 0.2
      ? NUMBERS[Math.floor(rand() * NUMBERS.length)]!
      : String(Math.round((rand() * 2 - 1) * 1e6) / 1e6);
  const data = (count: number) => Array.from({ length: count }, value).join(',');
  return Array.from({ length: n }, (_, i) => {
    const input = (extra = '', rows = 1) =>
      `{"name":"input","datatype":"FP32","shape":[${rows},4],"data":[${data(4 * rows)}]${extra}}`;
    switch (i % 23) {
      case 3:
        return `{"id":"p${i}","inputs":[${input(',"parameters":{}')}]}`;
      case 5:
        return `{"id":"o${i}","inputs":[${input()}],"outputs":[{"name":"output"}]}`;
      case 7:
        return `{"id":"n${i}","inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[[${data(4)}]]}]}`;
      case 9:
        return `{"id":"s${i}","inputs":[{"name":"input","datatype":"FP32","shape":[1,5],"data":[${data(5)}]}]}`;
      case 11:
        return i % 2 ? '' : '{oops';
      case 13:
        return `{"id":"b${i}","inputs":[${input()}],"parameters":{"binary_data_output":true}}`;
      case 15:
        return `{"id":"big${i}","inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[1,2,3,1e39]}]}`;
      case 17:
        return `{ "inputs" : [ ${input('', 3)} ] , "id" : "r${i}-é€😀" }\r`;
      case 19:
        return `{"id":"e\\u00e9${i}","inputs":[${input()}]}`;
      default:
        return `{"id":"r${i}","inputs":[${input()}]}`;
    }
  });
}

let jobs = 0;

/** The output of a job over `lines` scored with `scoring` as its predictor. */
async function score(
  lines: string[],
  scoring: BatchScoreDeps['predictor'],
  streamChunkBytes = 97,
): Promise<string> {
  const jobId = `j${++jobs}`;
  const objects = new MemoryRangedObjects({ streamChunkBytes });
  const sent: WorkMessage[] = [];
  const deps: BatchScoreDeps = {
    blobs: objects,
    objects,
    jobs: new MemoryBatchJobs(),
    predictor: scoring,
    batchQueue: {
      async send(m) {
        sent.push(m);
        return String(sent.length);
      },
    },
    rowsPerChunk: 40,
    partBytes: 64 * 1024,
  };
  await objects.put(BATCH_KEYS.job(jobId), JSON.stringify({ model: 'mlp', maxConcurrency: 1 }));
  await objects.put(BATCH_KEYS.input(jobId), `${lines.join('\n')}\n`);
  await startBatchJob(deps, jobId, { input: 'file' });
  for (let m = sent.shift(); m; m = sent.shift()) {
    if (m.type === 'batch-part') await runBatchPart(deps, m);
    else if (m.type === 'batch-aggregate') await aggregateBatchJob(deps, m);
  }
  const out = await objects.get(BATCH_KEYS.output(jobId));
  if (!out) throw new Error('no output');
  return new TextDecoder().decode(out);
}

describe('batch scoring with the row scanner', () => {
  it('writes the bytes the general path writes', async () => {
    const lines = inputLines(700);
    let prepared = 0;
    let parsed = 0;
    const counting: BatchScoreDeps['predictor'] = {
      resolve: (name, ref) => predictor.resolve(name, ref),
      inferBatch: (name, ref, requests) => {
        for (const r of requests) {
          if (r instanceof PreparedRequest) prepared++;
          else parsed++;
        }
        return predictor.inferBatch(name, ref, requests);
      },
    };
    // Without the version's signature the part has no row form: every line is decoded and parsed.
    const general: BatchScoreDeps['predictor'] = {
      resolve: (name, ref) => predictor.resolve(name, ref),
      inferBatch: (name, ref, requests) => {
        expect(requests.some((r) => r instanceof PreparedRequest)).toBe(false);
        return predictor.inferBatch(name, ref, requests);
      },
    };
    const withoutForm: BatchScoreDeps['predictor'] = {
      resolve: async (name, ref) => {
        const served = await predictor.resolve(name, ref);
        return { ...served, version: { ...served.version, signature: undefined as never } };
      },
      inferBatch: general.inferBatch,
    };
    const fast = await score(lines, counting);
    const slow = await score(lines, withoutForm);
    expect(fast).toBe(slow);
    expect(fast.split('\n')).toHaveLength(701);
    // Both kinds met in the same chunks, and the scanner read most lines.
    expect(prepared).toBeGreaterThan(400);
    expect(parsed).toBeGreaterThan(100);
    // Answers and errors of every kind are there.
    expect(fast).toContain('"id":"r17-é€😀"');
    expect(fast).toContain('"code":"MALFORMED_JSON"');
    expect(fast).toContain('"code":"EMPTY_LINE"');
    expect(fast).toContain('"code":"BINARY_DATA_IN_BATCH"');
    expect(fast).toContain('"code":"SHAPE_MISMATCH"');
    expect(fast).toContain('"code":"NON_FINITE"');
  });

  it('scores parts at once in one process, each with arrays of its own', async () => {
    const a = inputLines(300);
    const b = inputLines(500).slice(200).reverse();
    // Whole chunks arrive at once, and a chunk waits before its runs: each part scans its next chunk while the
    // other one's chunk waits to run.
    const slow: BatchScoreDeps['predictor'] = {
      resolve: (name, ref) => predictor.resolve(name, ref),
      inferBatch: async (name, ref, requests) => {
        await new Promise((done) => setTimeout(done, 5));
        return predictor.inferBatch(name, ref, requests);
      },
    };
    const [fastA, fastB] = await Promise.all([score(a, slow, 1 << 20), score(b, slow, 1 << 20)]);
    const general: BatchScoreDeps['predictor'] = {
      resolve: async (name, ref) => {
        const served = await predictor.resolve(name, ref);
        return { ...served, version: { ...served.version, signature: undefined as never } };
      },
      inferBatch: (name, ref, requests) => predictor.inferBatch(name, ref, requests),
    };
    expect(fastA).toBe(await score(a, general));
    expect(fastB).toBe(await score(b, general));
  });

  it('writes the same bytes with onnxruntime in a thread of its own, whatever order the chunks finish in', async () => {
    const lines = inputLines(700);
    const general: BatchScoreDeps['predictor'] = {
      resolve: async (name, ref) => {
        const served = await predictor.resolve(name, ref);
        return { ...served, version: { ...served.version, signature: undefined as never } };
      },
      inferBatch: (name, ref, requests) => predictor.inferBatch(name, ref, requests),
    };
    const expected = await score(lines, general);
    // Chunks are pipelined one deep: a chunk's runs start before the one before it is answered. The answers of
    // chunks 1 to 6 (all of the first part; a part's chunk 0 is settled alone) are held until the next chunk
    // starts, or 2 s pass, which only a chunk waiting for the one before it needs: each of them sees the next one
    // start while it is in flight, however fast or slow the thread answers.
    let started = 0;
    let overlapped = 0;
    const waiting: (() => void)[] = [];
    const counting: BatchScoreDeps['predictor'] = {
      resolve: (name, ref) => threaded.resolve(name, ref),
      inferBatch: async (name, ref, requests) => {
        const index = started++;
        for (const done of waiting.splice(0)) done();
        const items = await threaded.inferBatch(name, ref, requests);
        if (index >= 1 && index <= 6 && started === index + 1) {
          await new Promise<void>((done) => {
            waiting.push(done);
            setTimeout(done, 2000);
          });
        }
        if (started > index + 1) overlapped++;
        return items;
      },
    };
    // Whole parts arrive at once: the next chunk is read before the thread can answer the one in flight.
    expect(await score(lines, counting, 1 << 20)).toBe(expected);
    expect(started).toBeGreaterThan(6);
    expect(overlapped).toBeGreaterThanOrEqual(6);
    // Each chunk answered after a delay that shrinks from chunk to chunk: a chunk started later finishes first.
    let calls = 0;
    const reordered: BatchScoreDeps['predictor'] = {
      resolve: (name, ref) => threaded.resolve(name, ref),
      inferBatch: async (name, ref, requests) => {
        const delay = Math.max(0, 40 - 2 * calls++);
        const items = await threaded.inferBatch(name, ref, requests);
        await new Promise((done) => setTimeout(done, delay));
        return items;
      },
    };
    expect(await score(lines, reordered, 1 << 20)).toBe(expected);
  });

  it('answers a prepared request with the JSON text of the response it would get', async () => {
    const served = await predictor.resolve('mlp', '1');
    const outputs: [string, { datatype: 'FP32'; shape: number[]; data: Float32Array }][] = [
      ['output', { datatype: 'FP32', shape: [1, 4], data: Float32Array.of(-0, 0.1, Number.NaN, 1e-45) }],
      ['other', { datatype: 'FP32', shape: [2], data: Float32Array.of(Infinity, 3) }],
    ];
    for (const id of [undefined, 'a"b', 'é€😀']) {
      const response = {
        model_name: served.version.name,
        model_version: String(served.version.version),
        ...(id !== undefined ? { id } : {}),
        outputs: outputs.map(([n, t]) => outputToJson(n, t)),
      };
      expect(responseText(served, id, outputs)).toBe(JSON.stringify(response));
    }
  });
});

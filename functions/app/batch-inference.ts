/**
 * Batch inference: many OIP requests against one version (batch scoring and async inference use it). Compatible
 * requests (same inputs, datatypes, trailing dims and output selection) are concatenated along dimension 0 into
 * one run when the model's first input and output dimensions are dynamic; answers come back in request order,
 * one per request, and a request that fails gets its own error without failing the others.
 */
import { isMaasError } from '../domain/errors';
import { type ValidatedRequest, validateInferenceRequest } from '../domain/inference-validation';
import { type OipResponse, outputToJsonText } from '../domain/oip-encode';
import { elementCount, type Tensor, type TensorData } from '../domain/tensor';
import type { InferenceEngine } from '../ports/inference';
import { assemble, type Inference, outputPlan, toResponse } from './inference';
import type { CachedSession } from './session-cache';
import type { ServedVersion, VersionResolver } from './version-resolver';

/**
 * One answer of `inferBatch`: the response, or the error that request alone got. The answer of a
 * `PreparedRequest` also carries `json`, the response's JSON text (`JSON.stringify(response)`), built without the
 * object, which is then made only when read.
 */
export type BatchItem =
  | { readonly ok: true; readonly response: OipResponse; readonly json?: string }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly error: string };

/**
 * A request already validated against the version's signature (a batch row read by the row scanner,
 * functions/domain/fast-rows.ts): `inferBatch` takes it as it is, without `validateInferenceRequest`, and answers
 * it with its JSON text. `group` is shared by the prepared requests whose inputs have the same names, datatypes
 * and dimensions but the first (their group is computed once). Feeds that are consecutive views of one buffer
 * are stacked without a copy.
 */
export class PreparedRequest {
  constructor(
    readonly request: ValidatedRequest,
    readonly group: object,
  ) {}
}

/** The answer of a prepared request: its JSON text, and the response object made from the outputs when read. */
class TextAnswer {
  readonly ok = true as const;
  constructor(
    readonly json: string,
    private readonly make: () => OipResponse,
  ) {}
  get response(): OipResponse {
    return this.make();
  }
}

export interface BatchInferenceDeps {
  readonly resolver: VersionResolver;
  readonly inference: Pick<Inference, 'session' | 'execute'>;
  /** The engine the sessions run on. */
  readonly engine: InferenceEngine;
  /** Largest number of rows put into one run. @default 256 */
  readonly maxBatchRows?: number;
}

/** Runs many OIP requests against one version (see the module comment). */
export type InferBatch = (
  name: string,
  ref: string | undefined,
  requests: readonly unknown[],
) => Promise<BatchItem[]>;

interface Pending {
  readonly index: number;
  readonly req: ValidatedRequest;
  readonly rows: number;
  /** Answered with its JSON text (a PreparedRequest). */
  readonly text: boolean;
}

/** Creates batch inference over the resolver and single inference. */
export function createBatchInference(deps: BatchInferenceDeps): InferBatch {
  const { resolver, inference, engine } = deps;
  const maxBatchRows = deps.maxBatchRows ?? 256;

  /** One run for a chunk of compatible requests; false when the result cannot be split back (run one by one). */
  async function runConcatenated(
    served: ServedVersion,
    s: CachedSession,
    chunk: readonly Pending[],
    items: BatchItem[],
  ): Promise<boolean> {
    const first = chunk[0]!.req;
    const total = chunk.reduce((a, c) => a + c.rows, 0);
    const feeds: Record<string, Tensor> = {};
    for (const name of Object.keys(first.feeds)) {
      const parts = chunk.map((c) => c.req.feeds[name]!);
      const t0 = parts[0]!;
      feeds[name] = {
        datatype: t0.datatype,
        shape: [total, ...t0.shape.slice(1)],
        data: concatData(parts.map((p) => p.data)),
      };
    }
    const wanted = first.outputs ?? served.allOutputs;
    const { fetch, ppWanted } = outputPlan(served, wanted);
    let results: Record<string, Tensor>;
    try {
      results = await engine.run(s.session, feeds, fetch);
    } catch {
      return false;
    }
    if (!fetch.every((n) => results[n] !== undefined && results[n].shape[0] === total)) return false;
    let offset = 0;
    for (const { index, req, rows, text } of chunk) {
      const sliced: Record<string, Tensor> = {};
      for (const n of fetch) {
        const t = results[n]!;
        const per = elementCount(t.shape) / total;
        sliced[n] = {
          datatype: t.datatype,
          shape: [rows, ...t.shape.slice(1)],
          data: sliceData(t.data, offset * per, (offset + rows) * per),
        };
      }
      offset += rows;
      try {
        const outputs = assemble(served, wanted, sliced, ppWanted);
        items[index] = text
          ? new TextAnswer(responseText(served, req.id, outputs), () => toResponse(served, req.id, outputs))
          : { ok: true, response: toResponse(served, req.id, outputs) };
      } catch (e) {
        items[index] = failure(e);
      }
    }
    return true;
  }

  return async (name, ref, requests) => {
    const served = await resolver.resolve(name, ref);
    const s = await inference.session(served);
    const items: BatchItem[] = new Array(requests.length);
    const groups = new Map<string, Pending[]>();
    const batchable = isBatchable(served);
    const single = async (index: number, req: ValidatedRequest, text: boolean) => {
      try {
        const outputs = await inference.execute(served, s, req);
        items[index] = text
          ? new TextAnswer(responseText(served, req.id, outputs), () => toResponse(served, req.id, outputs))
          : { ok: true, response: toResponse(served, req.id, outputs) };
      } catch (e) {
        items[index] = failure(e);
      }
    };
    const solo: { index: number; req: ValidatedRequest; text: boolean }[] = [];
    // The group of the prepared requests of one `group` object, computed once.
    const preparedKeys = new Map<object, string>();
    for (let index = 0; index < requests.length; index++) {
      const body = requests[index];
      const text = body instanceof PreparedRequest;
      let req: ValidatedRequest;
      try {
        req = text ? body.request : validateInferenceRequest(body, served.signature);
      } catch (e) {
        items[index] = failure(e);
        continue;
      }
      const rows = batchable ? commonRows(req) : undefined;
      if (rows === undefined) {
        solo.push({ index, req, text });
        continue;
      }
      let key: string;
      if (text) {
        const known = preparedKeys.get(body.group);
        key = known ?? groupKey(served, req);
        if (known === undefined) preparedKeys.set(body.group, key);
      } else {
        key = groupKey(served, req);
      }
      let g = groups.get(key);
      if (!g) {
        g = [];
        groups.set(key, g);
      }
      g.push({ index, req, rows, text });
    }
    for (const { index, req, text } of solo) await single(index, req, text);
    // Every chunk's run is started before any is awaited: an engine that runs in a thread of its own
    // (OrtThreadEngine) runs the next chunk while the answers of one are made here.
    const runs: Promise<void>[] = [];
    for (const group of groups.values()) {
      for (const chunk of chunkByRows(group, maxBatchRows)) {
        if (chunk.length === 1) {
          runs.push(single(chunk[0]!.index, chunk[0]!.req, chunk[0]!.text));
          continue;
        }
        runs.push(
          runConcatenated(served, s, chunk, items).then(async (answered) => {
            if (!answered) for (const { index, req, text } of chunk) await single(index, req, text);
          }),
        );
      }
    }
    await Promise.all(runs);
    return items;
  };
}

function failure(e: unknown): BatchItem {
  if (isMaasError(e)) return { ok: false, status: e.status, code: e.code, error: e.message };
  return { ok: false, status: 500, code: 'INTERNAL', error: 'internal error' };
}

/** Concatenation along dimension 0 needs a dynamic first dimension on every input and output. */
function isBatchable(served: ServedVersion): boolean {
  const sig = served.version.signature;
  return (
    sig.inputs.every((t) => t.shape.length > 0 && t.shape[0] === -1) &&
    sig.outputs.every((t) => t.shape.length > 0 && t.shape[0] === -1)
  );
}

/** The shared first dimension of all of a request's inputs, or undefined when they differ. */
function commonRows(req: ValidatedRequest): number | undefined {
  let rows: number | undefined;
  for (const name in req.feeds) {
    const r = req.feeds[name]!.shape[0];
    if (r === undefined || (rows !== undefined && r !== rows)) return undefined;
    rows = r;
  }
  return rows;
}

function groupKey(served: ServedVersion, req: ValidatedRequest): string {
  let key = '';
  for (const name of served.signature.inputNames) {
    const t = req.feeds[name]!;
    key += `${name}:${t.datatype}:${t.shape.slice(1).join('x')};`;
  }
  return `${key}|${req.outputs?.join(',') ?? '*'}`;
}

function chunkByRows<T extends { rows: number }>(items: T[], maxRows: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let rows = 0;
  for (const item of items) {
    if (current.length > 0 && rows + item.rows > maxRows) {
      chunks.push(current);
      current = [];
      rows = 0;
    }
    current.push(item);
    rows += item.rows;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * The JSON text of the response `toResponse` makes of these outputs, equal to `JSON.stringify` of it
 * (`outputToJsonText` is `JSON.stringify(outputToJson(…))`), built without the objects.
 */
export function responseText(
  served: ServedVersion,
  id: string | undefined,
  outputs: [string, Tensor][],
): string {
  let text = headOf(served);
  if (id !== undefined) text += `"id":${JSON.stringify(id)},`;
  text += '"outputs":[';
  for (let i = 0; i < outputs.length; i++) {
    const [name, t] = outputs[i]!;
    if (i > 0) text += ',';
    text += outputToJsonText(name, t);
  }
  return `${text}]}`;
}

const heads = new WeakMap<ServedVersion, string>();

/** `{"model_name":…,"model_version":…,` of a served version. */
function headOf(served: ServedVersion): string {
  let head = heads.get(served);
  if (head === undefined) {
    const v = served.version;
    head = `{"model_name":${JSON.stringify(v.name)},"model_version":${JSON.stringify(String(v.version))},`;
    heads.set(served, head);
  }
  return head;
}

/**
 * The parts one after the other: a view when they are consecutive views of one buffer (rows the row scanner
 * stacked already), else a copy.
 */
function concatData(parts: TensorData[]): TensorData {
  const first = parts[0]!;
  if (Array.isArray(first)) return (parts as string[][]).flat();
  const adjacent = adjacentView(parts as Exclude<TensorData, string[]>[]);
  if (adjacent) return adjacent;
  const length = parts.reduce((a, p) => a + p.length, 0);
  const Ctor = first.constructor as new (n: number) => Exclude<TensorData, string[]>;
  const out = new Ctor(length);
  let offset = 0;
  for (const p of parts as Exclude<TensorData, string[]>[]) {
    (out as { set(a: ArrayLike<number | bigint>, o: number): void }).set(p, offset);
    offset += p.length;
  }
  return out;
}

function adjacentView(parts: Exclude<TensorData, string[]>[]): Exclude<TensorData, string[]> | undefined {
  const first = parts[0]!;
  const buffer = first.buffer;
  let next = first.byteOffset + first.byteLength;
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.buffer !== buffer || p.byteOffset !== next || p.constructor !== first.constructor) return undefined;
    next += p.byteLength;
  }
  const Ctor = first.constructor as new (
    b: ArrayBufferLike,
    offset: number,
    length: number,
  ) => Exclude<TensorData, string[]>;
  return new Ctor(buffer, first.byteOffset, (next - first.byteOffset) / first.BYTES_PER_ELEMENT);
}

function sliceData(data: TensorData, from: number, to: number): TensorData {
  return Array.isArray(data) ? data.slice(from, to) : (data as Float32Array).subarray(from, to);
}

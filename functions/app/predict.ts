/**
 * The predict use case: resolve `name@ref` to a concrete READY version, load its session (cached by sha256),
 * validate and decode the OIP request, run, post-process, and build the OIP response.
 *
 * Caches (all per predictor, i.e. module scope in a Lambda sandbox):
 * - alias -> version number, for `aliasTtlMs` (a warm predict normally makes no DynamoDB call);
 * - version number -> version record with its compiled signature (bounded by count). A version's content is
 *   immutable, so the compiled signature is kept; its status is not (ARCHIVED, deleted), so a version asked
 *   for by number is re-read at most once per `aliasTtlMs` and stops being served once it is not READY;
 * - sessions live in the InferenceEngine, keyed by artifact sha256.
 *
 * Besides the HTTP handler, batch scoring and async inference reuse it (`infer`, `inferBatch`).
 */
import { DEFAULT_ALIAS, LIMITS } from '../contract/limits';
import {
  ArtifactIntegrityError,
  BadRequestError,
  ConflictError,
  isMaasError,
  NotFoundError,
} from '../domain/errors';
import {
  type CompiledSignature,
  compileSignature,
  type ValidatedRequest,
  validateInferenceRequest,
} from '../domain/inference-validation';
import {
  applyPostprocess,
  postprocessOutputNames,
  postprocessOutputSpecs,
  postprocessSource,
} from '../domain/postprocess';
import {
  elementCount,
  type OipResponse,
  type OipTensor,
  outputToJson,
  outputToJsonText,
  type Tensor,
  type TensorData,
} from '../domain/tensor-codec';
import type { ModelVersion, TensorSpec } from '../domain/types';
import { type ArtifactStore, type Clock, type RegistryRepository, systemClock } from '../ports/index';
import type { InferenceEngine, ModelSession } from '../ports/inference';

export interface PredictorDeps {
  readonly repo: Pick<RegistryRepository, 'getVersion' | 'getAlias' | 'getModel'>;
  readonly store: Pick<ArtifactStore, 'getObject' | 'getObjectHashed'>;
  readonly engine: InferenceEngine;
  /** @default systemClock */
  readonly clock?: Clock;
  /** How long an alias resolution is reused. @default LIMITS.defaultAliasTtlMs */
  readonly aliasTtlMs?: number;
  /** Largest number of rows `inferBatch` puts into one run. @default 256 */
  readonly maxBatchRows?: number;
}

/** OIP model metadata. */
export interface ModelMetadata {
  readonly name: string;
  readonly versions: string[];
  readonly platform: 'onnxruntime_onnx';
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/** One answer of `inferBatch`: the response, or the error that request alone got. */
export type BatchItem =
  | { readonly ok: true; readonly response: OipResponse }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly error: string };

/** A resolved, servable version with everything derived from it once. */
export interface ServedVersion {
  readonly version: ModelVersion;
  readonly signature: CompiledSignature;
  /** Post-processing output names (empty when none is declared). */
  readonly extraOutputs: readonly string[];
  readonly ppSource?: string;
  /** `{"model_name":…,"model_version":"3"` — the constant head of every response. */
  readonly responseHead: string;
  /** What a request without `outputs` gets: model outputs, then post-processing outputs. */
  readonly allOutputs: readonly string[];
  /** Until when (epoch ms) the READY status read from the registry is trusted for by-number requests. */
  statusExpiresAt: number;
}

export interface Predictor {
  /** Resolves `ref` (version number, alias, or none = `prod`) to a READY version. */
  resolve(name: string, ref?: string): Promise<ServedVersion>;
  /** OIP model metadata of `name@ref`. */
  metadata(name: string, ref?: string): Promise<ModelMetadata>;
  /** Loads the session of `name@ref` (used for `MAAS_PRELOAD`). */
  preload(name: string, ref?: string): Promise<ServedVersion>;
  /** Runs one OIP request; the response as an object. */
  infer(name: string, ref: string | undefined, request: unknown): Promise<OipResponse>;
  /** Runs one OIP request; the response as JSON text (the HTTP path: no intermediate objects). */
  inferJson(name: string, ref: string | undefined, request: unknown): Promise<string>;
  /**
   * Runs many OIP requests against one version. Compatible requests (same inputs, datatypes, trailing dims and
   * output selection) are concatenated along dimension 0 into one run when the model's first input and output
   * dimensions are dynamic; answers come back in request order, one per request.
   */
  inferBatch(name: string, ref: string | undefined, requests: readonly unknown[]): Promise<BatchItem[]>;
}

const VERSION_RE = /^[1-9][0-9]{0,8}$/;
const MAX_CACHED_VERSIONS = 1000;
const MAX_CACHED_ALIASES = 10_000;

function isNoSuchKey(e: unknown): boolean {
  const err = e as { name?: string; code?: string };
  return err?.name === 'NoSuchKey' || err?.name === 'NotFound' || err?.code === 'ARTIFACT_NOT_FOUND';
}

/** Creates the predict use case over its ports. */
export function createPredictor(deps: PredictorDeps): Predictor {
  const clock = deps.clock ?? systemClock;
  // Milliseconds now; the system clock without a Date per call (the warm path asks on every request).
  const nowMs = clock === systemClock ? Date.now : () => clock.now().getTime();
  const ttl = deps.aliasTtlMs ?? LIMITS.defaultAliasTtlMs;
  const maxBatchRows = deps.maxBatchRows ?? 256;
  // name -> alias -> resolution; name -> version number -> served version (nested: no key strings to build).
  const aliases = new Map<string, Map<string, { version: number; expiresAt: number }>>();
  const versions = new Map<string, Map<number, ServedVersion>>();
  let versionCount = 0;
  let aliasCount = 0;

  /** The served version of `name@ref` when every step is cached (the warm path: no promise, no I/O). */
  function cached(name: string, ref: string | undefined): ServedVersion | undefined {
    const byNumber = versions.get(name);
    if (!byNumber) return undefined;
    const r = ref ?? DEFAULT_ALIAS;
    if (VERSION_RE.test(r)) {
      const served = byNumber.get(Number(r));
      return served && served.statusExpiresAt > nowMs() ? served : undefined;
    }
    const a = aliases.get(name)?.get(r);
    if (!a || a.expiresAt <= nowMs()) return undefined;
    return byNumber.get(a.version);
  }

  async function notFound(name: string, what: NotFoundError): Promise<never> {
    const model = await deps.repo.getModel(name);
    if (!model) throw new NotFoundError(`model '${name}' does not exist`, 'MODEL_NOT_FOUND');
    throw what;
  }

  /**
   * The version number `ref` names; for an alias read from the registry, also the version record the alias
   * item carries (one DynamoDB read instead of two on a cold resolution).
   */
  async function versionNumber(
    name: string,
    ref: string,
  ): Promise<{ number: number; target?: ModelVersion }> {
    if (VERSION_RE.test(ref)) return { number: Number(ref) };
    if (/^[0-9]+$/.test(ref)) {
      throw new BadRequestError(
        `invalid version '${ref}': a positive integer is required`,
        'INVALID_VERSION',
      );
    }
    if (!LIMITS.namePattern.test(ref)) {
      throw new BadRequestError(
        `invalid version or alias '${ref.slice(0, 64)}': use a version number or an alias name`,
        'INVALID_ALIAS',
      );
    }
    const now = nowMs();
    const hit = aliases.get(name)?.get(ref);
    if (hit && hit.expiresAt > now) return { number: hit.version };
    const alias = await deps.repo.getAlias(name, ref);
    if (!alias) {
      return notFound(name, new NotFoundError(`model '${name}' has no alias '${ref}'`, 'ALIAS_NOT_FOUND'));
    }
    if (aliasCount >= MAX_CACHED_ALIASES) {
      aliases.clear();
      aliasCount = 0;
    }
    let byAlias = aliases.get(name);
    if (!byAlias) {
      byAlias = new Map();
      aliases.set(name, byAlias);
    }
    if (!byAlias.has(ref)) aliasCount++;
    byAlias.set(ref, { version: alias.version, expiresAt: now + ttl });
    return alias.target?.version === alias.version
      ? { number: alias.version, target: alias.target }
      : { number: alias.version };
  }

  async function resolve(name: string, ref?: string): Promise<ServedVersion> {
    if (!LIMITS.namePattern.test(name)) {
      throw new BadRequestError(`invalid model name '${name.slice(0, 64)}'`, 'INVALID_NAME');
    }
    const { number, target } = await versionNumber(name, ref ?? DEFAULT_ALIAS);
    const hit = versions.get(name)?.get(number);
    // An alias only points at READY versions (archive and delete are refused while aliased): its hit is good.
    const aliased = ref !== undefined ? !VERSION_RE.test(ref) : true;
    if (hit && (aliased || hit.statusExpiresAt > nowMs())) return hit;
    const v = target ?? (await deps.repo.getVersion(name, number));
    if (v?.status !== 'READY') versions.get(name)?.delete(number);
    if (!v) {
      return notFound(
        name,
        new NotFoundError(`model '${name}' has no version ${number}`, 'VERSION_NOT_FOUND'),
      );
    }
    if (v.status !== 'READY') {
      throw new ConflictError(
        `version ${number} of model '${name}' is ${v.status}; only READY versions are served`,
        'VERSION_NOT_READY',
      );
    }
    if (hit) {
      hit.statusExpiresAt = nowMs() + ttl;
      return hit;
    }
    const extraOutputs = postprocessOutputNames(v.postprocess, v.labels);
    const ppSource = extraOutputs.length > 0 ? postprocessSource(v.postprocess, v.signature) : undefined;
    const served: ServedVersion = {
      version: v,
      signature: compileSignature(v.signature, `model '${name}' version ${number}`, extraOutputs),
      extraOutputs,
      ...(ppSource ? { ppSource } : {}),
      responseHead: `{"model_name":${JSON.stringify(name)},"model_version":"${number}"`,
      allOutputs: [...v.signature.outputs.map((o) => o.name), ...extraOutputs],
      statusExpiresAt: nowMs() + ttl,
    };
    if (versionCount >= MAX_CACHED_VERSIONS) {
      versions.clear();
      versionCount = 0;
    }
    let byNumber = versions.get(name);
    if (!byNumber) {
      byNumber = new Map();
      versions.set(name, byNumber);
    }
    byNumber.set(number, served);
    versionCount++;
    return served;
  }

  function session(served: ServedVersion): Promise<ModelSession> {
    const v = served.version;
    return deps.engine.loadSession(v.sha256, async () => {
      try {
        // Hashed while it streams in when the store can: verification then costs no pass of its own.
        return await (deps.store.getObjectHashed?.(v.s3Key) ?? deps.store.getObject(v.s3Key));
      } catch (e) {
        if (isNoSuchKey(e)) {
          throw new ArtifactIntegrityError(
            `the stored artifact of model '${v.name}' version ${v.version} is missing`,
          );
        }
        throw e;
      }
    });
  }

  /** Runs a validated request; returns the outputs in answer order. */
  async function execute(
    served: ServedVersion,
    s: ModelSession,
    req: ValidatedRequest,
  ): Promise<[string, Tensor][]> {
    const wanted = req.outputs ?? served.allOutputs;
    const { fetch, ppWanted } = plan(served, wanted);
    const results = await deps.engine.run(s, req.feeds, fetch);
    return assemble(served, wanted, results, ppWanted);
  }

  const allPlans = new WeakMap<ServedVersion, ReturnType<typeof makePlan>>();
  function plan(served: ServedVersion, wanted: readonly string[]) {
    if (wanted !== served.allOutputs) return makePlan(served, wanted);
    let p = allPlans.get(served);
    if (!p) {
      p = makePlan(served, wanted);
      allPlans.set(served, p);
    }
    return p;
  }

  function makePlan(served: ServedVersion, wanted: readonly string[]) {
    const model = served.signature.modelOutputs;
    const fetch: string[] = [];
    let ppWanted: Set<string> | undefined;
    for (const n of wanted) {
      if (model.includes(n)) {
        fetch.push(n);
      } else {
        ppWanted ??= new Set();
        ppWanted.add(n);
      }
    }
    if (ppWanted && served.ppSource && !fetch.includes(served.ppSource)) fetch.push(served.ppSource);
    return { fetch, ppWanted };
  }

  function assemble(
    served: ServedVersion,
    wanted: readonly string[],
    results: Record<string, Tensor>,
    ppWanted: Set<string> | undefined,
  ): [string, Tensor][] {
    let extra: Map<string, Tensor> | undefined;
    if (ppWanted && served.ppSource) {
      const source = results[served.ppSource];
      if (!source) throw new Error(`post-processing source '${served.ppSource}' was not produced`);
      extra = applyPostprocess(served.version.postprocess, served.version.labels, source, ppWanted);
    }
    const out: [string, Tensor][] = [];
    for (const n of wanted) {
      const t = results[n] ?? extra?.get(n);
      if (t) out.push([n, t]);
    }
    return out;
  }

  function toResponse(
    served: ServedVersion,
    id: string | undefined,
    outputs: [string, Tensor][],
  ): OipResponse {
    const v = served.version;
    return {
      model_name: v.name,
      model_version: String(v.version),
      ...(id !== undefined ? { id } : {}),
      outputs: outputs.map(([n, t]) => outputToJson(n, t)),
    };
  }

  async function prepare(name: string, ref: string | undefined, request: unknown) {
    const served = await resolve(name, ref);
    const req = validateInferenceRequest(request, served.signature);
    const s = await session(served);
    return { served, s, req };
  }

  async function inferBatch(
    name: string,
    ref: string | undefined,
    requests: readonly unknown[],
  ): Promise<BatchItem[]> {
    const served = await resolve(name, ref);
    const s = await session(served);
    const items: BatchItem[] = new Array(requests.length);
    const groups = new Map<string, { index: number; req: ValidatedRequest; rows: number }[]>();
    const batchable = isBatchable(served);
    const single = async (index: number, req: ValidatedRequest) => {
      try {
        items[index] = { ok: true, response: toResponse(served, req.id, await execute(served, s, req)) };
      } catch (e) {
        items[index] = failure(e);
      }
    };
    const solo: { index: number; req: ValidatedRequest }[] = [];
    requests.forEach((body, index) => {
      let req: ValidatedRequest;
      try {
        req = validateInferenceRequest(body, served.signature);
      } catch (e) {
        items[index] = failure(e);
        return;
      }
      const rows = batchable ? commonRows(req) : undefined;
      if (rows === undefined) {
        solo.push({ index, req });
        return;
      }
      const key = groupKey(served, req);
      let g = groups.get(key);
      if (!g) {
        g = [];
        groups.set(key, g);
      }
      g.push({ index, req, rows });
    });
    for (const { index, req } of solo) await single(index, req);
    for (const group of groups.values()) {
      for (const chunk of chunkByRows(group, maxBatchRows)) {
        if (chunk.length === 1) {
          await single(chunk[0]!.index, chunk[0]!.req);
          continue;
        }
        const answered = await runConcatenated(served, s, chunk, items);
        if (!answered) for (const { index, req } of chunk) await single(index, req);
      }
    }
    return items;
  }

  /** One run for a chunk of compatible requests; false when the result cannot be split back (run one by one). */
  async function runConcatenated(
    served: ServedVersion,
    s: ModelSession,
    chunk: { index: number; req: ValidatedRequest; rows: number }[],
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
    const { fetch, ppWanted } = plan(served, wanted);
    let results: Record<string, Tensor>;
    try {
      results = await deps.engine.run(s, feeds, fetch);
    } catch {
      return false;
    }
    if (!fetch.every((n) => results[n] !== undefined && results[n].shape[0] === total)) return false;
    let offset = 0;
    for (const { index, req, rows } of chunk) {
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
        items[index] = {
          ok: true,
          response: toResponse(served, req.id, assemble(served, wanted, sliced, ppWanted)),
        };
      } catch (e) {
        items[index] = failure(e);
      }
    }
    return true;
  }

  return {
    resolve,
    async metadata(name, ref) {
      const served = await resolve(name, ref);
      const v = served.version;
      return {
        name,
        versions: [String(v.version)],
        platform: 'onnxruntime_onnx',
        inputs: v.signature.inputs,
        outputs: [...v.signature.outputs, ...postprocessOutputSpecs(v.postprocess, v.labels, v.signature)],
      };
    },
    async preload(name, ref) {
      const served = await resolve(name, ref);
      await session(served);
      return served;
    },
    async infer(name, ref, request) {
      const { served, s, req } = await prepare(name, ref, request);
      return toResponse(served, req.id, await execute(served, s, req));
    },
    inferJson(name, ref, request) {
      try {
        const served = cached(name, ref);
        const s = served && deps.engine.cachedSession(served.version.sha256);
        if (served && s) return runJson(served, s, validateInferenceRequest(request, served.signature));
      } catch (e) {
        return Promise.reject(e);
      }
      return prepare(name, ref, request).then(({ served, s, req }) => runJson(served, s, req));
    },
    inferBatch,
  };

  async function runJson(served: ServedVersion, s: ModelSession, req: ValidatedRequest): Promise<string> {
    const wanted = req.outputs ?? served.allOutputs;
    const { fetch, ppWanted } = plan(served, wanted);
    const outputs = assemble(served, wanted, await deps.engine.run(s, req.feeds, fetch), ppWanted);
    let text = served.responseHead;
    if (req.id !== undefined) text += `,"id":${JSON.stringify(req.id)}`;
    text += ',"outputs":[';
    for (let i = 0; i < outputs.length; i++) {
      const [n, t] = outputs[i]!;
      if (i > 0) text += ',';
      text += outputToJsonText(n, t);
    }
    return `${text}]}`;
  }
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

function concatData(parts: TensorData[]): TensorData {
  const first = parts[0]!;
  if (Array.isArray(first)) return (parts as string[][]).flat();
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

function sliceData(data: TensorData, from: number, to: number): TensorData {
  return Array.isArray(data) ? data.slice(from, to) : (data as Float32Array).subarray(from, to);
}

export type { OipResponse, OipTensor };

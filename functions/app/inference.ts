/**
 * Single inference: one OIP request against `name@ref` — resolve the version, validate and decode the request,
 * get the session (from the session cache, loading the artifact on first use), run, post-process, and build the
 * OIP response, as an object or straight as JSON text (the HTTP path).
 *
 * The warm path of `inferJson` (version and session cached) makes no registry or store call and creates no
 * promise besides the run's own.
 */
import { randomUUID } from 'node:crypto';
import { BinaryHeaderCache, type ParsedBinaryRequest, refusedHeaderId } from '../domain/binary-header-cache';
import { BinaryAnswerEncoder, type EncodedResponse, responseOutputs } from '../domain/binary-tensors';
import { ArtifactIntegrityError } from '../domain/errors';
import {
  type CompiledSignature,
  ownInferenceId,
  type ValidatedRequest,
  validateInferenceRequest,
} from '../domain/inference-validation';
import type { OipRequest } from '../domain/oip-decode';
import { type OipResponse, outputToJson, outputToJsonText } from '../domain/oip-encode';
import { applyPostprocess } from '../domain/postprocess';
import { routeOf, type SplitRoute } from '../domain/routing';
import type { Tensor } from '../domain/tensor';
import type { TensorSpec } from '../domain/types';
import type { ArtifactStore } from '../ports/index';
import type { CachedSession, SessionCache } from './session-cache';
import type { ServedVersion, VersionResolver } from './version-resolver';

export interface InferenceDeps {
  readonly resolver: VersionResolver;
  readonly sessions: SessionCache;
  readonly store: Pick<ArtifactStore, 'getObject' | 'getObjectHashed'>;
  /** The inference id of a request that has no `id`. @default crypto.randomUUID */
  readonly newId?: () => string;
}

/**
 * What one inference reports about itself, filled in as it goes (the caller passes an empty one and reads it once
 * the request is answered or has failed): the version that served it, its inference id, and where its time went.
 */
export interface InferenceObservation {
  served?: ServedVersion;
  /** The request's `id`, or the one generated for it; the answer carries it. */
  inferenceId?: string;
  /** The engine run (ms). */
  inferenceMs?: number;
  /** Fetch, verification and load of the artifact this request waited for (ms); absent when it was cached. */
  modelLoadMs?: number;
  /** The batch dimension of the request's first input. */
  rows?: number;
  /**
   * The request's routing key, when it came with one (`x-maas-routing-key`; set by the caller), or, within a split
   * alias that names a key parameter, the request's value of that parameter (set when the version is chosen).
   */
  routingKey?: string;
  /** The route that answered within a split alias (absent: `stable`, the alias is not split). */
  route?: SplitRoute;
  /** The shadow of the request's alias, when it has one (its requests may be mirrored after their answer). */
  shadow?: { readonly version: number; readonly percent: number };
}

export interface Inference {
  /** The session of a served version: the cached one, or the artifact fetched, verified and loaded. */
  session(served: ServedVersion): Promise<CachedSession>;
  /** Runs a validated request; returns the outputs in answer order. */
  execute(served: ServedVersion, s: CachedSession, req: ValidatedRequest): Promise<[string, Tensor][]>;
  /**
   * Runs one OIP request; the response as an object. It carries the request's `id`, or a generated one: the
   * inference id.
   */
  infer(
    name: string,
    ref: string | undefined,
    request: unknown,
    obs?: InferenceObservation,
  ): Promise<OipResponse>;
  /** Runs one OIP request; the response as JSON text (no intermediate objects), with its inference id. */
  inferJson(
    name: string,
    ref: string | undefined,
    request: unknown,
    obs?: InferenceObservation,
  ): Promise<string>;
  /**
   * Runs one OIP request (a parsed JSON body) and encodes its response with the binary tensor data extension:
   * the outputs it asks as binary (`parameters.binary_data`, `parameters.binary_data_output`) follow the JSON
   * header as raw bytes; when none is, the body is the plain JSON response and `headerLength` is undefined.
   */
  inferEncoded(
    name: string,
    ref: string | undefined,
    request: unknown,
    obs?: InferenceObservation,
  ): Promise<EncodedResponse>;
  /**
   * Runs one request of the binary tensor data extension: `body` is the whole request body and `headerLength`
   * its `Inference-Header-Content-Length` (0: the raw form, the data of the chosen version's only input). The
   * version is chosen (routing, canary) from the parsed header as for JSON, and the request is validated against
   * its signature like a JSON one. The response is encoded as for `inferEncoded`.
   */
  inferBinary(
    name: string,
    ref: string | undefined,
    body: Uint8Array,
    headerLength: number,
    obs?: InferenceObservation,
  ): Promise<EncodedResponse>;
}

/** What one run fetches from the model, and which post-processing outputs are wanted from it. */
export interface OutputPlan {
  readonly fetch: readonly string[];
  readonly ppWanted: ReadonlySet<string> | undefined;
}

function isNoSuchKey(e: unknown): boolean {
  const err = e as { name?: string; code?: string };
  return err?.name === 'NoSuchKey' || err?.name === 'NotFound' || err?.code === 'ARTIFACT_NOT_FOUND';
}

/** Creates single inference over the resolver, the session cache and the artifact store. */
export function createInference(deps: InferenceDeps): Inference {
  const { resolver, sessions } = deps;
  const engine = sessions.engine;
  const newId = deps.newId ?? randomUUID;
  // Binary request headers seen before: the same header again skips its parsing and checks.
  const binaryHeaders = new BinaryHeaderCache();
  // And answers of the same outputs again: their JSON header is written once.
  const binaryAnswers = new BinaryAnswerEncoder();

  function session(served: ServedVersion): Promise<CachedSession> {
    const v = served.version;
    return sessions.load(v.sha256, async () => {
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

  async function execute(
    served: ServedVersion,
    s: CachedSession,
    req: ValidatedRequest,
  ): Promise<[string, Tensor][]> {
    const wanted = req.outputs ?? served.allOutputs;
    const { fetch, ppWanted } = outputPlan(served, wanted);
    const results = await engine.run(s.session, req.feeds, fetch);
    return assemble(served, wanted, results, ppWanted);
  }

  /**
   * The version that answers a request for `name@ref` whose alias resolved to `stable`: the canary of a split alias
   * for the requests its weight routes there (by the routing key: the caller's, else the request's parameter the
   * alias names; at random without one), else `stable`. The alias's shadow and the key go to `obs` (the observer
   * mirrors after the answer). No I/O; an alias without split costs one lookup.
   */
  function choose(
    name: string,
    ref: string | undefined,
    stable: ServedVersion,
    request: unknown,
    obs: InferenceObservation | undefined,
  ): ServedVersion {
    const split = resolver.split(name, ref);
    if (split === undefined) return stable;
    const key = obs?.routingKey ?? parameterKey(request, split.keyParameter);
    if (obs && split.shadow !== undefined) {
      obs.shadow = split.shadow;
      if (key !== undefined) obs.routingKey = key;
    }
    const canary = split.canary;
    if (canary === undefined) return stable;
    const route = routeOf(split.weight, key, name);
    if (obs) obs.route = route;
    return route === 'canary' ? canary : stable;
  }

  async function prepare(
    name: string,
    ref: string | undefined,
    request: unknown,
    obs: InferenceObservation | undefined,
  ) {
    const served = choose(name, ref, await resolver.resolve(name, ref), request, obs);
    return load(served, obs, (sig) => validateInferenceRequest(request, sig));
  }

  /**
   * A chosen version's validated request (`validate` against its signature) and session (loading it, timed, when
   * it is not cached).
   */
  async function load(
    served: ServedVersion,
    obs: InferenceObservation | undefined,
    validate: (sig: CompiledSignature) => ValidatedRequest,
  ) {
    if (obs) obs.served = served;
    const req = validate(served.signature);
    let s = sessions.cached(served.version.sha256);
    if (!s) {
      const started = performance.now();
      s = await session(served);
      if (obs) obs.modelLoadMs = performance.now() - started;
    }
    return { served, s, req };
  }

  /**
   * Runs the engine on a validated request, noting its inference id, time and rows in `obs`, and makes the answer
   * from its results with `answer`, in the run's own continuation. Not `async`: the run's promise carries the
   * answer (no promise or turn of its own per request); the engine's errors and `answer`'s reject it.
   */
  function run<T>(
    s: CachedSession,
    req: ValidatedRequest,
    fetch: readonly string[],
    obs: InferenceObservation | undefined,
    id: string,
    answer: (results: Record<string, Tensor>) => T,
  ): Promise<T> {
    try {
      if (!obs) return engine.run(s.session, req.feeds, fetch).then(answer);
      obs.inferenceId = id;
      obs.rows = firstDim(req);
      const started = performance.now();
      return engine.run(s.session, req.feeds, fetch).then((results) => {
        obs.inferenceMs = performance.now() - started;
        return answer(results);
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  function runJson(
    served: ServedVersion,
    s: CachedSession,
    req: ValidatedRequest,
    obs: InferenceObservation | undefined,
  ): Promise<string> {
    const wanted = req.outputs ?? served.allOutputs;
    const { fetch, ppWanted } = outputPlan(served, wanted);
    const id = req.id ?? newId();
    return run(s, req, fetch, obs, id, (results) => {
      const outputs = assemble(served, wanted, results, ppWanted);
      let text = served.responseHead;
      text += `,"id":${JSON.stringify(id)}`;
      text += ',"outputs":[';
      for (let i = 0; i < outputs.length; i++) {
        const [n, t] = outputs[i]!;
        if (i > 0) text += ',';
        text += outputToJsonText(n, t);
      }
      return `${text}]}`;
    });
  }

  /** Runs a validated request and encodes its answer (binary tensor data); the run's continuation encodes it. */
  function runEncoded(
    served: ServedVersion,
    s: CachedSession,
    req: ValidatedRequest,
    request: unknown,
    obs: InferenceObservation | undefined,
  ): Promise<EncodedResponse> {
    const wanted = req.outputs ?? served.allOutputs;
    const { fetch, ppWanted } = outputPlan(served, wanted);
    const id = req.id ?? newId();
    return run(s, req, fetch, obs, id, (results) =>
      // The head as `encodeBinaryResponse` writes it: the version's constant head, then the id.
      binaryAnswers.encode(
        served.responseHead,
        id,
        responseOutputs(request as OipRequest, assemble(served, wanted, results, ppWanted)),
      ),
    );
  }

  /**
   * A binary request parsed, and the version that answers it: chosen from the parsed header (routing, canary)
   * as for JSON; the raw form carries no parameters, so its version is chosen by the routing key alone (or at
   * random), and its only input is that version's.
   */
  function parseBinary(
    name: string,
    ref: string | undefined,
    stable: ServedVersion,
    body: Uint8Array,
    headerLength: number,
    obs: InferenceObservation | undefined,
  ): { served: ServedVersion; parsed: ParsedBinaryRequest } {
    if (headerLength === 0) {
      const served = choose(name, ref, stable, undefined, obs);
      return { served, parsed: binaryHeaders.parse(body, 0, rawInputOf(served)) };
    }
    let parsed: ParsedBinaryRequest;
    try {
      parsed = binaryHeaders.parse(body, headerLength);
    } catch (e) {
      // A refused request's own id names it too, when its header is JSON.
      const id = obs ? refusedHeaderId(body, headerLength) : undefined;
      if (obs && id !== undefined) obs.inferenceId = id;
      throw e;
    }
    // The request's own id names it even when it fails before it runs, as a JSON request's does.
    const id = ownInferenceId(parsed.request);
    if (obs && id !== undefined) obs.inferenceId = id;
    return { served: choose(name, ref, stable, parsed.request, obs), parsed };
  }

  return {
    session,
    execute,
    async inferEncoded(name, ref, request, obs) {
      const { served, s, req } = await prepare(name, ref, request, obs);
      return runEncoded(served, s, req, request, obs);
    },
    inferBinary(name, ref, body, headerLength, obs) {
      // As `inferJson`: the warm path (version and session cached) awaits nothing before the run.
      try {
        const stable = resolver.cached(name, ref);
        if (stable !== undefined) {
          const { served, parsed } = parseBinary(name, ref, stable, body, headerLength, obs);
          const s = sessions.cached(served.version.sha256);
          if (s) {
            if (obs) obs.served = served;
            return runEncoded(served, s, parsed.validate(served.signature), parsed.request, obs);
          }
          return load(served, obs, (sig) => parsed.validate(sig)).then((l) =>
            runEncoded(l.served, l.s, l.req, parsed.request, obs),
          );
        }
      } catch (e) {
        return Promise.reject(e);
      }
      return resolver.resolve(name, ref).then((stable) => {
        const { served, parsed } = parseBinary(name, ref, stable, body, headerLength, obs);
        return load(served, obs, (sig) => parsed.validate(sig)).then((l) =>
          runEncoded(l.served, l.s, l.req, parsed.request, obs),
        );
      });
    },
    async infer(name, ref, request, obs) {
      const { served, s, req } = await prepare(name, ref, request, obs);
      const wanted = req.outputs ?? served.allOutputs;
      const { fetch, ppWanted } = outputPlan(served, wanted);
      const id = req.id ?? newId();
      const outputs = await run(s, req, fetch, obs, id, (results) =>
        assemble(served, wanted, results, ppWanted),
      );
      return toResponse(served, id, outputs);
    },
    inferJson(name, ref, request, obs) {
      let loading: ReturnType<typeof load>;
      try {
        const stable = resolver.cached(name, ref);
        if (stable === undefined) {
          loading = prepare(name, ref, request, obs);
        } else {
          // Chosen once: a version whose session is not loaded yet is loaded, not chosen again.
          const served = choose(name, ref, stable, request, obs);
          const s = sessions.cached(served.version.sha256);
          if (s) {
            if (obs) obs.served = served;
            return runJson(served, s, validateInferenceRequest(request, served.signature), obs);
          }
          loading = load(served, obs, (sig) => validateInferenceRequest(request, sig));
        }
      } catch (e) {
        return Promise.reject(e);
      }
      return loading.then(({ served, s, req }) => runJson(served, s, req, obs));
    },
  };
}

/** The input a raw binary body (no JSON header) is the data of: the version's only input (none with several). */
export function rawInputOf(served: ServedVersion | undefined): TensorSpec | undefined {
  const inputs = served?.version.signature.inputs;
  return inputs?.length === 1 ? inputs[0] : undefined;
}

/** A routing key from the request's `parameters[name]` (a string or a number), if the alias names one. */
function parameterKey(request: unknown, name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const value = (request as { parameters?: Record<string, unknown> } | null)?.parameters?.[name];
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

/** The batch dimension of a request: its first input's first dimension (undefined for a scalar). */
function firstDim(req: ValidatedRequest): number | undefined {
  for (const name in req.feeds) return req.feeds[name]?.shape[0];
  return undefined;
}

// The plan of a request that names no outputs, per served version (most requests).
const allPlans = new WeakMap<ServedVersion, OutputPlan>();

/** The plan of the outputs `wanted` (the served version's `allOutputs` one is made once). */
export function outputPlan(served: ServedVersion, wanted: readonly string[]): OutputPlan {
  if (wanted !== served.allOutputs) return makePlan(served, wanted);
  let p = allPlans.get(served);
  if (!p) {
    p = makePlan(served, wanted);
    allPlans.set(served, p);
  }
  return p;
}

function makePlan(served: ServedVersion, wanted: readonly string[]): OutputPlan {
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

/** The outputs `wanted`, in that order, from the model's results and the post-processing of its source. */
export function assemble(
  served: ServedVersion,
  wanted: readonly string[],
  results: Record<string, Tensor>,
  ppWanted: ReadonlySet<string> | undefined,
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

/** The OIP response object of a request's outputs. */
export function toResponse(
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

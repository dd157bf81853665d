/**
 * Version resolution of the predict path: `name@ref` (a version number, an alias, or none = `prod`) to the
 * concrete READY version that serves it, with everything derived from that version once (its compiled
 * signature, post-processing outputs, the constant head of its responses).
 *
 * Caches (per resolver, i.e. module scope in a Lambda sandbox; see docs/ARCHITECTURE.md, "Runtime caches"):
 * - alias -> version number, for `aliasTtlMs` (a warm predict normally makes no DynamoDB call);
 * - version number -> served version (bounded by count). A version's content is immutable, so what is derived
 *   from it is kept; its status is not (ARCHIVED, deleted), so a version asked for by number is re-read at most
 *   once per `aliasTtlMs` and stops being served once it is not READY.
 */
import { DEFAULT_ALIAS, LIMITS } from '../contract/limits';
import type { CaptureConfig } from '../domain/capture';
import { ConflictError, NotFoundError } from '../domain/errors';
import { type CompiledSignature, compileSignature } from '../domain/inference-validation';
import { isVersionNumber, parseVersionRef, validateModelName } from '../domain/names';
import { postprocessOutputNames, postprocessSource } from '../domain/postprocess';
import type { AliasState, ModelVersion } from '../domain/types';
import { type Clock, type RegistryRepository, systemClock } from '../ports/index';

export interface VersionResolverDeps {
  readonly repo: Pick<RegistryRepository, 'getVersion' | 'getAlias' | 'getModel'>;
  /** @default systemClock */
  readonly clock?: Clock;
  /** How long an alias resolution is reused. @default LIMITS.defaultAliasTtlMs */
  readonly aliasTtlMs?: number;
}

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
  /** The version's capture declaration as last read (it may change; the rest of the version cannot). */
  capture: CaptureConfig | undefined;
}

export interface VersionResolver {
  /**
   * The served version of `name@ref` when every step is cached and still fresh; undefined otherwise. The warm
   * path: no promise, no I/O, no allocation.
   */
  cached(name: string, ref: string | undefined): ServedVersion | undefined;
  /**
   * Resolves `ref` (version number, alias, or none = `prod`) to a READY version. 400 `INVALID_NAME`,
   * `INVALID_VERSION` or `INVALID_ALIAS` for what is no name, version or alias; 404 for what does not exist;
   * 409 `VERSION_NOT_READY` for a version that is not READY.
   */
  resolve(name: string, ref?: string): Promise<ServedVersion>;
  /**
   * The capture declaration of a request for `name@ref` that `served` answered: the alias's own declaration, else
   * the served version's. No I/O, no allocation.
   */
  capture(name: string, ref: string | undefined, served: ServedVersion): CaptureConfig | undefined;
  /**
   * The traffic split of alias `ref` of `name` as last resolved (undefined for a version number, an alias with
   * neither a servable canary nor a shadow, or one not resolved yet): the canary's served version and weight, the
   * shadow, and the key parameter. No I/O.
   */
  split(name: string, ref: string | undefined): Split | undefined;
}

/** A split alias's canary, ready to serve, and its shadow. */
export interface Split {
  /** The canary (absent: the split only mirrors to a shadow, or its canary is not servable). */
  readonly canary?: ServedVersion | undefined;
  /** The canary's weight (0 without a canary). */
  readonly weight: number;
  readonly keyParameter?: string | undefined;
  /** The version that sees copies of `percent` of the requests (only its number: it is never served). */
  readonly shadow?: { readonly version: number; readonly percent: number } | undefined;
}

interface AliasEntry {
  version: number;
  expiresAt: number;
  /** The alias's own capture declaration. */
  capture: CaptureConfig | undefined;
  /** Its traffic split, with the canary served (undefined: no canary). */
  split: Split | undefined;
}

const MAX_CACHED_VERSIONS = 1000;
const MAX_CACHED_ALIASES = 10_000;

/** Creates a version resolver over the registry, with its own caches. */
export function createVersionResolver(deps: VersionResolverDeps): VersionResolver {
  const clock = deps.clock ?? systemClock;
  // Milliseconds now; the system clock without a Date per call (the warm path asks on every request).
  const nowMs = clock === systemClock ? Date.now : () => clock.now().getTime();
  const ttl = deps.aliasTtlMs ?? LIMITS.defaultAliasTtlMs;
  // name -> alias -> resolution; name -> version number -> served version (nested: no key strings to build).
  const aliases = new Map<string, Map<string, AliasEntry>>();
  const versions = new Map<string, Map<number, ServedVersion>>();
  let versionCount = 0;
  let aliasCount = 0;

  function cached(name: string, ref: string | undefined): ServedVersion | undefined {
    const byNumber = versions.get(name);
    if (!byNumber) return undefined;
    const r = ref ?? DEFAULT_ALIAS;
    // An alias name is never all digits (names.ts): a cached alias entry settles it without testing the ref.
    const a = aliases.get(name)?.get(r);
    if (a !== undefined) return a.expiresAt > nowMs() ? byNumber.get(a.version) : undefined;
    if (!isVersionNumber(r)) return undefined;
    const served = byNumber.get(Number(r));
    return served && served.statusExpiresAt > nowMs() ? served : undefined;
  }

  async function notFound(name: string, what: NotFoundError): Promise<never> {
    const model = await deps.repo.getModel(name);
    if (!model) throw new NotFoundError(`model '${name}' does not exist`, 'MODEL_NOT_FOUND');
    throw what;
  }

  /**
   * The version number alias `alias` names, read from the registry (and cached), with the version record the
   * alias item carries when it has one (one DynamoDB read instead of two on a cold resolution).
   */
  async function readAlias(
    name: string,
    alias: string,
    now: number,
  ): Promise<{ number: number; target?: ModelVersion | undefined }> {
    const found = await deps.repo.getAlias(name, alias);
    if (!found) {
      return notFound(name, new NotFoundError(`model '${name}' has no alias '${alias}'`, 'ALIAS_NOT_FOUND'));
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
    if (!byAlias.has(alias)) aliasCount++;
    const target = found.target?.version === found.version ? found.target : undefined;
    // The alias item's copy of its version is as fresh as the alias read: it refreshes the version's capture.
    const served = target && versions.get(name)?.get(found.version);
    if (served) served.capture = target.capture;
    byAlias.set(alias, {
      version: found.version,
      expiresAt: now + ttl,
      capture: found.capture,
      split: await splitOf(name, found, now),
    });
    return { number: found.version, target };
  }

  /**
   * The split of an alias just read: its canary served from the item's copy (else read once) and its shadow, or
   * none (no routing, or neither a servable canary nor a shadow).
   */
  async function splitOf(name: string, found: AliasState, now: number): Promise<Split | undefined> {
    const routing = found.routing;
    if (!routing) return undefined;
    const shadow = routing.shadow && routing.shadow.version !== found.version ? routing.shadow : undefined;
    const canary = routing.canary;
    let served: ServedVersion | undefined;
    if (canary && canary.version !== found.version) {
      let v = found.canaryTarget?.version === canary.version ? found.canaryTarget : undefined;
      v ??= await deps.repo.getVersion(name, canary.version);
      if (v?.status === 'READY') {
        served = cache(name, canary.version, v, now + ttl);
        served.capture = v.capture;
      }
    }
    if (!served && !shadow) return undefined;
    return {
      ...(served ? { canary: served } : {}),
      weight: served ? canary!.weight : 0,
      keyParameter: routing.keyParameter,
      ...(shadow ? { shadow: { version: shadow.version, percent: shadow.percent } } : {}),
    };
  }

  /** The served version of `name` `number` from the cache, or made from `v` and cached. */
  function cache(name: string, number: number, v: ModelVersion, statusExpiresAt: number): ServedVersion {
    const hit = versions.get(name)?.get(number);
    if (hit) return hit;
    const served = serve(name, number, v, statusExpiresAt);
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

  // An alias name is never all digits (names.ts), so a version number finds no alias entry: no test of the ref.
  function split(name: string, ref: string | undefined): Split | undefined {
    return aliases.get(name)?.get(ref ?? DEFAULT_ALIAS)?.split;
  }

  function capture(name: string, ref: string | undefined, served: ServedVersion): CaptureConfig | undefined {
    return aliases.get(name)?.get(ref ?? DEFAULT_ALIAS)?.capture ?? served.capture;
  }

  async function resolve(name: string, ref?: string): Promise<ServedVersion> {
    validateModelName(name);
    const parsed = parseVersionRef(ref);
    // An alias only points at READY versions (archive and delete are refused while aliased): its hit is good.
    const aliased = 'alias' in parsed;
    let number: number;
    let target: ModelVersion | undefined;
    if ('alias' in parsed) {
      const now = nowMs();
      const hit = aliases.get(name)?.get(parsed.alias);
      if (hit && hit.expiresAt > now) number = hit.version;
      else ({ number, target } = await readAlias(name, parsed.alias, now));
    } else {
      number = parsed.version;
    }
    const hit = versions.get(name)?.get(number);
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
      hit.capture = v.capture;
      return hit;
    }
    return cache(name, number, v, nowMs() + ttl);
  }

  return { cached, resolve, capture, split };
}

/** Everything a READY version needs to be served, derived once. */
function serve(name: string, number: number, v: ModelVersion, statusExpiresAt: number): ServedVersion {
  const extraOutputs = postprocessOutputNames(v.postprocess, v.labels);
  const ppSource = extraOutputs.length > 0 ? postprocessSource(v.postprocess, v.signature) : undefined;
  return {
    version: v,
    signature: compileSignature(v.signature, `model '${name}' version ${number}`, extraOutputs),
    extraOutputs,
    ...(ppSource ? { ppSource } : {}),
    responseHead: `{"model_name":${JSON.stringify(name)},"model_version":"${number}"`,
    allOutputs: [...v.signature.outputs.map((o) => o.name), ...extraOutputs],
    statusExpiresAt,
    capture: v.capture,
  };
}

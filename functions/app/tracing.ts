/**
 * Trace spans of the predict path (docs/ARCHITECTURE.md, "Observability"): decorators that put the registry
 * reads, the artifact download and the engine's session creation and runs in subsegments named by the contract
 * (TRACE_SPANS). They are installed only when the tracer records (`tracer.enabled`): untraced, the ports are used
 * as they are and tracing costs nothing. The integrity check's span is the session cache's (session-cache.ts).
 */
import { TRACE_SPANS } from '../contract/observability';
import type { ArtifactStore, RegistryRepository } from '../ports/index';
import type { InferenceEngine } from '../ports/inference';
import type { Tracer } from '../ports/telemetry';

type RegistryReads = Pick<RegistryRepository, 'getVersion' | 'getAlias' | 'getModel'>;

/** The registry reads of `repo` in `RegistryRead` spans (its other members as they are). */
export function tracedRegistry<R extends RegistryReads>(repo: R, tracer: Tracer): R {
  if (!tracer.enabled) return repo;
  const span = TRACE_SPANS.registryRead;
  return Object.assign(Object.create(repo) as R, {
    getVersion: (name: string, version: number) => tracer.span(span, () => repo.getVersion(name, version)),
    getAlias: (name: string, alias: string) => tracer.span(span, () => repo.getAlias(name, alias)),
    getModel: (name: string) => tracer.span(span, () => repo.getModel(name)),
  });
}

/** The artifact reads of `store` in `ArtifactDownload` spans. */
export function tracedStore<S extends Pick<ArtifactStore, 'getObject' | 'getObjectHashed'>>(
  store: S,
  tracer: Tracer,
): S {
  if (!tracer.enabled) return store;
  const span = TRACE_SPANS.artifactDownload;
  const hashed = store.getObjectHashed;
  return Object.assign(Object.create(store) as S, {
    getObject: (key: string) => tracer.span(span, () => store.getObject(key)),
    ...(hashed ? { getObjectHashed: (key: string) => tracer.span(span, () => hashed.call(store, key)) } : {}),
  });
}

/** The engine's session creation in `SessionCreate` spans and its runs in `Run` spans. */
export function tracedEngine(engine: InferenceEngine, tracer: Tracer): InferenceEngine {
  if (!tracer.enabled) return engine;
  return {
    ...(engine.init ? { init: () => (engine.init as () => Promise<void>).call(engine) } : {}),
    createSession: (bytes) => tracer.span(TRACE_SPANS.sessionCreate, () => engine.createSession(bytes)),
    run: (session, feeds, outputs) => tracer.span(TRACE_SPANS.run, () => engine.run(session, feeds, outputs)),
    release: (session) => engine.release(session),
  };
}

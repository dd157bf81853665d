/**
 * The `Tracer` port on the Powertools Tracer (AWS X-Ray): subsegments of the invocation's segment, annotations,
 * and (Powertools' default) the HTTPS calls of the process as subsegments of their own.
 *
 * Powertools and the X-Ray SDK are loaded only when the function is traced (`loadTracer` is called by a
 * composition root that found active tracing): an untraced function never evaluates them. They are not in the
 * function bundles either (`TRACER_LAYER_EXTERNALS` in functions/contract/bundling.ts): a traced function gets
 * them from the tracer layer (`layers/tracer/`, one CommonJS file under `/opt/nodejs/node_modules`). They are
 * loaded with `require`, which resolves through `NODE_PATH` (`/opt/nodejs/node_modules` in Lambda) as an ES
 * module `import` does not; locally `require` finds the project's node_modules (Powertools ships a CommonJS build).
 */
import { createRequire } from 'node:module';
import type { Tracer } from '../ports/telemetry';

type PowertoolsTracerModule = typeof import('@aws-lambda-powertools/tracer');

const requireModule = createRequire(import.meta.url);

/** Loads the Powertools Tracer for `serviceName`; `enabled` is false outside a traced Lambda invocation. */
export async function loadTracer(serviceName: string): Promise<Tracer> {
  const { Tracer: PowertoolsTracer } = requireModule(
    '@aws-lambda-powertools/tracer',
  ) as PowertoolsTracerModule;
  const tracer = new PowertoolsTracer({ serviceName });
  return {
    enabled: tracer.isTracingEnabled(),
    async span(name, fn) {
      const parent = tracer.getSegment();
      if (!parent) return fn();
      const subsegment = parent.addNewSubsegment(name);
      tracer.setSegment(subsegment);
      try {
        return await fn();
      } catch (e) {
        subsegment.addError(e as Error);
        throw e;
      } finally {
        subsegment.close();
        tracer.setSegment(parent);
      }
    },
    annotate(annotations) {
      for (const [key, value] of Object.entries(annotations)) tracer.putAnnotation(key, value);
    },
  };
}

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
import { noTracer, type Tracer } from '../ports/telemetry';

type PowertoolsTracerModule = typeof import('@aws-lambda-powertools/tracer');

const requireModule = createRequire(import.meta.url);

const TRACER_PACKAGE = '@aws-lambda-powertools/tracer';

/** Whether `e` is `require`'s error for the tracer package itself (not for a module the package loads). */
const isTracerMissing = (e: unknown): boolean =>
  (e as NodeJS.ErrnoException | undefined)?.code === 'MODULE_NOT_FOUND' &&
  (e as Error).message.includes(`'${TRACER_PACKAGE}'`);

/**
 * Loads the Powertools Tracer for `serviceName`; `enabled` is false outside a traced Lambda invocation. A function
 * without the tracer layer (the stack attaches it wherever tracing is on, so: one deployed with tracing off) gets
 * {@link noTracer}: it records nothing, as an untraced function should.
 */
export async function loadTracer(serviceName: string): Promise<Tracer> {
  let tracerModule: PowertoolsTracerModule;
  try {
    tracerModule = requireModule(TRACER_PACKAGE) as PowertoolsTracerModule;
  } catch (e) {
    if (isTracerMissing(e)) return noTracer;
    throw e;
  }
  const { Tracer: PowertoolsTracer } = tracerModule;
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

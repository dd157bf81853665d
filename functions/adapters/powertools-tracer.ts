/**
 * The `Tracer` port on the Powertools Tracer (AWS X-Ray): subsegments of the invocation's segment, annotations,
 * and (Powertools' default) the HTTPS calls of the process as subsegments of their own.
 *
 * Powertools and the X-Ray SDK are loaded only when the function is traced (`loadTracer` is called by a
 * composition root that found active tracing): an untraced function never evaluates them.
 */
import type { Tracer } from '../ports/telemetry';

/** Loads the Powertools Tracer for `serviceName`; `enabled` is false outside a traced Lambda invocation. */
export async function loadTracer(serviceName: string): Promise<Tracer> {
  const { Tracer: PowertoolsTracer } = await import('@aws-lambda-powertools/tracer');
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

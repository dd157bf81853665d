/**
 * The `Tracer` port on the Powertools Tracer (AWS X-Ray): subsegments of the invocation's segment, annotations,
 * and (Powertools' default) the HTTPS calls of the process as subsegments of their own.
 *
 * Lambda's own segment of an invocation (the X-Ray SDK's facade) takes neither annotations nor metadata:
 * Powertools drops them with a warning line. So, as Powertools' `captureLambdaHandler` does, each invocation of a
 * traced function runs in a subsegment of its own, `## {handler}` (annotated `ColdStart` and `Service`), opened when
 * the invocation starts and closed when it has answered: its spans are subsegments of it and its annotations go on
 * it. The Lambda entry points run their invocations through `withInvocationDeadline` (deadline.ts), which
 * `loadTracer` hands that subsegment to (`traceInvocations`); an untraced function sets none and pays nothing.
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
import { type InvocationTrace, traceInvocations } from './deadline';

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
 * {@link noTracer}: it records nothing, as an untraced function should. An enabled tracer runs each invocation of
 * the process's entry point in its invocation subsegment (`traceInvocations`), named `## {handler}` after the
 * function's handler setting (`EnvironmentVariables.lambdaHandler()`).
 */
export async function loadTracer(serviceName: string, handler = 'handler'): Promise<Tracer> {
  let tracerModule: PowertoolsTracerModule;
  try {
    tracerModule = requireModule(TRACER_PACKAGE) as PowertoolsTracerModule;
  } catch (e) {
    if (isTracerMissing(e)) return noTracer;
    throw e;
  }
  const { Tracer: PowertoolsTracer } = tracerModule;
  const tracer = new PowertoolsTracer({ serviceName });
  traceInvocations(tracer.isTracingEnabled() ? invocationSubsegment(tracer, handler) : undefined);
  return {
    enabled: tracer.isTracingEnabled(),
    async span(name, fn) {
      const end = openSubsegment(tracer, name);
      if (!end) return fn();
      try {
        const value = await fn();
        end();
        return value;
      } catch (e) {
        end(e);
        throw e;
      }
    },
    annotate(annotations) {
      for (const [key, value] of Object.entries(annotations)) tracer.putAnnotation(key, value);
    },
  };
}

type PowertoolsTracer = InstanceType<PowertoolsTracerModule['Tracer']>;

/**
 * Opens subsegment `name` of the current segment and makes it current; answers what closes it (with the error that
 * ended it, if any) and makes its parent current again. Undefined outside a segment.
 */
function openSubsegment(tracer: PowertoolsTracer, name: string): ((error?: unknown) => void) | undefined {
  const parent = tracer.getSegment();
  if (!parent) return undefined;
  const subsegment = parent.addNewSubsegment(name);
  tracer.setSegment(subsegment);
  return (error) => {
    if (error !== undefined) subsegment.addError(error as Error);
    subsegment.close();
    tracer.setSegment(parent);
  };
}

/**
 * Runs an invocation in its subsegment of the function's segment, named as Powertools names it (`## {handler}`):
 * opened before the handler runs, closed (with the error the handler threw, if any) once it has answered, and the
 * function's segment current again.
 */
function invocationSubsegment(tracer: PowertoolsTracer, handler: string): InvocationTrace {
  const name = `## ${handler}`;
  return (fn, event, context) => {
    const end = openSubsegment(tracer, name);
    if (!end) return fn(event, context);
    tracer.annotateColdStart();
    tracer.addServiceNameAnnotation();
    let result: ReturnType<typeof fn>;
    try {
      result = fn(event, context);
    } catch (e) {
      end(e);
      throw e;
    }
    if (!(result instanceof Promise)) {
      end();
      return result;
    }
    return result.then(
      (value: unknown) => {
        end();
        return value;
      },
      (e: unknown) => {
        end(e);
        throw e;
      },
    ) as typeof result;
  };
}

/**
 * The deadline of one call to a dependency (a DynamoDB, S3, SQS or EventBridge operation, its retries
 * included): `LIMITS.dependencyDeadlineMs`, and never later than the invocation's end — the Lambda context's
 * remaining time minus `LIMITS.dependencyDeadlineMarginMs` — so a stalled dependency is answered with a 503 while
 * the function can still answer (docs/ARCHITECTURE.md, "Errors").
 *
 * Lambda runs one invocation at a time per execution environment, so its entry points bind the current
 * invocation here (`bindInvocation`); the local server, which serves requests concurrently, binds none and
 * every call gets the fixed budget. In a traced function, the same entry wrapper runs each invocation in its trace
 * subsegment (`traceInvocations`, set by `loadTracer` in powertools-tracer.ts).
 */
import { LIMITS } from '../contract/limits';
import { UnavailableError } from '../domain/errors';

type RemainingTime = { getRemainingTimeInMillis(): number };

let invocation: RemainingTime | undefined;

/** Runs one invocation of an entry point: `fn(event, context)` inside whatever the tracer records around it. */
export type InvocationTrace = <E, C, R>(fn: (event: E, context?: C) => R, event: E, context?: C) => R;

/** How a traced function's invocations are run; undefined when the function is not traced. */
let invocationTrace: InvocationTrace | undefined;

/**
 * Sets how each invocation of `withInvocationDeadline`'s entry points is traced (`loadTracer` of a traced function;
 * `undefined` unsets it). Lambda runs one function per process: one tracer per process.
 */
export function traceInvocations(trace: InvocationTrace | undefined): void {
  invocationTrace = trace;
}

/**
 * Binds the invocation whose remaining time bounds the dependency calls made until the next one is bound
 * (a Lambda entry point calls it with its context; `undefined` or a context without a remaining time unbinds).
 */
export function bindInvocation(context: object | undefined): void {
  invocation =
    typeof (context as Partial<RemainingTime> | undefined)?.getRemainingTimeInMillis === 'function'
      ? (context as RemainingTime)
      : undefined;
}

/** The time (ms) a dependency call starting now may take, retries included; at least 1. */
export function dependencyBudgetMs(): number {
  return Math.max(1, Math.min(LIMITS.dependencyDeadlineMs, invocationLeftMs()));
}

/** The time (ms) left to the invocation's end less the margin; unbounded outside a Lambda invocation. */
export function invocationLeftMs(): number {
  if (invocation === undefined) return Number.POSITIVE_INFINITY;
  return invocation.getRemainingTimeInMillis() - LIMITS.dependencyDeadlineMarginMs;
}

/** The extra time (ms) a body of `bytes` may take to move, at `LIMITS.dependencyMinThroughputBytesPerSecond`. */
export function transferAllowanceMs(bytes: number): number {
  return bytes > 0 ? Math.ceil((bytes * 1000) / LIMITS.dependencyMinThroughputBytesPerSecond) : 0;
}

/** The error of a call that did not finish within its deadline: 503 `UNAVAILABLE`, what it last saw as cause. */
export function deadlineExceeded(what: string, budgetMs: number, cause: unknown): UnavailableError {
  return new UnavailableError(`${what} did not answer within ${budgetMs} ms; retry later`, 1, { cause });
}

/**
 * A Lambda entry point that binds each invocation (its context) before running `fn`: the dependency calls it makes
 * end before the invocation does. In a traced function (`traceInvocations`) `fn` runs in the invocation's trace
 * subsegment; untraced, it is called as it is.
 */
export function withInvocationDeadline<E, C extends object, R>(
  fn: (event: E, context?: C) => R,
): (event: E, context?: C) => R {
  return (event, context) => {
    bindInvocation(context);
    const result = invocationTrace ? invocationTrace(fn, event, context) : fn(event, context);
    // Unbound once the invocation has answered: work that goes on after it (a preload still loading, a
    // registration continued by the worker) gets the fixed budget, not an ended invocation's negative time.
    if (result instanceof Promise) {
      return result.finally(() => {
        if (invocation === context) bindInvocation(undefined);
      }) as R;
    }
    bindInvocation(undefined);
    return result;
  };
}

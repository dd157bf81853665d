/**
 * An invocation's time (`TimeBudget`): the budget of work with no end, and a timer that fires a margin before the
 * end — used by the worker's deadline of a delivery and by batch scoring's guard of a last receive.
 */
import type { TimeBudget } from '../ports/events';

/** A budget without an end (work run outside a Lambda invocation). */
export const noBudget: TimeBudget = { getRemainingTimeInMillis: () => Number.MAX_SAFE_INTEGER };

/** The longest delay a timer takes (ms): beyond it, no deadline (a budget without one). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `fire` `marginMs` before the end of `budget` (at once when less is left); never for a budget without an end.
 * Returns what cancels it.
 */
export function timerBefore(budget: TimeBudget | undefined, marginMs: number, fire: () => void): () => void {
  const delay =
    typeof budget?.getRemainingTimeInMillis === 'function'
      ? budget.getRemainingTimeInMillis() - marginMs
      : Number.POSITIVE_INFINITY;
  if (!(delay < MAX_TIMER_MS)) return () => {};
  const timer = setTimeout(fire, Math.max(0, delay));
  return () => clearTimeout(timer);
}

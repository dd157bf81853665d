/**
 * Waiting for what an answered request leaves behind after its answer (a captured request's report, its capture
 * record, its shadow mirror and what comes of it): the observer makes it on a later turn, after the answer has
 * gone, so a test waits for it to be there rather than for a time that may or may not be long enough.
 */

/** Waits until `done()` holds, checking every few milliseconds; throws after `timeoutMs`. */
export async function until(done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${done}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Lets the work scheduled after an answer run: the observer starts a request's capture and mirror on the turn after
 * its answer, in the order the requests were answered, so one more turn after the last answer and every request
 * answered so far has started them (or started none). A wait for something that must not happen can only end so:
 * nothing marks its absence.
 */
export const afterAnswer = (): Promise<void> => new Promise((r) => setImmediate(r));

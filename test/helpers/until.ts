/**
 * Waiting for what work done after an answer or in the background leaves behind (a captured request's report, its
 * capture record, its shadow mirror, a batch part queued or a job's status written): a test waits for it to be
 * there rather than for a time that may or may not be long enough.
 */

/**
 * Waits until `done()` holds (a check that reads the emulators may be async), checking every few milliseconds;
 * throws after `timeoutMs`, naming `what` (the check's source when not given).
 */
export async function until(
  done: () => boolean | Promise<boolean>,
  { timeoutMs = 5000, what }: { timeoutMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await done())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what ?? String(done)}`);
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

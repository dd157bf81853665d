/**
 * The readiness probe of the predict function (`GET /v2/health/ready`): public, so that load balancers and
 * uptime checks can poll it, which must not turn into one registry (DynamoDB) read per poll.
 */

/** Options of {@link cachedReadiness}. */
export interface ReadinessOptions {
  /** How long one ping's outcome answers the probes that follow (success and failure alike). */
  readonly ttlMs: number;
  /** Clock in milliseconds. @default Date.now */
  readonly now?: () => number;
}

/**
 * Wraps a registry ping so that its outcome is reused for `ttlMs`: a success answers the probes of the next
 * `ttlMs` without another read, and a failure is kept no longer than that either, so a recovered registry is
 * seen within `ttlMs`. Probes arriving while a ping is in flight share it.
 */
export function cachedReadiness(ping: () => Promise<void>, options: ReadinessOptions): () => Promise<void> {
  const now = options.now ?? Date.now;
  let last: { readonly outcome: Promise<void>; settledAt: number | undefined } | undefined;
  return () => {
    if (last && (last.settledAt === undefined || now() - last.settledAt < options.ttlMs)) return last.outcome;
    const entry: { outcome: Promise<void>; settledAt: number | undefined } = {
      outcome: Promise.resolve(),
      settledAt: undefined,
    };
    const settle = () => {
      entry.settledAt = now();
    };
    entry.outcome = ping().then(settle, (e: unknown) => {
      settle();
      throw e;
    });
    // The shared promise is awaited by each probe; this keeps an unobserved rejection from being reported.
    entry.outcome.catch(() => {});
    last = entry;
    return entry.outcome;
  };
}

/**
 * The numbers a caller declares that the registry stores in its items (pre-processing parameters, gate thresholds):
 * DynamoDB holds 0 or a magnitude from 1e-130 to under 1e126, and the AWS SDK's document client refuses a JS number
 * beyond ±(2^53 − 1), which it cannot write exactly. A number outside that range would fail the write after the
 * request was accepted (a 500, or a derivation retried to FAILED), so it is refused up front.
 */

/** The smallest non-zero magnitude DynamoDB stores. */
export const MIN_STORED_MAGNITUDE = 1e-130;

/** Whether `v` can be stored as written: finite, within ±(2^53 − 1), and 0 or at least 1e-130 in magnitude. */
export function isStorableNumber(v: number): boolean {
  const a = Math.abs(v);
  return Number.isFinite(v) && a <= Number.MAX_SAFE_INTEGER && (a === 0 || a >= MIN_STORED_MAGNITUDE);
}

/** What {@link isStorableNumber} asks, for messages. */
export const STORABLE_NUMBER =
  'a finite number within ±9007199254740991, and 0 or at least 1e-130 in magnitude (the range the registry stores)';

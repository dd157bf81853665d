/**
 * Contention on the registry table: which DynamoDB errors mean "someone else is writing the same items right
 * now; try again", what a cancelled transaction says about its items, and the retry loop (full-jitter
 * exponential backoff, a bounded number of attempts, then a 503). A write DynamoDB refuses because an item would
 * exceed its 400 KB becomes a 409 `ITEM_TOO_LARGE` there, not a 500.
 */
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { ConflictError, UnavailableError } from '../domain/errors';
import type { Item } from './dynamodb-items';

/** One entry of a cancelled transaction's `CancellationReasons`, aligned with its items. */
interface CancellationReason {
  readonly Code?: string;
  readonly Message?: string;
  /** The item as it was, in wire format, when ReturnValuesOnConditionCheckFailure = ALL_OLD. */
  readonly Item?: Parameters<typeof unmarshall>[0];
}

/** Cancellation reasons of a failed transaction, aligned with its items; undefined for other errors. */
function cancellationReasons(e: unknown): readonly CancellationReason[] | undefined {
  const err = e as { name?: string; CancellationReasons?: CancellationReason[] };
  if (err?.name !== 'TransactionCanceledException') return undefined;
  return err.CancellationReasons ?? [];
}

/** True when `e` cancelled a transaction because the condition of its `index`-th item failed. */
export function failedConditionAt(e: unknown, index: number): boolean {
  return cancellationReasons(e)?.[index]?.Code === 'ConditionalCheckFailed';
}

/**
 * The `index`-th item of a cancelled transaction as it was when its condition failed (the item must have been
 * written with ReturnValuesOnConditionCheckFailure = ALL_OLD): a lost race's re-read without the round trip.
 */
export function itemAtFailedCondition(e: unknown, index: number): Item | undefined {
  const reason = cancellationReasons(e)?.[index];
  return reason?.Code === 'ConditionalCheckFailed' && reason.Item
    ? (unmarshall(reason.Item) as Item)
    : undefined;
}

/** True when a single conditional write (not a transaction) failed its condition. */
export function isConditionFailure(e: unknown): boolean {
  return (e as { name?: string })?.name === 'ConditionalCheckFailedException';
}

/** Cancellation codes that a new attempt can overcome (anything else, e.g. ValidationError, cannot). */
const RETRYABLE_CANCELLATIONS = new Set([
  'None',
  'ConditionalCheckFailed',
  'TransactionConflict',
  'ThrottlingError',
  'ProvisionedThroughputExceeded',
]);

/** Errors that mean "someone else is writing the same items right now; try again". */
export function isContention(e: unknown): boolean {
  const name = (e as { name?: string })?.name;
  if (name === 'TransactionCanceledException') {
    return (cancellationReasons(e) ?? []).every((r) => RETRYABLE_CANCELLATIONS.has(r.Code ?? 'None'));
  }
  return (
    name === 'TransactionConflictException' ||
    name === 'TransactionInProgressException' ||
    name === 'ConditionalCheckFailedException'
  );
}

/** DynamoDB's words for an item over its size limit ("Item size [to update] has exceeded the maximum allowed size"). */
const ITEM_TOO_LARGE = /item size .*exceeded the maximum allowed size/i;

/**
 * True when DynamoDB refused a write because an item would exceed 400 KB: a single write's or a transaction's
 * `ValidationException` (an item put whole), or a transaction cancelled with a `ValidationError` reason (an item
 * an update makes too large). No new attempt can overcome it.
 */
export function isItemTooLarge(e: unknown): boolean {
  const err = e as { name?: string; message?: string };
  if (err?.name === 'ValidationException') return ITEM_TOO_LARGE.test(err.message ?? '');
  return (cancellationReasons(e) ?? []).some(
    (r) => r.Code === 'ValidationError' && ITEM_TOO_LARGE.test(r.Message ?? ''),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs operations again while they fail with contention. */
export class ContentionRetry {
  /** @param maxAttempts attempts of one operation before giving up with a 503 */
  constructor(readonly maxAttempts: number) {}

  /**
   * Runs `attempt` until it returns. A contention error is retried after a full-jitter backoff (5 ms doubling
   * up to 250 ms) until `maxAttempts`, then becomes UnavailableError; an item too large for DynamoDB becomes a
   * 409 `ITEM_TOO_LARGE`; any other error is thrown as it is. `what` names the operation in the answer's message.
   */
  async run<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (e) {
        if (isItemTooLarge(e)) {
          throw new ConflictError(
            `${what} was refused: a registry item would exceed DynamoDB's 400 KB item size (labels and signatures of the versions involved make up most of it)`,
            'ITEM_TOO_LARGE',
            { cause: e },
          );
        }
        if (!isContention(e)) throw e;
        if (n >= this.maxAttempts) {
          throw new UnavailableError(
            `${what} did not succeed after ${n} attempts under contention; retry`,
            1,
            { cause: e },
          );
        }
        await sleep(Math.random() * Math.min(250, 5 * 2 ** Math.min(n, 10)));
      }
    }
  }
}

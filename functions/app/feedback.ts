/**
 * Feedback (`POST /v2/models/{name}/feedback`, docs/api.md "Feedback"): the items of one request are stored as one
 * JSONL object `feedback/{model}/yyyy/mm/dd/hh/{uuid}.jsonl`, one `FeedbackRecord` per line, for joining with the
 * capture records on `inferenceId`. The model is not looked up: ground truth may arrive after a model is gone.
 */
import { randomUUID } from 'node:crypto';
import { CAPTURE_KEYS } from '../contract/observability';
import { feedbackLines, parseFeedback } from '../domain/feedback';
import { validateModelName } from '../domain/names';
import type { BlobStore } from '../ports/events';
import { type Clock, systemClock } from '../ports/index';

export interface FeedbackDeps {
  readonly blobs: Pick<BlobStore, 'put'>;
  readonly clock?: Clock;
  /** @default crypto.randomUUID */
  readonly newId?: () => string;
}

/** Stores one request's feedback; answers how many items were accepted (all, or none with a 400). */
export async function submitFeedback(
  deps: FeedbackDeps,
  input: { name: string; body: unknown; actor: string },
): Promise<{ accepted: number; key: string }> {
  const model = validateModelName(input.name);
  const items = parseFeedback(input.body);
  const now = (deps.clock ?? systemClock).now();
  const key = `${CAPTURE_KEYS.feedbackHour(model, now)}${(deps.newId ?? randomUUID)()}.jsonl`;
  await deps.blobs.put(key, feedbackLines(model, items, now, input.actor), 'application/x-ndjson');
  return { accepted: items.length, key };
}

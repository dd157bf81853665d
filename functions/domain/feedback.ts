/**
 * Ground truth sent back for answered inferences (`POST /v2/models/{name}/feedback`, docs/api.md "Feedback"):
 * the request body checked item by item, and the JSONL lines it is stored as (one object per request under
 * `feedback/{model}/yyyy/mm/dd/hh/`, docs/ARCHITECTURE.md "Observability").
 */
import { LIMITS } from '../contract/limits';
import type { FeedbackItem, FeedbackRecord } from './capture';
import { BadRequestError } from './errors';
import { isInferenceId } from './inference-validation';
import { hasLoneSurrogate } from './names';

/** Longest string label. */
export const MAX_FEEDBACK_LABEL_LENGTH = 1024;

const FIELDS = new Set(['inferenceId', 'label', 'value']);

/**
 * Parses a feedback body: one item `{"inferenceId", "label"|"value"}` or a JSON array of 1 to
 * `LIMITS.maxFeedbackItems` of them. Each item has a non-empty `inferenceId` of at most
 * `LIMITS.maxInferenceIdLength` characters and exactly one of `label` (a string of at most 1024 characters, a
 * finite number — an integer within ±(2^53 − 1) — or a boolean) and `value` (a finite number); no other field. 400 `INVALID_FEEDBACK` otherwise,
 * naming the item.
 */
export function parseFeedback(body: unknown): FeedbackItem[] {
  if (Array.isArray(body)) {
    if (body.length === 0) throw bad('must hold at least one item');
    if (body.length > LIMITS.maxFeedbackItems) {
      throw bad(`holds ${body.length} items; at most ${LIMITS.maxFeedbackItems} are accepted per request`);
    }
    return body.map((item, i) => parseFeedbackItem(item, `item ${i}`));
  }
  return [parseFeedbackItem(body, 'body')];
}

/** One feedback item (see {@link parseFeedback}); `where` names it in the 400's message (`item 3`, `line 12`). */
export function parseFeedbackItem(value: unknown, where: string): FeedbackItem {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bad(`${where} must be an object {"inferenceId", "label"|"value"}`);
  }
  const item = value as Record<string, unknown>;
  const unknown = Object.keys(item).filter((k) => !FIELDS.has(k));
  if (unknown.length > 0) throw bad(`${where} has unknown field(s): ${unknown.slice(0, 5).join(', ')}`);
  const { inferenceId, label, value: v } = item;
  if (typeof inferenceId !== 'string' || inferenceId.length === 0) {
    throw bad(`${where}: inferenceId must be a non-empty string`);
  }
  if (inferenceId.length > LIMITS.maxInferenceIdLength) {
    throw bad(`${where}: inferenceId is longer than ${LIMITS.maxInferenceIdLength} characters`);
  }
  // The ids requests can carry (a lone surrogate is refused there): any other could never match a record.
  if (!isInferenceId(inferenceId)) throw bad(`${where}: inferenceId is not well-formed text`);
  const hasLabel = 'label' in item;
  const hasValue = 'value' in item;
  if (hasLabel === hasValue) throw bad(`${where} must have exactly one of label and value`);
  if (hasLabel) {
    const ok =
      (typeof label === 'string' && label.length <= MAX_FEEDBACK_LABEL_LENGTH) ||
      (typeof label === 'number' && Number.isFinite(label)) ||
      typeof label === 'boolean';
    if (!ok) {
      throw bad(
        `${where}: label must be a string of at most ${MAX_FEEDBACK_LABEL_LENGTH} characters, a finite number or a boolean`,
      );
    }
    if (typeof label === 'string' && hasLoneSurrogate(label)) {
      throw bad(`${where}: label is not well-formed text (a lone UTF-16 surrogate has no UTF-8 form)`);
    }
    // A JSON number beyond 2^53 is kept as the nearest double: 9007199254740993 would be stored as …992.
    if (typeof label === 'number' && Number.isInteger(label) && !Number.isSafeInteger(label)) {
      throw bad(
        `${where}: label ${label} is an integer beyond ±(2^53 − 1), which a JSON number cannot carry exactly; send it as a string`,
      );
    }
    return { inferenceId, label: label as string | number | boolean };
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${where}: value must be a finite number`);
  return { inferenceId, value: v };
}

const bad = (why: string) => new BadRequestError(`feedback ${why}`, 'INVALID_FEEDBACK');

/** The stored object of one feedback request: one `FeedbackRecord` JSON line per item, each ending in `\n`. */
export function feedbackLines(
  model: string,
  items: readonly FeedbackItem[],
  receivedAt: Date,
  actor: string,
): string {
  const at = receivedAt.toISOString();
  return items
    .map((item) => {
      const record: FeedbackRecord = {
        inferenceId: item.inferenceId,
        ...(item.label !== undefined ? { label: item.label } : {}),
        ...(item.value !== undefined ? { value: item.value } : {}),
        model,
        receivedAt: at,
        actor,
      };
      return `${JSON.stringify(record)}\n`;
    })
    .join('');
}

/** Parses the text of a feedback request as JSON (checked by {@link parseFeedback}); 400 `MALFORMED_JSON` otherwise. */
export function parseFeedbackJson(text: string): unknown {
  if (text.trim() === '') {
    throw new BadRequestError('request body is empty; a JSON object or array is required', 'MALFORMED_JSON');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadRequestError(`request body is not valid JSON: ${(e as Error).message}`, 'MALFORMED_JSON');
  }
}

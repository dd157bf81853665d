/**
 * Shadow traffic, the worker's half (docs/ARCHITECTURE.md, "Progressive delivery"): a `shadow` work message (a
 * request its alias's shadow sampled, mirrored after its answer by the predict path) is run on the shadow version
 * by number, through the predictor (the same code path as `/infer`), and its answer compared with the one the caller
 * got (`compareOutputs`, the versions' post-processing outputs marked as such). The comparison is reported
 * (`MetricsSink.shadow`: `ShadowRequests`, the divergence metrics, `ShadowErrors`), the shadow's answer captured as
 * a record of route `shadow` with the caller's inference id when the alias captures and the id is sampled (the pair
 * joins by id), and handed to `onComparison`.
 *
 * The request travels as the text the caller sent and is parsed as the predict path parses it
 * (`parseInferenceBody`: 64-bit integers exact), and runs with the caller's inference id as its `id` when it has
 * none (the caller's was generated), so the shadow's answer carries the id of its record; the answer travels as the
 * text the caller got.
 *
 * A shadow that fails (archived or deleted version, a model that throws, inputs it refuses…) is a comparison with
 * `failed` (its error code in `error`): counted, never retried. A failure that may pass (`isRetryableError`: a
 * dependency unavailable or throttled) is thrown instead, so the queue delivers the message again, unless this is
 * its last delivery (`lastAttempt`), which records it as failed. `onComparison` runs before the metrics and the
 * capture: when it fails retryably the message is retried with nothing reported yet; any other failure of it is
 * logged, not retried.
 *
 * Idempotent with a `guard`: the comparison of one mirrored request (model, alias, versions, inference id and the
 * time it was answered) is made, reported and handed on once, however often its message is delivered (SQS delivers
 * at least once; a mirror may send twice); a delivery arriving while another makes it is skipped.
 */
import { randomUUID } from 'node:crypto';
import { SHADOW_ROUTE } from '../contract/observability';
import { parseShadowAnswer, type ShadowMirrorMessage } from '../domain/async';
import { parseInferenceBody } from '../domain/body-parser';
import { captureLine, isSampled } from '../domain/capture';
import { compareOutputs, type OipOutput, type ShadowComparison } from '../domain/divergence';
import { isMaasError } from '../domain/errors';
import { AlreadyInProgressError, type IdempotencyGuard, type TimeBudget } from '../ports/events';
import type { Logger } from '../ports/logger';
import type { CaptureSink, MetricsSink } from '../ports/telemetry';
import type { Predictor } from './predict';

export interface ShadowWorkerDeps {
  readonly predictor: Pick<Predictor, 'infer' | 'resolve' | 'capture'>;
  /** Where comparisons are reported (its `shadow`). @default none */
  readonly metrics?: MetricsSink;
  /** Where the shadow's sampled answers are captured (as the alias declares). @default none */
  readonly capture?: CaptureSink;
  /** Receives every comparison (a rollout's divergence counters). @default none */
  readonly onComparison?: (c: ShadowComparison) => Promise<void>;
  /** Makes each mirrored request's comparison once (keys prefixed `IDEMPOTENCY.keyPrefix.shadow`). @default none */
  readonly guard?: IdempotencyGuard;
  /** @default none */
  readonly logger?: Logger;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** Id of a capture record. @default crypto.randomUUID */
  readonly newId?: () => string;
}

export interface RunShadowOptions {
  /** The invocation's time budget (the idempotency lock lasts as long). */
  readonly budget?: TimeBudget;
  /** The message's last delivery: a retryable failure is recorded as failed instead of thrown. @default false */
  readonly lastAttempt?: boolean;
}

const NAMES_RETRYABLE: ReadonlySet<string> = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'SlowDown',
  'ServiceUnavailable',
  'InternalServerError',
  'InternalError',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
]);
const CODES_RETRYABLE: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
]);

/**
 * Whether a failure may pass on its own: a 503 of ours (`UnavailableError`), an AWS error the SDK marks retryable,
 * of HTTP status 429 or 5xx or of a throttling or service-unavailable name, or a network error. Anything else (a
 * version not READY, a model that throws, inputs it refuses) would fail the same way again.
 */
export function isRetryableError(e: unknown): boolean {
  if (isMaasError(e)) return e.status === 503;
  if (e === null || typeof e !== 'object') return false;
  const x = e as {
    name?: unknown;
    code?: unknown;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  if (x.$retryable) return true;
  const status = x.$metadata?.httpStatusCode;
  if (typeof status === 'number' && (status === 429 || status >= 500)) return true;
  if (typeof x.name === 'string' && NAMES_RETRYABLE.has(x.name)) return true;
  return typeof x.code === 'string' && CODES_RETRYABLE.has(x.code);
}

/**
 * Runs a mirrored request on its shadow version and compares; the comparison (failed when the shadow failed), or
 * undefined when another delivery of the same message is making it. Throws MalformedMessageError for an answer that
 * is not an OIP response, and a retryable failure unless `lastAttempt`.
 */
export async function runShadow(
  deps: ShadowWorkerDeps,
  m: ShadowMirrorMessage,
  options: RunShadowOptions = {},
): Promise<ShadowComparison | undefined> {
  const answer = parseShadowAnswer(m.answerText);
  const work = () => compare(deps, m, answer.outputs as OipOutput[], options.lastAttempt ?? false);
  if (!deps.guard) return work();
  const key = {
    model: m.model,
    alias: m.alias,
    servedVersion: String(m.servedVersion),
    shadowVersion: String(m.shadowVersion),
    inferenceId: m.inferenceId,
    at: m.at,
  };
  try {
    return await deps.guard.once(key, work, options.budget);
  } catch (e) {
    if (!(e instanceof AlreadyInProgressError)) throw e;
    deps.logger?.info('shadow request being compared by another delivery', {
      model: m.model,
      alias: m.alias,
      inferenceId: m.inferenceId,
    });
    return undefined;
  }
}

async function compare(
  deps: ShadowWorkerDeps,
  m: ShadowMirrorMessage,
  stable: OipOutput[],
  lastAttempt: boolean,
): Promise<ShadowComparison> {
  const head = {
    model: m.model,
    alias: m.alias,
    servedVersion: m.servedVersion,
    shadowVersion: m.shadowVersion,
    inferenceId: m.inferenceId,
    at: m.at,
  };
  let comparison: ShadowComparison;
  let answer: unknown;
  try {
    const request = withInferenceId(parseInferenceBody(m.requestText), m.inferenceId);
    const response = await deps.predictor.infer(m.model, String(m.shadowVersion), request);
    answer = response;
    const derived = await postprocessOutputs(deps, m);
    comparison = { ...head, outputs: compareOutputs(stable, response.outputs as OipOutput[], derived) };
  } catch (e) {
    // A dependency that may come back: the queue delivers the message again (nothing was reported).
    if (!lastAttempt && isRetryableError(e)) throw e;
    comparison = { ...head, outputs: [], failed: true, error: isMaasError(e) ? e.code : 'INTERNAL' };
    deps.logger?.warn('shadow run failed', {
      ...head,
      code: comparison.error,
      error: (e as Error)?.message ?? String(e),
    });
  }
  if (deps.onComparison) {
    try {
      await deps.onComparison(comparison);
    } catch (e) {
      if (!lastAttempt && isRetryableError(e)) throw e;
      deps.logger?.error('shadow comparison not recorded', {
        ...head,
        error: (e as Error)?.message ?? String(e),
      });
    }
  }
  try {
    deps.metrics?.shadow?.(comparison);
  } catch {
    // Metrics never fail the work.
  }
  if (answer !== undefined && deps.capture) await captureShadow(deps, deps.capture, m, answer);
  return comparison;
}

/**
 * The request as the shadow runs it: with the caller's inference id as its `id` when it has none (the caller's was
 * generated), so that the shadow's answer names the id its comparison, its capture record and feedback join on.
 */
function withInferenceId(request: unknown, inferenceId: string): unknown {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) return request;
  if ((request as { id?: unknown }).id !== undefined) return request;
  return { ...request, id: inferenceId };
}

/**
 * The names of the post-processing outputs of the shadow version (resolved by its run just before: cached) and of
 * the served one: they are derived from the model's outputs, and compared as such (`compareOutputs`). The served
 * version may have been archived since it answered: then the shadow's names alone.
 */
async function postprocessOutputs(
  deps: ShadowWorkerDeps,
  m: ShadowMirrorMessage,
): Promise<ReadonlySet<string>> {
  const names = new Set((await deps.predictor.resolve(m.model, String(m.shadowVersion))).extraOutputs ?? []);
  try {
    const served = await deps.predictor.resolve(m.model, String(m.servedVersion));
    for (const n of served.extraOutputs ?? []) names.add(n);
  } catch {
    // Archived or deleted since it answered: its outputs are judged by the shadow's declaration.
  }
  return names;
}

/**
 * Captures the shadow's answer when the alias (else the version that answered the caller) captures and the
 * inference id is sampled: the same decision as the caller's record, so both or neither of a pair exist.
 */
async function captureShadow(
  deps: ShadowWorkerDeps,
  sink: CaptureSink,
  m: ShadowMirrorMessage,
  answer: unknown,
): Promise<void> {
  try {
    // The alias's declaration is read with its resolution (cached); the served version's is its fallback.
    await deps.predictor.resolve(m.model, m.alias);
    const served = await deps.predictor.resolve(m.model, String(m.servedVersion));
    const config = deps.predictor.capture(m.model, m.alias, served);
    if (!config || !isSampled(m.inferenceId, config.samplePercent)) return;
    const line = captureLine({
      config,
      eventId: (deps.newId ?? randomUUID)(),
      inferenceId: m.inferenceId,
      at: (deps.now ?? (() => new Date()))(),
      model: m.model,
      version: m.shadowVersion,
      alias: m.alias,
      route: SHADOW_ROUTE,
      status: 200,
      request: { text: m.requestText, contentType: 'application/json' },
      response: { text: JSON.stringify(answer), contentType: 'application/json' },
    });
    await sink.write(m.model, m.shadowVersion, line);
  } catch (e) {
    deps.logger?.warn('shadow capture not written', {
      model: m.model,
      alias: m.alias,
      inferenceId: m.inferenceId,
      error: (e as Error)?.message ?? String(e),
    });
  }
}

/**
 * Shadow traffic, the worker's half (docs/ARCHITECTURE.md, "Progressive delivery"): a `shadow` work message (a
 * request its alias's shadow sampled, mirrored after its answer by the predict path) is run on the shadow version
 * by number, through the predictor (the same code path as `/infer`), and its answer compared with the one the caller
 * got (`compareOutputs`). The comparison is reported (`MetricsSink.shadow`: `ShadowRequests`, the divergence
 * metrics, `ShadowErrors`), the shadow's answer captured as a record of route `shadow` with the caller's inference
 * id when the alias captures and the id is sampled (the pair joins by id), and handed to `onComparison`.
 *
 * A shadow that fails (archived or deleted version, a model that throws, inputs it refuses…) is a comparison with
 * `failed` (its error code in `error`): counted, never retried. Nothing here throws but `onComparison`'s own
 * failures, which are logged, not retried either (a retry would count the request twice).
 */
import { randomUUID } from 'node:crypto';
import { SHADOW_ROUTE } from '../contract/observability';
import type { ShadowMirrorMessage } from '../domain/async';
import { captureLine, isSampled } from '../domain/capture';
import { compareOutputs, type OipOutput, type ShadowComparison } from '../domain/divergence';
import { isMaasError } from '../domain/errors';
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
  /** @default none */
  readonly logger?: Logger;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** Id of a capture record. @default crypto.randomUUID */
  readonly newId?: () => string;
}

/** Runs a mirrored request on its shadow version and compares; the comparison (failed when the shadow failed). */
export async function runShadow(deps: ShadowWorkerDeps, m: ShadowMirrorMessage): Promise<ShadowComparison> {
  const head = {
    model: m.model,
    alias: m.alias,
    servedVersion: m.servedVersion,
    shadowVersion: m.shadowVersion,
    inferenceId: m.inferenceId,
  };
  let comparison: ShadowComparison;
  let answer: unknown;
  try {
    const response = await deps.predictor.infer(m.model, String(m.shadowVersion), m.request);
    answer = response;
    comparison = {
      ...head,
      outputs: compareOutputs(m.answer.outputs as OipOutput[], response.outputs as OipOutput[]),
    };
  } catch (e) {
    comparison = { ...head, outputs: [], failed: true, error: isMaasError(e) ? e.code : 'INTERNAL' };
    deps.logger?.warn('shadow run failed', {
      ...head,
      code: comparison.error,
      error: (e as Error)?.message ?? String(e),
    });
  }
  try {
    deps.metrics?.shadow?.(comparison);
  } catch {
    // Metrics never fail the work.
  }
  if (answer !== undefined && deps.capture) await captureShadow(deps, deps.capture, m, answer);
  if (deps.onComparison) {
    await deps.onComparison(comparison).catch((e: unknown) =>
      deps.logger?.error('shadow comparison not recorded', {
        ...head,
        error: (e as Error)?.message ?? String(e),
      }),
    );
  }
  return comparison;
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
      request: { text: JSON.stringify(m.request), contentType: 'application/json' },
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

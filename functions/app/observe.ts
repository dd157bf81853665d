/**
 * What an answered inference request leaves behind (docs/ARCHITECTURE.md, "Observability"): one metrics report,
 * the trace annotations of its model, version and alias, and — when its alias or version captures and its
 * inference id is sampled — one capture record.
 *
 * Costs on the warm path: one report object and the sink's own work. An unsampled request makes no capture call
 * and allocates nothing for capture. A sampled one is recorded after its answer has gone, so the caller waits for
 * none of it; a capture sink that throws or hangs changes neither the answer nor its status, is waited for at most
 * `captureBudgetMs` (only its report waits), and its failure is counted (`CaptureErrors`).
 *
 * Shadow traffic: a request answered 200 through an alias with a shadow, by a version other than the shadow's, and
 * sampled at the shadow's percent (`isShadowed`: sticky by routing key, else by inference id) is mirrored after its
 * answer: one `ShadowMirror.mirror` call with the request and answer texts as they were (nothing is parsed). The
 * request's report does not wait for it (it is written at once, as an unmirrored one's, or after its capture). A
 * mirror that throws, rejects or has not settled after `shadowBudgetMs`, or whose texts alone exceed
 * `SHADOW.maxMessageBytes` (refused before anything is built), is reported on its own
 * (`MetricsSink.shadowMirrorFailed`: `ShadowMirrorErrors`) and changes nothing else; a slow send that succeeds
 * within the budget is no error. An alias without shadow costs one field check; an unsampled request allocates
 * nothing for it.
 */
import { randomUUID } from 'node:crypto';
import { DEFAULT_ALIAS, LIMITS } from '../contract/limits';
import { SHADOW, STABLE_ROUTE, UNRESOLVED_MODEL } from '../contract/observability';
import { type CaptureConfig, captureLine, isSampled } from '../domain/capture';
import { isVersionNumber } from '../domain/names';
import { isShadowed } from '../domain/routing';
import type { ShadowMirror } from '../ports/events';
import type { LogAttributes } from '../ports/logger';
import { type CaptureSink, type MetricsSink, noTracer, type Tracer } from '../ports/telemetry';
import type { InferenceObservation } from './inference';
import type { ServedVersion } from './version-resolver';

export interface InferenceObserverDeps {
  readonly metrics: MetricsSink;
  /** Where sampled exchanges go. @default none: nothing is captured */
  readonly capture?: CaptureSink;
  /** The capture declaration of `name@ref` as last resolved (the predictor's). */
  readonly captureOf: (
    name: string,
    ref: string | undefined,
    served: ServedVersion,
  ) => CaptureConfig | undefined;
  /** @default noTracer */
  readonly tracer?: Tracer;
  /** Whether the first request is a cold start (false when the process was initialized ahead). @default true */
  readonly coldStart?: boolean;
  /** @default LIMITS.captureBudgetMs */
  readonly captureBudgetMs?: number;
  /** Where sampled requests of aliases with a shadow are mirrored. @default none: nothing is mirrored */
  readonly mirror?: ShadowMirror;
  /** How long a mirror is waited for before it counts as hung (`ShadowMirrorErrors`). @default SHADOW.budgetMs */
  readonly shadowBudgetMs?: number;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** Id of a capture record. @default crypto.randomUUID */
  readonly newId?: () => string;
}

/** One answered inference request, as the handler saw it. */
export interface AnsweredInference {
  readonly model: string;
  readonly ref: string | undefined;
  readonly obs: InferenceObservation;
  readonly status: number;
  /** `performance.now()` when the request arrived. */
  readonly startedAt: number;
  readonly payloadBytes: number;
  /** The request body as received (captured as sent); a function when it must be made (only if captured). */
  readonly requestText: string | (() => string);
  readonly requestContentType: string;
  /** The answer's body; a function when it must be made (only if captured). */
  readonly responseText: string | (() => string);
  /** The error code of a failed request. */
  readonly code?: string;
  /**
   * Whether the texts are not JSON: a request in the binary form (binary tensor data) that failed, whose body has no
   * JSON form. Such an exchange is reported like any other but neither captured nor mirrored to a shadow, whose
   * records and replays hold JSON texts. (An answered binary exchange gives its JSON form, `binaryRequestAsJson` and
   * `binaryAnswerAsJson`, and is captured and mirrored as a JSON one.)
   */
  readonly binary?: boolean;
}

/** Errors the registry answers only after it found the model (the alias or version was the matter). */
const MODEL_KNOWN_CODES: ReadonlySet<string> = new Set([
  'ALIAS_NOT_FOUND',
  'VERSION_NOT_FOUND',
  'VERSION_NOT_READY',
]);

export interface InferenceObserver {
  /**
   * Reports an answered request; a sampled one is captured after the current task (after the answer is sent), and
   * reported once its capture is written or its budget is over.
   */
  answered(a: AnsweredInference): void;
  /** The keys of a log line about the request: model, version, alias, route and inference id when known. */
  logKeys(model: string, ref: string | undefined, obs: InferenceObservation | undefined): LogAttributes;
}

const HEADER_SAFE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/**
 * The `x-maas-inference-id` value of an inference id: the id itself when it is printable ASCII without leading or
 * trailing blanks (every generated id, and most clients'), else its percent-encoding (a header cannot carry it).
 */
export function inferenceIdHeader(id: string): string {
  if (HEADER_SAFE.test(id)) return id;
  try {
    return encodeURIComponent(id);
  } catch {
    // A lone surrogate (refused as a request id, never generated): surrogates as U+FFFD.
    return encodeURIComponent(id.replace(/[\uD800-\uDFFF]/g, '\uFFFD'));
  }
}

/** The alias a request names: its ref unless that is a version number, the default alias without one. */
export function aliasOf(ref: string | undefined): string | undefined {
  if (ref === undefined) return DEFAULT_ALIAS;
  return isVersionNumber(ref) ? undefined : ref;
}

/** Creates the observer of a predict handler over its sinks. */
export function createInferenceObserver(deps: InferenceObserverDeps): InferenceObserver {
  const tracer = deps.tracer ?? noTracer;
  const budgetMs = deps.captureBudgetMs ?? LIMITS.captureBudgetMs;
  const shadowBudgetMs = deps.shadowBudgetMs ?? SHADOW.budgetMs;
  const now = deps.now ?? (() => new Date());
  const newId = deps.newId ?? randomUUID;
  let cold = deps.coldStart ?? true;

  function report(
    a: AnsweredInference,
    alias: string | undefined,
    latencyMs: number,
    captureErrors: number,
  ): void {
    const coldStart = cold;
    cold = false;
    const { obs } = a;
    // Dimensions come from names the registry knows, never from the path as sent: a request for a model that does
    // not exist (or refused before a version was chosen for it: an unreadable body, a failed lookup) is counted
    // under UNRESOLVED_MODEL, one of an alias that does not exist without its alias. Junk paths can then create
    // neither metrics nor cached documents.
    const served = obs.served !== undefined;
    const modelKnown = served || (a.code !== undefined && MODEL_KNOWN_CODES.has(a.code));
    deps.metrics.inference({
      model: modelKnown ? a.model : UNRESOLVED_MODEL,
      version: obs.served?.version.version,
      alias: served ? alias : undefined,
      route: obs.route ?? STABLE_ROUTE,
      status: a.status,
      latencyMs,
      inferenceMs: obs.inferenceMs,
      modelLoadMs: obs.modelLoadMs,
      coldStart,
      payloadBytes: a.payloadBytes,
      batchRows: obs.rows,
      captureErrors,
      inferenceId: obs.inferenceId,
    });
  }

  /**
   * Mirrors an answered request to its alias's shadow; a mirror that is refused, throws, rejects or has not settled
   * within `shadowBudgetMs` is reported on its own (`ShadowMirrorErrors`). Nothing waits for it.
   */
  function mirror(
    a: AnsweredInference,
    target: ShadowMirror,
    shadowVersion: number,
    servedVersion: number,
    alias: string,
    at: Date,
  ): void {
    const failed = () => {
      try {
        deps.metrics.shadowMirrorFailed?.({
          model: a.model,
          version: servedVersion,
          alias,
          route: a.obs.route ?? STABLE_ROUTE,
          ...(a.obs.inferenceId !== undefined ? { inferenceId: a.obs.inferenceId } : {}),
        });
      } catch {
        // Metrics never fail a request.
      }
    };
    try {
      const requestText = textOf(a.requestText);
      const answerText = textOf(a.responseText);
      // A UTF-16 unit is at least one UTF-8 byte: texts longer than the limit make a message over it.
      if (requestText.length + answerText.length > SHADOW.maxMessageBytes) {
        failed();
        return;
      }
      const pending = target.mirror({
        type: 'shadow',
        model: a.model,
        alias,
        servedVersion,
        shadowVersion,
        inferenceId: a.obs.inferenceId ?? '',
        at: at.toISOString(),
        requestText,
        answerText,
      });
      if (pending) {
        void withinBudget(pending, shadowBudgetMs, true).then((errors) => {
          if (errors) failed();
        });
      }
    } catch {
      failed();
    }
  }

  /** Writes the capture record of a sampled exchange: 0 when it was written, 1 when it failed. */
  function capture(
    a: AnsweredInference,
    config: CaptureConfig,
    version: number,
    alias: string | undefined,
    at: Date,
  ): number | Promise<number> {
    const sink = deps.capture;
    if (!sink) return 0;
    try {
      const line = captureLine({
        config,
        eventId: newId(),
        inferenceId: a.obs.inferenceId ?? '',
        at,
        model: a.model,
        version,
        alias,
        route: a.obs.route ?? STABLE_ROUTE,
        status: a.status,
        request: { text: textOf(a.requestText), contentType: a.requestContentType },
        response: { text: textOf(a.responseText), contentType: 'application/json' },
      });
      const pending = sink.write(a.model, version, line);
      return pending ? withinBudget(pending, budgetMs) : 0;
    } catch {
      return 1;
    }
  }

  return {
    answered(a) {
      const latencyMs = performance.now() - a.startedAt;
      const alias = aliasOf(a.ref);
      const served = a.obs.served;
      if (tracer.enabled && served) {
        tracer.annotate({
          model: a.model,
          version: served.version.version,
          ...(alias !== undefined ? { alias } : {}),
        });
      }
      const id = a.obs.inferenceId;
      const config =
        served && id !== undefined && !a.binary ? deps.captureOf(a.model, a.ref, served) : undefined;
      const captured =
        config !== undefined &&
        served !== undefined &&
        id !== undefined &&
        isSampled(id, config.samplePercent);
      const shadow = a.binary ? undefined : a.obs.shadow;
      const mirrored =
        shadow !== undefined &&
        deps.mirror !== undefined &&
        a.status === 200 &&
        served !== undefined &&
        id !== undefined &&
        alias !== undefined &&
        served.version.version !== shadow.version &&
        isShadowed(shadow.percent, a.obs.routingKey, id, a.model);
      // The report is written at once unless a capture must be waited for: a mirror is never waited for.
      if (!captured) report(a, alias, latencyMs, 0);
      if (!captured && !mirrored) return;
      // The record is made and written, and the mirror sent, after the answer has gone (the bodies are immutable
      // strings): a sampled request waits for none of it. A captured request's report follows its capture, within
      // its budget.
      const at = now();
      const version = (served as ServedVersion).version.version;
      setImmediate(() => {
        if (captured) {
          const captureErrors = capture(a, config as CaptureConfig, version, alias, at);
          if (typeof captureErrors === 'number') report(a, alias, latencyMs, captureErrors);
          else void captureErrors.then((c) => report(a, alias, latencyMs, c));
        }
        if (mirrored) {
          mirror(
            a,
            deps.mirror as ShadowMirror,
            (shadow as { version: number }).version,
            version,
            alias as string,
            at,
          );
        }
      });
    },
    logKeys(model, ref, obs) {
      const alias = aliasOf(ref);
      const version = obs?.served?.version.version;
      return {
        model,
        ...(version !== undefined ? { version } : {}),
        ...(alias !== undefined ? { alias } : {}),
        route: obs?.route ?? STABLE_ROUTE,
        ...(obs?.inferenceId !== undefined ? { inferenceId: obs.inferenceId } : {}),
      };
    },
  };
}

const textOf = (body: string | (() => string)): string => (typeof body === 'function' ? body() : body);

/**
 * 0 when `pending` settles well within `budgetMs`, 1 when it rejects or takes longer (it is then left behind). An
 * `unref` timer does not keep the process alive for it.
 */
function withinBudget(pending: Promise<void>, budgetMs: number, unref = false): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    pending.then(
      () => 0,
      () => 1,
    ),
    new Promise<number>((resolve) => {
      timer = setTimeout(() => resolve(1), budgetMs);
      if (unref) timer.unref?.();
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Registration through the HTTP API (docs/ARCHITECTURE.md, "Flows" → Registration): idempotent, and within the
 * API's time.
 *
 * - Idempotent: a request with an idempotency key (its `uploadId`, or an `Idempotency-Key` header) runs once per
 *   key and model under an IdempotencyGuard (Powertools over the registry table); the same key again answers the
 *   same version (its current state), even while the first request still runs (the duplicate waits for it), and
 *   the same key with a different body is a 409 `IDEMPOTENCY_KEY_REUSED`.
 * - Within the API's time: verifying an artifact (download, hash, onnxruntime load, copy into `models/`) races the
 *   time left. When the time runs out first, the version is written PENDING (its number allocated, visible in the
 *   registry), a `register-complete` message goes to the work queue, and the caller gets it at once (202); the
 *   worker verifies the artifact again and completes the version READY or FAILED (`completePendingVersion`).
 */
import { createHash } from 'node:crypto';
import { REGISTRATION } from '../contract/events';
import { ConflictError, isMaasError, NotFoundError, UnprocessableModelError } from '../domain/errors';
import type { ModelVersion, VersionStatus } from '../domain/types';
import {
  AlreadyInProgressError,
  type IdempotencyGuard,
  type QueuePublisher,
  type TimeBudget,
} from '../ports/events';
import {
  failedRegistration,
  getVersion,
  prepareRegistration,
  publish,
  type RegisterVersionInput,
  type RegistryDeps,
  recordVerified,
  registeredPreprocess,
  requestedFields,
  type VerifiedArtifact,
  verifyArtifact,
} from './registry';

/** Where and within what time a registration that cannot finish synchronously continues. */
export interface RegistrationBudget {
  /** Milliseconds the synchronous part may still take before the registration continues on the queue. */
  readonly remainingMs: () => number;
  /** The work queue that completes PENDING versions. */
  readonly queue: QueuePublisher;
}

/** A registration as the API answers it. */
export interface Registration {
  readonly version: ModelVersion;
  /** The version is PENDING: the work queue completes it (202). */
  readonly pending: boolean;
  /** The answer of an earlier request with the same idempotency key (its version as it is now). */
  readonly replayed: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Registers `input` as the next version (an artifact that is not a loadable model as a FAILED version, returned,
 * not thrown); with a budget, a registration whose artifact is not verified within
 * `budget.remainingMs()` is written PENDING and continues on `budget.queue`. The abandoned verification writes nothing to
 * the registry (at most the content-addressed copy of the artifact, which the worker would write anyway).
 * When the message cannot be queued, the PENDING version is completed FAILED at once (never left PENDING) and
 * the error is thrown.
 */
export async function registerVersionWithin(
  deps: RegistryDeps,
  input: RegisterVersionInput,
  budget?: RegistrationBudget,
): Promise<{ version: ModelVersion; pending: boolean }> {
  const prepared = await prepareRegistration(deps, input);
  const verifying = verifyArtifact(deps, prepared);
  if (!budget) return { version: await recordVerified(deps, prepared, await verifying), pending: false };

  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), Math.max(0, budget.remainingMs()));
  });
  let verified: VerifiedArtifact | 'late';
  try {
    verified = await Promise.race([verifying, late]);
  } finally {
    clearTimeout(timer);
  }
  if (verified !== 'late') return { version: await recordVerified(deps, prepared, verified), pending: false };

  // Its outcome no longer matters: the worker verifies again.
  verifying.catch(() => {});
  const pending = await deps.repo.createVersion({
    name: prepared.name,
    sha256: '',
    sizeBytes: prepared.sizeBytes,
    s3Key: prepared.sourceKey,
    signature: { inputs: [], outputs: [] },
    status: 'PENDING',
    ...requestedFields(prepared),
  });
  try {
    await budget.queue.send({ type: 'register-complete', name: pending.name, version: pending.version });
  } catch (e) {
    await failPendingVersion(deps, pending.name, pending.version, 'the registration could not be queued');
    throw e;
  }
  return { version: pending, pending: true };
}

/** What completing a PENDING version did. */
export type CompletionOutcome = VersionStatus | 'GONE';

/**
 * Completes PENDING version `version` of `name` (the work queue's `register-complete`): verifies its artifact as a
 * synchronous registration would and completes it READY (the first READY version becomes `prod`;
 * ModelVersionRegistered) or FAILED with the reason (ModelVersionFailed). A version that is no longer PENDING
 * (completed by an earlier delivery, or deleted) is left as it is. A transient failure (S3, DynamoDB) and running
 * out of `time` (less REGISTRATION.workerReserveMs, given by the caller as `reserveMs`) are thrown, so the message
 * is retried; the last attempt records the failure (`failPendingVersion`).
 */
export async function completePendingVersion(
  deps: RegistryDeps,
  name: string,
  version: number,
  time?: { readonly budget: TimeBudget; readonly reserveMs: number },
): Promise<CompletionOutcome> {
  const v = await deps.repo.getVersion(name, version);
  if (!v) return 'GONE';
  if (v.status !== 'PENDING') return v.status;
  let verified: VerifiedArtifact;
  try {
    // The registration's own pre-processing, recorded on the PENDING version, is compiled in as it would have been.
    const preprocess = registeredPreprocess(v);
    verified = await withinTime(
      verifyArtifact(deps, {
        name,
        sourceKey: v.s3Key,
        ...(v.labels !== undefined ? { labels: [...v.labels] } : {}),
        ...(v.postprocess !== undefined ? { postprocess: v.postprocess } : {}),
        ...(preprocess !== undefined ? { preprocess } : {}),
      }),
      time,
      `verifying version ${version} of '${name}'`,
    );
  } catch (e) {
    // A missing or too large artifact, post-processing that does not fit: deterministic, an outcome.
    if (!isMaasError(e) || e.status >= 500) throw e;
    verified = { ok: false, sha256: '', sizeBytes: v.sizeBytes, reason: e.message };
  }
  try {
    if (!verified.ok) {
      await deps.repo.completeVersion(name, version, {
        status: 'FAILED',
        failureReason: verified.reason,
        ...(verified.sha256 ? { sha256: verified.sha256, sizeBytes: verified.sizeBytes } : {}),
      });
      await publish(deps, { type: 'ModelVersionFailed', detail: { name, version, reason: verified.reason } });
      return 'FAILED';
    }
    await deps.repo.completeVersion(name, version, {
      status: 'READY',
      sha256: verified.sha256,
      sizeBytes: verified.sizeBytes,
      s3Key: verified.s3Key,
      signature: verified.signature,
    });
    await publish(deps, {
      type: 'ModelVersionRegistered',
      detail: { name, version, sha256: verified.sha256 },
    });
    return 'READY';
  } catch (e) {
    return settledMeanwhile(deps, name, version, e);
  }
}

/**
 * Completes PENDING version `version` FAILED with `reason` (ModelVersionFailed), unless it is no longer PENDING.
 * Returns whether it did.
 */
export async function failPendingVersion(
  deps: RegistryDeps,
  name: string,
  version: number,
  reason: string,
): Promise<boolean> {
  try {
    await deps.repo.completeVersion(name, version, { status: 'FAILED', failureReason: reason });
  } catch (e) {
    await settledMeanwhile(deps, name, version, e);
    return false;
  }
  await publish(deps, { type: 'ModelVersionFailed', detail: { name, version, reason } });
  return true;
}

/** Another writer completed or deleted the version first: its state now. Other errors are thrown. */
async function settledMeanwhile(
  deps: Pick<RegistryDeps, 'repo'>,
  name: string,
  version: number,
  e: unknown,
): Promise<CompletionOutcome> {
  const settled =
    e instanceof NotFoundError || (e instanceof ConflictError && e.code === 'VERSION_NOT_PENDING');
  if (!settled) throw e;
  return (await deps.repo.getVersion(name, version))?.status ?? 'GONE';
}

/**
 * `work`, or an error once the invocation's time less `reserveMs` has run out (the message is then retried, and its
 * last attempt recorded as failed). Without `time`, `work` itself.
 */
export async function withinTime<T>(
  work: Promise<T>,
  time: { readonly budget: TimeBudget; readonly reserveMs: number } | undefined,
  what: string,
): Promise<T> {
  if (!time) return work;
  const ms = time.budget.getRemainingTimeInMillis() - time.reserveMs;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish within the worker's time`)),
      Math.max(0, ms),
    );
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
    work.catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Idempotency

/** What the idempotency record keeps of a registration's version. */
function storedOf(v: ModelVersion, pending: boolean): StoredRegistration {
  const failed = !pending && v.status === 'FAILED';
  return { version: v.version, pending, ...(failed ? { failed: failedRegistration(v).message } : {}) };
}

/** The version of `name` a registration with this key (its sha-256) wrote, if any (newest first). */
async function versionRegisteredAs(
  deps: RegistryDeps,
  name: string,
  registrationKey: string,
): Promise<ModelVersion | undefined> {
  let token: string | undefined;
  do {
    const page = await deps.repo.listVersions(name, 100, token);
    const found = page.items.find((v) => v.registrationKey === registrationKey);
    if (found) return found;
    token = page.nextToken;
  } while (token !== undefined);
  return undefined;
}

/** The stored outcome of a keyed registration: the version it wrote, and whether it was refused (422). */
interface StoredRegistration {
  readonly version: number;
  readonly pending: boolean;
  /** The 422's message when the artifact was recorded FAILED. */
  readonly failed?: string;
}

export interface IdempotentRegistrationOptions {
  /** The idempotency key (the `uploadId` or the `Idempotency-Key` header); none: no idempotency. */
  readonly key?: string;
  /** The request as the key must match it again (a canonical form of the body). */
  readonly payload: string;
  /** Runs the keyed registration once. */
  readonly guard?: IdempotencyGuard;
  /** The synchronous part's budget and the queue that continues it; none: synchronous. */
  readonly budget?: RegistrationBudget;
  /**
   * The remaining time of the invocation: the guard's in-progress lock expires with it, and a duplicate waits for
   * the first request while more than REGISTRATION.duplicateReserveMs of it is left. @default REGISTRATION.duplicateWaitMs
   */
  readonly time?: TimeBudget;
}

/**
 * Registers once per (model, key): the first request registers (`registerVersionWithin`), a later one with the
 * same key answers the version the first wrote, as it is now (`replayed`), or a 422 when the artifact was
 * recorded FAILED (by this request or, after a 202, by the worker). A duplicate arriving while the first runs waits for it while its own time lasts; then 409
 * `REGISTRATION_IN_PROGRESS`. The same key with a different payload is a 409 `IDEMPOTENCY_KEY_REUSED` (from the
 * guard). Without a key or a guard, every request registers.
 */
export async function registerVersionOnce(
  deps: RegistryDeps,
  input: RegisterVersionInput,
  opts: IdempotentRegistrationOptions,
): Promise<Registration> {
  if (opts.key === undefined || !opts.guard) {
    const r = await registerVersionWithin(deps, input, opts.budget);
    if (!r.pending && r.version.status === 'FAILED') throw failedRegistration(r.version);
    return { ...r, replayed: false };
  }
  const guard = opts.guard;
  const registrationKey = createHash('sha256').update(opts.key).digest('hex');
  let fresh: ModelVersion | undefined;
  const work = async (): Promise<StoredRegistration> => {
    // A first attempt whose outcome was never known (the registry stalled during its write, answered 503) released
    // the key, but its version may have been written: it is the answer, not a second version.
    const written = await versionRegisteredAs(deps, input.name, registrationKey);
    if (written) return storedOf(written, written.status === 'PENDING');
    const r = await registerVersionWithin(deps, { ...input, registrationKey }, opts.budget);
    fresh = r.version;
    return storedOf(r.version, r.pending);
  };
  const started = Date.now();
  const remaining = () =>
    opts.time?.getRemainingTimeInMillis() ?? REGISTRATION.duplicateWaitMs - (Date.now() - started);
  for (;;) {
    let stored: StoredRegistration;
    try {
      stored = await guard.once({ key: `${input.name}#${opts.key}`, payload: opts.payload }, work, opts.time);
    } catch (e) {
      if (!(e instanceof AlreadyInProgressError)) throw e;
      if (remaining() <= REGISTRATION.duplicateReserveMs) {
        throw new ConflictError(
          `a registration with the same idempotency key is still running; retry later`,
          'REGISTRATION_IN_PROGRESS',
          { cause: e },
        );
      }
      await sleep(REGISTRATION.duplicatePollMs);
      continue;
    }
    if (stored.failed !== undefined) throw new UnprocessableModelError(stored.failed);
    if (fresh) return { version: fresh, pending: stored.pending, replayed: false };
    const now = await getVersion(deps, input.name, stored.version);
    // A registration the worker completed FAILED is answered as a synchronous refusal is: never a 2xx.
    if (now.status === 'FAILED') throw failedRegistration(now);
    return { version: now, pending: now.status === 'PENDING', replayed: true };
  }
}

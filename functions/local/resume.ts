/**
 * What the local service takes up again when it starts over its data. Its queues are in-process: a stop (Ctrl-C, a
 * crash) loses the messages they held, where SQS would have delivered them again. So a start looks for the work that
 * was accepted and never finished, and queues it again:
 *
 * - every async request (`async/{requestId}/request.json`) without an answer (`result.json`) gets the `async-infer`
 *   message its POST sent; the worker skips a request answered meanwhile (`runAsyncInference` reads `result.json`
 *   first), so a message too many is harmless;
 * - every batch job whose record still runs is taken up by `resumeBatchJob` (its lost parts, or its aggregation, sent
 *   again; a job that cannot be resumed ended `failed`), and an ended job whose `status.json` still says `running` gets
 *   its end's follow-up again;
 * - every PENDING version gets its `register-complete` message again (the worker verifies its upload again, as it
 *   would on a message delivered again; a version completed meanwhile is left as it is), except a derived one: its
 *   `derive` message carried the gate the caller asked for, which the registry does not keep, so it is ended FAILED
 *   saying so (`DERIVATION_NOT_RESUMED`) (never left PENDING, never gated with thresholds the caller did not ask for).
 *
 * The listings are bounded (`maxKeys`): a start never waits long on a home that has kept many requests.
 */
import { type BatchResume, type BatchScoreDeps, resumeBatchJob } from '../app/batch-score';
import { failPendingVersion } from '../app/registration';
import type { RegistryDeps } from '../app/registry';
import { S3_KEYS } from '../contract/env';
import { ASYNC_KEYS } from '../contract/events';
import { mapConcurrent } from '../domain/batch-partition';
import type { QueuePublisher } from '../ports/events';
import type { FolderReader, ObjectReader } from '../ports/objects';

/** Most keys listed under `async/`, most job folders under `batch/`, and most versions looked at, by one start. */
export const RESUME_MAX_KEYS = 10_000;

/** Jobs taken up at once. */
const JOB_CONCURRENCY = 8;

export interface ResumeDeps {
  /** The bucket's listings (`async/`, `batch/`). */
  readonly objects: ObjectReader & FolderReader;
  /** The work queue: where `async-infer` and `register-complete` messages go. */
  readonly queue: QueuePublisher;
  /** The registry whose PENDING versions are taken up. */
  readonly registry: RegistryDeps;
  /** Batch scoring over the same table and bucket (its `batchQueue` gets the parts and aggregations). */
  readonly batch: BatchScoreDeps;
  /** @default RESUME_MAX_KEYS */
  readonly maxKeys?: number;
}

export interface ResumeSummary {
  /** Async requests without an answer, queued again. */
  readonly asyncRequests: number;
  /** Running batch jobs whose parts or aggregation were queued again. */
  readonly batchJobs: number;
  /** Running batch jobs that could not be resumed, ended `failed` (`BATCH_NOT_RESUMED`). */
  readonly batchJobsFailed: number;
  /** Batch jobs whose end was completed (`status.json` written as the record says, an empty input ended `done`). */
  readonly batchJobsEnded: number;
  /** PENDING registrations whose completion was queued again. */
  readonly registrations: number;
  /** PENDING derived versions ended FAILED (their reason `DERIVATION_NOT_RESUMED`). */
  readonly derivationsFailed: number;
  /** A listing stopped at `maxKeys`: what lies beyond it was not looked at. */
  readonly truncated: boolean;
  /** What failed (a listing, a job), each with its reason; the rest went on. */
  readonly errors: readonly string[];
}

const messageOf = (e: unknown) => (e as Error)?.message ?? String(e);

/** Queues again the work the last run of the local service accepted and did not finish (see the module's comment). */
export async function resumeUnfinished(deps: ResumeDeps): Promise<ResumeSummary> {
  const maxKeys = deps.maxKeys ?? RESUME_MAX_KEYS;
  const errors: string[] = [];
  const [requests, jobs] = await Promise.all([
    unansweredRequests(deps, maxKeys).catch((e: unknown) => {
      errors.push(`async requests not listed: ${messageOf(e)}`);
      return { ids: [], truncated: false };
    }),
    jobFolders(deps, maxKeys).catch((e: unknown) => {
      errors.push(`batch jobs not listed: ${messageOf(e)}`);
      return { ids: [], truncated: false };
    }),
  ]);
  let asyncRequests = 0;
  for (const requestId of requests.ids) {
    try {
      await deps.queue.send({ type: 'async-infer', requestId });
      asyncRequests++;
    } catch (e) {
      errors.push(`async request ${requestId}: ${messageOf(e)}`);
    }
  }
  const outcomes = await mapConcurrent(jobs.ids, JOB_CONCURRENCY, (jobId) =>
    resumeBatchJob(deps.batch, jobId).catch((e: unknown): BatchResume => {
      errors.push(`batch job ${jobId}: ${messageOf(e)}`);
      return { kind: 'none' };
    }),
  );
  const count = (kind: BatchResume['kind']) => outcomes.filter((o) => o.kind === kind).length;
  const pending = await resumePendingVersions(deps, maxKeys, errors).catch((e: unknown) => {
    errors.push(`versions not listed: ${messageOf(e)}`);
    return { registrations: 0, derivationsFailed: 0, truncated: false };
  });
  return {
    asyncRequests,
    batchJobs: count('requeued'),
    batchJobsFailed: count('failed'),
    batchJobsEnded: count('ended'),
    registrations: pending.registrations,
    derivationsFailed: pending.derivationsFailed,
    truncated: requests.truncated || jobs.truncated || pending.truncated,
    errors,
  };
}

/** The failure reason of a derived version whose derivation a stop lost. */
export const DERIVATION_NOT_RESUMED =
  'the local service stopped before the derivation completed, and the gate it was asked with is not kept: derive again';

/**
 * The PENDING versions of every model (at most `maxKeys` versions looked at): a registration's completion queued
 * again, a derived version ended FAILED (reason `DERIVATION_NOT_RESUMED`). What fails for one version is added to `errors`.
 */
async function resumePendingVersions(
  deps: ResumeDeps,
  maxKeys: number,
  errors: string[],
): Promise<{ registrations: number; derivationsFailed: number; truncated: boolean }> {
  const { repo } = deps.registry;
  let registrations = 0;
  let derivationsFailed = 0;
  let seen = 0;
  let models: string | undefined;
  do {
    const page = await repo.listModels(100, models);
    for (const model of page.items) {
      let versions: string | undefined;
      do {
        if (seen >= maxKeys) return { registrations, derivationsFailed, truncated: true };
        const vs = await repo.listVersions(model.name, 100, versions);
        seen += vs.items.length;
        for (const v of vs.items) {
          if (v.status !== 'PENDING') continue;
          try {
            if (v.derivedFrom !== undefined) {
              if (await failPendingVersion(deps.registry, v.name, v.version, DERIVATION_NOT_RESUMED)) {
                derivationsFailed++;
              }
            } else {
              await deps.queue.send({ type: 'register-complete', name: v.name, version: v.version });
              registrations++;
            }
          } catch (e) {
            errors.push(`version ${v.version} of model '${v.name}': ${messageOf(e)}`);
          }
        }
        versions = vs.nextToken;
      } while (versions !== undefined);
    }
    models = page.nextToken;
  } while (models !== undefined);
  return { registrations, derivationsFailed, truncated: false };
}

/** The line a start logs about what it resumed; undefined when there was nothing to resume. */
export function describeResume(s: ResumeSummary, maxKeys = RESUME_MAX_KEYS): string | undefined {
  const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  const requeued = [
    ...(s.asyncRequests > 0 ? [plural(s.asyncRequests, 'async request')] : []),
    ...(s.batchJobs > 0 ? [plural(s.batchJobs, 'batch job')] : []),
    ...(s.registrations > 0 ? [plural(s.registrations, 'PENDING registration')] : []),
  ];
  const parts = [
    ...(requeued.length > 0 ? [`re-queued ${requeued.join(' and ')} left unfinished by the last stop`] : []),
    ...(s.batchJobsFailed > 0
      ? [
          `${plural(s.batchJobsFailed, 'batch job')} could not be resumed and ended failed (BATCH_NOT_RESUMED)`,
        ]
      : []),
    ...(s.batchJobsEnded > 0
      ? [`${plural(s.batchJobsEnded, 'batch job')} ended (status.json completed)`]
      : []),
    ...(s.derivationsFailed > 0
      ? [
          `${plural(s.derivationsFailed, 'PENDING derived version')} ended FAILED (their gate was not kept: derive again)`,
        ]
      : []),
    ...(s.truncated
      ? [
          `only the first ${maxKeys} keys of async/, job folders of batch/ and versions of the registry were looked at`,
        ]
      : []),
    ...(s.errors.length > 0 ? [`not resumed: ${s.errors.join('; ')}`] : []),
  ];
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/**
 * The ids of the stored async requests without an answer, from a listing of `async/` of at most `maxKeys` keys.
 */
async function unansweredRequests(
  deps: ResumeDeps,
  maxKeys: number,
): Promise<{ ids: string[]; truncated: boolean }> {
  const prefix = S3_KEYS.asyncPrefix;
  const requested = new Set<string>();
  const answered = new Set<string>();
  let listed = 0;
  let startAfter: string | undefined;
  let last: string | undefined;
  for (;;) {
    const page = await deps.objects.list(prefix, {
      maxKeys: Math.min(1000, maxKeys - listed),
      ...(startAfter !== undefined ? { startAfter } : {}),
    });
    for (const { key } of page.objects) {
      const slash = key.indexOf('/', prefix.length);
      if (slash < 0) continue;
      const id = key.slice(prefix.length, slash);
      last = id;
      if (key === ASYNC_KEYS.request(id)) requested.add(id);
      else if (key === ASYNC_KEYS.result(id)) answered.add(id);
    }
    listed += page.objects.length;
    startAfter = page.objects.at(-1)?.key;
    if (!page.truncated || startAfter === undefined) break;
    if (listed >= maxKeys) {
      // The keys of the last request seen may go on past the listing (its result among them): left for later.
      if (last !== undefined) requested.delete(last);
      return { ids: [...requested].filter((id) => !answered.has(id)), truncated: true };
    }
  }
  return { ids: [...requested].filter((id) => !answered.has(id)), truncated: false };
}

/** The job ids under `batch/` (its folders), at most `maxKeys`. */
async function jobFolders(deps: ResumeDeps, maxKeys: number): Promise<{ ids: string[]; truncated: boolean }> {
  const ids: string[] = [];
  let startAfter: string | undefined;
  for (;;) {
    const page = await deps.objects.folders(
      S3_KEYS.batchPrefix,
      startAfter !== undefined ? { startAfter } : {},
    );
    for (const id of page.folders) {
      if (ids.length >= maxKeys) return { ids, truncated: true };
      ids.push(id);
    }
    if (!page.truncated || page.next === undefined) return { ids, truncated: false };
    startAfter = page.next;
  }
}

/**
 * `maas batch`: scores a JSONL file through the batch pipeline — writes `batch/{jobId}/job.json` and
 * `input.jsonl` to the model bucket (which starts the job, locally and in AWS alike), waits for
 * `status.json` to settle and fetches `output.jsonl`.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { s3Client } from '../adapters/aws-clients';
import { S3BlobStore } from '../adapters/s3-blob-store';
import { EnvironmentVariables, type EnvRecord } from '../config/environment';
import { BATCH_KEYS } from '../contract/events';
import { localClientOptions } from '../local/emulators';
import type { BlobStore } from '../ports/events';

/** `status.json` as the CLI reads it. */
export interface JobStatus {
  readonly jobId: string;
  readonly state: 'running' | 'done' | 'failed';
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly version?: number;
  readonly error?: string;
  readonly code?: string;
}

interface LocalEndpointsFile {
  api?: string;
  s3?: string;
  bucket?: string;
}

/**
 * The bucket batch files go to: `--bucket` (a deployed stack, credentials from the AWS chain), else the bucket
 * of the running `maas dev` when the CLI talks to it (from `$MAAS_HOME/endpoints.json`).
 */
export function batchStore(
  opts: { bucket?: string; region?: string; endpoint: string },
  env: EnvRecord,
): (BlobStore & { bucket: string }) | undefined {
  if (opts.bucket) {
    return new S3BlobStore(s3Client(opts.region ? { region: opts.region } : {}), opts.bucket);
  }
  let local: LocalEndpointsFile | undefined;
  try {
    local = JSON.parse(readFileSync(join(new EnvironmentVariables(env).home(), 'endpoints.json'), 'utf8'));
  } catch {
    return undefined;
  }
  if (!local?.s3 || !local.bucket || local.api !== opts.endpoint) return undefined;
  return new S3BlobStore(s3Client(localClientOptions(local.s3)), local.bucket);
}

/** A job id valid as one S3 path segment: `cli-20261123T093000Z-1a2b3c4d`. */
export const newJobId = (now = new Date()): string =>
  `cli-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${randomUUID().slice(0, 8)}`;

export interface BatchRun {
  readonly status: JobStatus;
  /** `output.jsonl` (one answer or error object per input line, same order), when the job finished. */
  readonly output?: Uint8Array;
}

/** Submits a job and waits until its status is `done` or `failed` (or the timeout passes). */
export async function runBatch(
  store: BlobStore,
  job: { jobId: string; model: string; ref?: string; input: Uint8Array },
  opts: { pollMs?: number; timeoutMs?: number; onStatus?: (s: JobStatus) => void } = {},
): Promise<BatchRun> {
  const spec = { model: job.model, ...(job.ref !== undefined ? { ref: job.ref } : {}) };
  await store.put(BATCH_KEYS.job(job.jobId), JSON.stringify(spec));
  await store.put(BATCH_KEYS.input(job.jobId), job.input, 'application/x-ndjson');
  const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
  const pollMs = opts.pollMs ?? 500;
  for (;;) {
    const raw = await store.get(BATCH_KEYS.status(job.jobId));
    if (raw) {
      const status = JSON.parse(Buffer.from(raw).toString('utf8')) as JobStatus;
      opts.onStatus?.(status);
      if (status.state === 'failed') return { status };
      if (status.state === 'done') {
        const output = await store.get(BATCH_KEYS.output(job.jobId));
        return { status, ...(output ? { output } : {}) };
      }
    }
    if (Date.now() > deadline) {
      throw new Error(
        `job ${job.jobId} did not finish in time; its status is at ${BATCH_KEYS.status(job.jobId)}`,
      );
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

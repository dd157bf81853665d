/**
 * Register on upload: an object created under `incoming/{name}/…onnx` becomes the next version of `{name}`
 * through the same use case as `POST /models/{name}/versions`.
 *
 * S3 delivers events at least once and out of order, so the registration runs under an idempotency guard
 * keyed on bucket + key + object version (version id, else ETag, else the content's sha256): a redelivered
 * event returns the first outcome without registering again, and a delivery arriving while another one runs
 * waits for it. A deterministic failure (the artifact is not a loadable model, is too large, …) is an
 * outcome, not an error: the FAILED version is recorded once and the event is not retried forever.
 */
import { createHash } from 'node:crypto';
import { S3_KEYS } from '../contract/env';
import { isMaasError, UnprocessableModelError } from '../domain/errors';
import { isModelName } from '../domain/names';
import type { ModelVersion } from '../domain/types';
import {
  AlreadyInProgressError,
  type BlobStore,
  type IdempotencyGuard,
  type TimeBudget,
} from '../ports/events';
import type { RegisterVersionInput } from './registry';

/** An object named by an S3 event record. */
export interface S3ObjectRef {
  readonly bucket: string;
  /** The decoded key. */
  readonly key: string;
  readonly versionId?: string;
  readonly eTag?: string;
}

export type UploadOutcome =
  | {
      readonly status: 'REGISTERED';
      readonly name: string;
      readonly version: number;
      readonly sha256: string;
    }
  /** The artifact was recorded as a FAILED version (not a loadable model). */
  | { readonly status: 'FAILED'; readonly name: string; readonly reason: string }
  /** Nothing recorded: the key is not a registration key, the object is gone, or the request is invalid. */
  | { readonly status: 'IGNORED'; readonly reason: string };

export interface RegisterOnUploadDeps {
  /** `registerVersion` bound to its dependencies (registry repository, artifact store, inspector, events). */
  readonly register: (input: RegisterVersionInput) => Promise<ModelVersion>;
  readonly blobs: Pick<BlobStore, 'head' | 'get'>;
  readonly guard: IdempotencyGuard;
  /** How often, and how long apart (ms), a delivery waits for a concurrent one holding the lock. */
  readonly lockRetries?: number;
  readonly lockRetryDelayMs?: number;
}

/** The model name of an `incoming/{name}/…onnx` key, or undefined for any other key. */
export function incomingModelName(key: string): string | undefined {
  if (!key.startsWith(S3_KEYS.incomingPrefix) || !key.endsWith('.onnx')) return undefined;
  const rest = key.slice(S3_KEYS.incomingPrefix.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  const name = rest.slice(0, slash);
  return isModelName(name) ? name : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Registers the object once, whatever the number and order of deliveries. */
export async function registerOnUpload(
  deps: RegisterOnUploadDeps,
  obj: S3ObjectRef,
  budget?: TimeBudget,
): Promise<UploadOutcome> {
  const name = incomingModelName(obj.key);
  if (!name) return { status: 'IGNORED', reason: `'${obj.key}' is not incoming/{name}/….onnx` };
  const tag = await objectTag(deps, obj);
  if (tag === undefined) return { status: 'IGNORED', reason: `'${obj.key}' no longer exists` };

  const work = async (): Promise<UploadOutcome> => {
    try {
      const v = await deps.register({ name, sourceKey: obj.key, actor: `s3://${obj.bucket}/${obj.key}` });
      return { status: 'REGISTERED', name, version: v.version, sha256: v.sha256 };
    } catch (e) {
      if (e instanceof UnprocessableModelError) return { status: 'FAILED', name, reason: e.message };
      // Other caller-side errors (too large, invalid post-processing, vanished object) are deterministic too.
      if (isMaasError(e) && e.status < 500) return { status: 'IGNORED', reason: e.message };
      throw e;
    }
  };

  const retries = deps.lockRetries ?? 20;
  const delay = deps.lockRetryDelayMs ?? 250;
  for (let attempt = 0; ; attempt++) {
    try {
      return await deps.guard.once({ bucket: obj.bucket, key: obj.key, tag }, work, budget);
    } catch (e) {
      if (!(e instanceof AlreadyInProgressError) || attempt >= retries) throw e;
      await sleep(delay);
    }
  }
}

/** Version id, else ETag (from the event or a HEAD), else `sha256:` of the bytes; undefined when gone. */
async function objectTag(deps: RegisterOnUploadDeps, obj: S3ObjectRef): Promise<string | undefined> {
  if (obj.versionId && obj.versionId !== 'null') return `version:${obj.versionId}`;
  if (obj.eTag) return `etag:${obj.eTag.replaceAll('"', '')}`;
  const head = await deps.blobs.head(obj.key);
  if (!head) return undefined;
  if (head.versionId) return `version:${head.versionId}`;
  if (head.eTag) return `etag:${head.eTag}`;
  const bytes = await deps.blobs.get(obj.key);
  if (!bytes) return undefined;
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

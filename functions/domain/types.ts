/** Registry and protocol types shared by the domain, the use cases and the adapters. */
import type { CaptureConfig } from './capture';
import type { Evaluation, TransformSpec } from './derive';
import type { PreprocessStep } from './preprocess-spec';

export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

/** A tensor as OIP model metadata describes it; -1 marks a dynamic dimension. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  /** What the version does with the input before its graph sees it (OIP metadata `parameters`). */
  readonly parameters?: TensorParameters;
}

/** A model input's metadata parameters. */
export interface TensorParameters {
  /** The declared pre-processing applied to this (raw) input, in order. */
  readonly preprocess?: readonly PreprocessStep[];
}

export interface ModelSignature {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

export type VersionStatus = 'PENDING' | 'READY' | 'FAILED' | 'ARCHIVED';

/** Post-processing declared at registration; results are extra named outputs. */
export interface PostprocessSpec {
  /** Output tensor the post-processing reads (default: the model's first output). */
  readonly output?: string;
  readonly softmax?: boolean;
  readonly argmax?: boolean;
  readonly topK?: number;
}

export interface ModelVersion {
  readonly name: string;
  readonly version: number;
  readonly status: VersionStatus;
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly s3Key: string;
  readonly signature: ModelSignature;
  readonly description?: string;
  readonly tags?: Readonly<Record<string, string>>;
  readonly labels?: readonly string[];
  readonly postprocess?: PostprocessSpec;
  readonly createdAt: string;
  readonly createdBy?: string;
  readonly failureReason?: string;
  /**
   * The version's own capture declaration (`PATCH /models/{name}/versions/{v}`): what requests served by this
   * version record, for requests by version number, and for requests through an alias that declares none.
   */
  readonly capture?: CaptureConfig;
  /** The version this one was derived from (`POST /models/{name}/versions/{v}/derive`); absent: registered. */
  readonly derivedFrom?: number;
  /** The transforms that derived it from `derivedFrom`, in order. */
  readonly transforms?: readonly TransformSpec[];
  /** The accuracy gate's figures and verdict against `derivedFrom` (set when the derivation completed). */
  readonly evaluation?: Evaluation;
  /**
   * The sha-256 of the idempotency key of the registration that wrote it (its `uploadId` or `Idempotency-Key`):
   * what a retry whose first attempt's write landed unseen finds it by. Not shown by the API.
   */
  readonly registrationKey?: string;
}

export interface Model {
  readonly name: string;
  readonly description?: string;
  readonly latestVersion: number;
  readonly aliases: Readonly<Record<string, number>>;
  /** The aliases that split their traffic, with their splits (absent: none does). */
  readonly splits?: Readonly<Record<string, AliasRouting>>;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface AliasState {
  readonly alias: string;
  readonly version: number;
  readonly revision: number;
  readonly updatedAt: string;
  /**
   * The serving fields of the version the alias points at (name, version, status, sha256, sizeBytes, s3Key,
   * signature, labels, postprocess, createdAt, capture), written by the same transaction that moved the alias,
   * so one read resolves an alias to everything the predict path needs. Versions are immutable in these fields
   * but `capture`, and an aliased version stays READY; a change of the version's capture rewrites
   * `target.capture` of the aliases pointing at it in the same transaction, so the copy cannot go stale. Absent
   * on items written before it existed.
   */
  readonly target?: ModelVersion;
  /** The alias's traffic split (absent: all traffic to `version`). */
  readonly routing?: AliasRouting;
  /**
   * The serving fields of the canary version (as `target` for the stable one), written with the routing, so a
   * split alias too resolves with one read.
   */
  readonly canaryTarget?: ModelVersion;
  /**
   * The alias's own capture declaration (`PATCH /models/{name}/aliases/{alias}`). For requests through the alias
   * it wins over the version's (`target.capture`). A move keeps it; removing the alias drops it.
   */
  readonly capture?: CaptureConfig;
}

export interface HistoryEntry {
  readonly alias: string;
  readonly version: number | null;
  readonly previousVersion: number | null;
  readonly at: string;
  readonly actor: string;
  readonly reason?: string;
  /** The alias's traffic split after this entry's change (absent: none). */
  readonly routing?: AliasRouting;
  /**
   * The alias's revision after this entry's change (every change of the alias has an entry, so the newest entry's
   * is the alias's revision now: what a caller passes as `expectedRevision`). Absent on entries written before it
   * was kept.
   */
  readonly revision?: number;
}

/**
 * How an alias splits its traffic (progressive delivery): a canary version that serves `weight` percent of the
 * alias's requests besides its stable `version`, and/or a shadow version that sees copies of some of them. A request with a routing key (the `x-maas-routing-key` header,
 * else the request's `parameters[keyParameter]` when the alias names one) is routed by a hash of key and model, so
 * one key always lands on the same version and raising the weight only moves keys from stable to canary; a request
 * without one is routed at random.
 */
export interface AliasRouting {
  readonly canary?: {
    readonly version: number;
    /** 0-100, in steps of 0.1. */
    readonly weight: number;
  };
  /**
   * A version that sees a copy of `percent` of the requests the alias answers (after their answer; its own answers
   * are compared with the served ones, never returned). It may be the canary (a rollout mirrors the stable share
   * to its new version). The alias does not hold it: archived or deleted, its mirrors fail (counted), callers
   * never notice.
   */
  readonly shadow?: {
    readonly version: number;
    /** 0-100, in steps of 0.1. */
    readonly percent: number;
  };
  /** The OIP request `parameters` field used as the routing key when the request has no routing key header. */
  readonly keyParameter?: string;
}

export interface Page<T> {
  readonly items: T[];
  readonly nextToken?: string;
}

/** One move of an alias as its history keeps it: the entry and the alias revision the move produced. */
export interface HistoryRecord extends HistoryEntry {
  readonly revision: number;
}

/**
 * A version to register: everything but the number and the time, which the registry assigns. A PENDING version
 * holds its number while its registration continues asynchronously (its `s3Key` is then the source artifact,
 * its `sha256` empty and its signature empty) until it is completed (see `VersionCompletion`).
 */
export interface NewVersion {
  readonly name: string;
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly s3Key: string;
  readonly signature: ModelSignature;
  readonly status: 'READY' | 'FAILED' | 'PENDING';
  readonly description?: string;
  readonly tags?: Record<string, string>;
  readonly labels?: string[];
  readonly postprocess?: ModelVersion['postprocess'];
  readonly createdBy?: string;
  readonly failureReason?: string;
  /** A derived version: its parent and transforms (see `ModelVersion.derivedFrom`). */
  readonly derivedFrom?: number;
  readonly transforms?: readonly TransformSpec[];
  /** See `ModelVersion.registrationKey`. */
  readonly registrationKey?: string;
}

/**
 * How a PENDING version ends: READY with its verified artifact (content-addressed key, hash, size, signature), or
 * FAILED with the reason. Everything else the version was registered with (description, tags, labels,
 * post-processing, creator, number, `createdAt`) stays; a derived version's `transforms` are replaced when given.
 */
export type VersionCompletion =
  | {
      readonly status: 'READY';
      readonly sha256: string;
      readonly sizeBytes: number;
      readonly s3Key: string;
      readonly signature: ModelSignature;
      /** A derived version's accuracy gate. */
      readonly evaluation?: Evaluation;
      /** A derived version's transforms as applied, the options left to the worker written out. */
      readonly transforms?: readonly TransformSpec[];
    }
  | {
      readonly status: 'FAILED';
      readonly failureReason: string;
      readonly sha256?: string;
      readonly sizeBytes?: number;
      /** A derived version's accuracy gate (the figures it failed with). */
      readonly evaluation?: Evaluation;
      /** A derived version's transforms as applied, the options left to the worker written out. */
      readonly transforms?: readonly TransformSpec[];
    };

/** Changes to a registered version: description, tags, status, capture (null removes the declaration). */
export interface VersionPatch {
  readonly description?: string;
  readonly tags?: Record<string, string>;
  readonly status?: VersionStatus;
  readonly capture?: CaptureConfig | null;
}

/** A request to point an alias at a version, or to remove it. */
export interface AliasMove {
  readonly name: string;
  readonly alias: string;
  /** Target version; null removes the alias. */
  readonly version: number | null;
  /** When set, the move only happens if the alias currently points at this version (0 = alias absent). */
  readonly expectedVersion?: number;
  /** Current revision observed by the caller; the write is conditional on it (lost-update guard). */
  readonly expectedRevision?: number;
  readonly actor: string;
  readonly reason?: string;
}

/** A committed alias move. */
export interface AliasMoveResult {
  readonly alias: string;
  readonly version: number | null;
  readonly previousVersion: number | null;
  readonly revision: number;
}

/** The optional fields of a version that its registration sets (`evaluation` is set later, by its completion). */
export const OPTIONAL_VERSION_FIELDS = [
  'description',
  'tags',
  'labels',
  'postprocess',
  'createdBy',
  'failureReason',
  // A derived version's lineage (and a registration's own preprocessing, `transforms` alone).
  'derivedFrom',
  'transforms',
  'registrationKey',
] as const;

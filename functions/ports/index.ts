/**
 * Ports: what the use cases need from the outside world. Adapters in functions/adapters implement
 * them with the AWS SDK and onnxruntime-node; tests may implement them with fakes.
 */
import type { CaptureConfig } from '../domain/capture';
import type { AliasRoutingChange } from '../domain/registry-plans';
import type {
  AliasMove,
  AliasMoveResult,
  AliasRouting,
  AliasState,
  HistoryEntry,
  Model,
  ModelSignature,
  ModelVersion,
  NewVersion,
  Page,
  VersionCompletion,
  VersionPatch,
} from '../domain/types';
import type { HashedArtifact } from './inference';

export type { DeriveQueue, ModelTransformer } from './derive';
export type { AlarmStates, RolloutRepository } from './rollouts';

/**
 * A model as the registry reads it, with the traffic splits of its aliases (alias → split; absent when none
 * has one), kept in step with the aliases so listings show them without extra reads.
 */
/** A model with its splits (the `Model` type carries them). */
export type ModelWithSplits = Model;

export interface RegistryRepository {
  /**
   * Allocates the next version number of `name` (creating the model on first use) and writes the
   * version in one transaction. When the version is READY and the model has no `prod` alias yet,
   * the same transaction aliases it `prod`.
   */
  createVersion(v: NewVersion): Promise<ModelVersion>;
  /**
   * Completes a PENDING version (READY or FAILED, see `planVersionCompletion`) in one atomic write; a READY
   * version that is the model's first READY one takes the `prod` alias in the same write. NotFoundError when
   * the version is gone, ConflictError `VERSION_NOT_PENDING` when it is no longer PENDING.
   */
  completeVersion(name: string, version: number, completion: VersionCompletion): Promise<ModelVersion>;
  getModel(name: string): Promise<Model | undefined>;
  listModels(limit: number, nextToken?: string): Promise<Page<Model>>;
  getVersion(name: string, version: number): Promise<ModelVersion | undefined>;
  listVersions(name: string, limit: number, nextToken?: string): Promise<Page<ModelVersion>>;
  /**
   * Changes description, tags, status and/or capture (`capture: null` removes it). Becoming ARCHIVED needs a
   * READY (or ARCHIVED) version that no alias points at (ConflictError otherwise). A capture change rewrites
   * `target.capture` of the aliases pointing at the version in the same atomic write.
   */
  updateVersion(name: string, version: number, patch: VersionPatch): Promise<ModelVersion>;
  /** Deletes a version; ConflictError while an alias points at it. */
  deleteVersion(name: string, version: number): Promise<void>;
  getAlias(name: string, alias: string): Promise<AliasState | undefined>;
  /**
   * Moves (or removes) an alias conditionally and appends a history entry, atomically. The alias keeps its own
   * `capture`; its `target` (with the version's `capture`) is the new version's.
   */
  moveAlias(move: AliasMove): Promise<AliasMoveResult>;
  /**
   * Sets (or, with null, removes) the alias's own capture declaration; neither a move nor a history entry (the
   * revision stays). NotFoundError `ALIAS_NOT_FOUND` / `MODEL_NOT_FOUND`. Answers the alias as it now is.
   */
  setAliasCapture(name: string, alias: string, capture: CaptureConfig | null): Promise<AliasState>;
  /**
   * Sets (or, with null, removes) the alias's traffic split (see `planAliasRouting`): a change of the alias like a
   * move — conditional on the revision read, revision + 1, a history entry — that writes its `routing` and the
   * canary's serving copy (`canaryTarget`), and holds the canary version (its alias set) while the split names it.
   * A split equal to the alias's own (`planAliasRouting`'s `unchanged`) writes nothing. Answers the alias as it now
   * is.
   */
  setAliasRouting(change: AliasRoutingChange): Promise<AliasState>;
  /** Newest first. */
  aliasHistory(name: string, alias: string, limit: number, nextToken?: string): Promise<Page<HistoryEntry>>;
  /** Cheap reachability probe for /v2/health/ready. */
  ping(): Promise<void>;
}

export interface ArtifactStore {
  getObject(key: string): Promise<Uint8Array>;
  /**
   * The object's bytes and their sha256, hashed chunk by chunk while the body arrives (so verifying a large
   * artifact costs no extra pass after the download). Optional: callers fall back to `getObject`.
   */
  getObjectHashed?(key: string): Promise<HashedArtifact>;
  putObject(key: string, body: Uint8Array, contentType?: string): Promise<void>;
  headObject(key: string): Promise<{ sizeBytes: number } | undefined>;
  deleteObject(key: string): Promise<void>;
  /** A presigned `PUT` of `key` that accepts a body of exactly `sizeBytes` only. */
  presignPut(key: string, expiresInSeconds: number, sizeBytes: number): Promise<string>;
  readonly bucket: string;
}

/** Loads an artifact to prove it is a usable ONNX model and read its signature. */
export interface ModelInspector {
  /** Throws UnprocessableModelError when the bytes are not a loadable model. */
  inspect(bytes: Uint8Array): Promise<ModelSignature>;
}

export type RegistryEvent =
  | { type: 'ModelVersionRegistered'; detail: { name: string; version: number; sha256: string } }
  | { type: 'ModelVersionFailed'; detail: { name: string; version: number; reason: string } }
  | {
      type: 'AliasMoved';
      detail: { name: string; alias: string; version: number | null; previousVersion: number | null };
    }
  | {
      /** The alias's traffic split changed (by `PATCH` or by a rollout step); `routing` null: none now. */
      type: 'AliasRoutingChanged';
      detail: {
        name: string;
        alias: string;
        version: number;
        revision: number;
        routing: AliasRouting | null;
        previousRouting: AliasRouting | null;
      };
    }
  | {
      /** A rollout was rolled back (`reason` `alarm:<name>` or `divergence:<metric>`). */
      type: 'RolloutRolledBack';
      detail: {
        name: string;
        alias: string;
        rolloutId: string;
        version: number;
        fromVersion: number;
        reason: string;
      };
    }
  | {
      /** A rollout promoted its version: the alias now points at it. */
      type: 'RolloutCompleted';
      detail: { name: string; alias: string; rolloutId: string; version: number; fromVersion: number };
    };

export interface EventPublisher {
  publish(event: RegistryEvent): Promise<void>;
}

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/**
 * Registry items of the DynamoDB table (see dynamodb-registry.ts for the layout): domain records written as items,
 * and items read back as domain objects. Pure: shared by the repository (generated SDK client) and the predict
 * path's reader (dynamodb-registry-reader.ts).
 */
import { keys } from '../contract/table';
import type { CaptureConfig } from '../domain/capture';
import type { VersionCounter, VersionState } from '../domain/registry-plans';
import {
  type AliasRouting,
  type AliasState,
  type HistoryEntry,
  type HistoryRecord,
  type Model,
  type ModelVersion,
  OPTIONAL_VERSION_FIELDS,
  type VersionStatus,
} from '../domain/types';

/** An item as the SDK's DynamoDB document converter (un)marshalls it. */
export type Item = Record<string, unknown>;

/** A version's optional fields as stored: those of its registration, and its completion's `evaluation`. */
const STORED_OPTIONAL_FIELDS = [...OPTIONAL_VERSION_FIELDS, 'evaluation'] as const;

export function toVersion(item: Item): ModelVersion {
  const v: Record<string, unknown> = {
    name: item.name,
    version: item.version,
    status: item.status,
    sha256: item.sha256,
    sizeBytes: item.sizeBytes,
    s3Key: item.s3Key,
    signature: item.signature,
    createdAt: item.createdAt,
  };
  for (const k of STORED_OPTIONAL_FIELDS) {
    if (item[k] !== undefined && item[k] !== null) v[k] = item[k];
  }
  const capture = toCapture(item.capture);
  if (capture) v.capture = capture;
  return v as unknown as ModelVersion;
}

/** A stored capture declaration (a map `{samplePercent, input, output}`); undefined when absent. */
export function toCapture(value: unknown): CaptureConfig | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const c = value as Record<string, unknown>;
  return {
    samplePercent: Number(c.samplePercent),
    input: c.input !== false,
    output: c.output !== false,
  };
}

/** A model with its aliases' splits (`splits`, alias → split, only when one has one). */
export function toModel(item: Item): Model & { readonly splits?: Readonly<Record<string, AliasRouting>> } {
  const splits: Record<string, AliasRouting> = {};
  if (item.splits !== null && typeof item.splits === 'object') {
    for (const [alias, value] of Object.entries(item.splits as Record<string, unknown>)) {
      const routing = toRouting(value);
      if (routing) splits[alias] = routing;
    }
  }
  return {
    name: item.name as string,
    ...(item.description !== undefined ? { description: item.description as string } : {}),
    latestVersion: (item.latestVersion as number | undefined) ?? 0,
    aliases: (item.aliases as Record<string, number> | undefined) ?? {},
    ...(Object.keys(splits).length > 0 ? { splits } : {}),
    createdAt: item.createdAt as string,
    updatedAt: item.updatedAt as string,
  };
}

/** A stored traffic split (`{canary?: {version, weight}, shadow?: {version, percent}, keyParameter?}`); undefined when absent or empty. */
export function toRouting(value: unknown): AliasRouting | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const r = value as Record<string, unknown>;
  const c = r.canary as Record<string, unknown> | undefined;
  const canary =
    c !== null && typeof c === 'object' && typeof c.version === 'number'
      ? { version: c.version, weight: Number(c.weight ?? 0) }
      : undefined;
  const s = r.shadow as Record<string, unknown> | undefined;
  const shadow =
    s !== null && typeof s === 'object' && typeof s.version === 'number'
      ? { version: s.version, percent: Number(s.percent ?? 0) }
      : undefined;
  const keyParameter = typeof r.keyParameter === 'string' ? r.keyParameter : undefined;
  if (!canary && !shadow && keyParameter === undefined) return undefined;
  return {
    ...(canary ? { canary } : {}),
    ...(shadow ? { shadow } : {}),
    ...(keyParameter !== undefined ? { keyParameter } : {}),
  };
}

/**
 * An ALIAS item as the alias's state: `target` when it is the copy of the version the alias points at, `routing`
 * when the alias has a split, `canaryTarget` when it is the copy of the split's canary version.
 */
export function toAlias(item: Item): AliasState {
  const target = item.target as Item | undefined;
  const capture = toCapture(item.capture);
  const routing = toRouting(item.routing);
  const canaryTarget = item.canaryTarget as Item | undefined;
  return {
    alias: item.alias as string,
    version: item.version as number,
    revision: item.revision as number,
    updatedAt: item.updatedAt as string,
    ...(target && target.version === item.version ? { target: toVersion(target) } : {}),
    ...(routing ? { routing } : {}),
    ...(canaryTarget && routing?.canary && canaryTarget.version === routing.canary.version
      ? { canaryTarget: toVersion(canaryTarget) }
      : {}),
    ...(capture ? { capture } : {}),
  };
}

export function toHistory(item: Item): HistoryEntry {
  return {
    alias: item.alias as string,
    version: (item.version as number | null | undefined) ?? null,
    previousVersion: (item.previousVersion as number | null | undefined) ?? null,
    at: item.at as string,
    actor: item.actor as string,
    ...(typeof item.reason === 'string' ? { reason: item.reason } : {}),
    ...(toRouting(item.routing) ? { routing: toRouting(item.routing)! } : {}),
    ...(typeof item.revision === 'number' ? { revision: item.revision } : {}),
  };
}

/** The version counter of a MODEL item. */
export function toCounter(item: Item): VersionCounter {
  const firstReady = item.firstReadyVersion as number | undefined;
  return {
    latestVersion: (item.latestVersion as number | undefined) ?? 0,
    ...(firstReady !== undefined ? { firstReadyVersion: firstReady } : {}),
  };
}

/** What the archive and delete rules read of a VERSION item: its status and its alias set. */
export function toVersionState(item: Item): VersionState {
  const a = item.aliases;
  return {
    status: item.status as VersionStatus,
    aliases: a instanceof Set ? [...(a as Set<string>)].sort() : [],
  };
}

/** The VERSION item of a version; `aliases` is the string set of the aliases pointing at it. */
export function versionItem(v: ModelVersion, aliases: readonly string[] = []): Item {
  return {
    pk: keys.modelPk(v.name),
    sk: keys.versionSk(v.version),
    ...v,
    ...(aliases.length ? { aliases: new Set(aliases) } : {}),
  };
}

/**
 * The ALIAS item. Its `target` (the serving fields of the version it points at) lets `getAlias` answer the
 * predict path in one read (see `AliasState.target`).
 */
export function aliasItem(name: string, a: AliasState): Item {
  return {
    pk: keys.modelPk(name),
    sk: keys.aliasSk(a.alias),
    name,
    alias: a.alias,
    version: a.version,
    revision: a.revision,
    updatedAt: a.updatedAt,
    ...(a.target ? { target: a.target } : {}),
    ...(a.routing ? { routing: a.routing } : {}),
    ...(a.canaryTarget ? { canaryTarget: a.canaryTarget } : {}),
    ...(a.capture ? { capture: a.capture } : {}),
  };
}

/** A HISTORY item: sorted by time, then by revision; the random suffix keeps two writers' keys apart. */
export function historyItem(name: string, h: HistoryRecord): Item {
  const id = `${String(h.revision).padStart(9, '0')}-${Math.random().toString(36).slice(2, 8)}`;
  return { pk: keys.modelPk(name), sk: keys.historySk(h.alias, h.at, id), name, ...h };
}

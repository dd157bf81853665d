/**
 * Registry items of the DynamoDB table (see dynamodb-registry.ts for the layout) read back as domain objects.
 * Pure: shared by the repository (generated SDK client) and the predict path's reader (dynamodb-registry-reader.ts).
 */
import type { AliasState, Model, ModelVersion } from '../domain/types';

/** An item as the SDK's DynamoDB document converter (un)marshalls it. */
export type Item = Record<string, unknown>;

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
  for (const k of ['description', 'tags', 'labels', 'postprocess', 'createdBy', 'failureReason']) {
    if (item[k] !== undefined && item[k] !== null) v[k] = item[k];
  }
  return v as unknown as ModelVersion;
}

export function toModel(item: Item): Model {
  return {
    name: item.name as string,
    ...(item.description !== undefined ? { description: item.description as string } : {}),
    latestVersion: (item.latestVersion as number | undefined) ?? 0,
    aliases: (item.aliases as Record<string, number> | undefined) ?? {},
    createdAt: item.createdAt as string,
    updatedAt: item.updatedAt as string,
  };
}

export function toAlias(item: Item): AliasState {
  const target = item.target as Item | undefined;
  return {
    alias: item.alias as string,
    version: item.version as number,
    revision: item.revision as number,
    updatedAt: item.updatedAt as string,
    ...(target && target.version === item.version ? { target: toVersion(target) } : {}),
  };
}

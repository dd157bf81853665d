/** DynamoDB single-table schema of the registry (docs/ARCHITECTURE.md, "Data: table keys and S3 layout"). */
export const TABLE = {
  partitionKey: 'pk',
  sortKey: 'sk',
  /** GSI that lists models: every MODEL item carries gsi1pk = 'MODELS', gsi1sk = name. */
  modelsIndex: { name: 'gsi1', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
  /** Attribute holding an epoch-seconds expiry (idempotency records, async results). */
  ttlAttribute: 'expiresAt',
} as const;

export const keys = {
  modelPk: (name: string) => `MODEL#${name}`,
  modelSk: 'MODEL',
  versionSk: (version: number) => `VERSION#${String(version).padStart(9, '0')}`,
  versionSkPrefix: 'VERSION#',
  aliasSk: (alias: string) => `ALIAS#${alias}`,
  aliasSkPrefix: 'ALIAS#',
  historySk: (alias: string, iso: string, id: string) => `HISTORY#${alias}#${iso}#${id}`,
  historySkPrefix: (alias: string) => `HISTORY#${alias}#`,
  modelsGsiPk: 'MODELS',
  /** The alias's current or last rollout (one item per alias). */
  rolloutSk: (alias: string) => `ROLLOUT#${alias}`,
  /**
   * Sparse listing of the rollouts the controller works on (active, or ended with their alias change pending): such
   * a ROLLOUT item carries gsi1pk = 'ROLLOUTS', gsi1sk = `name#alias`; the attributes are removed once it settles.
   */
  rolloutsGsiPk: 'ROLLOUTS',
  rolloutsGsiSk: (name: string, alias: string) => `${name}#${alias}`,
  /** A batch job's record: its JOB item, and one PART item per finished part of the job's input, in index order. */
  batchPk: (jobId: string) => `BATCH#${jobId}`,
  batchJobSk: 'JOB',
  batchPartSk: (inputTag: string, index: number) => `PART#${inputTag}#${String(index).padStart(6, '0')}`,
  batchPartSkPrefix: (inputTag: string) => `PART#${inputTag}#`,
} as const;

/**
 * The size DynamoDB counts for a value stored as an attribute (its "Item sizes and formats" rules): a string its
 * UTF-8 bytes; a number 1 byte plus 1 per two significant digits (at most 21); a boolean or null 1 byte; a list or
 * map 3 bytes plus, for each element, 1 byte, the element's size and (in a map) its key's UTF-8 bytes. Undefined
 * (not stored) counts nothing. What an item's size limit (400 KB) is checked against before a write that could
 * exceed it; an attribute's own name is counted by the caller.
 */
export function storedSizeBytes(value: unknown): number {
  if (value === undefined) return 0;
  if (value === null || typeof value === 'boolean') return 1;
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number') return numberBytes(value);
  if (Array.isArray(value)) {
    let size = 3;
    for (const v of value) size += 1 + storedSizeBytes(v);
    return size;
  }
  if (typeof value === 'object') {
    let size = 3;
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) size += 1 + Buffer.byteLength(k, 'utf8') + storedSizeBytes(v);
    }
    return size;
  }
  return Buffer.byteLength(String(value), 'utf8');
}

/** 1 byte plus 1 per two significant digits (leading and trailing zeros trimmed), at most 21. */
function numberBytes(n: number): number {
  const mantissa = Math.abs(n).toExponential().split('e')[0] ?? '';
  const digits = mantissa.replace('.', '').replace(/0+$/, '').length || 1;
  return Math.min(21, 1 + Math.ceil(digits / 2));
}

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

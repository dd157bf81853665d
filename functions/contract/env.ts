/** Environment variable names (ARCHITECTURE §5), read in one place: functions/handlers/config.ts. */
export const ENV = {
  table: 'MAAS_TABLE',
  bucket: 'MAAS_BUCKET',
  aliasTtlMs: 'MAAS_ALIAS_TTL_MS',
  ortThreads: 'MAAS_ORT_THREADS',
  preload: 'MAAS_PRELOAD',
  maxBodyBytes: 'MAAS_MAX_BODY_BYTES',
  queueUrl: 'MAAS_QUEUE_URL',
  eventBus: 'MAAS_EVENT_BUS',
  region: 'AWS_REGION',
  endpoint: 'AWS_ENDPOINT_URL',
  endpointDynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  endpointS3: 'AWS_ENDPOINT_URL_S3',
  memoryMb: 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE',
} as const;

/** S3 key layout (ARCHITECTURE §3). */
export const S3_KEYS = {
  model: (name: string, sha256: string) => `models/${name}/${sha256}.onnx`,
  upload: (name: string, uploadId: string) => `uploads/${name}/${uploadId}.onnx`,
  uploadsPrefix: 'uploads/',
  incomingPrefix: 'incoming/',
  batchPrefix: 'batch/',
  asyncPrefix: 'async/',
} as const;

/** Lambda entry files, relative to the repository root (used by CDK and the smoke tests). */
export const HANDLER_ENTRIES = {
  predict: 'functions/handlers/predict.ts',
  registry: 'functions/handlers/registry.ts',
} as const;

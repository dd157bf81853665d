/**
 * Names of the environment variables the code reads (docs/ARCHITECTURE.md, "Environment"). They are read in one
 * place, the config module (functions/config/environment.ts); infra sets the service's own ones from here.
 */
export const ENV = {
  // The service's settings (set by the stack).
  table: 'MAAS_TABLE',
  bucket: 'MAAS_BUCKET',
  aliasTtlMs: 'MAAS_ALIAS_TTL_MS',
  ortThreads: 'MAAS_ORT_THREADS',
  preload: 'MAAS_PRELOAD',
  maxBodyBytes: 'MAAS_MAX_BODY_BYTES',
  queueUrl: 'MAAS_QUEUE_URL',
  /** The batch queue (batch parts and aggregations), set on the functions that start and score batch jobs. */
  batchQueueUrl: 'MAAS_BATCH_QUEUE_URL',
  /**
   * The dead-letter queues the worker consumes (comma-separated ARNs): a delivery from one of them is of dead
   * letters, which the worker ends instead of running.
   */
  deadLetterQueueArns: 'MAAS_DEAD_LETTER_QUEUE_ARNS',
  /**
   * Receives before the work queue and the batch queue dead-letter a message (their redrive policy's
   * `maxReceiveCount`, set on the worker by the stack): the worker ends a message on its last receive.
   */
  maxReceiveCount: 'MAAS_MAX_RECEIVE_COUNT',
  eventBus: 'MAAS_EVENT_BUS',
  /** How often `maas dev` runs the rollout controller (ms). */
  rolloutTickMs: 'MAAS_ROLLOUT_TICK_MS',
  // The AWS SDK's standard settings, which the predict path's signed reads honour as the SDK does.
  region: 'AWS_REGION',
  defaultRegion: 'AWS_DEFAULT_REGION',
  /** Endpoint of every service; `AWS_ENDPOINT_URL_<SERVICE>` (e.g. `endpointDynamodb`) wins over it. */
  endpoint: 'AWS_ENDPOINT_URL',
  endpointDynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  endpointS3: 'AWS_ENDPOINT_URL_S3',
  ignoreConfiguredEndpoints: 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS',
  useFipsEndpoint: 'AWS_USE_FIPS_ENDPOINT',
  useDualstackEndpoint: 'AWS_USE_DUALSTACK_ENDPOINT',
  accessKeyId: 'AWS_ACCESS_KEY_ID',
  secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  // Set by Lambda.
  memoryMb: 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE',
  initializationType: 'AWS_LAMBDA_INITIALIZATION_TYPE',
  /** Set by Lambda when the function has active X-Ray tracing. */
  xrayDaemonAddress: 'AWS_XRAY_DAEMON_ADDRESS',
  /** The function's handler setting (`index.handler`), which names its invocation subsegments. */
  lambdaHandler: '_HANDLER',
  // The developer tools (`maas dev`, the CLI).
  home: 'MAAS_HOME',
  port: 'PORT',
  cliEndpoint: 'MAAS_ENDPOINT',
  /** Bearer token (a JWT) the CLI sends to a stack deployed with JWT authorization. */
  cliToken: 'MAAS_TOKEN',
} as const;

/**
 * The values `MAAS_MAX_RECEIVE_COUNT` may take: SQS's range for a redrive policy's `maxReceiveCount`. The stack checks
 * its prop against it at synth, the worker its variable at INIT.
 */
export const MAX_RECEIVE_COUNT_RANGE = { min: 1, max: 1000 } as const;

/** S3 key layout (docs/ARCHITECTURE.md, "Data: table keys and S3 layout"). */
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
  rolloutController: 'functions/handlers/rollout-controller.ts',
} as const;

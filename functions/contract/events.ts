/**
 * Contract of the event-driven flows (docs/ARCHITECTURE.md, "Flows"; their triggers in docs/events.md): S3 keys
 * of batch jobs and async requests, queue semantics shared by the CDK stack and the in-process queue, EventBridge
 * naming and the idempotency records kept in the registry table.
 */
import { S3_KEYS } from './env';

/** S3 keys of batch jobs: `batch/{jobId}/…`. */
export const BATCH_KEYS = {
  job: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/job.json`,
  input: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/input.jsonl`,
  output: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/output.jsonl`,
  status: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/status.json`,
  /** Output of rows `[index * rowsPerPart, (index + 1) * rowsPerPart)` while the job runs. */
  part: (jobId: string, index: number) =>
    `${S3_KEYS.batchPrefix}${jobId}/parts/${String(index).padStart(6, '0')}.jsonl`,
  /** The object name whose creation starts a job. */
  inputFileName: 'input.jsonl',
} as const;

/** S3 keys of async inference requests: `async/{requestId}/…`. */
export const ASYNC_KEYS = {
  request: (requestId: string) => `${S3_KEYS.asyncPrefix}${requestId}/request.json`,
  result: (requestId: string) => `${S3_KEYS.asyncPrefix}${requestId}/result.json`,
  /** The body of a binary tensor data request, as it came (decoded from base64 and its Content-Encoding). */
  requestBody: (requestId: string) => `${S3_KEYS.asyncPrefix}${requestId}/request.bin`,
  /** The body of a binary answer (JSON header + raw tensors), as the predictor encoded it. */
  resultBody: (requestId: string) => `${S3_KEYS.asyncPrefix}${requestId}/result.bin`,
} as const;

/** Work queue (SQS in AWS, in-process locally) and its dead-letter queue. */
export const QUEUE = {
  /** Receives before a message is moved to the dead-letter queue. */
  maxReceiveCount: 3,
  /** Messages handed to one worker invocation. */
  batchSize: 10,
  /** Seconds a received message stays invisible; must cover one worker invocation. */
  visibilityTimeoutSeconds: 720,
  /** Worker function timeout (seconds); the visibility timeout is six times it, as AWS recommends. */
  workerTimeoutSeconds: 120,
  /** Dead-letter messages are kept this long (seconds) for inspection and redrive. */
  dlqRetentionSeconds: 14 * 24 * 3600,
} as const;

/** Batch scoring. */
export const BATCH = {
  /** Rows per output part; the unit of progress and continuation. */
  rowsPerPart: 500,
  /** Most rows the predictor stacks into one ORT run (compatible rows are concatenated along dim 0). */
  ortBatchRows: 256,
  /** Time kept in reserve (ms) at the end of an invocation for writing the part and the continuation. */
  reserveMs: 5_000,
  /** Timeout (seconds) of the function that starts jobs (S3 events). */
  functionTimeoutSeconds: 300,
} as const;

/** Async inference results stay readable this many days (S3 lifecycle on `async/`). */
export const ASYNC_RESULT_RETENTION_DAYS = 7;

/** EventBridge: every registry event has source `maas` and detail-type = the event type. */
export const EVENT_BUS = {
  source: 'maas',
  detailTypes: [
    'ModelVersionRegistered',
    'ModelVersionFailed',
    'AliasMoved',
    'AliasRoutingChanged',
    'RolloutRolledBack',
    'RolloutCompleted',
  ] as const,
} as const;

/**
 * Registration through the HTTP API. One that cannot finish within the function's remaining time (less
 * `reserveMs`) answers 202 with a PENDING version and continues on the work queue (`register-complete`).
 */
export const REGISTRATION = {
  /** Time kept (ms) at the end of the API invocation for writing the PENDING version and queueing its message. */
  reserveMs: 4_000,
  /** The budget (ms) where no Lambda context tells the remaining time (the local server). */
  localBudgetMs: 20_000,
  /** Time kept (ms) at the end of a worker invocation to record the failure of a registration that ran out of it. */
  workerReserveMs: 5_000,
  /** How long (ms) a duplicate request waits, at most, for the one holding its idempotency key (no time given). */
  duplicateWaitMs: 25_000,
  /** A duplicate stops waiting (409 REGISTRATION_IN_PROGRESS) when less than this (ms) of its time is left. */
  duplicateReserveMs: 1_000,
  /** Interval (ms) at which a duplicate request checks whether the first one finished. */
  duplicatePollMs: 200,
} as const;

/** Idempotency records (Powertools) live in the registry table under one static partition key. */
export const IDEMPOTENCY = {
  staticPk: 'IDEMPOTENCY',
  /** Records expire (TTL) after this many seconds: redeliveries within it are recognised. */
  expiresAfterSeconds: 7 * 24 * 3600,
  keyPrefix: {
    registerOnUpload: 'register-on-upload',
    /** `POST /models/{name}/versions` with an `uploadId` or an `Idempotency-Key` header. */
    registerVersion: 'register-version',
    batchStart: 'batch-start',
    batchPart: 'batch-part',
    /** A mirrored request compared on its shadow version (one per model, alias, versions, inference id and time). */
    shadow: 'shadow',
  },
  /** Attribute names of the record (status, in-progress expiry, stored result). */
  statusAttr: 'idemStatus',
  inProgressExpiryAttr: 'idemInProgressExpiry',
  dataAttr: 'idemData',
} as const;

/** Lambda entry files of the event flows, relative to the repository root. */
export const EVENT_HANDLER_ENTRIES = {
  s3Events: 'functions/handlers/s3-events.ts',
  asyncApi: 'functions/handlers/async-api.ts',
  asyncWorker: 'functions/handlers/async-worker.ts',
} as const;

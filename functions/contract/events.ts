/**
 * Contract of the event-driven flows (docs/ARCHITECTURE.md, "Flows"; their triggers in docs/events.md): S3 keys
 * of batch jobs and async requests, queue semantics shared by the CDK stack and the in-process queue, EventBridge
 * naming and the idempotency records kept in the registry table.
 */
import { S3_KEYS } from './env';

/** S3 keys of batch jobs: `batch/{jobId}/…` (docs/events.md). */
export const BATCH_KEYS = {
  /** `{ model, ref?, partBytes?, maxConcurrency? }`. */
  job: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/job.json`,
  /** The job's input as one object; its creation starts the job. */
  input: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/input.jsonl`,
  /** The job's input as several objects `input/*.jsonl`, taken in key order. */
  inputPrefix: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/input/`,
  /** The empty object written after the `input/*.jsonl` objects; its creation starts the job. */
  inputMarker: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/input/_SUCCESS`,
  /** Any content; its creation cancels the running job. */
  cancel: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/cancel`,
  /** The partition of the input into line-aligned byte ranges, written once when the job starts. */
  plan: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/plan.json`,
  output: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/output.jsonl`,
  status: (jobId: string) => `${S3_KEYS.batchPrefix}${jobId}/status.json`,
  /** Every output segment of one input of the job (`run`: see `segment`). */
  segments: (jobId: string, run: string) => `${S3_KEYS.batchPrefix}${jobId}/parts/${run}/`,
  /**
   * Output of rows `[fromRow, toRow)` of part `index`, counted from the part's first line, while the job runs.
   * `run` names the input (a digest of its input tag), so a late part of a replaced input never writes over a
   * segment of the new one. The content depends only on the name: a retried or duplicated part writes the same
   * bytes under the same key.
   */
  segment: (jobId: string, run: string, index: number, fromRow: number, toRow: number) =>
    `${S3_KEYS.batchPrefix}${jobId}/parts/${run}/${String(index).padStart(6, '0')}/${String(fromRow).padStart(9, '0')}-${String(toRow).padStart(9, '0')}.jsonl`,
  /** The object name whose creation starts a job. */
  inputFileName: 'input.jsonl',
  /** The name of the marker that starts a job of several input objects (under `input/`). */
  inputMarkerName: '_SUCCESS',
  /** The object name whose creation cancels a job. */
  cancelFileName: 'cancel',
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
  /**
   * A dead letter still in its queue after this long (seconds) is one the worker could not end (its end is tried
   * again every visibility timeout): the stack's dead-letter alarms fire on it (infra/constructs/event-pipelines.ts).
   */
  deadLetterAlarmAgeSeconds: 3600,
  /**
   * A record of a work queue delivery other than its first is not started with less than this (ms) left of the
   * invocation: it is given back to the queue, or sent again on its last receive (docs/events.md, "The worker's
   * time"). More than REGISTRATION.workerReserveMs, so that a registration or derivation started has time to work.
   */
  startReserveMs: 10_000,
  /**
   * This long (ms) before the invocation's end, a work queue record still running is ended as a failure on its
   * last receive ends it (when the receive is its last), and the worker answers its delivery without waiting for
   * it: the function's timeout kills the invocation without running any catch or returning the batch response.
   * Long enough for the end's writes.
   */
  deadlineMarginMs: 3_000,
} as const;

/** Batch scoring (docs/ARCHITECTURE.md, "Batch scoring"). */
export const BATCH = {
  /** Input bytes per part when job.json gives none (16 MiB); a part is scored by one worker invocation or more. */
  partBytes: 16 * 1024 * 1024,
  /** Smallest and largest `partBytes` job.json may ask (64 KiB, 512 MiB). */
  minPartBytes: 64 * 1024,
  maxPartBytes: 512 * 1024 * 1024,
  /**
   * Most parts of a job: S3's limit on the parts of a multipart upload (10 000). A larger input gets larger parts
   * (partBytes raised to what keeps the count within it).
   */
  maxParts: 10_000,
  /** Parts of a job in flight at once when job.json gives no `maxConcurrency`. */
  maxConcurrency: 10,
  /** Largest `maxConcurrency` job.json may ask (and the bound of the stack's batchMaxConcurrency). */
  maxConcurrencyLimit: 1_000,
  /** Bytes of one ranged read looking for the line break after a nominal cut (64 KiB). */
  scanBytes: 64 * 1024,
  /** Ranged reads, sends and deletes a start, a part or an aggregation keeps in flight at once. */
  ioConcurrency: 16,
  /**
   * Server-side copies (UploadPartCopy) the aggregation keeps in flight at once: 10 000 copies of 16 MiB segments
   * take about a minute at this width.
   */
  copyConcurrency: 64,
  /** Lines scored per `inferBatch` call; a part is continued, when time runs out, between chunks. */
  rowsPerChunk: 512,
  /**
   * Lines of a part's first chunk; each chunk after it twice the one before, up to `rowsPerChunk`
   * (`chunkRowsAt`): the model's thread starts once these are read instead of a whole chunk.
   */
  firstChunkRows: 64,
  /**
   * Chunks of a part waiting for their answers while the next one is read and scanned (the model runs in a thread
   * of its own on the worker: docs/performance.md, "The scoring thread").
   */
  chunksInFlight: 2,
  /** An output segment is written once it holds this many bytes (64 MiB): a part's memory is bounded by it. */
  segmentBytes: 64 * 1024 * 1024,
  /** Most rows the predictor stacks into one ORT run (compatible rows are concatenated along dim 0). */
  ortBatchRows: 256,
  /** Time kept in reserve (ms) at the end of an invocation for writing the segment and the continuation. */
  reserveMs: 5_000,
  /**
   * On a batch message's last receive, its job is ended failed (naming the part, or the assembly) this long (ms)
   * before the invocation's end when the message's work is still running then: a function killed by its timeout
   * runs no catch, so the message would go to the dead-letter queue with its job `running` for ever. Less than
   * `reserveMs`, so that a part that stops in time has sent its continuation before; long enough for the end's
   * writes (the record, `status.json`).
   */
  lastReceiveGuardMs: 3_000,
  /** Timeout (seconds) of the function that starts jobs (S3 events). */
  functionTimeoutSeconds: 300,
  /**
   * How long (ms) the aggregation's claim and the assembly's lease on a job record stand. Both are taken inside one
   * worker invocation, which the function timeout ends, so one older than it belongs to an invocation that is gone:
   * a claim whose `batch-aggregate` message was never sent is taken over by a redelivered part, an assembly that
   * died is taken over by the redelivered message. A redelivery comes a visibility timeout after the receive, so
   * the lease must be at most the visibility timeout less the function timeout (720 − 120 s; checked at synth).
   * @default QUEUE.workerTimeoutSeconds × 1000 (120 s)
   */
  aggregationLeaseMs: QUEUE.workerTimeoutSeconds * 1000,
  /** Job records (and their part items) expire (TTL) this many days after the job's last write. */
  recordTtlDays: 30,
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

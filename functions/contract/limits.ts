/** Limits shared by handlers, the local server, the CDK stack and the tests. */
export const LIMITS = {
  /** Largest request body accepted by any handler (API Gateway/Lambda synchronous payload is 6 MB). */
  maxBodyBytes: 6 * 1024 * 1024,
  /**
   * Largest ONNX artifact that can be registered. Registration holds the bytes and an onnxruntime session
   * in memory: 256 MiB fits the registry function's default 3008 MB with room to spare. Through the HTTP API, a
   * registration that does not finish within the function's time continues on the work queue (202, PENDING).
   */
  maxModelBytes: 256 * 1024 * 1024,
  /**
   * Bytes of the tensors a model's constant nodes may make onnxruntime build at session creation, in total: it
   * folds constants when it loads a model (graph optimisation), so a node of a few bytes (a ConstantOfShape of
   * [16384, 16384]) becomes a 1 GiB tensor, and folding peaks at about twice what it builds. 256 MiB thus costs
   * about 512 MiB at load, which with a 256 MiB artifact stays within the predict function's default 1769 MB and the
   * registry's 3008 MB. Registration refuses a model over it (422 `INVALID_MODEL`) before onnxruntime sees it,
   * counting the nodes it can size without running anything (functions/adapters/ort-inspector.ts,
   * `foldedConstants`).
   */
  maxFoldedConstantBytes: 256 * 1024 * 1024,
  /** Presigned upload URLs expire after this many seconds. */
  uploadUrlTtlSeconds: 900,
  /**
   * Largest answer body a function answers inline, as its response carries it: Lambda's synchronous response
   * payload is at most 6 MB (6 291 456 bytes), counted as the JSON of the whole response — a JSON body as a string
   * escaped once more, a binary body base64 (4 bytes per 3) — with the status code and headers beside it, for
   * which 4 KiB are kept (the inference id among them, at most 256 characters, escaped). A larger answer never
   * reaches the caller (API Gateway answers a bare 500): a larger inference answer is a 400 `RESPONSE_TOO_LARGE` (the
   * model ran, its answer could not be returned; asynchronous inference and batch scoring return answers of any
   * size), a larger async result a link to it.
   */
  maxResponseBytes: 6 * 1024 * 1024 - 4096,
  /**
   * Lambda's synchronous invocation payload, 6 MB (6 291 456 bytes): the JSON of the whole event API Gateway sends
   * (a body of a text type escaped as a string, any other base64, headers beside it). A larger request never reaches
   * the function (API Gateway answers it itself); the local server answers it 413 `PAYLOAD_TOO_LARGE` so that what
   * passes there passes on AWS.
   */
  maxInvocationBytes: 6 * 1024 * 1024,
  /**
   * Presigned GET URLs of async results too large to answer inline expire after this many seconds: a link is
   * for reading the result at once, and every poll gets a fresh one.
   */
  resultUrlTtlSeconds: 300,
  /** Default and maximum page sizes of list routes. */
  defaultPageSize: 50,
  maxPageSize: 100,
  /** Free-text fields. */
  maxDescriptionLength: 1024,
  maxTags: 50,
  maxLabels: 100_000,
  /** Serialized size of a version's labels (they live in the version's DynamoDB item, max 400 KB). */
  maxLabelsBytes: 300_000,
  /**
   * Size, as DynamoDB counts it (`storedSizeBytes`, contract/table.ts), of the serving copies one alias carries
   * together: `target` (the version it points at) and `canaryTarget` (its canary), labels, signature and
   * post-processing included. They live in the alias's DynamoDB item, and an item holds at most 400 KB (409 600
   * bytes of attribute names and values); the alias's other attributes (keys, names, revision, times, split,
   * capture) take under 1 KB, so 19 600 bytes are left to spare. One version's copy always fits (its labels are at
   * most `maxLabelsBytes`); two versions with large labels may not, and the split or move that would pair them is
   * refused (409 `ALIAS_TOO_LARGE`). The shadow is not copied.
   */
  maxAliasCopiesBytes: 390_000,
  /**
   * Aliases a model may have. A change of a version's capture writes the version and the serving copy of every
   * alias pointing at it or splitting to it in one DynamoDB transaction, which holds at most 100 items; an alias
   * carries at most one copy of a version (its canary is never its own version), so 90 aliases leave room. One more
   * is refused (409 `TOO_MANY_ALIASES`).
   */
  maxAliasesPerModel: 90,
  /**
   * Deepest nesting of arrays and objects in a request's `parameters` (of the request, an input, an output), an
   * async request (its nested `data` too: a tensor's rank is far less) and a preprocessing declaration. Deeper
   * JSON is a 400: serializing it overflows the stack.
   */
  maxNesting: 32,
  /**
   * Longest error message answered (characters; longer ones end in `…`): a refusal that quotes what the caller sent
   * stays a small answer, well within a synchronous response, whatever the caller sent.
   */
  maxErrorMessageChars: 2000,
  /**
   * Binary requests' headers kept per function instance (domain/binary-header-cache.ts), and binary answers'
   * headers (`BinaryAnswerEncoder`, domain/binary-tensors.ts), each of at most `maxRememberedBinaryHeaderBytes`
   * bytes: a client sending the same header again (the same inputs, shapes and outputs: what most clients do)
   * skips its parsing and checks, and its answer's header is written once.
   */
  rememberedBinaryHeaders: 16,
  maxRememberedBinaryHeaderBytes: 4096,
  /** Model and alias names. */
  namePattern: /^[a-z0-9][a-z0-9\-_.]{0,63}$/,
  /** Default alias-resolution cache TTL of the predict path. */
  defaultAliasTtlMs: 5000,
  /**
   * How long the predict function reuses one registry ping's outcome for the public readiness probe
   * (`GET /v2/health/ready`): probes within it cost no DynamoDB read, and a recovery is seen after it.
   */
  readinessTtlMs: 5000,
  /** Default session-cache memory budget as a fraction of the function's memory. */
  sessionCacheMemoryFraction: 0.5,
  /**
   * API Gateway HTTP API's integration timeout, a hard limit: after it the API answers 503, so a function
   * whose work is the response must finish within it.
   */
  apiIntegrationTimeoutSeconds: 30,
  /**
   * Largest timeout (seconds) of a function that answers the HTTP API: one second under the integration timeout,
   * so the function's own timeout (and its answer) comes before API Gateway gives up with a 503.
   */
  apiFunctionMaxTimeoutSeconds: 29,
  /**
   * Bounded waits on DynamoDB, S3, SQS and EventBridge (docs/ARCHITECTURE.md, "Errors"). Per attempt: the TCP
   * connection must be established within `dependencyConnectTimeoutMs`, the answer's headers arrive within
   * `dependencyRequestTimeoutMs` (S3's generated client excepted: its uploads stream within that time), and the
   * socket never idles longer than `dependencySocketIdleMs` (a body that stalls half way). The whole operation,
   * retries included, must finish within `dependencyDeadlineMs`, and in Lambda by the invocation's remaining time
   * minus `dependencyDeadlineMarginMs`; past it the call fails as 503 `UNAVAILABLE`. Every HTTP route thus
   * answers a stalled dependency within 10 s.
   */
  dependencyConnectTimeoutMs: 1_000,
  dependencyRequestTimeoutMs: 3_000,
  dependencySocketIdleMs: 3_000,
  dependencyDeadlineMs: 7_000,
  dependencyDeadlineMarginMs: 1_000,
  /**
   * A body that moves (an artifact of up to `maxModelBytes` read or written) gets time beyond the deadline at this
   * rate, within the invocation's remaining time: a large transfer is bounded by its size, a stalled one by
   * `dependencySocketIdleMs`. 256 MiB thus has 32 s more.
   */
  dependencyMinThroughputBytesPerSecond: 8 * 1024 * 1024,
  /**
   * How long after the process started an on-demand INIT stops waiting for `MAAS_PRELOAD`, in ms. Lambda fails
   * an INIT that runs past 10 s (and retries it within the first request's time); this leaves 3 s for what
   * follows the preloads and for the runtime's own start before the module loaded.
   */
  onDemandPreloadDeadlineMs: 7_000,
  /**
   * Observability (docs/ARCHITECTURE.md, "Observability"). An inference id (the request's `id`) is at most
   * `maxInferenceIdLength` characters; a capture sink gets at most `captureBudgetMs` before the answer goes
   * without it; a capture record larger than `captureMaxRecordBytes` (a CloudWatch Logs event is at most 256 KiB)
   * keeps its metadata and drops its data (`"truncated": true`); one feedback request carries at most
   * `maxFeedbackItems` items; one capture listing reads at most `maxCaptureObjectsPerPage` objects.
   */
  maxInferenceIdLength: 256,
  captureBudgetMs: 50,
  captureMaxRecordBytes: 250 * 1024,
  maxFeedbackItems: 1000,
  maxCaptureObjectsPerPage: 50,
  /**
   * Records in one capture listing page at most, counted as the function's response carries them (UTF-8 bytes of
   * their JSON, escaped once more as the response's body string): well within Lambda's 6 MB answer.
   */
  maxCapturePageBytes: 4 * 1024 * 1024,
  /**
   * Bytes of a capture object read per ranged GET by a listing: objects (Firehose writes up to 128 MiB) are never
   * read whole, so a page's memory is bounded by this and the page, not by the object.
   */
  captureReadBlockBytes: 4 * 1024 * 1024,
  /** How often the local service (`maas dev`) runs the rollout controller, in ms (`MAAS_ROLLOUT_TICK_MS`). */
  defaultRolloutTickMs: 5000,
  /** Lambda's memory range (MB, integers). */
  lambdaMinMemoryMb: 128,
  lambdaMaxMemoryMb: 10_240,
} as const;

/** The alias served when an inference route names no version. */
export const DEFAULT_ALIAS = 'prod';

/**
 * Bytes of a text body (`LIMITS.maxResponseBytes`'s count) as a function's response carries it: a JSON string,
 * every `"`, `\\` and control character escaped once more (its two quotes not counted), in UTF-8.
 */
export const carriedTextBytes = (text: string): number => Buffer.byteLength(JSON.stringify(text)) - 2;

/** Bytes of a binary body of `n` bytes as a function's response carries it: its base64 (4 for 3). */
export const carriedBase64Bytes = (n: number): number => 4 * Math.ceil(n / 3);

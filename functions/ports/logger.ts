/**
 * The logger port: structured log lines, one JSON object each in AWS (functions/adapters/powertools-logger.ts),
 * carrying the keys of the request being handled. Tests pass a recording implementation.
 */

/** What a line carries besides its message: JSON-serializable values by name. */
export type LogAttributes = Readonly<Record<string, unknown>>;

/** The invocation a request runs in; a Lambda context fits (its `awsRequestId` names the request). */
export interface Invocation {
  readonly awsRequestId: string;
  readonly functionName?: string;
  readonly functionVersion?: string;
  readonly invokedFunctionArn?: string;
  readonly memoryLimitInMB?: string | number;
}

export interface Logger {
  info(message: string, attributes?: LogAttributes): void;
  warn(message: string, attributes?: LogAttributes): void;
  error(message: string, attributes?: LogAttributes): void;
  /**
   * Starts the scope of a request: the keys appended for the previous one are dropped and, given its invocation,
   * every line names the request (Lambda's request id) until the next scope starts.
   */
  startRequest(invocation?: Invocation): void;
  /** Adds keys to every line of the current request (e.g. the model, version or alias it is about). */
  appendKeys(keys: LogAttributes): void;
}

/**
 * The logger port: structured log lines, one JSON object each in AWS (functions/adapters/powertools-logger.ts).
 * A request's lines come from a logger of that request (`forRequest`), which names its invocation and carries its
 * keys; the logger it came from is unchanged, so concurrent requests never lend each other keys. Tests pass a
 * recording implementation.
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
   * The logger of one request: every line it writes names `invocation` (Lambda's request id), when given, and
   * carries `keys` (e.g. the model, version or alias the request is about) besides this logger's own keys.
   */
  forRequest(invocation?: Invocation, keys?: LogAttributes): Logger;
}

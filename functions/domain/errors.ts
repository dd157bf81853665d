/**
 * Domain errors. Each carries the HTTP status and machine code of the error model (docs/ARCHITECTURE.md,
 * "Errors"), so handlers map them without knowing what went wrong underneath; an error that wraps another
 * keeps it as `cause` (logged, never answered). Anything that is not a MaasError is a 500 with a generic
 * message.
 */
import { LIMITS } from '../contract/limits';

export abstract class MaasError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
  constructor(message: string, options?: ErrorOptions) {
    const max = LIMITS.maxErrorMessageChars;
    super(message.length > max ? `${message.slice(0, max)}…` : message, options);
    this.name = new.target.name;
  }
}

export class BadRequestError extends MaasError {
  readonly status = 400;
  constructor(
    message: string,
    readonly code: string = 'BAD_REQUEST',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class NotFoundError extends MaasError {
  readonly status = 404;
  constructor(
    message: string,
    readonly code: string = 'NOT_FOUND',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class MethodNotAllowedError extends MaasError {
  readonly status = 405;
  readonly code = 'METHOD_NOT_ALLOWED';
  constructor(
    message: string,
    /** The methods the path takes: the answer's `Allow` header (HTTP requires it on a 405). */
    readonly allowed: readonly string[],
  ) {
    super(message);
  }
}

export class ConflictError extends MaasError {
  readonly status = 409;
  constructor(
    message: string,
    readonly code: string = 'CONFLICT',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class PreconditionFailedError extends MaasError {
  readonly status = 412;
  readonly code = 'PRECONDITION_FAILED';
}

export class PayloadTooLargeError extends MaasError {
  readonly status = 413;
  readonly code = 'PAYLOAD_TOO_LARGE';
}

/** The request body is in a content coding the server does not decode (`Content-Encoding`). */
export class UnsupportedMediaTypeError extends MaasError {
  readonly status = 415;
  readonly code = 'UNSUPPORTED_CONTENT_ENCODING';
}

/** The artifact is not a loadable ONNX model. */
export class UnprocessableModelError extends MaasError {
  readonly status = 422;
  readonly code = 'INVALID_MODEL';
}

/** A dependency (DynamoDB, S3) is unavailable; the caller should retry. */
export class UnavailableError extends MaasError {
  readonly status = 503;
  readonly code = 'UNAVAILABLE';
  constructor(
    message: string,
    readonly retryAfterSeconds = 1,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export const isMaasError = (e: unknown): e is MaasError => e instanceof MaasError;

/**
 * A stored artifact's bytes do not match the sha256 recorded at registration. A server-side integrity failure
 * the caller cannot fix or outwait: 500 with its own code, and no session is created from the bytes.
 */
export class ArtifactIntegrityError extends MaasError {
  readonly status = 500;
  readonly code = 'ARTIFACT_INTEGRITY';
}

/** What the handlers put on their log lines besides the message: the request's scope and errors. */
import { isVersionNumber } from '../domain/names';
import type { Invocation, LogAttributes } from '../ports/logger';

/** The keys of a line about an error: its message and name. */
export const describeError = (e: unknown): Record<string, unknown> =>
  e instanceof Error ? { error: e.message, errorName: e.name } : { error: String(e) };

/** The Lambda invocation of a handler's context argument, if it is one (the local queue passes a time budget). */
export function invocationOf(context: unknown): Invocation | undefined {
  return typeof (context as Partial<Invocation> | undefined)?.awsRequestId === 'string'
    ? (context as Invocation)
    : undefined;
}

const NO_KEYS: LogAttributes = Object.freeze({});

/**
 * The request-scope keys of a request about a model, from its path parameters: `model`, and `version` or `alias`
 * as `{version}`, `{alias}` or the inference routes' `{ref}` name them (nothing for a request without a ref: the
 * default alias is the predictor's choice).
 */
export function modelKeys(params: Readonly<Record<string, string | undefined>> | undefined): LogAttributes {
  const name = params?.name;
  if (!name) return NO_KEYS;
  const { ref, alias } = params;
  const version = params.version ?? (ref && isVersionNumber(ref) ? ref : undefined);
  const named = alias ?? (ref && version === undefined ? ref : undefined);
  return {
    model: name,
    ...(version ? { version: isVersionNumber(version) ? Number(version) : version } : {}),
    ...(named ? { alias: named } : {}),
  };
}

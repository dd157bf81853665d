/**
 * Loggers for tests: one that records every line with the request scope it was logged in, and one that drops
 * everything (for tests that do not look at the logs).
 */
import type { Invocation, LogAttributes, Logger } from '../../functions/ports/logger';

export interface RecordedLine {
  readonly level: 'INFO' | 'WARN' | 'ERROR';
  readonly message: string;
  /** The attributes passed with the line, if any. */
  readonly extra?: LogAttributes;
  /** The keys of the request the line was logged in. */
  readonly keys: LogAttributes;
  /** The invocation of that request, if it had one. */
  readonly invocation?: Invocation;
}

export interface RecordingLogger extends Logger {
  readonly lines: RecordedLine[];
}

/** A logger that records its lines, and those of every logger made from it, in one list. */
export function recordingLogger(): RecordingLogger {
  const lines: RecordedLine[] = [];
  const scoped = (keys: LogAttributes, invocation: Invocation | undefined): Logger => {
    const record = (level: RecordedLine['level']) => (message: string, extra?: LogAttributes) => {
      lines.push({
        level,
        message,
        ...(extra ? { extra } : {}),
        keys,
        ...(invocation ? { invocation } : {}),
      });
    };
    return {
      info: record('INFO'),
      warn: record('WARN'),
      error: record('ERROR'),
      forRequest: (next, more) => scoped({ ...keys, ...more }, next ?? invocation),
    };
  };
  return { lines, ...scoped({}, undefined) };
}

/** A logger that writes nothing. */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
  forRequest: () => silentLogger,
};

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
  /** The keys appended for the request the line was logged in. */
  readonly keys: LogAttributes;
  /** The invocation of that request, if it had one. */
  readonly invocation?: Invocation;
}

export interface RecordingLogger extends Logger {
  readonly lines: RecordedLine[];
}

export function recordingLogger(): RecordingLogger {
  const lines: RecordedLine[] = [];
  let keys: LogAttributes = {};
  let invocation: Invocation | undefined;
  const record = (level: RecordedLine['level']) => (message: string, extra?: LogAttributes) => {
    lines.push({ level, message, ...(extra ? { extra } : {}), keys, ...(invocation ? { invocation } : {}) });
  };
  return {
    lines,
    info: record('INFO'),
    warn: record('WARN'),
    error: record('ERROR'),
    startRequest(next) {
      keys = {};
      invocation = next;
    },
    appendKeys(more) {
      keys = { ...keys, ...more };
    },
  };
}

/** A logger that writes nothing. */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
  startRequest() {},
  appendKeys() {},
};

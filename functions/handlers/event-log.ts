/** Structured one-line JSON logs of the event Lambdas (CloudWatch reads them as they are). */
export interface EventLogger {
  info(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

export const eventConsoleLogger: EventLogger = {
  info(message, extra) {
    console.log(JSON.stringify({ level: 'INFO', message, ...extra }));
  },
  error(message, extra) {
    console.error(JSON.stringify({ level: 'ERROR', message, ...extra }));
  },
};

export const describeError = (e: unknown): Record<string, unknown> =>
  e instanceof Error ? { error: e.message, errorName: e.name } : { error: String(e) };

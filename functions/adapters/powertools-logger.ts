/**
 * The `Logger` port on the Powertools Logger: one JSON line per call, with Powertools' standard keys (`level`,
 * `message`, `timestamp`, `service`, `cold_start`, `function_request_id`, … from the Lambda context of the request)
 * and the keys of the request a line belongs to.
 *
 * Powertools is loaded when the first line is written, not at import: evaluated at INIT it adds about 9 ms of CPU
 * to the import of the predict bundle, left for later about 3 ms (parsed, not run), and a healthy predict function
 * writes no line at all. Lines written while it loads are queued and written in order, each with the keys and
 * request it was logged with; in a bundle the load takes a few microtasks, so they are out before the runtime can
 * ask for the next invocation. A composition root that would rather pay at INIT awaits `load()`.
 *
 * A request's keys and invocation belong to its own logger (`forRequest`) and go on each of its lines, never into
 * Powertools' shared state: one request's keys cannot reach the lines of another running at the same time (the
 * local server serves requests concurrently).
 */
import type { Logger as Powertools } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import type { Invocation, LogAttributes, Logger } from '../ports/logger';

type Level = 'info' | 'warn' | 'error';

export interface PowertoolsLoggerOptions {
  /** The `service` key of every line (e.g. the function: `maas-predict`). */
  readonly serviceName: string;
  /**
   * Lines below this level are dropped. @default Powertools' own: `POWERTOOLS_LOG_LEVEL`, else `INFO` (Lambda's
   * `AWS_LAMBDA_LOG_LEVEL` wins over either)
   */
  readonly logLevel?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'SILENT';
}

/** A line as it was logged: written once Powertools is loaded. */
interface Line {
  readonly level: Level;
  readonly message: string;
  readonly attributes: LogAttributes | undefined;
  readonly invocation: Invocation | undefined;
}

/** Where the lines of a function's loggers go: Powertools, loaded with the first line. */
class Output {
  readonly #options: PowertoolsLoggerOptions;
  #loading: Promise<void> | undefined;
  #loaded: typeof Powertools | undefined;
  /** Powertools did not load: lines are written as plain JSON. */
  #failed = false;
  readonly #queue: Line[] = [];
  /** The Powertools logger of the lines of an invocation. */
  #main: Powertools | undefined;
  /** The invocation whose context `#main` holds. */
  #applied: Invocation | undefined;
  /** The Powertools logger of lines without an invocation, once `#main` holds one (Powertools cannot drop it). */
  #bare: Powertools | undefined;
  /** The first invocation a request logger was made for: the cold start, if the sandbox started on demand. */
  #first: Invocation | undefined;

  constructor(options: PowertoolsLoggerOptions) {
    this.#options = options;
  }

  /** Notes an invocation when its request's logger is made (the first one is the cold start). */
  seen(invocation: Invocation | undefined): void {
    this.#first ??= invocation;
  }

  write(line: Line): void {
    if (this.#loaded || this.#failed) this.#emit(line);
    else {
      this.#queue.push(line);
      void this.load();
    }
  }

  load(): Promise<void> {
    this.#loading ??= import('@aws-lambda-powertools/logger').then(
      ({ Logger }) => {
        this.#loaded = Logger;
        for (const line of this.#queue.splice(0)) this.#emit(line);
      },
      (e: unknown) => {
        // Never lose a line: without Powertools, lines are written as plain JSON.
        this.#failed = true;
        console.error(
          JSON.stringify({ level: 'ERROR', message: 'the logger did not load', error: String(e) }),
        );
        for (const line of this.#queue.splice(0)) this.#emit(line);
      },
    );
    return this.#loading;
  }

  #emit({ level, message, attributes, invocation }: Line): void {
    if (this.#failed) {
      const request = invocation ? { function_request_id: invocation.awsRequestId } : {};
      console.error(JSON.stringify({ level: level.toUpperCase(), message, ...request, ...attributes }));
      return;
    }
    // Written at once after the context is set: lines of concurrent requests never see each other's context.
    const target = this.#target(invocation);
    if (attributes) target[level](message, attributes);
    else target[level](message);
  }

  /** The Powertools logger of a line, holding the context of its invocation. */
  #target(invocation: Invocation | undefined): Powertools {
    if (!invocation && this.#applied) {
      this.#bare ??= this.#create();
      return this.#bare;
    }
    this.#main ??= this.#create();
    const main = this.#main;
    if (invocation && invocation !== this.#applied) {
      main.addContext(invocation as Context);
      // Powertools reports a cold start with the first context it is given. Loaded after the first invocation, it
      // must not: the second context it is given reports none.
      if (!this.#applied && invocation !== this.#first) main.addContext(invocation as Context);
      this.#applied = invocation;
    }
    return main;
  }

  #create(): Powertools {
    const { serviceName, logLevel } = this.#options;
    return new (this.#loaded as typeof Powertools)({ serviceName, ...(logLevel ? { logLevel } : {}) });
  }
}

/** A logger writing to an `Output`, with the invocation and keys of its scope on every line. */
class ScopedLogger implements Logger {
  constructor(
    protected readonly output: Output,
    private readonly invocation: Invocation | undefined,
    private readonly keys: LogAttributes | undefined,
  ) {}

  info(message: string, attributes?: LogAttributes): void {
    this.#write('info', message, attributes);
  }

  warn(message: string, attributes?: LogAttributes): void {
    this.#write('warn', message, attributes);
  }

  error(message: string, attributes?: LogAttributes): void {
    this.#write('error', message, attributes);
  }

  forRequest(invocation?: Invocation, keys?: LogAttributes): Logger {
    this.output.seen(invocation);
    const merged = this.keys && keys ? { ...this.keys, ...keys } : (keys ?? this.keys);
    return new ScopedLogger(this.output, invocation ?? this.invocation, merged);
  }

  #write(level: Level, message: string, attributes: LogAttributes | undefined): void {
    const keys = this.keys;
    this.output.write({
      level,
      message,
      attributes: keys ? { ...keys, ...attributes } : attributes,
      invocation: this.invocation,
    });
  }
}

/** The logger of a function (one per process): lines outside any request; `forRequest` makes a request's. */
export class PowertoolsLogger extends ScopedLogger {
  constructor(options: PowertoolsLoggerOptions) {
    super(new Output(options), undefined, undefined);
  }

  /** Loads Powertools (once); resolves when every line logged so far is written. */
  load(): Promise<void> {
    return this.output.load();
  }
}

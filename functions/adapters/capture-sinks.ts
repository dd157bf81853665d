/**
 * Where capture records go (docs/ARCHITECTURE.md, "Observability").
 *
 * - In AWS, `StdoutCaptureSink`: each record is one JSON line on stdout. A subscription filter of the function's
 *   log group hands the lines to Kinesis Data Firehose, which buffers them and writes
 *   `capture/{model}/{version}/yyyy/mm/dd/hh/*` objects to the model bucket (infra/constructs/capture-delivery.ts).
 *   The inference makes no network call for capture and loads no client.
 * - Locally, `BufferedCaptureSink`: the lines are buffered per model, version and hour and written to the local
 *   bucket under the same keys, as Firehose would, every `flushIntervalMs` or `maxRecords` lines.
 */
import { randomUUID } from 'node:crypto';
import { CAPTURE_KEYS } from '../contract/observability';
import type { ArtifactStore } from '../ports/index';
import type { CaptureSink } from '../ports/telemetry';

/** One JSON line per record on stdout (or `output`). */
export class StdoutCaptureSink implements CaptureSink {
  readonly #output: (line: string) => void;

  constructor(output?: (line: string) => void) {
    this.#output = output ?? ((line) => process.stdout.write(line));
  }

  write(_model: string, _version: number, line: string): void {
    this.#output(`${line}\n`);
  }
}

export interface BufferedCaptureSinkOptions {
  readonly store: Pick<ArtifactStore, 'putObject'>;
  /** @default 1000 ms */
  readonly flushIntervalMs?: number;
  /** A buffer of this many lines is written at once. @default 500 */
  readonly maxRecords?: number;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** Receives a failed write (its lines are dropped). */
  readonly onError?: (e: unknown) => void;
}

/** Capture lines buffered per `capture/{model}/{version}/yyyy/mm/dd/hh/` and written as JSONL objects. */
export class BufferedCaptureSink implements CaptureSink {
  readonly #opts: BufferedCaptureSinkOptions;
  readonly #buffers = new Map<string, string[]>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(opts: BufferedCaptureSinkOptions) {
    this.#opts = opts;
  }

  write(model: string, version: number, line: string): void {
    const prefix = CAPTURE_KEYS.captureHour(model, version, (this.#opts.now ?? (() => new Date()))());
    let lines = this.#buffers.get(prefix);
    if (!lines) {
      lines = [];
      this.#buffers.set(prefix, lines);
    }
    lines.push(line);
    if (lines.length >= (this.#opts.maxRecords ?? 500)) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), this.#opts.flushIntervalMs ?? 1000).unref();
  }

  /** Writes every buffered line now; resolves when they (and earlier writes) are stored. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batches = [...this.#buffers];
    this.#buffers.clear();
    const written = Promise.all(
      batches.map(async ([prefix, lines]) => {
        const key = `${prefix}${Date.now()}-${randomUUID()}.jsonl`;
        try {
          await this.#opts.store.putObject(key, Buffer.from(`${lines.join('\n')}\n`), 'application/x-ndjson');
        } catch (e) {
          this.#opts.onError?.(e);
        }
      }),
    ).then(() => undefined);
    this.#writing = this.#writing.then(() => written);
    return this.#writing;
  }
}

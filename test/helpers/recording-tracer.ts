/** A `Tracer` that records its spans (name, start order, outcome) and annotations, for tests. */
import type { TraceAnnotations, Tracer } from '../../functions/ports/telemetry';

export interface RecordedSpan {
  readonly name: string;
  /** Names of the spans open when this one started (its parents, outermost first). */
  readonly parents: readonly string[];
  failed?: boolean;
}

export class RecordingTracer implements Tracer {
  readonly enabled = true;
  readonly spans: RecordedSpan[] = [];
  readonly annotations: TraceAnnotations[] = [];
  readonly #open: string[] = [];

  async span<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const span: RecordedSpan = { name, parents: [...this.#open] };
    this.spans.push(span);
    this.#open.push(name);
    try {
      return await fn();
    } catch (e) {
      span.failed = true;
      throw e;
    } finally {
      this.#open.splice(this.#open.lastIndexOf(name), 1);
    }
  }

  annotate(annotations: TraceAnnotations): void {
    this.annotations.push(annotations);
  }

  /** Span names in start order, then forgets them. */
  take(): string[] {
    const names = this.spans.map((s) => s.name);
    this.spans.length = 0;
    this.annotations.length = 0;
    return names;
  }
}

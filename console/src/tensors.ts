/** Nested rows ⇄ flat tensors for the Try it page (no DOM). */

/** A nested array (or scalar) flattened in row-major order, with its shape; throws when it is ragged. */
export function flatten(value: unknown): { shape: number[]; data: unknown[] } {
  const shape: number[] = [];
  let probe: unknown = value;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0];
  }
  const data: unknown[] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw new Error('the rows are ragged: every row needs as many values');
      data.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new Error('the rows are ragged: every row needs as many values');
    }
    for (const x of v) walk(x, depth + 1);
  };
  walk(value, 0);
  return { shape, data };
}

/** Flat `data` of `shape` as nested rows (a scalar for an empty shape). */
export function nest(data: readonly unknown[], shape: readonly number[]): unknown {
  if (shape.length === 0) return data[0];
  const [first = 0, ...rest] = shape;
  const size = rest.reduce((a, b) => a * b, 1);
  const out: unknown[] = [];
  for (let i = 0; i < first; i++) out.push(nest(data.slice(i * size, (i + 1) * size), rest));
  return out;
}

/** Whether an OIP datatype holds numbers (BOOL and BYTES do not). */
export const isNumeric = (datatype: string): boolean => /^(U?INT\d+|FP\d+)$/.test(datatype);

/** The column count of a one-row-per-line input (`[-1, k]` or `[n, k]` with a small fixed k); else undefined. */
export function rowWidth(shape: readonly number[]): number | undefined {
  if (shape.length !== 2) return undefined;
  const k = shape[1] as number;
  return k > 0 && k <= 32 ? k : undefined;
}

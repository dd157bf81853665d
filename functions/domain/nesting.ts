/**
 * How deep a parsed JSON value nests. `JSON.parse` reads any depth, but whatever recurses over the value later
 * (`JSON.stringify`, a validator) overflows the stack on a few thousand levels: a request that nests deeper than
 * it can mean is refused before that, with a 400. Pure: no I/O.
 */

/**
 * Whether `value` nests arrays and plain objects more than `max` levels deep (`[]` and `{}` are one level, a
 * scalar none). Walks with a stack of its own, so any depth is measured without recursion; typed arrays (the
 * body parser's numeric `data`) are leaves.
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  // Most values (a request's flat `parameters`) hold no container: told without a walk or an allocation.
  if (max >= 1 && isPlainObject(value)) {
    let flat = true;
    for (const key in value) {
      const v = value[key];
      if (typeof v === 'object' && v !== null) {
        flat = false;
        break;
      }
    }
    if (flat) return false;
  }
  const pending: [unknown, number][] = [[value, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [v, depth] = next;
    const children = Array.isArray(v) ? v : isPlainObject(v) ? Object.values(v) : undefined;
    if (children === undefined) continue;
    if (depth + 1 > max) return true;
    for (const child of children)
      if (typeof child === 'object' && child !== null) pending.push([child, depth + 1]);
  }
  return false;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

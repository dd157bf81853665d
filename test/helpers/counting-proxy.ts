/** A stand-in for a port that counts the calls of its methods (e.g. a repository's reads on a warm path). */

/** `proxy` answers as `target` does; `calls()` is how many of its methods were called so far. */
export interface CountedCalls<T> {
  readonly proxy: T;
  calls(): number;
}

/** Wraps `target` so that every call of one of its methods is counted (other properties read as they are). */
export function countCalls<T extends object>(target: T): CountedCalls<T> {
  let calls = 0;
  const proxy = new Proxy(target, {
    get(t, prop, receiver) {
      const value = Reflect.get(t, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls++;
        return value.apply(t, args);
      };
    },
  });
  return { proxy, calls: () => calls };
}

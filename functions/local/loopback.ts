/**
 * The names of this machine's loopback interface, as the local servers (`maas dev`, `maas console`) and the CLI
 * compare them: a page on any other name that reaches a local server got there by DNS rebinding.
 */

/** Host names of the loopback interface (`URL.hostname` form: IPv6 in brackets). */
export const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Whether a `Host` header names a loopback name at `port`. */
export function isLoopbackHost(host: string | undefined, port: number): boolean {
  if (!host) return false;
  const h = host.toLowerCase();
  for (const name of LOOPBACK_NAMES) if (h === `${name}:${port}`) return true;
  return false;
}

/** Whether an `Origin` header is a page served by this server (`http://` a loopback name at `port`). */
export function isLoopbackOrigin(origin: string, port: number): boolean {
  return origin.toLowerCase().startsWith('http://') && isLoopbackHost(origin.slice('http://'.length), port);
}

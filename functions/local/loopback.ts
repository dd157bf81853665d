/**
 * The names of this machine's loopback interface, as the local servers (`maas dev`, `maas console`) and the CLI
 * compare them: a page on any other name that reaches a local server got there by DNS rebinding.
 */

/** Host names of the loopback interface (`URL.hostname` form: IPv6 in brackets). */
export const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** A `Host` header's port (1 to 5 digits), if any: a forwarded port, or 80 left out, is still this machine. */
const PORT = /:\d{1,5}$/;

/** Whether a `Host` header names this machine's loopback interface (`LOOPBACK_NAMES`), whatever its port. */
export function isLoopbackName(host: string | undefined): boolean {
  return host !== undefined && LOOPBACK_NAMES.has(host.toLowerCase().replace(PORT, ''));
}

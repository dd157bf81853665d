/**
 * The names of this machine's loopback interface, as the local servers (`maas dev`, `maas console`) and the CLI
 * compare them: a page on any other name that reaches a local server got there by DNS rebinding.
 */

/** Host names of the loopback interface (`URL.hostname` form: IPv6 in brackets). */
export const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** A `Host` header: a loopback name, and a port or none (a forwarded port, or 80, is still this machine). */
const LOOPBACK_HOST = /^(?:127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?$/i;

/** Whether a `Host` header names this machine's loopback interface, whatever its port. */
export function isLoopbackName(host: string | undefined): boolean {
  return host !== undefined && LOOPBACK_HOST.test(host);
}

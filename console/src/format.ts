/** Plain formatting helpers of the console (no DOM). */
import type { AliasRouting } from '../../functions/domain/types';

/** `312` → `312 B`, `1536` → `1.5 KiB`. */
export function bytes(n: number): string {
  if (!Number.isFinite(n)) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** An ISO time as `2026-12-02 01:18:09Z` (UTC, seconds). */
export function time(iso: string | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** How far an ISO time is from now, roughly (`just now`, `5 min ago`, `3 h ago`, `2 d ago`, `in 4 min`). */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (!Number.isFinite(s)) return '';
  const a = Math.abs(s);
  if (a < 45) return 'just now';
  const span =
    a < 3600
      ? `${Math.round(a / 60)} min`
      : a < 86_400
        ? `${Math.round(a / 3600)} h`
        : `${Math.round(a / 86_400)} d`;
  return s < 0 ? `in ${span}` : `${span} ago`;
}

/** A traffic split in words: `canary v3 @ 10%, shadow v4 @ 20%`. */
export function split(routing: AliasRouting | undefined): string {
  if (!routing) return '';
  const parts: string[] = [];
  if (routing.canary) parts.push(`canary v${routing.canary.version} @ ${routing.canary.weight}%`);
  if (routing.shadow) parts.push(`shadow v${routing.shadow.version} @ ${routing.shadow.percent}%`);
  if (routing.keyParameter) parts.push(`key ${routing.keyParameter}`);
  return parts.join(', ');
}

/** A tensor's type and shape: `FP32[-1,4]`. */
export const tensorType = (t: { datatype: string; shape: readonly number[] }): string =>
  `${t.datatype}[${t.shape.join(',')}]`;

/** Quotes a string for a POSIX shell (single quotes). */
export const shellQuote = (s: string): string =>
  /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;

/** A number as the page shows it: integers as they are, others to 4 significant digits (tiny ones in e-notation). */
export function num(v: unknown): string {
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

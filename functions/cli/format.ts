/**
 * Human output of the `maas` CLI: compact tables and one-line summaries (`--json` bypasses all of it). Every text
 * from the service reaches the terminal through `printable` (or, as JSON, `jsonText`).
 */
import { type DivergenceBounds, type DivergenceCounters, ZERO_DIVERGENCE } from '../domain/rollout';

/**
 * What the terminal must not receive raw: the C0 controls (U+0000-U+001F, newline and tab included), DEL, the C1
 * controls (U+0080-U+009F) and the line and paragraph separators (U+2028, U+2029); and the backslash, which
 * starts their escapes.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what it finds
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\\]/g;

/** The same characters less the backslash and the C0 controls, which JSON.stringify escapes itself. */
const UNESCAPED_BY_JSON = /[\u007f-\u009f\u2028\u2029]/g;

/** The short escapes of JSON. */
const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  '\b': '\\b',
  '\t': '\\t',
  '\n': '\\n',
  '\f': '\\f',
  '\r': '\\r',
};

const escapeChar = (c: string): string =>
  SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * Text from the service (a name, a description, a reason, an inference id, an error message…) as the CLI prints
 * it: each control character written as its JSON escape (`\n`, `\t`, `\u001b`, `\u009b`…) and a backslash
 * doubled, so that stored text can neither drive the terminal (retitle it, move the cursor, erase or fake lines)
 * nor break a table row, and `\u001b` on screen always means an ESC (the six characters are shown `\\u001b`).
 * `--json` prints the exact text instead (as `jsonText` escapes it).
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escapeChar);
}

/**
 * `JSON.stringify(value, null, space)` with DEL, the C1 controls and U+2028/U+2029 escaped too (JSON.stringify
 * escapes the C0 controls only): the same JSON, which parses back to the same strings, and nothing in it that
 * drives a terminal.
 */
export function jsonText(value: unknown, space?: number): string {
  return String(JSON.stringify(value, null, space)).replace(UNESCAPED_BY_JSON, escapeChar);
}

/**
 * Renders rows under a header as left-aligned columns separated by two spaces; every cell goes through
 * `printable` (a newline or a tab in a cell would break its row).
 */
export function table(header: readonly string[], cells: readonly (readonly string[])[]): string {
  const rows = cells.map((r) => r.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

interface RoutingJson {
  canary?: { version: number; weight: number };
  shadow?: { version: number; percent: number };
  keyParameter?: string;
}

interface ModelJson {
  name: string;
  latestVersion: number;
  aliases?: Record<string, number>;
  /** The aliases' traffic splits (alias → split). */
  splits?: Record<string, RoutingJson>;
  description?: string;
  updatedAt?: string;
}

interface VersionJson {
  name: string;
  version: number;
  status: string;
  sha256?: string;
  sizeBytes?: number;
  description?: string;
  createdAt?: string;
  failureReason?: string;
  signature?: { inputs: TensorJson[]; outputs: TensorJson[] };
  labels?: string[];
  postprocess?: Record<string, unknown>;
}

interface TensorJson {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
}

/** The parts of a split: `canary 3 @ 10%`, `shadow 4 @ 20%` (none without a split). */
const splitParts = (r: RoutingJson | undefined): string[] => [
  ...(r?.canary ? [`canary ${r.canary.version} @ ${r.canary.weight}%`] : []),
  ...(r?.shadow ? [`shadow ${r.shadow.version} @ ${r.shadow.percent}%`] : []),
];

/**
 * `prod=1 (canary 3 @ 10%, shadow 3 @ 20%) staging=2`: each alias with its version, and its canary and shadow when
 * it has them.
 */
const aliasList = (aliases: Record<string, number> | undefined, splits?: Record<string, RoutingJson>) =>
  Object.entries(aliases ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([a, v]) => {
      const parts = splitParts(splits?.[a]);
      return parts.length > 0 ? `${a}=${v} (${parts.join(', ')})` : `${a}=${v}`;
    })
    .join(' ') || '-';

const size = (bytes: number | undefined): string => {
  if (bytes === undefined) return '-';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
};

const when = (iso: string | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

/** The line that continues a listing (its token printable: it is the service's). */
export const next = (token: unknown) =>
  typeof token === 'string' ? `\n(more: --next-token ${printable(token)})` : '';

export function formatModels(answer: { models: ModelJson[]; nextToken?: string }): string {
  if (answer.models.length === 0)
    return 'no models yet: register one with `maas register <file.onnx> --name <name>`';
  return (
    table(
      ['NAME', 'LATEST', 'ALIASES', 'UPDATED', 'DESCRIPTION'],
      answer.models.map((m) => [
        m.name,
        String(m.latestVersion),
        aliasList(m.aliases, m.splits),
        when(m.updatedAt),
        m.description ?? '',
      ]),
    ) + next(answer.nextToken)
  );
}

const signature = (s: VersionJson['signature']) =>
  s
    ? `${s.inputs.map((t) => `${t.name}:${t.datatype}[${t.shape.join(',')}]`).join(' ')} -> ${s.outputs
        .map((t) => `${t.name}:${t.datatype}[${t.shape.join(',')}]`)
        .join(' ')}`
    : '-';

export function formatVersions(answer: { versions: VersionJson[]; nextToken?: string }): string {
  if (answer.versions.length === 0) return 'no versions';
  return (
    table(
      ['VERSION', 'STATUS', 'SHA256', 'SIZE', 'CREATED', 'DESCRIPTION'],
      answer.versions.map((v) => [
        String(v.version),
        v.status,
        v.sha256 ? v.sha256.slice(0, 12) : '-',
        size(v.sizeBytes),
        when(v.createdAt),
        v.failureReason ? `failed: ${v.failureReason}` : (v.description ?? ''),
      ]),
    ) + next(answer.nextToken)
  );
}

export function formatRegistered(v: VersionJson): string {
  const lines = [
    `registered ${v.name} version ${v.version} (${v.status})`,
    `  sha256       ${v.sha256 ?? '-'}`,
    `  size         ${size(v.sizeBytes)}`,
    `  signature    ${signature(v.signature)}`,
    ...(v.labels
      ? [
          `  labels       ${v.labels.length} (${v.labels.slice(0, 5).join(', ')}${v.labels.length > 5 ? ', …' : ''})`,
        ]
      : []),
  ].map(printable);
  if (v.postprocess) lines.push(`  postprocess  ${jsonText(v.postprocess)}`);
  return lines.join('\n');
}

export function formatMoveResult(
  name: string,
  r: { alias: string; version: number | null; previousVersion: number | null; revision?: number },
): string {
  const from =
    r.previousVersion === null || r.previousVersion === undefined ? 'unset' : `version ${r.previousVersion}`;
  const to = r.version === null ? 'unset' : `version ${r.version}`;
  return printable(
    `${name}@${r.alias}: ${from} -> ${to}${r.revision !== undefined ? ` (revision ${r.revision})` : ''}`,
  );
}

/** `iris@prod: capture 12.5% of requests (input, output)`, `iris version 2: capture off`. */
export function formatCaptureConfig(
  name: string,
  a: {
    alias?: string;
    version?: number;
    capture?: { samplePercent: number; input: boolean; output: boolean };
  },
): string {
  const who = a.alias !== undefined ? `${name}@${a.alias}` : `${name} version ${a.version ?? '?'}`;
  const c = a.capture;
  if (!c) return printable(`${who}: capture off`);
  const halves = [c.input ? 'input' : '', c.output ? 'output' : ''].filter(Boolean).join(', ');
  return printable(`${who}: capture ${c.samplePercent}% of requests (${halves})`);
}

/**
 * `iris@prod: version 1, canary 3 @ 10% (key parameter 'user') (revision 2)`, `iris@prod: version 1, canary 3 @
 * 10%, shadow 3 @ 20% (revision 3)`, `iris@prod: version 1, no canary, shadow 4 @ 20% (revision 4)`,
 * `iris@prod: version 1, no canary (revision 5)`.
 */
export function formatRouting(
  name: string,
  a: { alias: string; version: number; revision?: number; routing?: RoutingJson },
): string {
  const key = a.routing?.keyParameter !== undefined ? ` (key parameter '${a.routing.keyParameter}')` : '';
  const split = [...(a.routing?.canary ? [] : ['no canary']), ...splitParts(a.routing)].join(', ');
  const revision = a.revision !== undefined ? ` (revision ${a.revision})` : '';
  return printable(`${name}@${a.alias}: version ${a.version}, ${split}${key}${revision}`);
}

export function formatHistory(answer: {
  history: {
    alias: string;
    version: number | null;
    previousVersion: number | null;
    at: string;
    actor: string;
    reason?: string;
  }[];
  nextToken?: string;
}): string {
  if (answer.history.length === 0)
    return answer.nextToken ? `no moves on this page${next(answer.nextToken)}` : 'no moves yet';
  return (
    table(
      ['AT', 'ALIAS', 'FROM', 'TO', 'ACTOR', 'REASON'],
      answer.history.map((h) => [
        when(h.at),
        h.alias,
        h.previousVersion === null ? '-' : String(h.previousVersion),
        h.version === null ? '-' : String(h.version),
        h.actor,
        h.reason ?? '',
      ]),
    ) + next(answer.nextToken)
  );
}

const round = (v: unknown): unknown =>
  typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(4)) : v;

/** Nests flat row-major data by shape for display. */
export function nest(data: readonly unknown[], shape: readonly number[]): unknown {
  if (shape.length <= 1) return data.map(round);
  const [, ...rest] = shape;
  const stride = rest.reduce((a, b) => a * b, 1);
  const out: unknown[] = [];
  for (let i = 0; i < data.length; i += stride) out.push(nest(data.slice(i, i + stride), rest));
  return out;
}

/**
 * An answer for people: the model and version that answered, its inference id (what `maas feedback --id` joins
 * on), then each output.
 */
export function formatPrediction(answer: {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: TensorJson[];
}): string {
  const id = answer.id !== undefined ? `, inference id ${answer.id}` : '';
  const lines = [printable(`${answer.model_name} version ${answer.model_version}${id}`)];
  for (const o of answer.outputs) {
    lines.push(
      `${printable(`  ${o.name} ${o.datatype}[${o.shape.join(',')}]`)}  ${jsonText(nest(o.data ?? [], o.shape))}`,
    );
  }
  return lines.join('\n');
}

/** A rollout as the registry API answers it (GET/PUT `…/aliases/{alias}/rollout`). */
export interface RolloutJson {
  name: string;
  alias: string;
  id: string;
  version: number;
  fromVersion: number;
  status: string;
  /** 0-based index of the current step. */
  step: number;
  steps: { weight: number; bakeSeconds: number }[];
  alarms?: string[];
  maxDivergence?: DivergenceBounds;
  keyParameter?: string;
  /** The last step has baked, but the rollout waits for `minSamples` compared rows before it promotes. */
  awaitingSamples?: boolean;
  stepStartedAt?: string;
  startedAt?: string;
  updatedAt?: string;
  actor?: string;
  revision?: number;
  endedReason?: string;
  endedAt?: string;
  /** When a paused rollout was paused. */
  pausedAt?: string;
  divergence?: DivergenceCounters;
  /** The canary weight of the current step. */
  weight?: number;
  /** When the current step's bake ends (running rollouts): the next step, or the promotion after the last. */
  nextStepAt?: string;
}

/** `90s`, `5m`, `1h`, `1h30m`, `0s`. */
export function duration(seconds: number): string {
  if (seconds === 0) return '0s';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`;
}

const ACTIVE_ROLLOUT = new Set(['running', 'paused']);

/** A share as a percentage without float noise: 0.995 -> `99.5%`. */
const pct = (fraction: number) => `${Number((fraction * 100).toPrecision(4))}%`;

/**
 * A rollout in a few lines: its status and versions, its steps with the current one marked, the canary weight and
 * when the next step is due, the alarms it watches, its divergence counters against its bounds, how it ended.
 *
 * ```
 * iris@prod: rollout 3f2a9c1e running, version 1 -> 3 (revision 3)
 *   steps       10% for 5m
 *             > 50% for 10m
 *               100%
 *   weight      50% (step 2 of 3), next step at 2026-12-01 06:40:00Z
 *   alarms      Maas-iris@prod-error-rate
 *   divergence  1200 requests, 3400 rows, agreement 99.6% (min 99%), 0 over max abs 0.5, 2 over max KL 0.1, 0 shadow errors (mirroring 10% of stable)
 *   started     2026-12-01 06:25:00Z by local:dev
 * ```
 */
export function formatRollout(r: RolloutJson): string {
  const active = ACTIVE_ROLLOUT.has(r.status);
  const lines = [
    `${r.name}@${r.alias}: rollout ${r.id.slice(0, 8)} ${r.status}, version ${r.fromVersion} -> ${r.version}${
      r.revision !== undefined ? ` (revision ${r.revision})` : ''
    }`,
  ];
  r.steps.forEach((s, i) => {
    const marker = active && i === r.step ? '>' : ' ';
    const bake = s.bakeSeconds > 0 ? ` for ${duration(s.bakeSeconds)}` : '';
    lines.push(`${i === 0 ? '  steps     ' : ' '.repeat(12)}${marker} ${s.weight}%${bake}`);
  });
  if (active) {
    const weight = r.weight ?? r.steps[r.step]?.weight;
    const last = r.step === r.steps.length - 1;
    const next =
      r.status === 'paused'
        ? `, paused${r.pausedAt ? ` since ${when(r.pausedAt)}` : ''}`
        : r.awaitingSamples
          ? `, ${last ? 'promotion' : 'next step'} once ${r.maxDivergence?.minSamples ?? 100} rows were compared`
          : r.nextStepAt
            ? `, ${last ? 'promotion' : 'next step'} at ${when(r.nextStepAt)}`
            : '';
    lines.push(`  weight      ${weight ?? '?'}% (step ${r.step + 1} of ${r.steps.length})${next}`);
  }
  if (r.keyParameter !== undefined) lines.push(`  key         parameter '${r.keyParameter}'`);
  lines.push(`  alarms      ${r.alarms && r.alarms.length > 0 ? r.alarms.join(', ') : '-'}`);
  if (r.maxDivergence) {
    const b = r.maxDivergence;
    const d = r.divergence ?? ZERO_DIVERGENCE;
    const parts = [`${d.requests} requests`, `${d.rows} rows`];
    if (b.minArgmaxAgreement !== undefined) {
      const agreement = d.rows > 0 ? pct(d.agreeingRows / d.rows) : '-';
      parts.push(
        `agreement ${agreement} (min ${pct(b.minArgmaxAgreement)}, judged from ${b.minSamples ?? 100} rows)`,
      );
    }
    if (b.maxAbsDiff !== undefined) parts.push(`${d.overMaxAbs} over max abs ${b.maxAbsDiff}`);
    if (b.maxKlDivergence !== undefined) parts.push(`${d.overKl} over max KL ${b.maxKlDivergence}`);
    parts.push(`${d.shadowErrors} shadow errors`);
    lines.push(`  divergence  ${parts.join(', ')} (mirroring ${b.shadowPercent ?? 10}% of stable)`);
  }
  lines.push(`  started     ${when(r.startedAt)}${r.actor ? ` by ${r.actor}` : ''}`);
  if (!active) {
    lines.push(`  ended       ${when(r.endedAt ?? r.updatedAt)}${r.endedReason ? `: ${r.endedReason}` : ''}`);
  }
  return lines.map(printable).join('\n');
}

/** `alarm iris-errors is ALARM; rolled back: iris@prod`, `alarm iris-errors is OK`. */
export function formatAlarm(a: { alarm: string; state: string; rolledBack?: unknown[] }): string {
  const rolledBack = (a.rolledBack ?? []).map((r) => {
    if (typeof r === 'string') return r;
    const o = r as { name?: string; alias?: string; id?: string };
    return `${o.name ?? '?'}@${o.alias ?? '?'}${o.id ? ` (rollout ${o.id.slice(0, 8)})` : ''}`;
  });
  return printable(
    `alarm ${a.alarm} is ${a.state}${rolledBack.length > 0 ? `; rolled back: ${rolledBack.join(', ')}` : ''}`,
  );
}

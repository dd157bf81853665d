/** Human output of the `maas` CLI: compact tables and one-line summaries (`--json` bypasses all of it). */

/** Renders rows under a header as left-aligned columns separated by two spaces. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

interface RoutingJson {
  canary?: { version: number; weight: number };
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

/** `prod=1 (canary 3 @ 10%) staging=2`: each alias with its version, and its canary when it has one. */
const aliasList = (aliases: Record<string, number> | undefined, splits?: Record<string, RoutingJson>) =>
  Object.entries(aliases ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([a, v]) => {
      const canary = splits?.[a]?.canary;
      return canary ? `${a}=${v} (canary ${canary.version} @ ${canary.weight}%)` : `${a}=${v}`;
    })
    .join(' ') || '-';

const size = (bytes: number | undefined): string => {
  if (bytes === undefined) return '-';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
};

const when = (iso: string | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

const next = (token: unknown) => (typeof token === 'string' ? `\n(more: --next-token ${token})` : '');

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
  return [
    `registered ${v.name} version ${v.version} (${v.status})`,
    `  sha256       ${v.sha256 ?? '-'}`,
    `  size         ${size(v.sizeBytes)}`,
    `  signature    ${signature(v.signature)}`,
    ...(v.labels
      ? [
          `  labels       ${v.labels.length} (${v.labels.slice(0, 5).join(', ')}${v.labels.length > 5 ? ', …' : ''})`,
        ]
      : []),
    ...(v.postprocess ? [`  postprocess  ${JSON.stringify(v.postprocess)}`] : []),
  ].join('\n');
}

export function formatMoveResult(
  name: string,
  r: { alias: string; version: number | null; previousVersion: number | null; revision?: number },
): string {
  const from =
    r.previousVersion === null || r.previousVersion === undefined ? 'unset' : `version ${r.previousVersion}`;
  const to = r.version === null ? 'unset' : `version ${r.version}`;
  return `${name}@${r.alias}: ${from} -> ${to}${r.revision !== undefined ? ` (revision ${r.revision})` : ''}`;
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
  if (!c) return `${who}: capture off`;
  const halves = [c.input ? 'input' : '', c.output ? 'output' : ''].filter(Boolean).join(', ');
  return `${who}: capture ${c.samplePercent}% of requests (${halves})`;
}

/**
 * `iris@prod: version 1, canary 3 @ 10% (key parameter 'user') (revision 2)`, `iris@prod: version 1, no canary
 * (revision 3)`.
 */
export function formatRouting(
  name: string,
  a: { alias: string; version: number; revision?: number; routing?: RoutingJson },
): string {
  const canary = a.routing?.canary;
  const key = a.routing?.keyParameter !== undefined ? ` (key parameter '${a.routing.keyParameter}')` : '';
  const split = canary ? `canary ${canary.version} @ ${canary.weight}%` : 'no canary';
  const revision = a.revision !== undefined ? ` (revision ${a.revision})` : '';
  return `${name}@${a.alias}: version ${a.version}, ${split}${key}${revision}`;
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
}): string {
  if (answer.history.length === 0) return 'no moves yet';
  return table(
    ['AT', 'ALIAS', 'FROM', 'TO', 'ACTOR', 'REASON'],
    answer.history.map((h) => [
      when(h.at),
      h.alias,
      h.previousVersion === null ? '-' : String(h.previousVersion),
      h.version === null ? '-' : String(h.version),
      h.actor,
      h.reason ?? '',
    ]),
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

export function formatPrediction(answer: {
  model_name: string;
  model_version: string;
  outputs: TensorJson[];
}): string {
  const lines = [`${answer.model_name} version ${answer.model_version}`];
  for (const o of answer.outputs) {
    lines.push(
      `  ${o.name} ${o.datatype}[${o.shape.join(',')}]  ${JSON.stringify(nest(o.data ?? [], o.shape))}`,
    );
  }
  return lines.join('\n');
}

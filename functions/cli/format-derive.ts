/** Human renderings of derived versions: `maas derive`'s outcome and `maas versions` with the lineage column. */
import { describeTransform, type Evaluation, type TransformSpec } from '../domain/derive';
import { next, printable, table } from './format';

/** A version as the registry API answers it, with its lineage (what these renderings read of it). */
export interface DerivedVersionJson {
  readonly name: string;
  readonly version: number;
  readonly status: string;
  readonly sha256?: string;
  readonly sizeBytes?: number;
  readonly createdAt?: string;
  readonly description?: string;
  readonly failureReason?: string;
  readonly derivedFrom?: number;
  readonly transforms?: readonly TransformSpec[];
  readonly evaluation?: Evaluation;
}

/** As the registry listings render sizes and times (functions/cli/format.ts). */
const bytes = (n: number | undefined): string => {
  if (n === undefined) return '-';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
};
const when = (iso: string | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

const figure = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(4));

/**
 * Where a version comes from: `v1: quantize int8, optimize basic`; a registered one with its own pre-processing
 * `preprocess color, x`; empty for a plain registered one.
 */
export function lineage(v: Pick<DerivedVersionJson, 'derivedFrom' | 'transforms'>): string {
  const transforms = (v.transforms ?? []).map(describeTransform).join(', ');
  if (v.derivedFrom === undefined) return transforms;
  return `v${v.derivedFrom}: ${transforms}`;
}

/** The lines of an evaluation: the verdict with its agreement, then one line per output. */
export function formatEvaluation(e: Evaluation): string[] {
  const t = e.thresholds;
  const excluded =
    e.source === 'generated'
      ? `, ${e.nearTiesExcluded} near-${e.nearTiesExcluded === 1 ? 'tie' : 'ties'} left out`
      : '';
  return [
    `  gate         ${e.passed ? 'passed' : 'FAILED'}: argmax agreement ${figure(e.argmaxAgreement)} (min ${t.minAgreement}) on ${e.rows} ${e.source} rows${excluded}`,
    ...e.perOutput.map(
      (o) =>
        `  output       ${o.name}: max abs diff ${figure(o.maxAbsDiff)}, max rel diff ${figure(o.maxRelDiff)}${o.argmaxAgreement !== undefined ? `, agreement ${figure(o.argmaxAgreement)}` : ''}`,
    ),
  ];
}

/** `maas derive`'s outcome: the version, its lineage, artifact and gate. */
export function formatDerived(v: DerivedVersionJson): string {
  return [
    `derived ${v.name} version ${v.version} from version ${v.derivedFrom ?? '?'} (${v.status})`,
    `  transforms   ${(v.transforms ?? []).map(describeTransform).join(', ')}`,
    ...(v.sha256 ? [`  sha256       ${v.sha256}`, `  size         ${bytes(v.sizeBytes)}`] : []),
    ...(v.evaluation ? formatEvaluation(v.evaluation) : []),
    ...(v.failureReason ? [`  failed       ${v.failureReason}`] : []),
  ]
    .map(printable)
    .join('\n');
}

/** `maas versions`: the registry's columns with where each version comes from (`FROM`). */
export function formatVersionsWithLineage(answer: {
  versions: DerivedVersionJson[];
  nextToken?: string;
}): string {
  if (answer.versions.length === 0) return 'no versions';
  return (
    table(
      ['VERSION', 'STATUS', 'SHA256', 'SIZE', 'CREATED', 'FROM', 'DESCRIPTION'],
      answer.versions.map((v) => [
        String(v.version),
        v.status,
        v.sha256 ? v.sha256.slice(0, 12) : '-',
        bytes(v.sizeBytes),
        when(v.createdAt),
        lineage(v) || '-',
        v.failureReason ? `failed: ${v.failureReason}` : (v.description ?? ''),
      ]),
    ) + next(answer.nextToken)
  );
}

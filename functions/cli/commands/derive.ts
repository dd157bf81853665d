/**
 * `maas derive <model> <version>`: derives the next version from a READY one by transforms (`--quantize int8`,
 * `--optimize basic`, `--preprocess file.json`), behind the accuracy gate; a validation sample (`--sample`, a JSONL
 * of OIP requests) is uploaded first. The version starts PENDING; with `--wait` the command waits for its outcome
 * and prints the gate's figures (exit 1 when it is FAILED).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DERIVE_DEFAULTS, DERIVE_LIMITS, type DeriveBody, type TransformSpec } from '../../domain/derive';
import { apiCall, type MaasClient, uploadToPresignedUrl, waitWhilePending } from '../client';
import { type CliContext, EXIT, UsageError } from '../context';
import { printable } from '../format';
import { type DerivedVersionJson, formatDerived } from '../format-derive';
import { decimalNumber, nonNegativeInt, readBytes } from '../input';

interface DeriveOptions {
  readonly quantize?: string;
  readonly perChannel?: boolean;
  /** `--reduce-range` / `--no-reduce-range`; undefined: the service's default for its architecture. */
  readonly reduceRange?: boolean;
  readonly optimize?: string;
  readonly preprocess?: string;
  readonly sample?: string;
  readonly minAgreement?: number;
  readonly rows?: number;
  readonly description?: string;
  readonly wait?: boolean;
  /** Seconds to wait for the outcome (with `wait` only). */
  readonly timeout?: number;
}

/** How long `--wait` waits without `--timeout` (seconds). */
export const DEFAULT_WAIT_SECONDS = 600;

/** An option parser for a share from 0 to 1. */
const share = (name: string) => (value: string) => {
  const n = decimalNumber(value);
  if (n === undefined || n > 1) {
    throw new UsageError(`${name} must be a number from 0 to 1, got '${value}'`);
  }
  return n;
};

/** An option parser for a whole number from 1 to `max`. */
const count = (name: string, max: number) => (value: string) => {
  const n = decimalNumber(value);
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > max) {
    throw new UsageError(`${name} must be a whole number from 1 to ${max}, got '${value}'`);
  }
  return n;
};

/** The transforms the options ask for, in the order the service applies them (preprocess last). */
export function transformsOf(opts: DeriveOptions): TransformSpec[] {
  const transforms: TransformSpec[] = [];
  if (opts.quantize !== undefined) {
    if (opts.quantize !== 'int8') throw new UsageError(`--quantize supports int8, not '${opts.quantize}'`);
    transforms.push({
      quantize: 'int8',
      ...(opts.perChannel ? { perChannel: true } : {}),
      ...(opts.reduceRange !== undefined ? { reduceRange: opts.reduceRange } : {}),
    });
  } else if (opts.perChannel || opts.reduceRange !== undefined) {
    throw new UsageError('--per-channel and --[no-]reduce-range go with --quantize int8');
  }
  if (opts.optimize !== undefined) {
    if (opts.optimize !== 'basic') throw new UsageError(`--optimize supports basic, not '${opts.optimize}'`);
    transforms.push({ optimize: 'basic' });
  }
  if (opts.preprocess !== undefined) transforms.push({ preprocess: readJsonObject(opts.preprocess) });
  if (transforms.length === 0) {
    throw new UsageError(
      'give at least one transform: --quantize int8, --optimize basic or --preprocess <file>',
    );
  }
  return transforms;
}

/** The JSON object in `file` (a usage error when it cannot be read or is not one). */
export function readJsonObject(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(
      `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(`${file} must hold a JSON object (input name -> steps)`);
  }
  return value as Record<string, unknown>;
}

/** Defines `maas derive` on `program`. */
export function deriveCommands(program: Command, ctx: CliContext): void {
  program
    .command('derive')
    .description(
      'derive the next version of a model from a READY version (int8, optimisation, pre-processing)',
    )
    .argument('<model>', 'model name')
    .argument('<version>', 'the version to derive from', nonNegativeInt('<version>'))
    .option('--quantize <type>', 'dynamic quantisation of MatMul/Gemm weights: int8')
    .option('--per-channel', 'with --quantize: one weight scale per output column')
    .option('--reduce-range', 'with --quantize: 7-bit weights (the default on x86_64)')
    .option('--no-reduce-range', 'with --quantize: full 8-bit weights')
    .option('--optimize <level>', 'graph optimisation: basic')
    .option('--preprocess <file>', 'pre-processing declaration: a JSON file, input name -> steps')
    .option(
      '--sample <file>',
      "the gate's rows: a JSONL of OIP requests (default: generated from the signature)",
    )
    .option(
      '--min-agreement <share>',
      'argmax agreement the gate requires (default 0.99)',
      share('--min-agreement'),
    )
    .option(
      '--rows <n>',
      `rows the gate generates without a sample (default ${DERIVE_DEFAULTS.rows}, at most ${DERIVE_LIMITS.maxRows})`,
      count('--rows', DERIVE_LIMITS.maxRows),
    )
    .option('--description <text>', 'version description')
    .option('--wait', 'wait for the outcome and print the gate figures')
    .option(
      '--timeout <seconds>',
      `with --wait: give up after this long (default ${DEFAULT_WAIT_SECONDS})`,
      nonNegativeInt('--timeout'),
    )
    .action(
      ctx.action(async (model: string, version: number, opts: DeriveOptions) => {
        if (opts.timeout !== undefined && !opts.wait) {
          throw new UsageError('--timeout goes with --wait (without it the command does not wait)');
        }
        const timeout = opts.timeout ?? DEFAULT_WAIT_SECONDS;
        const transforms = transformsOf(opts);
        const c = ctx.client();
        const gate = {
          ...(opts.minAgreement !== undefined ? { minAgreement: opts.minAgreement } : {}),
          ...(opts.rows !== undefined ? { rows: opts.rows } : {}),
        };
        const body: DeriveBody = {
          transforms,
          ...(opts.description !== undefined ? { description: opts.description } : {}),
          ...(opts.sample !== undefined
            ? { sample: { uploadId: await uploadSample(c, model, opts.sample) } }
            : {}),
          ...(Object.keys(gate).length > 0 ? { gate } : {}),
        };
        let v = await c.send<DerivedVersionJson>(
          apiCall('deriveVersion', { name: model, version: String(version) }),
          body,
        );
        if (opts.wait) {
          const progress =
            ctx.io.isTty && !ctx.globals().json
              ? (s: number) =>
                  ctx.io.err(`\r${printable(`deriving ${v.name} version ${v.version}: PENDING (${s} s)`)}`)
              : undefined;
          v = await waitWhilePending(c, v, timeout * 1000, progress);
          if (progress) ctx.io.err('\n');
        }
        ctx.print(v, formatDerived);
        if (v.status === 'PENDING' && opts.wait) {
          ctx.io.err(
            `${printable(`version ${v.version} of '${v.name}' is still PENDING after ${timeout} s; see \`maas versions ${v.name}\``)}\n`,
          );
          return EXIT.refused;
        }
        return v.status === 'FAILED' ? EXIT.refused : EXIT.ok;
      }),
    );
}

/** Uploads the sample through a presigned upload slot of the model; its upload id. */
async function uploadSample(c: MaasClient, model: string, file: string): Promise<string> {
  const bytes = readBytes(file);
  const upload = await c.send<{ uploadId: string; url: string }>(apiCall('createUpload', { name: model }), {
    sizeBytes: bytes.length,
  });
  await uploadToPresignedUrl(upload.url, bytes);
  return upload.uploadId;
}

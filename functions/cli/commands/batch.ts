/**
 * `maas batch`: scores JSONL files with the batch pipeline and follows the job; `maas batch status <jobId>` and
 * `maas batch cancel <jobId>` read and stop a job (see ../batch.ts).
 *
 * One command, not commander subcommands: the bucket options are the same for the three forms, and the first word
 * decides. `status` and `cancel` are valid model names, so they always mean the action; a model named so is written
 * `cancel@prod` (the same as `cancel`: prod is the default alias) or `cancel@<version>`.
 */
import { accessSync, closeSync, constants, existsSync, openSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { Command } from 'commander';
import { BATCH, BATCH_KEYS } from '../../contract/events';
import { JOB_ID_PATTERN, JOB_ID_RULE } from '../../domain/batch';
import { validateModelName } from '../../domain/names';
import type { BatchBucket, CancelOutcome, fetchOutput as FetchOutput, JobStatus } from '../batch';
import { resolveEndpoint } from '../client';
import { type CliContext, EXIT, type ExitCode, UsageError } from '../context';
import { jsonText, printable } from '../format';
import { decimalNumber, modelPath, nonNegativeInt } from '../input';

/** The words that make `maas batch` an action on a job instead of a job to run. */
export const BATCH_ACTIONS = ['status', 'cancel'] as const;
export type BatchAction = (typeof BATCH_ACTIONS)[number];

export interface BatchOptions {
  readonly out?: string;
  readonly jobId?: string;
  readonly bucket?: string;
  readonly timeout: number;
  readonly partBytes?: number;
  readonly maxConcurrency?: number;
}

/** What the arguments of `maas batch` ask. */
export type BatchCall =
  | {
      readonly kind: 'run';
      readonly model: string;
      readonly ref?: string;
      /** The input files, in the order of the output lines. */
      readonly files: readonly string[];
    }
  | { readonly kind: 'status'; readonly jobId: string }
  | { readonly kind: 'cancel'; readonly jobId: string };

/** Options that belong to running a job only (`--out` goes with `status` too: the output of a job done). */
const RUN_ONLY_OPTIONS = [
  ['out', '--out'],
  ['jobId', '--job-id'],
  ['partBytes', '--part-bytes'],
  ['maxConcurrency', '--max-concurrency'],
] as const;

/**
 * Reads the positional arguments: `status <jobId>` / `cancel <jobId>` (exactly one job id, none of the options of a
 * run), else `<model> <input...>`.
 */
export function parseBatchCall(first: string, rest: readonly string[], opts: BatchOptions): BatchCall {
  if ((BATCH_ACTIONS as readonly string[]).includes(first)) {
    const action = first as BatchAction;
    if (rest.length !== 1) {
      throw new UsageError(
        `maas batch ${action} takes one job id, got ${rest.length} arguments (a model named '${action}' is written ${action}@prod)`,
      );
    }
    const given = RUN_ONLY_OPTIONS.filter(
      ([k]) => opts[k] !== undefined && !(action === 'status' && k === 'out'),
    ).map(([, flag]) => flag);
    if (given.length > 0) {
      throw new UsageError(`maas batch ${action} takes no ${given.join(', ')}: they go with a job to run`);
    }
    const jobId = rest[0] as string;
    // `maas batch cancel in.jsonl`: most likely a job for a model named so.
    if (existsSync(jobId) && statSync(jobId).isFile()) {
      throw new UsageError(
        `'${jobId}' is a file, not a job id: to score it with a model named '${action}', write ${action}@prod`,
      );
    }
    return { kind: action, jobId: jobIdOption('the job id', jobId) };
  }
  const target = modelPath(first);
  // Refused here, before any input is uploaded, rather than by the job once it starts.
  try {
    validateModelName(target.name);
  } catch (e) {
    throw new UsageError((e as Error).message, { cause: e });
  }
  if (rest.length === 0) throw new UsageError('give the input file(s): maas batch <model> <input...>');
  return { kind: 'run', model: target.name, ...(target.ref ? { ref: target.ref } : {}), files: rest };
}

/** Defines `maas batch` on `program`. */
export function batchCommands(program: Command, ctx: CliContext): void {
  program
    .command('batch')
    .description(
      'score JSONL files (one inference request per line) with the batch pipeline and follow the job; or show or cancel a job',
    )
    .usage(
      '[options] <model> <input...>\n       maas batch status <jobId> [--bucket <bucket>] [--out <file>]\n       maas batch cancel <jobId> [--bucket <bucket>] [--timeout <seconds>]',
    )
    .argument(
      '<model|action>',
      'name, name@version or name@alias (default alias prod); or status, cancel (a model named so: cancel@prod)',
    )
    .argument(
      '[input...]',
      '.jsonl files, scored in this order (output line n answers line n of them all); or the job id after an action',
    )
    .option(
      '--out <file>',
      'write output.jsonl here (default: standard output; with --json, it stays in the bucket); with status, the output of a job that is done',
    )
    .option('--job-id <id>', 'job id (default: cli-<time>-<random>)', (v) => jobIdOption('--job-id', v))
    .option(
      '--part-bytes <size>',
      `input bytes per part: ${byteSize(BATCH.minPartBytes)} .. ${byteSize(BATCH.maxPartBytes)} (default ${byteSize(BATCH.partBytes)})`,
      partBytesOption,
    )
    .option(
      '--max-concurrency <n>',
      `parts scored at once: 1 .. ${BATCH.maxConcurrencyLimit} (default ${BATCH.maxConcurrency})`,
      maxConcurrencyOption,
    )
    .option('--bucket <bucket>', "a deployed stack's model bucket (default: the running `maas dev`'s)")
    .option(
      '--timeout <seconds>',
      'give up waiting for the job (cancel: for it to stop) after this long',
      nonNegativeInt('--timeout'),
      600,
    )
    .addHelpText(
      'after',
      `
Inputs: one file of up to 64 MiB is written as batch/<jobId>/input.jsonl; several files, or a larger one, as
batch/<jobId>/input/<nnnn>-<name>.jsonl in the order given, then the empty batch/<jobId>/input/_SUCCESS.
--part-bytes and --max-concurrency go into batch/<jobId>/job.json.
Progress: on a terminal, a bar of parts done, rows, rows/s and ETA (from status.json); otherwise a status line
at most every 5 s; with --json none, and the final status.json is printed (with "output": its bucket and key
when the job is done and no --out is given).
--out is checked before anything is uploaded; \`maas batch status <jobId> --out <file>\` writes the output of a
job that is done (after a wait that timed out, say).
A model named status or cancel is written status@prod or cancel@prod.
Exit codes: 0 the job is done (status: read; cancel: cancelled); 1 the job failed or was cancelled, ended
before the cancel took effect, or the wait timed out; 2 usage error.`,
    )
    .action(
      ctx.action(async (first: string, rest: string[], opts: BatchOptions) => {
        const call = parseBatchCall(first, rest, opts);
        const { io } = ctx;
        const g = ctx.globals();
        const { batchStore } = await import('../batch');
        const store = batchStore(
          {
            endpoint: resolveEndpoint(g.endpoint, io.env),
            ...(opts.bucket ? { bucket: opts.bucket } : {}),
            ...(g.region ? { region: g.region } : {}),
          },
          io.env,
        );
        if (!store) {
          throw new UsageError(
            'no bucket for batch jobs: start `maas dev`, or pass --bucket <the stack’s model bucket>',
          );
        }
        if (call.kind === 'status') return batchStatus(ctx, store, call.jobId, opts.out);
        if (call.kind === 'cancel') return batchCancel(ctx, store, call.jobId, opts);
        return batchRun(ctx, store, call, opts);
      }),
    );
}

// The option parsers live here, not in ../batch, which loads the S3 client: that is imported only when a batch
// command runs.
const KiB = 1024;
const MiB = KiB * KiB;

/**
 * Parses a byte size: bytes (`65536`) or a number with a binary suffix, `k`, `m` or `g` (1024, 1024², 1024³),
 * optionally followed by `b` or `ib` (`64k`, `16M`, `16MiB`, `1g`). Anything else is a usage error.
 */
export function parseByteSize(name: string, value: string): number {
  const m = /^\s*(\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*$/i.exec(value);
  if (!m) {
    throw new UsageError(
      `${name} must be a size in bytes, or with a suffix k, m or g (64k, 16m, 1g), got '${value}'`,
    );
  }
  const unit = { k: KiB, m: MiB, g: KiB * MiB }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Number(m[1]) * unit;
}

/** A byte count in the units `--part-bytes` accepts (`16m`, `64k`, `1000`). */
export function byteSize(bytes: number): string {
  for (const [suffix, unit] of [
    ['g', KiB * MiB],
    ['m', MiB],
    ['k', KiB],
  ] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  }
  return String(bytes);
}

/** `--part-bytes`: a byte size within the bounds job.json accepts (`BATCH.minPartBytes` .. `maxPartBytes`). */
export function partBytesOption(value: string): number {
  const n = parseByteSize('--part-bytes', value);
  if (n < BATCH.minPartBytes || n > BATCH.maxPartBytes) {
    throw new UsageError(
      `--part-bytes must be from ${byteSize(BATCH.minPartBytes)} to ${byteSize(BATCH.maxPartBytes)}, got '${value}'`,
    );
  }
  return n;
}

/** `--max-concurrency`: an integer from 1 to `BATCH.maxConcurrencyLimit`. */
export function maxConcurrencyOption(value: string): number {
  const n = decimalNumber(value);
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > BATCH.maxConcurrencyLimit) {
    throw new UsageError(
      `--max-concurrency must be an integer from 1 to ${BATCH.maxConcurrencyLimit}, got '${value}'`,
    );
  }
  return n;
}

/** A job id (`--job-id`, or after status / cancel): one path segment, as the service accepts it. */
export function jobIdOption(name: string, value: string): string {
  if (!JOB_ID_PATTERN.test(value)) {
    throw new UsageError(`${name} must be ${JOB_ID_RULE}, got '${value}'`);
  }
  return value;
}

type Store = BatchBucket & { readonly bucket: string };

/** The input files with their sizes, checked before anything is written: each must be a readable file. */
export function inputFiles(
  paths: readonly string[],
): { readonly name: string; readonly path: string; readonly sizeBytes: number }[] {
  return paths.map((path) => {
    let size: number;
    try {
      const st = statSync(path);
      if (!st.isFile()) throw new UsageError(`${path} is not a file`);
      accessSync(path, constants.R_OK);
      size = st.size;
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError(
        `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    return { name: path, path, sizeBytes: size };
  });
}

/** `maas batch <model> <input...>`. */
async function batchRun(
  ctx: CliContext,
  store: Store,
  call: Extract<BatchCall, { kind: 'run' }>,
  opts: BatchOptions,
): Promise<ExitCode> {
  const { io } = ctx;
  const g = ctx.globals();
  const { fetchOutput, jobSpec, newJobId, progressBar, progressLines, submitBatch, waitForJob } =
    await import('../batch');
  const inputs = inputFiles(call.files);
  if (opts.out !== undefined) outFile(opts.out);
  const jobId = opts.jobId ?? newJobId();
  const spec = jobSpec(call.model, {
    ref: call.ref,
    partBytes: opts.partBytes,
    maxConcurrency: opts.maxConcurrency,
  });
  const human = !g.json;
  const totalBytes = inputs.reduce((n, i) => n + i.sizeBytes, 0);
  if (human) {
    io.err(
      `job ${jobId}: ${call.model}${call.ref ? `@${call.ref}` : ''}, ${inputs.length} input file${inputs.length === 1 ? '' : 's'} (${totalBytes} bytes) -> ${store.bucket}\n`,
    );
  }
  await submitBatch(
    store,
    { jobId, spec, inputs },
    io.isTty && human
      ? {
          onUpload: ({ sent, total }) =>
            io.err(`\ruploading ${sent}/${total} bytes (${total ? Math.floor((sent * 100) / total) : 100}%)`),
        }
      : {},
  );
  if (io.isTty && human) io.err('\n');
  const view = human ? (io.isTty ? progressBar(process.stderr) : progressLines(jobId, io.err)) : undefined;
  let st: JobStatus;
  try {
    st = await waitForJob(store, jobId, {
      timeoutMs: opts.timeout * 1000,
      ...(view ? { onStatus: (s) => view.update(s) } : {}),
    });
  } finally {
    view?.stop();
  }
  if (st.state === 'done') await writeOutput(ctx, store, jobId, opts.out, fetchOutput);
  const { line, code } = runSummary(st, call.model, opts.out);
  if (g.json) {
    // The output has no place of its own on standard output then: the status says where it is.
    const output =
      st.state === 'done' && !opts.out ? { bucket: store.bucket, key: BATCH_KEYS.output(jobId) } : undefined;
    io.out(`${jsonText(output ? { ...st, output } : st, 2)}\n`);
  } else io.err(`${line}\n`);
  return code;
}

/**
 * `--out`: a file that can be written, or created in a folder that exists and can be written; a usage error
 * otherwise, given before anything is uploaded (found after the job, it would leave the output where the user does
 * not look).
 */
export function outFile(path: string): void {
  const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  if (path === '') throw new UsageError('--out needs a file name');
  if (/[\\/]$/.test(path)) throw new UsageError(`--out ${path} names a folder: name a file`);
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`--out ${path}: ${code(e)}`);
    const dir = dirname(resolve(path));
    try {
      if (!statSync(dir).isDirectory()) throw new UsageError(`--out ${path}: ${dir} is not a folder`);
      accessSync(dir, constants.W_OK);
    } catch (e2) {
      if (e2 instanceof UsageError) throw e2;
      throw new UsageError(
        code(e2) === 'ENOENT'
          ? `--out ${path}: its folder ${dir} does not exist`
          : `--out ${path}: its folder ${dir} cannot be written to (${code(e2)})`,
      );
    }
    return;
  }
  if (isDirectory) throw new UsageError(`--out ${path} is a folder: name a file`);
  try {
    accessSync(path, constants.W_OK);
  } catch (e) {
    throw new UsageError(`--out ${path} cannot be written (${code(e)})`);
  }
}

/** `--out` could not be written (its folder, its permissions, a full disk): said with where the output stays. */
class OutFileError extends Error {}

/** Streams output.jsonl to `--out`, else (without --json) to standard output. */
async function writeOutput(
  ctx: CliContext,
  store: Store,
  jobId: string,
  out: string | undefined,
  fetchOutput: typeof FetchOutput,
): Promise<void> {
  const missing = () =>
    new Error(`job ${jobId} is done, but ${BATCH_KEYS.output(jobId)} is not in bucket ${store.bucket}`);
  if (out) {
    // A file that cannot be written is said so with where the output stays; a failed read says itself.
    const cannotWrite = (e: unknown) =>
      new OutFileError(
        `cannot write ${out} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the output stays at ${BATCH_KEYS.output(jobId)} in bucket ${store.bucket}: \`maas batch status ${jobId} --out <file>\` writes it`,
        { cause: e },
      );
    // The output is there before the file is opened (and emptied): a missing one leaves a file of that name as
    // it was. Written in place, whatever `out` is (a file, a link, a device such as /dev/stdout).
    if (!(await store.head(BATCH_KEYS.output(jobId)))) throw missing();
    let fd: number;
    try {
      fd = openSync(out, 'w');
    } catch (e) {
      throw cannotWrite(e);
    }
    let found: boolean;
    try {
      found = await fetchOutput(store, jobId, (chunk) => {
        try {
          writeSync(fd, chunk);
        } catch (e) {
          throw cannotWrite(e);
        }
      });
    } catch (e) {
      throw e instanceof OutFileError
        ? e
        : new Error(
            `${(e as Error).message} (${out} is incomplete: write it again with \`maas batch status ${jobId} --out ${out}\`)`,
            { cause: e },
          );
    } finally {
      closeSync(fd);
    }
    if (!found) throw missing();
    return;
  }
  if (ctx.globals().json) return;
  const decoder = new StringDecoder('utf8');
  // Each chunk taken by the reader before the next is fetched: memory stays bounded whatever the output's size,
  // and a reader that goes away ends the run with an error, not with part of the output and exit code 0.
  const flushed = async () => {
    try {
      await ctx.io.flush?.();
    } catch (e) {
      throw new Error(
        `standard output was closed before the whole output was written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the output stays at ${BATCH_KEYS.output(jobId)} in bucket ${store.bucket}: \`maas batch status ${jobId} --out <file>\` writes it`,
        { cause: e },
      );
    }
  };
  const found = await fetchOutput(store, jobId, async (chunk) => {
    ctx.io.out(decoder.write(Buffer.from(chunk)));
    await flushed();
  });
  const tail = decoder.end();
  if (tail) ctx.io.out(tail);
  await flushed();
  if (!found) throw missing();
}

/**
 * The last line of a run (on standard error, printable: a failed job's error can quote the rows it read) and the
 * run's exit code: 0 only for a job that is done.
 */
export function runSummary(
  st: JobStatus,
  model: string,
  out: string | undefined,
): { readonly line: string; readonly code: ExitCode } {
  const { line, code } = summary(st, model, out);
  return { line: printable(line), code };
}

/** `runSummary` before its line is made printable. */
function summary(
  st: JobStatus,
  model: string,
  out: string | undefined,
): { readonly line: string; readonly code: ExitCode } {
  if (st.state === 'done') {
    return {
      line: `job ${st.jobId}: ${st.total} rows scored with ${model} version ${st.version}: ${st.succeeded} ok, ${st.failed} failed${out ? ` -> ${out}` : ''}`,
      code: EXIT.ok,
    };
  }
  if (st.state === 'cancelled') {
    return {
      line: `job ${st.jobId} cancelled after ${st.partsDone ?? 0}/${st.partsTotal ?? '?'} parts (${st.total} rows)`,
      code: EXIT.refused,
    };
  }
  return {
    line: `job ${st.jobId} failed: ${st.error ?? 'unknown error'} (${st.code ?? 'FAILED'})`,
    code: EXIT.refused,
  };
}

/**
 * What `maas batch cancel` says and its exit code: 0 when the job is cancelled (now or before), 1 when it ended
 * done or failed (before the request, or before the request took effect). `line` is printable already
 * (`formatProgress`).
 */
export function cancelSummary(
  jobId: string,
  outcome: CancelOutcome,
  line: string,
): { readonly line: string; readonly code: ExitCode } {
  const { status, requested } = outcome;
  const state = printable(status.state);
  if (status.state === 'cancelled') {
    return {
      line: requested ? `job ${jobId} cancelled: ${line}` : `job ${jobId} was cancelled already: ${line}`,
      code: EXIT.ok,
    };
  }
  return {
    line: requested
      ? `job ${jobId} ended ${state} before the cancel took effect: ${line}`
      : `job ${jobId} had ended already (${state}), nothing to cancel: ${line}`,
    code: EXIT.refused,
  };
}

/**
 * `maas batch status <jobId>`: the status line (or status.json with --json); a job without one yet is submitted.
 * With `--out`, the output of a job that is done is written there (exit 1, nothing written, for any other job).
 */
async function batchStatus(
  ctx: CliContext,
  store: Store,
  jobId: string,
  out: string | undefined,
): Promise<ExitCode> {
  if (out !== undefined) outFile(out);
  const { fetchOutput, formatProgress, jobExists, readStatus } = await import('../batch');
  const st = await readStatus(store, jobId);
  if (!st) {
    if (!(await jobExists(store, jobId)))
      throw new Error(`no batch job '${jobId}' in bucket ${store.bucket}`);
    ctx.print({ jobId, state: 'submitted' }, () => `job ${jobId}: submitted, not started (no status yet)`);
    if (out === undefined) return EXIT.ok;
    ctx.io.err(`job ${jobId} has not started: it has no output yet\n`);
    return EXIT.refused;
  }
  ctx.print(st, (s: JobStatus) => `job ${jobId}: ${formatProgress(s)}`);
  if (out === undefined) return EXIT.ok;
  if (st.state !== 'done') {
    ctx.io.err(
      st.state === 'running'
        ? `job ${jobId} is running: its output can be written once it is done\n`
        : `job ${jobId} ended ${printable(st.state)}: it has no output\n`,
    );
    return EXIT.refused;
  }
  await writeOutput(ctx, store, jobId, out, fetchOutput);
  ctx.io.err(`job ${jobId}: output -> ${out}\n`);
  return EXIT.ok;
}

/** `maas batch cancel <jobId>`: 0 once cancelled (or already), 1 when the job ended otherwise first. */
async function batchCancel(
  ctx: CliContext,
  store: Store,
  jobId: string,
  opts: BatchOptions,
): Promise<ExitCode> {
  const { cancelJob, formatProgress } = await import('../batch');
  const outcome = await cancelJob(store, jobId, { timeoutMs: opts.timeout * 1000 });
  const { line, code } = cancelSummary(jobId, outcome, formatProgress(outcome.status));
  if (ctx.globals().json) {
    ctx.io.out(`${jsonText(outcome.status, 2)}\n`);
    ctx.io.err(`${line}\n`);
  } else ctx.io.out(`${line}\n`);
  return code;
}

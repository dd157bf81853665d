/** `maas batch`: scores a JSONL file with the batch pipeline and waits for the job (see ../batch.ts). */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { resolveEndpoint } from '../client';
import { type CliContext, EXIT, UsageError } from '../context';
import { modelPath, nonNegativeInt, readBytes } from '../input';

interface BatchOptions {
  readonly out?: string;
  readonly jobId?: string;
  readonly bucket?: string;
  readonly timeout: number;
}

/** Defines `maas batch` on `program`. */
export function batchCommands(program: Command, ctx: CliContext): void {
  program
    .command('batch')
    .description(
      'score a JSONL file (one inference request per line) with the batch pipeline and wait for it',
    )
    .argument('<model>', 'name, name@version or name@alias (default alias prod)')
    .argument('<input>', 'the .jsonl file')
    .option('--out <file>', 'write output.jsonl here (default: standard output)')
    .option('--job-id <id>', 'job id (default: cli-<time>-<random>)')
    .option('--bucket <bucket>', "a deployed stack's model bucket (default: the running `maas dev`'s)")
    .option('--timeout <seconds>', 'give up waiting after this long', nonNegativeInt('--timeout'), 600)
    .action(
      ctx.action(async (spec: string, file: string, opts: BatchOptions) => {
        const { io } = ctx;
        const target = modelPath(spec);
        const input = readBytes(file);
        const g = ctx.globals();
        const { batchStore, newJobId, runBatch } = await import('../batch');
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
        const jobId = opts.jobId ?? newJobId();
        const result = await runBatch(
          store,
          { jobId, model: target.name, ...(target.ref ? { ref: target.ref } : {}), input },
          {
            timeoutMs: opts.timeout * 1000,
            ...(io.isTty && !g.json
              ? {
                  onStatus: (st) =>
                    io.err(`\rjob ${jobId}: ${st.state} ${st.succeeded + st.failed}/${st.total} rows`),
                }
              : {}),
          },
        );
        if (io.isTty && !g.json) io.err('\n');
        const st = result.status;
        if (result.output && opts.out) writeFileSync(opts.out, result.output);
        else if (result.output && !g.json) io.out(Buffer.from(result.output).toString('utf8'));
        if (g.json) io.out(`${JSON.stringify(st, null, 2)}\n`);
        else {
          io.err(
            st.state === 'done'
              ? `job ${jobId}: ${st.total} rows scored with ${target.name} version ${st.version}: ${st.succeeded} ok, ${st.failed} failed${opts.out ? ` -> ${opts.out}` : ''}\n`
              : `job ${jobId} failed: ${st.error ?? 'unknown error'} (${st.code ?? 'FAILED'})\n`,
          );
        }
        return st.state === 'failed' ? EXIT.refused : EXIT.ok;
      }),
    );
}

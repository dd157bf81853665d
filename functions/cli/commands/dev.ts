/** `maas dev`: the whole service locally (DynamoDB Local + s3rver) with the sample model. */
import type { Command } from 'commander';
import { type CliContext, UsageError } from '../context';
import { printable } from '../format';
import { nonNegativeInt } from '../input';

/** `--port`: a TCP port, 0-65535 (0: any free one). */
function port(value: string): number {
  const n = nonNegativeInt('--port')(value);
  if (n > 65535) throw new UsageError(`--port must be from 0 to 65535, got '${value}'`);
  return n;
}

/** Defines `maas dev` on `program`. */
export function devCommands(program: Command, ctx: CliContext): void {
  program
    .command('dev')
    .description('run the whole service locally (DynamoDB Local + s3rver) with the sample model')
    .option('--in-memory', 'keep no data (nothing is written under $MAAS_HOME but endpoints.json)')
    .option('--port <port>', 'HTTP port, 0-65535 (default: PORT or 3000)', port)
    .action(
      ctx.action(async (opts: { inMemory?: boolean; port?: number }) => {
        const { runDev } = await import('../../local/dev');
        return runDev({
          inMemory: Boolean(opts.inMemory),
          ...(opts.port !== undefined ? { port: opts.port } : {}),
          // Its own lines, each printable: an error it logs can quote a request.
          log: (text) => ctx.io.out(`${text.split('\n').map(printable).join('\n')}\n`),
        });
      }),
    );
}

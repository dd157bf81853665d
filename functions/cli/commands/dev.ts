/** `maas dev`: the whole service locally (DynamoDB Local + s3rver) with the sample model. */
import type { Command } from 'commander';
import { ENV } from '../../contract/env';
import type { CliContext } from '../context';
import { printable } from '../format';
import { portOf } from '../input';

/** Defines `maas dev` on `program`. */
export function devCommands(program: Command, ctx: CliContext): void {
  program
    .command('dev')
    .description('run the whole service locally (DynamoDB Local + s3rver) with the sample model')
    .option('--in-memory', 'keep no data (nothing is written under $MAAS_HOME but endpoints.json)')
    .option('--port <port>', 'HTTP port, 0-65535 (default: PORT or 3000)', (v) => portOf('--port', v))
    .action(
      ctx.action(async (opts: { inMemory?: boolean; port?: number }) => {
        // PORT is checked as --port is: a usage error (exit 2), not a server that fails to start.
        const fromEnv = ctx.io.env[ENV.port];
        const port = opts.port ?? (fromEnv ? portOf(ENV.port, fromEnv) : undefined);
        const { runDev } = await import('../../local/dev');
        return runDev({
          inMemory: Boolean(opts.inMemory),
          ...(port !== undefined ? { port } : {}),
          // Its own lines, each printable: an error it logs can quote a request.
          log: (text) => ctx.io.out(`${text.split('\n').map(printable).join('\n')}\n`),
        });
      }),
    );
}

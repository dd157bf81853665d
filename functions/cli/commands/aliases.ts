/** The alias commands: `maas promote`, `maas rollback` and `maas history`. */
import type { Command } from 'commander';
import { apiCall } from '../client';
import { type CliContext, EXIT } from '../context';
import { formatHistory, formatMoveResult } from '../format';
import { nonNegativeInt } from '../input';

/** Defines the alias commands on `program`. */
export function aliasCommands(program: Command, ctx: CliContext): void {
  program
    .command('promote')
    .description('point an alias (default prod) at a version')
    .argument('<name>', 'model name')
    .argument('<version>', 'version number', nonNegativeInt('<version>'))
    .option('--alias <alias>', 'alias to move', 'prod')
    .option(
      '--expect <version>',
      'only if the alias currently points at this version (0 = unset)',
      nonNegativeInt('--expect'),
    )
    .option('--reason <text>', 'recorded in the alias history')
    .action(
      ctx.action(
        async (name: string, version: number, opts: { alias: string; expect?: number; reason?: string }) => {
          const answer = await ctx.client().send(apiCall('moveAlias', { name, alias: opts.alias }), {
            version,
            ...(opts.expect !== undefined ? { expectedVersion: opts.expect } : {}),
            ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
          });
          ctx.print(answer, (a) => formatMoveResult(name, a));
          return EXIT.ok;
        },
      ),
    );

  program
    .command('rollback')
    .description('move an alias (default prod) back to the version it had before')
    .argument('<name>', 'model name')
    .option('--alias <alias>', 'alias to roll back', 'prod')
    .option('--reason <text>', 'recorded in the alias history')
    .action(
      ctx.action(async (name: string, opts: { alias: string; reason?: string }) => {
        const answer = await ctx
          .client()
          .send(
            apiCall('rollbackAlias', { name, alias: opts.alias }),
            opts.reason !== undefined ? { reason: opts.reason } : {},
          );
        ctx.print(answer, (a) => formatMoveResult(name, a));
        return EXIT.ok;
      }),
    );

  program
    .command('history')
    .description('the moves of an alias (default prod), newest first')
    .argument('<name>', 'model name')
    .option('--alias <alias>', 'alias', 'prod')
    .option('--limit <n>', 'page size', nonNegativeInt('--limit'))
    .action(
      ctx.action(async (name: string, opts: { alias: string; limit?: number }) => {
        const call = apiCall('aliasHistory', { name, alias: opts.alias }, { limit: opts.limit });
        ctx.print(await ctx.client().send(call), formatHistory);
        return EXIT.ok;
      }),
    );
}

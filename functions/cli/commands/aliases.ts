/**
 * The alias commands: `maas promote`, `maas rollback`, `maas history`, `maas canary` (the canary of an alias's
 * traffic split), and `maas capture-config` (the capture declaration of an alias or a version).
 */
import type { Command } from 'commander';
import { apiCall, type MaasClient } from '../client';
import { type CliContext, EXIT, UsageError } from '../context';
import { formatCaptureConfig, formatHistory, formatMoveResult, formatRouting } from '../format';
import { nonNegativeInt, percent } from '../input';
import { nextSplit, type SplitChange, type SplitJson } from '../progressive';

interface CaptureConfigOptions {
  readonly alias?: string;
  readonly version?: number;
  readonly sample?: number;
  readonly off?: boolean;
  /** Commander's `--no-input`. */
  readonly input: boolean;
  /** Commander's `--no-output`. */
  readonly output: boolean;
}

interface CanaryOptions {
  readonly alias: string;
  readonly weight?: number;
  /** A name, or false with `--no-key-parameter`. */
  readonly keyParameter?: string | false;
  readonly off?: boolean;
  readonly expectRevision?: number;
  readonly reason?: string;
}

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
    .option(
      '--expect <version>',
      'only if the alias currently points at this version (0 = unset)',
      nonNegativeInt('--expect'),
    )
    .option(
      '--expect-revision <n>',
      'only if the alias is at this revision',
      nonNegativeInt('--expect-revision'),
    )
    .option('--reason <text>', 'recorded in the alias history')
    .action(
      ctx.action(
        async (
          name: string,
          opts: { alias: string; expect?: number; expectRevision?: number; reason?: string },
        ) => {
          const answer = await ctx.client().send(apiCall('rollbackAlias', { name, alias: opts.alias }), {
            ...(opts.expect !== undefined ? { expectedVersion: opts.expect } : {}),
            ...(opts.expectRevision !== undefined ? { expectedRevision: opts.expectRevision } : {}),
            ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
          });
          ctx.print(answer, (a) => formatMoveResult(name, a));
          return EXIT.ok;
        },
      ),
    );

  program
    .command('canary')
    .description(
      'send a share of an alias (default prod) to a canary version, or --off to remove the canary; promote the canary to finish',
    )
    .argument('<name>', 'model name')
    .argument('[version]', 'canary version', nonNegativeInt('[version]'))
    .option('--weight <percent>', "share of the alias's requests, 0-100 in steps of 0.1", percent('--weight'))
    .option('--alias <alias>', 'alias to split', 'prod')
    .option(
      '--key-parameter <name>',
      'request parameter whose value routes a request (one key, one version) when it has no routing key header',
    )
    .option(
      '--expect-revision <n>',
      'only if the alias is at this revision',
      nonNegativeInt('--expect-revision'),
    )
    .option('--no-key-parameter', 'drop the key parameter the split has (kept otherwise)')
    .option('--reason <text>', 'recorded in the alias history')
    .option('--off', 'remove the canary: all traffic to the stable version (a shadow stays)')
    .action(
      ctx.action(async (name: string, version: number | undefined, opts: CanaryOptions) => {
        if (opts.off) {
          if (version !== undefined || opts.weight !== undefined || typeof opts.keyParameter === 'string') {
            throw new UsageError('--off takes neither a version, --weight nor --key-parameter');
          }
        } else if (version === undefined || opts.weight === undefined) {
          throw new UsageError('give <version> and --weight <percent>, or --off');
        }
        // The shadow the split has stays, and so does its key parameter unless replaced or dropped (keys would move).
        return writeSplit(ctx, name, opts, {
          canary: opts.off ? null : { version: version as number, weight: opts.weight as number },
          ...(opts.keyParameter === false
            ? { keyParameter: null }
            : typeof opts.keyParameter === 'string'
              ? { keyParameter: opts.keyParameter }
              : {}),
        });
      }),
    );

  program
    .command('capture-config')
    .description(
      "declare which requests of an alias or a version are recorded (the alias's wins for its requests)",
    )
    .argument('<name>', 'model name')
    .option('--alias <alias>', 'declare it for this alias')
    // After the command's name `--version` is this option (`commandVersionOption` in program.ts).
    .option('--version <n>', 'declare it for this version', nonNegativeInt('--version'))
    .option('--sample <percent>', 'share of requests recorded, 0-100 in steps of 0.01', percent('--sample'))
    .option('--no-input', 'do not record the request bodies')
    .option('--no-output', 'do not record the response bodies')
    .option('--off', 'remove the declaration')
    .action(
      ctx.action(async (name: string, opts: CaptureConfigOptions) => {
        if ((opts.alias === undefined) === (opts.version === undefined)) {
          throw new UsageError('give one of --alias <alias> or --version <n>');
        }
        if ((opts.sample === undefined) === (opts.off !== true)) {
          throw new UsageError('give one of --sample <percent> or --off');
        }
        if (opts.off && (!opts.input || !opts.output)) {
          throw new UsageError('--no-input and --no-output go with --sample, not with --off');
        }
        const capture =
          opts.sample === undefined
            ? null
            : { samplePercent: opts.sample, input: opts.input, output: opts.output };
        const call =
          opts.alias !== undefined
            ? apiCall('updateAlias', { name, alias: opts.alias })
            : apiCall('updateVersion', { name, version: String(opts.version) });
        const answer = await ctx.client().send(call, { capture });
        ctx.print(answer, (a) => formatCaptureConfig(name, a));
        return EXIT.ok;
      }),
    );

  program
    .command('history')
    .description('the moves of an alias (default prod), newest first')
    .argument('<name>', 'model name')
    .option('--alias <alias>', 'alias', 'prod')
    .option('--limit <n>', 'page size', nonNegativeInt('--limit'))
    .option('--next-token <token>', 'continue a previous listing')
    .action(
      ctx.action(async (name: string, opts: { alias: string; limit?: number; nextToken?: string }) => {
        const call = apiCall(
          'aliasHistory',
          { name, alias: opts.alias },
          { limit: opts.limit, nextToken: opts.nextToken },
        );
        ctx.print(await ctx.client().send(call), formatHistory);
        return EXIT.ok;
      }),
    );
}

/** The split `alias` of model `name` has now (undefined without one), read from the model. */
export async function currentSplit(
  client: MaasClient,
  name: string,
  alias: string,
): Promise<SplitJson | undefined> {
  const model = await client.send<{ splits?: Record<string, SplitJson> }>(apiCall('getModel', { name }));
  return model.splits?.[alias];
}

/** Where `maas canary` and `maas shadow` write a split, and how. */
interface SplitWriteOptions {
  readonly alias: string;
  readonly expectRevision?: number;
  readonly reason?: string;
}

/**
 * Writes the split of `opts.alias` of model `name` as the one it has now with `change` applied (a split is written
 * whole), only at `opts.expectRevision` if given, `opts.reason` recorded in the alias history; prints the alias.
 */
export async function writeSplit(
  ctx: CliContext,
  name: string,
  opts: SplitWriteOptions,
  change: SplitChange,
): Promise<number> {
  const client = ctx.client();
  const routing = nextSplit(await currentSplit(client, name, opts.alias), change);
  const answer = await client.send(apiCall('updateAlias', { name, alias: opts.alias }), {
    routing,
    ...(opts.expectRevision !== undefined ? { expectedRevision: opts.expectRevision } : {}),
    ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
  });
  ctx.print(answer, (a) => formatRouting(name, a));
  return EXIT.ok;
}

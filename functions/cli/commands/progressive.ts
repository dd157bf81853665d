/**
 * The progressive delivery commands: `maas shadow` (mirror a share of an alias's traffic to a version whose answers
 * are compared, never returned), `maas rollout` (staged canary weights with automatic rollback on alarms and
 * divergence, and its status, pause, resume and abort) and `maas alarm` (set a local alarm's state, to rehearse a
 * rollback on `maas dev`).
 */
import type { Command } from 'commander';
import { apiCall, type MaasClient, needsSigning } from '../client';
import { type CliContext, EXIT, UsageError } from '../context';
import { formatAlarm, formatRollout, type RolloutJson } from '../format';
import { nonNegativeInt, percent } from '../input';
import { parseDivergence, parseSteps } from '../progressive';
import { writeSplit } from './aliases';

interface ShadowOptions {
  readonly alias: string;
  readonly percent?: number;
  readonly off?: boolean;
  readonly expectRevision?: number;
  readonly reason?: string;
}

interface RolloutOptions {
  readonly alias: string;
  readonly steps?: string;
  readonly alarm: string[];
  readonly maxDivergence?: string;
  readonly keyParameter?: string;
  readonly expectRevision?: number;
}

/** What `maas rollout <action> <model>` does to the alias's rollout besides starting one. */
export const ROLLOUT_ACTIONS = ['status', 'pause', 'resume', 'abort'] as const;
type RolloutAction = (typeof ROLLOUT_ACTIONS)[number];

const isAction = (s: string): s is RolloutAction => (ROLLOUT_ACTIONS as readonly string[]).includes(s);

/** The states a local alarm can be set to (CloudWatch's). */
const ALARM_STATES = ['ALARM', 'OK', 'INSUFFICIENT_DATA'] as const;

/** The local server's own route setting an alarm's state (outside the route table, like `/metrics`). */
export const LOCAL_ALARMS_PATH = '/local/alarms';

const collect = (value: string, previous: string[]) => [...previous, value];

/** A version number argument (a positive integer). */
function versionNumber(value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || !/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`<version> must be a version number, got '${value ?? ''}'`);
  }
  return n;
}

/** Defines the progressive delivery commands on `program`. */
export function progressiveCommands(program: Command, ctx: CliContext): void {
  program
    .command('shadow')
    .description(
      "mirror a share of an alias's (default prod) traffic to a version and compare its answers (never returned to callers), or --off",
    )
    .argument('<name>', 'model name')
    .argument('[version]', 'shadow version', nonNegativeInt('[version]'))
    .option(
      '--percent <percent>',
      "share of the alias's requests mirrored, 0-100 in steps of 0.1",
      percent('--percent'),
    )
    .option('--alias <alias>', 'alias whose traffic is mirrored', 'prod')
    .option(
      '--expect-revision <n>',
      'only if the alias is at this revision',
      nonNegativeInt('--expect-revision'),
    )
    .option('--reason <text>', 'recorded in the alias history')
    .option('--off', 'stop mirroring (a canary stays)')
    .action(
      ctx.action(async (name: string, version: number | undefined, opts: ShadowOptions) => {
        if (opts.off) {
          if (version !== undefined || opts.percent !== undefined) {
            throw new UsageError('--off takes neither a version nor --percent');
          }
        } else if (version === undefined || opts.percent === undefined) {
          throw new UsageError('give <version> and --percent <percent>, or --off');
        }
        // The canary and key parameter the split has stay.
        return writeSplit(ctx, name, opts, {
          shadow: opts.off ? null : { version: version as number, percent: opts.percent as number },
        });
      }),
    );

  program
    .command('rollout')
    .description(
      'roll a version out on an alias (default prod) in steps of canary weight, rolled back automatically when a named alarm fires or the shadow comparison diverges; or show, pause, resume or abort the rollout',
    )
    .usage(
      '<name> <version> --steps <list> [options]\n       maas rollout status|pause|resume|abort <name> [--alias <alias>]',
    )
    .argument('<name|action>', 'model name, or status, pause, resume or abort')
    .argument('[version|name]', 'version to roll out, or the model name after an action')
    .option(
      '--steps <list>',
      'canary weights (percent), each with how long it bakes before the next: 10:5m,50:10m,100 (s, m, h; none: 0 s)',
    )
    .option(
      '--alarm <name>',
      'CloudWatch alarm whose ALARM state rolls back (repeatable, up to 10)',
      collect,
      [] as string[],
    )
    .option('--alias <alias>', 'alias to roll out on', 'prod')
    .option(
      '--max-divergence <bounds>',
      'roll back when the new version, mirrored a share of the stable traffic, answers otherwise: agreement=0.99,maxAbs=0.5,kl=0.1,errors=0.05,minSamples=100,shadow=10 (the version is promoted only once minSamples rows were compared)',
    )
    .option(
      '--key-parameter <name>',
      "request parameter whose value routes a request (one key, one version) when it has no routing key header (default: the alias's own)",
    )
    .option(
      '--expect-revision <n>',
      'only if the alias is at this revision',
      nonNegativeInt('--expect-revision'),
    )
    .action(
      ctx.action(async (first: string, second: string | undefined, opts: RolloutOptions) => {
        if (isAction(first) && opts.steps === undefined) {
          if (second === undefined) throw new UsageError(`give the model: maas rollout ${first} <name>`);
          if (
            opts.alarm.length > 0 ||
            opts.maxDivergence !== undefined ||
            opts.keyParameter !== undefined ||
            opts.expectRevision !== undefined
          ) {
            throw new UsageError(
              `maas rollout ${first} takes only --alias; --alarm, --max-divergence, --key-parameter and --expect-revision go with --steps`,
            );
          }
          const answer = await rolloutAction(ctx.client(), first, second, opts.alias);
          ctx.print(answer, formatRollout);
          return EXIT.ok;
        }
        if (opts.steps === undefined) {
          throw new UsageError(
            'give <name> <version> --steps <list> to start a rollout, or status|pause|resume|abort <name>',
          );
        }
        const version = versionNumber(second);
        const steps = parseSteps(opts.steps);
        const maxDivergence =
          opts.maxDivergence === undefined ? undefined : parseDivergence(opts.maxDivergence);
        // Without --key-parameter the service keeps the alias's own (keys would move otherwise).
        const call = apiCall('startRollout', { name: first, alias: opts.alias });
        const answer = await ctx.client().send<RolloutJson>(call, {
          version,
          steps,
          alarms: opts.alarm,
          ...(maxDivergence ? { maxDivergence } : {}),
          ...(opts.keyParameter !== undefined ? { keyParameter: opts.keyParameter } : {}),
          ...(opts.expectRevision !== undefined ? { expectedRevision: opts.expectRevision } : {}),
        });
        ctx.print(answer, formatRollout);
        return EXIT.ok;
      }),
    );

  program
    .command('alarm')
    .description(
      'set the state of an alarm of the local service (`maas dev`): ALARM rolls back the rollouts naming it',
    )
    .argument('<name>', 'alarm name, as named by `maas rollout --alarm`')
    .option('--state <state>', 'ALARM, OK or INSUFFICIENT_DATA', 'ALARM')
    .action(
      ctx.action(async (alarm: string, opts: { state: string }) => {
        const state = opts.state.toUpperCase();
        if (!(ALARM_STATES as readonly string[]).includes(state)) {
          throw new UsageError(`--state must be ${ALARM_STATES.join(', ')}, got '${opts.state}'`);
        }
        const client = ctx.client();
        if (needsSigning(client.endpoint)) {
          throw new UsageError(
            `maas alarm sets the alarms of the local service only; ${client.endpoint} is a deployed stack, whose alarms are CloudWatch's: aws cloudwatch set-alarm-state --alarm-name '${alarm}' --state-value ${state} --state-reason 'rollout rehearsal'`,
          );
        }
        // One path segment: a `/` of the name (CloudWatch allows it) goes as `%2F`.
        const answer = await client.request('POST', `${LOCAL_ALARMS_PATH}/${encodeURIComponent(alarm)}`, {
          state,
        });
        ctx.print(answer, formatAlarm);
        return EXIT.ok;
      }),
    );
}

/** Reads (status) or acts on the rollout of `name@alias`. */
function rolloutAction(
  client: MaasClient,
  action: RolloutAction,
  name: string,
  alias: string,
): Promise<RolloutJson> {
  return client.send<RolloutJson>(
    action === 'status'
      ? apiCall('getRollout', { name, alias })
      : apiCall('rolloutAction', { name, alias, action }),
  );
}

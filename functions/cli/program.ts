/**
 * The `maas` command line (commander): the everyday registry and inference workflow against the local
 * service or a deployed stack, plus `maas dev`. The commands live in ./commands, one module per group; this
 * module assembles them and maps every outcome to an exit code (0 ok, 1 the server or the network said no,
 * 2 usage error).
 */
import { Command, CommanderError } from 'commander';
import { version as packageVersion } from '../../package.json';
import { ConnectionError, MaasApiError } from './client';
import { aliasCommands } from './commands/aliases';
import { batchCommands } from './commands/batch';
import { consoleCommands } from './commands/console';
import { deriveCommands } from './commands/derive';
import { devCommands } from './commands/dev';
import { inferenceCommands } from './commands/inference';
import { modelCommands } from './commands/models';
import { observeCommands } from './commands/observe';
import { progressiveCommands } from './commands/progressive';
import {
  type CliIo,
  cliContext,
  EXIT,
  type ExitCode,
  type GlobalOptions,
  processIo,
  UsageError,
} from './context';
import { jsonText, printable } from './format';

/** The command groups, in the order `maas --help` lists them. */
const COMMAND_GROUPS = [
  devCommands,
  consoleCommands,
  modelCommands,
  deriveCommands,
  aliasCommands,
  progressiveCommands,
  inferenceCommands,
  batchCommands,
  observeCommands,
] as const;

/**
 * Builds the program with every command; `onExitCode` receives the exit code the command that ran returns.
 */
export function buildProgram(io: CliIo, onExitCode: (code: ExitCode) => void = () => {}): Command {
  const program = new Command('maas')
    .description(
      'ONNX models as an HTTPS inference service: the local service and the registry/inference CLI',
    )
    .option(
      '--endpoint <url>',
      'service URL (default: MAAS_ENDPOINT, the running `maas dev`, http://127.0.0.1:3000)',
    )
    .option(
      '--region <region>',
      'AWS region for SigV4 signing of https endpoints (default: the region in an execute-api URL, else AWS_REGION)',
    )
    .option(
      '--token <jwt>',
      'bearer token for a stack deployed with JWT authorization, sent instead of SigV4 signing (default: MAAS_TOKEN)',
    )
    .option('--json', 'print the raw JSON answer')
    .version(packageVersion, '-V, --version', 'print the version of maas')
    .showHelpAfterError(false)
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();
  const ctx = cliContext(program, io, onExitCode);
  for (const defineCommands of COMMAND_GROUPS) defineCommands(program, ctx);
  return program;
}

/** The program's own options that take a value (so that their value is not taken for the command's name). */
const GLOBAL_VALUE_OPTIONS = new Set(['--endpoint', '--region', '--token']);

/**
 * `--version <n>` after a command's name becomes `--version=<n>`: commander recognizes the program's options after
 * the command too, so `maas capture m --version 2` would otherwise print the version of maas. Without a value it
 * becomes `--version=` (which the command's option refuses) after the name of a command in `ownVersion` (those
 * with a `--version <n>` of their own): `maas capture m --version` is a version forgotten, not a question. Before
 * the command's name, or after a command without one, `--version` stays the program's.
 */
export function commandVersionOption(
  argv: readonly string[],
  ownVersion: ReadonlySet<string> = new Set(),
): string[] {
  const out = [...argv];
  let i = 2;
  while (i < out.length) {
    const arg = out[i] as string;
    if (!arg.startsWith('-')) break;
    i += GLOBAL_VALUE_OPTIONS.has(arg) ? 2 : 1;
  }
  for (let j = i + 1; j < out.length; j++) {
    if (out[j] === '--') break;
    const next = out[j + 1];
    // A value of its own (a negative number too, which the command then refuses), not the next option.
    if (out[j] !== '--version') continue;
    if (next !== undefined && (!next.startsWith('-') || /^-\d/.test(next))) {
      out.splice(j, 2, `--version=${next}`);
    } else if (ownVersion.has(out[i] as string)) {
      out[j] = '--version=';
    }
  }
  return out;
}

/** Runs the CLI on `argv` (as process.argv: node, script, args…) and returns the exit code. */
export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<ExitCode> {
  let exitCode: ExitCode = EXIT.ok;
  const program = buildProgram(io, (code) => {
    exitCode = code;
  });
  try {
    const ownVersion = new Set(
      program.commands.filter((c) => c.options.some((o) => o.long === '--version')).map((c) => c.name()),
    );
    await program.parseAsync(commandVersionOption(argv, ownVersion));
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        (e.code === 'commander.help' && e.exitCode === 0)
      ) {
        return EXIT.ok;
      }
      return EXIT.usage; // commander already printed the message
    }
    // An error message can echo the caller's text (the service's refusals quote it): printed as `printable`.
    if (e instanceof UsageError) {
      io.err(`error: ${printable(e.message)}\n`);
      return EXIT.usage;
    }
    const json = Boolean(program.opts<GlobalOptions>().json);
    if (e instanceof MaasApiError) {
      if (json && e.body !== undefined && typeof e.body === 'object') io.out(`${jsonText(e.body, 2)}\n`);
      io.err(`error: ${printable(`${e.message} (${e.status} ${e.code})`)}\n`);
      return EXIT.refused;
    }
    if (e instanceof ConnectionError) {
      io.err(`error: ${printable(e.message)}\n`);
      return EXIT.refused;
    }
    io.err(`error: ${printable((e as Error)?.message ?? String(e))}\n`);
    return EXIT.refused;
  }
}

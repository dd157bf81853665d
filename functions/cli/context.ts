/**
 * What every `maas` command shares: the exit codes, the usage error, where output goes, the global options
 * and the client they name, and how an answer is printed.
 */
import type { Command } from 'commander';
import { EnvironmentVariables, type EnvRecord, processEnv } from '../config/environment';
import { MaasClient, resolveEndpoint } from './client';
import { jsonText } from './format';

/** Exit codes of the CLI: 0 ok, 1 the server (or the network) said no, 2 usage error. */
export const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

/** The exit code a command's action returns (`maas dev` passes on the local service's own). */
export type ExitCode = number;

/** A mistake in how the command was called (bad file, malformed JSON…): exit code 2. */
export class UsageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UsageError';
  }
}

/** Where the CLI writes; tests capture it. */
export interface CliIo {
  readonly out: (text: string) => void;
  /**
   * Resolves when what `out` wrote has been taken by the reader of standard output (a pipe may hold it back);
   * rejects once standard output has failed (EPIPE: its reader went away). @default - resolves at once
   */
  readonly flush?: () => Promise<void>;
  readonly err: (text: string) => void;
  readonly env: EnvRecord;
  /** Whether progress bars may be drawn. */
  readonly isTty: boolean;
}

/** Standard output's failure, once it has failed (EPIPE: its reader went away); later writes are dropped. */
let stdoutFailure: Error | undefined;
let watchingStdout = false;

/**
 * Resolves when everything written to standard output so far has been taken by its reader: writes to a pipe are
 * queued while the reader is slower, and a process that exits first loses them. Rejects once it has failed.
 */
export function flushStdout(): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stdoutFailure) return reject(stdoutFailure);
    // Written in order: the callback of an empty write runs once the writes before it are done.
    process.stdout.write('', (e) => (e ? reject(e) : resolve()));
  });
}

/** The process's standard streams and environment (read through functions/config/environment.ts). */
export const processIo = (): CliIo => {
  if (!watchingStdout) {
    watchingStdout = true;
    // A reader that goes away (`| head`) is an EPIPE on standard output: noted, not a crash with a stack trace.
    process.stdout.on('error', (e) => {
      stdoutFailure ??= e;
    });
  }
  return {
    out: (t) => {
      if (!stdoutFailure) process.stdout.write(t);
    },
    flush: flushStdout,
    err: (t) => process.stderr.write(t),
    env: processEnv(),
    isTty: Boolean(process.stderr.isTTY),
  };
};

/** The options of the `maas` program itself, before the command name. */
export interface GlobalOptions {
  readonly endpoint?: string;
  readonly region?: string;
  /** Bearer token for a JWT stack (else `MAAS_TOKEN`). */
  readonly token?: string;
  readonly json?: boolean;
}

/** What a command module gets to define its commands. */
export interface CliContext {
  readonly io: CliIo;
  /** The global options as parsed. */
  globals(): GlobalOptions;
  /**
   * A client for the endpoint the global options (or the environment) name; a non-http(s) one, a token with blanks
   * and an https endpoint whose region cannot be told are usage errors.
   */
  client(): MaasClient;
  /**
   * Prints an answer: pretty JSON with `--json` (`jsonText`), else its human rendering, which prints the service's
   * text through `printable` (functions/cli/format.ts).
   */
  print(answer: unknown, human: (answer: never) => string): void;
  /**
   * Adapts a command's action, which resolves with its exit code, to commander's (which resolves with
   * nothing): the code becomes the result of the program's run.
   */
  action<A extends unknown[]>(fn: (...args: A) => Promise<ExitCode>): (...args: A) => Promise<void>;
}

/** The context of the commands of `program`; `onExitCode` receives the exit code of the action that ran. */
export function cliContext(program: Command, io: CliIo, onExitCode: (code: ExitCode) => void): CliContext {
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  return {
    io,
    globals,
    client() {
      const g = globals();
      const endpoint = resolveEndpoint(g.endpoint, io.env);
      if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
        throw new UsageError(`--endpoint must be an http(s) URL, got '${endpoint}'`);
      }
      const token = g.token?.trim() || new EnvironmentVariables(io.env).cliToken();
      try {
        return new MaasClient({
          endpoint,
          ...(g.region ? { region: g.region } : {}),
          ...(token ? { token } : {}),
        });
      } catch (e) {
        // What the client refuses is how it was called: a token with blanks, an https endpoint of unknown region.
        throw new UsageError((e as Error)?.message ?? String(e), { cause: e });
      }
    },
    print(answer, human) {
      io.out(globals().json ? `${jsonText(answer, 2)}\n` : `${human(answer as never)}\n`);
    },
    action:
      (fn) =>
      async (...args) => {
        onExitCode(await fn(...args));
      },
  };
}

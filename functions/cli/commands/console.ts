/**
 * `maas console`: the web console on this machine for the API that `--endpoint` names. It serves the console's
 * assets and forwards the page's API calls with the CLI's own client: SigV4-signed with the AWS credentials of
 * the environment (or `--token`'s bearer token), as every other command sends them, so no credential reaches the
 * browser and nothing is deployed for it.
 */
import type { Command } from 'commander';
import { configuredRegion, EnvironmentVariables } from '../../config/environment';
import type { ConsoleAuth } from '../../local/console-server';
import { needsSigning, regionFromHost } from '../client';
import { type CliContext, EXIT } from '../context';
import { printable } from '../format';
import { portOf } from '../input';

/** The port `maas console` listens on unless told otherwise. */
export const DEFAULT_CONSOLE_PORT = 3300;

/**
 * How the CLI's client authorizes requests to `endpoint` (as MaasClient decides it): the bearer token when one is
 * given, else SigV4 for an https endpoint off loopback, else nothing.
 */
export function consoleAuth(
  endpoint: string,
  token: string | undefined,
  region: string | undefined,
): ConsoleAuth {
  if (token) return { kind: 'bearer' };
  if (!needsSigning(endpoint)) return { kind: 'none' };
  return {
    kind: 'sigv4',
    region: region ?? regionFromHost(new URL(endpoint).hostname) ?? configuredRegion() ?? '',
  };
}

/** The line that says how requests are sent. */
export function describeAuth(auth: ConsoleAuth): string {
  switch (auth.kind) {
    case 'bearer':
      return 'with the bearer token';
    case 'sigv4':
      return `SigV4-signed for execute-api in ${auth.region}`;
    default:
      return 'unsigned';
  }
}

/** Resolves on the first SIGINT, SIGTERM or SIGHUP. */
const signalled = (): Promise<string> =>
  new Promise((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, () => resolve(s));
  });

/** Defines `maas console` on `program`. */
export function consoleCommands(program: Command, ctx: CliContext): void {
  program
    .command('console')
    .description(
      'serve the web console on this machine for the API --endpoint names, forwarding its calls signed as the CLI signs them',
    )
    .option(
      '--port <port>',
      `local port, 0-65535 (default: ${DEFAULT_CONSOLE_PORT}; 0: any free port)`,
      (v) => portOf('--port', v),
    )
    .action(
      ctx.action(async (opts: { port?: number }) => {
        const client = ctx.client();
        const g = ctx.globals();
        const token = g.token?.trim() || new EnvironmentVariables(ctx.io.env).cliToken();
        const auth = consoleAuth(client.endpoint, token, g.region);
        const { startConsoleServer } = await import('../../local/console-server');
        const server = await startConsoleServer({
          client,
          auth,
          port: opts.port ?? DEFAULT_CONSOLE_PORT,
          // The Live page's CloudWatch reads go to --region when it is given (with a bearer token, or an endpoint on
          // a custom domain, nothing else names the stack's region).
          ...(g.region ? { cloudWatch: { region: g.region } } : {}),
          // The line can quote a request's path and the API's refusal.
          onError: (line) => ctx.io.err(`${printable(line)}\n`),
        });
        ctx.io.out(
          `maas console for ${client.endpoint} (requests ${describeAuth(auth)}) on ${server.url}/console/\n` +
            'Ctrl-C stops it.\n',
        );
        const why = await signalled();
        ctx.io.out(`\n${why}: stopping…\n`);
        await server.close();
        return EXIT.ok;
      }),
    );
}

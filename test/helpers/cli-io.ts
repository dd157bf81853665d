/** A CLI `io` that records what the command prints (no terminal, so no progress bar). */
import type { CliIo } from '../../functions/cli/context';

export type CapturedIo = CliIo & { stdout: () => string; stderr: () => string };

export function captureIo(env: NodeJS.ProcessEnv = {}): CapturedIo {
  let out = '';
  let err = '';
  return {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    env,
    isTty: false,
    stdout: () => out,
    stderr: () => err,
  };
}

/**
 * A Python 3 with numpy for the tests that drive maas with a client written independently of it
 * (test/clients/*.py): `python3` on PATH, then `/usr/bin/python3`; failing both, Debian's `python3-numpy` is
 * installed when the process may (root, apt-get present), otherwise the error says what to install.
 */
import { spawn, spawnSync } from 'node:child_process';
import { aptInstall, canAptInstall } from './apt';

const CANDIDATES = ['python3', '/usr/bin/python3'] as const;

function hasNumpy(python: string): boolean {
  const r = spawnSync(python, ['-c', 'import numpy'], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

let found: string | undefined;

/**
 * The path or command of a Python 3 that imports numpy, installing Debian's `python3-numpy` when none does and
 * the process runs as root with apt-get. Throws, naming the package, when no such Python can be had.
 */
export function pythonWithNumpy(): string {
  if (found) return found;
  for (const python of CANDIDATES) {
    if (hasNumpy(python)) {
      found = python;
      return python;
    }
  }
  if (canAptInstall()) {
    aptInstall('python3-numpy', () => hasNumpy('/usr/bin/python3'));
    if (hasNumpy('/usr/bin/python3')) {
      found = '/usr/bin/python3';
      return found;
    }
  }
  throw new Error(
    'These tests need Python 3 with numpy: install it, e.g. `apt-get install -y python3-numpy` on Debian/Ubuntu ' +
      '(or `pip install numpy` for the python3 on PATH).',
  );
}

/** What a Python script wrote and how it ended. */
export interface PythonRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `script` with `args` under {@link pythonWithNumpy}, `input` on its stdin; resolves when it exits. */
export function runPython(script: string, input: string, args: readonly string[] = []): Promise<PythonRun> {
  const python = pythonWithNumpy();
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.end(input);
  });
}

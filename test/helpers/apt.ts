/**
 * Debian packages the tests need (Chromium for the console tests, numpy for the independent Python client),
 * installed when the process may: root, with apt-get. Test files run in parallel processes, and two apt-get runs at
 * once fail on apt's own lock, so one process at a time installs, holding APT_LOCK (a directory, made atomically,
 * naming its process); the others wait, then find the package there.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const APT_TIMEOUT_MS = 15 * 60_000;
const APT_LOCK = join(tmpdir(), 'maas-test-apt.lock');

/** Whether this process may install Debian packages (root, apt-get present). */
export function canAptInstall(): boolean {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return isRoot && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Installs Debian package `pkg` (apt-get update, then install) unless `present()` holds once the lock is held
 * (another test process may have installed it meanwhile). Call only when `canAptInstall()`.
 */
export function aptInstall(pkg: string, present: () => boolean): void {
  withAptLock(() => {
    if (present()) return;
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update'], { stdio: 'ignore', timeout: APT_TIMEOUT_MS, env });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], {
      stdio: 'ignore',
      timeout: APT_TIMEOUT_MS,
      env,
    });
  });
}

/** Runs `work` holding APT_LOCK: waits while a live process holds it, takes over one whose process is gone. */
function withAptLock(work: () => void): void {
  const deadline = Date.now() + 2 * APT_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      mkdirSync(APT_LOCK);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (!holderAlive()) {
      rmSync(APT_LOCK, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`waited too long for ${APT_LOCK} (another package install)`);
    Atomics.wait(pause, 0, 0, 250);
  }
  try {
    writeFileSync(join(APT_LOCK, 'pid'), String(process.pid));
    work();
  } finally {
    rmSync(APT_LOCK, { recursive: true, force: true });
  }
}

/** Whether the process named in APT_LOCK runs (a lock just made, its pid not yet written, counts as held). */
function holderAlive(): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(APT_LOCK, 'pid'), 'utf8'));
  } catch {
    return existsSync(APT_LOCK);
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Lays out synthesized Lambda assets the way the Node.js runtime sees them and invokes handlers in a
 * child process: `<root>/var/task` (the bundle), `<root>/opt` (the layers, merged), and a runtime
 * directory with the AWS SDK v3 that the managed runtime provides (`/var/runtime/node_modules`).
 * Nothing resolves from the repository's node_modules: the child runs with cwd in the sandbox, with
 * resolution limited to NODE_PATH, so a file missing from the layer or an import the bundle does not
 * ship fails the invocation.
 */
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FunctionAsset } from '../../infra/assembly';

const REPO_NODE_MODULES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules');
const INVOKE = join(dirname(fileURLToPath(import.meta.url)), 'invoke.mjs');
const RESULT_MARKER = '__MAAS_INVOKE_RESULT__ ';
const ERROR_MARKER = '__MAAS_INVOKE_ERROR__ ';

/**
 * Copies `@aws-sdk/*` and everything they depend on (package.json dependencies, transitively) from the
 * repository's node_modules into `<dir>/node_modules`: what the Lambda Node.js runtime provides.
 */
export function buildRuntimeDir(dir: string, nodeModules: string = REPO_NODE_MODULES): string {
  const target = join(dir, 'node_modules');
  const queue = readdirSync(join(nodeModules, '@aws-sdk')).map((n) => `@aws-sdk/${n}`);
  const seen = new Set<string>();
  while (queue.length > 0) {
    const name = queue.pop() as string;
    if (seen.has(name)) continue;
    seen.add(name);
    const src = join(nodeModules, name);
    if (!existsSync(join(src, 'package.json'))) continue; // nested copy inside its dependent, copied with it
    cpSync(src, join(target, name), { recursive: true, dereference: true });
    const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    queue.push(...Object.keys(pkg.dependencies ?? {}));
  }
  return target;
}

/**
 * {@link buildRuntimeDir} once per lock file: kept in the OS temp directory and reused by later runs
 * (the copy is atomic, so concurrent runs never see a half-built directory).
 */
export function cachedRuntimeDir(): string {
  const lock = readFileSync(join(REPO_NODE_MODULES, '..', 'package-lock.json'));
  const key = createHash('sha256').update(lock).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `maas-lambda-runtime-${key}`);
  if (existsSync(join(dir, 'node_modules', '@aws-sdk'))) return join(dir, 'node_modules');
  const building = `${dir}.${randomUUID().slice(0, 8)}`;
  buildRuntimeDir(building);
  try {
    renameSync(building, dir);
  } catch {
    rmSync(building, { recursive: true, force: true }); // another run finished first
  }
  return join(dir, 'node_modules');
}

export interface SandboxedFunction {
  readonly root: string;
  readonly taskDir: string;
  readonly optDir: string;
  /** `index.mjs` and the `handler` export, from the template's `Handler`. */
  readonly file: string;
  readonly exportName: string;
}

/** Copies a function's code to `<root>/var/task` and its layers, merged in order, to `<root>/opt`. */
export function sandboxFunction(root: string, fn: FunctionAsset): SandboxedFunction {
  const taskDir = join(root, 'var', 'task');
  const optDir = join(root, 'opt');
  mkdirSync(optDir, { recursive: true });
  if (!fn.code) throw new Error(`${fn.path}: inline code, not a bundle`);
  cpSync(fn.code.dir, taskDir, { recursive: true });
  for (const layer of fn.layers) cpSync(layer.dir, optDir, { recursive: true });
  const [module, exportName] = fn.handler.split('.');
  if (!module || !exportName) throw new Error(`${fn.path}: unexpected handler '${fn.handler}'`);
  const file = join(taskDir, `${module}.mjs`);
  if (!existsSync(file))
    throw new Error(`${fn.path}: ${module}.mjs is not in the bundle (ESM output expected)`);
  return { root, taskDir, optDir, file, exportName };
}

export interface InvokeResult {
  readonly ok: boolean;
  /** The handler's return value (ok) or the thrown error `{name, message, stack}`. */
  readonly value: unknown;
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number | null;
}

/**
 * Invokes the handler in a fresh `node` process: cwd = the task directory, NODE_PATH = the layer's
 * `nodejs/node_modules` then the runtime directory, and only the given environment (nothing inherited
 * but PATH).
 */
export function invoke(
  fn: SandboxedFunction,
  runtimeNodeModules: string,
  env: Record<string, string>,
  event: unknown,
): Promise<InvokeResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [INVOKE, fn.file, fn.exportName], {
      cwd: fn.taskDir,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        LAMBDA_TASK_ROOT: fn.taskDir,
        TZ: 'UTC',
        ...env,
        NODE_PATH: [join(fn.optDir, 'nodejs', 'node_modules'), runtimeNodeModules].join(':'),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (exitCode) => {
      const lines = stdout.split('\n');
      const result = lines.find((l) => l.startsWith(RESULT_MARKER));
      const error = lines.find((l) => l.startsWith(ERROR_MARKER));
      const value = result
        ? JSON.parse(result.slice(RESULT_MARKER.length))
        : error
          ? JSON.parse(error.slice(ERROR_MARKER.length))
          : undefined;
      resolvePromise({ ok: result !== undefined && exitCode === 0, value, stdout, stderr, exitCode });
    });
    child.stdin.end(JSON.stringify(event));
  });
}

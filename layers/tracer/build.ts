/**
 * Builds the tracer Lambda layer without Docker: esbuild bundles `@aws-lambda-powertools/tracer` and everything
 * it loads (`@aws-lambda-powertools/commons`, `aws-xray-sdk-core` and its dependencies) from the project's
 * node_modules into ONE minified CommonJS file, `build/nodejs/node_modules/@aws-lambda-powertools/tracer/index.js`,
 * next to a package.json `{name, version, main}`. In Lambda the layer sits under `/opt/nodejs/node_modules`,
 * on `NODE_PATH`, where `loadTracer` (functions/adapters/powertools-tracer.ts) `require`s it. The function
 * bundles leave the package out (`TRACER_LAYER_EXTERNALS` in functions/contract/bundling.ts).
 *
 * The output is plain JavaScript: one build serves both architectures.
 *
 * Used at synth time by `infra/constructs/tracer-layer.ts`; also a CLI:
 * `npx tsx layers/tracer/build.ts [outDir]`.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { TRACER_LAYER_EXTERNALS } from '../../functions/contract/bundling';

/** The package the layer ships: the bundles' tracer layer external (functions/contract/bundling.ts). */
export const TRACER_PACKAGE = TRACER_LAYER_EXTERNALS[0];

/** The layer's budget (unzipped): it is one file of a few hundred KB; more means a dependency crept in. */
export const TRACER_LAYER_MAX_UNZIPPED_BYTES = 2 * 1024 * 1024;

/** Path of the bundle inside the layer directory. */
export const TRACER_LAYER_MAIN = `nodejs/node_modules/${TRACER_PACKAGE}/index.js`;

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');

export interface BuildTracerLayerOptions {
  /** Directory that receives `nodejs/node_modules/...`. @default layers/tracer/build */
  readonly outDir?: string;
  /** Where the package is resolved from (a directory inside the project). @default the repository root */
  readonly projectDir?: string;
  /** Print the unzipped size. @default true */
  readonly log?: boolean;
}

export interface BuiltTracerLayer {
  /** Directory to zip as the layer (contains `nodejs/`). */
  readonly dir: string;
  /** The bundled `@aws-lambda-powertools/tracer` version. */
  readonly version: string;
  /** Total size of the files, i.e. the layer's unzipped size. */
  readonly unzippedBytes: number;
  /** Paths (relative to `dir`, `/`-separated) of every shipped file. */
  readonly files: readonly string[];
}

/** Thrown when the layer cannot be built or exceeds its size budget. */
export class TracerLayerBuildError extends Error {
  override readonly name = 'TracerLayerBuildError';
}

/** The CommonJS entry of the package (its `exports` `require` condition), resolved as the project resolves it. */
function tracerEntry(projectDir: string): string {
  try {
    return createRequire(join(projectDir, 'package.json')).resolve(TRACER_PACKAGE);
  } catch (e) {
    throw new TracerLayerBuildError(`${TRACER_PACKAGE} is not installed in ${projectDir}`, { cause: e });
  }
}

/** The installed `@aws-lambda-powertools/tracer` version (the layer's asset hash depends on it). */
export function tracerVersion(projectDir: string = repoRoot): string {
  // The package does not export its package.json: the nearest one above the entry that names the package.
  for (let dir = dirname(tracerEntry(projectDir)); dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version: string };
    if (pkg.name === TRACER_PACKAGE) return pkg.version;
  }
  throw new TracerLayerBuildError(`no package.json of ${TRACER_PACKAGE} in ${projectDir}`);
}

/** Builds the layer directory and returns what it holds. Fails over {@link TRACER_LAYER_MAX_UNZIPPED_BYTES}. */
export function buildTracerLayer(options: BuildTracerLayerOptions = {}): BuiltTracerLayer {
  const outDir = resolve(options.outDir ?? join(here, 'build'));
  const projectDir = resolve(options.projectDir ?? repoRoot);
  const version = tracerVersion(projectDir);
  const entry = tracerEntry(projectDir);
  rmSync(join(outDir, 'nodejs'), { recursive: true, force: true });
  const pkgDir = join(outDir, 'nodejs', 'node_modules', TRACER_PACKAGE);
  mkdirSync(pkgDir, { recursive: true });
  const result = buildSync({
    entryPoints: [entry],
    outfile: join(pkgDir, 'index.js'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    minify: true,
    // Class names survive minification (the X-Ray SDK's segments and errors are named in logs).
    keepNames: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  if (result.errors.length > 0) {
    throw new TracerLayerBuildError(`esbuild failed: ${result.errors.map((e) => e.text).join('; ')}`);
  }
  writeFileSync(
    join(pkgDir, 'package.json'),
    `${JSON.stringify({ name: TRACER_PACKAGE, version, main: 'index.js' }, null, 2)}\n`,
  );
  const files = [TRACER_LAYER_MAIN, `nodejs/node_modules/${TRACER_PACKAGE}/package.json`];
  const unzippedBytes = files.reduce((sum, f) => sum + statSync(join(outDir, f)).size, 0);
  if (options.log ?? true) {
    console.log(
      `tracer layer (${TRACER_PACKAGE} ${version}): ${files.length} files, ${formatKb(unzippedBytes)} unzipped`,
    );
  }
  if (unzippedBytes > TRACER_LAYER_MAX_UNZIPPED_BYTES) {
    throw new TracerLayerBuildError(
      `tracer layer is ${formatKb(unzippedBytes)} unzipped; the budget is ${formatKb(TRACER_LAYER_MAX_UNZIPPED_BYTES)}`,
    );
  }
  return { dir: outDir, version, unzippedBytes, files };
}

/** `123.4 KB` (KiB, one decimal). */
export const formatKb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [outDir] = process.argv.slice(2);
  try {
    buildTracerLayer(outDir ? { outDir } : {});
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}

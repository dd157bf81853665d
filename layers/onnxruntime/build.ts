/**
 * Builds the onnxruntime Lambda layer without Docker: copies `onnxruntime-node` and `onnxruntime-common`
 * from the project's node_modules into `build/<arch>/nodejs/node_modules/`, keeping only the CPU binaries
 * of the target Linux architecture (`bin/napi-v6/linux/<x64|arm64>`): no darwin/win32 files, no other
 * architecture, no GPU/CUDA/TensorRT/DirectML providers, no sources, no install scripts.
 *
 * Used at synth time by `infra/constructs/onnxruntime-layer.ts`; also a CLI:
 * `npx tsx layers/onnxruntime/build.ts [x86_64|arm64] [outDir]`.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAYER_EXTERNALS } from '../../functions/contract/bundling';

/** Lambda architectures the layer can be built for. */
export type LayerArch = 'x86_64' | 'arm64';

/** The onnxruntime-node version the layer ships (must match the project's dependency). */
export const ONNXRUNTIME_VERSION = '1.30.0';

/** Lambda rejects functions whose code plus layers exceed 250 MB unzipped; the layer is kept far below. */
export const LAYER_MAX_UNZIPPED_BYTES = 60 * 1024 * 1024;

/** The packages the layer ships: exactly the bundles' layer externals (functions/contract/bundling.ts). */
export const LAYER_PACKAGES = LAYER_EXTERNALS;

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');

/** Node's `process.arch` for a Lambda architecture: the directory name under `bin/napi-v6/linux/`. */
export const nodeArch = (arch: LayerArch): 'x64' | 'arm64' => (arch === 'arm64' ? 'arm64' : 'x64');

export interface BuildLayerOptions {
  /** @default 'x86_64' */
  readonly arch?: LayerArch;
  /** Directory that receives `nodejs/node_modules/...`. @default layers/onnxruntime/build/<arch> */
  readonly outDir?: string;
  /** Where `onnxruntime-node` and `onnxruntime-common` are copied from. @default <repo>/node_modules */
  readonly nodeModulesDir?: string;
  /** Print the unzipped size. @default true */
  readonly log?: boolean;
}

export interface BuiltLayer {
  /** Directory to zip as the layer (contains `nodejs/`). */
  readonly dir: string;
  readonly arch: LayerArch;
  /** Total size of the files, i.e. the layer's unzipped size. */
  readonly unzippedBytes: number;
  /** Paths (relative to `dir`, `/`-separated) of every shipped file. */
  readonly files: readonly string[];
}

/** Thrown when the layer cannot be built or exceeds its size budget. */
export class LayerBuildError extends Error {
  override readonly name = 'LayerBuildError';
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(full));
    else out.push(full);
  }
  return out;
}

/** Whether a file of a package (path relative to the package root, `/`-separated) belongs in the layer. */
export function shipsFile(pkg: (typeof LAYER_PACKAGES)[number], rel: string, arch: LayerArch): boolean {
  if (rel === 'package.json' || rel === 'LICENSE' || rel === 'LICENSE.txt') return true;
  if (rel.endsWith('.map') || rel.endsWith('.d.ts') || rel.endsWith('.ts')) return false;
  if (pkg === 'onnxruntime-common') return rel.startsWith('dist/');
  if (rel.startsWith('dist/')) return true;
  const binDir = `bin/napi-v6/linux/${nodeArch(arch)}/`;
  if (!rel.startsWith(binDir)) return false;
  // CPU execution provider only: GPU provider libraries are not shipped.
  return !/cuda|tensorrt|directml|dml|rocm|migraphx|openvino|qnn/i.test(rel.slice(binDir.length));
}

/** Builds the layer directory and returns what it holds. Fails over {@link LAYER_MAX_UNZIPPED_BYTES}. */
export function buildOnnxRuntimeLayer(options: BuildLayerOptions = {}): BuiltLayer {
  const arch = options.arch ?? 'x86_64';
  if (arch !== 'x86_64' && arch !== 'arm64') throw new LayerBuildError(`unknown architecture '${arch}'`);
  const outDir = resolve(options.outDir ?? join(here, 'build', arch));
  const source = resolve(options.nodeModulesDir ?? join(repoRoot, 'node_modules'));
  rmSync(join(outDir, 'nodejs'), { recursive: true, force: true });
  const target = join(outDir, 'nodejs', 'node_modules');
  const files: string[] = [];
  let unzippedBytes = 0;
  for (const pkg of LAYER_PACKAGES) {
    const pkgDir = join(source, pkg);
    if (!existsSync(join(pkgDir, 'package.json'))) throw new LayerBuildError(`${pkgDir} is not installed`);
    const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string };
    if (version !== ONNXRUNTIME_VERSION)
      throw new LayerBuildError(`${pkg} is ${version}; the layer pins ${ONNXRUNTIME_VERSION}`);
    for (const file of listFiles(pkgDir)) {
      const rel = relative(pkgDir, file).split(sep).join('/');
      if (!shipsFile(pkg, rel, arch)) continue;
      const dest = join(target, pkg, rel);
      mkdirSync(dirname(dest), { recursive: true });
      cpSync(file, dest);
      unzippedBytes += statSync(dest).size;
      files.push(`nodejs/node_modules/${pkg}/${rel}`);
    }
  }
  const binding = `nodejs/node_modules/onnxruntime-node/bin/napi-v6/linux/${nodeArch(arch)}/onnxruntime_binding.node`;
  if (!files.includes(binding)) throw new LayerBuildError(`the ${arch} binding is missing: ${binding}`);
  if (options.log ?? true) {
    console.log(`onnxruntime layer (${arch}): ${files.length} files, ${formatMb(unzippedBytes)} unzipped`);
  }
  if (unzippedBytes > LAYER_MAX_UNZIPPED_BYTES) {
    throw new LayerBuildError(
      `onnxruntime layer is ${formatMb(unzippedBytes)} unzipped; the budget is ${formatMb(LAYER_MAX_UNZIPPED_BYTES)}`,
    );
  }
  return { dir: outDir, arch, unzippedBytes, files };
}

/** `12.3 MB` (MiB, one decimal). */
export const formatMb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [arch, outDir] = process.argv.slice(2);
  try {
    buildOnnxRuntimeLayer({ arch: (arch ?? 'x86_64') as LayerArch, ...(outDir ? { outDir } : {}) });
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}

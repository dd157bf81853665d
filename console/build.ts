/**
 * Builds the maas console (console/src: Preact + uPlot, TypeScript/TSX) with esbuild into static assets in
 * console/dist: index.html, app.js, app.css and manifest.json (the files with their sizes, the build's inputs).
 * Nothing is fetched at run time: the page loads only these files.
 *
 * The servers that serve the console (functions/local/console-server.ts) call {@link ensureConsoleBuilt} before
 * answering: the assets are built when missing or older than one of their inputs, so `npm start` and `npm test`
 * need no build step. `npx tsx console/build.ts` builds them at once and prints their sizes.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** The console's folder (console/). */
export const CONSOLE_DIR = dirname(fileURLToPath(import.meta.url));
/** The repository's root, which the manifest's input paths are relative to. */
const ROOT = resolve(CONSOLE_DIR, '..');
/** Where the assets are written (gitignored). */
export const DIST_DIR = join(CONSOLE_DIR, 'dist');
const SRC_DIR = join(CONSOLE_DIR, 'src');
const MANIFEST = 'manifest.json';
/** Bumped when the layout of the output changes: an older build is then stale. */
const FORMAT = 1;

/** One file of a build. */
export interface ConsoleAsset {
  readonly name: string;
  readonly bytes: number;
  readonly gzipBytes: number;
}

/** What a build wrote (`manifest.json`). */
export interface ConsoleManifest {
  readonly format: number;
  /** When the build started (ms since the epoch): an input modified after it makes the build stale. */
  readonly builtAtMs: number;
  readonly assets: readonly ConsoleAsset[];
  /** Every file the bundle was made of (relative to the repository's root), this script among them. */
  readonly inputs: readonly string[];
}

/** Writes `data` to `path` through a temporary file and a rename, so a reader never sees half a file. */
function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Builds the console into `outDir` and returns its manifest. */
export async function buildConsole(outDir: string = DIST_DIR): Promise<ConsoleManifest> {
  const esbuild = await import('esbuild');
  const builtAtMs = Date.now();
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { app: join(SRC_DIR, 'main.tsx') },
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    platform: 'browser',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(CONSOLE_DIR, 'tsconfig.json'),
    outdir: outDir,
    write: false,
    metafile: true,
    legalComments: 'none',
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  mkdirSync(outDir, { recursive: true });
  const assets: ConsoleAsset[] = [];
  const add = (name: string, data: Uint8Array) => {
    writeAtomic(join(outDir, name), data);
    assets.push({ name, bytes: data.length, gzipBytes: gzipSync(data, { level: 9 }).length });
  };
  for (const file of result.outputFiles) add(relative(outDir, file.path), file.contents);
  const html = readFileSync(join(SRC_DIR, 'index.html'), 'utf8').replaceAll('{{build}}', String(builtAtMs));
  add('index.html', new TextEncoder().encode(html));
  const inputs = [
    ...new Set([
      ...Object.keys(result.metafile.inputs),
      relative(ROOT, join(SRC_DIR, 'index.html')),
      relative(ROOT, fileURLToPath(import.meta.url)),
    ]),
  ].sort();
  const manifest: ConsoleManifest = {
    format: FORMAT,
    builtAtMs,
    assets: assets.sort((a, b) => a.name.localeCompare(b.name)),
    inputs,
  };
  writeAtomic(join(outDir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** The manifest of the build in `outDir` when it is complete and none of its inputs changed since; else undefined. */
export function currentBuild(outDir: string = DIST_DIR): ConsoleManifest | undefined {
  let manifest: ConsoleManifest;
  try {
    manifest = JSON.parse(readFileSync(join(outDir, MANIFEST), 'utf8')) as ConsoleManifest;
  } catch {
    return undefined;
  }
  if (manifest.format !== FORMAT || !Array.isArray(manifest.inputs) || !Array.isArray(manifest.assets)) {
    return undefined;
  }
  try {
    for (const input of manifest.inputs) {
      if (statSync(join(ROOT, input)).mtimeMs > manifest.builtAtMs) return undefined;
    }
    for (const asset of manifest.assets) statSync(join(outDir, asset.name));
  } catch {
    return undefined; // an input or an asset is gone
  }
  return manifest;
}

const building = new Map<string, Promise<ConsoleManifest>>();

/**
 * The console's assets in `outDir`, built first when missing or stale (one build at a time per folder in this
 * process; builds in other processes write the same files atomically).
 */
export function ensureConsoleBuilt(outDir: string = DIST_DIR): Promise<ConsoleManifest> {
  const current = currentBuild(outDir);
  if (current) return Promise.resolve(current);
  let pending = building.get(outDir);
  if (!pending) {
    pending = buildConsole(outDir).finally(() => building.delete(outDir));
    building.set(outDir, pending);
  }
  return pending;
}

/** `1234` → `1.2 KiB`. */
export const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const manifest = await buildConsole();
  for (const a of manifest.assets) {
    console.log(`${a.name.padEnd(12)} ${kib(a.bytes).padStart(10)}  ${kib(a.gzipBytes).padStart(10)} gzip`);
  }
  const total = manifest.assets.reduce((s, a) => s + a.bytes, 0);
  const gzip = manifest.assets.reduce((s, a) => s + a.gzipBytes, 0);
  console.log(`${'total'.padEnd(12)} ${kib(total).padStart(10)}  ${kib(gzip).padStart(10)} gzip`);
}

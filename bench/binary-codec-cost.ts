/**
 * `npx tsx bench/binary-codec-cost.ts [runs]` — what the binary tensor data codec (domain/binary-tensors.ts) costs
 * the predict deploy bundle (not a test): the bundle as deployed (BUNDLE_OPTIONS, target node20 to run here) and
 * the same with the codec stubbed out, their sizes, and the median time fresh processes take to import each.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { BUNDLE_OPTIONS } from '../functions/contract/bundling';
import { HANDLER_ENTRIES } from '../functions/contract/env';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
async function bundle(outdir: string, plugins: Plugin[] = []) {
  const built = await build({
    ...BUNDLE_OPTIONS,
    mainFields: [...BUNDLE_OPTIONS.mainFields],
    external: [...BUNDLE_OPTIONS.external],
    target: 'node20',
    entryPoints: [join(ROOT, HANDLER_ENTRIES.predict)],
    outdir,
    metafile: true,
    logLevel: 'error',
    plugins,
  });
  const out = Object.entries(built.metafile.outputs).filter(([k]) => k.endsWith('.mjs'));
  const bytes = out.reduce((a, [, v]) => a + v.bytes, 0);
  const inputs: Record<string, number> = {};
  for (const [, v] of out)
    for (const [k, i] of Object.entries(v.inputs)) inputs[k] = (inputs[k] ?? 0) + i.bytesInOutput;
  return { bytes, inputs };
}
const work = mkdtempSync(join(tmpdir(), 'maas-codec-'));
const runs = Number(process.argv[2] ?? 21);

/** Median ms a fresh node process takes to import `bundle` (the handler's INIT without a table: no I/O). */
function importMs(bundle: string): number {
  const driver = join(work, `import-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(
    driver,
    `const t = performance.now(); await import(${JSON.stringify(bundle)}); console.log(performance.now() - t);\n`,
  );
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(process.execPath, [driver], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
    });
    samples.push(Number(r.stdout.trim().split('\n').pop()));
  }
  samples.sort((a, b) => a - b);
  return Math.round(samples[samples.length >> 1]! * 10) / 10;
}

async function main() {
  const full = await bundle(join(work, 'full'));
  console.log('full bundle bytes', full.bytes);
  for (const [k, b] of Object.entries(full.inputs))
    if (/binary-tensors|request-body/.test(k)) console.log('  ', k, b);
  // The codec stubbed out: what the bundle would be without it.
  const stub: Plugin = {
    name: 'stub',
    setup(b) {
      b.onLoad({ filter: /domain[\\/]binary-tensors\.ts$/ }, () => ({
        loader: 'ts',
        contents: `
export const INVALID_BINARY_DATA = 'INVALID_BINARY_DATA';
export function parseBinaryRequest(): never { throw new Error('x'); }
export function encodeBinaryResponse(): never { throw new Error('x'); }
export function responseOutputs(): never { throw new Error('x'); }
export function wantsBinaryOutput(): never { throw new Error('x'); }
`,
      }));
    },
  };
  const without = await bundle(join(work, 'stub'), [stub]);
  console.log('without codec bytes', without.bytes, 'difference', full.bytes - without.bytes);
  // Alternated, so that drift and background load fall on both alike.
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < 3; i++) {
    a.push(importMs(join(work, 'full', 'predict.mjs')));
    b.push(importMs(join(work, 'stub', 'predict.mjs')));
  }
  console.log(
    `import ms (median of ${runs}, 3 rounds): with codec ${a.join(' / ')}; without ${b.join(' / ')}`,
  );
  rmSync(work, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

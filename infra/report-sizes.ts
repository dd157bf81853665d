/**
 * Prints the unzipped size of every Lambda layer and function bundle of a synthesized assembly:
 * `tsx infra/report-sizes.ts [cdk.out]` (run by `npm run synth`).
 */

import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatMb } from '../layers/onnxruntime/build';
import { functionAssets, stackNames } from './assembly';

const kb = (bytes: number): string =>
  bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} kB` : formatMb(bytes);

export function reportSizes(outdir: string): string[] {
  const lines: string[] = [];
  for (const stack of stackNames(outdir)) {
    const seenLayers = new Set<string>();
    for (const fn of functionAssets(outdir, stack)) {
      for (const layer of fn.layers) {
        if (seenLayers.has(layer.hash)) continue;
        seenLayers.add(layer.hash);
        lines.push(`${stack} layer ${layer.displayName}: ${formatMb(layer.bytes)} unzipped`);
      }
      if (!fn.code) continue; // inline code (CDK's own custom-resource handlers)
      const entry = fn.handler.split('.')[0] ?? 'index';
      const bundle = statSync(join(fn.code.dir, `${entry}.mjs`), { throwIfNoEntry: false });
      if (!bundle) continue; // not one of ours: CDK custom-resource providers ship plain .js
      const name = fn.code.displayName.replace(/\/Code$/, '');
      lines.push(
        `${stack} function ${name}: ${entry}.mjs ${kb(bundle.size)}, ${kb(fn.code.bytes)} unzipped with source map`,
      );
    }
  }
  return lines;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const line of reportSizes(process.argv[2] ?? 'cdk.out')) console.log(line);
}

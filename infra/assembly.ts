/**
 * Reads a synthesized cloud assembly (`cdk.out/`): which asset directory holds each Lambda function's
 * code and layers, and how big they are unzipped. Used by `npm run synth` (sizes) and the smoke tests.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface AssetManifest {
  files: Record<string, { displayName?: string; source: { path?: string; packaging?: string } }>;
}
interface Template {
  Resources: Record<
    string,
    { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> }
  >;
}

export interface AssetInfo {
  readonly hash: string;
  /** Absolute directory of the staged asset. */
  readonly dir: string;
  readonly displayName: string;
  /** Sum of the file sizes (the unzipped size). */
  readonly bytes: number;
}

export interface FunctionAsset {
  readonly logicalId: string;
  /** Construct path, e.g. `Maas/Functions/Predict/Resource`. */
  readonly path: string;
  /** `index.handler`. */
  readonly handler: string;
  readonly runtime: string;
  readonly architectures: readonly string[];
  readonly environment: Readonly<Record<string, unknown>>;
  /** Undefined for inline (`ZipFile`) code, e.g. CDK's own custom-resource handlers. */
  readonly code: AssetInfo | undefined;
  readonly layers: readonly AssetInfo[];
}

/** Total size of the files below a directory. */
export function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(full) : statSync(full).size;
  }
  return total;
}

/** The stack names in an assembly (artifacts of type `aws:cloudformation:stack`). */
export function stackNames(outdir: string): string[] {
  const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as {
    artifacts: Record<string, { type: string }>;
  };
  return Object.entries(manifest.artifacts)
    .filter(([, a]) => a.type === 'aws:cloudformation:stack')
    .map(([name]) => name);
}

const s3KeyHash = (code: unknown): string | undefined => {
  const key = (code as { S3Key?: unknown } | undefined)?.S3Key;
  return typeof key === 'string' ? key.replace(/\.zip$/, '') : undefined;
};

/** Every Lambda function of the stack with the asset directories of its code (if a file asset) and layers. */
export function functionAssets(outdir: string, stackName: string): FunctionAsset[] {
  const template = JSON.parse(readFileSync(join(outdir, `${stackName}.template.json`), 'utf8')) as Template;
  const assets = JSON.parse(readFileSync(join(outdir, `${stackName}.assets.json`), 'utf8')) as AssetManifest;
  const asset = (hash: string | undefined, what: string): AssetInfo => {
    const entry = hash ? assets.files[hash] : undefined;
    if (!hash || !entry?.source.path) throw new Error(`${what}: no file asset in ${stackName}.assets.json`);
    const dir = join(outdir, entry.source.path);
    return { hash, dir, displayName: entry.displayName ?? hash, bytes: dirBytes(dir) };
  };
  const resources = template.Resources;
  return Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([logicalId, r]) => {
      const p = r.Properties ?? {};
      const path = String(r.Metadata?.['aws:cdk:path'] ?? logicalId);
      const layers = ((p.Layers as { Ref?: string }[] | undefined) ?? []).map((ref) => {
        const layer = ref.Ref ? resources[ref.Ref] : undefined;
        if (layer?.Type !== 'AWS::Lambda::LayerVersion')
          throw new Error(`${path}: layer is not in the stack`);
        return asset(s3KeyHash(layer.Properties?.Content), `${path} layer ${ref.Ref}`);
      });
      return {
        logicalId,
        path,
        handler: String(p.Handler),
        runtime: String(p.Runtime),
        architectures: (p.Architectures as string[] | undefined) ?? ['x86_64'],
        environment: (p.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {},
        code: s3KeyHash(p.Code) === undefined ? undefined : asset(s3KeyHash(p.Code), path),
        layers,
      };
    });
}

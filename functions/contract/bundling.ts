/**
 * esbuild options of every Lambda bundle, shared by the CDK stack (NodejsFunction `bundling`), the benchmark's
 * cold-start measurement and the smoke tests, so that what is measured and tested is what deploys.
 * Plain data: no esbuild or CDK import here.
 */

/** Packages provided by the onnxruntime Lambda layer (`/opt/nodejs/node_modules`), never bundled. */
export const LAYER_EXTERNALS = ['onnxruntime-node', 'onnxruntime-common'] as const;

/**
 * Packages provided by the tracer Lambda layer (`layers/tracer/`, attached only to functions with active X-Ray
 * tracing), never bundled: the Powertools Tracer and the X-Ray SDK it loads are evaluated only by a traced
 * function (`loadTracer` in functions/adapters/powertools-tracer.ts), yet inlined they would make every
 * bundle larger and its import slower at every cold start, traced or not (docs/performance.md, "Tracer layer").
 * A function that calls `loadTracer` without the layer gets the tracer that records nothing.
 */
export const TRACER_LAYER_EXTERNALS = ['@aws-lambda-powertools/tracer'] as const;

/**
 * Packages taken from the Lambda Node.js runtime instead of the bundle: none. The AWS SDK v3 is bundled
 * (tree-shaken, minified): its version is pinned by package-lock.json rather than by the runtime, and a
 * bundled SDK loads several times faster at INIT than the SDK's many-file packages resolved from
 * node_modules (`npm run bench` measures the cold start of exactly this bundle).
 */
export const RUNTIME_EXTERNALS = [] as const;

/**
 * Banner that gives bundled CommonJS dependencies a `require` inside the ESM bundle.
 */
export const ESM_REQUIRE_BANNER =
  "import { createRequire as __maasCreateRequire } from 'node:module';const require = __maasCreateRequire(import.meta.url);";

/** The esbuild build options (subset) every Lambda entry is bundled with. */
export const BUNDLE_OPTIONS = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  /** Lambda runtime (Node.js 24, `nodejs24.x`); local runs on Node.js 20 override it with `node20`. */
  target: 'node24',
  mainFields: ['module', 'main'],
  minify: true,
  /** Error class names survive minification, so logs name the real error. */
  keepNames: true,
  sourcemap: true,
  sourcesContent: false,
  external: [...RUNTIME_EXTERNALS, ...LAYER_EXTERNALS, ...TRACER_LAYER_EXTERNALS],
  banner: { js: ESM_REQUIRE_BANNER },
  /** Output extension: `.mjs` makes Node.js load the bundle as ESM without a package.json next to it. */
  outExtension: { '.js': '.mjs' },
} as const;

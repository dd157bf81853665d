/**
 * `optimize: basic` — onnxruntime's offline graph optimisation at its portable level, saved as a new model.
 *
 * The basic level (constant folding, redundant node elimination, and the like) rewrites the graph with standard
 * operators only, before any execution provider is chosen, so the result runs the same on every machine. The
 * higher levels ('extended', 'layout', 'all') fuse nodes into onnxruntime's own operators and pick layouts for the
 * CPU they ran on: they are refused as a stored artifact (a serving process applies them itself when it loads a
 * model, which the engine already does).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { BadRequestError, UnprocessableModelError } from '../domain/errors';
import { decodeModel, encodeModel } from './onnx-model';

/** The optimisation levels that can be stored as a version. */
export const OPTIMIZE_LEVELS = ['basic'] as const;
/** A level that can be stored. */
export type OptimizeLevel = (typeof OPTIMIZE_LEVELS)[number];

const HARDWARE_SPECIFIC = new Set(['extended', 'layout', 'all']);

/**
 * Checks the level of an `optimize` transform: only `basic`. 400 `INVALID_TRANSFORM` otherwise, saying why a
 * higher level cannot be stored.
 */
export function parseOptimizeLevel(level: unknown): OptimizeLevel {
  if (level === 'basic') return level;
  if (typeof level === 'string' && HARDWARE_SPECIFIC.has(level)) {
    throw new BadRequestError(
      `optimize level '${level}' is hardware-specific (fused onnxruntime operators and layouts chosen for the CPU it runs on) and cannot be stored as a version; use 'basic'`,
      'INVALID_TRANSFORM',
    );
  }
  throw new BadRequestError(
    `optimize level must be 'basic', got ${typeof level === 'string' ? `'${level.slice(0, 40)}'` : typeof level}`,
    'INVALID_TRANSFORM',
  );
}

/**
 * The model after onnxruntime's basic graph optimisations, as ONNX bytes: a CPU session is created with
 * `graphOptimizationLevel: 'basic'` and `optimizedModelFilePath` in a temporary directory, the file is read back
 * and the directory removed. 422 `INVALID_MODEL` when onnxruntime cannot load the model.
 */
export async function optimizeBasic(model: Uint8Array): Promise<Uint8Array> {
  const dir = await mkdtemp(join(tmpdir(), 'maas-optimize-'));
  const path = join(dir, 'model.onnx');
  try {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'basic',
        optimizedModelFilePath: path,
      });
    } catch (e) {
      throw new UnprocessableModelError(
        `onnxruntime cannot load the model to optimise it: ${(e as Error).message}`,
        { cause: e },
      );
    }
    await session.release();
    return withOwnOpsets(model, new Uint8Array(await readFile(path)));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The operator domains the nodes of a graph use, subgraphs included (`''` for the default domain). */
function domainsUsed(
  graph: onnxProto.onnx.IGraphProto | null | undefined,
  into = new Set<string>(),
): Set<string> {
  for (const node of graph?.node ?? []) {
    into.add(node.domain === 'ai.onnx' ? '' : (node.domain ?? ''));
    for (const a of node.attribute ?? []) {
      if (a.g) domainsUsed(a.g, into);
      for (const sub of a.graphs ?? []) domainsUsed(sub, into);
    }
  }
  return into;
}

/**
 * onnxruntime saves an opset import for every domain it knows (com.microsoft, ai.onnx.training, org.pytorch.aten…);
 * keep only those the source imported or a node uses, so the stored model claims nothing it does not need.
 */
function withOwnOpsets(source: Uint8Array, optimized: Uint8Array): Uint8Array {
  const imported = new Set(
    decodeModel(source).opsetImport.map((o) => (o.domain === 'ai.onnx' ? '' : (o.domain ?? ''))),
  );
  const model = decodeModel(optimized);
  const used = domainsUsed(model.graph);
  const keep = model.opsetImport.filter((o) => {
    const domain = o.domain === 'ai.onnx' ? '' : (o.domain ?? '');
    return imported.has(domain) || used.has(domain);
  });
  if (keep.length === model.opsetImport.length) return optimized;
  model.opsetImport = keep;
  return encodeModel(model);
}

/** Optimises at a requested level: `basic` ({@link optimizeBasic}); any other level is refused (400). */
export async function optimizeModel(model: Uint8Array, level: unknown): Promise<Uint8Array> {
  parseOptimizeLevel(level);
  return optimizeBasic(model);
}

/**
 * Module resolution hooks that reproduce the Lambda Node.js runtime for ES modules: a bare specifier that
 * is not found next to the importing file is looked up in each `NODE_PATH` directory, in order (the
 * runtime's NODE_PATH is `/opt/nodejs/node_modules:/var/runtime/node_modules:...`). Node itself applies
 * NODE_PATH only to `require()`.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dirs = (process.env.NODE_PATH ?? '').split(':').filter(Boolean);
const isBare = (s) => !s.startsWith('.') && !s.startsWith('/') && !/^[a-z]+:/i.test(s);

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (!isBare(specifier) || error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    for (const dir of dirs) {
      // A parent file inside `dir`'s parent makes `dir` (a node_modules directory) the first lookup.
      const parentURL = pathToFileURL(join(dir, '..', '__lambda_resolve__.mjs')).href;
      try {
        return await nextResolve(specifier, { ...context, parentURL });
      } catch {
        // not in this directory; try the next
      }
    }
    throw error;
  }
}

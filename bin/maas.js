#!/usr/bin/env node
// Entry for the `maas` command: runs the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('../functions/cli/main.ts');

/**
 * The project's test settings (vitest.config.ts) over the CLI tests of test/cli, e.g.
 * `npx vitest run -c test/cli/vitest.config.ts test/cli/progressive.test.ts`.
 */
import { defineConfig } from 'vitest/config';
import base from '../../vitest.config';

export default defineConfig({ ...base, test: { ...base.test, include: ['test/cli/**/*.test.ts'] } });

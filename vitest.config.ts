import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/{unit,integration,infra,smoke,e2e}/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Two cores: the emulators and onnxruntime share them with the test workers.
    maxWorkers: 2,
    reporters: ['default'],
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // test/e2e runs only against a deployed stack (MAAS_E2E_URL); without it the folder is not collected at all.
    include: [
      'test/{unit,integration,infra,smoke,console}/**/*.test.ts',
      'test/reliability/**/*.test.ts',
      ...(process.env.MAAS_E2E_URL ? ['test/e2e/**/*.test.ts'] : []),
    ],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Two cores: the emulators and onnxruntime share them with the test workers.
    maxWorkers: 2,
    reporters: ['default'],
  },
});

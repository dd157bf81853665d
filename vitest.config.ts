import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Two cores: the emulators and onnxruntime share them with the test workers.
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          // Template assertions only: they build stacks in memory and touch neither the environment, the
          // emulators nor mocks, so their files share one module graph a worker (aws-cdk-lib imported and
          // compiled once, not once a file: 64 s → 26 s for the folder).
          name: 'infra',
          include: ['test/infra/**/*.test.ts'],
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'services',
          // test/e2e runs only against a deployed stack (MAAS_E2E_URL); without it the folder is not collected.
          include: [
            'test/{unit,integration,smoke,console}/**/*.test.ts',
            'test/reliability/**/*.test.ts',
            ...(process.env.MAAS_E2E_URL ? ['test/e2e/**/*.test.ts'] : []),
          ],
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});

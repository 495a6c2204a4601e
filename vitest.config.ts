import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'all', include: ['test/**/*.test.ts'] },
      },
      {
        // The delivery and source tests again, with the server on the NATS backend (test/support/e2e.ts).
        extends: true,
        test: {
          name: 'nats',
          include: [
            'test/e2e/delivery*.test.ts',
            'test/e2e/filters.test.ts',
            'test/e2e/fidelity.test.ts',
            'test/e2e/management.test.ts',
            'test/e2e/eventtypes.test.ts',
            'test/e2e/subscriptions-api.test.ts',
            'test/e2e/sources*.test.ts',
            'test/conformance/webhook-sources.test.ts',
          ],
          env: { TRIBUTARY_TEST_BACKEND: 'nats' },
        },
      },
      {
        // And with the server on the Kafka backend.
        extends: true,
        test: {
          name: 'kafka',
          include: [
            'test/e2e/delivery*.test.ts',
            'test/e2e/filters.test.ts',
            'test/e2e/fidelity.test.ts',
            'test/e2e/management.test.ts',
            'test/e2e/eventtypes.test.ts',
            'test/e2e/subscriptions-api.test.ts',
            'test/e2e/sources*.test.ts',
            'test/conformance/webhook-sources.test.ts',
          ],
          env: { TRIBUTARY_TEST_BACKEND: 'kafka' },
        },
      },
    ],
  },
});

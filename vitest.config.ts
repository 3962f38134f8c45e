import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // 2-core CI machines: ONNX sessions and databases are heavy, so test files run two at a time at most.
    maxWorkers: 2,
  },
});

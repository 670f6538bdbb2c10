import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The fault suite has its own config and script (npm run test:faults).
    exclude: ["test/faults/**", "node_modules/**"],
    // Real processes and services: generous limits for a slow, busy machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
  },
});

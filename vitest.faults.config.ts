import { defineConfig } from "vitest/config";

// npm run test:faults: the fault-injection suite (test/faults). Each case
// starts its own Postgres, nats-server and processes; one file at a time.
export default defineConfig({
  test: {
    include: ["test/faults/**/*.test.ts"],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
  },
});

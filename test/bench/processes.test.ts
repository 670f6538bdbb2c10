import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { treeMemory } from "../../src/bench/processes.js";

describe("treeMemory", () => {
  it("sums the memory of a process and its descendants", async () => {
    // A shell whose child sleeps: the tree is the shell and the sleep.
    // Its own process group, so that the end of the test stops both.
    const shell = spawn("sh", ["-c", "sleep 30 & wait"], { stdio: "ignore", detached: true });
    try {
      for (;;) {
        const tree = treeMemory(shell.pid!);
        if (tree.processes.some((p) => p.command.startsWith("sleep"))) {
          expect(tree.processes.map((p) => p.pid)[0]).toBe(shell.pid);
          expect(tree.processes).toHaveLength(2);
          expect(tree.rssMB).toBeCloseTo(
            tree.processes.reduce((sum, p) => sum + p.rssMB, 0),
            6,
          );
          expect(tree.pssMB).toBeGreaterThan(0);
          expect(tree.pssMB).toBeLessThanOrEqual(tree.rssMB);
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      process.kill(-shell.pid!, "SIGKILL");
    }
  });
});

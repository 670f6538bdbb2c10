// The hooks every fault test file needs: its private servers for the file,
// a fresh system per case, everything stopped afterwards even when a case
// fails half-way (and, failing that, by the process groups' exit hook).
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import type { CaseReport } from "./run-case.js";
import { startServers, type Servers } from "./servers.js";
import { startFaultSystem, type FaultSystem, type SystemOptions } from "./system.js";

export interface FaultSuite {
  servers(): Servers;
  /** A system for this case; destroyed after it. */
  system(o?: SystemOptions): Promise<FaultSystem>;
  /** Things to close after this case (servers of the case's own, …). */
  defer(cleanup: () => Promise<void> | void): void;
}

export function useFaultSuite(o: { postgres?: Record<string, string> } = {}): FaultSuite {
  let servers: Servers | undefined;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    servers = await startServers(o);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await servers?.destroy();
  });
  return {
    servers: () => servers!,
    async system(options) {
      const sys = await startFaultSystem(servers!, options);
      cleanups.push(() => sys.destroy());
      return sys;
    },
    defer: (c) => void cleanups.push(c),
  };
}

/** Prints what the case saw, then fails with every violation it found. */
export function expectClean(report: CaseReport): void {
  console.log(report.notes.join("\n"));
  expect(report.violations).toEqual([]);
}

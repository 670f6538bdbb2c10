// The control case: the same load and checks with no fault. It must pass on
// any branch; if it fails, the harness (not the system) is at fault.
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { runCase } from "./support/run-case.js";
import { startServers, type Servers } from "./support/servers.js";
import { startFaultSystem, type FaultSystem } from "./support/system.js";

let servers: Servers;
let sys: FaultSystem | undefined;
beforeAll(async () => {
  servers = await startServers();
});
afterEach(async () => {
  await sys?.destroy();
  sys = undefined;
});
afterAll(async () => {
  await servers?.destroy();
});

it("steady load with no fault keeps every invariant", async () => {
  const t = Date.now();
  sys = await startFaultSystem(servers);
  console.log(`system started in ${Date.now() - t} ms`);
  const report = await runCase(sys, { fault: async () => {} });
  console.log(report.notes.join("\n"));
  expect(report.violations).toEqual([]);
});

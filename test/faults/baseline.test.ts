// The control case: the same load and checks with no fault. It must pass on
// any branch; if it fails, the harness (not the system) is at fault.
import { it } from "vitest";
import { runCase } from "./support/run-case.js";
import { expectClean, useFaultSuite } from "./support/suite.js";

const suite = useFaultSuite();

it("steady load with no fault keeps every invariant", async () => {
  const sys = await suite.system();
  expectClean(await runCase(sys, { fault: async () => {} }));
});

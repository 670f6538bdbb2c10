// The control case: the same load and checks with no fault. A violation here
// is no fault's doing: either the harness is wrong or the system breaks under
// plain load (a create and a delete at once can deadlock: INTERNAL
// "deadlock detected", issue 5).
import { it } from "vitest";
import { runCase } from "./support/run-case.js";
import { expectClean, useFaultSuite } from "./support/suite.js";

const suite = useFaultSuite();

it("steady load with no fault keeps every invariant", async () => {
  const sys = await suite.system();
  expectClean(await runCase(sys, { fault: async () => {} }));
});

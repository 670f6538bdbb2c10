// Watches dropped and resumed: every load deployment is watched; the network
// between the load and the API is cut (every connection reset) again and
// again, and the load also cuts streams itself. Each watch resumes with
// afterSequence and must see every sequence exactly once, up to DELETED.
import { it } from "vitest";
import { runCase } from "./support/run-case.js";
import { expectClean, useFaultSuite } from "./support/suite.js";
import { sleep } from "./support/wait.js";
import { startTcpProxy } from "./support/tcp-proxy.js";

const suite = useFaultSuite();

it("watches dropped and resumed keep a gapless sequence", async () => {
  const sys = await suite.system();
  const proxy = await startTcpProxy(sys.grpcTargets()[0]!);
  suite.defer(() => proxy.close());
  expectClean(
    await runCase(sys, {
      load: { targets: [proxy.address], watchEvery: 1, dropWatchEveryMs: 300, deleteAfterMs: 2500 },
      async fault(ctx) {
        let cut = 0;
        for (let i = 0; i < 8; i++) {
          await sleep(700);
          cut += proxy.cutAll();
        }
        const resumed = ctx.load.watchRecords().filter((w) => w.what === "open" && w.afterSequence !== undefined).length;
        ctx.note(`cut ${cut} connections in 8 rounds; watches resumed ${resumed} times`);
        if (resumed < 8) ctx.violation(`only ${resumed} watch resumes happened: the fault did not land`);
      },
    }),
  );
});

// nats-server goes away under load: restarted with its store, and once
// restarted without it (every stream and consumer gone). Postgres is the
// truth: every accepted task must still be carried out, by the processes
// that are running, without restarting them.
import { it } from "vitest";
import { runCase } from "./support/run-case.js";
import { expectClean, useFaultSuite } from "./support/suite.js";
import { sleep } from "./support/wait.js";

const suite = useFaultSuite();

it("restart nats-server under load", async () => {
  const sys = await suite.system();
  expectClean(
    await runCase(sys, {
      async fault(ctx) {
        await ctx.sys.servers.nats.stop("SIGTERM");
        // Down long enough for publishes and pulls to fail.
        await sleep(2000);
        await ctx.sys.servers.nats.start();
        ctx.note("nats-server stopped (SIGTERM) for 2 s, then started on its store");
      },
    }),
  );
});

it("nats-server loses its store under load", async () => {
  const sys = await suite.system();
  expectClean(
    await runCase(sys, {
      async fault(ctx) {
        await ctx.sys.servers.nats.stop("SIGKILL");
        ctx.sys.servers.nats.loseStore();
        await sleep(1000);
        await ctx.sys.servers.nats.start();
        ctx.note("nats-server killed, its store deleted, started again empty after 1 s");
      },
    }),
  );
});

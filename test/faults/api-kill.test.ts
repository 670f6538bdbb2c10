// kill -9 an API process between a create's commit and the publish of its
// outbox row. The load writes through api-1 only (failover: api-2 once api-1
// is gone), so every outbox row at the kill is api-1's; api-1 is stopped
// (SIGSTOP) until one is caught committed and unpublished, then killed.
// The relay of api-2 (or the workers' sweeper) must publish them.
import { it } from "vitest";
import { runCase } from "./support/run-case.js";
import { expectClean, useFaultSuite } from "./support/suite.js";
import { sleep, until } from "./support/wait.js";

const suite = useFaultSuite();

it("kill -9 the API between commit and publish", async () => {
  const sys = await suite.system({ apis: 2 });
  expectClean(
    await runCase(sys, {
      load: { targetMode: "failover", createsPerSec: 25, replicaEvery: 25 },
      async fault(ctx) {
        const api = ctx.sys.apis[0]!;
        let stranded: string[] = [];
        let probes = 0;
        for (const end = Date.now() + 40_000; Date.now() < end && stranded.length === 0; probes++) {
          api.signal("SIGSTOP");
          stranded = (await ctx.sys.db.query<{ task_id: string }>("select task_id from outbox")).rows.map((r) => r.task_id);
          if (stranded.length > 0) break;
          api.signal("SIGCONT");
          await sleep(30);
        }
        if (stranded.length === 0) {
          api.signal("SIGCONT");
          return ctx.violation(`no committed, unpublished create was caught in ${probes} probes`);
        }
        await api.kill9();
        ctx.note(`killed ${api.name} (probe ${probes}) with ${stranded.length} outbox rows unpublished: ${stranded.join(", ")}`);
        // Another process publishes them: a worker claims each (or it ends).
        const unclaimed = () => ctx.sys.db.query("select id, status, attempt from tasks where id = any($1) and status = 'PENDING' and attempt = 0", [stranded]);
        if (!(await until(async () => (await unclaimed()).rows.length === 0, 30_000, { everyMs: 200 }))) {
          ctx.violation(`tasks of the killed API's unpublished outbox rows never reached a worker: ${JSON.stringify((await unclaimed()).rows)}`);
        }
      },
    }),
  );
});

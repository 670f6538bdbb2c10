// kill -9 a model-server replica of a running deployment. The runtime
// restarts it and counts the restart; the deployment serves again through
// the gateway; nothing else notices.
import { it } from "vitest";
import { modelServers } from "./support/model-servers.js";
import { runCase } from "./support/run-case.js";
import { expectClean, useFaultSuite } from "./support/suite.js";
import { createVictim, victimDeployed } from "./support/victim.js";
import { until } from "./support/wait.js";

const suite = useFaultSuite();

it("kill -9 a model-server replica", async () => {
  const sys = await suite.system();
  expectClean(
    await runCase(sys, {
      async fault(ctx) {
        const name = await createVictim(ctx.sys, { suffix: "replica" });
        const problem = await victimDeployed(ctx.sys, name, 0, 30_000);
        if (problem) return ctx.violation(problem);
        const [replica] = modelServers(ctx.sys.dataDir).filter((p) => p.name === name);
        if (!replica) return ctx.violation(`${name} is RUNNING without a model server`);
        process.kill(replica.pid, "SIGKILL");
        ctx.note(`killed model server ${replica.pid} of ${name}`);
        const { uid, endpoint_url: endpoint } = (
          await ctx.sys.db.query<{ uid: string; endpoint_url: string }>("select uid, endpoint_url from deployments where name = $1", [name])
        ).rows[0]!;
        // The runtime starts another, which becomes ready, and counts the restart.
        const status = await until(async () => {
          const res = await fetch(`${ctx.sys.controlUrl()}/v1/deployments/${uid}/revisions/1`).catch(() => undefined);
          const s = res?.ok ? ((await res.json()) as { ready: number; restarts: number; replicas: Array<{ pid: number | null }> }) : undefined;
          return s && s.ready === 1 && s.restarts >= 1 && s.replicas.every((r) => r.pid !== replica.pid) ? s : undefined;
        }, 20_000);
        if (!status) return ctx.violation(`the runtime did not bring ${name}'s replica back within 20 s`);
        const servers = modelServers(ctx.sys.dataDir).filter((p) => p.name === name);
        if (servers.length !== 1) ctx.violation(`${name} runs ${servers.length} model servers after the restart, not 1`);
        const ready = await until(async () => ((await fetch(`${endpoint}/ready`).catch(() => undefined))?.status === 200 ? true : undefined), 10_000);
        if (!ready) ctx.violation(`${name} does not answer ready through the gateway after the restart`);
        const counted = await until(async () => {
          const row = (await ctx.sys.db.query<{ restarts: number }>("select (instances->>'restarts')::int as restarts from deployments where uid = $1", [uid]))
            .rows[0];
          return row && row.restarts >= 1 ? true : undefined;
        }, 15_000);
        if (!counted) ctx.violation(`${name}'s instances never counted the restart`);
      },
    }),
  );
});

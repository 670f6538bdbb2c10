// Postgres goes away under load: stopped (fast: sessions are terminated;
// immediate: the server crashes and recovers on start) and frozen (SIGSTOP:
// a hung server, not a dead one). Every process must ride it out: calls fail
// with "try again" meanwhile, and everything works again once it is back.
import { it } from "vitest";
import { freezePostgres } from "./support/freeze-postgres.js";
import { runCase, type CaseContext } from "./support/run-case.js";
import { expectClean, useFaultSuite } from "./support/suite.js";
import { sleep } from "./support/wait.js";

// Commits must survive a crash of the server (-m immediate): the private
// server's default (synchronous_commit off) would lose the last ones.
const suite = useFaultSuite({ postgres: { synchronous_commit: "on" } });

for (const mode of ["fast", "immediate"] as const) {
  it(`stop Postgres under load (-m ${mode}), then start it again`, async () => {
    const sys = await suite.system();
    expectClean(
      await runCase(sys, {
        async fault(ctx) {
          await ctx.sys.servers.pg.stop(mode);
          await sleep(3000);
          await ctx.sys.servers.pg.start();
          ctx.note(`Postgres stopped (-m ${mode}) for 3 s, then started`);
        },
      }),
    );
  });
}

/**
 * A frozen database must not hold calls: each is answered (UNAVAILABLE or
 * DEADLINE_EXCEEDED) in bounded time. The processes' own bounds are 5 s to
 * wait for a connection (DATABASE_CONNECT_TIMEOUT_MS) and 8 s for a query
 * the server does not answer (DATABASE_QUERY_TIMEOUT_MS); the client's
 * deadline is longer, so a call the server holds past them shows up.
 */
const FREEZE_MS = 12_000;
const ANSWER_WITHIN_MS = 10_000;

it("freeze Postgres (SIGSTOP) under load, then thaw it", async () => {
  const sys = await suite.system();
  expectClean(
    await runCase(sys, {
      load: { callTimeoutMs: 30_000 },
      async fault(ctx: CaseContext) {
        const from = Date.now();
        const thaw = freezePostgres(ctx.sys.servers.pg);
        try {
          await sleep(FREEZE_MS);
        } finally {
          thaw();
        }
        ctx.note(`Postgres frozen for ${FREEZE_MS / 1000} s`);
        // Calls made while it was frozen: all answered, none held.
        await sleep(ANSWER_WITHIN_MS);
        const during = ctx.load.calls().filter((c) => c.t >= from && c.t < from + FREEZE_MS - ANSWER_WITHIN_MS);
        const held = during.filter((c) => c.ms > ANSWER_WITHIN_MS);
        if (held.length > 0) {
          ctx.violation(
            `${held.length} of ${during.length} calls made while Postgres was frozen were held longer than ${ANSWER_WITHIN_MS / 1000} s: ${held
              .slice(0, 5)
              .map((c) => `${c.op} ${c.code} after ${c.ms} ms`)
              .join("; ")}`,
          );
        }
      },
    }),
  );
});

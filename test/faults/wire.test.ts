// Wire probes against the API while a steady client (the load generator, in
// its own process) keeps calling: the API must stay up, answer the probes
// without breaking, and keep serving the client meanwhile.
import { it } from "vitest";
import { runCase } from "./support/run-case.js";
import { expectClean, useFaultSuite } from "./support/suite.js";
import { sleep } from "./support/wait.js";
import { wireProbes } from "./support/wire.js";

const suite = useFaultSuite();

/**
 * While a probe runs, every call of the steady client is answered OK within
 * this: the bound is the feature (one client's abuse must not stall the
 * others). On two cores the probe's own client, the API, Postgres and the
 * workers share the CPU: a flood of 3,000 reset streams alone delays the
 * steady client's calls by up to ~3.2 s on an idle machine, so the bound
 * is 5 s (the stalls this case was written for lasted 4–7 s and more).
 */
const SERVED_WITHIN_MS = 5000;

it("wire probes: the API stays up and keeps serving a steady client", async () => {
  // A short idle limit, so that the idle-connections probe sees them closed.
  const sys = await suite.system({ env: { MODELDEPLOY_IDLE_CONNECTION_MS: "5000" } });
  const api = sys.apis[0]!;
  const target = { grpc: String(api.ready["grpc"]), http: String(api.ready["http"]), apiKey: sys.apiKey };
  expectClean(
    await runCase(sys, {
      async fault(ctx) {
        const windows: Array<{ name: string; from: number; to: number }> = [];
        for (const probe of wireProbes) {
          const from = Date.now();
          let said: string | void;
          try {
            said = await probe.run(target);
          } catch (err) {
            said = `probe failed: ${(err as Error).message}`;
          }
          windows.push({ name: probe.name, from, to: Date.now() });
          ctx.note(`${probe.name}: ${((Date.now() - from) / 1000).toFixed(1)} s${said ? `, ${said}` : ""}`);
          if (!api.alive()) break;
        }
        // A call is recorded when it ends, by its deadline at the latest.
        await sleep(ctx.load.config.callTimeoutMs);
        const calls = ctx.load.calls();
        for (const w of windows) {
          const during = calls.filter((c) => c.t >= w.from && c.t <= w.to);
          const slow = during.filter((c) => c.code !== "OK" || c.ms > SERVED_WITHIN_MS);
          if (slow.length > 0) {
            ctx.violation(
              `while "${w.name}" ran, ${slow.length} of ${during.length} calls of the steady client were not served within ${SERVED_WITHIN_MS / 1000} s: ${slow
                .slice(0, 4)
                .map((c) => `${c.op} ${c.code} ${c.ms} ms`)
                .join("; ")}`,
            );
          }
        }
      },
    }),
  );
});

// GetDeployment at a steady rate on deployments that are live: the calls a
// client keeps making while the system is under a fault.
import { errorMessage, statusName, type Apis } from "./api.js";
import type { Recorder } from "./recorder.js";

export function startReads(o: { apis: Apis; recorder: Recorder; perSec: number; timeoutMs: number; names: () => string[] }): { stop(): void } {
  if (o.perSec <= 0) return { stop: () => {} };
  const timer = setInterval(() => {
    const names = o.names();
    const name = names[Math.floor(Math.random() * names.length)];
    if (name === undefined) return;
    const api = o.apis.next();
    const t = Date.now();
    api.deployments.getDeployment({ name }, { timeoutMs: o.timeoutMs }).then(
      () => o.recorder.write({ kind: "call", op: "get", t, ms: Date.now() - t, target: api.address, code: "OK", name, taskId: "", requestId: "", try: 1 }),
      (err: unknown) => {
        const code = statusName(err);
        o.apis.failed(api, code);
        o.recorder.write({
          kind: "call",
          op: "get",
          t,
          ms: Date.now() - t,
          target: api.address,
          code,
          name,
          taskId: "",
          requestId: "",
          try: 1,
          message: errorMessage(err),
        });
      },
    );
  }, 1000 / o.perSec);
  return { stop: () => clearInterval(timer) };
}

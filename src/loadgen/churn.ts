// Creates at a steady rate and deletes each created deployment a while later.
// A create that may or may not have happened (UNAVAILABLE, DEADLINE_EXCEEDED,
// …) is retried with the same request id, so it happens once at most; a
// delete is retried until it is answered.
import { deploymentName } from "../domain/names.js";
import { errorMessage, statusName, type Apis } from "./api.js";
import type { LoadConfig } from "./config.js";
import type { Recorder } from "./recorder.js";

export interface ChurnStats {
  creates: number;
  createdOk: number;
  deletedOk: number;
  skipped: number;
  undeleted: string[];
}

export interface Churn {
  /** Names created OK and not yet deleted. */
  live(): string[];
  /** Stops creating, deletes every deployment still live, and resolves once they are answered or at the deadline. */
  drain(deadline: number): Promise<ChurnStats>;
}

/** Worth another try with the same request id (the call may not have happened, or may have). */
const RETRYABLE = new Set(["UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "ABORTED", "CANCELED", "RESOURCE_EXHAUSTED"]);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function startChurn(o: { config: LoadConfig; apis: Apis; recorder: Recorder; onCreated: (name: string) => void }): Churn {
  const { config, apis, recorder } = o;
  const live = new Map<string, { number: number; timer: NodeJS.Timeout }>();
  const pending = new Set<Promise<void>>();
  let n = 0;
  let inFlight = 0;
  let draining = false;
  let deleteDeadline = Infinity;
  const stats: ChurnStats = { creates: 0, createdOk: 0, deletedOk: 0, skipped: 0, undeleted: [] };

  const track = (p: Promise<void>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  const remove = async (name: string, number: number) => {
    live.delete(name);
    const requestId = `${config.runId}-d${number}`;
    for (let attempt = 1; ; attempt++) {
      if (Date.now() > deleteDeadline) {
        stats.undeleted.push(name);
        return;
      }
      const api = apis.next();
      const t = Date.now();
      try {
        const task = await api.deletions.deleteDeployment({ name, requestId }, { timeoutMs: config.callTimeoutMs });
        recorder.write({ kind: "call", op: "delete", t, ms: Date.now() - t, target: api.address, code: "OK", name, taskId: task.id, requestId, try: attempt });
        stats.deletedOk++;
        return;
      } catch (err) {
        const code = statusName(err);
        apis.failed(api, code);
        recorder.write({ kind: "call", op: "delete", t, ms: Date.now() - t, target: api.address, code, name, taskId: "", requestId, try: attempt, message: errorMessage(err) });
        if (code === "NOT_FOUND") return;
        if (!RETRYABLE.has(code)) {
          stats.undeleted.push(name);
          return;
        }
      }
      await sleep(Math.min(2000, 200 * attempt));
    }
  };

  const scheduleDelete = (name: string, number: number) => {
    const timer = setTimeout(() => track(remove(name, number)), config.deleteAfterMs);
    live.set(name, { number, timer });
  };

  const create = async (number: number) => {
    const suffix = `${config.runId}-${number}`;
    const name = deploymentName(config.model.name, suffix);
    const replicas = config.replicaEvery > 0 && number % config.replicaEvery === 0 ? 1 : 0;
    const requestId = `${config.runId}-c${number}`;
    const request = { model: config.model, scaling: { minReplicas: replicas, maxReplicas: replicas }, suffix, requestId };
    stats.creates++;
    for (let attempt = 1; attempt <= config.createTries; attempt++) {
      const api = apis.next();
      const t = Date.now();
      try {
        const res = await api.deployments.createDeployment(request, { timeoutMs: config.callTimeoutMs });
        recorder.write({ kind: "call", op: "create", t, ms: Date.now() - t, target: api.address, code: "OK", name, taskId: res.task?.id ?? "", requestId, try: attempt });
        stats.createdOk++;
        if (draining) track(remove(name, number));
        else scheduleDelete(name, number);
        o.onCreated(name);
        return;
      } catch (err) {
        const code = statusName(err);
        apis.failed(api, code);
        recorder.write({ kind: "call", op: "create", t, ms: Date.now() - t, target: api.address, code, name, taskId: "", requestId, try: attempt, message: errorMessage(err) });
        // Draining: a create whose answer was lost is left to the final sweep.
        if (!RETRYABLE.has(code) || draining) return;
      }
      await sleep(500 * attempt);
    }
  };

  const tick = () => {
    if (inFlight >= config.maxInFlight) {
      stats.skipped++;
      return;
    }
    inFlight++;
    track(create(++n).finally(() => inFlight--));
  };
  const timer = config.createsPerSec > 0 ? setInterval(tick, 1000 / config.createsPerSec) : undefined;

  return {
    live: () => [...live.keys()],
    async drain(deadline) {
      draining = true;
      deleteDeadline = deadline;
      clearInterval(timer);
      for (const [name, { number, timer }] of live) {
        clearTimeout(timer);
        track(remove(name, number));
      }
      while (pending.size > 0) await Promise.all([...pending]);
      return stats;
    },
  };
}

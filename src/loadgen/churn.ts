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

interface Ctx {
  config: LoadConfig;
  apis: Apis;
  recorder: Recorder;
  stats: ChurnStats;
  draining: boolean;
  deleteDeadline: number;
}

/** Deletes until answered (OK or NOT_FOUND), a permanent error, or the drain's deadline. */
async function deleteUntilAnswered(ctx: Ctx, name: string, number: number): Promise<void> {
  const { config, apis, recorder, stats } = ctx;
  const requestId = `${config.runId}-d${number}`;
  for (let attempt = 1; ; attempt++) {
    if (Date.now() > ctx.deleteDeadline) {
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
      recorder.write({
        kind: "call",
        op: "delete",
        t,
        ms: Date.now() - t,
        target: api.address,
        code,
        name,
        taskId: "",
        requestId,
        try: attempt,
        message: errorMessage(err),
      });
      if (code === "NOT_FOUND") return;
      if (!RETRYABLE.has(code)) {
        stats.undeleted.push(name);
        return;
      }
    }
    await sleep(Math.min(2000, 200 * attempt));
  }
}

/** Creates deployment `number`; resolves with its name once created OK, undefined when it was not. */
async function createOnce(ctx: Ctx, number: number): Promise<string | undefined> {
  const { config, apis, recorder, stats } = ctx;
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
      recorder.write({
        kind: "call",
        op: "create",
        t,
        ms: Date.now() - t,
        target: api.address,
        code: "OK",
        name,
        taskId: res.task?.id ?? "",
        requestId,
        try: attempt,
      });
      stats.createdOk++;
      return name;
    } catch (err) {
      const code = statusName(err);
      apis.failed(api, code);
      recorder.write({
        kind: "call",
        op: "create",
        t,
        ms: Date.now() - t,
        target: api.address,
        code,
        name,
        taskId: "",
        requestId,
        try: attempt,
        message: errorMessage(err),
      });
      // Draining: a create whose answer was lost is left to the final sweep.
      if (!RETRYABLE.has(code) || ctx.draining) return undefined;
    }
    await sleep(500 * attempt);
  }
  return undefined;
}

export function startChurn(o: { config: LoadConfig; apis: Apis; recorder: Recorder; onCreated: (name: string) => void }): Churn {
  const ctx: Ctx = { ...o, stats: { creates: 0, createdOk: 0, deletedOk: 0, skipped: 0, undeleted: [] }, draining: false, deleteDeadline: Infinity };
  const live = new Map<string, { number: number; timer: NodeJS.Timeout }>();
  const pending = new Set<Promise<void>>();
  let n = 0;
  let inFlight = 0;
  const track = (p: Promise<void>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  const remove = (name: string, number: number) => {
    live.delete(name);
    track(deleteUntilAnswered(ctx, name, number));
  };
  const create = async (number: number) => {
    const name = await createOnce(ctx, number);
    if (name === undefined) return;
    if (ctx.draining) remove(name, number);
    else live.set(name, { number, timer: setTimeout(() => remove(name, number), o.config.deleteAfterMs) });
    o.onCreated(name);
  };
  const tick = () => {
    if (inFlight >= o.config.maxInFlight) {
      ctx.stats.skipped++;
      return;
    }
    inFlight++;
    track(create(++n).finally(() => inFlight--));
  };
  const timer = o.config.createsPerSec > 0 ? setInterval(tick, 1000 / o.config.createsPerSec) : undefined;

  return {
    live: () => [...live.keys()],
    async drain(deadline) {
      ctx.draining = true;
      ctx.deleteDeadline = deadline;
      clearInterval(timer);
      for (const [name, { number, timer: t }] of live) {
        clearTimeout(t);
        remove(name, number);
      }
      while (pending.size > 0) await Promise.all([...pending]);
      return ctx.stats;
    },
  };
}

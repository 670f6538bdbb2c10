// A deployment the case itself creates (outside the load) to aim a fault at.
import { createApis } from "../../../src/loadgen/api.js";
import { deploymentName } from "../../../src/domain/names.js";
import type { Role } from "./role.js";
import type { FaultSystem } from "./system.js";
import { sleep } from "./wait.js";

export const VICTIM_MODEL = "faults/victim";

/** Creates it through a live API; returns its name. */
export async function createVictim(sys: FaultSystem, o: { suffix: string; uri?: string; sha256?: string; replicas?: number }): Promise<string> {
  const targets = sys.apis.filter((a) => a.alive()).map((a) => String(a.ready["grpc"]));
  const api = createApis(targets, sys.apiKey).next();
  const replicas = o.replicas ?? 1;
  await api.deployments.createDeployment(
    {
      model: { name: VICTIM_MODEL, uri: o.uri ?? sys.model.uri, sha256: o.sha256 ?? sys.model.sha256 },
      scaling: { minReplicas: replicas, maxReplicas: replicas },
      suffix: o.suffix,
      requestId: `victim-${o.suffix}`,
    },
    { timeoutMs: 10_000 },
  );
  return deploymentName(VICTIM_MODEL, o.suffix);
}

export interface VictimState {
  state: string;
  status: string;
  phase: string;
  attempt: number;
}

export async function victimState(sys: FaultSystem, name: string): Promise<VictimState | undefined> {
  return (
    await sys.db.query<VictimState>(
      `select d.state, t.status, t.phase, t.attempt from deployments d join tasks t on t.deployment_uid = d.uid and t.kind = 'DEPLOY'
      where d.name = $1`,
      [name],
    )
  ).rows[0];
}

/** Waits until its deploy task completed (RUNNING) in an attempt after `afterAttempt`; a sentence saying otherwise when it does not. */
export async function victimDeployed(sys: FaultSystem, name: string, afterAttempt: number, boundMs: number): Promise<string | undefined> {
  const end = Date.now() + boundMs;
  let s: VictimState | undefined;
  for (;;) {
    s = await victimState(sys, name).catch(() => s);
    if (s && s.status !== "PENDING" && s.status !== "RUNNING") break;
    if (Date.now() > end) break;
    await sleep(100);
  }
  if (s?.status === "COMPLETED" && s.state === "RUNNING" && s.attempt > afterAttempt) return undefined;
  return `${name} was not deployed by a later attempt within ${boundMs / 1000} s: ${JSON.stringify(s)}`;
}

/** The worker process holding its deploy task's lease (lease owner: host-pid-suffix), and the task id. */
export async function workerHolding(sys: FaultSystem, name: string): Promise<{ worker: Role | undefined; taskId: string; owner: string }> {
  const row = (
    await sys.db.query<{ id: string; lease_owner: string | null }>("select id, lease_owner from tasks where deployment_name = $1 and kind = 'DEPLOY'", [name])
  ).rows[0];
  const owner = row?.lease_owner ?? "";
  const pid = Number(/-(\d+)-[^-]+$/.exec(owner)?.[1] ?? 0);
  return { worker: sys.workers.find((w) => w.pid === pid), taskId: row?.id ?? "", owner };
}

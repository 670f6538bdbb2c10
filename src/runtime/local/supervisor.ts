// Owns every revision's replicas on this host: starts model-server processes,
// probes their readiness as soon as a process says it is ready (and on an
// interval, which also catches a replica that stops being ready or never
// says so), and caps the total replica count.
import type { Logger } from "../../log.js";
import { RuntimeError } from "../driver.js";
import { probeReady } from "./health-check.js";
import type { LogTail } from "../../log-tail.js";
import type { Replica } from "./replica.js";
import { Revision, type RevisionDesired, type RevisionTiming } from "./revision.js";
import { spawnReplicaProcess } from "./replica-process.js";

export interface SupervisorOptions extends RevisionTiming {
  /** argv prefix of the model server, e.g. [process.execPath, ".../model-server/main.js"]. */
  modelServerCommand: readonly string[];
  /** Period of the fallback readiness probe; a ready signal is probed at once. */
  healthIntervalMs: number;
  maxReplicas: number;
  logger: Logger;
}

export interface Supervisor {
  get(uid: string, revision: number): Revision | undefined;
  revisionsOf(uid: string): Revision[];
  all(): Revision[];
  /** Creates or updates a revision; throws INSUFFICIENT_RESOURCES beyond maxReplicas. */
  apply(desired: RevisionDesired): Promise<void>;
  /** Stops and forgets a revision (after draining its replicas). */
  remove(uid: string, revision: number): Promise<void>;
  close(): Promise<void>;
}

const key = (uid: string, revision: number) => `${uid}#${revision}`;

export function createSupervisor(options: SupervisorOptions): Supervisor {
  const revisions = new Map<string, Revision>();
  const probeTimeoutMs = Math.max(250, Math.min(2_000, options.healthIntervalMs * 2));
  let closed = false;

  const launch = (desired: RevisionDesired, tail: LogTail) => {
    const { spec, weights } = desired;
    return spawnReplicaProcess(
      options.modelServerCommand,
      [
        "--model",
        weights.path,
        "--name",
        spec.deploymentName,
        "--model-version",
        String(spec.revision),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--threads",
        String(Math.max(0, spec.resources.threadCount)),
        "--max-batch-size",
        String(Math.max(0, spec.resources.maxBatchSize)),
        "--exit-on-stdin-close",
      ],
      tail,
    );
  };

  const probe = (replica: Replica) => {
    const port = replica.port;
    if (port === undefined || replica.phase !== "running") return;
    const ticket = replica.beginProbe();
    void probeReady(port, probeTimeoutMs).then((ready) => replica.endProbe(ticket, port, ready));
  };
  const probeAll = () => {
    for (const revision of revisions.values()) {
      for (const replica of revision.replicas) if (!replica.probing) probe(replica);
    }
  };
  const timer = setInterval(probeAll, options.healthIntervalMs);
  timer.unref();

  const totalDesired = () => [...revisions.values()].reduce((sum, r) => sum + r.desired.replicas, 0);

  return {
    get: (uid, revision) => revisions.get(key(uid, revision)),
    revisionsOf: (uid) => [...revisions.values()].filter((r) => r.uid === uid),
    all: () => [...revisions.values()],

    async apply(desired) {
      if (closed) throw new RuntimeError("INTERNAL", "the local runtime is shutting down", { retryable: true });
      const k = key(desired.spec.deploymentUid, desired.spec.revision);
      const existing = revisions.get(k);
      const after = totalDesired() - (existing?.desired.replicas ?? 0) + desired.replicas;
      if (after > options.maxReplicas) {
        throw new RuntimeError(
          "INSUFFICIENT_RESOURCES",
          `this host runs at most ${options.maxReplicas} model-server replicas; ` +
            `${totalDesired()} are in use and this revision asks for ${desired.replicas}`,
        );
      }
      const logger = options.logger.child({
        workspace: desired.spec.workspace,
        deployment: desired.spec.deploymentName,
        deploymentUid: desired.spec.deploymentUid,
        revision: desired.spec.revision,
      });
      const revision = existing ?? new Revision(desired, launch, options, logger, probe);
      revisions.set(k, revision);
      await revision.apply(desired);
    },

    async remove(uid, revision) {
      const r = revisions.get(key(uid, revision));
      if (!r) return;
      await r.apply({ ...r.desired, replicas: 0 });
      // A concurrent apply may have scaled it up again meanwhile.
      if (r.desired.replicas === 0) revisions.delete(key(uid, revision));
    },

    async close() {
      closed = true;
      clearInterval(timer);
      await Promise.all([...revisions.values()].map((r) => r.kill()));
    },
  };
}

// The replicas of one revision of a deployment, with the counts the worker
// reads and the round-robin choice the gateway makes.
import type { Logger } from "../../log.js";
import type { PreparedWeights, RevisionSpec, RevisionStatus } from "../driver.js";
import type { LogTail } from "../../log-tail.js";
import { Replica } from "./replica.js";
import type { ReplicaProcess } from "./replica-process.js";

/** What a revision should be: persisted, and re-applied after an agent restart. */
export interface RevisionDesired {
  spec: RevisionSpec;
  weights: PreparedWeights;
  replicas: number;
}

export interface RevisionTiming {
  /** How long a replica being removed may keep serving its in-flight requests. */
  drainTimeoutMs: number;
  /** Between SIGTERM and SIGKILL. */
  stopGraceMs: number;
}

export type LaunchReplica = (desired: RevisionDesired, tail: LogTail) => ReplicaProcess;

/** Called when a replica's process says it is ready (the supervisor probes it at once). */
export type OnReadySignal = (replica: Replica) => void;

export class Revision {
  /** Replicas serving or meant to serve; replicas being removed are no longer here. */
  replicas: Replica[] = [];
  restarts = 0;
  exited: RevisionStatus["exited"];
  private nextIndex = 0;
  private roundRobin = 0;
  /** Replicas draining or stopping, so that kill() can reach them too. */
  private readonly leaving = new Set<Replica>();
  private readonly changeListeners = new Set<() => void>();

  constructor(
    public desired: RevisionDesired,
    private readonly launch: LaunchReplica,
    private readonly timing: RevisionTiming,
    private readonly logger: Logger,
    private readonly onReadySignal: OnReadySignal = () => {},
  ) {}

  /**
   * Calls `listener` after anything status() reads may have changed (it may
   * also be called when nothing did). Returns the function that removes it.
   */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Listeners now, for tests and operators. */
  get changeListenerCount(): number {
    return this.changeListeners.size;
  }

  private changed(): void {
    for (const listener of [...this.changeListeners]) listener();
  }

  get uid(): string {
    return this.desired.spec.deploymentUid;
  }
  get number(): number {
    return this.desired.spec.revision;
  }

  status(): RevisionStatus {
    const ready = this.replicas.filter((r) => r.ready).length;
    const pending = this.replicas.filter((r) => !r.ready && (r.phase === "running" || r.phase === "backoff")).length;
    return {
      desired: this.desired.replicas,
      ready,
      pending,
      restarts: this.restarts,
      ...(this.exited ? { exited: this.exited } : {}),
    };
  }

  readyReplicas(): Replica[] {
    return this.replicas.filter((r) => r.ready && r.port !== undefined);
  }

  /** As readyReplicas().length > 0, without the array (the gateway asks on every request of a split). */
  hasReadyReplica(): boolean {
    return this.replicas.some((r) => r.ready && r.port !== undefined);
  }

  /** A replica is starting or restarting: one may be ready soon. */
  hasStartingReplica(): boolean {
    return this.replicas.some((r) => !r.ready && (r.phase === "running" || r.phase === "backoff"));
  }

  /** The next ready replica in round-robin order, skipping `exclude`. */
  pick(exclude?: Replica): Replica | undefined {
    const candidates = this.readyReplicas().filter((r) => r !== exclude);
    if (candidates.length === 0) return undefined;
    this.roundRobin = (this.roundRobin + 1) % candidates.length;
    return candidates[this.roundRobin];
  }

  /**
   * Brings the replica count to `desired.replicas`: starts missing replicas,
   * restarts ones that failed to start, and drains then stops extra ones.
   * Resolves once removed replicas are gone.
   */
  async apply(desired: RevisionDesired): Promise<void> {
    this.desired = desired;
    const target = desired.replicas;
    for (const replica of this.replicas) {
      if (replica.phase === "failed") replica.start();
    }
    if (this.replicas.every((r) => r.phase !== "failed")) this.exited = undefined;
    while (this.replicas.length < target) {
      const replica = new Replica(
        this.nextIndex++,
        (tail) => this.launch(this.desired, tail),
        {
          onRestart: () => this.restarts++,
          onFailedStart: (exit) => {
            this.exited = exit;
          },
          onReadySignal: () => this.onReadySignal(replica),
          onChange: () => this.changed(),
        },
        this.logger,
      );
      this.replicas.push(replica);
      replica.start();
    }
    if (this.replicas.length > target) {
      // Remove the least useful first: failed, then not ready, then the newest.
      const rank = (r: Replica) => (r.phase === "failed" ? 0 : r.ready ? 2 : 1);
      const byUsefulness = [...this.replicas].sort((a, b) => rank(a) - rank(b) || b.index - a.index);
      const leaving = byUsefulness.slice(0, this.replicas.length - target);
      this.replicas = this.replicas.filter((r) => !leaving.includes(r));
      this.changed();
      await Promise.all(leaving.map((r) => this.retire(r)));
    } else {
      // The desired count or `exited` may have changed.
      this.changed();
    }
  }

  /** Stops every replica at once, without draining (agent shutdown). */
  async kill(): Promise<void> {
    const all = [...this.replicas, ...this.leaving];
    this.replicas = [];
    this.changed();
    await Promise.all(all.map((r) => r.stop(this.timing.stopGraceMs)));
  }

  private async retire(replica: Replica): Promise<void> {
    this.leaving.add(replica);
    try {
      await replica.drain(this.timing.drainTimeoutMs);
      await replica.stop(this.timing.stopGraceMs);
      this.logger.info("replica stopped", { replica: replica.index });
    } finally {
      this.leaving.delete(replica);
    }
  }
}

// A replica slot of a revision: keeps one model-server process running in it.
// A process that dies before the slot was ever ready is a failed start (no
// restart: the model or its spec is broken); one that dies after the slot has
// been ready is a crash, restarted with exponential backoff. Readiness comes
// from probes: one as soon as the process says it is ready, and periodic ones.
import type { Logger } from "../../log.js";
import { LogTail } from "../../log-tail.js";
import type { ProcessExit, ReplicaProcess } from "./replica-process.js";

export type ReplicaPhase = "running" | "backoff" | "failed" | "stopping" | "stopped";

export interface ReplicaEvents {
  /** A crashed replica's process is being started again. */
  onRestart(): void;
  /** The replica exited before it was ever ready. */
  onFailedStart(exit: ProcessExit & { logTail: string }): void;
  /** The process said its model is loaded: probe it now rather than at the next period. */
  onReadySignal(): void;
  /** Something the revision's status counts changed (phase, readiness). */
  onChange(): void;
}

const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** A replica ready for this long has recovered: its backoff starts over. */
const STABLE_AFTER_MS = 10_000;

export class Replica {
  phase: ReplicaPhase = "stopped";
  /** Passed its most recent readiness probe. */
  ready = false;
  port: number | undefined;
  /** Proxied requests on this replica now. */
  inFlight = 0;
  readonly tail = new LogTail();
  private probeTickets = 0;
  private appliedTicket = 0;
  private probesInFlight = 0;
  private everReady = false;
  private readySince = 0;
  private crashes = 0;
  private process: ReplicaProcess | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly index: number,
    private readonly launch: (tail: LogTail) => ReplicaProcess,
    private readonly events: ReplicaEvents,
    private readonly logger: Logger,
  ) {}

  get pid(): number | undefined {
    return this.process?.pid;
  }

  get probing(): boolean {
    return this.probesInFlight > 0;
  }

  /** Starts a process unless one runs or is being stopped. */
  start(): void {
    if (this.phase === "running" || this.phase === "stopping") return;
    clearTimeout(this.restartTimer);
    this.phase = "running";
    this.ready = false;
    this.port = undefined;
    let proc: ReplicaProcess;
    try {
      proc = this.launch(this.tail);
    } catch (err) {
      this.tail.push(`cannot start model server: ${(err as Error).message}`);
      this.phase = "failed";
      this.events.onFailedStart({ exitCode: null, signal: null, logTail: this.tail.text() });
      this.events.onChange();
      return;
    }
    this.process = proc;
    void proc.listening.then((port) => {
      if (this.process === proc) this.port = port;
    });
    void Promise.all([proc.listening, proc.readySignal]).then(([port]) => {
      if (this.process !== proc || this.phase !== "running") return;
      this.port ??= port;
      this.events.onReadySignal();
    });
    void proc.exit.then((exit) => this.onExit(proc, exit));
    this.events.onChange();
  }

  /**
   * Starts a readiness probe and returns its ticket. Probes may overlap (the
   * one after the ready signal does not wait for a periodic one in flight).
   */
  beginProbe(): number {
    this.probesInFlight++;
    return ++this.probeTickets;
  }

  /**
   * Records a probe's result, unless the replica moved to another port
   * meanwhile or a probe started later has already answered (results of
   * overlapping probes must not go back in time).
   */
  endProbe(ticket: number, port: number, ready: boolean): void {
    this.probesInFlight--;
    if (port !== this.port || ticket < this.appliedTicket) return;
    this.appliedTicket = ticket;
    this.setReady(ready);
  }

  /** Records a readiness probe result. */
  setReady(ready: boolean): void {
    if (this.phase !== "running") return;
    if (ready && !this.ready) this.readySince = Date.now();
    if (ready) this.everReady = true;
    const changed = ready !== this.ready;
    this.ready = ready;
    if (changed) this.events.onChange();
  }

  acquire(): () => void {
    this.inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight--;
      if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    };
  }

  /** Waits until no proxied request is in flight, or timeoutMs. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.idleWaiters.push(resolve);
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
  }

  async stop(graceMs: number): Promise<void> {
    clearTimeout(this.restartTimer);
    this.ready = false;
    // A forced stop (shutdown) ends any drain still waiting on this replica.
    for (const wake of this.idleWaiters.splice(0)) wake();
    const proc = this.process;
    if (!proc || proc.exited) {
      this.phase = "stopped";
      this.events.onChange();
      return;
    }
    this.phase = "stopping";
    this.events.onChange();
    await proc.terminate(graceMs);
    this.phase = "stopped";
    this.events.onChange();
  }

  private onExit(proc: ReplicaProcess, exit: ProcessExit): void {
    if (this.process !== proc) return;
    try {
      this.afterExit(proc, exit);
    } finally {
      this.events.onChange();
    }
  }

  private afterExit(proc: ReplicaProcess, exit: ProcessExit): void {
    this.ready = false;
    this.port = undefined;
    if (this.phase !== "running") return; // stopping: expected
    const fields = { replica: this.index, pid: proc.pid, ...exit };
    if (!this.everReady) {
      this.phase = "failed";
      this.logger.warn("replica exited before it became ready", { ...fields, logTail: this.tail.text() });
      this.events.onFailedStart({ ...exit, logTail: this.tail.text() });
      return;
    }
    if (Date.now() - this.readySince > STABLE_AFTER_MS) this.crashes = 0;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.crashes);
    this.crashes++;
    this.phase = "backoff";
    this.logger.warn("replica crashed, restarting", { ...fields, restartInMs: delay });
    this.restartTimer = setTimeout(() => {
      if (this.phase !== "backoff") return;
      this.events.onRestart();
      this.start();
    }, delay);
  }
}

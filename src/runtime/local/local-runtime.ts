// The local runtime's operations, in process: the supervisor, the route table
// (with traffic splits), tombstones of released deployments, and their
// persistence; the gateway's traffic counts and wakes from zero. The control
// API exposes these over HTTP; the gateway resolves requests through `resolve`.
import { statSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../log.js";
import {
  RuntimeError,
  type DeploymentObservation,
  type DeploymentTraffic,
  type PreparedWeights,
  type ReplicaCounts,
  type RevisionSpec,
  type RevisionStatus,
  type TrafficShare,
} from "../driver.js";
import { statusTag } from "./control-protocol.js";
import type { Revision } from "./revision.js";
import { RouteTable, type Route } from "./routes.js";
import { loadState, saveState } from "./state-store.js";
import { createSupervisor, type SupervisorOptions } from "./supervisor.js";
import { TrafficBook } from "./traffic-book.js";
import type { DeploymentCounts } from "./traffic-counts.js";
import { routeOf, validShares } from "./traffic-split.js";
import { createWaker } from "./waker.js";

export interface LocalRuntimeOptions extends SupervisorOptions {
  dataDir: string;
  /** Base of endpoint URLs, e.g. http://127.0.0.1:8081 (known once the gateway listens). */
  gatewayUrl: () => string;
  logger: Logger;
  /** A deployment was released (its route, if it had one): its metrics series can go. */
  onReleased?: (route: Route) => void;
}

interface Routed {
  route: Route;
  /** The revision chosen for this request (by weight during a split). */
  number: number;
  /** Where the gateway counts the request. */
  counts: DeploymentCounts;
}

/**
 * Where a request to an endpoint goes. stopped: the chosen revision runs no
 * replica and does not wake (503 at once); idle: it has a wake timeout and no
 * ready replica, and is at 0 replicas, being woken, or starting one (the
 * request wakes it if need be and waits, up to the wake timeout).
 */
export type Resolution = { kind: "missing" } | (Routed & { kind: "stopped" }) | (Routed & { kind: "idle" | "serving"; revision: Revision });

/** Per-replica detail, for operators and tests (not part of the driver interface). */
export interface ReplicaDetail {
  index: number;
  phase: string;
  ready: boolean;
  pid: number | null;
  port: number | null;
  inFlight: number;
}

export interface LocalRuntime {
  startRevision(spec: RevisionSpec, weights: PreparedWeights): Promise<void>;
  revisionStatus(deploymentUid: string, revision: number): RevisionStatus;
  /**
   * A long-poll: the revision's status as soon as its tag (statusTag) differs
   * from `unlessTag`, else the current status after `timeoutMs` or once
   * `signal` aborts (the caller went away).
   */
  waitRevisionStatus(deploymentUid: string, revision: number, unlessTag: string, timeoutMs: number, signal?: AbortSignal): Promise<RevisionStatus>;
  /** Long-polls waiting now (operators and tests). */
  readonly statusWaits: number;
  replicaDetails(deploymentUid: string, revision: number): ReplicaDetail[];
  switchTraffic(spec: RevisionSpec): string;
  /** Validates the split (INVALID_SPEC); one share of 100 is a plain switch. */
  splitTraffic(spec: RevisionSpec, shares: readonly TrafficShare[]): string;
  /** Undefined when the deployment has no route. */
  trafficStats(deploymentUid: string): DeploymentTraffic | undefined;
  scaleRevision(deploymentUid: string, revision: number, replicas: number): Promise<void>;
  /** Scales to 0 and forgets the wake timeout: a stopped revision never wakes. */
  stopRevision(deploymentUid: string, revision: number): Promise<void>;
  release(deploymentUid: string): Promise<void>;
  observe(): DeploymentObservation[];
  resolve(workspace: string, deploymentName: string): Resolution;
  /** Wakes an idle revision (see Waker.wake): the gateway holds requests on it. */
  wake(revision: Revision): Promise<boolean>;
  /** Replicas on this host by state: ready, starting (not ready yet), backoff (restarting), failed, stopping, stopped. */
  replicaStates(): Map<string, number>;
  /** Starts what the persisted state says should run. */
  restore(): void;
  /** Stops every replica; the persisted state stays, for the next start. */
  close(): Promise<void>;
}

const SEGMENT = /^[^/\s]+$/;

export function createLocalRuntime(options: LocalRuntimeOptions): LocalRuntime {
  const { logger } = options;
  const statePath = join(options.dataDir, "runtime-state.json");
  const supervisor = createSupervisor(options);
  const routes = new RouteTable();
  const tombstones = new Set<string>();
  let statusWaits = 0;
  const traffic = new TrafficBook((uid, revision) => supervisor.get(uid, revision));

  const persist = () =>
    saveState(statePath, {
      version: 1,
      revisions: supervisor
        .all()
        .filter((r) => !tombstones.has(r.uid))
        .map((r) => r.desired),
      routes: routes.list(),
      tombstones: [...tombstones],
    });

  // As a promise, so that a failed write and a failed apply are both awaited (Promise.all) and neither floats.
  const persisted = () =>
    new Promise<void>((resolve) => {
      persist();
      resolve();
    });

  const endpointUrl = (route: Route) => `${options.gatewayUrl()}/${encodeURIComponent(route.workspace)}/v2/models/${encodeURIComponent(route.deploymentName)}`;

  const refuseReleased = (uid: string) => {
    if (tombstones.has(uid)) {
      throw new RuntimeError("INVALID_SPEC", `deployment ${uid} was released from this runtime and cannot run again`);
    }
  };

  const known = (uid: string, revision: number): Revision => {
    refuseReleased(uid);
    const r = supervisor.get(uid, revision);
    if (!r) {
      throw new RuntimeError("INTERNAL", `revision ${revision} of deployment ${uid} was never started on this runtime`);
    }
    return r;
  };

  // A released deployment's revision is never brought back, even by a request held before the release.
  const waker = createWaker(async (r) => {
    if (r.desired.replicas > 0 || tombstones.has(r.uid)) return;
    await Promise.all([supervisor.apply({ ...r.desired, replicas: 1 }), persisted()]);
  }, logger);

  const runtime: LocalRuntime = {
    async startRevision(spec, weights) {
      refuseReleased(spec.deploymentUid);
      if (!Number.isSafeInteger(spec.replicas) || spec.replicas < 0) {
        throw new RuntimeError("INVALID_SPEC", `replicas must be a non-negative integer, got ${spec.replicas}`);
      }
      if (!SEGMENT.test(spec.workspace) || !SEGMENT.test(spec.deploymentName)) {
        throw new RuntimeError("INVALID_SPEC", "workspace and deployment name must be non-empty without '/' or spaces");
      }
      if (!statSync(weights.path, { throwIfNoEntry: false })?.isFile()) {
        throw new RuntimeError("WEIGHTS_NOT_FOUND", `weights file ${weights.path} is missing; prepare the weights again`, {
          retryable: true,
        });
      }
      await Promise.all([supervisor.apply({ spec, weights, replicas: spec.replicas }), persisted()]);
    },

    revisionStatus: (uid, revision) => known(uid, revision).status(),

    async waitRevisionStatus(uid, revision, unlessTag, timeoutMs, signal) {
      const r = known(uid, revision);
      const unchanged = () => statusTag(r.status()) === unlessTag;
      if (!unchanged() || timeoutMs <= 0 || signal?.aborted) return r.status();
      statusWaits++;
      await new Promise<void>((resolve) => {
        let settled = false;
        const done = () => {
          if (settled) return;
          settled = true;
          statusWaits--;
          clearTimeout(timer);
          off();
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const off = r.onChange(() => {
          if (!unchanged()) done();
        });
        const timer = setTimeout(done, timeoutMs);
        signal?.addEventListener("abort", done, { once: true });
      });
      // Released meanwhile: the same error as a plain status read.
      return known(uid, revision).status();
    },

    get statusWaits() {
      return statusWaits;
    },

    replicaDetails: (uid, revision) =>
      known(uid, revision).replicas.map((r) => ({
        index: r.index,
        phase: r.phase,
        ready: r.ready,
        pid: r.pid ?? null,
        port: r.port ?? null,
        inFlight: r.inFlight,
      })),

    switchTraffic(spec) {
      // A revision never started is an INTERNAL error here, as it always was.
      known(spec.deploymentUid, spec.revision);
      return runtime.splitTraffic(spec, [{ revision: spec.revision, percent: 100 }]);
    },

    splitTraffic(spec, shares) {
      const uid = spec.deploymentUid;
      refuseReleased(uid);
      const valid = validShares(shares, (n) => supervisor.get(uid, n) !== undefined);
      const route = routeOf(spec, valid, routes.ofDeployment(uid));
      routes.set(route);
      persist();
      logger.info(route.shares ? "traffic split" : "traffic switched", { ...route });
      return endpointUrl(route);
    },

    trafficStats(uid) {
      const route = routes.ofDeployment(uid);
      return route && !tombstones.has(uid) ? traffic.stats(route) : undefined;
    },

    async scaleRevision(uid, revision, replicas) {
      if (!Number.isSafeInteger(replicas) || replicas < 0) {
        throw new RuntimeError("INVALID_SPEC", `replicas must be a non-negative integer, got ${replicas}`);
      }
      const r = known(uid, revision);
      await Promise.all([supervisor.apply({ ...r.desired, replicas }), persisted()]);
    },

    async stopRevision(uid, revision) {
      const r = supervisor.get(uid, revision);
      if (!r || tombstones.has(uid)) return;
      const { wakeTimeoutMs: _neverWakes, ...spec } = r.desired.spec;
      await Promise.all([supervisor.apply({ ...r.desired, spec, replicas: 0 }), persisted()]);
    },

    async release(uid) {
      const route = routes.ofDeployment(uid);
      tombstones.add(uid);
      routes.remove(uid);
      traffic.forget(uid);
      if (route) options.onReleased?.(route);
      persist();
      await Promise.all(supervisor.revisionsOf(uid).map((r) => supervisor.remove(uid, r.number)));
      logger.info("deployment released", { deploymentUid: uid });
    },

    observe() {
      const uids = new Set([...routes.list().map((r) => r.deploymentUid), ...supervisor.all().map((r) => r.uid)]);
      return [...uids]
        .filter((uid) => !tombstones.has(uid))
        .map((uid) => {
          const route = routes.ofDeployment(uid);
          // The serving revision; without a route, the newest one.
          const revision = route ? supervisor.get(uid, route.revision) : supervisor.revisionsOf(uid).sort((a, b) => b.number - a.number)[0];
          const status = revision?.status();
          const instances: ReplicaCounts = {
            desired: status?.desired ?? 0,
            ready: status?.ready ?? 0,
            pending: status?.pending ?? 0,
            restarts: status?.restarts ?? 0,
          };
          return {
            deploymentUid: uid,
            servingRevision: route?.revision ?? 0,
            endpointUrl: route && instances.ready > 0 ? endpointUrl(route) : "",
            instances,
          };
        });
    },

    resolve(workspace, deploymentName) {
      const route = routes.lookup(workspace, deploymentName);
      if (!route) return { kind: "missing" };
      const counts = traffic.countsOf(route.deploymentUid);
      const number = traffic.choose(route);
      const revision = supervisor.get(route.deploymentUid, number);
      if (!revision) return { kind: "stopped", route, number, counts };
      const { desired } = revision;
      // Scaled to zero, waking, or starting a replica: a revision that may wake holds requests rather than refuse them.
      const wakes = desired.spec.wakeTimeoutMs !== undefined && !revision.hasReadyReplica();
      if (wakes && (desired.replicas === 0 || waker.waking(revision) || revision.hasStartingReplica())) {
        return { kind: "idle", route, number, revision, counts };
      }
      if (desired.replicas === 0) return { kind: "stopped", route, number, counts };
      return { kind: "serving", route, number, revision, counts };
    },

    wake: (revision) => waker.wake(revision),

    replicaStates() {
      const counts = new Map<string, number>();
      for (const revision of supervisor.all()) {
        for (const r of revision.replicas) {
          const state = r.ready ? "ready" : r.phase === "running" ? "starting" : r.phase;
          counts.set(state, (counts.get(state) ?? 0) + 1);
        }
      }
      return counts;
    },

    restore() {
      const state = loadState(statePath);
      for (const uid of state.tombstones) tombstones.add(uid);
      for (const route of state.routes) if (!tombstones.has(route.deploymentUid)) routes.set(route);
      for (const desired of state.revisions) {
        if (tombstones.has(desired.spec.deploymentUid)) continue;
        supervisor.apply(desired).catch((err: unknown) =>
          logger.error("cannot restore revision", {
            err,
            deploymentUid: desired.spec.deploymentUid,
            revision: desired.spec.revision,
          }),
        );
      }
      logger.info("runtime state restored", { revisions: state.revisions.length, routes: state.routes.length });
    },

    close() {
      waker.close();
      return supervisor.close();
    },
  };
  return runtime;
}

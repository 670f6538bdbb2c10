// A driver that runs nothing: every phase completes at once. For benchmarks
// of the control plane itself, where real model servers would be the bottleneck.
import type { DeploymentObservation, PreparedWeights, ReplicaCounts, RevisionSpec, RevisionStatus, RuntimeDriver } from "./driver.js";
import { RuntimeError } from "./driver.js";

interface NoopDeployment {
  spec: RevisionSpec;
  /** Replicas per revision. */
  revisions: Map<number, number>;
  servingRevision: number;
}

export function createNoopDriver(): RuntimeDriver {
  const deployments = new Map<string, NoopDeployment>();
  const released = new Set<string>();
  const epoch = `noop-${Date.now()}`;

  const endpointUrl = (spec: RevisionSpec) => `http://noop.invalid/${encodeURIComponent(spec.workspace)}/v2/models/${encodeURIComponent(spec.deploymentName)}`;
  const counts = (replicas: number): ReplicaCounts => ({ desired: replicas, ready: replicas, pending: 0, restarts: 0 });

  return {
    name: "noop",
    switchesAtOnce: true,
    async prepareWeights(spec, onProgress): Promise<PreparedWeights> {
      onProgress({ bytesDone: 0, bytesTotal: 0 });
      return { path: "/dev/null", sha256: spec.model.sha256, bytes: 0 };
    },
    async startRevision(spec) {
      if (released.has(spec.deploymentUid)) {
        throw new RuntimeError("INVALID_SPEC", `deployment ${spec.deploymentUid} was released and cannot run again`);
      }
      const d = deployments.get(spec.deploymentUid) ?? { spec, revisions: new Map(), servingRevision: 0 };
      d.revisions.set(spec.revision, spec.replicas);
      deployments.set(spec.deploymentUid, d);
    },
    async revisionStatus(uid, revision): Promise<RevisionStatus> {
      return counts(deployments.get(uid)?.revisions.get(revision) ?? 0);
    },
    async switchTraffic(spec) {
      const d = deployments.get(spec.deploymentUid);
      if (d) {
        d.spec = spec;
        d.servingRevision = spec.revision;
      }
      return endpointUrl(spec);
    },
    async splitTraffic(spec, shares) {
      const d = deployments.get(spec.deploymentUid);
      const whole = shares.find((s) => s.percent === 100);
      if (d && whole) {
        d.spec = spec;
        d.servingRevision = whole.revision;
      }
      return endpointUrl(spec);
    },
    // Nothing serves requests here: nothing is ever counted.
    async trafficStats(uid) {
      const d = deployments.get(uid);
      if (!d || d.servingRevision === 0) return undefined;
      return { deploymentUid: uid, epoch, inFlight: 0, inFlightSeconds: 0, arrivals: 0, revisions: [] };
    },
    async scaleRevision(uid, revision, replicas) {
      const d = deployments.get(uid);
      if (d?.revisions.has(revision)) d.revisions.set(revision, replicas);
    },
    async stopRevision(uid, revision) {
      const d = deployments.get(uid);
      if (d?.revisions.has(revision)) d.revisions.set(revision, 0);
    },
    async release(uid) {
      released.add(uid);
      deployments.delete(uid);
    },
    async observe(): Promise<DeploymentObservation[]> {
      return [...deployments.entries()].map(([uid, d]) => {
        const replicas = d.revisions.get(d.servingRevision) ?? 0;
        return {
          deploymentUid: uid,
          servingRevision: d.servingRevision,
          endpointUrl: d.servingRevision > 0 && replicas > 0 ? endpointUrl(d.spec) : "",
          instances: counts(replicas),
        };
      });
    },
    async close() {
      deployments.clear();
    },
  };
}

// The local runtime's metrics: replicas by state (read at each scrape) and
// the gateway's requests, errors and latency by deployment and revision.
// They are served on the control port (loopback, like the rest of it), not
// on the API's: deployment and workspace names are labels here.
import { Counter, Gauge } from "prom-client";
import { FastHistogram } from "../../telemetry/fast-histogram.js";
import { LATENCY_BUCKETS, type Registry } from "../../telemetry/metrics.js";

/** Why the gateway answered a request itself, with an error. */
export type GatewayError = "no_ready_replica" | "stopped" | "replica_failed" | "body_too_large" | "gateway_error";

export interface GatewayTarget {
  workspace: string;
  deployment: string;
  /** "" when the request named no deployment this runtime serves. */
  revision: string;
}

export interface GatewayMetrics {
  /** A request ended (its response finished or the client went away). */
  request(target: GatewayTarget, status: number, seconds: number): void;
  error(target: GatewayTarget, reason: GatewayError): void;
  /** Drops a released deployment's series (every revision, code and reason). */
  forget(workspace: string, deployment: string): void;
}

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  const requests = new Counter({
    name: "modeldeploy_gateway_requests_total",
    help: "Inference gateway requests by workspace, deployment, revision and HTTP status (requests for unknown deployments: empty labels)",
    labelNames: ["workspace", "deployment", "revision", "code"] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: "modeldeploy_gateway_errors_total",
    help: "Requests the gateway answered with an error itself, by workspace, deployment, revision and reason",
    labelNames: ["workspace", "deployment", "revision", "reason"] as const,
    registers: [registry],
  });
  const latency = new FastHistogram(
    "modeldeploy_gateway_request_duration_seconds",
    "Inference gateway requests by workspace, deployment and revision: time from the request to the end of its response",
    ["workspace", "deployment", "revision"],
    LATENCY_BUCKETS,
    registry,
  );
  return {
    request(t, status, seconds) {
      requests.inc({ workspace: t.workspace, deployment: t.deployment, revision: t.revision, code: String(status) });
      latency.child(t.workspace, t.deployment, t.revision).observe(seconds);
    },
    error(t, reason) {
      errors.inc({ workspace: t.workspace, deployment: t.deployment, revision: t.revision, reason });
    },
    forget(workspace, deployment) {
      const of = (labels: Partial<Record<string, string | number>>) => labels["workspace"] === workspace && labels["deployment"] === deployment;
      latency.remove(of);
      for (const counter of [requests, errors] as Array<Counter<string>>) {
        void counter.get().then(({ values }) => {
          for (const v of values) if (of(v.labels)) counter.remove(v.labels as Record<string, string>);
        });
      }
    },
  };
}

/** modeldeploy_replicas{state}: read from the runtime at each scrape. */
export function registerReplicaGauge(registry: Registry, states: () => Map<string, number>): void {
  new Gauge({
    name: "modeldeploy_replicas",
    help: "Model-server replicas on this host by state: ready, starting, backoff (restarting after a crash), failed, stopping",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      this.reset();
      // The usual states always show, at 0 when none is in them.
      for (const state of ["ready", "starting", "backoff", "failed"]) this.set({ state }, 0);
      for (const [state, n] of states()) this.set({ state }, n);
    },
  });
}

// The local runtime's metrics: replicas by state (read at each scrape) and
// the gateway's requests, errors and latency by deployment and revision.
// They are served on the control port (loopback, like the rest of it), not
// on the API's: deployment and workspace names are labels here.
import { FastCounter, FastGauge, FastHistogram } from "../../telemetry/fast-metrics.js";
import { LATENCY_BUCKETS, type MetricsRegistry } from "../../telemetry/metrics.js";

/** Why the gateway answered a request itself, with an error. */
export type GatewayError = "no_ready_replica" | "stopped" | "wake_timeout" | "wake_failed" | "replica_failed" | "body_too_large" | "gateway_error";

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

export function createGatewayMetrics(registry: MetricsRegistry): GatewayMetrics {
  const requests = new FastCounter(
    "modeldeploy_gateway_requests_total",
    "Inference gateway requests by workspace, deployment, revision and HTTP status (requests for unknown deployments: empty labels)",
    ["workspace", "deployment", "revision", "code"],
    registry,
  );
  const errors = new FastCounter(
    "modeldeploy_gateway_errors_total",
    "Requests the gateway answered with an error itself, by workspace, deployment, revision and reason",
    ["workspace", "deployment", "revision", "reason"],
    registry,
  );
  const latency = new FastHistogram(
    "modeldeploy_gateway_request_duration_seconds",
    "Inference gateway requests by workspace, deployment and revision: time from the request to the end of its response",
    ["workspace", "deployment", "revision"],
    LATENCY_BUCKETS,
    registry,
  );
  return {
    request(t, status, seconds) {
      requests.child(t.workspace, t.deployment, t.revision, String(status)).inc();
      latency.child(t.workspace, t.deployment, t.revision).observe(seconds);
    },
    error(t, reason) {
      errors.child(t.workspace, t.deployment, t.revision, reason).inc();
    },
    forget(workspace, deployment) {
      const of = (labels: Readonly<Record<string, string>>) => labels["workspace"] === workspace && labels["deployment"] === deployment;
      for (const metric of [latency, requests, errors]) metric.remove(of);
    },
  };
}

/** modeldeploy_replicas{state}: read from the runtime at each scrape. */
export function registerReplicaGauge(registry: MetricsRegistry, states: () => Map<string, number>): void {
  new FastGauge(
    "modeldeploy_replicas",
    "Model-server replicas on this host by state: ready, starting, backoff (restarting after a crash), failed, stopping",
    ["state"],
    registry,
    (gauge) => {
      gauge.remove(() => true);
      // The usual states always show, at 0 when none is in them.
      for (const state of ["ready", "starting", "backoff", "failed"]) gauge.child(state).set(0);
      for (const [state, n] of states()) gauge.child(state).set(n);
    },
  );
}

// The runtime a worker drives: the local agent (this host's model servers and
// gateway) or the no-op driver used by benchmarks.
import path from "node:path";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { RuntimeDriver } from "../runtime/driver.js";
import type { MetricsRegistry } from "../telemetry/metrics.js";
import { createLocalRuntimeAgent, type LocalRuntimeAgent } from "../runtime/local/agent.js";
import { createLocalDriver } from "../runtime/local/local-driver.js";
import { createNoopDriver } from "../runtime/noop-driver.js";

export function runtimeDataDir(config: Config): string {
  return path.join(config.dataDir, "runtime");
}

/** `metricsRegistry`: served at the control port's /metrics (default: one of its own). */
export async function startRuntimeAgent(config: Config, logger: Logger, metricsRegistry?: MetricsRegistry): Promise<LocalRuntimeAgent> {
  return createLocalRuntimeAgent({
    dataDir: runtimeDataDir(config),
    gatewayHost: config.gatewayHost,
    gatewayPort: config.gatewayPort,
    gatewayPublicUrl: config.gatewayPublicUrl,
    controlHost: config.runtimeControlHost,
    controlPort: config.runtimeControlPort,
    maxReplicas: config.localMaxReplicas,
    // Readiness is pushed by the model server; the periodic probe is the fallback
    // (a replica that stops answering, or a server that never says it is ready).
    healthIntervalMs: Math.max(config.healthPollMs * 4, 1000),
    logger,
    ...(metricsRegistry ? { metricsRegistry } : {}),
  });
}

export function createDriver(config: Config, logger: Logger, agent?: LocalRuntimeAgent): RuntimeDriver {
  if (config.runtimeDriver === "noop") return createNoopDriver();
  const controlUrl = agent?.controlUrl ?? config.runtimeControlUrl ?? `http://${config.runtimeControlHost}:${config.runtimeControlPort}`;
  return createLocalDriver({ controlUrl, dataDir: runtimeDataDir(config), logger });
}

// The local runtime agent: a long-lived process role that owns this host's
// model-server replicas (supervisor), the inference gateway in front of them,
// and the control API the workers' LocalDriver calls. Desired state lives in
// <dataDir>/runtime-state.json, so a restarted agent brings back what ran.
import { fileURLToPath } from "node:url";
import { silentLogger, type Logger } from "../../log.js";
import { createRegistry, type MetricsRegistry } from "../../telemetry/metrics.js";
import { startControlApi, type ControlApi } from "./control-api.js";
import { startGateway, type Gateway } from "./gateway.js";
import { createLocalRuntime, type LocalRuntime } from "./local-runtime.js";
import { createGatewayMetrics, registerReplicaGauge } from "./runtime-metrics.js";

export interface LocalRuntimeAgentOptions {
  dataDir: string;
  /** Default 127.0.0.1:8000. */
  gatewayHost?: string;
  gatewayPort?: number;
  /** Base of the endpoint URLs handed out; default http://{gatewayHost}:{gatewayPort}. */
  gatewayPublicUrl?: string;
  /** Default 127.0.0.1:8001: the control API has no authentication, keep it on loopback. */
  controlHost?: string;
  controlPort?: number;
  /** argv prefix that starts a model server; default: this Node running the compiled model-server/main.js. */
  modelServerCommand?: readonly string[];
  /** Fallback readiness probe period (a ready signal is probed at once); default 2000. */
  healthIntervalMs?: number;
  /** Replicas across all revisions on this host; default 16. */
  maxReplicas?: number;
  /** How long a stopping replica may finish in-flight requests; default 10 s. */
  drainTimeoutMs?: number;
  /** SIGTERM → SIGKILL; default 5 s. */
  stopGraceMs?: number;
  /** Largest inference request body the gateway forwards; default 64 MiB. */
  maxBodyBytes?: number;
  logger?: Logger;
  /** The runtime's series, served at the control port's /metrics; default: a registry of its own. */
  metricsRegistry?: MetricsRegistry;
}

export interface LocalRuntimeAgent {
  readonly gatewayUrl: string;
  readonly controlUrl: string;
  /** Replicas by state and gateway traffic (served at controlUrl/metrics). */
  readonly metricsRegistry: MetricsRegistry;
  /** Stops serving and every replica. The desired state stays on disk. */
  close(): Promise<void>;
}

/** Node plus the compiled model server next to this module (from src/, the one in dist/). */
export function defaultModelServerCommand(): string[] {
  const here = import.meta.url;
  const main = here.endsWith(".ts") ? new URL("../../../dist/model-server/main.js", here) : new URL("../../model-server/main.js", here);
  return [process.execPath, fileURLToPath(main)];
}

export async function createLocalRuntimeAgent(options: LocalRuntimeAgentOptions): Promise<LocalRuntimeAgent> {
  const logger = (options.logger ?? silentLogger).child({ component: "local-runtime" });
  const gatewayHost = options.gatewayHost ?? "127.0.0.1";
  let gateway: Gateway | undefined;
  let control: ControlApi | undefined;
  const registry = options.metricsRegistry ?? createRegistry();
  const gatewayMetrics = createGatewayMetrics(registry);
  const runtime: LocalRuntime = createLocalRuntime({
    dataDir: options.dataDir,
    modelServerCommand: options.modelServerCommand ?? defaultModelServerCommand(),
    healthIntervalMs: options.healthIntervalMs ?? 2_000,
    maxReplicas: options.maxReplicas ?? 16,
    drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
    stopGraceMs: options.stopGraceMs ?? 5_000,
    gatewayUrl: () => {
      if (!gateway) throw new Error("gateway is not listening yet");
      return options.gatewayPublicUrl?.replace(/\/+$/, "") ?? gateway.url;
    },
    logger,
    onReleased: (route) => gatewayMetrics.forget(route.workspace, route.deploymentName),
  });
  registerReplicaGauge(registry, () => runtime.replicaStates());

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await control?.close();
      await gateway?.close();
      await runtime.close();
      logger.info("local runtime stopped");
    })());

  try {
    gateway = await startGateway({
      host: gatewayHost,
      port: options.gatewayPort ?? 8000,
      resolve: (workspace, name) => runtime.resolve(workspace, name),
      wake: (revision) => runtime.wake(revision),
      logger: logger.child({ component: "gateway" }),
      metrics: gatewayMetrics,
      ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
    });
    runtime.restore();
    control = await startControlApi({
      host: options.controlHost ?? "127.0.0.1",
      port: options.controlPort ?? 8001,
      runtime,
      logger,
      metricsRegistry: registry,
    });
  } catch (err) {
    await close();
    throw err;
  }
  logger.info("local runtime listening", { gateway: gateway.url, control: control.url });
  return { gatewayUrl: gateway.url, controlUrl: control.url, metricsRegistry: registry, close };
}

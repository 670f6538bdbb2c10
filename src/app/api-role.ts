// The API role: gRPC (grpc-js) and Connect/gRPC-Web (connect-node) servers
// over the same service implementations, plus the outbox relay; the
// Connect port also serves the web dashboard.
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "../config.js";
import { createAuthenticator } from "../api/auth.js";
import { createNewDeploymentWriter } from "../db/create-deployment.js";
import { createDeploymentNameReader } from "../db/deployments.js";
import { bindService } from "../api/call-wrapper.js";
import { createConnectServer } from "../api/connect-server.js";
import { createDeletionService } from "../api/deletion-service.js";
import { createDeploymentService } from "../api/deployment-service.js";
import type { ApiDeps } from "../api/deps.js";
import type { WireLimits } from "../api/wire-limits.js";
import { createGrpcServer } from "../api/grpc-server.js";
import { loadStaticAssets } from "../api/static-assets.js";
import { createWatchHub } from "../api/watch-hub.js";
import { DEFAULT_LIMITS } from "../domain/validation.js";
import { DeletionService } from "../gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import type { Logger } from "../log.js";
import { cachedHostCapacity } from "../db/host-capacity.js";
import { createEventBus } from "../queue/event-bus.js";
import { startOutboxRelay } from "../queue/outbox-relay.js";
import type { TokenSealer } from "../secrets/token-seal.js";
import { createRpcMetrics } from "../api/rpc-metrics.js";
import { createRegistry, type MetricsRegistry } from "../telemetry/metrics.js";
import type { Infrastructure } from "./infrastructure.js";

/** Where `npm run build` puts the dashboard: two folders up from src/app (tests) and dist/app alike. */
const dashboardDir = fileURLToPath(new URL("../../dist/web/", import.meta.url));

export interface ApiRole {
  grpcPort: number;
  httpPort: number;
  deps: ApiDeps;
  stop(graceMs: number): Promise<void>;
}

/**
 * `tokens`: seals model tokens (secret-key.ts). `registry`: served at the
 * HTTP port's /metrics with the calls' series (`start` shares it with its worker).
 */
export async function startApiRole(
  config: Config,
  infra: Infrastructure,
  logger: Logger,
  tokens: TokenSealer | undefined,
  registry: MetricsRegistry = createRegistry(),
): Promise<ApiRole> {
  const metrics = createRpcMetrics(registry);
  const bus = createEventBus(infra.nc, config.natsSubjectPrefix);
  const relay = startOutboxRelay({ db: infra.db, publisher: infra.queue, logger });
  const deps: ApiDeps = {
    db: infra.db,
    auth: createAuthenticator(infra.db, { missingKeyHint: missingKeyHint(config, infra) }),
    newDeployments: createNewDeploymentWriter(infra.db),
    deploymentsByName: createDeploymentNameReader(infra.db, config.databaseConnectTimeoutMs),
    bus,
    watches: createWatchHub({ db: infra.db, bus, logger }),
    sink: (events) => bus.publish(events),
    wakeRelay: (committed) => relay.wake(committed),
    catalog: config.accelerators,
    limits: DEFAULT_LIMITS,
    defaultProgressDeadlineSeconds: config.progressDeadlineSeconds,
    hostCapacity: cachedHostCapacity(config.hostCapacityCacheMs),
    cpuAllocationRatio: config.cpuAllocationRatio,
    logger,
    tokens,
  };
  const services = [bindService(DeploymentService, createDeploymentService(deps)), bindService(DeletionService, createDeletionService(deps))];
  const limits: WireLimits = {
    maxConnections: config.maxConnections,
    maxStreamsPerConnection: config.maxStreamsPerConnection,
    maxHeaderBytes: config.maxHeaderBytes,
    maxStreamResets: config.maxStreamResets,
    idleConnectionMs: config.idleConnectionMs,
    keepaliveTimeMs: config.keepaliveTimeMs,
    keepaliveTimeoutMs: config.keepaliveTimeoutMs,
  };
  const grpc = createGrpcServer({
    services,
    logger,
    metrics,
    maxReceiveMessageBytes: config.maxRequestBytes,
    limits,
    tls: config.tlsCertFile && config.tlsKeyFile ? { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile } : undefined,
  });
  const assets = loadStaticAssets(dashboardDir);
  if (assets === undefined) logger.info("no dashboard to serve (build it with npm run build)", { dir: dashboardDir });
  const connect = createConnectServer({
    services,
    logger,
    assets,
    metrics,
    metricsRegistry: registry,
    readMaxBytes: config.maxRequestBytes,
    maxJsonBytes: config.maxJsonRequestBytes,
    maxJsonDepth: config.maxJsonDepth,
    limits,
  });
  try {
    const grpcPort = await grpc.listen(config.grpcHost, config.grpcPort);
    const httpPort = await connect.listen(config.httpHost, config.httpPort);
    return {
      grpcPort,
      httpPort,
      deps,
      async stop(graceMs) {
        await Promise.all([grpc.shutdown(graceMs), connect.close(graceMs)]);
        await relay.stop();
        deps.watches.close();
        await bus.close();
      },
    };
  } catch (err) {
    await Promise.all([grpc.shutdown(0), connect.close(0)]).catch(() => {});
    await relay.stop();
    deps.watches.close();
    throw err;
  }
}

/** With the embedded database the key to use is the bootstrap one (`keys create` needs DATABASE_URL). */
function missingKeyHint(config: Config, infra: Infrastructure): string | undefined {
  if (!infra.embedded.postgres) return undefined;
  const file = path.relative(process.cwd(), path.join(config.dataDir, "bootstrap-key")) || "bootstrap-key";
  return `use the key \`modeldeploy start\` printed on first start, saved in ${file}; \`npx modeldeploy login\` saves it for the CLI`;
}

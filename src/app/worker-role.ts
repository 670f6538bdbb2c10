// The worker role: task consumer, sweeper, observer and autoscaler.
import type { Config } from "../config.js";
import { reportHostCapacity } from "../db/host-capacity.js";
import type { Logger } from "../log.js";
import { createEventBus } from "../queue/event-bus.js";
import { startSweeper } from "../queue/sweeper.js";
import type { RuntimeDriver } from "../runtime/driver.js";
import type { TokenSealer } from "../secrets/token-seal.js";
import { startAutoscaler } from "../worker/autoscaler.js";
import { startObserver } from "../worker/observer.js";
import { startWorker } from "../worker/worker.js";
import { createWorkerMetrics, registerBacklogGauges } from "../worker/worker-metrics.js";
import { createRegistry, type MetricsRegistry } from "../telemetry/metrics.js";
import { startMetricsServer, type MetricsServer } from "../telemetry/metrics-server.js";
import type { Infrastructure } from "./infrastructure.js";

export interface WorkerRole {
  workerId: string;
  stop(graceMs: number): Promise<void>;
}

/**
 * `tokens`: opens the model tokens the api sealed (secret-key.ts).
 * `registry`: the worker's series (`start` passes the API's, served on its
 * HTTP port); served on MODELDEPLOY_WORKER_METRICS_PORT when that is set.
 */
export async function startWorkerRole(
  config: Config,
  infra: Infrastructure,
  driver: RuntimeDriver,
  logger: Logger,
  tokens: TokenSealer | undefined,
  registry: MetricsRegistry = createRegistry(),
): Promise<WorkerRole> {
  registerBacklogGauges(registry, { db: infra.db, queue: infra.queue, logger });
  const bus = createEventBus(infra.nc, config.natsSubjectPrefix);
  const sink = (events: Parameters<typeof bus.publish>[0]) => bus.publish(events);
  const observer = startObserver({ db: infra.db, sink, driver, logger, intervalMs: Math.max(config.healthPollMs * 4, 1000) });
  const autoscaler = startAutoscaler({ db: infra.db, sink, driver, logger, intervalMs: 1000 });
  const worker = await startWorker({
    db: infra.db,
    queue: infra.queue,
    // What a task wrote, the observer checks against the runtime next pass.
    sink: (events) => {
      sink(events);
      observer.touched(events.map((e) => e.deploymentUid));
    },
    driver,
    logger,
    tokens,
    concurrency: config.workerConcurrency,
    leaseMs: config.taskLeaseMs,
    ackWaitMs: config.taskAckWaitMs,
    maxDeliver: config.taskMaxDeliver,
    healthPollMs: config.healthPollMs,
    followDeployment: (uid, listener) => bus.followDeployment(uid, listener),
    metrics: createWorkerMetrics(registry),
  });
  const capacity = reportCapacity(driver, infra, logger);
  const sweeper = startSweeper({
    db: infra.db,
    queue: infra.queue,
    logger,
    intervalMs: config.sweepIntervalMs,
    olderThanMs: config.sweepPendingAfterMs,
  });
  let metricsServer: MetricsServer | undefined;
  if (config.workerMetricsPort !== undefined) {
    try {
      metricsServer = await startMetricsServer(registry, config.workerMetricsHost, config.workerMetricsPort);
    } catch (err) {
      capacity.stop();
      await sweeper.stop();
      await autoscaler.stop();
      await observer.stop();
      await worker.stop(0);
      await bus.close();
      throw err;
    }
    logger.info("worker metrics listening", { url: `${metricsServer.url}/metrics` });
  }
  return {
    workerId: worker.id,
    async stop(graceMs) {
      await metricsServer?.close();
      capacity.stop();
      await sweeper.stop();
      await autoscaler.stop();
      await observer.stop();
      await worker.stop(graceMs);
      await bus.close();
    },
  };
}

/**
 * The runtime host's capacity into the database, for the API's check: at
 * start, then every minute; after a failure (the runtime agent not up yet,
 * say) again within seconds, so the API is not left without it for a minute.
 */
function reportCapacity(driver: RuntimeDriver, infra: Infrastructure, logger: Logger): { stop(): void } {
  if (!driver.capacity) return { stop: () => {} };
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let failures = 0;
  const report = async () => {
    try {
      await reportHostCapacity(infra.db, driver.name, await driver.capacity!());
      failures = 0;
    } catch (err) {
      // Quietly at first: the agent often starts a moment after the worker.
      if (failures++ > 0) logger.warn("could not report the runtime host's capacity; will retry", { err });
    }
    if (stopped) return;
    timer = setTimeout(() => void report(), failures > 0 ? Math.min(2000 * failures, 30_000) : 60_000);
    timer.unref();
  };
  void report();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

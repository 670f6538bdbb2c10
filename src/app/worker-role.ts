// The worker role: task consumer, sweeper and observer.
import type { Config } from "../config.js";
import { reportHostCapacity } from "../db/host-capacity.js";
import type { Logger } from "../log.js";
import { createEventBus } from "../queue/event-bus.js";
import { startSweeper } from "../queue/sweeper.js";
import type { RuntimeDriver } from "../runtime/driver.js";
import type { TokenSealer } from "../secrets/token-seal.js";
import { startObserver } from "../worker/observer.js";
import { startWorker } from "../worker/worker.js";
import type { Infrastructure } from "./infrastructure.js";

export interface WorkerRole {
  workerId: string;
  stop(graceMs: number): Promise<void>;
}

/** `tokens`: opens the model tokens the api sealed (secret-key.ts). */
export async function startWorkerRole(
  config: Config,
  infra: Infrastructure,
  driver: RuntimeDriver,
  logger: Logger,
  tokens: TokenSealer | undefined,
): Promise<WorkerRole> {
  const bus = createEventBus(infra.nc, config.natsSubjectPrefix);
  const sink = (events: Parameters<typeof bus.publish>[0]) => bus.publish(events);
  const observer = startObserver({ db: infra.db, sink, driver, logger, intervalMs: Math.max(config.healthPollMs * 4, 1000) });
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
  });
  const capacity = reportCapacity(driver, infra, logger);
  const sweeper = startSweeper({
    db: infra.db,
    queue: infra.queue,
    logger,
    intervalMs: config.sweepIntervalMs,
    olderThanMs: config.sweepPendingAfterMs,
  });
  return {
    workerId: worker.id,
    async stop(graceMs) {
      capacity.stop();
      await sweeper.stop();
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

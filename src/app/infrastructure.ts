// Postgres and NATS for a process: the configured ones, or embedded child
// processes for a first run on a fresh machine.
import path from "node:path";
import type { Config } from "../config.js";
import { createDb, type Db } from "../db/connect.js";
import { startEmbeddedPostgres } from "../db/embedded-postgres.js";
import { startEmbeddedNats } from "../queue/embedded-nats.js";
import type { Logger } from "../log.js";
import { connectNats, type NatsConnection } from "../queue/nats.js";
import { createTaskQueue, type TaskQueue } from "../queue/task-queue.js";

export interface Infrastructure {
  db: Db;
  nc: NatsConnection;
  /** The work queue; recreates its stream and consumer when they vanish. */
  queue: TaskQueue;
  databaseUrl: string;
  natsUrl: string;
  embedded: { postgres: boolean; nats: boolean };
  close(): Promise<void>;
}

export async function openInfrastructure(config: Config, logger: Logger, o: { allowEmbedded: boolean; role: string }): Promise<Infrastructure> {
  const stops: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  };
  try {
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      if (!o.allowEmbedded) throw new Error(`DATABASE_URL is required for \`modeldeploy ${o.role}\` (only \`modeldeploy start\` embeds a database)`);
      const pg = await startEmbeddedPostgres({ dataDir: path.join(config.dataDir, "postgres"), logger });
      stops.push(() => pg.stop());
      databaseUrl = pg.url;
      logger.info("embedded Postgres (PGlite) started", { dataDir: path.join(config.dataDir, "postgres") });
    }
    let natsUrl = config.natsUrl;
    if (!natsUrl) {
      if (!o.allowEmbedded) throw new Error(`NATS_URL is required for \`modeldeploy ${o.role}\` (only \`modeldeploy start\` embeds a queue server)`);
      const nats = await startEmbeddedNats({ dataDir: config.dataDir, logger, binary: config.natsServerBin });
      stops.push(() => nats.stop());
      natsUrl = nats.url;
      logger.info("embedded nats-server started", { url: natsUrl });
    }
    const db = createDb({
      url: databaseUrl,
      poolMax: config.databasePoolMax,
      connectTimeoutMs: config.databaseConnectTimeoutMs,
      statementTimeoutMs: config.databaseStatementTimeoutMs,
      queryTimeoutMs: config.databaseQueryTimeoutMs,
      maxWaiting: config.databaseMaxWaiting,
    });
    stops.push(() => db.destroy());
    const nc = await connectNats(natsUrl, `modeldeploy-${o.role}`);
    stops.push(() => nc.drain().catch(() => nc.close()));
    const queue = createTaskQueue(nc, {
      stream: config.natsStream,
      subjectPrefix: config.natsSubjectPrefix,
      ackWaitMs: config.taskAckWaitMs,
      maxDeliver: config.taskMaxDeliver,
    });
    stops.push(async () => queue.close());
    await queue.ensure();
    return {
      db,
      nc,
      queue,
      databaseUrl,
      natsUrl,
      embedded: { postgres: !config.databaseUrl, nats: !config.natsUrl },
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

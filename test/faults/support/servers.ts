// The private Postgres and nats-server of one test file, shared by its cases
// one after the other (each case has its own database, stream and processes):
// initdb and server starts cost seconds that a 10-minute suite cannot pay per
// case. A case may stop, freeze or kill them; the next case finds them up.
import { rmSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { startPrivateNats, type PrivateNats } from "../../helpers/private-nats.js";
import { createDatabaseOn, startPrivatePostgres, type PrivatePostgres } from "../../helpers/private-postgres.js";
import { atExit } from "./process-groups.js";

export interface Servers {
  readonly pg: PrivatePostgres;
  readonly nats: PrivateNats;
  /** Thaws or restarts whichever a previous case left frozen or stopped. */
  ensureUp(): Promise<void>;
  createDatabase(): Promise<{ url: string; drop(): Promise<void> }>;
  destroy(): Promise<void>;
}

let databases = 0;

export async function startServers(o: { postgres?: Record<string, string> } = {}): Promise<Servers> {
  const [pgResult, natsResult] = await Promise.allSettled([
    // A backend whose client died (a killed process) notices within a quarter
    // second, even while it waits on a lock.
    startPrivatePostgres({ settings: { client_connection_check_interval: "250ms", ...o.postgres } }),
    startPrivateNats(),
  ]);
  if (pgResult.status === "rejected" || natsResult.status === "rejected") {
    if (pgResult.status === "fulfilled") await pgResult.value.destroy();
    if (natsResult.status === "fulfilled") await natsResult.value.destroy();
    throw pgResult.status === "rejected" ? pgResult.reason : (natsResult as PromiseRejectedResult).reason;
  }
  const pgServer = pgResult.value;
  const nats = natsResult.value;
  // The servers' own exit hooks stop them; their folders go here.
  const forgetFolders = atExit(() => {
    for (const dir of [path.dirname(pgServer.dataDir), path.dirname(nats.storeDir)]) rmSync(dir, { recursive: true, force: true });
  });
  return {
    pg: pgServer,
    nats,
    async ensureUp() {
      pgServer.thaw();
      nats.thaw();
      if (pgServer.pid() === undefined) await pgServer.start();
      if (nats.pid() === undefined) await nats.start();
    },
    async createDatabase() {
      const name = `faults_${process.pid}_${++databases}`;
      const url = await createDatabaseOn(pgServer.url, name);
      return {
        url,
        async drop() {
          const admin = new pg.Client({ connectionString: pgServer.url, connectionTimeoutMillis: 5000 });
          admin.on("error", () => {});
          try {
            await admin.connect();
            await admin.query(`drop database if exists ${name} with (force)`);
          } catch {
            // the server is down: it goes with destroy()
          } finally {
            await admin.end().catch(() => {});
          }
        },
      };
    },
    async destroy() {
      await Promise.all([nats.destroy(), pgServer.destroy()]);
      forgetFolders();
    },
  };
}

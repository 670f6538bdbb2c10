// Commands that run parts of the system: start (all-in-one), api, worker,
// runtime, migrate, keys. Each role's code is imported by the commands that
// run it: an API process never loads the worker or the runtime (idle memory).
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { openInfrastructure } from "../app/infrastructure.js";
import { tokenSealerFor } from "../app/secret-key.js";
import type { Config } from "../config.js";
import { createApiKey } from "../db/api-keys.js";
import { assertMigrated, migrateToLatest } from "../db/migrate.js";
import { isWorkspaceName } from "../domain/names.js";
import { SCOPES } from "../domain/types.js";
import type { Logger } from "../log.js";
import { releaseYoungGenerationGrowth } from "./startup-heap.js";

type Stop = (graceMs: number) => Promise<void>;

/** First signal: graceful stop; second: exit at once. */
/** Resolves once the first signal's stop() has run; a second signal exits at once. */
function onSignals<T>(logger: Logger, stop: () => Promise<T>): Promise<T> {
  return new Promise((resolve) => {
    let stopping = false;
    const handler = (signal: string) => {
      if (stopping) {
        logger.warn("second signal: exiting now", { signal });
        process.exit(1);
      }
      stopping = true;
      logger.info("shutting down (send the signal again to force)", { signal });
      void stop().then(resolve);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  });
}

/** Exit code 0 when every part stopped cleanly; a part that fails does not keep the others running. */
async function runUntilSignal(logger: Logger, stops: Stop[], graceMs: number): Promise<number> {
  // Started: from here on, load may grow the heap (startup-heap.ts).
  releaseYoungGenerationGrowth();
  const failures = await onSignals(logger, async () => {
    let failed = 0;
    for (const stop of stops) {
      try {
        await stop(graceMs);
      } catch (err) {
        failed++;
        logger.error("shutdown step failed; stopping the rest", { err });
      }
    }
    return failed;
  });
  if (failures > 0) return 1;
  logger.info("stopped");
  return 0;
}

export async function startAllInOne(config: Config, logger: Logger): Promise<number> {
  const [{ startApiRole }, { createDriver, startRuntimeAgent }, { startWorkerRole }, { createRegistry }] = await Promise.all([
    import("../app/api-role.js"),
    import("../app/runtime-role.js"),
    import("../app/worker-role.js"),
    import("../telemetry/metrics.js"),
  ]);
  // Before anything starts: a missing key is a configuration error.
  const tokens = tokenSealerFor(config, "start");
  const infra = await openInfrastructure(config, logger, { allowEmbedded: true, role: "start" });
  const stops: Stop[] = [];
  try {
    const applied = await migrateToLatest(infra.db);
    if (applied.length > 0) logger.info("database migrated", { applied });
    const bootstrapKey = await ensureBootstrapKey(config, infra.db);
    const agent = config.runtimeDriver === "local" ? await startRuntimeAgent(config, logger, createRegistry({ processMetrics: true })) : undefined;
    const driver = createDriver(config, logger, agent);
    // One process: the API's HTTP port serves the worker's series too.
    const registry = createRegistry({ processMetrics: true });
    const api = await startApiRole(config, infra, logger, tokens, registry);
    stops.push((g) => api.stop(g));
    const worker = await startWorkerRole(config, infra, driver, logger, tokens, registry);
    stops.push((g) => worker.stop(g));
    stops.push(async () => {
      await driver.close();
      await agent?.close();
    });
    stops.push(() => infra.close());
    const banner = [
      "modeldeploy is running",
      `  gRPC:             ${config.grpcHost}:${api.grpcPort}   (health and reflection on)`,
      `  Connect/gRPC-Web: http://${config.httpHost}:${api.httpPort}`,
      `  dashboard:        http://${config.httpHost}:${api.httpPort}/`,
      agent
        ? `  inference gateway: ${agent.gatewayUrl}\n  runtime control:  ${agent.controlUrl}   (no auth: keep it on loopback)`
        : `  runtime: ${config.runtimeDriver}`,
      `  metrics:          http://${config.httpHost}:${api.httpPort}/metrics (api, worker)${agent ? `, ${agent.controlUrl}/metrics (runtime)` : ""}`,
      `  database: ${infra.embedded.postgres ? `embedded PGlite in ${path.join(config.dataDir, "postgres")}` : "DATABASE_URL"}`,
      `  queue:    ${infra.embedded.nats ? `embedded nats-server (${infra.natsUrl})` : "NATS_URL"}`,
      bootstrapKey
        ? `  API key for workspace "default" (shown once, also saved to ${bootstrapKeyPath(config)}):\n    ${bootstrapKey}`
        : infra.embedded.postgres
          ? `  API key: the one printed on first start, saved in ${bootstrapKeyPath(config)} (\`npx modeldeploy login\` saves it for the CLI)`
          : `  API key: see ${bootstrapKeyPath(config)}, or create one with \`npx modeldeploy keys create --workspace NAME\``,
      "Press Ctrl-C to stop (twice to force).",
    ];
    process.stdout.write(banner.join("\n") + "\n");
  } catch (err) {
    for (const stop of stops.reverse()) await stop(0).catch(() => {});
    await infra.close();
    throw err;
  }
  // Stop in order: API (no new work), worker (finish tasks), runtime, infrastructure.
  return runUntilSignal(logger, stops, config.shutdownGraceMs);
}

function bootstrapKeyPath(config: Config): string {
  return path.join(config.dataDir, "bootstrap-key");
}

/** On a database without keys, creates one for workspace "default" so a first run can be used at once. */
async function ensureBootstrapKey(config: Config, db: Parameters<typeof createApiKey>[0]): Promise<string | undefined> {
  const any = await db.selectFrom("api_keys").select("id").limit(1).executeTakeFirst();
  if (any) return undefined;
  const { key } = await createApiKey(db, { workspace: "default", principal: "bootstrap", scopes: [...SCOPES] });
  mkdirSync(config.dataDir, { recursive: true });
  writeFileSync(bootstrapKeyPath(config), key + "\n", { mode: 0o600 });
  chmodSync(bootstrapKeyPath(config), 0o600);
  return key;
}

export async function startApiOnly(config: Config, logger: Logger): Promise<number> {
  const [{ startApiRole }, { createRegistry }] = await Promise.all([import("../app/api-role.js"), import("../telemetry/metrics.js")]);
  const tokens = tokenSealerFor(config, "api");
  const infra = await openInfrastructure(config, logger, { allowEmbedded: false, role: "api" });
  try {
    await assertMigrated(infra.db);
    const api = await startApiRole(config, infra, logger, tokens, createRegistry({ processMetrics: true }));
    logger.info("api listening", { grpc: `${config.grpcHost}:${api.grpcPort}`, http: `${config.httpHost}:${api.httpPort}` });
    return runUntilSignal(logger, [(g) => api.stop(g), () => infra.close()], config.shutdownGraceMs);
  } catch (err) {
    await infra.close();
    throw err;
  }
}

export async function startWorkerOnly(config: Config, logger: Logger): Promise<number> {
  const [{ createDriver }, { startWorkerRole }, { createRegistry }] = await Promise.all([
    import("../app/runtime-role.js"),
    import("../app/worker-role.js"),
    import("../telemetry/metrics.js"),
  ]);
  const tokens = tokenSealerFor(config, "worker");
  const infra = await openInfrastructure(config, logger, { allowEmbedded: false, role: "worker" });
  try {
    await assertMigrated(infra.db);
    const driver = createDriver(config, logger);
    const worker = await startWorkerRole(config, infra, driver, logger, tokens, createRegistry({ processMetrics: true }));
    return runUntilSignal(logger, [(g) => worker.stop(g), () => driver.close(), () => infra.close()], config.shutdownGraceMs);
  } catch (err) {
    await infra.close();
    throw err;
  }
}

export async function startRuntimeOnly(config: Config, logger: Logger): Promise<number> {
  const [{ startRuntimeAgent }, { createRegistry }] = await Promise.all([import("../app/runtime-role.js"), import("../telemetry/metrics.js")]);
  const agent = await startRuntimeAgent(config, logger, createRegistry({ processMetrics: true }));
  logger.info("local runtime listening", { gateway: agent.gatewayUrl, control: agent.controlUrl });
  return runUntilSignal(logger, [() => agent.close()], config.shutdownGraceMs);
}

export async function migrate(config: Config, logger: Logger): Promise<number> {
  const infra = await openInfrastructure(config, logger, { allowEmbedded: true, role: "migrate" });
  try {
    const applied = await migrateToLatest(infra.db);
    process.stdout.write(applied.length > 0 ? `applied: ${applied.join(", ")}\n` : "already up to date\n");
    return 0;
  } finally {
    await infra.close();
  }
}

export async function keys(config: Config, logger: Logger, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { workspace: { type: "string" }, scopes: { type: "string" }, name: { type: "string" } },
  });
  if (positionals[0] !== "create")
    throw new Error("usage: modeldeploy keys create --workspace NAME [--scopes deployments:read,deployments:write] [--name PRINCIPAL]");
  const workspace = values.workspace ?? "";
  if (!isWorkspaceName(workspace)) throw new Error(`--workspace "${workspace}": lowercase letters, digits and '-' (an RFC 1123 label)`);
  const scopes = (values.scopes ?? SCOPES.join(","))
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (unknown.length > 0 || scopes.length === 0) throw new Error(`--scopes: unknown ${unknown.join(", ") || "(none given)"}; known: ${SCOPES.join(", ")}`);
  if (!config.databaseUrl) {
    throw new Error(
      "keys create needs DATABASE_URL; with the embedded database, `modeldeploy start` prints a key on first run and saves it under MODELDEPLOY_DATA_DIR/bootstrap-key",
    );
  }
  const infra = await openInfrastructure({ ...config, databasePoolMax: 1 }, logger, { allowEmbedded: false, role: "keys" });
  try {
    await assertMigrated(infra.db);
    const { key } = await createApiKey(infra.db, { workspace, principal: values.name ?? `key-${workspace}`, scopes });
    // The plain key alone on stdout, so it can be captured: KEY=$(modeldeploy keys create ...).
    process.stdout.write(key + "\n");
    return 0;
  } finally {
    await infra.close();
  }
}

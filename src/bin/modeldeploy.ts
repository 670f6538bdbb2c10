// The modeldeploy command. Server and client commands are imported when
// used, so that each process loads only its own code (idle memory).
import { ConfigError, loadConfig, type Config } from "../config.js";
import { clientUsage } from "../cli/client-usage.js";
import { createLogger, type Logger } from "../log.js";
import { holdYoungGenerationGrowth } from "./startup-heap.js";

const usage = `usage: modeldeploy <command>

Server commands (configured by environment variables, see README):
  start      API, a worker and the local runtime in one process; embeds Postgres
             and nats-server when DATABASE_URL / NATS_URL are unset
  api        the API alone (needs DATABASE_URL and NATS_URL)
  worker     a worker alone (needs DATABASE_URL and NATS_URL)
  runtime    the local runtime agent alone (model servers + inference gateway)
  migrate    apply database migrations
  keys create --workspace NAME [--scopes a,b] [--name PRINCIPAL]
             create an API key; prints the plain key alone on stdout

${clientUsage}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(usage + "\n");
    return command ? 0 : 2;
  }
  const serverCommands: Record<string, true> = { start: true, api: true, worker: true, runtime: true, migrate: true, keys: true };
  if (serverCommands[command]) {
    holdYoungGenerationGrowth();
    const config = loadConfig();
    const logger = createLogger({ level: config.logLevel, base: { role: command } });
    // A stray rejection is a bug to log loudly, not a reason to drop every
    // in-flight call and task of this process: Postgres keeps the state.
    process.on("unhandledRejection", (err) => logger.error("unhandled rejection (bug)", { err }));
    const commands = await import("./server-commands.js");
    // The SDK is loaded only when traces go somewhere (README "Tracing").
    const runs = command === "start" || command === "api" || command === "worker" || command === "runtime";
    if (runs && config.otlpEndpoint !== undefined) {
      const { installOtlpTracing } = await import("../telemetry/tracing-sdk.js");
      const tracing = await installOtlpTracing(config.otelServiceName ?? (command === "start" ? "modeldeploy" : `modeldeploy-${command}`));
      logger.info("tracing on: spans exported over OTLP/HTTP", { endpoint: config.otlpEndpoint });
      try {
        return await runServerCommand(command, rest, config, logger, commands);
      } finally {
        // The last spans (the shutdown's) are sent before the process exits.
        await tracing.shutdown().catch((err: unknown) => logger.warn("could not send the last spans", { err }));
      }
    }
    return runServerCommand(command, rest, config, logger, commands);
  }
  const { describeClientError, runClientCommand } = await import("../cli/client-commands.js");
  try {
    const code = await runClientCommand(command, rest);
    if (code === -1) {
      process.stderr.write(`unknown command "${command}"\n\n${usage}\n`);
      return 2;
    }
    return code;
  } catch (err) {
    process.stderr.write(describeClientError(err) + "\n");
    return 1;
  }
}

type ServerCommands = typeof import("./server-commands.js");

function runServerCommand(command: string, rest: string[], config: Config, logger: Logger, c: ServerCommands): Promise<number> {
  switch (command) {
    case "start":
      return c.startAllInOne(config, logger);
    case "api":
      return c.startApiOnly(config, logger);
    case "worker":
      return c.startWorkerOnly(config, logger);
    case "runtime":
      return c.startRuntimeOnly(config, logger);
    case "migrate":
      return c.migrate(config, logger);
    default:
      return c.keys(config, logger, rest);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(err.message + "\n");
    else process.stderr.write(`modeldeploy: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

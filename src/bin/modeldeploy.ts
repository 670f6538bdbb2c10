// The modeldeploy command. Server and client commands are imported when
// used, so that each process loads only its own code (idle memory).
import { ConfigError, loadConfig } from "../config.js";
import { clientUsage } from "../cli/client-usage.js";
import { createLogger } from "../log.js";
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
    const { keys, migrate, startAllInOne, startApiOnly, startRuntimeOnly, startWorkerOnly } = await import("./server-commands.js");
    switch (command) {
      case "start":
        return startAllInOne(config, logger);
      case "api":
        return startApiOnly(config, logger);
      case "worker":
        return startWorkerOnly(config, logger);
      case "runtime":
        return startRuntimeOnly(config, logger);
      case "migrate":
        return migrate(config, logger);
      default:
        return keys(config, logger, rest);
    }
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(err.message + "\n");
    else process.stderr.write(`modeldeploy: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

// The modeldeploy command. Server commands run straight away, loading only
// their own code (idle memory); everything else (client commands, help,
// completion) goes through the command-line parser in src/cli.
import { ConfigError, loadConfig, type Config } from "../config.js";
import { createLogger, type Logger } from "../log.js";
import { holdYoungGenerationGrowth } from "./startup-heap.js";

const serverCommands = new Set(["start", "api", "worker", "runtime", "migrate", "keys"]);

async function runServerCommand(command: string, rest: string[]): Promise<number> {
  holdYoungGenerationGrowth();
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, base: { role: command } });
  // A stray rejection is a bug to log loudly, not a reason to drop every
  // in-flight call and task of this process: Postgres keeps the state.
  process.on("unhandledRejection", (err) => logger.error("unhandled rejection (bug)", { err }));
  // The SDK is loaded only when traces go somewhere (README "Tracing").
  const runs = command === "start" || command === "api" || command === "worker" || command === "runtime";
  if (runs && config.otlpEndpoint !== undefined) {
    const { installOtlpTracing } = await import("../telemetry/tracing-sdk.js");
    const tracing = await installOtlpTracing(config.otelServiceName ?? (command === "start" ? "modeldeploy" : `modeldeploy-${command}`));
    logger.info("tracing on: spans exported over OTLP/HTTP", { endpoint: config.otlpEndpoint });
    try {
      return await runRole(command, rest, config, logger);
    } finally {
      // The last spans (the shutdown's) are sent before the process exits.
      await tracing.shutdown().catch((err: unknown) => logger.warn("could not send the last spans", { err }));
    }
  }
  return runRole(command, rest, config, logger);
}

async function runRole(command: string, rest: string[], config: Config, logger: Logger): Promise<number> {
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

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const help = rest.includes("--help") || rest.includes("-h");
  if (command && serverCommands.has(command) && !help) return runServerCommand(command, rest);
  const { runCli } = await import("../cli/main.js");
  return runCli(argv, runServerCommand);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(err.message + "\n");
    else process.stderr.write(`modeldeploy: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

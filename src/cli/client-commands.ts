// The client commands, which talk to a running API over Connect.
import { changeCommands } from "./change-commands.js";
import { createApiClients } from "./client.js";
import type { ClientCommand } from "./client-command.js";
import { deploymentCommands } from "./deployment-commands.js";
import { historyCommands } from "./history-commands.js";

export { describeClientError } from "./client-errors.js";

const commands: Record<string, ClientCommand> = { ...deploymentCommands, ...changeCommands, ...historyCommands };

/** The command's exit code, or -1 when there is no such command. */
export async function runClientCommand(command: string, argv: string[]): Promise<number> {
  const run = Object.hasOwn(commands, command) ? commands[command] : undefined;
  if (!run) return -1;
  const api = createApiClients(process.env["MODELDEPLOY_URL"] ?? "http://127.0.0.1:8080", process.env["MODELDEPLOY_API_KEY"]);
  return run(api, argv);
}

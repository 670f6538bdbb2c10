// `modeldeploy login`: checks a server address and key against the API and
// saves them for the client commands, so a new shell needs no exports.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { str } from "./args.js";
import { createApiClients } from "./client.js";
import { err, type Flags } from "./client-command.js";
import { out } from "./format.js";
import { configPath, resolveSettings, saveSettings } from "./settings.js";

/** The key: --api-key, --api-key-file (- is stdin), MODELDEPLOY_API_KEY, else the bootstrap key `npm start` saved here. */
function keyFrom(args: Flags): { key: string; from: string } | undefined {
  const flag = str(args, "api-key");
  if (flag) return { key: flag, from: "--api-key" };
  const file = str(args, "api-key-file");
  if (file) return { key: readFileSync(file === "-" ? 0 : file, "utf8").trim(), from: file === "-" ? "stdin" : file };
  const env = process.env["MODELDEPLOY_API_KEY"];
  if (env) return { key: env, from: "MODELDEPLOY_API_KEY" };
  const bootstrap = path.resolve(process.env["MODELDEPLOY_DATA_DIR"] ?? ".modeldeploy", "bootstrap-key");
  if (existsSync(bootstrap)) return { key: readFileSync(bootstrap, "utf8").trim(), from: bootstrap };
  return undefined;
}

export async function login(args: Flags): Promise<number> {
  const found = keyFrom(args);
  if (!found) {
    err(
      "error: no API key to save: give --api-key-file PATH (or - for stdin), or run `modeldeploy login` in the folder where `npm start` runs " +
        "(it reads .modeldeploy/bootstrap-key, the key printed on first start)",
    );
    return 2;
  }
  const url = resolveSettings({ url: str(args, "url") }).url;
  const api = createApiClients(url, found.key);
  // Any authenticated read proves the address and the key.
  await api.deployments.listDeployments({ pageSize: 1 });
  const file = saveSettings({ url, apiKey: found.key });
  out(`logged in to ${url} with the key from ${found.from}; saved to ${file}`);
  return 0;
}

export function logout(): number {
  const file = configPath();
  if (existsSync(file)) saveSettings({});
  out(`forgot the saved address and key (${file})`);
  return 0;
}

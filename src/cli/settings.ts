// Where the client commands find the API and their key: flags first, then
// MODELDEPLOY_URL / MODELDEPLOY_API_KEY, then the file `modeldeploy login`
// writes under the user's config folder.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";

export const DEFAULT_URL = "http://127.0.0.1:8080";

export interface ClientSettings {
  url: string;
  apiKey: string | undefined;
  /** Where each came from, for error hints. */
  urlFrom: "flag" | "env" | "config" | "default";
  apiKeyFrom: "flag" | "env" | "config" | "none";
}

interface SavedSettings {
  url?: string;
  apiKey?: string;
}

/** $XDG_CONFIG_HOME/modeldeploy/config.json (%APPDATA% on Windows, ~/.config otherwise). */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env["XDG_CONFIG_HOME"] || (process.platform === "win32" && env["APPDATA"]) || path.join(homedir(), ".config");
  return path.join(base, "modeldeploy", "config.json");
}

function readSaved(file: string): SavedSettings {
  if (!existsSync(file)) return {};
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as unknown;
    return typeof v === "object" && v !== null ? (v as SavedSettings) : {};
  } catch (err) {
    throw new Error(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)} (run \`modeldeploy login\` again to rewrite it)`, { cause: err });
  }
}

export function resolveSettings(flags: { url?: string | undefined; apiKey?: string | undefined }, env: NodeJS.ProcessEnv = process.env): ClientSettings {
  const saved = readSaved(configPath(env));
  const envUrl = env["MODELDEPLOY_URL"] || undefined;
  const envKey = env["MODELDEPLOY_API_KEY"] || undefined;
  const url = flags.url ?? envUrl ?? saved.url;
  const apiKey = flags.apiKey ?? envKey ?? saved.apiKey;
  return {
    url: url ?? DEFAULT_URL,
    apiKey,
    urlFrom: flags.url !== undefined ? "flag" : envUrl ? "env" : saved.url ? "config" : "default",
    apiKeyFrom: flags.apiKey !== undefined ? "flag" : envKey ? "env" : saved.apiKey ? "config" : "none",
  };
}

/** Writes the file readable by the user alone: it holds a key. */
export function saveSettings(settings: SavedSettings, env: NodeJS.ProcessEnv = process.env): string {
  const file = configPath(env);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(settings, null, 2) + "\n", { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

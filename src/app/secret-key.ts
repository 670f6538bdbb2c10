// The key that seals model tokens, for the roles that seal (api) or unseal
// (worker). Configured with MODELDEPLOY_SECRET_KEY; the embedded default
// (`start` without DATABASE_URL) makes one in its data folder on first start
// and reuses it, since nothing else shares its database. Without a key
// everything works but private weights: a model with a token is refused at
// the call, saying which setting is missing.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ConfigError, type Config } from "../config.js";
import { createTokenSealer, newSecretKey, parseSecretKey, type TokenSealer } from "../secrets/token-seal.js";

export function secretKeyPath(config: Config): string {
  return path.join(config.dataDir, "secret-key");
}

export function tokenSealerFor(config: Config, role: string): TokenSealer | undefined {
  if (config.secretKey !== undefined) {
    const key = parseSecretKey(config.secretKey);
    if (!key) throw new ConfigError(["MODELDEPLOY_SECRET_KEY: expected base64 of 32 bytes (e.g. `openssl rand -base64 32`)"]);
    return createTokenSealer(key);
  }
  if (role === "start" && config.databaseUrl === undefined) return createTokenSealer(embeddedKey(config));
  return undefined;
}

function embeddedKey(config: Config): Buffer {
  const file = secretKeyPath(config);
  let text: string | undefined;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (text !== undefined) {
    const key = parseSecretKey(text);
    if (!key)
      throw new ConfigError([`${file}: not base64 of 32 bytes; restore it (tokens sealed with it cannot be read otherwise), or remove it to make a new one`]);
    return key;
  }
  mkdirSync(config.dataDir, { recursive: true });
  // wx: two processes starting at once never overwrite each other's key.
  try {
    writeFileSync(file, newSecretKey() + "\n", { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  chmodSync(file, 0o600);
  return embeddedKey(config);
}

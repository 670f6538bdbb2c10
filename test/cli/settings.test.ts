// Where the client commands find the API and key: flags over environment over
// the file `login` saves, and that file readable by its owner alone.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_URL, configPath, resolveSettings, saveSettings } from "../../src/cli/settings.js";

let dir: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "md-cli-settings-"));
  env = { XDG_CONFIG_HOME: dir };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("client settings", () => {
  it("default to the local API and no key", () => {
    expect(resolveSettings({}, env)).toEqual({ url: DEFAULT_URL, apiKey: undefined, urlFrom: "default", apiKeyFrom: "none" });
  });

  it("take flags over the environment over the saved file", () => {
    const file = saveSettings({ url: "http://saved:1", apiKey: "saved-key" }, env);
    expect(file).toBe(path.join(dir, "modeldeploy", "config.json"));
    expect(configPath(env)).toBe(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(resolveSettings({}, env)).toMatchObject({ url: "http://saved:1", apiKey: "saved-key", urlFrom: "config", apiKeyFrom: "config" });
    const withEnv = { ...env, MODELDEPLOY_URL: "http://env:2", MODELDEPLOY_API_KEY: "env-key" };
    expect(resolveSettings({}, withEnv)).toMatchObject({ url: "http://env:2", apiKey: "env-key", urlFrom: "env", apiKeyFrom: "env" });
    expect(resolveSettings({ url: "http://flag:3", apiKey: "flag-key" }, withEnv)).toMatchObject({
      url: "http://flag:3",
      apiKey: "flag-key",
      urlFrom: "flag",
      apiKeyFrom: "flag",
    });
  });
});

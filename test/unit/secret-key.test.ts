import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { secretKeyPath, tokenSealerFor } from "../../src/app/secret-key.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { newSecretKey } from "../../src/secrets/token-seal.js";

const dirs: string[] = [];
const dataDir = () => dirs[dirs.push(mkdtempSync(path.join(tmpdir(), "md-key-"))) - 1]!;
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("the key that seals model tokens", () => {
  it("embedded default: made in the data folder on first start (0600), the same key afterwards", () => {
    const config = loadConfig({ MODELDEPLOY_DATA_DIR: dataDir() });
    const first = tokenSealerFor(config, "start")!;
    expect(statSync(secretKeyPath(config)).mode & 0o777).toBe(0o600);
    const again = tokenSealerFor(config, "start")!;
    expect(again.keyId).toBe(first.keyId);
    expect(again.unseal(first.seal("s3cr3t"))).toBe("s3cr3t");
  });

  it("MODELDEPLOY_SECRET_KEY: used as given, by every role", () => {
    const key = newSecretKey();
    const a = tokenSealerFor(loadConfig({ MODELDEPLOY_SECRET_KEY: key, DATABASE_URL: "postgres://x/y" }), "api")!;
    const w = tokenSealerFor(loadConfig({ MODELDEPLOY_SECRET_KEY: key, DATABASE_URL: "postgres://x/y" }), "worker")!;
    expect(w.unseal(a.seal("s3cr3t"))).toBe("s3cr3t");
  });

  it("api, worker and start with DATABASE_URL run without a key (private weights are then refused at the call) and make none", () => {
    for (const role of ["api", "worker", "start"]) {
      const config = loadConfig({ DATABASE_URL: "postgres://x/y", MODELDEPLOY_DATA_DIR: dataDir() });
      expect(tokenSealerFor(config, role)).toBeUndefined();
      expect(() => statSync(secretKeyPath(config))).toThrow();
    }
  });

  it("refuses a key that is not base64 of 32 bytes, without echoing it", () => {
    expect(() => loadConfig({ MODELDEPLOY_SECRET_KEY: "dG9vLXNob3J0" })).toThrow(ConfigError);
    try {
      loadConfig({ MODELDEPLOY_SECRET_KEY: "dG9vLXNob3J0" });
    } catch (err) {
      expect((err as Error).message).toContain("MODELDEPLOY_SECRET_KEY: expected base64 of 32 bytes");
      expect((err as Error).message).not.toContain("dG9vLXNob3J0");
    }
  });
});

// Configuration comes from environment variables read and validated in one
// place (src/config.ts), documented in the README's configuration table;
// lower layers get their settings as parameters.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { findNatsServer, NatsServerNotFoundError } from "../../src/queue/embedded-nats.js";

const root = path.resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(path.join(tmpdir(), "md-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An executable file named nats-server, alone in a new directory. */
function executable(name: string): string {
  const d = mkdtempSync(path.join(dir, `${name}-`));
  const file = path.join(d, "nats-server");
  writeFileSync(file, "#!/bin/sh\nexit 0\n");
  chmodSync(file, 0o755);
  return file;
}

describe("NATS_SERVER_BIN", () => {
  it("is read and passed on by the configuration", () => {
    expect(loadConfig({}).natsServerBin).toBeUndefined();
    expect(loadConfig({ NATS_SERVER_BIN: "  " }).natsServerBin).toBeUndefined();
    expect(loadConfig({ NATS_SERVER_BIN: "/opt/nats/nats-server" }).natsServerBin).toBe("/opt/nats/nats-server");
  });

  it("is not read from the environment by the embedded queue server", () => {
    const onPath = executable("path");
    const missing = path.join(dir, "no-such-nats-server");
    // The configured binary (a parameter) wins; a missing one is an error naming the setting.
    expect(findNatsServer(onPath, { PATH: "" })).toBe(onPath);
    expect(() => findNatsServer(missing, { PATH: path.dirname(onPath) })).toThrow(NatsServerNotFoundError);
    expect(() => findNatsServer(missing, { PATH: path.dirname(onPath) })).toThrow(/NATS_SERVER_BIN points to .*no-such-nats-server/);
    // An environment variable of that name is ignored: only the configuration passes it.
    expect(findNatsServer(undefined, { NATS_SERVER_BIN: missing, PATH: path.dirname(onPath) })).toBe(onPath);
    const saved = process.env["NATS_SERVER_BIN"];
    process.env["NATS_SERVER_BIN"] = missing;
    try {
      expect(findNatsServer(undefined, { PATH: path.dirname(onPath) })).toBe(onPath);
    } finally {
      if (saved === undefined) delete process.env["NATS_SERVER_BIN"];
      else process.env["NATS_SERVER_BIN"] = saved;
    }
  });
});

describe("README configuration table", () => {
  /** Every variable src/config.ts reads (`r.str("X", …)`, `r.optional("X")`, …). */
  function configVariables(): string[] {
    const source = readFileSync(path.join(root, "src/config.ts"), "utf8");
    return [...source.matchAll(/\br\.(?:str|optional|int|oneOf)\(\s*"([A-Z0-9_]+)"/g)].map((m) => m[1]!);
  }

  /** The variables the "## Configuration" table documents (`A_HOST` / `_PORT` is A_HOST and A_PORT). */
  function documentedVariables(): Set<string> {
    const readme = readFileSync(path.join(root, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Configuration"));
    const table = section.slice(0, section.indexOf("\n## ", 1));
    const out = new Set<string>();
    for (const line of table.split("\n")) {
      const first = /^\|\s*([^|]+?)\s*\|/.exec(line)?.[1] ?? "";
      const names = [...first.matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1]!);
      const base = names[0];
      for (const name of names) {
        // "`X_CERT_FILE` / `_KEY_FILE`": the suffix replaces the base's last words.
        if (name.startsWith("_") && base !== undefined) {
          const words = name.slice(1).split("_").length;
          out.add([...base.split("_").slice(0, -words), ...name.slice(1).split("_")].join("_"));
        } else out.add(name);
      }
    }
    return out;
  }

  it("documents every variable the configuration reads", () => {
    const read = configVariables();
    expect(read).toContain("NATS_SERVER_BIN");
    expect(read.length).toBeGreaterThan(20);
    const documented = documentedVariables();
    expect(read.filter((v) => !documented.has(v))).toEqual([]);
  });
});

describe("wire limits", () => {
  it("have defaults that let 10,000 watches in over 100 connections, and refuse nonsense", () => {
    const c = loadConfig({});
    expect(c.maxConnections * c.maxStreamsPerConnection).toBeGreaterThanOrEqual(10_000);
    expect(c.maxConnections).toBeGreaterThanOrEqual(100);
    expect(c.maxStreamsPerConnection).toBeGreaterThanOrEqual(100);
    expect(c.maxJsonRequestBytes).toBeLessThan(c.maxRequestBytes);
    expect(c).toMatchObject({
      maxJsonDepth: 64,
      maxHeaderBytes: 16_384,
      idleConnectionMs: 300_000,
      keepaliveTimeMs: 60_000,
      keepaliveTimeoutMs: 20_000,
      maxStreamResets: 1000,
    });
    expect(loadConfig({ MODELDEPLOY_MAX_CONNECTIONS: "8", MODELDEPLOY_IDLE_CONNECTION_MS: "500" })).toMatchObject({ maxConnections: 8, idleConnectionMs: 500 });
    expect(() => loadConfig({ MODELDEPLOY_MAX_JSON_DEPTH: "0" })).toThrow(/MODELDEPLOY_MAX_JSON_DEPTH=0/);
    expect(() => loadConfig({ MODELDEPLOY_MAX_CONNECTIONS: "lots" })).toThrow(/MODELDEPLOY_MAX_CONNECTIONS=lots/);
  });
});

describe("observability settings", () => {
  it("serve a worker's metrics only when a port is set, and trace only with an OTLP endpoint", () => {
    const c = loadConfig({});
    expect(c.workerMetricsPort).toBeUndefined();
    expect(c.otlpEndpoint).toBeUndefined();
    expect(loadConfig({ MODELDEPLOY_WORKER_METRICS_PORT: "0" }).workerMetricsPort).toBe(0);
    expect(() => loadConfig({ MODELDEPLOY_WORKER_METRICS_PORT: "99999" })).toThrow(/MODELDEPLOY_WORKER_METRICS_PORT=99999/);
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).otlpEndpoint).toBe("http://c:4318");
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t:4318/v1/traces" }).otlpEndpoint).toBe(
      "http://t:4318/v1/traces",
    );
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }).otlpEndpoint).toBeUndefined();
  });
});

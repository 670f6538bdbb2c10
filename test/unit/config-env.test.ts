// Configuration comes from environment variables read and validated in one
// place (src/config.ts), documented in the README's configuration table;
// lower layers get their settings as parameters.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { configVariables, loadConfig } from "../../src/config.js";
import { findNatsServer, NatsServerNotFoundError } from "../../src/queue/embedded-nats.js";
import { documentedVariables } from "../helpers/readme-config.js";

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
  it("documents every variable the configuration reads", () => {
    const read = configVariables();
    expect(read).toContain("NATS_SERVER_BIN");
    expect(read).toContain("MODELDEPLOY_CPU_ALLOCATION_RATIO");
    expect(read.length).toBeGreaterThan(20);
    const documented = documentedVariables();
    expect(read.filter((v) => !documented.has(v))).toEqual([]);
    // …and nothing it does not read.
    expect([...documented].filter((v) => !read.includes(v))).toEqual([]);
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

describe("MODELDEPLOY_GATEWAY_PUBLIC_URL", () => {
  it("is an http(s) URL, unset by default (the gateway's own address)", () => {
    expect(loadConfig({}).gatewayPublicUrl).toBeUndefined();
    expect(loadConfig({ MODELDEPLOY_GATEWAY_PUBLIC_URL: "http://modeldeploy-gateway:8000" }).gatewayPublicUrl).toBe("http://modeldeploy-gateway:8000");
    expect(() => loadConfig({ MODELDEPLOY_GATEWAY_PUBLIC_URL: "modeldeploy-gateway:8000" })).toThrow(/MODELDEPLOY_GATEWAY_PUBLIC_URL=modeldeploy-gateway:8000/);
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

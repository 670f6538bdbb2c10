// The dashboard's files on the Connect port: content types, caching (hashed
// assets for good, the page revalidated), gzip, ETags, the app's routes
// answered with index.html, and the RPC routes, /healthz and CORS unchanged.
import http from "node:http";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { createClient, type ServiceImpl } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindService } from "../../src/api/call-wrapper.js";
import { createConnectServer, type ConnectServer } from "../../src/api/connect-server.js";
import { isAppRoute, loadStaticAssets } from "../../src/api/static-assets.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { silentLogger } from "../../src/log.js";

let dir: string;
let server: ConnectServer;
let base: string;
const page = "<!doctype html><title>dashboard</title><script type=module src=/assets/index-AbC123.js></script>";
const script = `console.log(${JSON.stringify("x".repeat(4000))});`;

/** A raw request, so the test decides the headers (fetch adds accept-encoding and decompresses). */
function get(
  urlPath: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${urlPath}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "md-web-"));
  mkdirSync(path.join(dir, "assets"));
  writeFileSync(path.join(dir, "index.html"), page);
  writeFileSync(path.join(dir, "assets", "index-AbC123.js"), script);
  writeFileSync(path.join(dir, "assets", "index-Def456.css"), "body{margin:0}");
  const assets = loadStaticAssets(dir);
  expect(assets?.files).toBe(3);
  const impl: Partial<ServiceImpl<typeof DeploymentService>> = {
    listAcceleratorTypes: () => ({ acceleratorTypes: [{ name: "L4-24GB", memory: "24GiB", maxPerReplica: 2, available: 4 }] }),
  };
  server = createConnectServer({ services: [bindService(DeploymentService, impl)], logger: silentLogger, assets });
  base = `http://127.0.0.1:${await server.listen("127.0.0.1", 0)}`;
});

afterAll(async () => {
  await server?.close(1000);
  rmSync(dir, { recursive: true, force: true });
});

describe("the dashboard's files on the Connect port", () => {
  it("serves the page at / and at the app's routes, revalidated, with a strict CSP", async () => {
    for (const p of ["/", "/index.html", "/new", "/deployments", "/deployments/tiny-linear-01m89c6fb251q"]) {
      const res = await get(p);
      expect(res.status, p).toBe(200);
      expect(res.body.toString()).toBe(page);
      expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(res.headers["cache-control"]).toBe("no-cache");
      expect(res.headers["content-security-policy"]).toContain("default-src 'self'");
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect(res.headers["x-request-id"]).toBeTruthy();
    }
  });

  it("serves hashed assets with their content type, cached for good, gzipped when asked", async () => {
    const plain = await get("/assets/index-AbC123.js");
    expect(plain.status).toBe(200);
    expect(plain.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.body.toString()).toBe(script);
    const gz = await get("/assets/index-AbC123.js", { "accept-encoding": "br, gzip" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gz.headers["vary"]).toBe("accept-encoding");
    expect(Number(gz.headers["content-length"])).toBe(gz.body.length);
    expect(gunzipSync(gz.body).toString()).toBe(script);
    const css = await get("/assets/index-Def456.css");
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
  });

  it("answers a matching If-None-Match with 304, and HEAD without a body", async () => {
    const first = await get("/");
    const again = await get("/", { "if-none-match": first.headers.etag! });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const head = await get("/assets/index-AbC123.js", {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(Buffer.byteLength(script)));
    expect(head.body.length).toBe(0);
  });

  it("leaves unknown paths, other methods, /healthz, CORS and the RPC routes as they were", async () => {
    const unknown = await get("/nope.js");
    expect(unknown.status).toBe(404);
    expect(unknown.headers["content-type"]).toBe("application/json");
    expect((await get("/deployments/Not_A_Name")).status).toBe(404);
    expect((await get("/", {}, "POST")).status).toBe(404);
    const health = await get("/healthz");
    expect(JSON.parse(health.body.toString())).toEqual({ status: "ok" });
    const preflight = await get(
      "/modeldeploy.v1.DeploymentService/ListAcceleratorTypes",
      { origin: "http://example.test", "access-control-request-method": "POST" },
      "OPTIONS",
    );
    expect(preflight.status).toBe(204);
    expect(preflight.headers["access-control-allow-origin"]).toBe("*");
    const client = createClient(DeploymentService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
    expect((await client.listAcceleratorTypes({})).acceleratorTypes[0]?.name).toBe("L4-24GB");
    // Connect GET (a method without side effects) is an RPC, not a file.
    const viaGet = createClient(DeploymentService, createConnectTransport({ baseUrl: base, httpVersion: "1.1", useHttpGet: true }));
    expect((await viaGet.listAcceleratorTypes({})).acceleratorTypes).toHaveLength(1);
  });

  it("knows the app's routes", () => {
    expect(isAppRoute("/deployments/a-b-1")).toBe(true);
    expect(isAppRoute("/modeldeploy.v1.DeploymentService/GetDeployment")).toBe(false);
    expect(isAppRoute("/deployments/a/b")).toBe(false);
  });

  it("serves nothing when the dashboard was not built", () => {
    expect(loadStaticAssets(path.join(dir, "missing"))).toBeUndefined();
  });
});

import { readdir, readFile, rm, unlink } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import type { DownloadProgress } from "../../src/runtime/driver.js";
import { createWeightsCache, type WeightsCache } from "../../src/runtime/local/weights-cache.js";
import { writeSampleModel, type WrittenModel } from "../helpers/onnx-model.js";
import { freePort, rejection, tempDir } from "./support.js";

describe("weights cache", () => {
  let dir: string;
  let model: WrittenModel;
  let cache: WeightsCache;
  let server: http.Server;
  let base: string;
  let modelBytes: Buffer;
  const hanging = new Set<http.ServerResponse>();

  beforeAll(async () => {
    dir = await tempDir("weights");
    model = await writeSampleModel(dir, "source.onnx");
    modelBytes = await readFile(model.path);
    cache = createWeightsCache({ dataDir: join(dir, "data"), logger: silentLogger, progressIntervalMs: 0 });
    server = http.createServer((req, res) => {
      if (req.url === "/model.onnx") {
        res.writeHead(200, { "content-length": modelBytes.length });
        // Two writes so that progress is reported in between.
        res.write(modelBytes.subarray(0, 100));
        res.end(modelBytes.subarray(100));
      } else if (req.url === "/chunked.onnx") {
        res.writeHead(200);
        res.end(modelBytes);
      } else if (req.url === "/broken") {
        res.writeHead(500);
        res.end("boom");
      } else if (req.url === "/hang") {
        res.writeHead(200, { "content-length": 1_000_000 });
        res.write(Buffer.alloc(10));
        hanging.add(res);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const tmpFiles = () => readdir(join(cache.root, "tmp")).catch(() => []);

  it("downloads a file:// uri into the content-addressed cache, reporting progress", async () => {
    const progress: DownloadProgress[] = [];
    const weights = await cache.prepare({ uri: pathToFileURL(model.path).href, sha256: "" }, (p) => progress.push(p));
    expect(weights).toEqual({
      path: join(cache.root, "sha256", model.sha256, "model.onnx"),
      sha256: model.sha256,
      bytes: model.bytes,
    });
    expect(await readFile(weights.path)).toEqual(modelBytes);
    expect(progress[0]).toEqual({ bytesDone: 0, bytesTotal: model.bytes });
    expect(progress.at(-1)).toEqual({ bytesDone: model.bytes, bytesTotal: model.bytes });
    expect(await tmpFiles()).toEqual([]);
  });

  it("is a cache hit when the sha256 is known, reporting all bytes at once", async () => {
    const progress: DownloadProgress[] = [];
    // The source is gone: a hit must not read it.
    const uri = pathToFileURL(join(dir, "gone.onnx")).href;
    const weights = await cache.prepare({ uri, sha256: model.sha256.toUpperCase() }, (p) => progress.push(p));
    expect(weights.sha256).toBe(model.sha256);
    expect(progress).toEqual([{ bytesDone: model.bytes, bytesTotal: model.bytes }]);
  });

  it("takes model.onnx inside a directory uri", async () => {
    const sub = await tempDir("weights-dir");
    try {
      await writeSampleModel(sub);
      const weights = await cache.prepare({ uri: pathToFileURL(sub).href, sha256: model.sha256 }, () => {});
      expect(weights.bytes).toBe(model.bytes);
    } finally {
      await rm(sub, { recursive: true, force: true });
    }
  });

  it("fails with WEIGHTS_CHECKSUM_MISMATCH naming both hashes, and caches nothing", async () => {
    const wrong = "0".repeat(64);
    const err = await rejection(cache.prepare({ uri: pathToFileURL(model.path).href, sha256: wrong }, () => {}));
    expect(err.reason).toBe("WEIGHTS_CHECKSUM_MISMATCH");
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(model.sha256);
    expect(await readdir(join(cache.root, "sha256"))).not.toContain(wrong);
    expect(await tmpFiles()).toEqual([]);
  });

  it("fails with WEIGHTS_NOT_FOUND for a missing file", async () => {
    const err = await rejection(cache.prepare({ uri: pathToFileURL(join(dir, "nope.onnx")).href, sha256: "" }, () => {}));
    expect(err.reason).toBe("WEIGHTS_NOT_FOUND");
    expect(err.message).toMatch(/no model file at .*nope\.onnx/);
  });

  it("rejects unsupported schemes and malformed hashes as INVALID_SPEC", async () => {
    expect((await rejection(cache.prepare({ uri: "s3://bucket/m.onnx", sha256: "" }, () => {}))).reason).toBe("INVALID_SPEC");
    expect((await rejection(cache.prepare({ uri: "not a uri", sha256: "" }, () => {}))).reason).toBe("INVALID_SPEC");
    expect((await rejection(cache.prepare({ uri: "file://host/m.onnx", sha256: "" }, () => {}))).reason).toBe("INVALID_SPEC");
    expect((await rejection(cache.prepare({ uri: `${base}/model.onnx`, sha256: "abc" }, () => {}))).reason).toBe("INVALID_SPEC");
  });

  it("downloads over http with content-length progress", async () => {
    await unlink(join(cache.root, "sha256", model.sha256, "model.onnx"));
    const progress: DownloadProgress[] = [];
    const weights = await cache.prepare({ uri: `${base}/model.onnx`, sha256: model.sha256 }, (p) => progress.push(p));
    expect(weights.bytes).toBe(model.bytes);
    expect(await readFile(weights.path)).toEqual(modelBytes);
    expect(progress.every((p) => p.bytesTotal === model.bytes)).toBe(true);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.at(-1)?.bytesDone).toBe(model.bytes);
  });

  it("reports an unknown total as 0 while downloading without content-length", async () => {
    const progress: DownloadProgress[] = [];
    await cache.prepare({ uri: `${base}/chunked.onnx`, sha256: "" }, (p) => progress.push(p));
    expect(progress[0]).toEqual({ bytesDone: 0, bytesTotal: 0 });
    expect(progress.at(-1)).toEqual({ bytesDone: model.bytes, bytesTotal: model.bytes });
  });

  it("maps HTTP 404 to WEIGHTS_NOT_FOUND and 5xx or no server to retryable WEIGHTS_DOWNLOAD_FAILED", async () => {
    const missing = await rejection(cache.prepare({ uri: `${base}/missing.onnx`, sha256: "" }, () => {}));
    expect(missing.reason).toBe("WEIGHTS_NOT_FOUND");
    expect(missing.retryable).toBe(false);
    const broken = await rejection(cache.prepare({ uri: `${base}/broken`, sha256: "" }, () => {}));
    expect(broken.reason).toBe("WEIGHTS_DOWNLOAD_FAILED");
    expect(broken.retryable).toBe(true);
    const refused = await rejection(cache.prepare({ uri: `http://127.0.0.1:${await freePort()}/m.onnx`, sha256: "" }, () => {}));
    expect(refused.reason).toBe("WEIGHTS_DOWNLOAD_FAILED");
    expect(refused.retryable).toBe(true);
    expect(refused.message).toMatch(/ECONNREFUSED/);
  });

  it("stops a download when aborted and leaves no partial file", async () => {
    const abort = new AbortController();
    const download = cache.prepare(
      { uri: `${base}/hang`, sha256: "" },
      (p) => {
        if (p.bytesDone > 0) abort.abort();
      },
      abort.signal,
    );
    const err = await rejection(download);
    expect(err.message).toMatch(/aborted/);
    expect(await tmpFiles()).toEqual([]);
  });
});

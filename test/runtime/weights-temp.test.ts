// A worker killed mid-download leaves its temp file in the shared weights
// cache; a later process removes it (at start, and before a download) and
// never removes the temp file of a download that is still running.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, rm, utimes, writeFile, mkdir } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { createWeightsCache } from "../../src/runtime/local/weights-cache.js";
import { removeLeftoverTempFiles, tempFileName } from "../../src/runtime/local/weights-temp.js";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { tempDir, waitFor } from "./support.js";

const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));

/** A download in a process of its own: prints "downloading" once bytes arrived. */
const DOWNLOADER = `
const [cacheModule, logModule, dataDir, uri] = process.argv.slice(1);
const { createWeightsCache } = await import(cacheModule);
const { silentLogger } = await import(logModule);
const cache = createWeightsCache({ dataDir, logger: silentLogger, progressIntervalMs: 0 });
let said = false;
await cache.prepare({ uri, sha256: "" }, (p) => {
  if (p.bytesDone > 0 && !said) { said = true; console.log("downloading"); }
});
`;

describe("weights cache temp files", () => {
  let dir: string;
  let dataDir: string;
  let tmp: string;
  let server: http.Server;
  let slowUri: string;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    for (const f of ["runtime/local/weights-cache.js", "log.js"]) {
      if (!existsSync(join(DIST, f))) throw new Error(`dist/${f} is missing: run \`npm run build\` before these tests`);
    }
    dir = await tempDir("weights-temp");
    dataDir = join(dir, "data");
    tmp = join(dataDir, "weights", "tmp");
    // Sends a little, then nothing: a download that stays in progress.
    server = http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": 1_000_000 });
      res.write(Buffer.alloc(4096));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    slowUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slow.onnx`;
  });

  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Starts a download in a child process; resolves once its temp file has bytes. */
  async function downloadInChild(): Promise<{ child: ChildProcess; exited: Promise<unknown> }> {
    const args = [pathToFileURL(join(DIST, "runtime/local/weights-cache.js")).href, pathToFileURL(join(DIST, "log.js")).href, dataDir, slowUri];
    const child = spawn(process.execPath, ["--input-type=module", "-e", DOWNLOADER, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    const exited = new Promise((resolve) => child.once("exit", resolve)).finally(() => children.delete(child));
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    await waitFor("the child's download to be under way", () => {
      if (child.exitCode !== null) throw new Error(`downloader exited ${child.exitCode}: ${out}`);
      return out.includes("downloading");
    });
    // Its temp file may appear a moment after it says so.
    await waitFor("the child's temp file", async () => fileOf(child, await tempFiles()) !== undefined);
    return { child, exited };
  }

  const tempFiles = async () => (await readdir(tmp).catch(() => [] as string[])).sort();
  const fileOf = (child: ChildProcess, names: string[]) => names.find((n) => n.split(".")[1] === String(child.pid));

  it("removes a killed download's file at start and before a download, never a live one's", async () => {
    const live = await downloadInChild();
    const killed = await downloadInChild();
    const before = await tempFiles();
    const liveFile = fileOf(live.child, before);
    const killedFile = fileOf(killed.child, before);
    expect(liveFile).toBeDefined();
    expect(killedFile).toBeDefined();

    killed.child.kill("SIGKILL");
    await killed.exited;
    expect(await tempFiles()).toEqual(before); // the litter this is about

    // A process starting on the same cache removes it, and leaves the live one.
    createWeightsCache({ dataDir, logger: silentLogger });
    await waitFor("the killed download's file to be removed", async () => !(await tempFiles()).includes(killedFile!));
    expect(await tempFiles()).toEqual([liveFile]);

    // Killed again; this time a download (in this process) cleans up first.
    const killedAgain = await downloadInChild();
    const againFile = fileOf(killedAgain.child, await tempFiles());
    killedAgain.child.kill("SIGKILL");
    await killedAgain.exited;
    expect(await tempFiles()).toContain(againFile);
    const model = await writeSampleModel(dir, "source.onnx");
    const cache = createWeightsCache({ dataDir, logger: silentLogger });
    await cache.prepare({ uri: pathToFileURL(model.path).href, sha256: "" }, () => {});
    expect(await tempFiles()).toEqual([liveFile]);

    live.child.kill("SIGKILL");
    await live.exited;
  });

  it("tells a reused pid, a foreign name and an abandoned file apart", async () => {
    const scratch = join(dir, "scratch");
    await mkdir(scratch, { recursive: true });
    const mine = tempFileName(); // this live process: kept
    const [host, pid, start, ...rest] = mine.split(".");
    // This process's pid, but another start time: a dead writer whose pid came back.
    const reusedPid = [host, pid, `${start}9`, ...rest].join(".");
    const otherHost = ["0".repeat(8), "1", "1", ...rest].join(".");
    const oldName = "0b5e6a4e-2f4c-4a59-9f7b-0d9a2b3c4d5e.part";
    const abandoned = "1b5e6a4e-2f4c-4a59-9f7b-0d9a2b3c4d5e.part";
    for (const name of [mine, reusedPid, otherHost, oldName, abandoned]) await writeFile(join(scratch, name), "x");
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(join(scratch, abandoned), twoHoursAgo, twoHoursAgo);

    expect((await removeLeftoverTempFiles(scratch)).sort()).toEqual([abandoned, reusedPid].sort());
    expect((await readdir(scratch)).sort()).toEqual([mine, oldName, otherHost].sort());
  });
});

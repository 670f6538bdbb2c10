// The lifecycle commands of the CLI, run as subprocesses against the real
// all-in-one process (real Postgres, NATS and model servers): update, scale,
// stop, resume and rollback with --wait, a failing update, revisions, tasks,
// the catalog, cancelling a hanging update, and what errors print.
import http from "node:http";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NATS_URL, createTestDatabase, waitFor, type TestDatabase } from "../helpers/services.js";
import { runCli, startSystem, type RunningSystem } from "../helpers/system.js";

let tdb: TestDatabase;
let sys: RunningSystem;
let dir: string;
let env: Record<string, string>;
let hanging: http.Server;
let hangingUrl: string;
const hangingSockets = new Set<Socket>();
const name = "tiny-linear-cli";
const file = (f: string) => path.join(dir, f);
const cli = (...args: string[]) => runCli(args, env);

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  dir = mkdtempSync(path.join(tmpdir(), "md-cli-"));
  writeFileSync(file("broken.onnx"), "this is not an onnx file");
  // Weights that never finish downloading: an update that runs until cancelled.
  hanging = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": "1000000" });
    res.write(Buffer.alloc(1000));
  });
  hanging.on("connection", (s: Socket) => {
    hangingSockets.add(s);
    s.on("close", () => hangingSockets.delete(s));
  });
  await new Promise<void>((r) => hanging.listen(0, "127.0.0.1", r));
  hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/slow.onnx`;
  sys = await startSystem({ databaseUrl: tdb.url, natsUrl: NATS_URL, env: { MODELDEPLOY_ACCELERATORS: "L4-24GB:24GiB:2:4" } });
  env = { ...sys.env, MODELDEPLOY_URL: sys.httpUrl, MODELDEPLOY_API_KEY: sys.apiKey };
});

afterAll(async () => {
  const output = sys?.output() ?? "";
  const code = await sys?.stop();
  for (const s of hangingSockets) s.destroy();
  await new Promise<void>((r) => (hanging ? hanging.close(() => r()) : r()));
  rmSync(dir, { recursive: true, force: true });
  await tdb?.drop();
  expect(output).not.toContain("unhandled rejection");
  expect(code).toBe(0);
});

/** The deployment as `get --json` prints it. */
async function getJson(): Promise<{
  servingRevision: number;
  state: string;
  model: { uri: string; revision?: string };
  scaling: { minReplicas?: number; maxReplicas?: number };
}> {
  const res = await cli("get", name, "--json");
  expect(res.code).toBe(0);
  return JSON.parse(res.stdout) as never;
}

describe("modeldeploy lifecycle commands", () => {
  it("deploys the sample model, then updates, scales, stops, resumes and rolls back with --wait", async () => {
    const sample = await cli("sample-model", file("v1.onnx"));
    expect(sample.code).toBe(0);
    expect(sample.stdout.trim()).toBe(`file://${file("v1.onnx")}`);
    copyFileSync(file("v1.onnx"), file("v2.onnx"));
    const deploy = await cli("deploy", "--model", "acme/tiny-linear", "--uri", file("v1.onnx"), "--suffix", "cli", "--wait");
    expect(deploy.stderr).toBe("");
    expect(deploy.stdout).toContain(`${name}  RUNNING  rev 1  replicas 1/1 ready`);
    expect(deploy.code).toBe(0);

    // New weights: a new revision, rolled out green; the rest of the model is kept.
    const update = await cli("update", name, "--uri", file("v2.onnx"), "--revision", "2", "--wait");
    expect(update.stderr).toBe("");
    expect(update.stdout).toMatch(/^accepted tiny-linear-cli: queued: roll out a new revision beside revision 1 \(task \w+\)\n/);
    expect(update.stdout).toContain("SWITCHING_TRAFFIC");
    expect(update.stdout).toContain(`${name}  RUNNING  rev 2  replicas 1/1 ready`);
    expect(update.stdout).toMatch(/task \w+ UPDATE COMPLETED\n$/);
    expect(update.code).toBe(0);
    expect(await getJson()).toMatchObject({ servingRevision: 2, model: { uri: `file://${file("v2.onnx")}`, revision: "2" } });

    const up = await cli("scale", name, "--replicas", "2", "--wait");
    expect(up.stdout).toContain(`${name}  RUNNING  rev 2  replicas 2/2 ready`);
    expect(up.stdout).toMatch(/task \w+ SCALE COMPLETED\n$/);
    expect(up.code).toBe(0);

    const stop = await cli("scale", name, "--replicas", "0", "--wait");
    expect(stop.stdout).toContain("queued: stop (replicas 0–0)");
    expect(stop.stdout).toContain(`${name}  STOPPED  rev 2  replicas 0/0 ready`);
    expect(stop.code).toBe(0);

    const resume = await cli("scale", name, "--min", "1", "--max", "1", "--wait");
    expect(resume.stdout).toContain("queued: resume (replicas 1–1)");
    expect(resume.stdout).toContain(`${name}  RUNNING  rev 2  replicas 1/1 ready`);
    expect(resume.code).toBe(0);

    const rollback = await cli("rollback", name, "--wait");
    expect(rollback.stdout).toContain("queued: roll back to revision 1's model and resources");
    expect(rollback.stdout).toContain(`${name}  RUNNING  rev 3  replicas 1/1 ready`);
    expect(rollback.stdout).toMatch(/task \w+ ROLLBACK COMPLETED\n$/);
    expect(rollback.code).toBe(0);
    expect(await getJson()).toMatchObject({ servingRevision: 3, model: { uri: `file://${file("v1.onnx")}` } });
  });

  it("exits 1 with the failure reason when an update fails, and says the previous revision keeps serving", async () => {
    const res = await cli("update", name, "--uri", file("broken.onnx"), "--wait");
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`${name}  RUNNING  rev 3  replicas 1/1 ready`);
    expect(res.stdout).toMatch(/task \w+ UPDATE FAILED: SERVER_EXITED: .* \(rolled back: the previous revision keeps serving\)\n/);
    // The model server's last lines follow.
    expect(res.stdout).toContain("failed to load model");
    expect(res.stderr).toBe("");
  });

  it("lists revisions and tasks, following page tokens", async () => {
    const revisions = await cli("revisions", name);
    expect(revisions.code).toBe(0);
    const lines = revisions.stdout.trimEnd().split("\n");
    expect(lines.map((l) => /^(.) rev (\d+)/.exec(l)?.slice(1).join(""))).toEqual([" 1", " 2", "*3", " 4"]);
    const rev3 = lines[2]!;
    expect(rev3.startsWith("* rev 3  acme/tiny-linear  ")).toBe(true);
    expect(rev3).toContain(`file://${file("v1.onnx")}`);
    const json = JSON.parse((await cli("revisions", name, "--json")).stdout) as { revisions: Array<{ number: number; taskId: string }> };
    expect(json.revisions.map((r) => r.number)).toEqual([1, 2, 3, 4]);

    const tasks = await cli("tasks", name);
    expect(tasks.code).toBe(0);
    const kinds = tasks.stdout
      .trim()
      .split("\n")
      .map((l) => l.split("  ").slice(1, 4).join(" "));
    expect(kinds).toEqual([
      "UPDATE rev 4 FAILED",
      "ROLLBACK rev 3 COMPLETED",
      "SCALE rev 2 COMPLETED",
      "SCALE rev 2 COMPLETED",
      "SCALE rev 2 COMPLETED",
      "UPDATE rev 2 COMPLETED",
      "DEPLOY rev 1 COMPLETED",
    ]);
    expect(tasks.stdout).toContain("failure: SERVER_EXITED");
    expect(tasks.stdout).toContain("rolled back");
    expect(json.revisions[3]!.taskId).toBe(tasks.stdout.split("  ")[0]);

    // Pages of 2: every completed task once, newest first, across four pages.
    const paged = await cli("tasks", name, "--status", "completed", "--page-size", "2");
    expect(paged.stdout).toBe(
      tasks.stdout
        .split("\n")
        .filter((l) => l.includes("  COMPLETED  "))
        .join("\n") + "\n",
    );
    const pages = await cli("tasks", name, "--status", "TASK_STATUS_COMPLETED,failed", "--page-size", "2", "--json");
    expect(pages.stdout.match(/"nextPageToken"/g)).toHaveLength(3);
    expect(pages.stdout.match(/"kind": "TASK_KIND_/g)).toHaveLength(7);
  });

  it("lists the accelerator catalog with what is free", async () => {
    const res = await cli("catalog");
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("L4-24GB  memory 24GiB  max 2/replica  4 available\n");
    const json = JSON.parse((await cli("catalog", "--json")).stdout) as unknown;
    expect(json).toEqual({ acceleratorTypes: [{ name: "L4-24GB", memory: "24GiB", maxPerReplica: 2, available: 4 }] });
  });

  it("cancels a hanging update; its --wait exits 1 with CANCELLED and the serving revision keeps serving", async () => {
    const waiting = cli("update", name, "--uri", hangingUrl, "--wait");
    const running = await waitFor(
      "the update to download",
      async () => {
        const t = JSON.parse((await cli("status", name, "--json")).stdout) as { id: string; status: string; phase: string };
        return t.status === "TASK_STATUS_RUNNING" && t.phase === "TASK_PHASE_DOWNLOADING" ? t : undefined;
      },
      60_000,
      200,
    );
    const cancel = await cli("cancel", running.id);
    expect(cancel.stderr).toBe("");
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`^${running.id}  CANCELLED  DOWNLOADING  .*revision 3 keeps serving  failure: cancelled by `));
    const update = await waiting;
    expect(update.code).toBe(1);
    expect(update.stdout).toContain(`task ${running.id} UPDATE CANCELLED: CANCELLED: cancelled by `);
    expect(update.stdout).toContain("(rolled back: the previous revision keeps serving)");
    expect(update.stdout).toContain(`${name}  RUNNING  rev 3  replicas 1/1 ready`);
  });

  it("prints the code, message and ErrorInfo reason and metadata of a refused call, and no stack trace", async () => {
    const unknown = await cli("scale", "no-such-deployment", "--replicas", "1");
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe("");
    expect(unknown.stderr).toBe('error: [not_found] deployment "no-such-deployment" not found\n  reason: DEPLOYMENT_NOT_FOUND  name=no-such-deployment\n');

    // Cancelling the cancelled task again answers it; cancelling a finished one is refused.
    const cancelled = JSON.parse((await cli("status", name, "--json")).stdout) as { id: string; status: string };
    expect(cancelled.status).toBe("TASK_STATUS_CANCELLED");
    expect((await cli("cancel", cancelled.id)).code).toBe(0);
    const revisions = JSON.parse((await cli("revisions", name, "--json")).stdout) as { revisions: { number: number; taskId: string }[] };
    const finished = { id: revisions.revisions[0]!.taskId };
    const cancel = await cli("cancel", finished.id);
    expect(cancel.code).toBe(1);
    expect(cancel.stderr).toBe(
      `error: [failed_precondition] task ${finished.id} is already COMPLETED: only a PENDING or RUNNING task can be cancelled\n` +
        `  reason: TASK_NOT_CANCELLABLE  taskId=${finished.id} status=COMPLETED\n`,
    );

    const bad = await cli("scale", name, "--min", "3", "--max", "1");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("error: [invalid_argument] ");
    expect(bad.stderr).toContain("  reason: REPLICAS_INVALID  minReplicas=3 maxReplicas=1 limit=1000\n");
    expect(bad.stderr).toContain("  field scaling.min_replicas: ");

    const noRevision = await cli("rollback", name, "--revision", "9");
    expect(noRevision.stderr).toBe(`error: [not_found] deployment "${name}" has no revision 9\n  reason: REVISION_NOT_FOUND  name=${name} revision=9\n`);
    for (const r of [unknown, cancel, bad, noRevision]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

// Restarts and signals, for real: per-deployment sequences survive a restart
// of the all-in-one process and a watch resumes across it with no gap and no
// duplicate; the first SIGTERM drains and exits 0 on its own, a second signal
// while it drains exits at once.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { DeletionService } from "../../src/gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService, type CreateDeploymentResponse } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentState, EventType, TaskPhase, type DeploymentEvent } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { connectNats } from "../../src/queue/nats.js";
import { grpcClient, serverStream, unary, type GrpcClient } from "../helpers/grpc-client.js";
import { createTestDatabase, NATS_URL, waitFor, type TestDatabase } from "../helpers/services.js";
import { CLI, systemEnv } from "../helpers/system.js";

const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
// Never read by the noop runtime; the API only checks that it is a local file URI.
const NOOP_MODEL_URI = "file:///models/restart/model.onnx";

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface System {
  child: ChildProcess;
  grpcAddress: string;
  httpUrl: string;
  apiKey: string;
  output(): string;
  exit: Promise<Exit>;
  /** SIGTERM (if still running), then how it exited. */
  stop(): Promise<Exit>;
}

/** Everything a test started, stopped and removed even when it fails. */
class Resources {
  private readonly cleanups: Array<() => Promise<unknown> | unknown> = [];
  add(cleanup: () => Promise<unknown> | unknown): void {
    this.cleanups.push(cleanup);
  }
  async database(): Promise<TestDatabase> {
    const tdb = await createTestDatabase({ migrate: false });
    this.add(() => tdb.drop());
    return tdb;
  }
  /**
   * `modeldeploy start` on the given database with its own stream and data
   * directory, as test/helpers/system.ts starts it. (startSystem itself needs
   * the local runtime's banner lines and a freshly printed key, so it can
   * neither start the noop runtime nor restart on a database that has keys.)
   */
  async system(databaseUrl: string, extraEnv: Record<string, string>, knownApiKey?: string): Promise<System> {
    const dataDir = mkdtempSync(path.join(tmpdir(), "md-restart-"));
    const env = systemEnv({ databaseUrl, natsUrl: NATS_URL, dataDir, env: { LOG_LEVEL: "info", ...extraEnv } });
    const stream = env["MODELDEPLOY_NATS_STREAM"]!;
    const child = spawn(process.execPath, [CLI, "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<Exit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    // Whatever happens in the test: no process, directory or stream is left
    // behind. (A test that passes has stopped the process itself.)
    this.add(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exit;
      rmSync(dataDir, { recursive: true, force: true });
      const nc = await connectNats(NATS_URL, "modeldeploy-test-cleanup");
      await (await jetstreamManager(nc)).streams.delete(stream).catch(() => {});
      await nc.drain();
    });
    const banner = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", () => {
        if (stdout.includes("Press Ctrl-C")) resolve(stdout);
      });
      void exit.then((e) => reject(new Error(`modeldeploy start exited (${JSON.stringify(e)}):\n${stdout}\n${stderr}`)));
    });
    const grab = (re: RegExp) => re.exec(banner)?.[1];
    const grpcAddress = grab(/gRPC:\s+(\S+)/);
    const httpUrl = grab(/Connect\/gRPC-Web:\s+(\S+)/);
    const apiKey = grab(/\n\s+(mdk_\S+)/) ?? knownApiKey;
    if (!grpcAddress || !httpUrl || !apiKey) throw new Error(`unexpected banner:\n${banner}`);
    return {
      child,
      grpcAddress,
      httpUrl,
      apiKey,
      output: () => stdout + stderr,
      exit,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
        return exit;
      },
    };
  }
  grpc(service: Parameters<typeof grpcClient>[0], address: string): GrpcClient {
    const c = grpcClient(service, address);
    this.add(() => c.close());
    return c;
  }
  async release(): Promise<void> {
    const errors: unknown[] = [];
    for (const cleanup of this.cleanups.reverse()) {
      try {
        await cleanup();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, "cleanup failed");
  }
}

async function withResources(body: (r: Resources) => Promise<void>): Promise<void> {
  const r = new Resources();
  try {
    await body(r);
  } finally {
    await r.release();
  }
}

/** A grpc-js server stream, collected: every message, and how the stream ended. */
function collect<T>(stream: grpc.ClientReadableStream<T>): { items: T[]; ended: Promise<grpc.ServiceError | null> } {
  const items: T[] = [];
  const ended = new Promise<grpc.ServiceError | null>((resolve) => {
    stream.on("data", (m: T) => items.push(m));
    stream.on("error", (err: grpc.ServiceError) => resolve(err));
    stream.on("end", () => resolve(null));
  });
  return { items, ended };
}

const seqs = (events: DeploymentEvent[]) => events.map((e) => Number(e.sequence));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("sequences across a restart", () => {
  it("keeps per-deployment sequences gapless and resumes a watch with afterSequence across a restart", async () => {
    await withResources(async (r) => {
      const tdb = await r.database();
      const env = { MODELDEPLOY_RUNTIME: "noop" };

      // ── Before the restart: deploy, and watch it from the start. ──
      const first = await r.system(tdb.url, env);
      const grpcA = r.grpc(DeploymentService, first.grpcAddress);
      const created = await unary<CreateDeploymentResponse>(
        grpcA,
        "createDeployment",
        {
          model: { name: "acme/restart", uri: NOOP_MODEL_URI },
          scaling: { minReplicas: 1, maxReplicas: 1 },
        },
        first.apiKey,
      );
      const name = created.deployment!.name;
      const uid = created.deployment!.uid;
      const watch = serverStream<DeploymentEvent>(grpcA, "watchDeployment", { name }, first.apiKey);
      r.add(() => watch.cancel());
      const before = collect(watch);
      // The deploy may finish before the watch opens: its snapshot then shows RUNNING.
      await waitFor(
        "RUNNING on the watch",
        () =>
          before.items.some((e) => (e.type === EventType.TASK_FINISHED || e.type === EventType.SNAPSHOT) && e.deployment?.state === DeploymentState.RUNNING),
        30_000,
      );

      // The watch stays open while the process stops: SIGTERM ends it with
      // UNAVAILABLE (so it does not hold the drain) and the process exits 0.
      expect(await first.stop()).toEqual({ code: 0, signal: null });
      const endedWith = await before.ended;
      expect(endedWith?.code).toBe(grpc.status.UNAVAILABLE);

      expect(before.items[0]!.type).toBe(EventType.SNAPSHOT);
      const seen = seqs(before.items);
      expect(seen).toEqual(range(seen[0]!, seen[0]! + seen.length - 1));
      const last = seen.at(-1)!;
      expect(last).toBeGreaterThan(1);

      // ── After the restart: a NEW process (and stream) on the same database. ──
      // The database has a key already, so no new one is printed: the first
      // process's key, stored in the database, still works.
      const second = await r.system(tdb.url, env, first.apiKey);
      expect(second.output()).not.toContain("API key for workspace");
      const transport = createConnectTransport({ baseUrl: second.httpUrl, httpVersion: "1.1" });
      const deployments = createClient(DeploymentService, transport);
      const deletions = createClient(DeletionService, transport);

      const restarted = await deployments.getDeployment({ name }, auth(second.apiKey));
      expect(restarted.uid).toBe(uid);
      expect(restarted.state).toBe(DeploymentState.RUNNING);
      expect(Number(restarted.sequence)).toBeGreaterThanOrEqual(last);

      // Resume over Connect before the change, so it can go live; collect up to DELETED.
      const ac = new AbortController();
      r.add(() => ac.abort());
      const resumed: DeploymentEvent[] = [];
      const resumedDone = (async () => {
        for await (const e of deployments.watchDeployment({ name, afterSequence: BigInt(last) }, { ...auth(second.apiKey), signal: ac.signal })) {
          resumed.push(e);
          if (e.type === EventType.DELETED) break;
        }
      })();
      resumedDone.catch(() => {}); // awaited below; no unhandled rejection meanwhile
      await deletions.deleteDeployment({ name }, auth(second.apiKey));
      await resumedDone;

      // A resume sends no SNAPSHOT (the proto's contract): it starts at last+1
      // and runs strictly consecutively to DELETED, without duplicates.
      expect(resumed.map((e) => e.type)).not.toContain(EventType.SNAPSHOT);
      expect(resumed[0]!.sequence).toBe(BigInt(last + 1));
      const resumedSeqs = seqs(resumed);
      expect(resumedSeqs).toEqual(range(last + 1, last + resumed.length));
      expect(new Set(resumedSeqs).size).toBe(resumedSeqs.length);
      expect(resumed.at(-1)!.type).toBe(EventType.DELETED);
      expect(resumed.filter((e) => e.type === EventType.DELETED)).toHaveLength(1);
      const final = resumedSeqs.at(-1)!;

      // A second resume from the same point, after the fact (backlog only, over
      // native gRPC, WatchDeletion ends by itself), sees exactly the same events.
      const grpcDeletions = r.grpc(DeletionService, second.grpcAddress);
      const replay = collect(serverStream<DeploymentEvent>(grpcDeletions, "watchDeletion", { name, afterSequence: BigInt(last) }, second.apiKey));
      expect(await replay.ended).toBeNull();
      expect(seqs(replay.items)).toEqual(resumedSeqs);
      expect(replay.items.map((e) => e.type)).toEqual(resumed.map((e) => e.type));

      // GetDeployment's sequence is the last event's.
      const gone = await deployments.getDeployment({ name }, auth(second.apiKey));
      expect(gone.state).toBe(DeploymentState.DELETED);
      expect(Number(gone.sequence)).toBe(final);

      // And what is stored is gapless from 1, across both processes.
      const stored = await tdb.db.selectFrom("events").select("sequence").where("deployment_uid", "=", uid).orderBy("sequence").execute();
      expect(stored.map((e) => Number(e.sequence))).toEqual(range(1, final));

      expect(await second.stop()).toEqual({ code: 0, signal: null });
      expect(first.output() + second.output()).not.toContain("unhandled rejection");
    });
  });
});

describe("signals", () => {
  it("drains on the first SIGTERM and exits 0 on its own, ending open watches with UNAVAILABLE", async () => {
    await withResources(async (r) => {
      const tdb = await r.database();
      // A grace period this test would not survive: a clean exit cannot have waited it out.
      const sys = await r.system(tdb.url, { MODELDEPLOY_RUNTIME: "noop", MODELDEPLOY_SHUTDOWN_GRACE_MS: "600000" });
      const transport = createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" });
      const deployments = createClient(DeploymentService, transport);
      const created = await deployments.createDeployment({ model: { name: "acme/drain", uri: NOOP_MODEL_URI } }, auth(sys.apiKey));
      const name = created.deployment!.name;

      // One open watch per protocol, each past its SNAPSHOT.
      const grpcDeployments = r.grpc(DeploymentService, sys.grpcAddress);
      const grpcWatch = serverStream<DeploymentEvent>(grpcDeployments, "watchDeployment", { name }, sys.apiKey);
      r.add(() => grpcWatch.cancel());
      const viaGrpc = collect(grpcWatch);
      const ac = new AbortController();
      r.add(() => ac.abort());
      const viaConnect: DeploymentEvent[] = [];
      const connectEnded = (async () => {
        try {
          for await (const e of deployments.watchDeployment({ name }, { ...auth(sys.apiKey), signal: ac.signal })) viaConnect.push(e);
          return undefined;
        } catch (err) {
          return ConnectError.from(err);
        }
      })();
      await waitFor("both watches to be open", () => viaGrpc.items.length > 0 && viaConnect.length > 0);

      expect(await sys.stop()).toEqual({ code: 0, signal: null });
      expect((await viaGrpc.ended)?.code).toBe(grpc.status.UNAVAILABLE);
      expect((await connectEnded)?.code).toBe(Code.Unavailable);
      const out = sys.output();
      expect(out).toContain("shutting down (send the signal again to force)");
      expect(out).toContain('"msg":"stopped"');
      // It drained: nothing was cut because the grace period ran out, and it was not forced.
      expect(out).not.toContain("grace period over");
      expect(out).not.toContain("second signal");
      expect(out).not.toContain("unhandled rejection");
    });
  });

  it("exits at once with code 1 on a second signal while the first is still draining a task", async () => {
    await withResources(async (r) => {
      // A download that never finishes keeps a DEPLOY task in flight, and the
      // worker's drain waits for in-flight tasks up to the grace period.
      const sockets = new Set<Socket>();
      let requests = 0;
      const stall = http.createServer((_req, res) => {
        requests++;
        res.writeHead(200, { "content-length": "1000000" });
        res.write(Buffer.alloc(10));
      });
      stall.on("connection", (s) => sockets.add(s));
      await new Promise<void>((resolve) => stall.listen(0, "127.0.0.1", resolve));
      r.add(async () => {
        for (const s of sockets) s.destroy();
        await new Promise((resolve) => stall.close(resolve));
      });
      const port = (stall.address() as AddressInfo).port;

      const tdb = await r.database();
      // The local runtime (the noop one downloads nothing); the longest grace allowed.
      const sys = await r.system(tdb.url, { MODELDEPLOY_SHUTDOWN_GRACE_MS: "600000" });
      const transport = createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" });
      const deployments = createClient(DeploymentService, transport);
      const created = await deployments.createDeployment({ model: { name: "acme/stuck", uri: `http://127.0.0.1:${port}/model.onnx` } }, auth(sys.apiKey));
      const taskId = created.task!.id;
      await waitFor("the download to be in flight", async () => {
        const t = await deployments.getDeploymentStatus({ name: created.deployment!.name }, auth(sys.apiKey));
        return requests > 0 && t.phase === TaskPhase.DOWNLOADING;
      });

      // The task as a worker holds it while running.
      const taskRow = () => tdb.db.selectFrom("tasks").select(["status", "phase", "lease_owner", "attempt"]).where("id", "=", taskId).executeTakeFirstOrThrow();
      const held = await taskRow();
      expect(held).toMatchObject({ status: "RUNNING", phase: "DOWNLOADING" });
      expect(held.lease_owner).not.toBeNull();

      // First SIGTERM: the process starts draining.
      const stopped = sys.stop();
      await waitFor("the process to log that it is draining", () => sys.output().includes("shutting down (send the signal again to force)"));
      // Still draining: not exited, the task still in flight and held.
      expect(sys.child.exitCode).toBeNull();
      expect(sys.child.signalCode).toBeNull();
      expect(await taskRow()).toEqual(held);

      // Second signal: immediate exit with code 1 (src/bin/server-commands.ts onSignals).
      expect(sys.child.kill("SIGTERM")).toBe(true);
      expect(await stopped).toEqual({ code: 1, signal: null });
      const out = sys.output();
      expect(out).toContain("second signal: exiting now");
      // It ended while the drain was still waiting on the task: the worker never
      // gave it up (no abort at the end of the grace period, no lease released,
      // no "worker stopped"/"stopped"), and the grace period never ran out.
      expect(await taskRow()).toEqual(held);
      expect(out).not.toContain("grace period over");
      expect(out).not.toContain("worker stopped");
      expect(out).not.toContain('"msg":"stopped"');
      expect(out).not.toContain("unhandled rejection");
    });
  });
});

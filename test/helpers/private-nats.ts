// A nats-server of a test's own (`-js` on a free port, store in a temporary
// folder), so that a test may kill it, freeze it, lose its store and start it
// again on the same port without touching the machine's shared server.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { findNatsServer } from "../../src/queue/embedded-nats.js";
import { freePort } from "./private-postgres.js";

export interface PrivateNats {
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  pid(): number | undefined;
  /** SIGTERM (a clean shutdown) or SIGKILL; resolves once it has exited. */
  stop(signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Start again on the same port and store; resolves once JetStream answers. */
  start(): Promise<void>;
  /** Remove the JetStream store (while stopped): every stream and consumer is gone. */
  loseStore(): void;
  freeze(): void;
  thaw(): void;
  /** Stop it and remove its store. Idempotent. */
  destroy(): Promise<void>;
  log(): string;
}

const live = new Set<ChildProcess>();
let hooked = false;
function killOnExit(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const c of live) c.kill("SIGKILL");
  });
}

/** Does 127.0.0.1:port send a NATS INFO with JetStream on? */
function jetStreamUp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let buf = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on("error", () => done(false));
    socket.on("data", (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf("\r\n");
      if (nl >= 0) done(buf.startsWith("INFO ") && buf.slice(0, nl).includes('"jetstream":true'));
    });
  });
}

export async function startPrivateNats(): Promise<PrivateNats> {
  const binary = findNatsServer(process.env["NATS_SERVER_BIN"]);
  const root = fs.mkdtempSync(path.join(tmpdir(), "md-nats-"));
  const storeDir = path.join(root, "store");
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";

  const start = async () => {
    if (child !== undefined) throw new Error("private nats-server is already running");
    const c = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], { stdio: ["ignore", "ignore", "pipe"] });
    child = c;
    killOnExit(c);
    c.stderr!.on("data", (d: Buffer) => {
      output = (output + d.toString()).slice(-200_000);
    });
    exited = new Promise<void>((resolve) =>
      c.once("exit", () => {
        if (child === c) child = undefined;
        resolve();
      }),
    );
    for (;;) {
      if (child !== c) throw new Error(`private nats-server exited while starting:\n${output.slice(-4000)}`);
      if (await jetStreamUp(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const server: PrivateNats = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    pid: () => child?.pid,
    async stop(signal = "SIGTERM") {
      if (child === undefined) return;
      child.kill("SIGCONT");
      child.kill(signal);
      await exited;
    },
    start,
    loseStore() {
      if (child !== undefined) throw new Error("stop the server before removing its store");
      fs.rmSync(storeDir, { recursive: true, force: true });
    },
    freeze() {
      child?.kill("SIGSTOP");
    },
    thaw() {
      child?.kill("SIGCONT");
    },
    async destroy() {
      await server.stop("SIGKILL");
      fs.rmSync(root, { recursive: true, force: true });
    },
    log: () => output,
  };
  try {
    await start();
  } catch (err) {
    await server.destroy();
    throw err;
  }
  return server;
}

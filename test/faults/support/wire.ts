// Wire probes: malformed or abusive traffic aimed at the API's ports while a
// steady client (the load generator) keeps calling. A probe is a function
// given the API's addresses; it resolves once it is done and may say what it
// got back. This is the interface the fault suite's wire case runs; the full
// set of probes plugs in here (see wireProbes).
import http2 from "node:http2";
import net from "node:net";
import { randomBytes } from "node:crypto";

export interface WireTarget {
  /** host:port of the native gRPC port (h2c). */
  grpc: string;
  /** host:port of the Connect / gRPC-Web port (HTTP/1.1 and h2c). */
  http: string;
  apiKey: string;
}

export interface WireProbe {
  name: string;
  run(target: WireTarget): Promise<string | void>;
}

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** Connects, writes the bytes, waits for the server to close (or 2 s), closes. */
function sendRaw(address: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(hostPort(address));
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, 2000);
    socket.on("error", done).on("close", done);
    socket.on("connect", () => socket.write(bytes));
    socket.resume();
  });
}

/** Random bytes, and an HTTP/2 preface followed by random frames, on both ports. */
export const garbage: WireProbe = {
  name: "garbage bytes",
  async run(t) {
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    await Promise.all(
      [t.grpc, t.http].flatMap((address) => [
        ...Array.from({ length: 10 }, () => sendRaw(address, randomBytes(64 * 1024))),
        ...Array.from({ length: 10 }, () => sendRaw(address, Buffer.concat([preface, randomBytes(16 * 1024)]))),
      ]),
    );
  },
};

/** One gRPC call whose length prefix says `declared` bytes and which sends `sent`; resolves with its grpc-status (or how it ended). */
function lyingFrame(address: string, apiKey: string, declared: number, sent: number): Promise<string> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://${address}`);
    session.on("error", () => {});
    const stream = session.request({
      ":method": "POST",
      ":path": "/modeldeploy.v1.DeploymentService/GetDeployment",
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${apiKey}`,
    });
    let status = "no status";
    const finish = (how: string) => {
      clearTimeout(timer);
      session.close();
      resolve(how);
    };
    const timer = setTimeout(() => finish("no answer within 10 s"), 10_000);
    stream.on("response", (h) => h["grpc-status"] !== undefined && (status = `grpc-status ${String(h["grpc-status"])}`));
    stream.on("trailers", (h) => h["grpc-status"] !== undefined && (status = `grpc-status ${String(h["grpc-status"])}`));
    stream.on("error", (err) => finish(`stream error ${err.message}`));
    stream.on("close", () => finish(status));
    stream.resume();
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(declared >>> 0, 1);
    stream.end(Buffer.concat([prefix, randomBytes(sent)]));
  });
}

/** gRPC frames that lie about their length: truncated (fewer bytes than declared) and oversized (a 2 GiB prefix). */
export const lyingFrames: WireProbe = {
  name: "truncated and oversized gRPC frames",
  async run(t) {
    const answers = await Promise.all([
      ...Array.from({ length: 20 }, () => lyingFrame(t.grpc, t.apiKey, 1000, 10)),
      ...Array.from({ length: 20 }, () => lyingFrame(t.grpc, t.apiKey, 0x7fffffff, 1024)),
    ]);
    return `answers: ${[...new Set(answers)].join(", ")}`;
  },
};

/** Ten Connect JSON requests of ~3.5 MB of nested arrays at once (under the default 4 MiB limit). */
export const deepJson: WireProbe = {
  name: "deep JSON on the Connect port",
  async run(t) {
    const depth = 1_750_000;
    const body = `{"name":${"[".repeat(depth)}${"]".repeat(depth)}}`;
    const statuses = await Promise.all(
      Array.from({ length: 10 }, async () => {
        try {
          const res = await fetch(`http://${t.http}/modeldeploy.v1.DeploymentService/GetDeployment`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${t.apiKey}` },
            body,
            signal: AbortSignal.timeout(20_000),
          });
          await res.arrayBuffer();
          return `HTTP ${res.status}`;
        } catch (err) {
          return (err as Error).name;
        }
      }),
    );
    return `answers: ${[...new Set(statuses)].join(", ")}`;
  },
};

/** The probes the wire case runs, one after the other. */
export const wireProbes: WireProbe[] = [garbage, lyingFrames, deepJson];

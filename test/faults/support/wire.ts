// Wire probes: malformed or abusive traffic aimed at the API's ports while a
// steady client (the load generator) keeps calling. A probe is a function
// given the API's addresses; it resolves once it is done and may say what it
// got back. This is the interface the fault suite's wire case runs; the full
// set of probes plugs in here (see wireProbes).
import http2 from "node:http2";
import net from "node:net";
import { randomBytes } from "node:crypto";
import {
  deepJson as jsonOfDepth,
  grpcFrame,
  holdConnections,
  hugeHeadersH2,
  hugeHeadersHttp1,
  largeJson,
  malformedGrpcMessage,
  sendJson,
  streamFlood,
} from "../../helpers/wire-probes.js";

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

const getDeployment = "/modeldeploy.v1.DeploymentService/GetDeployment";
const watchDeployment = "/modeldeploy.v1.DeploymentService/WatchDeployment";

/** Request header blocks of 64 KiB and 1 MiB on both ports. */
export const hugeHeaders: WireProbe = {
  name: "huge headers on both ports",
  async run(t) {
    const auth = { authorization: `Bearer ${t.apiKey}` };
    const answers = await Promise.all([
      ...[64 * 1024, 1024 * 1024].flatMap((bytes) => Array.from({ length: 10 }, () => hugeHeadersH2(t.grpc, getDeployment, { bytes, headers: auth }))),
      ...[64 * 1024, 1024 * 1024].flatMap((bytes) => Array.from({ length: 10 }, () => hugeHeadersH2(t.http, getDeployment, { bytes, headers: auth }))),
    ]);
    const h1 = await Promise.all(Array.from({ length: 10 }, () => hugeHeadersHttp1(t.http, "/healthz", 256 * 1024)));
    return `h2: ${[...new Set(answers.map((a) => a.grpcStatus ?? a.error ?? "?"))].join(", ")}; http/1.1: ${[...new Set(h1.map((a) => a.error ?? `HTTP ${a.status}`))].join(", ")}`;
  },
};

/** Well-framed messages that are not protobuf, and deep or large JSON by every Connect route. */
export const malformedMessages: WireProbe = {
  name: "malformed protobuf and deep or large JSON by every route",
  async run(t) {
    const headers = { authorization: `Bearer ${t.apiKey}` };
    const proto = await Promise.all([t.grpc, t.http].map((a) => malformedGrpcMessage(a, getDeployment)));
    const json = await Promise.all([
      sendJson(t.http, getDeployment, jsonOfDepth(100_000), { via: "connect-get", headers }),
      sendJson(t.http, getDeployment, jsonOfDepth(100_000), { via: "grpc-web", headers }),
      sendJson(t.http, watchDeployment, jsonOfDepth(100_000), { via: "connect-stream", headers }),
      sendJson(t.http, getDeployment, largeJson(3 * 1024 * 1024), { via: "connect", headers }),
      sendJson(t.http, getDeployment, jsonOfDepth(1_000_000), { via: "connect", gzip: true, headers }),
    ]);
    return `protobuf: ${proto.map((o) => o.grpcStatus ?? o.error).join(", ")}; json: ${json.map((o) => o.code ?? o.error ?? `HTTP ${o.status}`).join(", ")}`;
  },
};

/** 3,000 streams opened and reset at once on each port. */
export const resetFlood: WireProbe = {
  name: "thousands of streams opened and reset",
  async run(t) {
    const body = grpcFrame(Buffer.alloc(0));
    const outcomes = await Promise.all(
      [t.grpc, t.http].map((a) => streamFlood(a, { streams: 3000, path: getDeployment, headers: { authorization: `Bearer ${t.apiKey}` }, body })),
    );
    return outcomes.map((o) => `${o.requested} opened, ${o.answered} answered before the reset, closed by server: ${o.closedByServer}`).join("; ");
  },
};

/** 1,000 idle connections on each port; the server must close them (the case sets a short idle limit). */
export const idleConnections: WireProbe = {
  name: "idle connections",
  async run(t) {
    const held = await Promise.all([holdConnections(t.grpc, { count: 1000, mode: "h2" }), holdConnections(t.http, { count: 1000, mode: "h2" })]);
    try {
      await Promise.all(held.map((h) => h.waitClosed(h.opened, 30_000)));
      return `closed by the server: ${held.map((h) => `${h.closedByServer()}/${h.opened}`).join(", ")}`;
    } finally {
      for (const h of held) h.release();
    }
  },
};

/** The probes the wire case runs, one after the other. */
export const wireProbes: WireProbe[] = [garbage, lyingFrames, deepJson, hugeHeaders, malformedMessages, resetFlood, idleConnections];

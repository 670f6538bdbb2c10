// Probes below HTTP: raw TCP connections that send garbage, or that are
// opened and then say nothing (or stop answering).
import { randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import * as net from "node:net";
import { parseAddress, sleep } from "./address.js";

const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** An empty HTTP/2 SETTINGS frame. */
const emptySettings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
/** A DATA frame header declaring 16 MiB, far above any peer's maximum frame size: a protocol error at once. */
const oversizedFrameHeader = Buffer.from([0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]);

/** The error codes of the GOAWAY frames in these bytes, if they are HTTP/2 frames. */
function goawayCodes(bytes: Buffer): number[] {
  const codes: number[] = [];
  let pos = 0;
  while (bytes.length - pos >= 9) {
    const len = bytes.readUIntBE(pos, 3);
    const type = bytes[pos + 3];
    if (type === 7 && bytes.length - pos >= 9 + 8) codes.push(bytes.readUInt32BE(pos + 9 + 4));
    pos += 9 + len;
  }
  return codes;
}

export interface GarbageOutcome {
  connections: number;
  /** Connections the server closed within timeoutMs. */
  closedByServer: number;
  /** Connections still open after timeoutMs (then closed by the probe). */
  stillOpen: number;
  /** The distinct first bytes the server answered with (latin1, up to 120 characters). */
  responses: string[];
  /** HTTP/2 GOAWAY error codes the server sent (1 PROTOCOL_ERROR, 6 FRAME_SIZE_ERROR, …). */
  goawayCodes: number[];
}

/**
 * Connect and send random bytes; with `afterPreface`, a valid HTTP/2 preface
 * and SETTINGS first, then a frame header no server accepts, then the random
 * bytes. A server that holds up answers with an error (HTTP 400, GOAWAY) and
 * closes the connection (Node's HTTP/2 server closes it only at the idle or
 * keepalive limit after sending GOAWAY).
 */
export async function sendGarbage(
  target: string,
  opts: { bytes?: number; connections?: number; afterPreface?: boolean; timeoutMs?: number } = {},
): Promise<GarbageOutcome> {
  const { host, port } = parseAddress(target);
  const n = opts.connections ?? 1;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const one = () =>
    new Promise<{ closed: boolean; head: Buffer }>((resolve) => {
      const socket = net.connect({ host, port });
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ closed: false, head });
      }, timeoutMs);
      socket.on("connect", () => {
        const garbage = randomBytes(opts.bytes ?? 64 * 1024);
        socket.write(opts.afterPreface === true ? Buffer.concat([h2Preface, emptySettings, oversizedFrameHeader, garbage]) : garbage);
      });
      socket.on("data", (d: Buffer) => {
        if (head.length < 4096) head = Buffer.concat([head, d]).subarray(0, 4096);
      });
      socket.on("error", () => {});
      socket.on("close", () => {
        clearTimeout(timer);
        resolve({ closed: true, head });
      });
    });
  const results = await Promise.all(Array.from({ length: n }, one));
  return {
    connections: n,
    closedByServer: results.filter((r) => r.closed).length,
    stillOpen: results.filter((r) => !r.closed).length,
    responses: [...new Set(results.map((r) => r.head.toString("latin1").slice(0, 120)))],
    goawayCodes: [...new Set(results.flatMap((r) => goawayCodes(r.head)))],
  };
}

/**
 * "silent": TCP connect, then nothing. "h2": a well-behaved but idle HTTP/2
 * connection (it answers pings). "h2-unresponsive": sends the HTTP/2
 * preface, then never writes again (no SETTINGS ack, no ping answer).
 */
export type IdleMode = "silent" | "h2" | "h2-unresponsive";

export interface HeldConnections {
  /** Connections opened. */
  readonly opened: number;
  /** How many the server has closed so far. */
  closedByServer(): number;
  /** What the server said on the h2 connections: GOAWAY "code debug", grpc-message of a refused stream; distinct. */
  goaways(): string[];
  /** Resolves once the server has closed at least n of them (or rejects after timeoutMs). */
  waitClosed(n: number, timeoutMs: number): Promise<void>;
  /** Close what is left. */
  release(): void;
}

/** A request each "h2" connection opens and keeps open (e.g. a watch), so that it is not idle. */
export interface HeldStream {
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** Open `count` connections and keep them idle (or, with `stream`, each with one call open). */
export async function holdConnections(target: string, opts: { count: number; mode: IdleMode; stream?: HeldStream }): Promise<HeldConnections> {
  const { host, port } = parseAddress(target);
  let closed = 0;
  let releasing = false;
  const byServer = () => {
    if (!releasing) closed++;
  };
  const goaways = new Set<string>();
  const releases: (() => void)[] = [];
  const open = (): Promise<void> =>
    new Promise((resolve) => {
      if (opts.mode === "h2") {
        const session = http2.connect(`http://${host}:${port}`);
        session.on("error", () => {});
        session.on("goaway", (code, _last, data) => goaways.add(`${code} ${data?.toString() ?? ""}`.trim()));
        session.once("close", byServer);
        session.once("connect", () => resolve());
        session.once("close", () => resolve());
        if (opts.stream !== undefined) {
          const req = session.request({ ":method": "POST", ":path": opts.stream.path, ...opts.stream.headers });
          req.on("error", () => {});
          req.on("response", (h) => {
            const m = h["grpc-message"];
            if (typeof m === "string") goaways.add(decodeURIComponent(m));
          });
          req.resume();
          req.end(opts.stream.body);
        }
        releases.push(() => session.destroy());
        return;
      }
      const socket = net.connect({ host, port });
      socket.on("error", () => {});
      // Read (and drop) what the server sends: only a reading socket sees it close.
      socket.resume();
      socket.once("close", () => {
        byServer();
        resolve();
      });
      socket.once("connect", () => {
        // It reads (so that it sees the server close it) but never answers.
        if (opts.mode === "h2-unresponsive") socket.write(Buffer.concat([h2Preface, emptySettings]));
        resolve();
      });
      releases.push(() => socket.destroy());
    });
  // A few at a time: a burst of thousands of connects overflows the listen backlog.
  for (let i = 0; i < opts.count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, opts.count - i) }, open));
  }
  return {
    opened: opts.count,
    closedByServer: () => closed,
    goaways: () => [...goaways],
    async waitClosed(n, timeoutMs) {
      const end = Date.now() + timeoutMs;
      while (closed < n) {
        if (Date.now() > end) throw new Error(`only ${closed} of ${opts.count} connections closed by the server within ${timeoutMs} ms`);
        await sleep(50);
      }
    },
    release() {
      releasing = true;
      for (const r of releases) r();
    },
  };
}

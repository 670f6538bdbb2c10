// @ts-check
// The stream flood of wire-probes/http2.ts (streamFlood), run in its own
// process so that the client's cost of opening thousands of streams does not
// land on the caller's event loop (which may host the server under test).
// argv[2]: {"url", "streams", "path", "headers", "bodyHex", "resetAfterMs", "settleMs", "timeoutMs"}
// Prints one JSON line: the FloodOutcome.
import * as http2 from "node:http2";

const o = JSON.parse(process.argv[2] ?? "{}");
const body = Buffer.from(o.bodyHex ?? "", "hex");
const started = performance.now();
const session = http2.connect(o.url);
session.on("error", () => {});
/** @type {{code: number, debug: string} | undefined} */
let goaway;
session.on("goaway", (code, _last, data) => (goaway ??= { code, debug: data?.toString("utf8") ?? "" }));
let closedByServer = false;
let done = false;
session.once("close", () => (closedByServer = !done));
await new Promise((resolve) => {
  session.once("connect", resolve);
  session.once("close", resolve);
});
let answered = 0;
let refusedByServer = 0;
/** @type {Promise<void>[]} */
const closed = [];
/** @type {http2.ClientHttp2Stream[]} */
const reqs = [];
for (let i = 0; i < o.streams && !session.destroyed && !session.closed; i++) {
  /** @type {http2.ClientHttp2Stream} */
  let req;
  try {
    req = session.request({ ":method": "POST", ":path": o.path, te: "trailers", ...o.headers }, { endStream: false });
  } catch {
    break; // the session is going away
  }
  req.on("error", () => {});
  req.on("response", () => answered++);
  closed.push(
    new Promise((resolve) =>
      req.once("close", () => {
        const code = req.rstCode;
        if (code !== undefined && code !== http2.constants.NGHTTP2_CANCEL && code !== http2.constants.NGHTTP2_NO_ERROR) refusedByServer++;
        resolve();
      }),
    ),
  );
  req.end(body);
  reqs.push(req);
}
await new Promise((r) => setTimeout(r, o.resetAfterMs ?? 0));
for (const req of reqs) if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, o.timeoutMs ?? 30_000))]);
// The server reads frames in order: once it answers a ping it has seen every
// reset; then give it settleMs to have its say about them (close the connection).
if (!session.closed && !session.destroyed) {
  await new Promise((resolve) => {
    session.once("close", resolve);
    try {
      session.ping(() => setTimeout(resolve, o.settleMs ?? 3000));
    } catch {
      resolve(undefined);
    }
  });
}
// A session the server closed may not have emitted "close" yet.
closedByServer ||= session.closed || session.destroyed || goaway !== undefined;
done = true;
session.destroy();
process.stdout.write(
  `${JSON.stringify({ requested: o.streams, answered, refusedByServer, closedByServer, goaway, elapsedMs: performance.now() - started })}\n`,
  () => process.exit(0), // pending timers must not keep it alive
);

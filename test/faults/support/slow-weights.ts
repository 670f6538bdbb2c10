// An HTTP server that serves the sample model slowly the first time (a few
// bytes at a time), so that a download is in progress long enough to kill
// the worker in the middle of it; later requests are served at once.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface SlowWeights {
  readonly url: string;
  /** Bytes sent so far on a request still open. */
  inProgress(): number;
  close(): Promise<void>;
}

export async function serveSlowWeights(bytes: Uint8Array, o: { chunk?: number; everyMs?: number } = {}): Promise<SlowWeights> {
  const chunk = o.chunk ?? 16;
  const everyMs = o.everyMs ?? 150;
  let served = 0;
  let sending = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length });
    if (served++ > 0) {
      res.end(Buffer.from(bytes));
      return;
    }
    let at = 0;
    const timer = setInterval(() => {
      const next = Math.min(bytes.length, at + chunk);
      res.write(Buffer.from(bytes.subarray(at, next)));
      at = next;
      sending = at;
      if (at >= bytes.length) {
        clearInterval(timer);
        sending = 0;
        res.end();
      }
    }, everyMs);
    timers.add(timer);
    res.on("close", () => {
      clearInterval(timer);
      sending = 0;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.onnx`,
    inProgress: () => sending,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// An HTTP request whose body is half sent: it stays in flight on whichever
// server took it until finish(), which lets a test see where the gateway
// routed it and what draining waits for.
import http from "node:http";

export interface HeldRequest {
  /** Sends the rest of the body; resolves with the response. */
  finish(): Promise<{ status: number; body: string }>;
  destroy(): void;
}

export function holdRequest(url: string | URL, body: string): HeldRequest {
  const req = http.request(url, { method: "POST", agent: false, headers: { "content-length": Buffer.byteLength(body) } });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
  });
  response.catch(() => {}); // observed by finish(); a destroyed request rejects
  req.write(body.slice(0, 20));
  return {
    finish() {
      req.end(body.slice(20));
      return response;
    },
    destroy: () => req.destroy(),
  };
}

// One readiness probe of a model server.
import http from "node:http";

export function probeReady(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/v2/health/ready", agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy(new Error("readiness probe timed out")));
    req.on("error", () => resolve(false));
  });
}

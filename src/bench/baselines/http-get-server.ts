// Baseline: a bare node:http server answering Connect-protocol JSON
// GetDeployment (POST /modeldeploy.v1.DeploymentService/GetDeployment) from
// the same query with pg.
import { createServer } from "node:http";
import { toJsonString } from "@bufbuild/protobuf";
import { DeploymentSchema } from "../../gen/modeldeploy/v1/resources_pb.js";
import { createDeploymentReader } from "./deployment-query.js";
import { emit, scriptArgs } from "./script.js";

const args = scriptArgs<{ url: string; poolMax: number }>();
const reader = createDeploymentReader(args.url, args.poolMax);
const PATH = "/modeldeploy.v1.DeploymentService/GetDeployment";

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const reply = (status: number, body: string) => {
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method !== "POST" || req.url !== PATH) return reply(404, `{"code":"unimplemented"}`);
    let name: string;
    try {
      name = String((JSON.parse(Buffer.concat(chunks).toString()) as { name?: unknown }).name ?? "");
    } catch {
      return reply(400, `{"code":"invalid_argument"}`);
    }
    reader.get(name).then(
      (d) => (d ? reply(200, toJsonString(DeploymentSchema, d)) : reply(404, `{"code":"not_found"}`)),
      (err: Error) => reply(503, JSON.stringify({ code: "unavailable", message: err.message })),
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => void emit({ ready: true, port: (server.address() as { port: number }).port }));

// The bench's own API client, for the few single calls it makes itself (set-up,
// triggers, lifecycle timings); load always comes from the load generator.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DeletionService } from "../gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../gen/modeldeploy/v1/deployment_service_pb.js";

export interface BenchClient {
  deployments: Client<typeof DeploymentService>;
  deletions: Client<typeof DeletionService>;
}

export function createBenchClient(grpcUrl: string, apiKey: string): BenchClient {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
  const transport = createGrpcTransport({ baseUrl: grpcUrl, interceptors: [auth] });
  return { deployments: createClient(DeploymentService, transport), deletions: createClient(DeletionService, transport) };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const nowMs = () => performance.timeOrigin + performance.now();

/** Polls until check() returns a value, or throws after timeoutMs. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 120_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

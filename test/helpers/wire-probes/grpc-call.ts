// A real grpc-js client on a fresh connection: what a well-behaved client
// reports when the server refuses it (e.g. past the connection cap).
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { parseAddress } from "./address.js";

export interface GrpcCallOutcome {
  /** grpc status code (0 = OK). */
  code: number;
  details: string;
  elapsedMs: number;
}

/** grpc.health.v1.Health/Check ("") from a new channel (its own connection). */
export function freshGrpcHealthCheck(target: string, timeoutMs = 10_000): Promise<GrpcCallOutcome> {
  const { host, port } = parseAddress(target);
  const Health = grpc.makeGenericClientConstructor(healthService, "Health");
  const client = new Health(`${host}:${port}`, grpc.credentials.createInsecure(), {
    // Its own connection, not one shared with other clients in this process.
    "grpc.use_local_subchannel_pool": 1,
  });
  const started = performance.now();
  return new Promise((resolve) => {
    const check = (client as unknown as Record<string, (...a: unknown[]) => void>)["check"];
    if (check === undefined) throw new Error("no Health.check");
    check.call(client, { service: "" }, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null) => {
      client.close();
      resolve({ code: err?.code ?? 0, details: err?.details ?? "", elapsedMs: performance.now() - started });
    });
  });
}

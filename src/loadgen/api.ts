// Native gRPC clients (connect-node's gRPC transport over HTTP/2) for every
// API process, handed out round-robin.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DeletionService } from "../gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../gen/modeldeploy/v1/deployment_service_pb.js";

export interface ApiTarget {
  address: string;
  deployments: Client<typeof DeploymentService>;
  deletions: Client<typeof DeletionService>;
}

export interface Apis {
  next(): ApiTarget;
  /** A call to target failed with code: in failover mode, UNAVAILABLE moves on to the next target. */
  failed(target: ApiTarget, code: string): void;
}

/**
 * round-robin: every call to the next target. failover: every call to one
 * target until it answers UNAVAILABLE, then to the next (so that, until
 * then, everything this client writes goes through that one process).
 */
export type TargetMode = "round-robin" | "failover";

export function createApis(addresses: readonly string[], apiKey: string, mode: TargetMode = "round-robin"): Apis {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
  const targets = addresses.map((address): ApiTarget => {
    const transport = createGrpcTransport({ baseUrl: `http://${address}`, interceptors: [auth] });
    return { address, deployments: createClient(DeploymentService, transport), deletions: createClient(DeletionService, transport) };
  });
  let i = 0;
  if (mode === "round-robin") return { next: () => targets[i++ % targets.length]!, failed: () => {} };
  return {
    next: () => targets[i % targets.length]!,
    failed(target, code) {
      if (code === "UNAVAILABLE" && targets[i % targets.length] === target) i++;
    },
  };
}

/** "DEADLINE_EXCEEDED" for Code.DeadlineExceeded: the names gRPC uses. */
export function statusName(err: unknown): string {
  const code = ConnectError.from(err).code;
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

export function errorMessage(err: unknown): string {
  return ConnectError.from(err).rawMessage.slice(0, 300);
}

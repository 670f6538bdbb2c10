// A Connect client for the CLI (HTTP/1.1 + JSON is what curl users see too).
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DeletionService } from "../gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../gen/modeldeploy/v1/deployment_service_pb.js";

export interface ApiClients {
  deployments: Client<typeof DeploymentService>;
  deletions: Client<typeof DeletionService>;
}

export function createApiClients(baseUrl: string, apiKey: string | undefined): ApiClients {
  const auth: Interceptor = (next) => (req) => {
    if (apiKey) req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [auth] });
  return { deployments: createClient(DeploymentService, transport), deletions: createClient(DeletionService, transport) };
}

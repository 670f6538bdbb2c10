// The Connect clients of the page: the API on this page's own origin, each
// call with the session's API key as a bearer token.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { DeletionService } from "../../src/gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";

export interface Api {
  deployments: Client<typeof DeploymentService>;
  deletions: Client<typeof DeletionService>;
}

export function createApi(apiKey: string, baseUrl = location.origin): Api {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl, interceptors: [bearer] });
  return { deployments: createClient(DeploymentService, transport), deletions: createClient(DeletionService, transport) };
}

// The key lives in sessionStorage only: gone when the tab closes, never in a cookie or localStorage.
const keyName = "modeldeploy.apiKey";

export function storedKey(): string | undefined {
  return sessionStorage.getItem(keyName) ?? undefined;
}

export function storeKey(key: string | undefined): void {
  if (key === undefined) sessionStorage.removeItem(keyName);
  else sessionStorage.setItem(keyName, key);
}

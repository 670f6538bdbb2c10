import type { HandlerContext } from "@connectrpc/connect";
import type { CallScope } from "../db/call-scope.js";
import { callContext } from "../telemetry/call-context.js";
import { requestIdOf } from "./call-wrapper.js";
import { dbForCall } from "../db/connect.js";
import type { DeploymentsDeps } from "../deployments/deps.js";
import type { Logger } from "../log.js";
import type { EventBus } from "../queue/event-bus.js";
import type { TokenSealer } from "../secrets/token-seal.js";
import type { Authenticator } from "./auth.js";
import type { WatchHub } from "./watch-hub.js";

/** What the service implementations need, passed in (no globals). */
export interface ApiDeps extends DeploymentsDeps {
  auth: Authenticator;
  bus: EventBus;
  /** Every watch of this process, on one subscription to the bus. */
  watches: WatchHub;
  logger: Logger;
  /** Seals model tokens at the boundary (MODELDEPLOY_SECRET_KEY). */
  tokens: TokenSealer | undefined;
}

/** `deps` for the work of one call: its database waits end with the call (dbForCall). */
export function depsForCall(deps: ApiDeps, call: CallScope & HandlerContext): ApiDeps {
  // Read here, in the call's (trace) context: a transaction's callback may run in another (a pooled connection's waiter).
  return { ...deps, db: dbForCall(deps.db, call), callContext: callContext(requestIdOf(call)) };
}

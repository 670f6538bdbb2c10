import type { Db } from "../db/connect.js";
import type { NewDeployment, NewDeploymentResult } from "../db/create-deployment.js";
import type { WriteCoalescer } from "../db/write-coalescer.js";
import type { EventSink } from "../db/transact.js";
import type { CatalogEntry, ValidationLimits } from "../domain/validation.js";
import type { Logger } from "../log.js";
import type { EventBus } from "../queue/event-bus.js";
import type { Authenticator } from "./auth.js";
import type { WatchHub } from "./watch-hub.js";

/** What the service implementations need, passed in (no globals). */
export interface ApiDeps {
  db: Db;
  auth: Authenticator;
  /** Writes new deployments, concurrent ones together (see createNewDeploymentWriter). */
  newDeployments: WriteCoalescer<NewDeployment, NewDeploymentResult>;
  bus: EventBus;
  /** Every watch of this process, on one subscription to the bus. */
  watches: WatchHub;
  /** Publishes committed events live. */
  sink: EventSink;
  /** Nudges the outbox relay after a task is committed. */
  wakeRelay: () => void;
  catalog: readonly CatalogEntry[];
  limits: ValidationLimits;
  defaultProgressDeadlineSeconds: number;
  logger: Logger;
}

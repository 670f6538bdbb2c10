// What the deployment service needs, passed in (no globals).
import type { DeploymentName } from "../db/deployments.js";
import type { DeploymentRow } from "../db/database.js";
import type { Db } from "../db/connect.js";
import type { Executor } from "../db/executor.js";
import type { HostCapacityRow } from "../db/host-capacity.js";
import type { NewDeployment, NewDeploymentResult } from "../db/create-deployment.js";
import type { OutboxEntry } from "../db/outbox.js";
import type { EventSink } from "../db/transact.js";
import type { Coalescer } from "../db/coalescer.js";
import type { CatalogEntry, ValidationLimits } from "../domain/validation.js";

export interface DeploymentsDeps {
  db: Db;
  /** Writes new deployments, concurrent ones together (see createNewDeploymentWriter). */
  newDeployments: Coalescer<NewDeployment, NewDeploymentResult>;
  /** Reads deployments by name, concurrent ones together (see createDeploymentNameReader). */
  deploymentsByName: Coalescer<DeploymentName, DeploymentRow | undefined>;
  /** Publishes committed events live. */
  sink: EventSink;
  /** After a commit: hands the relay the committed outbox rows to publish now. */
  wakeRelay: (committed: readonly OutboxEntry[]) => void;
  catalog: readonly CatalogEntry[];
  limits: ValidationLimits;
  defaultProgressDeadlineSeconds: number;
  /** The runtime host's capacity as its workers last reported it; absent or undefined: not checked. */
  hostCapacity?: (db: Executor) => Promise<HostCapacityRow | undefined>;
  /** Reservable CPU = the host's cores × this; default 4. */
  cpuAllocationRatio?: number;
  /**
   * Headers the messages of the tasks this call queues carry to the worker:
   * the call's x-request-id and trace context (telemetry/call-context.ts).
   */
  callContext?: Record<string, string>;
}

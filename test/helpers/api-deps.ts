// The API's dependencies as the tests build them: real database and bus,
// no relay unless a test passes one.
import { createAuthenticator } from "../../src/api/auth.js";
import type { ApiDeps } from "../../src/api/deps.js";
import type { Db } from "../../src/db/connect.js";
import { createNewDeploymentWriter } from "../../src/db/create-deployment.js";
import { DEFAULT_LIMITS } from "../../src/domain/validation.js";
import { silentLogger } from "../../src/log.js";
import type { EventBus } from "../../src/queue/event-bus.js";

export function testApiDeps(db: Db, bus: EventBus, overrides: Partial<ApiDeps> = {}): ApiDeps {
  return {
    db,
    auth: createAuthenticator(db),
    newDeployments: createNewDeploymentWriter(db),
    bus,
    sink: (events) => bus.publish(events),
    wakeRelay: () => {},
    catalog: [],
    limits: DEFAULT_LIMITS,
    defaultProgressDeadlineSeconds: 600,
    logger: silentLogger,
    ...overrides,
  };
}

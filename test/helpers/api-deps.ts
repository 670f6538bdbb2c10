// The API's dependencies as the tests build them: real database and bus,
// no relay unless a test passes one.
import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import { createAuthenticator } from "../../src/api/auth.js";
import type { ApiDeps } from "../../src/api/deps.js";
import { createWatchHub } from "../../src/api/watch-hub.js";
import type { CreateInput } from "../../src/deployments/create.js";
import type { UpdateInput } from "../../src/deployments/update.js";
import type { Db } from "../../src/db/connect.js";
import { createNewDeploymentWriter } from "../../src/db/create-deployment.js";
import { createDeploymentNameReader } from "../../src/db/deployments.js";
import { RefusedError } from "../../src/domain/errors.js";
import { withScalingDefaults, type Scaling } from "../../src/domain/types.js";
import { DEFAULT_LIMITS } from "../../src/domain/validation.js";
import { silentLogger } from "../../src/log.js";
import type { EventBus } from "../../src/queue/event-bus.js";
import { createTokenSealer } from "../../src/secrets/token-seal.js";

export function testApiDeps(db: Db, bus: EventBus, overrides: Partial<ApiDeps> = {}): ApiDeps {
  return {
    db,
    auth: createAuthenticator(db),
    newDeployments: createNewDeploymentWriter(db),
    deploymentsByName: createDeploymentNameReader(db, 5000),
    bus,
    watches: createWatchHub({ db, bus, logger: silentLogger }),
    sink: (events) => bus.publish(events),
    wakeRelay: () => {},
    catalog: [],
    limits: DEFAULT_LIMITS,
    defaultProgressDeadlineSeconds: 600,
    logger: silentLogger,
    tokens: createTokenSealer(randomBytes(32)),
    ...overrides,
  };
}

/** A valid CreateDeployment input (a model no runtime needs to read: the no-op driver). */
export function createInput(over: Partial<CreateInput> = {}): CreateInput {
  return {
    model: {
      name: "acme/tiny-linear",
      revision: "1",
      uri: "file:///nonexistent/noop.onnx",
      sha256: "",
      task: "regression",
      type: "UNSPECIFIED",
      runtime: "",
      tokenSealed: "",
      tokenDigest: "",
    },
    resources: { acceleratorType: "", acceleratorCount: 0, cpu: 1, memory: "128MiB", threadCount: 1, maxBatchSize: 0 },
    scaling: replicas(1, 1),
    suffix: "",
    labels: {},
    requestId: "",
    progressDeadlineSeconds: 0,
    ...over,
  };
}

/** A scaling of min–max replicas, the autoscaler's settings at their defaults. */
export function replicas(minReplicas: number, maxReplicas: number): Scaling {
  return withScalingDefaults({ minReplicas, maxReplicas });
}

/** An UpdateDeployment input that changes only what `over` names. */
export function updateInput(name: string, over: Partial<UpdateInput> = {}): UpdateInput {
  return { name, model: undefined, resources: undefined, scaling: undefined, progressDeadlineSeconds: 0, requestId: "", ...over };
}

/** An UpdateDeployment input that scales to `replicas` (min = max). */
export function scaleInput(name: string, count: number): UpdateInput {
  return updateInput(name, { scaling: replicas(count, count) });
}

/** The RefusedError `work` rejects with (fails the test if it resolves or throws something else). */
export async function refused(work: Promise<unknown>): Promise<RefusedError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RefusedError);
  return err as RefusedError;
}

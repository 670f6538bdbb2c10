// MODELDEPLOY_GATEWAY_PUBLIC_URL: the runtime role hands out endpoint URLs on
// the address clients reach (a Service, a published port), not the one its
// gateway listens on (0.0.0.0 in a container).
import { rm } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDriver, startRuntimeAgent } from "../../src/app/runtime-role.js";
import { loadConfig } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import type { RuntimeDriver } from "../../src/runtime/driver.js";
import type { LocalRuntimeAgent } from "../../src/runtime/local/agent.js";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { requireBuiltModelServer, revisionSpec, tempDir, waitFor } from "./support.js";

describe("the runtime role's endpoint URLs", () => {
  let dir: string;
  let agent: LocalRuntimeAgent | undefined;
  let driver: RuntimeDriver | undefined;

  beforeAll(async () => {
    requireBuiltModelServer();
    dir = await tempDir("public-url");
  });

  afterAll(async () => {
    await driver?.close();
    await agent?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("name MODELDEPLOY_GATEWAY_PUBLIC_URL when it is set", async () => {
    const config = loadConfig({
      MODELDEPLOY_DATA_DIR: dir,
      MODELDEPLOY_GATEWAY_HOST: "0.0.0.0",
      MODELDEPLOY_GATEWAY_PORT: "0",
      MODELDEPLOY_RUNTIME_CONTROL_PORT: "0",
      MODELDEPLOY_GATEWAY_PUBLIC_URL: "http://modeldeploy-gateway.example:8000/",
      MODELDEPLOY_HEALTH_POLL_MS: "100",
    });
    agent = await startRuntimeAgent(config, silentLogger);
    driver = createDriver(config, silentLogger, agent);
    const model = await writeSampleModel(dir);
    const spec = revisionSpec({ uri: pathToFileURL(model.path).href, sha256: model.sha256 });
    await driver.startRevision(spec, await driver.prepareWeights(spec, () => {}));
    await waitFor("a ready replica", async () => ((await driver!.revisionStatus(spec.deploymentUid, spec.revision)).ready === 1 ? true : undefined));
    expect(await driver.switchTraffic(spec)).toBe("http://modeldeploy-gateway.example:8000/ws/v2/models/sample-abc");
    // The gateway itself still answers where it listens.
    const port = new URL(agent.gatewayUrl).port;
    expect((await fetch(`http://127.0.0.1:${port}/ws/v2/models/sample-abc/ready`)).status).toBe(200);
    await driver.stopRevision(spec.deploymentUid, spec.revision);
  });
});

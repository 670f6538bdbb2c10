// The flaky model (src/onnx/flaky-model.ts) served by the real model server:
// the sample model's answers below the threshold, a 500 from the run error
// above it, and a malformed request still a 400.
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildFlakyModel } from "../../src/onnx/flaky-model.js";
import { sampleModelReference } from "../../src/onnx/sample-model.js";
import { spawnModelServer, stopProcess, tempDir, waitFor, type SpawnedModelServer } from "./support.js";

const inputs = (x: number[][]) => [
  { name: "x", shape: [x.length, 4], datatype: "FP32", data: x.flat() },
  { name: "ids", shape: [2], datatype: "INT64", data: [1, 41] },
];

describe("flaky model", () => {
  let dir: string;
  let server: SpawnedModelServer;
  let base: string;

  const infer = (body: unknown) =>
    fetch(`${base}/v2/models/flaky/infer`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  beforeAll(async () => {
    dir = await tempDir("flaky-model");
    const path = join(dir, "flaky.onnx");
    await writeFile(path, buildFlakyModel({ failAbove: 0.5 }));
    server = spawnModelServer(["--model", path, "--name", "flaky", "--port", "0", "--threads", "1", "--max-batch-size", "8"]);
    base = `http://127.0.0.1:${await server.port}`;
    await waitFor("model server ready", async () => (await fetch(`${base}/v2/health/ready`)).status === 200);
  }, 30_000);

  afterAll(async () => {
    if (server) await stopProcess(server);
    await rm(dir, { recursive: true, force: true });
  });

  it("has the sample model's signature", async () => {
    const meta = (await (await fetch(`${base}/v2/models/flaky`)).json()) as { inputs: unknown; outputs: unknown };
    expect(meta.inputs).toEqual([
      { name: "x", datatype: "FP32", shape: [-1, 4] },
      { name: "ids", datatype: "INT64", shape: [-1] },
    ]);
    expect(meta.outputs).toEqual([
      { name: "y", datatype: "FP32", shape: [-1, 2] },
      { name: "ids_out", datatype: "INT64", shape: [-1] },
    ]);
  });

  it("answers 200 with the sample model's output when every x[…, 0] is at most the threshold", async () => {
    const x = [
      [0.5, 2, 3, 4],
      [-3, -1, 0.25, 2],
    ];
    const res = await infer({ inputs: inputs(x) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: { name: string; shape: number[]; data: number[] }[] };
    const [y, ids] = body.outputs;
    expect(y).toMatchObject({ name: "y", shape: [2, 2] });
    sampleModelReference(x)
      .flat()
      .forEach((v, i) => expect(y!.data[i]).toBeCloseTo(v, 5));
    expect(ids).toMatchObject({ name: "ids_out", data: [2, 42] });
  });

  it("answers 500 with the runtime's error when a row's x[…, 0] is above it", async () => {
    const res = await infer({
      inputs: inputs([
        [0.1, 0, 0, 0],
        [0.75, 0, 0, 0],
      ]),
    });
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: string };
    expect(body.error).toMatch(/^inference failed: .*Gather/);
    // The server goes on serving.
    expect((await infer({ inputs: inputs([[0, 0, 0, 0]]) })).status).toBe(200);
  });

  it("still answers a malformed request 400", async () => {
    const res = await infer({ inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] });
    expect(res.status).toBe(400);
  });
});

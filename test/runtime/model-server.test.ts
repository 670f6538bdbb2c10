import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleModelReference } from "../../src/onnx/sample-model.js";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { spawnModelServer, stopProcess, tempDir, waitFor, type SpawnedModelServer } from "./support.js";

const x = [
  [1, 2, 3, 4],
  [0.5, -1, 0.25, 2],
];
const goodInputs = () => [
  { name: "x", shape: [2, 4], datatype: "FP32", data: x.flat() },
  { name: "ids", shape: [3], datatype: "INT64", data: [1, 41, -5] },
];

describe("model server", () => {
  let dir: string;
  let server: SpawnedModelServer;
  let base: string;
  const spawned: SpawnedModelServer[] = [];

  const post = (path: string, body: unknown) =>
    fetch(base + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const infer = (body: unknown) => post("/v2/models/sample/infer", body);

  beforeAll(async () => {
    dir = await tempDir("model-server");
    const model = await writeSampleModel(dir);
    server = spawnModelServer([
      ...["--model", model.path, "--name", "sample", "--model-version", "3"],
      ...["--port", "0", "--threads", "1", "--max-batch-size", "4", "--max-body-bytes", "65536"],
    ]);
    spawned.push(server);
    base = `http://127.0.0.1:${await server.port}`;
    await waitFor("model server ready", async () => (await fetch(`${base}/v2/health/ready`)).status === 200);
  }, 30_000);

  afterAll(async () => {
    await Promise.all(spawned.map(stopProcess));
    await rm(dir, { recursive: true, force: true });
  });

  it("answers liveness, readiness and metadata", async () => {
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${base}/v2/models/sample/ready`)).status).toBe(200);
    const meta = await (await fetch(`${base}/v2/models/sample`)).json();
    expect(meta).toEqual({
      name: "sample",
      versions: ["3"],
      platform: "onnxruntime",
      inputs: [
        { name: "x", datatype: "FP32", shape: [-1, 4] },
        { name: "ids", datatype: "INT64", shape: [-1] },
      ],
      outputs: [
        { name: "y", datatype: "FP32", shape: [-1, 2] },
        { name: "ids_out", datatype: "INT64", shape: [-1] },
      ],
    });
  });

  it("infers FP32 and INT64 tensors", async () => {
    const res = await infer({ id: "req-1", inputs: goodInputs() });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      model_name: string;
      model_version: string;
      id: string;
      outputs: { name: string; datatype: string; shape: number[]; data: number[] }[];
    };
    expect(body.model_name).toBe("sample");
    expect(body.model_version).toBe("3");
    expect(body.id).toBe("req-1");
    const [y, ids] = body.outputs;
    expect(y).toMatchObject({ name: "y", datatype: "FP32", shape: [2, 2] });
    sampleModelReference(x)
      .flat()
      .forEach((v, i) => expect(y?.data[i]).toBeCloseTo(v, 5));
    expect(ids).toEqual({ name: "ids_out", datatype: "INT64", shape: [3], data: [2, 42, -4] });
  });

  it("accepts nested data and returns only the requested outputs", async () => {
    const res = await infer({
      inputs: [{ name: "x", shape: [2, 4], datatype: "FP32", data: x }, goodInputs()[1]],
      outputs: [{ name: "ids_out" }],
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: { name: string }[] };
    expect(body.outputs.map((o) => o.name)).toEqual(["ids_out"]);
  });

  const badRequests: [string, unknown, RegExp][] = [
    ["unparseable JSON", "{not json", /not valid JSON/],
    ["no inputs", { inputs: [] }, /non-empty array/],
    ["an unknown input", { inputs: [...goodInputs(), { name: "z", shape: [1], datatype: "FP32", data: [1] }] }, /unknown input 'z'/],
    ["a missing input", { inputs: [goodInputs()[0]] }, /missing input 'ids'/],
    ["a wrong datatype", { inputs: [{ ...goodInputs()[0], datatype: "INT64" }, goodInputs()[1]] }, /datatype "INT64".*expects FP32/],
    ["a static dimension mismatch", { inputs: [{ ...goodInputs()[0], shape: [4, 2] }, goodInputs()[1]] }, /dimension 1 is 2/],
    ["a wrong rank", { inputs: [{ ...goodInputs()[0], shape: [8] }, goodInputs()[1]] }, /rank 1/],
    ["data shorter than the shape", { inputs: [{ ...goodInputs()[0], data: [1, 2, 3] }, goodInputs()[1]] }, /needs 8 elements, 'data' has 3/],
    ["a non-number element", { inputs: [{ ...goodInputs()[0], data: [1, 2, 3, "4", 5, 6, 7, 8] }, goodInputs()[1]] }, /element 3/],
    ["a non-integer INT64", { inputs: [goodInputs()[0], { ...goodInputs()[1], data: [1, 2.5, 3] }] }, /element 1/],
    [
      "a batch above the maximum",
      { inputs: [{ name: "x", shape: [5, 4], datatype: "FP32", data: new Array(20).fill(0) }, goodInputs()[1]] },
      /batch size 5 exceeds the maximum batch size 4/,
    ],
    ["an unknown output", { inputs: goodInputs(), outputs: [{ name: "nope" }] }, /unknown output "nope"/],
  ];
  it.each(badRequests)("rejects %s with 400 and a reason", async (_what, body, reason) => {
    const res = await infer(body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(reason);
  });

  it("rejects a body over the size limit with 413", async () => {
    const res = await infer({ inputs: goodInputs(), padding: "x".repeat(70_000) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/larger than 65536 bytes/);
  });

  it("answers 404 for another model name and unknown paths", async () => {
    const other = await post("/v2/models/other/infer", { inputs: goodInputs() });
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: string }).error).toMatch(/'other' not found/);
    const version = await fetch(`${base}/v2/models/sample/versions/9`);
    expect(version.status).toBe(404);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/v2/models/sample/infer`)).status).toBe(405);
  });

  it("exits non-zero with a clear message when the model is not ONNX", async () => {
    const bad = join(dir, "not-a-model.onnx");
    await writeFile(bad, "this is not a protobuf");
    const broken = spawnModelServer(["--model", bad, "--name", "broken"]);
    spawned.push(broken);
    const { code } = await broken.exit;
    expect(code).toBe(1);
    expect(broken.output()).toMatch(/failed to load model: onnxruntime could not load .*not-a-model\.onnx/);
  });

  it("exits non-zero when the model file is missing, and 2 on bad usage", async () => {
    const missing = spawnModelServer(["--model", join(dir, "missing.onnx"), "--name", "m"]);
    spawned.push(missing);
    expect((await missing.exit).code).toBe(1);
    expect(missing.output()).toMatch(/missing\.onnx does not exist/);
    const usage = spawnModelServer(["--name", "m"]);
    spawned.push(usage);
    expect((await usage.exit).code).toBe(2);
    expect(usage.output()).toMatch(/--model is required/);
  });

  it("exits when stdin closes if asked to, so it never outlives its supervisor", async () => {
    const model = await writeSampleModel(dir, "stdin.onnx");
    const s = spawnModelServer(["--model", model.path, "--name", "s", "--exit-on-stdin-close"], "pipe");
    spawned.push(s);
    await s.port;
    s.child.stdin?.end();
    expect(await s.exit).toEqual({ code: 0, signal: null });
    expect(s.output()).toMatch(/stdin closed/);
  });

  it("shuts down promptly on SIGTERM", async () => {
    const model = await writeSampleModel(dir, "other.onnx");
    const s = spawnModelServer(["--model", model.path, "--name", "s"]);
    spawned.push(s);
    const port = await s.port;
    await waitFor("ready", async () => (await fetch(`http://127.0.0.1:${port}/v2/health/ready`)).status === 200);
    const started = Date.now();
    s.child.kill("SIGTERM");
    expect(await s.exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});

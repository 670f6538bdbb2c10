// Unary calls for the bench, closed loop (N in flight) or open loop (N per
// second): CreateDeployment or GetDeployment over native gRPC or Connect JSON.
// The clients are the lightest at hand (@grpc/grpc-js, and node:http posting
// JSON), so that on a small machine the figure is the server's work, not the
// load generator's.
import { Agent, request } from "node:http";
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { CreateDeploymentRequestSchema, CreateDeploymentResponseSchema, GetDeploymentRequestSchema } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentSchema } from "../gen/modeldeploy/v1/resources_pb.js";
import type { UnaryJob, UnaryResult } from "./bench-jobs.js";

type Call = (body: object) => Promise<void>;

function grpcMethod<I extends DescMessage, O extends DescMessage>(name: string, input: I, output: O): grpc.MethodDefinition<MessageShape<I>, MessageShape<O>> {
  return {
    path: `/modeldeploy.v1.DeploymentService/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m) => Buffer.from(toBinary(input, m)),
    requestDeserialize: (b) => fromBinary(input, b),
    responseSerialize: (m) => Buffer.from(toBinary(output, m)),
    responseDeserialize: (b) => fromBinary(output, b),
  };
}

function grpcCaller(job: UnaryJob): Call {
  const definition =
    job.method === "get"
      ? grpcMethod("GetDeployment", GetDeploymentRequestSchema, DeploymentSchema)
      : grpcMethod("CreateDeployment", CreateDeploymentRequestSchema, CreateDeploymentResponseSchema);
  const schema = job.method === "get" ? GetDeploymentRequestSchema : CreateDeploymentRequestSchema;
  const address = job.baseUrl.replace(/^https?:\/\//, "");
  // A channel option that differs per client keeps grpc-js from sharing one connection.
  const clients = Array.from({ length: job.connections }, (_, i) => new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.bench_channel": i }));
  const metadata = new grpc.Metadata();
  if (job.apiKey) metadata.set("authorization", `Bearer ${job.apiKey}`);
  let n = 0;
  return (body) =>
    new Promise((resolve, reject) => {
      const client = clients[n++ % clients.length]!;
      client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize as (m: unknown) => Buffer,
        (b: Buffer) => b,
        create(schema, body as never),
        metadata,
        (err) => (err ? reject(new Error(`${grpc.status[err.code]}: ${err.details}`)) : resolve()),
      );
    });
}

function connectJsonCaller(job: UnaryJob): Call {
  const agent = new Agent({ keepAlive: true, maxSockets: job.connections });
  const url = new URL(`${job.baseUrl}/modeldeploy.v1.DeploymentService/${job.method === "get" ? "GetDeployment" : "CreateDeployment"}`);
  const headers: Record<string, string> = { "content-type": "application/json", "connect-protocol-version": "1" };
  if (job.apiKey) headers["authorization"] = `Bearer ${job.apiKey}`;
  return (body) =>
    new Promise((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = request(url, { method: "POST", agent, headers: { ...headers, "content-length": String(Buffer.byteLength(data)) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 300)}`)),
        );
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(data);
    });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function runUnary(job: UnaryJob): Promise<UnaryResult> {
  const send = job.protocol === "grpc" ? grpcCaller(job) : connectJsonCaller(job);
  let seq = 0;
  const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const replicas = job.replicas ?? 1;
  const call = (): Promise<void> =>
    job.method === "get"
      ? send({ name: job.name })
      : send({
          model: { name: job.name, uri: "file:///bench/model.onnx" },
          scaling: { minReplicas: replicas, maxReplicas: replicas },
          suffix: `${run}-${seq++}`,
        });
  let measuring = false;
  const latencies: number[] = [];
  let errors = 0;
  let firstError = "";
  const timed = async () => {
    const t0 = performance.now();
    try {
      await call();
      if (measuring) latencies.push(performance.now() - t0);
    } catch (err) {
      if (measuring) {
        errors++;
        firstError ||= (err as Error).message.slice(0, 300);
      }
    }
  };
  const phase = async (ms: number, count: number) => {
    const end = performance.now() + ms;
    let started = 0;
    const more = () => performance.now() < end && started < count;
    if (job.ratePerSec) {
      const inFlight = new Set<Promise<void>>();
      const t0 = performance.now();
      while (more()) {
        // Start every call that is due by now (timers on a busy machine fire late).
        const due = Math.floor(((performance.now() - t0) / 1000) * job.ratePerSec) + 1;
        while (started < due && more() && inFlight.size < job.concurrency) {
          started++;
          const p = timed().finally(() => inFlight.delete(p));
          inFlight.add(p);
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      await Promise.all(inFlight);
      return;
    }
    await Promise.all(
      Array.from({ length: job.concurrency }, async () => {
        while (more()) {
          started++;
          await timed();
        }
      }),
    );
  };
  if (job.warmupMs > 0) await phase(job.warmupMs, Infinity);
  measuring = true;
  const t0 = performance.now();
  await phase(job.durationMs, job.count ?? Infinity);
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    ok: latencies.length,
    errors,
    firstError,
    seconds,
    rate: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

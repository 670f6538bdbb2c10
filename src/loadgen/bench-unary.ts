// Unary calls for the bench, closed loop (N in flight) or open loop (N per
// second): CreateDeployment or GetDeployment over native gRPC or Connect JSON.
import { Agent } from "node:http";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { DeploymentService } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { errorMessage } from "./api.js";
import type { UnaryJob, UnaryResult } from "./bench-jobs.js";

type Deployments = Client<typeof DeploymentService>;

function clients(job: UnaryJob): Deployments[] {
  const interceptors: Interceptor[] = job.apiKey
    ? [(next) => (req) => {
        req.header.set("authorization", `Bearer ${job.apiKey}`);
        return next(req);
      }]
    : [];
  if (job.protocol === "connect-json") {
    const agent = new Agent({ keepAlive: true, maxSockets: job.connections });
    return [createClient(DeploymentService, createConnectTransport({ baseUrl: job.baseUrl, httpVersion: "1.1", useBinaryFormat: false, interceptors, nodeOptions: { agent } }))];
  }
  // One HTTP/2 session per transport.
  return Array.from({ length: job.connections }, () => createClient(DeploymentService, createGrpcTransport({ baseUrl: job.baseUrl, interceptors })));
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function runUnary(job: UnaryJob): Promise<UnaryResult> {
  const all = clients(job);
  let n = 0;
  let seq = 0;
  const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const call = (): Promise<unknown> => {
    const c = all[n++ % all.length]!;
    if (job.method === "get") return c.getDeployment({ name: job.name });
    const replicas = job.replicas ?? 1;
    return c.createDeployment({
      model: { name: job.name, uri: "file:///bench/model.onnx" },
      scaling: { minReplicas: replicas, maxReplicas: replicas },
      suffix: `${run}-${seq++}`,
    });
  };
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
        firstError ||= errorMessage(err);
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
    await Promise.all(Array.from({ length: job.concurrency }, async () => {
      while (more()) {
        started++;
        await timed();
      }
    }));
  };
  if (job.warmupMs > 0) await phase(job.warmupMs, Infinity);
  measuring = true;
  const t0 = performance.now();
  await phase(job.durationMs, job.count ?? Infinity);
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { ok: latencies.length, errors, firstError, seconds, rate: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

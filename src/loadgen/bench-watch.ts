// Many WatchDeployment streams on one deployment (native gRPC, spread over
// several HTTP/2 connections): reports when all are open, then when the next
// event after the snapshot reached each of them.
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DeploymentService } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import type { WatchJob, WatchOpen, WatchResult } from "./bench-jobs.js";

const now = () => performance.timeOrigin + performance.now();

export async function runWatch(job: WatchJob, onOpen: (open: WatchOpen) => void): Promise<WatchResult> {
  const interceptors: Interceptor[] = job.apiKey
    ? [(next) => (req) => {
        req.header.set("authorization", `Bearer ${job.apiKey}`);
        return next(req);
      }]
    : [];
  const clients = Array.from({ length: job.connections }, () => createClient(DeploymentService, createGrpcTransport({ baseUrl: job.baseUrl, interceptors })));
  const ac = new AbortController();
  const arrivals: number[] = [];
  let opened = 0;
  let failed = 0;
  let allOpen: () => void = () => {};
  const allOpened = new Promise<void>((r) => (allOpen = r));
  let allArrived: () => void = () => {};
  const arrived = new Promise<void>((r) => (allArrived = r));
  const settle = () => {
    if (opened + failed === job.streams) allOpen();
    if (arrivals.length + failed === job.streams) allArrived();
  };
  const one = async (i: number) => {
    let first = true;
    try {
      for await (const _ of clients[i % clients.length]!.watchDeployment({ name: job.name }, { signal: ac.signal })) {
        if (first) {
          first = false;
          opened++;
        } else {
          arrivals.push(now());
          break;
        }
        settle();
      }
    } catch {
      if (first) failed++;
    }
    settle();
  };
  // Opened in waves, so the server is not handed 10,000 stream opens at once.
  const streams: Promise<void>[] = [];
  for (let i = 0; i < job.streams; i++) {
    streams.push(one(i));
    if (i % 200 === 199) await new Promise((r) => setTimeout(r, 5));
  }
  await allOpened;
  onOpen({ open: opened, failed });
  const timer = setTimeout(allArrived, job.timeoutMs);
  await arrived;
  clearTimeout(timer);
  ac.abort();
  return { arrivals, missing: opened - arrivals.length };
}

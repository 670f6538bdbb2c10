// Many WatchDeployment streams on one deployment (native gRPC, spread over
// several HTTP/2 connections): reports when all are open, then when the next
// event after the snapshot reached each of them.
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DeploymentService } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { errorMessage, statusName } from "./api.js";
import type { WatchJob, WatchOpen, WatchResult } from "./bench-jobs.js";

const now = () => performance.timeOrigin + performance.now();

export async function runWatch(job: WatchJob, onOpen: (open: WatchOpen) => void): Promise<WatchResult> {
  const interceptors: Interceptor[] = job.apiKey
    ? [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${job.apiKey}`);
          return next(req);
        },
      ]
    : [];
  const clients = Array.from({ length: job.connections }, () => createClient(DeploymentService, createGrpcTransport({ baseUrl: job.baseUrl, interceptors })));
  const ac = new AbortController();
  const arrivals: number[] = [];
  let opened = 0;
  let failed = 0;
  let firstError = "";
  /** Streams that failed after their snapshot. */
  let lost = 0;
  let lostError = "";
  let allOpen: () => void = () => {};
  const allOpened = new Promise<void>((r) => (allOpen = r));
  let allArrived: () => void = () => {};
  const arrived = new Promise<void>((r) => (allArrived = r));
  const settle = () => {
    if (opened + failed === job.streams) allOpen();
    if (arrivals.length + failed + lost === job.streams) allArrived();
  };
  // At most 200 opens in flight, each retried while the server sheds load
  // (UNAVAILABLE, RESOURCE_EXHAUSTED), as a client would.
  let opening = 0;
  const slots: (() => void)[] = [];
  const slot = async () => {
    while (opening >= 200) await new Promise<void>((r) => slots.push(r));
    opening++;
  };
  const release = () => {
    opening--;
    slots.shift()?.();
  };
  const one = async (i: number) => {
    await slot();
    let first = true;
    for (let attempt = 1; first; attempt++) {
      try {
        for await (const _ of clients[i % clients.length]!.watchDeployment({ name: job.name }, { signal: ac.signal })) {
          if (first) {
            first = false;
            opened++;
            release();
          } else {
            arrivals.push(now());
            break;
          }
          settle();
        }
        break;
      } catch (err) {
        if (!first) {
          lost++;
          lostError ||= errorMessage(err);
          break;
        }
        const code = statusName(err);
        if (attempt < 10 && (code === "UNAVAILABLE" || code === "RESOURCE_EXHAUSTED")) {
          await new Promise((r) => setTimeout(r, 50 * attempt));
          continue;
        }
        failed++;
        firstError ||= errorMessage(err);
        release();
        break;
      }
    }
    settle();
  };
  for (let i = 0; i < job.streams; i++) void one(i);
  await allOpened;
  onOpen({ open: opened, failed, firstError });
  const timer = setTimeout(allArrived, job.timeoutMs);
  await arrived;
  clearTimeout(timer);
  ac.abort();
  return { arrivals, missing: opened - arrivals.length, lost, lostError };
}

// grpc.health.v1.Health (https://github.com/grpc/grpc/blob/master/doc/health-checking.md)
// on protobuf-es messages: Check, Watch and List over a status per service
// name ("" is the whole server). Replaces grpc-health-check, which parses its
// .proto with protobufjs at start.
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthListResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthListRequest,
  type HealthListResponse,
} from "../gen/grpc/health/v1/health_pb.js";
import { grpcServiceDefinition } from "./grpc-service-definition.js";

export { ServingStatus };

/** List answers RESOURCE_EXHAUSTED past this many services (as grpc-health-check does). */
export const maxListedServices = 100;

export interface HealthService {
  /** Set a service's status; open Watch calls on it see the change. */
  setStatus(service: string, status: ServingStatus): void;
  /** The status of a service, undefined when unknown. */
  status(service: string): ServingStatus | undefined;
  /**
   * End every open Watch with UNAVAILABLE (after the statuses already sent),
   * and later ones right after their first status: the server is going away,
   * and grpc-js' graceful shutdown waits for open calls.
   */
  close(): void;
  /** Register grpc.health.v1.Health on a grpc-js server. */
  addToServer(server: Pick<grpc.Server, "addService">): void;
}

interface Watcher {
  call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;
  last: ServingStatus;
}

const shuttingDown: Partial<grpc.StatusObject> = {
  code: grpc.status.UNAVAILABLE,
  details: "server is shutting down, reconnect",
};

export function createHealthService(initial: Iterable<readonly [string, ServingStatus]> = []): HealthService {
  const statuses = new Map<string, ServingStatus>(initial);
  const watchers = new Map<string, Set<Watcher>>();
  let closed = false;

  const send = (w: Watcher, status: ServingStatus) => {
    w.last = status;
    // Status messages are a few bytes and rare: grpc-js' buffer is enough.
    w.call.write(create(HealthCheckResponseSchema, { status }));
  };

  const endWatch = (service: string, w: Watcher) => {
    watchers.get(service)?.delete(w);
    if (watchers.get(service)?.size === 0) watchers.delete(service);
    if (!w.call.cancelled) w.call.emit("error", shuttingDown);
  };

  const check: grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse> = (call, callback) => {
    const status = statuses.get(call.request.service);
    if (status === undefined) {
      callback({ code: grpc.status.NOT_FOUND, details: `health status unknown for service "${call.request.service}"` });
      return;
    }
    callback(null, create(HealthCheckResponseSchema, { status }));
  };

  const watch: grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse> = (call) => {
    const service = call.request.service;
    const w: Watcher = { call, last: ServingStatus.UNKNOWN };
    // The spec: an unknown service is SERVICE_UNKNOWN, and the call stays open.
    send(w, statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN);
    if (closed) {
      endWatch(service, w);
      return;
    }
    let set = watchers.get(service);
    if (set === undefined) watchers.set(service, (set = new Set()));
    set.add(w);
    call.once("cancelled", () => {
      watchers.get(service)?.delete(w);
      if (watchers.get(service)?.size === 0) watchers.delete(service);
    });
  };

  const list: grpc.handleUnaryCall<HealthListRequest, HealthListResponse> = (_call, callback) => {
    if (statuses.size > maxListedServices) {
      callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: `more than ${maxListedServices} services to list` });
      return;
    }
    const res = create(HealthListResponseSchema);
    for (const [name, status] of statuses) res.statuses[name] = create(HealthCheckResponseSchema, { status });
    callback(null, res);
  };

  return {
    setStatus(service, status) {
      statuses.set(service, status);
      for (const w of watchers.get(service) ?? []) {
        // The spec asks for a message when the status changes, not per call here.
        if (w.last !== status) send(w, status);
      }
    },
    status: (service) => statuses.get(service),
    close() {
      closed = true;
      for (const [service, set] of watchers) for (const w of [...set]) endWatch(service, w);
    },
    addToServer(server) {
      server.addService(grpcServiceDefinition(Health), { check, watch, list } as grpc.UntypedServiceImplementation);
    },
  };
}

// The API's call metrics: every call (both ports, every protocol) is observed
// once, at its end, by the call wrapper. Each method's series are bound once
// (one per code, on first use), so a call records with no allocation.
import type { DescMethod } from "@bufbuild/protobuf";
import { FastGauge, FastHistogram, type HistogramChild, type ValueCell } from "../telemetry/fast-metrics.js";
import { LATENCY_BUCKETS, type MetricsRegistry } from "../telemetry/metrics.js";
import { codeName } from "./errors.js";

export class MethodMetrics {
  /** Indexed by gRPC code (0..16). */
  private readonly byCode: Array<HistogramChild | undefined> = [];
  /** Made by the first stream: unary methods have no series here. */
  private open: ValueCell | undefined;

  constructor(
    private readonly calls: FastHistogram,
    private readonly service: string,
    private readonly name: string,
    private readonly streams: FastGauge,
  ) {}

  /** A call ended with `code` after `seconds`. */
  observe(code: number, seconds: number): void {
    (this.byCode[code] ??= this.calls.child(this.service, this.name, codeName(code))).observe(seconds);
  }

  streamOpened(): void {
    (this.open ??= this.streams.child(this.name)).inc();
  }

  streamClosed(): void {
    this.open?.dec();
  }
}

export interface RpcMetrics {
  method(method: DescMethod): MethodMetrics;
}

export function createRpcMetrics(registry: MetricsRegistry): RpcMetrics {
  const calls = new FastHistogram(
    "modeldeploy_rpc_duration_seconds",
    "API calls by service, method and status code, and how long they took (server streams: how long they were open)",
    ["service", "method", "code"],
    LATENCY_BUCKETS,
    registry,
  );
  const streams = new FastGauge("modeldeploy_watch_streams_open", "Server streams (watches) open now, by method", ["method"], registry);
  const byMethod = new Map<DescMethod, MethodMetrics>();
  return {
    method(method) {
      let m = byMethod.get(method);
      if (m === undefined) {
        m = new MethodMetrics(calls, method.parent.typeName, method.name, streams);
        byMethod.set(method, m);
      }
      return m;
    },
  };
}

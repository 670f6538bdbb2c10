// What a queued task carries from the call that queued it, as headers of its
// queue message (through the outbox row): the call's x-request-id, for the
// worker's log lines, and its W3C trace context when traced.
import { activeTraceCarrier } from "./tracing.js";

export type CallContext = Record<string, string>;

export const REQUEST_ID_HEADER = "x-request-id";
const KEYS = [REQUEST_ID_HEADER, "traceparent", "tracestate"];

/** The current call's context: its request id, and the active span's trace headers (tracing on). */
export function callContext(requestId: string): CallContext {
  const trace = activeTraceCarrier();
  return trace === null ? { [REQUEST_ID_HEADER]: requestId } : { [REQUEST_ID_HEADER]: requestId, ...trace };
}

/** A call context read back from storage: only the known keys, only short strings. */
export function parseCallContext(value: unknown): CallContext | null {
  if (typeof value !== "object" || value === null) return null;
  const out: CallContext = {};
  let any = false;
  for (const key of KEYS) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === "string" && v.length > 0 && v.length <= 512) {
      out[key] = v;
      any = true;
    }
  }
  return any ? out : null;
}

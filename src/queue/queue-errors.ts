// NATS and JetStream failures in the queue's own words, told apart by error
// class, JetStream API error code and status code, never by message text.
import { JetStreamApiCodes, JetStreamApiError, JetStreamError } from "@nats-io/jetstream";
import { ClosedConnectionError, ConnectionError, DrainingConnectionError, NoRespondersError, RequestError, TimeoutError } from "@nats-io/transport-node";
import { DependencyUnavailableError } from "../domain/errors.js";

/**
 * - stream-missing / consumer-missing: JetStream answered 10059 / 10014.
 * - no-responders: nothing listens on the subject: no stream takes it (a
 *   publish), no consumer serves it (a pull), or JetStream is not up (an API call).
 * - unreachable: timeout, disconnected, closed, JetStream not enabled.
 */
export type QueueFault = "stream-missing" | "consumer-missing" | "no-responders" | "unreachable";

/** A pull answered by the server's "503 no responders" status. */
const STATUS_NO_RESPONDERS = 503;

export function classifyQueueError(err: unknown): QueueFault | undefined {
  // nats.js wraps the telling error (e.g. JetStreamNotEnabled ← RequestError ← no responders).
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++, e = e.cause) {
    if (e instanceof DependencyUnavailableError) return e.dependency === "queue" ? "unreachable" : undefined;
    if (e instanceof JetStreamApiError) {
      if (e.code === JetStreamApiCodes.StreamNotFound) return "stream-missing";
      if (e.code === JetStreamApiCodes.ConsumerNotFound) return "consumer-missing";
      if (e.code === JetStreamApiCodes.JetStreamNotEnabledForAccount) return "unreachable";
      return undefined;
    }
    if (e instanceof NoRespondersError) return "no-responders";
    if (e instanceof RequestError && e.isNoResponders()) return "no-responders";
    // JetStreamStatusError (not exported by the package) carries the pull's status code.
    if (e instanceof JetStreamError && (e as { code?: unknown }).code === STATUS_NO_RESPONDERS) return "no-responders";
    if (
      e instanceof TimeoutError ||
      e instanceof ClosedConnectionError ||
      e instanceof DrainingConnectionError ||
      e instanceof ConnectionError ||
      e instanceof RequestError
    ) {
      return "unreachable";
    }
  }
  return undefined;
}

/** Is `err` a cue to (re)create the stream or the consumer? */
export function isMissingQueue(err: unknown): boolean {
  const fault = classifyQueueError(err);
  return fault === "stream-missing" || fault === "consumer-missing" || fault === "no-responders";
}

/**
 * A fault that means the queue cannot be reached or used now becomes
 * DependencyUnavailableError("queue") (the API reports it as unavailable);
 * anything else is returned unchanged.
 */
export function toQueueError(err: unknown, doing: string): unknown {
  if (err instanceof DependencyUnavailableError) return err;
  const fault = classifyQueueError(err);
  if (fault === undefined) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new DependencyUnavailableError("queue", `${doing}: ${fault === "unreachable" ? detail : `${fault} (${detail})`}`, { cause: err });
}

export function queueNotConnected(doing: string): DependencyUnavailableError {
  return new DependencyUnavailableError("queue", `${doing}: not connected to NATS (reconnecting)`);
}

// A transport may give a server-streaming call a direct writer (in its
// HandlerContext values): a source that has a message ready can then write
// it at once, in the same synchronous loop as every other stream of an event,
// instead of resolving a promise that travels through the call wrapper's
// generator and the transport's read loop to one write. The native gRPC port
// offers one (grpc-server.ts); WatchStream uses it (watch-stream.ts). The call
// wrapper still owns the call's end, errors and log line: the impl's
// iterator only ends (or fails) the call.
import { createContextKey, type HandlerContext } from "@connectrpc/connect";

export interface DirectWriter {
  /**
   * Serialize and write one response message now. False when the transport
   * buffers as much as it should for this call: write more only after
   * onDrain's callback. Throws (a ConnectError) when the message cannot be
   * serialized; the message is then not sent.
   */
  write(message: object): boolean;
  /** `f` once, when the transport can take more after write returned false (or never, if the call ends first). */
  onDrain(f: () => void): void;
  /** Messages written (for the call's log line). */
  readonly written: number;
}

export const directWriterKey = createContextKey<DirectWriter | undefined>(undefined, {
  description: "direct server-stream writer",
});

/** The call's direct writer, if its transport offers one. */
export function directWriterOf(ctx: HandlerContext): DirectWriter | undefined {
  return ctx.values.get(directWriterKey);
}

// The native gRPC port's DirectWriter (direct-writer.ts): one per
// server-streaming call. A message is serialized by the shared serializer
// (once per message object, whatever the number of streams) and handed to
// grpc-js at once; grpc-js's own write buffer is the backpressure signal.
import type * as grpc from "@grpc/grpc-js";
import type { DirectWriter } from "./direct-writer.js";

export class GrpcDirectWriter implements DirectWriter {
  written = 0;

  constructor(
    private readonly call: grpc.ServerWritableStream<Buffer, Buffer>,
    private readonly serialize: (message: object) => Buffer,
    /** Sends the response headers before the first message. */
    private readonly beforeWrite: () => void,
  ) {}

  write(message: object): boolean {
    // A cancelled call is being torn down through its signal: nothing to send.
    if (this.call.cancelled) return true;
    const bytes = this.serialize(message);
    this.beforeWrite();
    this.written++;
    return this.call.write(bytes);
  }

  onDrain(f: () => void): void {
    this.call.once("drain", f);
  }
}

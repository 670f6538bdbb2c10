// Watches the length-prefixed messages (gRPC, gRPC-Web, Connect streaming)
// of a request body go by, chunk by chunk: refuses a message whose length
// prefix is above the limit before its payload arrives, and scans
// uncompressed JSON payloads for depth as they arrive.
import { JsonDepthScanner } from "./json-limits.js";
import { jsonTooDeep, messageTooLarge } from "./request-rejections.js";

// Room for envelope prefixes around the one message a request carries.
export const envelopeSlack = 64;

/**
 * Watches envelopes go by: refuses one whose length prefix is above the
 * limit before its payload arrives, and scans uncompressed JSON payloads.
 */
export class EnvelopeInspector {
  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  private remaining = 0;
  private scanner: JsonDepthScanner | undefined;
  private total = 0;

  constructor(
    private readonly limit: number,
    private readonly what: string,
    private readonly json: boolean,
    private readonly maxDepth: number,
  ) {}

  push(chunk: Buffer): void {
    this.total += chunk.byteLength;
    if (this.total > this.limit + envelopeSlack) throw messageTooLarge(undefined, this.limit, "request body");
    let i = 0;
    while (i < chunk.byteLength) {
      if (this.remaining === 0) {
        const n = Math.min(5 - this.headerFill, chunk.byteLength - i);
        chunk.copy(this.header, this.headerFill, i, i + n);
        this.headerFill += n;
        i += n;
        if (this.headerFill < 5) return;
        this.headerFill = 0;
        const flags = this.header[0] as number;
        this.remaining = this.header.readUInt32BE(1);
        if (this.remaining > this.limit) throw messageTooLarge(this.remaining, this.limit, this.what);
        this.scanner = this.json && (flags & 1) === 0 ? new JsonDepthScanner(this.maxDepth) : undefined;
      } else {
        const n = Math.min(this.remaining, chunk.byteLength - i);
        if (this.scanner !== undefined && !this.scanner.push(chunk.subarray(i, i + n))) throw jsonTooDeep(this.maxDepth);
        this.remaining -= n;
        i += n;
      }
    }
  }
}

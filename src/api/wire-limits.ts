// What one client may hold or send at the transport level, the same on both
// ports (native gRPC and Connect/gRPC-Web): connections, streams per
// connection, request header bytes, and how long an idle or silent
// connection is kept.

export interface WireLimits {
  /** Open connections per port; past it a connection gets RESOURCE_EXHAUSTED "too many connections" and is closed. */
  maxConnections: number;
  /** HTTP/2 streams (calls) one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxStreamsPerConnection: number;
  /**
   * Request header (metadata) bytes, counted as HTTP/2 does: name + value +
   * 32 per field. Larger: RESOURCE_EXHAUSTED with the limit. The HTTP layer
   * itself refuses header blocks past headerHardLimitFactor times this.
   */
  maxHeaderBytes: number;
  /** A connection with no call open for this long is closed (HTTP/2 GOAWAY). */
  idleConnectionMs: number;
  /**
   * Streams one connection may abandon (reset before their response is
   * complete): a burst of this many, refilled at a tenth of it per second;
   * past it the connection is closed (reset-budget.ts).
   */
  maxStreamResets: number;
  /** An HTTP/2 connection is pinged this often; one that does not answer within keepaliveTimeoutMs is closed. */
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
}

export const defaultWireLimits: WireLimits = {
  // 10,000 WatchDeployment streams over 100 connections fit with room to spare.
  maxConnections: 2000,
  maxStreamsPerConnection: 1000,
  // gRPC's customary 8 KiB, doubled; a Node HTTP/1.1 server's default.
  maxHeaderBytes: 16 * 1024,
  maxStreamResets: 1000,
  idleConnectionMs: 300_000,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
};

export function wireLimits(over: Partial<WireLimits> | undefined): WireLimits {
  return { ...defaultWireLimits, ...over };
}

/**
 * Header blocks between maxHeaderBytes and this multiple of it get a clear
 * error from us (with x-request-id); larger ones are refused by the HTTP
 * layer (HTTP/1.1: 431; HTTP/2: the stream is reset with ENHANCE_YOUR_CALM),
 * so no header block this large is ever held.
 */
export const headerHardLimitFactor = 4;

/** Header list size of a Node request's rawHeaders ([name, value, …]), as HTTP/2 counts it. */
export function rawHeaderBytes(rawHeaders: readonly string[]): number {
  let n = 0;
  for (const field of rawHeaders) n += field.length;
  return n + 16 * rawHeaders.length;
}

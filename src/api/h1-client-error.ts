// HTTP/1.1 requests Node's parser refuses (headers past the hard cap, bad
// syntax, a request that took too long). Node's own answer writes the status
// and destroys the socket at once; a client still sending its headers then
// gets a reset before it reads the answer. Here the answer is followed by a
// lingering close: what the client still sends is read and dropped for a
// moment, so the status reaches it.
import type * as net from "node:net";

const statusOf: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, "Request Header Fields Too Large"],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, "Payload Too Large"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout"],
};

export interface ClientErrorOptions {
  /** The hard limit on a request's header block, for the message. */
  hardHeaderBytes: number;
  /** How long to keep reading and dropping before the socket is destroyed. */
  lingerMs?: number;
}

export function answerClientError(err: NodeJS.ErrnoException, socket: net.Socket, opts: ClientErrorOptions): void {
  if (!socket.writable || err.code === "ECONNRESET" || (socket as { _httpMessage?: unknown })._httpMessage) {
    // Gone already, or a response is under way: nothing to add.
    socket.destroy();
    return;
  }
  const [status, text] = statusOf[err.code ?? ""] ?? [400, "Bad Request"];
  const body = JSON.stringify(
    status === 431
      ? { code: "resource_exhausted", message: `request headers are larger than the hard limit of ${opts.hardHeaderBytes} bytes` }
      : { code: status === 408 ? "deadline_exceeded" : "invalid_argument", message: `malformed HTTP/1.1 request (${text.toLowerCase()})` },
  );
  // The parser is done with this connection: whatever arrives now is dropped.
  socket.removeAllListeners("data");
  socket.on("data", () => {});
  socket.on("error", () => {});
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), opts.lingerMs ?? 2000);
  linger.unref();
  socket.once("close", () => clearTimeout(linger));
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

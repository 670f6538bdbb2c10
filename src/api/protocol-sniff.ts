// One port, two HTTP versions: a connection's first bytes say whether it
// speaks HTTP/2 (the client preface) or HTTP/1.1.
import type * as net from "node:net";

const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Wait for enough of the connection's first bytes to tell HTTP/2 from
 * HTTP/1.1, then put them back (socket paused) and call `decided`. A
 * connection that sends nothing for timeoutMs is destroyed.
 */
export function sniffProtocol(socket: net.Socket, timeoutMs: number, decided: (h2: boolean) => void): void {
  socket.setTimeout(timeoutMs, () => socket.destroy());
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, h2Preface.length);
    const isH2 = head.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (isH2 && head.length < h2Preface.length) return; // need more bytes to decide
    socket.off("data", onData);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(head);
    decided(isH2);
  };
  socket.on("data", onData);
}

// Socket-level failures, by errno code: the peer is down, unreachable or went
// away. Shared by the layers that classify errors (db, api), so they agree.
const SOCKET_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

/** `err.code` is one of the errnos of a socket that failed. */
export function isSocketFailure(err: unknown): boolean {
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" && SOCKET_ERRNOS.has(code);
}

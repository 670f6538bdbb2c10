// The Node request and response types both HTTP servers of the Connect port
// hand out (HTTP/1.1, and HTTP/2 through its compatibility API).
import type * as http from "node:http";
import type * as http2 from "node:http2";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** A request URL's path (no query); cheaper than split("?") per request. */
export function pathOf(url: string | undefined): string {
  if (url === undefined) return "";
  const q = url.indexOf("?");
  return q === -1 ? url : url.slice(0, q);
}

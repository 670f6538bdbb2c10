// The Node request and response types both HTTP servers of the Connect port
// hand out (HTTP/1.1, and HTTP/2 through its compatibility API).
import type * as http from "node:http";
import type * as http2 from "node:http2";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

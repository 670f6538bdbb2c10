// Wire probes: hostile and careless clients as functions. Each takes the
// address of an API port ("host:port" or a URL) and returns what it
// observed, so a test, or the fault suite against separate processes,
// can assert on it. Run them while a well-behaved client
// (steady-client.ts) keeps calling: it must keep being served.
export { parseAddress, httpBase, type Address } from "./wire-probes/address.js";
export { sendGarbage, holdConnections, type GarbageOutcome, type HeldConnections, type IdleMode } from "./wire-probes/raw.js";
export {
  h2Request,
  grpcFrame,
  grpcRequestHeaders,
  malformedProto,
  truncatedGrpcFrame,
  oversizedGrpcFrame,
  malformedGrpcMessage,
  hugeHeadersH2,
  streamFlood,
  type H2Outcome,
  type H2RequestSpec,
  type FloodOutcome,
} from "./wire-probes/http2.js";
export { httpRequest, deepJson, largeJson, sendJson, hugeHeadersHttp1, type HttpOutcome, type HttpRequestSpec, type JsonVia } from "./wire-probes/http1.js";
export { freshGrpcHealthCheck, type GrpcCallOutcome } from "./wire-probes/grpc-call.js";

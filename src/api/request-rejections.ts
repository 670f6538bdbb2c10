// The errors a request gets when it is refused before any handler runs
// (too large, too deep, malformed, too many headers). One wording for both
// ports, so a client sees the same message over gRPC and over Connect.
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { jsonTooDeepMessage } from "./json-limits.js";

export function messageTooLarge(bytes: number | undefined, limit: number, what = "request message"): ConnectError {
  const size = bytes === undefined ? "" : ` of ${bytes} bytes`;
  return new ConnectError(`${what}${size} is larger than the limit of ${limit} bytes`, Code.ResourceExhausted);
}

export function malformedMessage(method: DescMethod, cause?: unknown): ConnectError {
  return new ConnectError(`malformed ${method.input.typeName} message`, Code.InvalidArgument, undefined, undefined, cause);
}

export function jsonTooDeep(maxDepth: number): ConnectError {
  return new ConnectError(jsonTooDeepMessage(maxDepth), Code.InvalidArgument);
}

export function headersTooLarge(bytes: number, limit: number): ConnectError {
  return new ConnectError(`request headers of ${bytes} bytes are larger than the limit of ${limit} bytes`, Code.ResourceExhausted);
}

export function tooManyConnections(limit: number): string {
  return `too many connections (limit ${limit}), retry later`;
}

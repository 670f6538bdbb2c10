// A refused call as the page shows it: the code, the message, the
// ErrorInfo reason and metadata, field violations and the request id.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";

export interface ShownError {
  code: string;
  message: string;
  reason: string | undefined;
  metadata: [string, string][];
  violations: string[];
  requestId: string | undefined;
}

/** Code.FailedPrecondition → "failed_precondition", as the Connect protocol writes it. */
function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/(?<=[a-z])(?=[A-Z])/g, "_").toLowerCase();
}

export function showError(err: unknown): ShownError {
  // The page's own refusals (a form it cannot send) have no code.
  if (!(err instanceof ConnectError)) {
    return { code: "", message: err instanceof Error ? err.message : String(err), reason: undefined, metadata: [], violations: [], requestId: undefined };
  }
  const e = err;
  const info = e.findDetails(ErrorInfoSchema)[0];
  return {
    code: codeName(e.code),
    message: e.rawMessage,
    reason: info?.reason || undefined,
    metadata: info ? Object.entries(info.metadata) : [],
    violations: e.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => `${v.field}: ${v.description}`)),
    // A stream's error carries its headers and trailers: the id may be in both.
    requestId: e.metadata.get("x-request-id")?.split(",")[0],
  };
}

export function isUnauthenticated(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}

export function isAbort(err: unknown): boolean {
  return err instanceof ConnectError ? err.code === Code.Canceled : err instanceof DOMException && err.name === "AbortError";
}

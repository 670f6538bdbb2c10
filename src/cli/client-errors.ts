// What a failed client command prints on stderr: the code and message, then
// the google.rpc details the API attached (ErrorInfo reason and metadata,
// BadRequest field violations), so a script can see why without a stack trace.
import { ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

export function describeClientError(err: unknown): string {
  if (!(err instanceof ConnectError)) return `error: ${err instanceof Error ? err.message : String(err)}`;
  const lines = [`error: ${err.message}`];
  for (const info of err.findDetails(ErrorInfoSchema)) {
    const meta = Object.entries(info.metadata)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    lines.push(`  reason: ${info.reason}${meta ? `  ${meta}` : ""}`);
  }
  for (const bad of err.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) lines.push(`  field ${v.field}: ${v.description}`);
  }
  return lines.join("\n");
}

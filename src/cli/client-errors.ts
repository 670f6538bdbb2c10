// What a failed client command prints on stderr: the code and message, then
// the google.rpc details the API attached (ErrorInfo reason and metadata,
// BadRequest field violations), so a script can see why without a stack trace;
// and, for the failures a new user meets first, what to do about them.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import type { ClientSettings } from "./settings.js";

const unreachable = /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|EAI_AGAIN|fetch failed|socket hang up/;

function noServer(err: ConnectError): boolean {
  if (err.code !== Code.Unavailable && err.code !== Code.Unknown && err.code !== Code.Internal) return false;
  const causes = [err.message, String((err.cause as { code?: unknown } | undefined)?.code ?? ""), String(err.cause ?? "")];
  return causes.some((c) => unreachable.test(c));
}

export function describeClientError(err: unknown, settings?: ClientSettings): string {
  if (!(err instanceof ConnectError)) return `error: ${err instanceof Error ? err.message : String(err)}`;
  if (settings && noServer(err)) {
    return [
      `error: [unavailable] no modeldeploy API answers at ${settings.url} (${err.rawMessage})`,
      `  start one in the project folder with \`npm start\` (or \`npx modeldeploy start\`),`,
      `  or point at a running one with --url URL, MODELDEPLOY_URL or \`modeldeploy login --url URL\``,
    ].join("\n");
  }
  const lines = [`error: ${err.message}`];
  const reasons: string[] = [];
  for (const info of err.findDetails(ErrorInfoSchema)) {
    reasons.push(info.reason);
    const meta = Object.entries(info.metadata)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    lines.push(`  reason: ${info.reason}${meta ? `  ${meta}` : ""}`);
  }
  for (const bad of err.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) lines.push(`  field ${v.field}: ${v.description}`);
  }
  if (settings && err.code === Code.Unauthenticated) {
    const from = settings.apiKeyFrom === "none" ? "no API key was given" : `the API key came from ${keySource[settings.apiKeyFrom]}`;
    lines.push(
      `  hint: ${from}; run \`npx modeldeploy login\` where \`npm start\` runs (it saves the key from .modeldeploy/bootstrap-key),`,
      `        or set MODELDEPLOY_API_KEY=$(cat .modeldeploy/bootstrap-key)`,
    );
  }
  return lines.join("\n");
}

const keySource = { flag: "--api-key", env: "MODELDEPLOY_API_KEY", config: "the `modeldeploy login` config file", none: "" } as const;

// Opaque page tokens bound to the filter they were issued for.
import { createHash } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { apiError } from "./errors.js";

const digest = (filter: string) => createHash("sha256").update(filter).digest("base64url").slice(0, 16);

export function encodePageToken(after: string, filter: string): string {
  return Buffer.from(JSON.stringify({ a: after, f: digest(filter) })).toString("base64url");
}

export function decodePageToken(token: string, filter: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { a?: unknown; f?: unknown };
    if (typeof parsed.a === "string" && parsed.f === digest(filter)) return parsed.a;
  } catch {
    // fall through
  }
  throw apiError(Code.InvalidArgument, "pageToken is invalid or belongs to a request with other filters; start again without a pageToken", {
    reason: "PAGE_TOKEN_INVALID",
  });
}

/** "team=ml,env=prod" → { team: "ml", env: "prod" }. */
export function parseLabelSelector(selector: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of selector
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf("=");
    const key = eq > 0 ? part.slice(0, eq).trim() : "";
    if (!key) {
      throw apiError(Code.InvalidArgument, `labelSelector "${selector}" must look like key=value,key2=value2`, {
        reason: "LABEL_SELECTOR_INVALID",
        fieldViolations: [{ field: "label_selector", description: "expected key=value pairs separated by commas" }],
      });
    }
    out[key] = part.slice(eq + 1).trim();
  }
  return out;
}

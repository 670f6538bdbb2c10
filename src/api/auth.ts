// Bearer API keys → principal (workspace + scopes). Lookups are cached briefly
// so that auth costs no database round trip on the hot path.
import { Code } from "@connectrpc/connect";
import type { Db } from "../db/connect.js";
import { findPrincipalByKey, hashApiKey } from "../db/api-keys.js";
import type { Principal, Scope } from "../domain/types.js";
import { apiError } from "./errors.js";

export interface Authenticator {
  authenticate(headers: Headers, scope: Scope): Promise<Principal>;
}

export function createAuthenticator(db: Db, options: { cacheTtlMs?: number; cacheMax?: number } = {}): Authenticator {
  const ttl = options.cacheTtlMs ?? 10_000;
  const max = options.cacheMax ?? 10_000;
  const cache = new Map<string, { principal: Principal; expires: number }>();
  return {
    async authenticate(headers, scope) {
      const header = headers.get("authorization");
      const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
      if (!match) {
        throw apiError(Code.Unauthenticated, "missing API key: send the header `authorization: Bearer <key>` (create a key with `npx modeldeploy keys create`)", { reason: "API_KEY_MISSING" });
      }
      const key = match[1]!;
      const hash = hashApiKey(key);
      const now = Date.now();
      let principal = cache.get(hash);
      if (!principal || principal.expires < now) {
        const found = key.length <= 256 ? await findPrincipalByKey(db, key) : undefined;
        if (!found) throw apiError(Code.Unauthenticated, "unknown or revoked API key", { reason: "API_KEY_INVALID" });
        if (cache.size >= max) cache.clear();
        principal = { principal: found, expires: now + ttl };
        cache.set(hash, principal);
      }
      if (!principal.principal.scopes.includes(scope)) {
        throw apiError(Code.PermissionDenied, `this API key lacks the scope ${scope}`, {
          reason: "SCOPE_MISSING",
          metadata: { requiredScope: scope, keyScopes: principal.principal.scopes.join(",") },
        });
      }
      return principal.principal;
    },
  };
}

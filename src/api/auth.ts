// Bearer API keys → principal (workspace + scopes). A verified key is cached
// for a short, fixed time so that the hot path costs neither a database round
// trip nor a hash: the cache is keyed by the key itself (the hash input) and
// bounded (least recently used out first). Revocation takes effect within
// cacheTtlMs: an entry expires that long after its key was verified, however
// often it is used meanwhile. Unknown keys are never cached.
import { Code } from "@connectrpc/connect";
import type { CallScope } from "../db/call-scope.js";
import { dbForCall, type Db } from "../db/connect.js";
import { findPrincipalByKey } from "../db/api-keys.js";
import type { Principal, Scope } from "../domain/types.js";
import { apiError } from "./errors.js";

export interface Authenticator {
  /** `call`: the call being authenticated; a lookup's wait for a connection ends with it. */
  authenticate(headers: Headers, scope: Scope, call?: CallScope): Promise<Principal>;
}

export interface AuthenticatorOptions {
  /** How long a verified key is trusted without asking the database: the bound on a revocation's delay. */
  cacheTtlMs?: number;
  /** Verified keys kept at once. */
  cacheMax?: number;
  /** Where a caller without a key gets one (differs with the embedded database, where `keys create` refuses). */
  missingKeyHint?: string;
}

/** Keys longer than this are never looked up (ours are 47 characters). */
const maxKeyLength = 256;
const bearer = /^Bearer\s+(\S+)\s*$/i;

interface Verified {
  principal: Principal;
  expires: number;
}

export function createAuthenticator(db: Db, options: AuthenticatorOptions = {}): Authenticator {
  const ttl = options.cacheTtlMs ?? 10_000;
  const max = Math.max(1, options.cacheMax ?? 10_000);
  // A Map iterates in insertion order: re-inserting on use makes it an LRU.
  const cache = new Map<string, Verified>();

  const verify = async (key: string, now: number, call: CallScope | undefined): Promise<Principal> => {
    let entry = cache.get(key);
    if (entry !== undefined && entry.expires > now) {
      cache.delete(key);
      cache.set(key, entry);
      return entry.principal;
    }
    const found = key.length <= maxKeyLength ? await findPrincipalByKey(call ? dbForCall(db, call) : db, key) : undefined;
    if (!found) {
      cache.delete(key);
      throw apiError(Code.Unauthenticated, "unknown or revoked API key", { reason: "API_KEY_INVALID" });
    }
    entry = { principal: found, expires: now + ttl };
    cache.delete(key);
    cache.set(key, entry);
    if (cache.size > max) cache.delete(cache.keys().next().value!);
    return found;
  };

  return {
    async authenticate(headers, scope, call) {
      const header = headers.get("authorization");
      const match = header ? bearer.exec(header) : null;
      if (!match) {
        throw apiError(
          Code.Unauthenticated,
          `missing API key: send the header \`authorization: Bearer <key>\` (${options.missingKeyHint ?? "create a key with `npx modeldeploy keys create --workspace NAME`"})`,
          { reason: "API_KEY_MISSING" },
        );
      }
      const principal = await verify(match[1]!, Date.now(), call);
      if (!principal.scopes.includes(scope)) {
        throw apiError(Code.PermissionDenied, `this API key lacks the scope ${scope}`, {
          reason: "SCOPE_MISSING",
          metadata: { requiredScope: scope, keyScopes: principal.scopes.join(",") },
        });
      }
      return principal;
    },
  };
}

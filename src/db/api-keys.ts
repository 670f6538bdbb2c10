import { createHash, randomBytes } from "node:crypto";
import { newId } from "../domain/ids.js";
import type { Principal } from "../domain/types.js";
import type { Executor } from "./executor.js";

/** Keys are 256-bit random, so a plain SHA-256 is a safe lookup hash. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

export async function createApiKey(db: Executor, input: { workspace: string; principal: string; scopes: string[] }): Promise<{ id: string; key: string }> {
  const id = newId();
  const key = `mdk_${randomBytes(32).toString("base64url")}`;
  await db
    .insertInto("api_keys")
    .values({ id, workspace: input.workspace, principal: input.principal, scopes: input.scopes, key_hash: hashApiKey(key), revoked_at: null })
    .execute();
  return { id, key };
}

export async function findPrincipalByKey(db: Executor, key: string): Promise<Principal | undefined> {
  const row = await db
    .selectFrom("api_keys")
    .select(["workspace", "principal", "scopes"])
    .where("key_hash", "=", hashApiKey(key))
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return row ? { workspace: row.workspace, name: row.principal, scopes: row.scopes } : undefined;
}

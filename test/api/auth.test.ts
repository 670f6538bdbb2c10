// The authenticator's cache of verified keys: a revoked key stops working
// once its entry expires (bounded staleness, cacheTtlMs), entries are
// bounded (least recently used out first), and unknown keys are never cached.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuthenticator } from "../../src/api/auth.js";
import { createApiKey, hashApiKey } from "../../src/db/api-keys.js";
import { createTestDatabase, type TestDatabase } from "../helpers/services.js";

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  await tdb?.drop();
});

const bearer = (key: string) => new Headers({ authorization: `Bearer ${key}` });
const newKey = async (principal: string) => (await createApiKey(tdb.db, { workspace: "acme", principal, scopes: ["deployments:read"] })).key;
const revokeAll = (principal: string) => tdb.db.updateTable("api_keys").set({ revoked_at: new Date() }).where("principal", "=", principal).execute();
const codeOf = (e: unknown) => (e instanceof ConnectError ? e.code : e);

describe("authenticator", () => {
  it("trusts a verified key for cacheTtlMs: a revocation takes effect once the entry expires", async () => {
    const key = await newKey("cached");
    const cached = createAuthenticator(tdb.db, { cacheTtlMs: 600_000 });
    const uncached = createAuthenticator(tdb.db, { cacheTtlMs: 0 });
    expect((await cached.authenticate(bearer(key), "deployments:read")).name).toBe("cached");
    expect((await uncached.authenticate(bearer(key), "deployments:read")).name).toBe("cached");
    await revokeAll("cached");
    // Within its time the cached entry still answers; with no time left the database does.
    expect((await cached.authenticate(bearer(key), "deployments:read")).workspace).toBe("acme");
    expect(codeOf(await uncached.authenticate(bearer(key), "deployments:read").catch((e: unknown) => e))).toBe(Code.Unauthenticated);
  });

  it("keeps at most cacheMax keys, dropping the least recently used", async () => {
    const [a, b, c] = [await newKey("lru-a"), await newKey("lru-b"), await newKey("lru-c")];
    const auth = createAuthenticator(tdb.db, { cacheTtlMs: 600_000, cacheMax: 2 });
    await auth.authenticate(bearer(a), "deployments:read");
    await auth.authenticate(bearer(b), "deployments:read");
    await auth.authenticate(bearer(a), "deployments:read"); // a is now the most recent
    await auth.authenticate(bearer(c), "deployments:read"); // b goes
    await Promise.all([revokeAll("lru-a"), revokeAll("lru-b"), revokeAll("lru-c")]);
    expect((await auth.authenticate(bearer(a), "deployments:read")).name).toBe("lru-a");
    expect((await auth.authenticate(bearer(c), "deployments:read")).name).toBe("lru-c");
    expect(codeOf(await auth.authenticate(bearer(b), "deployments:read").catch((e: unknown) => e))).toBe(Code.Unauthenticated);
  });

  it("never caches an unknown key, and checks the scope on every call", async () => {
    const auth = createAuthenticator(tdb.db, { cacheTtlMs: 600_000 });
    const key = `mdk_${"x".repeat(43)}`;
    expect(codeOf(await auth.authenticate(bearer(key), "deployments:read").catch((e: unknown) => e))).toBe(Code.Unauthenticated);
    // The key exists from now on: the next call finds it.
    await tdb.db
      .insertInto("api_keys")
      .values({ id: "unknown-then-known", workspace: "acme", principal: "late", scopes: ["deployments:read"], key_hash: hashApiKey(key), revoked_at: null })
      .execute();
    expect((await auth.authenticate(bearer(key), "deployments:read")).name).toBe("late");
    const real = await newKey("scoped");
    expect(codeOf(await auth.authenticate(bearer(real), "deployments:write").catch((e: unknown) => e))).toBe(Code.PermissionDenied);
    expect((await auth.authenticate(bearer(real), "deployments:read")).name).toBe("scoped");
  });
});

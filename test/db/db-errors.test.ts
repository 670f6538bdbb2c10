// pg and socket errors turned into domain errors by code (SQLSTATE, errno) or
// by where they arose, never by message text; conflicts retried, then named.
import { describe, expect, it } from "vitest";
import { retryWriteConflicts } from "../../src/db/conflict-retry.js";
import { classifyQueryError, isWriteConflict } from "../../src/db/db-errors.js";
import { DependencyUnavailableError, WriteConflictError } from "../../src/domain/errors.js";

const pgError = (code: string, message = "x") => Object.assign(new Error(message), { code });

describe("classifyQueryError", () => {
  it("makes server shutdowns, connection failures, overload and statement timeouts DependencyUnavailableError(database)", () => {
    for (const code of ["57P01", "57P02", "57P03", "53300", "57014", "08006", "08001", "ECONNREFUSED", "ECONNRESET", "EPIPE"]) {
      const err = classifyQueryError(pgError(code), false);
      expect(err, code).toBeInstanceOf(DependencyUnavailableError);
      expect((err as DependencyUnavailableError).dependency).toBe("database");
      expect((err as Error).cause).toMatchObject({ code });
    }
    expect((classifyQueryError(pgError("57014"), false) as Error).message).toBe("a database statement timed out");
  });

  it("trusts where an error arose, not its text: a connection that died is unavailable, whatever pg says", () => {
    expect(classifyQueryError(new Error("Connection terminated unexpectedly"), true)).toBeInstanceOf(DependencyUnavailableError);
    // The same text on a connection that is fine is not matched.
    const text = new Error("Connection terminated unexpectedly");
    expect(classifyQueryError(text, false)).toBe(text);
  });

  it("passes other errors through for their callers (unique violations, deadlocks)", () => {
    const unique = pgError("23505");
    expect(classifyQueryError(unique, false)).toBe(unique);
    const deadlock = pgError("40P01");
    expect(classifyQueryError(deadlock, false)).toBe(deadlock);
    expect(isWriteConflict(deadlock)).toBe(true);
    expect(isWriteConflict(pgError("40001"))).toBe(true);
    expect(isWriteConflict(unique)).toBe(false);
  });
});

describe("retryWriteConflicts", () => {
  it("runs a statement again after a deadlock, and names the conflict once retries run out", async () => {
    let calls = 0;
    expect(
      await retryWriteConflicts("x", async () => {
        calls++;
        if (calls < 3) throw pgError("40P01");
        return "done";
      }),
    ).toBe("done");
    expect(calls).toBe(3);
    const always = await retryWriteConflicts("a test write", () => Promise.reject(pgError("40001"))).catch((e: unknown) => e);
    expect(always).toBeInstanceOf(WriteConflictError);
    expect((always as Error).message).toBe("a test write collided with concurrent writes 5 times");
    const other = pgError("23505");
    calls = 0;
    await expect(
      retryWriteConflicts("x", async () => {
        calls++;
        throw other;
      }),
    ).rejects.toBe(other);
    expect(calls).toBe(1);
  });
});

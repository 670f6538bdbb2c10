// A deadlock or serialization failure rolls back the whole statement or
// transaction, so running it again is safe and almost always succeeds. Locks
// are taken in one order everywhere (deployment, then task; several
// deployments in uid order), so this is a backstop, not a routine path.
import { WriteConflictError } from "../domain/errors.js";
import { isWriteConflict } from "./db-errors.js";

const ATTEMPTS = 5;

/** Runs `fn` (one statement or one whole transaction) again on 40P01/40001; WriteConflictError once retries run out. */
export async function retryWriteConflicts<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isWriteConflict(err)) throw err;
      if (attempt >= ATTEMPTS) throw new WriteConflictError(`${what} collided with concurrent writes ${ATTEMPTS} times`, { cause: err });
      // Jittered, growing pause so the colliding writers do not meet again.
      await new Promise((r) => setTimeout(r, Math.random() * 10 * 2 ** attempt));
    }
  }
}

// A pg Pool behind a gate that hands out at most `size` connections (as
// GuardedClients, the connections Kysely uses: gated-driver.ts) and keeps its
// own wait queue, because pg-pool's queue is unbounded and deaf to callers
// that gave up. A waiter leaves the queue at once when the call it waits for
// is cancelled or its deadline passes (call-scope.ts), or after
// `waitTimeoutMs`; past
// `maxWaiting` waiters a call fails at once: under overload, fast refusals
// (UNAVAILABLE, retry elsewhere or later) beat everyone waiting long.
import type pg from "pg";
import { watchAbort, type CallScope } from "./call-scope.js";
import { databaseUnavailable } from "./db-errors.js";
import { GuardedClient } from "./guarded-client.js";

export interface PoolGateOptions {
  /** Connections out at once: the pg pool's `max`. */
  size: number;
  /** Callers that may wait for a connection; undefined: no bound. */
  maxWaiting: number | undefined;
  /** Longest wait for a connection. */
  waitTimeoutMs: number;
  /** Client-side limit on one query (see guarded-client.ts); undefined: none. */
  queryTimeoutMs: number | undefined;
}

export interface PoolGate {
  /** A connection; `call`: the call it is for, whose abort ends the wait. */
  connect(call?: CallScope): Promise<GuardedClient>;
  end(): Promise<void>;
  /** Connections out and callers waiting (for tests and diagnostics). */
  stats(): { active: number; waiting: number };
}

interface Waiter {
  resolve(client: GuardedClient | Promise<GuardedClient>): void;
  reject(err: unknown): void;
  /** performance.now() past which the wait fails. */
  deadline: number;
  /** Stops listening for the call's abort. */
  stop: (() => void) | undefined;
}

export function createPoolGate(pool: pg.Pool, o: PoolGateOptions): PoolGate {
  // Insertion-ordered, O(1) removal; every wait is equally long, so the
  // first waiter is always the next to time out: one timer serves them all.
  const waiters = new Set<Waiter>();
  let timer: NodeJS.Timeout | undefined;
  const lost = new WeakSet<pg.ClientBase>();
  const wrappers = new WeakMap<pg.PoolClient, GuardedClient>();
  let active = 0;
  let ended = false;

  // pg-pool listens for 'error' only on idle clients: a checked-out client
  // whose server goes away would emit an unhandled 'error' and end the
  // process. This listener stays for the client's life.
  pool.on("connect", (client) => {
    client.on("error", () => lost.add(client));
    client.on("end", () => lost.add(client));
  });
  // An idle client's error: pg-pool has already removed it.
  pool.on("error", () => {});

  const leave = (w: Waiter) => {
    waiters.delete(w);
    w.stop?.();
  };

  const expire = () => {
    timer = undefined;
    const now = performance.now();
    for (const w of waiters) {
      if (w.deadline > now) break;
      leave(w);
      w.reject(databaseUnavailable(`no database connection free within ${o.waitTimeoutMs} ms (${waiters.size} calls waiting)`));
    }
    armTimer();
  };

  /** The timer for the first waiter's deadline (it may fire early: expire() re-arms). */
  const armTimer = () => {
    if (timer !== undefined) return;
    const first = waiters.values().next();
    if (first.done === true) return;
    timer = setTimeout(expire, Math.max(1, first.value.deadline - performance.now()));
  };

  const releasePermit = () => {
    const next = waiters.values().next();
    if (next.done === true) {
      active--;
      return;
    }
    // The permit passes straight to the longest waiter.
    leave(next.value);
    next.value.resolve(checkout());
  };

  // pg-pool's callback form: no promise of its own (see guarded-client.ts).
  const checkout = () =>
    new Promise<GuardedClient>((resolve, reject) => {
      pool.connect((err, client) => {
        if (err || client === undefined) {
          releasePermit();
          reject(databaseUnavailable("cannot connect to the database", err));
          return;
        }
        let guarded = wrappers.get(client);
        if (guarded === undefined) {
          guarded = new GuardedClient(client, o.queryTimeoutMs, lost, releasePermit);
          wrappers.set(client, guarded);
        }
        resolve(guarded);
      });
    });

  const wait = (call: CallScope | undefined) =>
    new Promise<GuardedClient>((resolve, reject) => {
      const w: Waiter = { resolve, reject, deadline: performance.now() + o.waitTimeoutMs, stop: undefined };
      if (call !== undefined) {
        // Only a caller that must wait looks at its call (its signal may be created on first read).
        let gone = false;
        w.stop = watchAbort(call, (reason) => {
          gone = true;
          leave(w);
          reject(reason);
        });
        if (gone) return;
      }
      if (o.maxWaiting !== undefined && waiters.size >= o.maxWaiting) {
        w.stop?.();
        reject(databaseUnavailable(`database busy: ${waiters.size} calls waiting`));
        return;
      }
      waiters.add(w);
      armTimer();
    });

  return {
    connect(call) {
      if (ended) return Promise.reject(databaseUnavailable("the database pool is closed"));
      if (active < o.size) {
        active++;
        return checkout();
      }
      return wait(call);
    },
    async end() {
      ended = true;
      clearTimeout(timer);
      for (const w of [...waiters]) {
        leave(w);
        w.reject(databaseUnavailable("the database pool is closed"));
      }
      await pool.end();
    },
    stats: () => ({ active, waiting: waiters.size }),
  };
}

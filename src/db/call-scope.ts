// The API call a piece of database work is done for, carried implicitly
// (AsyncLocalStorage) from the API's call wrapper down to the pool gate, so
// that a call that was cancelled or ran past its deadline stops waiting for a
// connection. Work outside a call (worker, relay, sweeper) has no scope.
import { AsyncLocalStorage } from "node:async_hooks";

export interface CallScope {
  /** Aborted when the call is cancelled or its deadline passes. Read it only when about to wait: it may be created lazily. */
  readonly signal: AbortSignal;
}

const storage = new AsyncLocalStorage<CallScope>();

/** Runs `fn` (and everything it starts) on behalf of a call. */
export function runInCallScope<T>(scope: CallScope, fn: () => T): T {
  return storage.run(scope, fn);
}

export function currentCallScope(): CallScope | undefined {
  return storage.getStore();
}

/** Runs `fn` on behalf of no call: shared work (a batch of many calls' writes) must not die with one of them. */
export function outsideCallScope<T>(fn: () => T): T {
  return storage.exit(fn);
}

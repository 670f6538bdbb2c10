// The API call a piece of database work is done for, passed explicitly
// (dbForCall in connect.ts, Coalescer.run), so that a call that was
// cancelled or ran past its deadline stops waiting for a connection or for
// a batch. Work outside a call (worker, relay, sweeper, a batch of many
// calls' writes) passes none.
//
// It used to travel implicitly in an AsyncLocalStorage. On Node 20 that
// installs promise hooks for every promise in the process once used; taking
// it out cut ~10-20 % of the API's CPU per gRPC GetDeployment here.
export interface CallScope {
  /** Aborted when the call is cancelled or its deadline passes. Read it only when about to wait: it may be created lazily. */
  readonly signal: AbortSignal;
  /**
   * Optional, the cheap way to wait on the call: `listener` runs once, with
   * the reason, when the call is aborted (at once if it already is); returns
   * a function that stops listening. A scope whose signal is made on first
   * read offers it so that a wait need not make one (an AbortController plus
   * an abort listener cost ~15 µs per waiting call on this machine).
   */
  onAbort?(listener: (reason: unknown) => void): () => void;
}

/** Runs `gone` once when the call is aborted (at once if it already is); returns a function that stops listening. */
export function watchAbort(call: CallScope, gone: (reason: unknown) => void): () => void {
  if (call.onAbort !== undefined) return call.onAbort(gone);
  const signal = call.signal;
  if (signal.aborted) {
    gone(signal.reason);
    return () => {};
  }
  const onAbort = () => gone(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

// The API call a piece of database work is done for, passed explicitly
// (dbForCall in connect.ts, WriteCoalescer.write), so that a call that was
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
}

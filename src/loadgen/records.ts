// What the load generator writes, one JSON object per line: every call with
// its outcome, and every watch event and stream change. The fault suite reads
// these back and checks them against Postgres.

/** A gRPC status by its canonical name ("OK", "UNAVAILABLE", …). */
export type StatusName = string;

export interface CallRecord {
  kind: "call";
  op: "create" | "delete" | "get";
  /** Start, ms since the epoch. */
  t: number;
  /** Duration, ms. */
  ms: number;
  target: string;
  code: StatusName;
  /** The deployment's name (known before the call: the suffix is chosen here). */
  name: string;
  /** The task the call returned; "" unless OK (and for get). */
  taskId: string;
  requestId: string;
  /** 1 for the first try of a request id, 2 for its first retry, … */
  try: number;
  message?: string;
}

export interface EventRecord {
  kind: "event";
  t: number;
  /** Which watch (one per watched deployment, across its resumes). */
  watch: number;
  name: string;
  uid: string;
  sequence: number;
  type: string;
}

export interface WatchRecord {
  kind: "watch";
  t: number;
  watch: number;
  name: string;
  /** open: a stream is (re)opened; drop: it ended or failed before DELETED; done: DELETED seen. */
  what: "open" | "drop" | "done";
  afterSequence?: number;
  code?: StatusName;
  message?: string;
  target?: string;
}

export type LoadRecord = CallRecord | EventRecord | WatchRecord;

/** Printed on stdout (one JSON line) once a drain has finished. */
export interface DrainSummary {
  drained: true;
  creates: number;
  createdOk: number;
  deletedOk: number;
  /** Deployments created OK whose delete never got OK (or NOT_FOUND) before the drain deadline. */
  undeleted: string[];
  /** Watched deployments whose stream never saw DELETED before the drain deadline. */
  openWatches: string[];
}

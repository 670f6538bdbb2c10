// The runtime driver: how a worker carries out a task on some runtime (this
// host's processes, a Kubernetes cluster, or nothing at all for benchmarks).
// Every method is idempotent so that a redelivered task can resume.

export type RuntimeFailureReason =
  "WEIGHTS_NOT_FOUND" | "WEIGHTS_DOWNLOAD_FAILED" | "WEIGHTS_CHECKSUM_MISMATCH" | "INSUFFICIENT_RESOURCES" | "SERVER_EXITED" | "INVALID_SPEC" | "INTERNAL";

/** The one error type a driver throws; the worker maps it to a task Failure. */
export class RuntimeError extends Error {
  override readonly name = "RuntimeError";
  constructor(
    readonly reason: RuntimeFailureReason,
    message: string,
    readonly options: { retryable?: boolean; exitCode?: number; logTail?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
  get retryable(): boolean {
    return this.options.retryable ?? false;
  }
}

export interface ModelSpec {
  name: string;
  revision: string;
  uri: string;
  /** Lowercase hex, or "" when not given. */
  sha256: string;
  task: string;
  type: string;
  runtime: string;
  /**
   * Access token for private weights: prepareWeights sends it as
   * `Authorization: Bearer` on http(s) downloads. A driver never logs it,
   * never puts it in an error, and never passes it on with the spec.
   */
  token?: string;
}

export interface ResourceSpec {
  acceleratorType: string;
  acceleratorCount: number;
  cpu: number;
  memoryBytes: number;
  threadCount: number;
  maxBatchSize: number;
}

export interface RevisionSpec {
  deploymentUid: string;
  workspace: string;
  deploymentName: string;
  revision: number;
  model: ModelSpec;
  resources: ResourceSpec;
  /** Replicas to run for this revision. */
  replicas: number;
  /**
   * Set when the deployment may scale to zero (minReplicas 0): at 0 replicas
   * after scaleRevision, a request starts one replica and is held up to this
   * long for it (then 503 with Retry-After). Absent: 0 replicas is stopped.
   */
  wakeTimeoutMs?: number;
}

/** One revision's share of a deployment's requests; the shares add up to 100. */
export interface TrafficShare {
  revision: number;
  percent: number;
}

/** What the gateway counted for one revision since the runtime started. */
export interface RevisionTraffic {
  revision: number;
  /** Requests answered (any status), counted when the answer ends; a client that went away first counts for none. */
  requests: number;
  /**
   * Of those, failed: a 5xx answer (the replica's, or the gateway's own for
   * this revision: no ready replica, stopped, not woken in time), a refused
   * or reset connection, an answer broken off, a timeout.
   */
  failures: number;
}

/** The gateway's counts for one deployment; all cumulative since `epoch`. */
export interface DeploymentTraffic {
  deploymentUid: string;
  /** Changes when the runtime restarts (its counters start again from 0). */
  epoch: string;
  /** Requests in flight now, held ones (waiting for a wake) included. */
  inFlight: number;
  /** ∫ inFlight dt in request·seconds: the mean in-flight over a window is its difference over the window's length. */
  inFlightSeconds: number;
  /** Requests that arrived (readiness probes of the endpoint are not counted). */
  arrivals: number;
  revisions: RevisionTraffic[];
}

export interface PreparedWeights {
  /** Local path of the model file, inside the content-addressed cache. */
  path: string;
  sha256: string;
  bytes: number;
}

export interface DownloadProgress {
  bytesDone: number;
  /** 0 when unknown. */
  bytesTotal: number;
}

export interface ReplicaCounts {
  desired: number;
  /** Replicas that pass their health check now. */
  ready: number;
  /** Replicas started but not ready yet. */
  pending: number;
  /** Restarts after a crash since the revision started. */
  restarts: number;
}

export interface RevisionStatus extends ReplicaCounts {
  /** Set when a replica exited before it ever became ready. */
  exited?: { exitCode: number | null; signal: string | null; logTail: string };
}

export interface DeploymentObservation {
  deploymentUid: string;
  /** Revision the route sends traffic to, 0 when none (during a split: the revision that served before it). */
  servingRevision: number;
  /** Set while at least one replica of the serving revision is ready. */
  endpointUrl: string;
  instances: ReplicaCounts;
}

/** What the host the runtime places replicas on has, for the API's capacity check. */
export interface HostCapacity {
  cpu: number;
  memoryBytes: number;
}

export interface RuntimeDriver {
  readonly name: string;
  /** switchTraffic takes effect at once, with nothing to watch meanwhile (the no-op runtime): no SWITCHING_TRAFFIC phase is recorded before it. */
  readonly switchesAtOnce?: boolean;
  /** The host's capacity; absent: the runtime has no fixed host (no check). */
  capacity?(): Promise<HostCapacity>;
  /** Fetch the weights into the cache (a cache hit reports all bytes at once). */
  prepareWeights(spec: RevisionSpec, onProgress: (p: DownloadProgress) => void, signal?: AbortSignal): Promise<PreparedWeights>;
  /** Start (or keep running) spec.replicas replicas of the revision. */
  startRevision(spec: RevisionSpec, weights: PreparedWeights): Promise<void>;
  revisionStatus(deploymentUid: string, revision: number): Promise<RevisionStatus>;
  /**
   * A long-poll of revisionStatus: answers as soon as the status differs from
   * `previous` (any count, or `exited`), else with the current status after
   * about `timeoutMs`. Aborting `signal` ends the wait on both sides and
   * rejects with its reason. Optional: without it a caller polls revisionStatus.
   */
  waitRevisionStatus?(
    deploymentUid: string,
    revision: number,
    previous: RevisionStatus,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<RevisionStatus>;
  /** Point the deployment's route at the revision; returns the endpoint URL. */
  switchTraffic(spec: RevisionSpec): Promise<string>;
  /**
   * Split the deployment's requests between started revisions, chosen per
   * request by weight (a canary step). `spec` names the deployment and the
   * revision being rolled out. switchTraffic(spec) is the split
   * [{revision: spec.revision, percent: 100}]. Returns the endpoint URL.
   */
  splitTraffic(spec: RevisionSpec, shares: TrafficShare[]): Promise<string>;
  /** The gateway's counts for the deployment; undefined when it has no route. */
  trafficStats(deploymentUid: string): Promise<DeploymentTraffic | undefined>;
  /**
   * Set a started revision's replica count (the autoscaler). At 0 a revision
   * whose spec has wakeTimeoutMs is idle: the next request wakes it.
   */
  scaleRevision(deploymentUid: string, revision: number, replicas: number): Promise<void>;
  /** Stop a revision's replicas after draining in-flight requests; a stopped revision does not wake on request. */
  stopRevision(deploymentUid: string, revision: number): Promise<void>;
  /**
   * Remove the route (the endpoint then answers 404) and every revision of the
   * deployment. Afterwards startRevision for that uid fails, so a late worker
   * cannot bring a deleted deployment back.
   */
  release(deploymentUid: string): Promise<void>;
  /** What runs now, for the observer that keeps instances honest. */
  observe(): Promise<DeploymentObservation[]>;
  close(): Promise<void>;
}

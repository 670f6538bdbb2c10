// The domain's own vocabulary; the API layer maps it to and from protobuf.

export const DEPLOYMENT_STATES = [
  "PENDING",
  "INITIALIZING",
  "DOWNLOADING",
  "DEPLOYING",
  "RUNNING",
  "UPDATING",
  "ROLLING_BACK",
  "STOPPED",
  "FAILED",
  "DELETING",
  "DELETED",
  "IDLE",
] as const;
export type DeploymentState = (typeof DEPLOYMENT_STATES)[number];

export const TASK_KINDS = ["DEPLOY", "UPDATE", "SCALE", "ROLLBACK", "DELETE"] as const;
export type TaskKind = (typeof TASK_KINDS)[number];

export const TASK_STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const TASK_PHASES = [
  "QUEUED",
  "VALIDATING",
  "DOWNLOADING",
  "STARTING",
  "HEALTH_CHECKING",
  "SWITCHING_TRAFFIC",
  "DRAINING",
  "RELEASING",
  "DONE",
] as const;
export type TaskPhase = (typeof TASK_PHASES)[number];

export const FAILURE_REASONS = [
  "INVALID_SPEC",
  "WEIGHTS_NOT_FOUND",
  "WEIGHTS_DOWNLOAD_FAILED",
  "WEIGHTS_CHECKSUM_MISMATCH",
  "INSUFFICIENT_RESOURCES",
  "SERVER_EXITED",
  "HEALTH_CHECK_TIMEOUT",
  "PROGRESS_DEADLINE_EXCEEDED",
  "CANCELLED",
  "INTERNAL",
  "CANARY_FAILED",
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export const MODEL_TYPES = ["UNSPECIFIED", "LLM", "EMBEDDING", "LORA", "TTS", "LEGACY"] as const;
export type ModelType = (typeof MODEL_TYPES)[number];

export const EVENT_TYPES = ["SNAPSHOT", "STATE_CHANGED", "PROGRESS", "TASK_FINISHED", "DELETED", "SCALED"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const TERMINAL_TASK_STATUSES: readonly TaskStatus[] = ["COMPLETED", "FAILED", "CANCELLED"];

export function isTerminalStatus(status: TaskStatus): boolean {
  return TERMINAL_TASK_STATUSES.includes(status);
}

export interface ModelSource {
  name: string;
  revision: string;
  uri: string;
  sha256: string;
  task: string;
  type: ModelType;
  runtime: string;
  /**
   * The access token for private weights, sealed (src/secrets/token-seal.ts),
   * or "" when none. The plaintext never enters the domain: rows, events, logs
   * and errors can only ever hold this ciphertext.
   */
  tokenSealed: string;
  /** A keyed digest of the token ("" when none): equal tokens compare equal although each sealing differs. */
  tokenDigest: string;
}

/**
 * A model as compared for sameness (a repeated request, an update that
 * changes nothing): each sealing differs, the digest does not. Without a
 * token it is the model as it was before tokens existed (same request hashes).
 */
export function comparableModel(m: ModelSource): Partial<ModelSource> {
  const { tokenSealed: _sealed, tokenDigest, ...rest } = m;
  return tokenDigest ? { ...rest, tokenDigest } : rest;
}

/** Rows written before tokens existed have no token fields. */
export function withTokenDefaults(m: ModelSource): ModelSource {
  return { ...m, tokenSealed: m.tokenSealed ?? "", tokenDigest: m.tokenDigest ?? "" };
}

export interface Resources {
  acceleratorType: string;
  acceleratorCount: number;
  cpu: number;
  memory: string;
  threadCount: number;
  maxBatchSize: number;
}

export interface Scaling {
  minReplicas: number;
  maxReplicas: number;
  /** In-flight requests per ready replica the autoscaler aims for. */
  targetInFlight: number;
  /** How long load must stay low before a replica goes (with minReplicas 0: before IDLE). */
  scaleDownDelaySeconds: number;
  /** How long a request to an IDLE deployment is held while it wakes. */
  wakeTimeoutSeconds: number;
}

export const SCALING_DEFAULTS = { targetInFlight: 4, scaleDownDelaySeconds: 60, wakeTimeoutSeconds: 60 } as const;

/** A scaling with the autoscaler's fields filled in (0 or absent: the default); rows from before them have none. */
export function withScalingDefaults(s: Pick<Scaling, "minReplicas" | "maxReplicas"> & Partial<Scaling>): Scaling {
  return {
    minReplicas: s.minReplicas,
    maxReplicas: s.maxReplicas,
    targetInFlight: s.targetInFlight || SCALING_DEFAULTS.targetInFlight,
    scaleDownDelaySeconds: s.scaleDownDelaySeconds || SCALING_DEFAULTS.scaleDownDelaySeconds,
    wakeTimeoutSeconds: s.wakeTimeoutSeconds || SCALING_DEFAULTS.wakeTimeoutSeconds,
  };
}

/** The autoscaler moves the replica count between min and max. */
export function isAutoscaled(s: Pick<Scaling, "minReplicas" | "maxReplicas">): boolean {
  return s.maxReplicas > 0 && s.minReplicas < s.maxReplicas;
}

/** With minReplicas 0 the autoscaler may stop the last replica, and a request wakes it: how long it is held meanwhile. */
export function wakeTimeoutMs(s: Scaling): number | undefined {
  return s.minReplicas === 0 && isAutoscaled(s) ? s.wakeTimeoutSeconds * 1000 : undefined;
}

/** One revision's share of a deployment's requests. */
export interface TrafficTarget {
  revision: number;
  percent: number;
}

export type RolloutStrategy = "ALL_AT_ONCE" | "CANARY";

export interface RolloutStep {
  percent: number;
  pauseSeconds: number;
}

/** How an UPDATE or ROLLBACK moves traffic to its revision (defaults filled in). */
export interface Rollout {
  strategy: RolloutStrategy;
  steps: RolloutStep[];
  maxErrorRate: number;
  minRequests: number;
}

export const ROLLOUT_DEFAULTS = { maxErrorRate: 0.01, minRequests: 20 } as const;

export const ALL_AT_ONCE: Rollout = {
  strategy: "ALL_AT_ONCE",
  steps: [],
  maxErrorRate: ROLLOUT_DEFAULTS.maxErrorRate,
  minRequests: ROLLOUT_DEFAULTS.minRequests,
};

export interface Instances {
  desired: number;
  ready: number;
  pending: number;
  restarts: number;
}

export interface Failure {
  reason: FailureReason;
  message: string;
  exitCode?: number;
  logTail?: string;
  retryable: boolean;
  /** RFC 3339. */
  time: string;
}

export interface Deployment {
  uid: string;
  workspace: string;
  name: string;
  state: DeploymentState;
  model: ModelSource;
  resources: Resources;
  scaling: Scaling;
  failure: Failure | null;
  instances: Instances;
  endpointUrl: string;
  servingRevision: number;
  targetRevision: number;
  activeTaskId: string | null;
  labels: Record<string, string>;
  creator: string;
  modifier: string;
  createTime: Date;
  updateTime: Date;
  sequence: number;
  /** The split in force; empty when nothing serves. */
  traffic: TrafficTarget[];
}

export interface TaskProgress {
  percent: number;
  bytesDone: number;
  bytesTotal: number;
  replicasReady: number;
  replicasDesired: number;
  message: string;
  /** During a canary: the step in force (1-based) and how many; 0 otherwise. */
  rolloutStep: number;
  rolloutSteps: number;
}

export interface TaskResult {
  deploymentId: string;
  endpointUrl: string;
  revision: number;
}

export interface Task {
  id: string;
  workspace: string;
  deploymentUid: string;
  deploymentName: string;
  kind: TaskKind;
  revision: number;
  status: TaskStatus;
  phase: TaskPhase;
  progress: TaskProgress;
  result: TaskResult | null;
  failure: Failure | null;
  rolledBack: boolean;
  attempt: number;
  requestId: string;
  creator: string;
  createTime: Date;
  startTime: Date | null;
  endTime: Date | null;
  progressDeadline: Date | null;
  deadlineSeconds: number;
  /** The scaling the task puts in force when it completes; null: unchanged. */
  scaling: Scaling | null;
  /** UPDATE and ROLLBACK: how traffic moves; null for other kinds. */
  rollout: Rollout | null;
}

export interface DeploymentEvent {
  deploymentUid: string;
  workspace: string;
  sequence: number;
  /** Workspace-wide position, as a decimal string. */
  cursor: string;
  time: Date;
  type: EventType;
  deployment: Deployment;
  task: Task | null;
  /** Why, when no task says it (an autoscaler change's reason); "" otherwise. */
  message: string;
}

export interface Principal {
  workspace: string;
  /** Who acts: recorded as creator/modifier. */
  name: string;
  scopes: readonly string[];
}

export const SCOPES = ["deployments:read", "deployments:write"] as const;
export type Scope = (typeof SCOPES)[number];

export function emptyProgress(): TaskProgress {
  return { percent: 0, bytesDone: 0, bytesTotal: 0, replicasReady: 0, replicasDesired: 0, message: "", rolloutStep: 0, rolloutSteps: 0 };
}

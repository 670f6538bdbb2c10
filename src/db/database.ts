// Table types for Kysely: one interface per table, gathered in Database.
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from "kysely";
import type {
  DeploymentState,
  EventType,
  Failure,
  Instances,
  ModelSource,
  Resources,
  Rollout,
  Scaling,
  TaskKind,
  TaskPhase,
  TaskProgress,
  TaskResult,
  TaskStatus,
  TrafficTarget,
} from "../domain/types.js";

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** jsonb: objects in, parsed objects out. */
type Json<T> = ColumnType<T, T | string, T | string>;
/** Rows written before the autoscaler's fields have only min and max (mappers.ts fills in the rest). */
type StoredScaling = Pick<Scaling, "minReplicas" | "maxReplicas"> & Partial<Scaling>;
/** A nullable jsonb column added later: optional on insert. */
type OptionalJson<T> = ColumnType<T | null, T | string | null | undefined, T | string | null>;

export interface ApiKeysTable {
  id: string;
  workspace: string;
  principal: string;
  scopes: string[];
  key_hash: string;
  created_at: Generated<Timestamp>;
  revoked_at: Timestamp | null;
}

export interface DeploymentsTable {
  uid: string;
  workspace: string;
  name: string;
  state: DeploymentState;
  model: Json<ModelSource>;
  resources: Json<Resources>;
  scaling: Json<StoredScaling>;
  failure: Json<Failure> | null;
  instances: Json<Instances>;
  endpoint_url: string;
  serving_revision: number;
  target_revision: number;
  active_task_id: string | null;
  labels: Json<Record<string, string>>;
  creator: string;
  modifier: string;
  create_time: Timestamp;
  update_time: Timestamp;
  sequence: number;
  /** The split a canary put in force; null: all traffic to the serving revision (see mappers.ts). */
  traffic: OptionalJson<TrafficTarget[]>;
}

export interface RevisionsTable {
  deployment_uid: string;
  number: number;
  model: Json<ModelSource>;
  resources: Json<Resources>;
  task_id: string;
  create_time: Timestamp;
}

export interface TasksTable {
  id: string;
  workspace: string;
  deployment_uid: string;
  deployment_name: string;
  kind: TaskKind;
  revision: number;
  status: TaskStatus;
  phase: TaskPhase;
  progress: Json<TaskProgress>;
  result: Json<TaskResult> | null;
  failure: Json<Failure> | null;
  rolled_back: boolean;
  attempt: number;
  lease_owner: string | null;
  lease_expires_at: Timestamp | null;
  request_id: string;
  request_hash: string;
  creator: string;
  create_time: Timestamp;
  start_time: Timestamp | null;
  end_time: Timestamp | null;
  deadline_seconds: number;
  progress_deadline: Timestamp | null;
  enqueue_count: number;
  enqueued_at: Timestamp;
  /** The scaling the task puts in force; null: unchanged. */
  scaling: Json<StoredScaling> | null;
  /** UPDATE, ROLLBACK: how traffic moves; null for other kinds (and rows from before rollouts). */
  rollout: OptionalJson<Rollout>;
}

export interface EventsTable {
  cursor: ColumnType<string, never, never>;
  deployment_uid: string;
  sequence: number;
  workspace: string;
  time: Timestamp;
  type: EventType;
  deployment: Json<Record<string, unknown>>;
  task: Json<Record<string, unknown>> | null;
  /** Why, when no task says it (an autoscaler change). */
  message: ColumnType<string, string | undefined, string>;
  /** The writing transaction (xid8, as text); set by the database. */
  txid: ColumnType<string, never, never>;
}

export interface OutboxTable {
  id: Generated<string>;
  task_id: string;
  msg_id: string;
  created_at: Generated<Timestamp>;
  /** Headers for the task's message from the call that queued it (x-request-id, traceparent, tracestate). */
  call_context: ColumnType<Record<string, string> | null, string | null | undefined, string | null>;
}

export interface HostCapacityTable {
  runtime: string;
  cpu: number;
  /** bigint: pg returns it as text. */
  memory_bytes: ColumnType<string, number, number>;
  reported_at: ColumnType<Date, never, string>;
}

export interface Database {
  api_keys: ApiKeysTable;
  deployments: DeploymentsTable;
  revisions: RevisionsTable;
  tasks: TasksTable;
  events: EventsTable;
  outbox: OutboxTable;
  host_capacity: HostCapacityTable;
}

export type DeploymentRow = Selectable<DeploymentsTable>;
export type NewDeploymentRow = Insertable<DeploymentsTable>;
export type DeploymentPatch = Updateable<DeploymentsTable>;
export type TaskRow = Selectable<TasksTable>;
export type NewTaskRow = Insertable<TasksTable>;
export type TaskPatch = Updateable<TasksTable>;
export type EventRow = Selectable<EventsTable>;
export type RevisionRow = Selectable<RevisionsTable>;

import { sql } from "kysely";
import type { DeploymentState } from "../domain/types.js";
import { executePreparedSql, type Db } from "./connect.js";
import type { DeploymentRow } from "./database.js";
import type { Executor, Trx } from "./executor.js";

// The hottest read (every GetDeployment): fixed text, so no query is built
// or compiled per call, run as a prepared statement.
const findByNameSql = `select * from deployments where workspace = $1 and name = $2 order by state = 'DELETED', create_time desc limit 1`;

/** The live deployment of that name, else the most recent deleted one. */
export async function findDeploymentByName(db: Executor, workspace: string, name: string): Promise<DeploymentRow | undefined> {
  const rows = await executePreparedSql<DeploymentRow>(db, findByNameSql, [workspace, name]);
  return rows[0];
}

export async function findDeploymentByUid(db: Executor, uid: string): Promise<DeploymentRow | undefined> {
  return db.selectFrom("deployments").selectAll().where("uid", "=", uid).executeTakeFirst();
}

/** Many deployments by uid in one query (no locks). */
export async function findDeploymentsByUids(db: Executor, uids: readonly string[]): Promise<DeploymentRow[]> {
  if (uids.length === 0) return [];
  return db
    .selectFrom("deployments")
    .selectAll()
    .where("uid", "=", sql<string>`any(${[...uids]}::text[])`)
    .execute();
}

/** The row, locked until the transaction ends. */
export async function lockDeployment(trx: Trx, uid: string): Promise<DeploymentRow | undefined> {
  return trx.selectFrom("deployments").selectAll().where("uid", "=", uid).forUpdate().executeTakeFirst();
}

export interface ListDeploymentsQuery {
  workspace: string;
  /** Empty: every state but DELETED. */
  states: DeploymentState[];
  labels: Record<string, string>;
  /** Keyset: uids are time-ordered and immutable, so pages neither repeat nor skip. */
  afterUid: string | undefined;
  limit: number;
}

export async function listDeployments(db: Db, q: ListDeploymentsQuery): Promise<DeploymentRow[]> {
  let query = db.selectFrom("deployments").selectAll().where("workspace", "=", q.workspace);
  query = q.states.length > 0 ? query.where("state", "in", q.states) : query.where("state", "<>", "DELETED");
  if (Object.keys(q.labels).length > 0) query = query.where(sql<boolean>`labels @> ${JSON.stringify(q.labels)}::jsonb`);
  if (q.afterUid !== undefined) query = query.where("uid", ">", q.afterUid);
  return query.orderBy("uid").limit(q.limit).execute();
}

/** Accelerators of this type held by live deployments (count × max replicas), but for `exceptUid`'s. */
export async function acceleratorsInUse(db: Executor, acceleratorType: string, exceptUid = ""): Promise<number> {
  const row = await db
    .selectFrom("deployments")
    .select(sql<string>`coalesce(sum((resources->>'acceleratorCount')::int * greatest((scaling->>'maxReplicas')::int, 1)), 0)`.as("used"))
    .where("state", "not in", ["DELETED", "FAILED"])
    .where(sql<boolean>`resources->>'acceleratorType' = ${acceleratorType}`)
    .where("uid", "<>", exceptUid)
    .executeTakeFirst();
  return Number(row?.used ?? 0);
}

/** Accelerators held by live deployments, by type (types nobody holds are absent). */
export async function acceleratorsInUseByType(db: Executor): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom("deployments")
    .select(sql<string>`resources->>'acceleratorType'`.as("type"))
    .select(sql<string>`sum((resources->>'acceleratorCount')::int * greatest((scaling->>'maxReplicas')::int, 1))`.as("used"))
    .where("state", "not in", ["DELETED", "FAILED"])
    .where(sql<boolean>`resources->>'acceleratorType' <> ''`)
    .groupBy(sql`resources->>'acceleratorType'`)
    .execute();
  return new Map(rows.map((r) => [r.type, Number(r.used)]));
}

/** Deployments the autoscaler tends: serving, no task running, scaling with room between min and max. */
export async function findAutoscaledDeployments(db: Executor): Promise<DeploymentRow[]> {
  return db
    .selectFrom("deployments")
    .selectAll()
    .where("state", "in", ["RUNNING", "IDLE"])
    .where("active_task_id", "is", null)
    .where("serving_revision", ">", 0)
    .where(sql<boolean>`(scaling->>'maxReplicas')::int > greatest((scaling->>'minReplicas')::int, 0)`)
    .execute();
}

// Reads by name, one at a time and many in one statement: the batched read
// answers each name exactly as the single read does (live before deleted,
// newest deleted, nothing across workspaces), in the order asked.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { newDeploymentRows } from "../../src/bench/baselines/new-deployment.js";
import { insertNewDeployments } from "../../src/db/create-deployment.js";
import { createDeploymentNameReader, findDeploymentByName, findDeploymentsByNames, type DeploymentName } from "../../src/db/deployments.js";
import { createTestDatabase, type TestDatabase } from "../helpers/services.js";

let tdb: TestDatabase;

/** A deployment named `name` in `workspace`, deleted when asked; returns its uid. */
async function deployment(workspace: string, name: string, deleted = false): Promise<string> {
  const rows = newDeploymentRows({ workspace, modelName: "acme/reads", replicas: 1 });
  rows.deployment.name = name;
  rows.task.deploymentName = name;
  const [result] = await insertNewDeployments(tdb.db, [rows]);
  if (result === "NAME_TAKEN") throw new Error(`${workspace}/${name} is taken`);
  if (deleted) await sql`update deployments set state = 'DELETED' where uid = ${rows.deployment.uid}`.execute(tdb.db);
  return rows.deployment.uid;
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  await deployment("acme", "alone");
  await deployment("acme", "reborn", true);
  await deployment("acme", "reborn");
  await deployment("acme", "gone", true);
  await deployment("acme", "gone", true);
  await deployment("other", "theirs");
});

afterAll(async () => {
  await tdb?.drop();
});

const asked: DeploymentName[] = [
  { workspace: "acme", name: "reborn" },
  { workspace: "acme", name: "nothing" },
  { workspace: "acme", name: "alone" },
  { workspace: "acme", name: "theirs" },
  { workspace: "acme", name: "gone" },
  { workspace: "other", name: "theirs" },
  { workspace: "acme", name: "reborn" },
];

describe("deployments by name", () => {
  it("answers many names in one statement as one read each would, in order", async () => {
    const one = await Promise.all(asked.map((n) => findDeploymentByName(tdb.db, n.workspace, n.name)));
    const many = await findDeploymentsByNames(tdb.db, asked);
    expect(many).toEqual(one);
    expect(many.map((r) => r && `${r.workspace}/${r.name} ${r.state}`)).toEqual([
      "acme/reborn PENDING",
      undefined,
      "acme/alone PENDING",
      undefined,
      "acme/gone DELETED",
      "other/theirs PENDING",
      "acme/reborn PENDING",
    ]);
    // Of two deleted ones, the newer.
    const gone = await tdb.db.selectFrom("deployments").select(["uid"]).where("name", "=", "gone").orderBy("create_time", "desc").execute();
    expect(many[4]!.uid).toBe(gone[0]!.uid);
  });

  it("joins concurrent reads and gives each its own answer", async () => {
    const reader = createDeploymentNameReader(tdb.db, 5000);
    const names = Array.from({ length: 50 }, (_, i) => asked[i % asked.length]!);
    const answers = await Promise.all(names.map((n) => reader.run(n)));
    const expected = await findDeploymentsByNames(tdb.db, names);
    expect(answers).toEqual(expected);
  });
});

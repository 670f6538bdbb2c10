// The API's GetDeployment query and answer, done by hand with pg for the bare
// servers: the same SQL, the same row-to-message conversion, nothing else.
import pg from "pg";
import { deploymentToPb } from "../../api/convert.js";
import type { DeploymentRow } from "../../db/database.js";
import { toDeployment } from "../../db/mappers.js";
import type { Deployment } from "../../gen/modeldeploy/v1/resources_pb.js";

const SQL = `select * from deployments where workspace = $1 and name = $2 order by state = 'DELETED', create_time desc limit 1`;

export function createDeploymentReader(url: string, poolMax: number): { get(name: string): Promise<Deployment | undefined>; close(): Promise<void> } {
  const pool = new pg.Pool({ connectionString: url, max: poolMax });
  pool.on("error", () => {});
  return {
    async get(name) {
      const r = await pool.query<DeploymentRow>({ name: "get-deployment", text: SQL, values: ["bench", name] });
      const row = r.rows[0];
      return row ? deploymentToPb(toDeployment(row)) : undefined;
    },
    close: () => pool.end(),
  };
}

import type { Api } from "./api.js";
import { ErrorBox } from "./error-box.js";
import { modelLabel, stateName, stateTone } from "./format.js";
import { Link } from "./link.js";
import { isActive, Progress } from "./progress.js";
import { deploymentPath } from "./router.js";
import { useWorkspace } from "./watch-workspace.js";

/** Every deployment of the workspace, changing live (WatchDeployments). */
export function DeploymentList({ api, onCallError }: { api: Api; onCallError: (err: unknown) => void }) {
  const { rows, live, loaded, error } = useWorkspace(api, onCallError);
  return (
    <section>
      <div class="title">
        <h1>Deployments</h1>
        <span class={live ? "live on" : "live"}>{live ? "live" : loaded ? "reconnecting…" : "connecting…"}</span>
        <Link href="/new" class="button">
          New deployment
        </Link>
      </div>
      <ErrorBox error={error} />
      {loaded && rows.length === 0 ? (
        <p class="empty">No deployments yet.</p>
      ) : (
        <table class="deployments">
          <thead>
            <tr>
              <th>name</th>
              <th>state</th>
              <th>model</th>
              <th>revision</th>
              <th>replicas</th>
              <th>activity</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ deployment: d, task }) => (
              <tr key={d.name} data-name={d.name}>
                <td>
                  <Link href={deploymentPath(d.name)}>{d.name}</Link>
                </td>
                <td>
                  <span class={`state ${stateTone(d.state)}`}>{stateName(d.state)}</span>
                </td>
                <td>{modelLabel(d.model)}</td>
                <td>
                  {d.servingRevision || "–"}
                  {d.targetRevision !== d.servingRevision && d.targetRevision > 0 ? ` → ${d.targetRevision}` : ""}
                </td>
                <td class="replicas">
                  {d.instances?.ready ?? 0}/{d.instances?.desired ?? 0}
                </td>
                <td>{isActive(task) && task.id === d.activeTaskId ? <Progress task={task} compact /> : d.failure ? d.failure.message : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

import { DeploymentState, type Deployment } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import type { Api } from "./api.js";
import { CancelButton, DeleteButton, RollbackForm, ScaleForm, UpdateForm } from "./deployment-actions.js";
import { ErrorBox } from "./error-box.js";
import { FailureView } from "./failure-view.js";
import { modelLabel, resourcesLabel, scalingLabel, stateName, stateTone, time, trafficOf } from "./format.js";
import { Link } from "./link.js";
import { isActive, Progress } from "./progress.js";
import { TaskTable } from "./task-table.js";
import { useDeployment, type DeploymentView } from "./watch-deployment.js";

function Summary({ d, scaled }: { d: Deployment; scaled: DeploymentView["scaled"] }) {
  const i = d.instances;
  const traffic = trafficOf(d);
  return (
    <dl class="facts summary">
      <dt>model</dt>
      <dd>
        {modelLabel(d.model)} <code>{d.model?.uri}</code>
        {d.model?.tokenSet && " (access token set)"}
      </dd>
      <dt>resources</dt>
      <dd>{resourcesLabel(d.resources)}</dd>
      <dt>scaling</dt>
      <dd class="scaling">{scalingLabel(d.scaling)}</dd>
      {scaled && (
        <>
          <dt>autoscaler</dt>
          <dd class="scaled">
            {scaled.message}
            {scaled.time && <small> · {time(scaled.time)}</small>}
          </dd>
        </>
      )}
      <dt>instances</dt>
      <dd class="instances">
        {i?.ready ?? 0} ready of {i?.desired ?? 0} desired · {i?.pending ?? 0} pending · {i?.restarts ?? 0} restarts
      </dd>
      <dt>revision</dt>
      <dd>
        serving {d.servingRevision || "none"}
        {d.targetRevision !== d.servingRevision && ` · rolling out ${d.targetRevision}`}
      </dd>
      <dt>traffic</dt>
      <dd class="traffic">
        {traffic.length === 0
          ? d.state === DeploymentState.IDLE
            ? "none: idle, the next request wakes it"
            : "none (nothing serves)"
          : traffic.map((t) => (
              <span class="share" key={t.revision}>
                rev {t.revision}: {t.percent}%
              </span>
            ))}
      </dd>
      <dt>endpoint</dt>
      <dd>{d.endpointUrl ? <code class="endpoint">{d.endpointUrl}</code> : "–"}</dd>
      <dt>labels</dt>
      <dd>
        {Object.entries(d.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(", ") || "–"}
      </dd>
      <dt>created</dt>
      <dd>
        {time(d.createTime)} by {d.creator}
      </dd>
      <dt>updated</dt>
      <dd>
        {time(d.updateTime)} by {d.modifier} · event #{String(d.sequence)}
      </dd>
    </dl>
  );
}

/** One deployment, live (WatchDeployment): what serves, the change in flight, its history, and what can be done. */
export function DeploymentPage({ api, name, onCallError }: { api: Api; name: string; onCallError: (err: unknown) => void }) {
  const { deployment: d, revisions, tasks, live, deleted, error, scaled } = useDeployment(api, name, onCallError);
  const active = d?.activeTaskId ? tasks.find((t) => t.id === d.activeTaskId) : undefined;
  const settled = d !== undefined && !deleted && d.state !== DeploymentState.DELETING;
  return (
    <section class="deployment" data-name={name}>
      <div class="title">
        <h1>{name}</h1>
        {d && (
          <span class={`state ${stateTone(deleted ? DeploymentState.DELETED : d.state)}`} data-state={stateName(deleted ? DeploymentState.DELETED : d.state)}>
            {stateName(deleted ? DeploymentState.DELETED : d.state)}
          </span>
        )}
        {!deleted && <span class={live ? "live on" : "live"}>{live ? "live" : "connecting…"}</span>}
      </div>
      {deleted ? (
        <p class="notice deleted">
          Deleted. <Link href="/">Back to all deployments</Link>
        </p>
      ) : (
        <ErrorBox error={error} />
      )}
      {d && (
        <>
          <Summary d={d} scaled={scaled} />
          {isActive(active) && (
            <div class="card active-task">
              <h2>In progress</h2>
              <Progress task={active} />
              <CancelButton key={active.id} api={api} taskId={active.id} onCallError={onCallError} />
            </div>
          )}
          {d.state === DeploymentState.FAILED && d.failure && (
            <div class="card failed">
              <h2>Failed</h2>
              <FailureView failure={d.failure} />
            </div>
          )}
          {settled && (
            <div class="actions">
              <ScaleForm key={`${d.scaling?.minReplicas}-${d.scaling?.maxReplicas}`} api={api} deployment={d} onCallError={onCallError} />
              <RollbackForm api={api} deployment={d} revisions={revisions} onCallError={onCallError} />
              <UpdateForm key={d.servingRevision} api={api} deployment={d} onCallError={onCallError} />
              <DeleteButton api={api} deployment={d} onCallError={onCallError} />
            </div>
          )}
          <h2>Revisions</h2>
          <table class="revisions">
            <thead>
              <tr>
                <th>rev</th>
                <th>model</th>
                <th>weights</th>
                <th>resources</th>
                <th>created</th>
              </tr>
            </thead>
            <tbody>
              {revisions.map((r) => (
                <tr key={r.number} class={r.number === d.servingRevision ? "serving" : ""}>
                  <td>
                    {r.number}
                    {r.number === d.servingRevision && " (serving)"}
                  </td>
                  <td>{modelLabel(r.model)}</td>
                  <td>
                    <code>{r.model?.uri}</code>
                  </td>
                  <td>{resourcesLabel(r.resources)}</td>
                  <td>{time(r.createTime)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Tasks</h2>
          <TaskTable tasks={tasks} />
        </>
      )}
    </section>
  );
}

// The changes one deployment offers: scale, update (a new revision), roll
// back, cancel the active task, delete. Each call's error shows beside it.
import { useEffect, useState } from "preact/hooks";
import type { Deployment, DeploymentRevision, ModelSource, Resources } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import type { Api } from "./api.js";
import { ErrorBox } from "./error-box.js";
import { Field, newRequestId, num, weightsUri, type Values } from "./fields.js";
import { useAction } from "./use-action.js";

/** One change at a time (the API refuses another with TASK_IN_PROGRESS): say why the button waits. */
function InProgressHint({ deployment: d }: { deployment: Deployment }) {
  return d.activeTaskId ? <p class="hint">Waits for the change in progress (cancel it, or let it finish).</p> : null;
}

interface Props {
  api: Api;
  deployment: Deployment;
  onCallError: (err: unknown) => void;
}

export function ScaleForm({ api, deployment: d, onCallError }: Props) {
  const [values, setValues] = useState<Values>({
    minReplicas: String(d.scaling?.minReplicas ?? 1),
    maxReplicas: String(d.scaling?.maxReplicas ?? 1),
  });
  const scale = useAction(() =>
    api.deployments.updateDeployment({
      name: d.name,
      // The autoscaler's settings stay as they are (the API replaces a scaling whole).
      scaling: {
        minReplicas: num(values["minReplicas"]),
        maxReplicas: num(values["maxReplicas"]),
        targetInFlight: d.scaling?.targetInFlight ?? 0,
        scaleDownDelaySeconds: d.scaling?.scaleDownDelaySeconds ?? 0,
        wakeTimeoutSeconds: d.scaling?.wakeTimeoutSeconds ?? 0,
      },
      requestId: newRequestId(),
    }),
  );
  useEffect(() => onCallError(scale.error), [scale.error]);
  const set = (name: string, value: string) => setValues((v) => ({ ...v, [name]: value }));
  return (
    <form
      class="action scale"
      onSubmit={(e) => {
        e.preventDefault();
        void scale.run();
      }}
    >
      <h3>Scale</h3>
      <p class="hint">No new revision. 0 and 0 stop it (the revision is kept); more resumes it.</p>
      <div class="row">
        <Field values={values} set={set} name="minReplicas" label="Min replicas" type="number" />
        <Field values={values} set={set} name="maxReplicas" label="Max replicas" type="number" />
      </div>
      <ErrorBox error={scale.error} />
      <InProgressHint deployment={d} />
      <button type="submit" disabled={scale.busy || d.activeTaskId !== ""}>
        Scale
      </button>
    </form>
  );
}

const modelKeys = ["modelName", "uri", "revision", "sha256", "token"] as const;
const resourceKeys = ["cpu", "memory", "threadCount", "maxBatchSize", "acceleratorType", "acceleratorCount"] as const;

function initialUpdateValues(m: ModelSource | undefined, r: Resources | undefined): Values {
  return {
    modelName: m?.name ?? "",
    uri: m?.uri ?? "",
    revision: m?.revision ?? "",
    sha256: m?.sha256 ?? "",
    token: "",
    cpu: r?.cpu ? String(r.cpu) : "",
    memory: r?.memory ?? "",
    threadCount: r?.threadCount ? String(r.threadCount) : "",
    maxBatchSize: r?.maxBatchSize ? String(r.maxBatchSize) : "",
    acceleratorType: r?.acceleratorType ?? "",
    acceleratorCount: r?.acceleratorCount ? String(r.acceleratorCount) : "",
  };
}

/** A new model or resources: a new revision, rolled out green. Only what changed is sent (each replaces the old whole). */
export function UpdateForm({ api, deployment: d, onCallError }: Props) {
  const initial = initialUpdateValues(d.model, d.resources);
  const [values, setValues] = useState<Values>(initial);
  const set = (name: string, value: string) => setValues((v) => ({ ...v, [name]: value }));
  const changed = (keys: readonly string[]) => keys.some((k) => (values[k] ?? "") !== (initial[k] ?? ""));
  const update = useAction(async () => {
    const newWeights = values["uri"] !== initial["uri"];
    const model = changed(modelKeys)
      ? {
          task: d.model?.task ?? "",
          type: d.model?.type,
          runtime: d.model?.runtime ?? "",
          name: values["modelName"]!.trim(),
          uri: weightsUri(values["uri"]!),
          revision: values["revision"]!.trim(),
          // The old checksum describes the old weights: new weights drop it unless given.
          sha256: newWeights && values["sha256"] === initial["sha256"] ? "" : values["sha256"]!.trim(),
          token: values["token"] ?? "",
        }
      : undefined;
    const resources = changed(resourceKeys)
      ? {
          cpu: num(values["cpu"]),
          memory: values["memory"]!.trim(),
          threadCount: num(values["threadCount"]),
          maxBatchSize: num(values["maxBatchSize"]),
          acceleratorType: values["acceleratorType"]!.trim(),
          acceleratorCount: num(values["acceleratorCount"]),
        }
      : undefined;
    if (!model && !resources) throw new Error("nothing changed: edit the model or the resources first");
    // A model given replaces the old one whole, its token too: the API never shows it, so it must come again.
    if (model && d.model?.tokenSet && !model.token)
      throw new Error("this model has an access token, which is never shown: give it again (or the new model's token)");
    await api.deployments.updateDeployment({ name: d.name, model, resources, requestId: newRequestId() });
  });
  useEffect(() => onCallError(update.error), [update.error]);
  const f = { values, set };
  return (
    <form
      class="action update"
      onSubmit={(e) => {
        e.preventDefault();
        void update.run();
      }}
    >
      <h3>Update</h3>
      <p class="hint">A new revision starts beside the serving one and takes the traffic once healthy.</p>
      <div class="grid">
        <Field {...f} name="modelName" label="Model name" />
        <Field {...f} name="uri" label="Weights URI" />
        <Field {...f} name="revision" label="Revision" />
        <Field {...f} name="sha256" label="SHA-256" />
        <Field {...f} name="token" label="Access token" type="password" placeholder={d.model?.tokenSet ? "set: give it again with a new model" : "optional"} />
        <Field {...f} name="cpu" label="CPU cores" type="number" />
        <Field {...f} name="memory" label="Memory" />
        <Field {...f} name="threadCount" label="Threads" type="number" />
        <Field {...f} name="maxBatchSize" label="Max batch size" type="number" />
        <Field {...f} name="acceleratorType" label="Accelerator type" />
        <Field {...f} name="acceleratorCount" label="Accelerator count" type="number" />
      </div>
      <ErrorBox error={update.error} />
      <InProgressHint deployment={d} />
      <button type="submit" disabled={update.busy || d.activeTaskId !== ""}>
        Roll out
      </button>
    </form>
  );
}

export function RollbackForm({ api, deployment: d, revisions, onCallError }: Props & { revisions: DeploymentRevision[] }) {
  const [revision, setRevision] = useState("0");
  const rollback = useAction(() => api.deployments.rollbackDeployment({ name: d.name, revision: num(revision), requestId: newRequestId() }));
  useEffect(() => onCallError(rollback.error), [rollback.error]);
  return (
    <form
      class="action rollback"
      onSubmit={(e) => {
        e.preventDefault();
        void rollback.run();
      }}
    >
      <h3>Roll back</h3>
      <label>
        To revision
        <select name="revision" value={revision} onChange={(e) => setRevision(e.currentTarget.value)}>
          <option value="0">the previous one</option>
          {revisions
            .filter((r) => r.number !== d.servingRevision)
            .map((r) => (
              <option key={r.number} value={String(r.number)}>
                {r.number}
              </option>
            ))}
        </select>
      </label>
      <ErrorBox error={rollback.error} />
      <InProgressHint deployment={d} />
      <button type="submit" disabled={rollback.busy || d.activeTaskId !== ""}>
        Roll back
      </button>
    </form>
  );
}

export function CancelButton({ api, taskId, onCallError }: { api: Api; taskId: string; onCallError: (err: unknown) => void }) {
  const cancel = useAction(() => api.deployments.cancelDeploymentTask({ taskId }));
  useEffect(() => onCallError(cancel.error), [cancel.error]);
  return (
    <div class="cancel">
      <button type="button" class="secondary" disabled={cancel.busy} onClick={() => void cancel.run()}>
        Cancel task
      </button>
      <ErrorBox error={cancel.error} />
    </div>
  );
}

/** Two clicks: the first asks, the second deletes. */
export function DeleteButton({ api, deployment: d, onCallError }: Props) {
  const [asking, setAsking] = useState(false);
  const del = useAction(() => api.deletions.deleteDeployment({ name: d.name, requestId: newRequestId() }));
  useEffect(() => onCallError(del.error), [del.error]);
  return (
    <div class="action delete">
      <h3>Delete</h3>
      <p class="hint">Stops every replica and removes its endpoint; a change in flight is cancelled first.</p>
      {asking ? (
        <div class="row">
          <button type="button" class="danger" disabled={del.busy} onClick={() => void del.run().then(() => setAsking(false))}>
            Delete {d.name}
          </button>
          <button type="button" class="secondary" onClick={() => setAsking(false)}>
            Keep it
          </button>
        </div>
      ) : (
        <button type="button" class="danger" onClick={() => setAsking(true)}>
          Delete…
        </button>
      )}
      <ErrorBox error={del.error} />
    </div>
  );
}

import { useEffect, useState } from "preact/hooks";
import { ModelType, type AcceleratorType } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import type { Api } from "./api.js";
import { ErrorBox } from "./error-box.js";
import { Field, labelsOf, newRequestId, num, Select, weightsUri, type Values } from "./fields.js";
import { deploymentPath, navigate } from "./router.js";
import { useAction } from "./use-action.js";

const modelTypes = [ModelType.UNSPECIFIED, ModelType.LLM, ModelType.EMBEDDING, ModelType.LORA, ModelType.TTS, ModelType.LEGACY];

/** CreateDeployment from a form; the accelerator choices are the API's catalog. */
export function CreateForm({ api, onCallError }: { api: Api; onCallError: (err: unknown) => void }) {
  const [values, setValues] = useState<Values>({ minReplicas: "1", maxReplicas: "1", modelType: "0", acceleratorType: "" });
  const [requestId, setRequestId] = useState(newRequestId);
  const [catalog, setCatalog] = useState<AcceleratorType[] | undefined>(undefined);
  const catalogCall = useAction(async () => setCatalog((await api.deployments.listAcceleratorTypes({})).acceleratorTypes));
  useEffect(() => void catalogCall.run(), [api]);
  useEffect(() => onCallError(catalogCall.error), [catalogCall.error]);
  const set = (name: string, value: string) => {
    setValues((v) => ({ ...v, [name]: value }));
    setRequestId(newRequestId());
  };
  const accelerator = catalog?.find((a) => a.name === values["acceleratorType"]);
  const create = useAction(async () => {
    const res = await api.deployments.createDeployment({
      model: {
        name: values["modelName"]?.trim() ?? "",
        uri: weightsUri(values["uri"] ?? ""),
        revision: values["revision"]?.trim() ?? "",
        sha256: values["sha256"]?.trim() ?? "",
        task: values["task"]?.trim() ?? "",
        type: num(values["modelType"]) as ModelType,
        token: values["token"] ?? "",
      },
      resources: {
        acceleratorType: values["acceleratorType"] ?? "",
        acceleratorCount: accelerator ? num(values["acceleratorCount"]) || 1 : 0,
        cpu: num(values["cpu"]),
        memory: values["memory"]?.trim() ?? "",
        threadCount: num(values["threadCount"]),
        maxBatchSize: num(values["maxBatchSize"]),
      },
      scaling: { minReplicas: num(values["minReplicas"]), maxReplicas: num(values["maxReplicas"]) },
      suffix: values["suffix"]?.trim() ?? "",
      labels: labelsOf(values["labels"]),
      requestId,
    });
    navigate(deploymentPath(res.deployment!.name));
  });
  useEffect(() => onCallError(create.error), [create.error]);
  const f = { values, set };
  return (
    <form
      class="card"
      onSubmit={(e) => {
        e.preventDefault();
        void create.run();
      }}
    >
      <h1>New deployment</h1>
      <fieldset>
        <legend>Model</legend>
        <Field {...f} name="modelName" label="Model name" placeholder="acme/tiny-linear" required />
        <Field {...f} name="uri" label="Weights URI" placeholder="file:///tmp/sample.onnx or https://…" required />
        <Field {...f} name="revision" label="Revision" placeholder="optional" />
        <Field {...f} name="sha256" label="SHA-256" placeholder="optional: checked after download" />
        <Field {...f} name="task" label="Task" placeholder="e.g. text-embedding" />
        <Select {...f} name="modelType" label="Type">
          {modelTypes.map((t) => (
            <option key={t} value={String(t)}>
              {t === ModelType.UNSPECIFIED ? "unspecified" : ModelType[t]}
            </option>
          ))}
        </Select>
        <Field {...f} name="token" label="Access token" type="password" placeholder="optional: for private weights; never shown again" />
      </fieldset>
      <fieldset>
        <legend>Resources</legend>
        <Select {...f} name="acceleratorType" label="Accelerator">
          <option value="">none (CPU only)</option>
          {(catalog ?? []).map((a) => (
            <option key={a.name} value={a.name} disabled={a.available === 0}>
              {a.name} ({a.memory}, {a.available} available)
            </option>
          ))}
        </Select>
        {accelerator && (
          <Select {...f} name="acceleratorCount" label="Accelerators per replica">
            {Array.from({ length: Math.max(1, accelerator.maxPerReplica) }, (_, i) => (
              <option key={i} value={String(i + 1)}>
                {i + 1}
              </option>
            ))}
          </Select>
        )}
        <Field {...f} name="cpu" label="CPU cores" type="number" placeholder="default" />
        <Field {...f} name="memory" label="Memory" placeholder="e.g. 256MiB, 2Gi" />
        <Field {...f} name="threadCount" label="Threads" type="number" placeholder="default" />
        <Field {...f} name="maxBatchSize" label="Max batch size" type="number" placeholder="default" />
      </fieldset>
      <fieldset>
        <legend>Scaling and name</legend>
        <Field {...f} name="minReplicas" label="Min replicas" type="number" />
        <Field {...f} name="maxReplicas" label="Max replicas" type="number" />
        <Field {...f} name="suffix" label="Name suffix" placeholder="optional: generated when empty" />
        <Field {...f} name="labels" label="Labels" placeholder="team=ml, tier=gold" />
      </fieldset>
      <ErrorBox error={catalogCall.error} />
      <ErrorBox error={create.error} />
      <button type="submit" disabled={create.busy}>
        {create.busy ? "Creating…" : "Create deployment"}
      </button>
    </form>
  );
}

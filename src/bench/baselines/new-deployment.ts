// A create's rows as the API builds them (src/api/mutations.ts): the
// deployment, its first revision and its deploy task, for the tight loops.
import { modelFromPb, resourcesFromPb } from "../../api/convert.js";
import type { NewDeployment } from "../../db/create-deployment.js";
import { newId } from "../../domain/ids.js";
import { emptyProgress, withScalingDefaults, type Deployment, type Task } from "../../domain/types.js";

export function newDeploymentRows(o: { workspace: string; modelName: string; replicas: number }): NewDeployment {
  const now = new Date();
  const uid = newId();
  const taskId = newId();
  const model = modelFromPb(undefined, undefined);
  model.name = o.modelName;
  model.uri = "file:///bench/model.onnx";
  const resources = resourcesFromPb(undefined);
  // The uid as suffix: a tight loop draws suffixes faster than newSuffix() keeps them apart.
  const name = `${o.modelName.replace(/^.*\//, "")}-${uid.toLowerCase()}`;
  const deployment: Deployment = {
    uid,
    workspace: o.workspace,
    name,
    state: "PENDING",
    model,
    resources,
    scaling: withScalingDefaults({ minReplicas: o.replicas, maxReplicas: o.replicas }),
    failure: null,
    instances: { desired: 0, ready: 0, pending: 0, restarts: 0 },
    endpointUrl: "",
    servingRevision: 0,
    targetRevision: 1,
    activeTaskId: taskId,
    traffic: [],
    labels: {},
    creator: "bench",
    modifier: "bench",
    createTime: now,
    updateTime: now,
    sequence: 1,
  };
  const task: Task = {
    id: taskId,
    workspace: o.workspace,
    deploymentUid: uid,
    deploymentName: name,
    kind: "DEPLOY",
    revision: 1,
    status: "PENDING",
    phase: "QUEUED",
    progress: { ...emptyProgress(), message: "queued" },
    result: null,
    failure: null,
    rolledBack: false,
    attempt: 0,
    requestId: "",
    creator: "bench",
    createTime: now,
    startTime: null,
    endTime: null,
    progressDeadline: new Date(now.getTime() + 600_000),
    deadlineSeconds: 600,
    scaling: null,
    rollout: null,
  };
  return { deployment, revision: { number: 1, model, resources, taskId, createTime: now }, task, requestHash: "" };
}

// The runtime's view of a revision's model: the domain's sealed token opened
// here, in the worker, for the download only. The plaintext lives in memory
// for the task and goes nowhere else (no row, event, log line or error).
import { parseMemory } from "../domain/quantities.js";
import { wakeTimeoutMs, type Deployment, type ModelSource, type Resources, type Scaling } from "../domain/types.js";
import { RuntimeError, type ModelSpec, type RevisionSpec } from "../runtime/driver.js";
import { TokenSealError, type TokenSealer } from "../secrets/token-seal.js";

export function modelSpec(model: ModelSource, tokens: TokenSealer | undefined): ModelSpec {
  const spec: ModelSpec = {
    name: model.name,
    revision: model.revision,
    uri: model.uri,
    sha256: model.sha256,
    task: model.task,
    type: model.type,
    runtime: model.runtime,
  };
  if (!model.tokenSealed) return spec;
  if (!tokens) {
    throw new RuntimeError("INVALID_SPEC", "the model has a token, but this worker has no MODELDEPLOY_SECRET_KEY to open it with");
  }
  try {
    return { ...spec, token: tokens.unseal(model.tokenSealed) };
  } catch (err) {
    // The seal's own messages never contain the token (it could not be read).
    if (err instanceof TokenSealError)
      throw new RuntimeError("INVALID_SPEC", `cannot open the model token: ${err.message}; or give the model its token again with UpdateDeployment`);
    throw err;
  }
}

/** What the runtime runs for one of the deployment's revisions; a scaling that may go to zero lets it wake on request. */
export function revisionSpec(
  deployment: Pick<Deployment, "uid" | "workspace" | "name">,
  number: number,
  revision: { model: ModelSource; resources: Resources },
  replicas: number,
  scaling: Scaling,
  tokens: TokenSealer | undefined,
): RevisionSpec {
  const wake = wakeTimeoutMs(scaling);
  return {
    ...(wake !== undefined ? { wakeTimeoutMs: wake } : {}),
    deploymentUid: deployment.uid,
    workspace: deployment.workspace,
    deploymentName: deployment.name,
    revision: number,
    model: modelSpec(revision.model, tokens),
    resources: { ...revision.resources, memoryBytes: parseMemory(revision.resources.memory) ?? 0 },
    replicas,
  };
}

import type { Failure } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { reasonName, time } from "./format.js";

/** Why a task failed, and the model server's last lines when it exited. */
export function FailureView({ failure, rolledBack = false }: { failure: Failure; rolledBack?: boolean }) {
  return (
    <div class="failure">
      <div>
        <b class="reason">{reasonName(failure.reason)}</b> {failure.message}
      </div>
      <div class="hint">
        {failure.exitCode !== undefined && `exit code ${failure.exitCode} · `}
        {failure.retryable ? "retryable" : "not retryable"}
        {rolledBack && " · rolled back: the previous revision keeps serving"}
        {failure.time && ` · ${time(failure.time)}`}
      </div>
      {failure.logTail && <pre class="log-tail">{failure.logTail}</pre>}
    </div>
  );
}

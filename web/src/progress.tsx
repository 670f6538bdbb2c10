import { TaskStatus, type Task } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { bytes, canaryStep, kindName, phaseName } from "./format.js";

export const isActive = (t: Task | undefined): t is Task => t !== undefined && (t.status === TaskStatus.PENDING || t.status === TaskStatus.RUNNING);

/** A task's live progress: phase, percent, a canary's step, bytes and replicas, and its message. */
export function Progress({ task, compact = false }: { task: Task; compact?: boolean }) {
  const p = task.progress;
  const percent = p?.percent ?? 0;
  const canary = canaryStep(task);
  return (
    <div class={compact ? "progress compact" : "progress"} data-task={task.id}>
      <div class="progress-line">
        <span class="phase">{phaseName(task.phase)}</span>
        <progress max={100} value={percent} />
        <span class="percent">{percent}%</span>
        {canary && <span class="canary">{canary}</span>}
      </div>
      {!compact && (
        <dl class="facts">
          <dt>task</dt>
          <dd>
            {kindName(task.kind)} rev {task.revision} · <code>{task.id}</code>
          </dd>
          {p && p.bytesTotal > 0n && (
            <>
              <dt>weights</dt>
              <dd class="bytes">
                {bytes(p.bytesDone)} of {bytes(p.bytesTotal)}
              </dd>
            </>
          )}
          {p && p.replicasDesired > 0 && (
            <>
              <dt>replicas</dt>
              <dd class="replicas">
                {p.replicasReady} of {p.replicasDesired} ready
              </dd>
            </>
          )}
        </dl>
      )}
      {p?.message && <div class="message">{p.message}</div>}
    </div>
  );
}

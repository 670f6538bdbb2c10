import { Fragment } from "preact";
import { TaskStatus, type Task } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { FailureView } from "./failure-view.js";
import { kindName, phaseName, statusName, statusTone, time } from "./format.js";

/** Recent tasks, newest first; a failed or cancelled one opens to its failure and log tail. */
export function TaskTable({ tasks }: { tasks: Task[] }) {
  const newestFailed = tasks.find((t) => t.status === TaskStatus.FAILED)?.id;
  return (
    <table class="tasks">
      <thead>
        <tr>
          <th>task</th>
          <th>kind</th>
          <th>rev</th>
          <th>status</th>
          <th>phase</th>
          <th>progress</th>
          <th>created</th>
        </tr>
      </thead>
      <tbody>
        {tasks.map((t) => (
          <Fragment key={t.id}>
            <tr data-task={t.id}>
              <td>
                <code title={t.id}>{t.id.slice(0, 12)}…</code>
              </td>
              <td>{kindName(t.kind)}</td>
              <td>{t.revision}</td>
              <td>
                <span class={`state ${statusTone(t.status)}`}>{statusName(t.status)}</span>
              </td>
              <td>{phaseName(t.phase)}</td>
              <td>{t.progress?.percent ?? 0}%</td>
              <td>{time(t.createTime)}</td>
            </tr>
            {t.failure && (
              <tr class="failure-row">
                <td colSpan={7}>
                  <details open={t.id === newestFailed}>
                    <summary>
                      {t.status === TaskStatus.CANCELLED ? "cancelled" : "failed"}: {t.failure.message}
                    </summary>
                    <FailureView failure={t.failure} rolledBack={t.rolledBack} />
                  </details>
                </td>
              </tr>
            )}
          </Fragment>
        ))}
      </tbody>
    </table>
  );
}

// What the e2e rollout and traffic tests share: a steady stream of inference
// requests to an endpoint, and waiting for a task to end.
import type { Client } from "@connectrpc/connect";
import type { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { TaskKind, TaskStatus, type Task } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { waitFor } from "./services.js";

export interface Answer {
  /** When the request was sent (performance.now()). */
  startedAt: number;
  /** When the answer came (ms since the epoch, this host's clock, as the server's event times). */
  at: number;
  /** 0: no answer (the connection failed). */
  status: number;
  /** The x-modeldeploy-revision header: which revision answered. */
  revision: string | null;
  retryAfter: string | null;
}

/**
 * Inference requests to the sample model's endpoint, `concurrency` at a time,
 * back to back, until stopped; x[0] cycles through `x0s` (on the flaky model,
 * values above its threshold fail).
 */
export function steadyLoad(endpointUrl: string, o: { concurrency?: number; x0s?: readonly number[] } = {}) {
  const x0s = o.x0s ?? [1];
  const answers: Answer[] = [];
  let running = true;
  let n = 0;
  const loops = Array.from({ length: o.concurrency ?? 3 }, async () => {
    while (running) {
      const x0 = x0s[n++ % x0s.length]!;
      const body = JSON.stringify({
        inputs: [
          { name: "x", shape: [1, 4], datatype: "FP32", data: [x0, 2, 3, 4] },
          { name: "ids", shape: [1], datatype: "INT64", data: [7] },
        ],
      });
      const startedAt = performance.now();
      try {
        const res = await fetch(`${endpointUrl}/infer`, { method: "POST", headers: { "content-type": "application/json" }, body });
        await res.arrayBuffer();
        answers.push({
          startedAt,
          at: Date.now(),
          status: res.status,
          revision: res.headers.get("x-modeldeploy-revision"),
          retryAfter: res.headers.get("retry-after"),
        });
      } catch {
        answers.push({ startedAt, at: Date.now(), status: 0, revision: null, retryAfter: null });
      }
    }
  });
  return {
    answers,
    async stop(): Promise<Answer[]> {
      running = false;
      await Promise.all(loops);
      return answers;
    },
  };
}

/** The task once it has ended (COMPLETED, FAILED or CANCELLED). */
export async function taskFinished(
  client: Client<typeof DeploymentService>,
  callOptions: () => { headers: Record<string, string> },
  task: Task,
  timeoutMs = 120_000,
): Promise<Task> {
  return waitFor(
    `task ${TaskKind[task.kind]} ${task.id} to end`,
    async () => {
      const t = await client.getDeploymentTask({ taskId: task.id }, callOptions());
      return [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED].includes(t.status) ? t : undefined;
    },
    timeoutMs,
    100,
  );
}

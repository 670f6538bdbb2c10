// A canary rollout's steps: each step sends a share of the deployment's
// requests to the new revision for its pause, then the gateway's own counts
// of that revision's requests and failures decide whether the next step
// follows or all traffic returns to the old revision at once.
import { setTimeout as delay } from "node:timers/promises";
import { failureOf, type AttemptWriter } from "../deployments/attempt.js";
import * as phases from "../deployments/task-phases.js";
import type { Rollout, TrafficTarget } from "../domain/types.js";
import type { DeploymentTraffic, RevisionSpec, RuntimeDriver } from "../runtime/driver.js";
import { TaskFailure } from "./task-failure.js";

/** How often a step short of minRequests looks at the counts again. */
const RECOUNT_MS = 1_000;

interface Counted {
  requests: number;
  failures: number;
}

/** The revision's requests and failures between two readings; a runtime restart in between starts the count again. */
export function countedBetween(before: DeploymentTraffic | undefined, after: DeploymentTraffic | undefined, revision: number): Counted {
  const of = (t: DeploymentTraffic | undefined) => t?.revisions.find((r) => r.revision === revision) ?? { requests: 0, failures: 0 };
  const end = of(after);
  const start = before && after && before.epoch === after.epoch ? of(before) : { requests: 0, failures: 0 };
  return { requests: Math.max(0, end.requests - start.requests), failures: Math.max(0, end.failures - start.failures) };
}

const percentText = (rate: number) => `${(rate * 100).toFixed(rate < 0.1 ? 1 : 0)}%`;

/**
 * Runs the steps from the one the task reached (a later attempt counts that
 * step afresh). Returns once the last step passed; the caller then switches
 * all traffic. Throws a TaskFailure (the old revision serving again) when a
 * step fails or cannot be judged before the progress deadline.
 */
export async function runCanary(
  driver: RuntimeDriver,
  w: AttemptWriter,
  spec: RevisionSpec,
  previous: number,
  rollout: Rollout,
  signal: AbortSignal,
): Promise<void> {
  const steps = rollout.steps;
  const back = () => driver.splitTraffic(spec, [{ revision: previous, percent: 100 }]);
  for (let index = Math.max(1, w.current().progress.rolloutStep); index <= steps.length; index++) {
    const step = steps[index - 1];
    if (!step) break;
    const name = `canary step ${index}/${steps.length} (${step.percent}%)`;
    const traffic: TrafficTarget[] = [
      { revision: previous, percent: 100 - step.percent },
      { revision: spec.revision, percent: step.percent },
    ];
    const before = await driver.trafficStats(spec.deploymentUid);
    await driver.splitTraffic(spec, traffic);
    await phases.canaryStep(w, { index, of: steps.length, traffic, pauseSeconds: step.pauseSeconds });
    await delay(step.pauseSeconds * 1000, undefined, { signal });

    let counted = countedBetween(before, await driver.trafficStats(spec.deploymentUid), spec.revision);
    let held = false;
    while (counted.requests < rollout.minRequests) {
      const deadline = w.current().progressDeadline;
      if (deadline && deadline.getTime() - Date.now() < RECOUNT_MS) {
        await back();
        throw new TaskFailure(
          failureOf(
            "PROGRESS_DEADLINE_EXCEEDED",
            `${name}: only ${counted.requests} of the ${rollout.minRequests} requests needed to judge revision ${spec.revision} arrived within ${w.task.deadlineSeconds}s; all traffic returned to revision ${previous}. Send traffic to the endpoint during the rollout, lower minRequests or raise progressDeadlineSeconds`,
          ),
        );
      }
      if (!held) {
        held = true;
        await phases.canaryWaiting(
          w,
          `${counted.requests} of the ${rollout.minRequests} requests needed to judge revision ${spec.revision} so far; holding the step until they arrive`,
        );
      }
      await delay(RECOUNT_MS, undefined, { signal });
      counted = countedBetween(before, await driver.trafficStats(spec.deploymentUid), spec.revision);
    }

    const rate = counted.requests === 0 ? 0 : counted.failures / counted.requests;
    if (rate > rollout.maxErrorRate) {
      await back();
      throw new TaskFailure(
        failureOf(
          "CANARY_FAILED",
          `${name}: ${counted.failures} of ${counted.requests} requests to revision ${spec.revision} failed (error rate ${percentText(rate)} > maxErrorRate ${percentText(rollout.maxErrorRate)}); all traffic returned to revision ${previous}`,
        ),
      );
    }
  }
}

// The live progress block's content: state and revisions, phase, a percent
// bar, bytes, replicas and the task's message; a canary's step and split, and
// the autoscaler's last change.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { frame } from "../../src/cli/progress.js";
import { DeploymentSchema, DeploymentState, RolloutStrategy, TaskKind, TaskPhase, TaskSchema, TaskStatus } from "../../src/gen/modeldeploy/v1/resources_pb.js";

describe("progress frame", () => {
  it("shows phase, percent, bytes, replicas and the message", () => {
    const d = create(DeploymentSchema, { name: "m-1", state: DeploymentState.UPDATING, servingRevision: 1, targetRevision: 2 });
    const t = create(TaskSchema, {
      kind: TaskKind.UPDATE,
      status: TaskStatus.RUNNING,
      phase: TaskPhase.DOWNLOADING,
      progress: { percent: 50, bytesDone: 1536n, bytesTotal: 3072n, replicasReady: 1, replicasDesired: 2, message: "downloading weights" },
    });
    expect(frame(d, t, "*").split("\n")).toEqual([
      "* m-1  UPDATING  rev 1→2",
      `  UPDATE DOWNLOADING  [${"█".repeat(12)}${"░".repeat(12)}]  50%  1.5KiB/3.0KiB`,
      "  replicas 1/2 ready  ·  downloading weights",
    ]);
  });

  it("says how a task ended", () => {
    const t = create(TaskSchema, {
      kind: TaskKind.DEPLOY,
      status: TaskStatus.FAILED,
      phase: TaskPhase.HEALTH_CHECKING,
      progress: { percent: 60 },
      failure: { message: "the model server exited" },
    });
    const lines = frame(undefined, t, "•").split("\n");
    expect(lines[0]).toMatch(/^ {2}DEPLOY HEALTH_CHECKING {2}FAILED {2}\[/);
    expect(lines.at(-1)).toBe("  failure: the model server exited");
  });

  it("shows a canary's step, its share and the split in force", () => {
    const d = create(DeploymentSchema, {
      name: "m-1",
      state: DeploymentState.UPDATING,
      servingRevision: 1,
      targetRevision: 2,
      traffic: [
        { revision: 1, percent: 50 },
        { revision: 2, percent: 50 },
      ],
    });
    const t = create(TaskSchema, {
      kind: TaskKind.UPDATE,
      status: TaskStatus.RUNNING,
      phase: TaskPhase.SWITCHING_TRAFFIC,
      progress: { percent: 60, replicasReady: 1, replicasDesired: 1, rolloutStep: 2, rolloutSteps: 3 },
      rollout: {
        strategy: RolloutStrategy.CANARY,
        steps: [
          { percent: 10, pauseSeconds: 30 },
          { percent: 50, pauseSeconds: 30 },
          { percent: 90, pauseSeconds: 30 },
        ],
      },
    });
    expect(frame(d, t, "*").split("\n").slice(2)).toEqual(["  replicas 1/1 ready", "  canary step 2/3 (50%)  ·  traffic r1 50% · r2 50%"]);
  });

  it("shows IDLE, and the autoscaler's last change", () => {
    const d = create(DeploymentSchema, {
      name: "m-2",
      state: DeploymentState.IDLE,
      servingRevision: 1,
      targetRevision: 1,
      instances: { ready: 0, desired: 0 },
    });
    expect(frame(d, undefined, "•", "no requests for 60s: scaled to zero").split("\n")).toEqual([
      "• m-2  IDLE  rev 1",
      "  replicas 0/0 ready",
      "  scaled: no requests for 60s: scaled to zero",
    ]);
  });
});

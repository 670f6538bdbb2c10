// The live progress block's content: state and revisions, phase, a percent
// bar, bytes, replicas and the task's message.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { frame } from "../../src/cli/progress.js";
import { DeploymentSchema, DeploymentState, TaskKind, TaskPhase, TaskSchema, TaskStatus } from "../../src/gen/modeldeploy/v1/resources_pb.js";

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
});

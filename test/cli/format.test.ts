// How the CLI prints traffic, canaries, IDLE and the autoscaler: `list` and
// `get` lines, task lines, and the plain event lines of watch/--wait.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { deploymentLine, deploymentView, eventLine, taskLine, taskRowLine, trafficLabel } from "../../src/cli/format.js";
import {
  DeploymentEventSchema,
  DeploymentSchema,
  DeploymentState,
  EventType,
  RolloutStrategy,
  ScalingSchema,
  TaskKind,
  TaskPhase,
  TaskSchema,
  TaskStatus,
  TrafficTargetSchema,
} from "../../src/gen/modeldeploy/v1/resources_pb.js";

const split = create(DeploymentSchema, {
  name: "m-1",
  state: DeploymentState.UPDATING,
  servingRevision: 1,
  targetRevision: 2,
  instances: { ready: 2, desired: 2 },
  traffic: [
    { revision: 1, percent: 90 },
    { revision: 2, percent: 10 },
  ],
  endpointUrl: "http://gw/m-1",
});

const canaryTask = create(TaskSchema, {
  id: "t1",
  kind: TaskKind.UPDATE,
  status: TaskStatus.RUNNING,
  phase: TaskPhase.SWITCHING_TRAFFIC,
  progress: { percent: 70, rolloutStep: 2, rolloutSteps: 3, message: "judging step 2" },
  rollout: {
    strategy: RolloutStrategy.CANARY,
    steps: [
      { percent: 10, pauseSeconds: 30 },
      { percent: 50, pauseSeconds: 30 },
      { percent: 80, pauseSeconds: 0 },
    ],
  },
});

describe("traffic", () => {
  it("shows a split on the list line, and nothing when one revision takes all", () => {
    expect(trafficLabel(split)).toBe("r1 90% · r2 10%");
    expect(deploymentLine(split)).toBe("m-1  UPDATING  rev 1→2  replicas 2/2 ready  traffic: r1 90% · r2 10%  http://gw/m-1");
    const whole = create(DeploymentSchema, {
      ...split,
      targetRevision: 1,
      state: DeploymentState.RUNNING,
      traffic: [create(TrafficTargetSchema, { revision: 1, percent: 100 })],
    });
    expect(deploymentLine(whole)).toBe("m-1  RUNNING  rev 1  replicas 2/2 ready  http://gw/m-1");
    expect(deploymentView(whole)).toMatch(/\nTraffic: +r1 100%\n/);
  });

  it("shows the split in `get`", () => {
    expect(deploymentView(split)).toMatch(/\nTraffic: +r1 90% · r2 10%\n/);
    // Nothing serves: no traffic row.
    expect(deploymentView(create(DeploymentSchema, { name: "m-2" }))).not.toContain("Traffic:");
  });
});

describe("IDLE and the autoscaler", () => {
  const idle = create(DeploymentSchema, {
    name: "m-3",
    state: DeploymentState.IDLE,
    servingRevision: 1,
    targetRevision: 1,
    instances: { ready: 0, desired: 0 },
    scaling: { minReplicas: 0, maxReplicas: 3, targetInFlight: 4, scaleDownDelaySeconds: 60, wakeTimeoutSeconds: 30 },
    endpointUrl: "http://gw/m-3",
  });

  it("names the state, says what wakes it, and shows the autoscaler's settings", () => {
    expect(deploymentLine(idle)).toBe("m-3  IDLE  rev 1  replicas 0/0 ready  http://gw/m-3");
    const view = deploymentView(idle);
    expect(view).toMatch(/\nState: +IDLE \(scaled to zero: the next request wakes it\)\n/);
    expect(view).toMatch(/\nScaling: +min 0, max 3; target in-flight 4, scale down after 60s, wake timeout 30s\n/);
  });

  it("shows only the bounds for a fixed replica count", () => {
    const fixed = create(DeploymentSchema, {
      ...idle,
      state: DeploymentState.RUNNING,
      scaling: create(ScalingSchema, { minReplicas: 2, maxReplicas: 2, targetInFlight: 4 }),
    });
    expect(deploymentView(fixed)).toMatch(/\nScaling: +min 2, max 2\n/);
  });

  it("prints a SCALED event with the autoscaler's reason", () => {
    const e = create(DeploymentEventSchema, {
      sequence: 42n,
      type: EventType.SCALED,
      message: "no requests for 60s: scaled to zero",
      deployment: idle,
    });
    expect(eventLine(e)).toBe("#42 IDLE  scaled: no requests for 60s: scaled to zero  replicas 0/0 ready");
  });
});

describe("canary progress", () => {
  it("shows the step and its share on task and event lines", () => {
    expect(taskLine(canaryTask)).toBe("t1  RUNNING  SWITCHING_TRAFFIC  70%  canary step 2/3 (50%)  judging step 2");
    const e = create(DeploymentEventSchema, { sequence: 7n, type: EventType.PROGRESS, deployment: split, task: canaryTask });
    expect(eventLine(e)).toBe("#7 UPDATING  SWITCHING_TRAFFIC 70% canary step 2/3 (50%) judging step 2  traffic: r1 90% · r2 10%");
  });

  it("lists a task's canary steps", () => {
    expect(taskRowLine(canaryTask)).toContain("  canary 10%:30s,50%:30s,80%:0s");
  });

  it("leaves lines outside a canary as they were", () => {
    const plain = create(TaskSchema, { id: "t2", status: TaskStatus.RUNNING, phase: TaskPhase.DOWNLOADING, progress: { percent: 5, message: "downloading" } });
    expect(taskLine(plain)).toBe("t2  RUNNING  DOWNLOADING  5%  downloading");
  });
});

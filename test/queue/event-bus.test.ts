// The live event bus across a nats-server restart: nats.js resubscribes on
// reconnect, and onReconnect tells watchers that live events of the outage
// were missed (they re-read them from Postgres).
import { afterAll, describe, expect, it } from "vitest";
import type { DeploymentEvent } from "../../src/domain/types.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { connectNats } from "../../src/queue/nats.js";
import { startPrivateNats } from "../helpers/private-nats.js";
import { randomName, waitFor } from "../helpers/services.js";

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** An event as the bus carries it; only its uid and sequence matter here. */
function event(uid: string, sequence: number): DeploymentEvent {
  const deployment = { uid, workspace: "acme", name: "tiny-linear-abc", createTime: new Date(), updateTime: new Date() };
  return {
    workspace: "acme",
    deploymentUid: uid,
    sequence,
    cursor: String(sequence),
    type: "PROGRESS",
    time: new Date(),
    task: null,
    deployment,
  } as unknown as DeploymentEvent;
}

describe("event bus", () => {
  it("delivers again after nats-server restarts, and says it reconnected", async () => {
    const nats = await startPrivateNats();
    cleanups.push(() => nats.destroy());
    const prefix = randomName("mdbus");
    const watcherNc = await connectNats(nats.url, "modeldeploy-test-watcher");
    cleanups.push(() => watcherNc.close());
    const publisherNc = await connectNats(nats.url, "modeldeploy-test-publisher");
    cleanups.push(() => publisherNc.close());
    const watcher: EventBus = createEventBus(watcherNc, prefix);
    cleanups.push(() => watcher.close());
    const publisher: EventBus = createEventBus(publisherNc, prefix);
    cleanups.push(() => publisher.close());

    const uid = randomName("uid");
    const seen: number[] = [];
    watcher.onDeployment(uid, (e) => seen.push(e.sequence));
    let reconnects = 0;
    watcher.onReconnect(() => reconnects++);
    await watcherNc.flush();
    publisher.publish([event(uid, 1)]);
    await waitFor("the first event", () => seen.includes(1));

    await nats.stop("SIGKILL");
    await nats.start();
    await waitFor("the watcher's reconnect signal", () => reconnects === 1);
    // Published until the subscription is back: nothing says when the server has it again.
    let sequence = 1;
    await waitFor(
      "an event after the restart",
      () => {
        publisher.publish([event(uid, ++sequence)]);
        return seen.some((s) => s > 1);
      },
      30_000,
      200,
    );
    expect(seen[0]).toBe(1);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
  });
});

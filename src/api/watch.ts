// Watch = backlog from Postgres, then live events from the bus, stitched by
// sequence: no gap (a missed live event is read back from Postgres) and no
// duplicate (anything at or below the last sequence sent is dropped).
import { Code } from "@connectrpc/connect";
import { findDeploymentByName, findDeploymentByUid } from "../db/deployments.js";
import { eventsAfter } from "../db/events.js";
import { toDeployment, toTask } from "../db/mappers.js";
import { findTask, latestTaskOfKinds } from "../db/tasks.js";
import type { DeploymentEvent } from "../domain/types.js";
import type { ApiDeps } from "./deps.js";
import { notFound } from "./mutations.js";
import { apiError } from "./errors.js";

export interface WatchOptions {
  workspace: string;
  name: string;
  afterSequence: number | undefined;
  /** End the stream after the DELETED event (WatchDeletion). */
  untilDeleted: boolean;
  signal: AbortSignal;
  /** Safety-net poll of Postgres when the live feed is quiet. */
  pollMs?: number;
}

export async function* watchDeployment(deps: ApiDeps, o: WatchOptions): AsyncGenerator<DeploymentEvent> {
  const row = await findDeploymentByName(deps.db, o.workspace, o.name);
  if (!row) throw notFound(o.name);
  const uid = row.uid;
  const live: DeploymentEvent[] = [];
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const unsubscribe = deps.bus.onDeployment(uid, (e) => {
    live.push(e);
    notify();
  });
  o.signal.addEventListener("abort", notify);
  try {
    let last: number;
    if (o.afterSequence === undefined) {
      // Subscribed first, then read: nothing committed in between is missed.
      const fresh = toDeployment((await findDeploymentByName(deps.db, o.workspace, o.name)) ?? row);
      const taskRow = fresh.activeTaskId
        ? await findTask(deps.db, fresh.activeTaskId)
        : await latestTaskOfKinds(deps.db, uid, ["DEPLOY", "UPDATE", "SCALE", "ROLLBACK", "DELETE"]);
      const lastEvent = fresh.sequence > 0 ? (await eventsAfter(deps.db, uid, fresh.sequence - 1, 1))[0] : undefined;
      yield {
        deploymentUid: uid,
        workspace: fresh.workspace,
        sequence: fresh.sequence,
        cursor: lastEvent?.cursor ?? "",
        time: fresh.updateTime,
        type: "SNAPSHOT",
        deployment: fresh,
        task: taskRow ? toTask(taskRow) : null,
      };
      last = fresh.sequence;
      if (o.untilDeleted && fresh.state === "DELETED") return;
    } else {
      if (o.afterSequence < 0) throw apiError(Code.InvalidArgument, "afterSequence must be 0 or more", { reason: "SEQUENCE_INVALID" });
      // Read after subscribing, so a sequence committed meanwhile counts.
      const current = (await findDeploymentByUid(deps.db, uid))?.sequence ?? row.sequence;
      if (o.afterSequence > current) {
        // Nobody can have seen it: waiting would hide a client's bug (or a
        // sequence of another deployment) behind a silent stream.
        throw apiError(Code.OutOfRange, `afterSequence ${o.afterSequence} is beyond the last event of "${o.name}" (${current}): resume from a sequence you have received, or omit it for a snapshot`, {
          reason: "SEQUENCE_OUT_OF_RANGE",
          metadata: { afterSequence: String(o.afterSequence), lastSequence: String(current) },
        });
      }
      last = o.afterSequence;
    }
    const pollMs = o.pollMs ?? 2000;
    let needBacklog = true;
    while (!o.signal.aborted) {
      if (needBacklog) {
        needBacklog = false;
        for (;;) {
          const batch = await eventsAfter(deps.db, uid, last, 500);
          for (const e of batch) {
            last = e.sequence;
            yield e;
            if (o.untilDeleted && e.type === "DELETED") return;
          }
          if (batch.length < 500) break;
        }
      }
      while (live.length > 0) {
        const e = live.shift()!;
        if (e.sequence <= last) continue;
        if (e.sequence !== last + 1) {
          needBacklog = true;
          live.length = 0;
          break;
        }
        last = e.sequence;
        yield e;
        if (o.untilDeleted && e.type === "DELETED") return;
      }
      if (needBacklog || o.signal.aborted) continue;
      const woke = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          wake = undefined;
          resolve(false);
        }, pollMs);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      if (!woke) needBacklog = true;
    }
  } finally {
    o.signal.removeEventListener("abort", notify);
    unsubscribe();
  }
}

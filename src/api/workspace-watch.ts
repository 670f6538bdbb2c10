// WatchDeployments: every deployment of a workspace. A SNAPSHOT of each
// matching deployment, then every change, read from Postgres between two
// database snapshots (db/workspace-events.ts) whenever the live feed says
// the workspace changed (and every few seconds, for an event whose publisher
// died). Each event's cursor resumes right after it, with no gap and no
// duplicate, whatever order transactions committed in. The stream reads the
// next page only when its reader asks: a slow reader holds one page.
import { Code } from "@connectrpc/connect";
import type { Db } from "../db/connect.js";
import { toDeployment, toTask } from "../db/mappers.js";
import { isPosition, readWorkspaceEvents, readWorkspaceSnapshot, type EventWindow } from "../db/workspace-events.js";
import type { DeploymentEvent, DeploymentState, TaskKind } from "../domain/types.js";
import type { DeploymentEvent as PbDeploymentEvent } from "../gen/modeldeploy/v1/resources_pb.js";
import type { EventBus } from "../queue/event-bus.js";
import { eventToPb } from "./convert.js";
import { apiError } from "./errors.js";

export interface WorkspaceWatchOptions {
  db: Db;
  bus: EventBus;
  /** Events read per query. Default 500. */
  pageSize?: number;
  /** Read even without a live message this often (an event whose publisher died). Default 5 s. */
  safetyMs?: number;
}

export interface WorkspaceWatchRequest {
  workspace: string;
  /** Any of these; none: every state (and a snapshot of all but DELETED ones). */
  states: DeploymentState[];
  /** A cursor this stream (or another of this workspace) gave; "" for a snapshot first. */
  afterCursor: string;
}

const snapshotTaskKinds: readonly TaskKind[] = ["DEPLOY", "UPDATE", "SCALE", "ROLLBACK", "DELETE"];

/** A resume point: after `p`, less what of batch `b` up to cursor `c` was given. */
interface Token {
  p: string;
  b?: string;
  c?: string;
}

const encodeToken = (t: Token) => Buffer.from(JSON.stringify(t)).toString("base64url");

function decodeToken(text: string): Token {
  try {
    const t = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as Partial<Token>;
    if (typeof t.p === "string" && isPosition(t.p) && (t.b === undefined || (isPosition(t.b) && typeof t.c === "string" && /^\d{1,20}$/.test(t.c)))) {
      return t.b === undefined ? { p: t.p } : { p: t.p, b: t.b, c: t.c! };
    }
  } catch {
    // fall through
  }
  throw apiError(
    Code.InvalidArgument,
    "afterCursor is not a cursor of WatchDeployments: resume from the cursor of an event you received, or omit it for a snapshot",
    {
      reason: "CURSOR_INVALID",
    },
  );
}

export function openWorkspaceWatch(o: WorkspaceWatchOptions, req: WorkspaceWatchRequest): AsyncIterableIterator<PbDeploymentEvent> {
  const pageSize = o.pageSize ?? 500;
  const queue: PbDeploymentEvent[] = [];
  const inView = new Set<string>();
  let window: EventWindow | undefined;
  let position: string | undefined;
  let resume: Token | undefined = req.afterCursor ? decodeToken(req.afterCursor) : undefined;
  /** A resumed stream starts from its cursor, a new one from a snapshot. */
  let needsSnapshot = resume === undefined;
  let dirty = true;
  let wake: (() => void) | undefined;
  let closed = false;

  const touch = () => {
    dirty = true;
    wake?.();
  };
  const stopEvents = o.bus.onEvent((e) => {
    if (e.workspace === req.workspace) touch();
  });
  const stopReconnects = o.bus.onReconnect(touch);
  const timer = setInterval(touch, o.safetyMs ?? 5000);
  timer.unref();
  const close = () => {
    closed = true;
    stopEvents();
    stopReconnects();
    clearInterval(timer);
    wake?.();
  };

  const wanted = (e: DeploymentEvent): boolean => {
    if (req.states.length === 0) return true;
    const matches = req.states.includes(e.deployment.state);
    const seen = inView.has(e.deploymentUid);
    if (matches) inView.add(e.deploymentUid);
    else inView.delete(e.deploymentUid);
    // A deployment leaving the filter is shown leaving.
    return matches || seen;
  };

  const snapshot = async () => {
    // Subscribed before reading: whatever commits after the snapshot wakes the stream.
    await o.bus.subscribed().catch(() => {});
    const snap = await readWorkspaceSnapshot(o.db, req.workspace, req.states, snapshotTaskKinds);
    position = snap.position;
    snap.deployments.forEach((row, i) => {
      const deployment = toDeployment(row.deployment);
      inView.add(deployment.uid);
      // Only the last message of the snapshot resumes after all of it.
      const cursor = i === snap.deployments.length - 1 ? encodeToken({ p: snap.position }) : "";
      queue.push(
        eventToPb({
          deploymentUid: deployment.uid,
          workspace: deployment.workspace,
          sequence: deployment.sequence,
          cursor,
          message: "",
          time: deployment.updateTime,
          type: "SNAPSHOT",
          deployment,
          task: row.task ? toTask(row.task) : null,
        }),
      );
    });
  };

  /** Reads the next page of changes into the queue; false when there was nothing new. */
  const readPage = async (): Promise<void> => {
    if (window === undefined) {
      if (resume !== undefined) {
        window = { after: resume.p, ...(resume.b !== undefined ? { seen: { batch: resume.b, cursor: resume.c! } } : {}) };
        resume = undefined;
        await o.bus.subscribed().catch(() => {});
      } else {
        window = { after: position! };
      }
      dirty = false;
    }
    const page = await readWorkspaceEvents(o.db, req.workspace, window, pageSize);
    const w = { ...window, until: page.until };
    for (const e of page.events) {
      if (wanted(e)) queue.push(eventToPb({ ...e, cursor: encodeToken({ p: w.after, b: page.until, c: e.cursor }) }));
    }
    if (page.events.length === pageSize) {
      window = { ...w, afterCursor: page.events[page.events.length - 1]!.cursor };
    } else {
      position = page.until;
      window = undefined;
    }
  };

  const iterator: AsyncIterableIterator<PbDeploymentEvent> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      try {
        if (needsSnapshot) {
          needsSnapshot = false;
          await snapshot();
        }
        for (;;) {
          const value = queue.shift();
          if (value !== undefined) return { value, done: false };
          if (closed) return { value: undefined, done: true };
          if (window !== undefined || dirty || resume !== undefined) {
            await readPage();
            continue;
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      } catch (err) {
        close();
        throw err;
      }
    },
    async return() {
      queue.length = 0;
      close();
      return { value: undefined, done: true };
    },
  };
  return iterator;
}

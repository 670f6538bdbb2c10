// Every WatchDeployment of this process, on one subscription to the live
// feed: a channel per watched deployment (watch-channel.ts) and a stream per
// watch (watch-stream.ts). Postgres is read to open a watch (one query), to
// replay from a resume point, and to fill what the feed missed: a gap in the
// sequence, a reconnect of the feed, or (a slow safety net, one query per
// process for all watched deployments) an event whose publisher died between
// its commit and its publish. An idle watch costs no query.
import { Code } from "@connectrpc/connect";
import type { Db } from "../db/connect.js";
import { toDeployment, toTask } from "../db/mappers.js";
import { readSequences, readWatchPosition, readWatchSnapshot } from "../db/watch-reads.js";
import type { DeploymentEvent, TaskKind } from "../domain/types.js";
import type { DeploymentEvent as PbDeploymentEvent } from "../gen/modeldeploy/v1/resources_pb.js";
import type { Logger } from "../log.js";
import type { EventBus } from "../queue/event-bus.js";
import { eventToPb } from "./convert.js";
import type { DirectWriter } from "./direct-writer.js";
import { apiError, notFound } from "./errors.js";
import { WatchChannel } from "./watch-channel.js";
import { WatchStream } from "./watch-stream.js";

export interface WatchRequest {
  workspace: string;
  name: string;
  afterSequence: number | undefined;
  /** End the stream after the DELETED event (WatchDeletion). */
  untilDeleted: boolean;
  /** The call's direct writer (native gRPC): the stream then pushes its messages to it (watch-stream.ts). */
  writer?: DirectWriter | undefined;
}

export interface WatchHub {
  /** Opens a watch: NOT_FOUND, OUT_OF_RANGE and INVALID_ARGUMENT as the spec says. */
  open(req: WatchRequest): Promise<AsyncIterableIterator<PbDeploymentEvent>>;
  /** Watched deployments and open streams (for tests and metrics). */
  stats(): { channels: number; opening: number };
  close(): void;
}

export interface WatchHubOptions {
  db: Db;
  bus: EventBus;
  logger: Logger;
  /** How often the deployments' sequences are checked for events the feed never carried. Default 10 s; 0 turns it off. */
  reconcileMs?: number;
  /** Frames each channel keeps for streams slightly behind. Default 64. */
  recentFrames?: number;
  /** How long an open waits for the feed's subscription before going on without it. Default 1 s. */
  subscribeWaitMs?: number;
}

/** A watch being opened: the live events of its name that arrive while it reads Postgres. */
interface Opening {
  events: DeploymentEvent[];
  missedLive: boolean;
}

const snapshotTaskKinds: readonly TaskKind[] = ["DEPLOY", "UPDATE", "SCALE", "ROLLBACK", "DELETE"];

export function createWatchHub(o: WatchHubOptions): WatchHub {
  const reconcileMs = o.reconcileMs ?? 10_000;
  const channels = new Map<string, WatchChannel>();
  const openings = new Map<string, Set<Opening>>();
  let openingCount = 0;
  let feed: { stopEvents(): void; stopReconnects(): void } | undefined;
  let reconcileTimer: NodeJS.Timeout | undefined;
  let reconciling = false;

  const nameKey = (workspace: string, name: string) => `${workspace}\u0000${name}`;

  const onEvent = (e: DeploymentEvent) => {
    channels.get(e.deploymentUid)?.offer(e);
    if (openingCount === 0) return;
    const set = openings.get(nameKey(e.workspace, e.deployment.name));
    if (set !== undefined) for (const op of set) op.events.push(e);
  };

  const onReconnect = () => {
    for (const set of openings.values()) for (const op of set) op.missedLive = true;
    // Read once the server has the subscription again, so nothing falls in between.
    void untilTimeout(o.bus.subscribed(), o.subscribeWaitMs ?? 1000).then(() => {
      for (const ch of channels.values()) ch.fill();
    });
  };

  const reconcile = async () => {
    if (reconciling) return;
    reconciling = true;
    try {
      const uids = [...channels.keys()];
      for (let i = 0; i < uids.length; i += 1000) {
        const sequences = await readSequences(o.db, uids.slice(i, i + 1000));
        for (const [uid, sequence] of sequences) channels.get(uid)?.committed(sequence);
      }
    } catch (err) {
      o.logger.debug("watch: reconcile failed", { err });
    } finally {
      reconciling = false;
    }
  };

  // The feed and the timer run only while something is watched.
  const use = () => {
    if (feed === undefined) feed = { stopEvents: o.bus.onEvent(onEvent), stopReconnects: o.bus.onReconnect(onReconnect) };
    if (reconcileTimer === undefined && reconcileMs > 0 && channels.size > 0) {
      reconcileTimer = setInterval(() => void reconcile(), reconcileMs);
      reconcileTimer.unref();
    }
  };
  const release = () => {
    if (channels.size > 0) return;
    clearInterval(reconcileTimer);
    reconcileTimer = undefined;
    if (openingCount > 0 || feed === undefined) return;
    feed.stopEvents();
    feed.stopReconnects();
    feed = undefined;
  };

  const channelOptions = {
    db: o.db,
    logger: o.logger,
    recentFrames: o.recentFrames ?? 64,
    onEmpty(ch: WatchChannel) {
      if (channels.get(ch.uid) === ch) channels.delete(ch.uid);
      release();
    },
  };

  const beginOpen = async (workspace: string, name: string): Promise<{ op: Opening; end(): void }> => {
    const op: Opening = { events: [], missedLive: false };
    const key = nameKey(workspace, name);
    let set = openings.get(key);
    if (set === undefined) openings.set(key, (set = new Set()));
    set.add(op);
    openingCount++;
    use();
    const end = () => {
      set.delete(op);
      if (set.size === 0 && openings.get(key) === set) openings.delete(key);
      openingCount--;
      release();
    };
    // Reading Postgres only once the server has our subscription: whatever
    // commits after the read is then delivered live.
    const subscribed = await untilTimeout(o.bus.subscribed(), o.subscribeWaitMs ?? 1000);
    if (!subscribed) op.missedLive = true;
    return { op, end };
  };

  const attach = (op: Opening, uid: string, committed: number, stream: (ch: WatchChannel) => WatchStream) => {
    let ch = channels.get(uid);
    if (ch === undefined) {
      ch = new WatchChannel(uid, committed, channelOptions);
      channels.set(uid, ch);
      use();
    }
    const s = stream(ch);
    ch.join(s);
    for (const e of op.events) if (e.deploymentUid === uid) ch.offer(e);
    ch.committed(committed);
    if (op.missedLive) ch.fill();
    return s;
  };

  return {
    async open(req) {
      const { afterSequence } = req;
      if (afterSequence !== undefined && afterSequence < 0) {
        throw apiError(Code.InvalidArgument, "afterSequence must be 0 or more", { reason: "SEQUENCE_INVALID" });
      }
      const { op, end } = await beginOpen(req.workspace, req.name);
      try {
        if (afterSequence === undefined) {
          const snap = await readWatchSnapshot(o.db, req.workspace, req.name, snapshotTaskKinds);
          if (snap === undefined) throw notFound(req.name);
          const deployment = toDeployment(snap.deployment);
          const first = eventToPb({
            deploymentUid: deployment.uid,
            workspace: deployment.workspace,
            sequence: deployment.sequence,
            cursor: snap.cursor,
            message: "",
            time: deployment.updateTime,
            type: "SNAPSHOT",
            deployment,
            task: snap.task ? toTask(snap.task) : null,
          });
          const s = attach(op, deployment.uid, deployment.sequence, (ch) => new WatchStream(ch, deployment.sequence, req.untilDeleted, first, req.writer));
          if (req.untilDeleted && deployment.state === "DELETED") s.endAfterQueued();
          return s;
        }
        const pos = await readWatchPosition(o.db, req.workspace, req.name);
        if (pos === undefined) throw notFound(req.name);
        if (afterSequence > pos.sequence) {
          // Nobody can have seen it: waiting would hide a client's bug (or a
          // sequence of another deployment) behind a silent stream.
          throw apiError(
            Code.OutOfRange,
            `afterSequence ${afterSequence} is beyond the last event of "${req.name}" (${pos.sequence}): resume from a sequence you have received, or omit it for a snapshot`,
            {
              reason: "SEQUENCE_OUT_OF_RANGE",
              metadata: { afterSequence: String(afterSequence), lastSequence: String(pos.sequence) },
            },
          );
        }
        return attach(op, pos.uid, pos.sequence, (ch) => new WatchStream(ch, afterSequence, req.untilDeleted, undefined, req.writer));
      } finally {
        end();
      }
    },
    stats: () => ({ channels: channels.size, opening: openingCount }),
    close() {
      clearInterval(reconcileTimer);
      reconcileTimer = undefined;
      feed?.stopEvents();
      feed?.stopReconnects();
      feed = undefined;
    },
  };
}

/** Whether `p` settled well within `ms`. */
function untilTimeout(p: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(false);
      },
    );
  });
}

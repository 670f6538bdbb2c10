// One deployment's live events, shared by every watch of it in this process.
// Each event is converted to its protobuf message once (a frame), and the
// same frame goes to every stream, so a transport can serialize it once too.
// The channel keeps the sequence gapless for all its streams at once: an
// event that arrives early (out of order, or after one the feed lost) waits
// while one read of Postgres fills the gap; nothing is read while all is in
// order, so an idle watch costs no query.
import type { Db } from "../db/connect.js";
import { eventsAfter } from "../db/events.js";
import type { DeploymentEvent } from "../domain/types.js";
import type { DeploymentEvent as PbDeploymentEvent } from "../gen/modeldeploy/v1/resources_pb.js";
import type { Logger } from "../log.js";
import { eventToPb } from "./convert.js";

export interface WatchFrame {
  readonly sequence: number;
  readonly deleted: boolean;
  /** Shared by every stream: never mutate it. */
  readonly message: PbDeploymentEvent;
}

/** A stream attached to a channel: offered each frame once the channel has it in order. */
export interface ChannelMember {
  offer(frame: WatchFrame): void;
}

export interface ChannelOptions {
  db: Db;
  logger: Logger;
  /** Frames kept for streams a little behind (a slow reader, a resume from just now). */
  recentFrames: number;
  /** Called when the last member leaves. */
  onEmpty(channel: WatchChannel): void;
}

/** Rows per read of the events table. */
export const readBatch = 500;
/** Early events held while a gap is filled; past this they are read back from Postgres. */
const maxEarly = 1000;
const firstRetryMs = 25;
const maxRetryMs = 2000;

export function toFrame(e: DeploymentEvent): WatchFrame {
  return { sequence: e.sequence, deleted: e.type === "DELETED", message: eventToPb(e) };
}

export class WatchChannel {
  private readonly members = new Set<ChannelMember>();
  /** Contiguous frames ending at head, at most recentFrames of them. */
  private readonly recent: WatchFrame[] = [];
  private readonly early = new Map<number, DeploymentEvent>();
  /** Reads of the events table in flight, by the sequence they start after (shared by streams catching up). */
  private readonly reads = new Map<number, Promise<WatchFrame[]>>();
  private filling = false;
  private fillAgain = false;
  private applying = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = firstRetryMs;
  private closed = false;

  /** `head`: the last sequence this channel has delivered in order (committed, so known to exist). */
  constructor(
    readonly uid: string,
    public head: number,
    private readonly o: ChannelOptions,
  ) {}

  get size(): number {
    return this.members.size;
  }

  join(member: ChannelMember): void {
    this.members.add(member);
  }

  leave(member: ChannelMember): void {
    if (!this.members.delete(member) || this.members.size > 0) return;
    this.close();
    this.o.onEmpty(this);
  }

  /** A live event (or one read back): delivered in order, held if early, dropped if old. */
  offer(e: DeploymentEvent): void {
    if (e.sequence <= this.head || this.closed) return;
    if (e.sequence !== this.head + 1) {
      if (this.early.size < maxEarly) this.early.set(e.sequence, e);
      this.gap();
      return;
    }
    this.advance(e);
    for (let next = this.early.get(this.head + 1); next !== undefined; next = this.early.get(this.head + 1)) {
      this.early.delete(next.sequence);
      this.advance(next);
    }
    if (this.early.size === 0) return;
    for (const s of this.early.keys()) if (s <= this.head) this.early.delete(s);
    if (this.early.size > 0) this.gap();
  }

  /** Postgres has this sequence committed: read up to it if the feed has not brought it. */
  committed(sequence: number): void {
    if (sequence > this.head) this.fill();
  }

  /** The frames after `last` up to head, if still kept; else undefined (read them). */
  recentAfter(last: number): WatchFrame[] | undefined {
    const first = this.recent[0];
    if (first === undefined || first.sequence > last + 1) return undefined;
    return this.recent.slice(last + 1 - first.sequence);
  }

  /** Frames after `last` from Postgres; concurrent reads from the same point share one query. */
  readAfter(last: number): Promise<WatchFrame[]> {
    let read = this.reads.get(last);
    if (read === undefined) {
      read = eventsAfter(this.o.db, this.uid, last, readBatch).then((rows) => rows.map(toFrame));
      this.reads.set(last, read);
      const forget = () => this.reads.delete(last);
      read.then(forget, forget);
    }
    return read;
  }

  /** Read what the live feed missed (after a reconnect of the feed, or a gap). */
  fill(): void {
    if (this.closed) return;
    if (this.filling) {
      this.fillAgain = true;
      return;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    void this.runFill();
  }

  private gap(): void {
    // Events offered by a fill in progress are that fill's business.
    if (!this.applying) this.fill();
  }

  private advance(e: DeploymentEvent): void {
    const frame = toFrame(e);
    this.head = e.sequence;
    this.recent.push(frame);
    if (this.recent.length > this.o.recentFrames) this.recent.shift();
    for (const m of this.members) m.offer(frame);
  }

  private async runFill(): Promise<void> {
    this.filling = true;
    try {
      do {
        this.fillAgain = false;
        for (;;) {
          const rows = await eventsAfter(this.o.db, this.uid, this.head, readBatch);
          if (this.closed) return;
          this.applying = true;
          try {
            for (const e of rows) this.offer(e);
          } finally {
            this.applying = false;
          }
          if (rows.length < readBatch) break;
        }
      } while (this.fillAgain);
      // An event seen live whose predecessor is not visible yet (published
      // before its commit could be read, or out of order): look again soon.
      if (this.early.size > 0) this.retry();
      else this.retryMs = firstRetryMs;
    } catch (err) {
      this.o.logger.warn("watch: cannot read missed events, retrying", { deploymentUid: this.uid, err });
      this.retry();
    } finally {
      this.filling = false;
    }
  }

  private retry(): void {
    if (this.closed || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.fill();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, maxRetryMs);
  }

  private close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.early.clear();
  }
}

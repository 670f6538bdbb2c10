// One WatchDeployment stream: the messages its client has still to read, and
// the last sequence given to it. It takes frames from its channel while it is
// in step; a stream behind (it resumed from an older sequence, or its reader
// was slow and its queue full) catches up from the channel's recent frames or
// from Postgres, then is in step again. A plain iterator, not a generator: it
// is one of thousands, each message a promise fewer.
import type { DeploymentEvent as PbDeploymentEvent } from "../gen/modeldeploy/v1/resources_pb.js";
import type { ChannelMember, WatchChannel, WatchFrame } from "./watch-channel.js";

/** Messages queued for a reader that does not keep up; past this it skips and catches up later. */
const maxQueued = 256;

type Waiter = { resolve(r: IteratorResult<PbDeploymentEvent>): void; reject(e: unknown): void };

export class WatchStream implements ChannelMember, AsyncIterableIterator<PbDeploymentEvent> {
  private readonly queue: PbDeploymentEvent[] = [];
  private waiter: Waiter | undefined;
  private catchingUp = false;
  /** No more frames (DELETED seen with untilDeleted, or closed); the queue still drains. */
  private ended = false;
  private error: unknown;
  private failed = false;

  constructor(
    private readonly channel: WatchChannel,
    /** The last sequence given to this stream (queued or read). */
    private last: number,
    private readonly untilDeleted: boolean,
    first: PbDeploymentEvent | undefined,
  ) {
    if (first !== undefined) this.queue.push(first);
  }

  /** Ends the stream after what is queued (a snapshot of a deployment already deleted). */
  endAfterQueued(): void {
    this.stop();
  }

  offer(frame: WatchFrame): void {
    if (this.ended || this.catchingUp || frame.sequence <= this.last) return;
    if (frame.sequence === this.last + 1 && this.queue.length < maxQueued) this.give(frame);
    // Else it is behind: it catches up when its reader asks for more.
    else if (this.waiter !== undefined) void this.catchUp();
  }

  next(): Promise<IteratorResult<PbDeploymentEvent>> {
    const value = this.queue.shift();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.failed) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      if (this.last < this.channel.head) void this.catchUp();
    });
  }

  return(): Promise<IteratorResult<PbDeploymentEvent>> {
    this.queue.length = 0;
    this.stop();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private give(frame: WatchFrame): void {
    this.last = frame.sequence;
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w.resolve({ value: frame.message, done: false });
    } else this.queue.push(frame.message);
    if (this.untilDeleted && frame.deleted) this.stop();
  }

  private async catchUp(): Promise<void> {
    if (this.catchingUp || this.ended) return;
    this.catchingUp = true;
    try {
      while (!this.ended && this.last < this.channel.head && this.queue.length < maxQueued) {
        const frames = this.channel.recentAfter(this.last) ?? (await this.channel.readAfter(this.last));
        const before = this.last;
        for (const f of frames) {
          if (this.ended || this.queue.length >= maxQueued) break;
          if (f.sequence === this.last + 1) this.give(f);
        }
        if (this.last === before) break; // nothing usable: never spin
        // Postgres may be ahead of the live feed: the channel reads up to it.
        this.channel.committed(this.last);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.catchingUp = false;
    }
  }

  private fail(err: unknown): void {
    if (this.ended) return;
    this.failed = true;
    this.error = err;
    const w = this.waiter;
    this.waiter = undefined;
    this.stop();
    if (w !== undefined && this.queue.length === 0) w.reject(err);
  }

  private stop(): void {
    if (this.ended) return;
    this.ended = true;
    this.channel.leave(this);
    const w = this.waiter;
    if (w !== undefined && this.queue.length === 0 && !this.failed) {
      this.waiter = undefined;
      w.resolve({ value: undefined, done: true });
    }
  }
}

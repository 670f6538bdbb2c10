// One WatchDeployment stream: the messages its client has still to read, and
// the last sequence given to it. It takes frames from its channel while it is
// in step; a stream behind (it resumed from an older sequence, or its reader
// was slow and its queue full) catches up from the channel's recent frames or
// from Postgres, then is in step again. A plain iterator, not a generator: it
// is one of thousands, each message a promise fewer.
//
// Push mode: when its transport offers a direct writer (native gRPC), the
// stream writes each frame to it as soon as it has it, in the channel's one
// loop over its members, and next() only reports the end (or an error). A
// transport that is full blocks the stream: frames are skipped while it is,
// and caught up (recent frames, else Postgres) once it drains, so a slow
// client costs the transport's own buffer and no more.
import type { DeploymentEvent as PbDeploymentEvent } from "../gen/modeldeploy/v1/resources_pb.js";
import type { DirectWriter } from "./direct-writer.js";
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
  /** Push mode: the reader has started, messages go to the writer. */
  private pushing = false;
  /** Push mode: the writer is full until it drains. */
  private blocked = false;
  private readonly onDrain = () => {
    this.blocked = false;
    this.flush();
    if (this.blocked) return;
    if (this.ended) this.settle();
    else if (this.last < this.channel.head) void this.catchUp();
  };

  constructor(
    private readonly channel: WatchChannel,
    /** The last sequence given to this stream (queued or read). */
    private last: number,
    private readonly untilDeleted: boolean,
    first: PbDeploymentEvent | undefined,
    /** The transport's direct writer (push mode), if it offers one. */
    private readonly writer?: DirectWriter,
  ) {
    if (first !== undefined) this.queue.push(first);
  }

  /** Ends the stream after what is queued (a snapshot of a deployment already deleted). */
  endAfterQueued(): void {
    this.stop();
  }

  offer(frame: WatchFrame): void {
    if (this.ended || this.catchingUp || frame.sequence <= this.last) return;
    if (frame.sequence === this.last + 1 && this.canTake()) this.give(frame);
    // Else it is behind: it catches up when its reader asks for more (or its writer drains).
    else if (this.waiter !== undefined && !this.blocked) void this.catchUp();
  }

  next(): Promise<IteratorResult<PbDeploymentEvent>> {
    if (this.writer !== undefined) return this.startPushing();
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

  /** Push mode: write what is queued, then every frame as it comes; the promise settles at the end. */
  private startPushing(): Promise<IteratorResult<PbDeploymentEvent>> {
    if (this.pushing) return Promise.reject(new Error("WatchStream: next() again in push mode"));
    this.pushing = true;
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.flush();
      if (this.ended) this.settle();
      else if (!this.blocked && this.last < this.channel.head) void this.catchUp();
    });
  }

  private canTake(): boolean {
    return this.pushing ? !this.blocked : this.queue.length < maxQueued;
  }

  /** Push mode: queued messages to the writer while it takes them. */
  private flush(): void {
    for (let m = this.queue.shift(); m !== undefined; m = this.queue.shift()) {
      this.write(m);
      if (this.blocked) return;
    }
  }

  private write(m: PbDeploymentEvent): void {
    try {
      if (!this.writer!.write(m)) {
        this.blocked = true;
        this.writer!.onDrain(this.onDrain);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /** Push mode: the end (or the error) once everything queued is written. */
  private settle(): void {
    const w = this.waiter;
    if (w === undefined || this.queue.length > 0) return;
    this.waiter = undefined;
    if (this.failed) w.reject(this.error);
    else w.resolve({ value: undefined, done: true });
  }

  private give(frame: WatchFrame): void {
    this.last = frame.sequence;
    const w = this.waiter;
    if (this.pushing) this.write(frame.message);
    else if (w !== undefined) {
      this.waiter = undefined;
      w.resolve({ value: frame.message, done: false });
    } else this.queue.push(frame.message);
    if (this.untilDeleted && frame.deleted) this.stop();
  }

  private async catchUp(): Promise<void> {
    if (this.catchingUp || this.ended) return;
    this.catchingUp = true;
    try {
      while (!this.ended && this.last < this.channel.head && this.canTake()) {
        const frames = this.channel.recentAfter(this.last) ?? (await this.channel.readAfter(this.last));
        const before = this.last;
        for (const f of frames) {
          if (this.ended || !this.canTake()) break;
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
    if (this.pushing) {
      // The waiter reports the error once the queue is written (settle).
      this.stop();
      this.settle();
      return;
    }
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

// WatchDeployment streams held open until their deployment's DELETED event.
// A stream that fails or ends early is resumed (afterSequence = the last
// sequence seen); every event and every stream change is recorded.
import { DeploymentState, EventType } from "../gen/modeldeploy/v1/resources_pb.js";
import { errorMessage, statusName, type Apis } from "./api.js";
import type { Recorder } from "./recorder.js";

export interface Watches {
  watch(name: string): void;
  /** Resolves once every watch has seen DELETED, or at the deadline; returns the names still open. */
  drain(deadline: number): Promise<string[]>;
}

interface Watch {
  id: number;
  name: string;
  done: boolean;
  /** The current stream; aborted to cut it (a client-side drop) or at the end. */
  stream: AbortController | undefined;
  run: Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function startWatches(o: { apis: Apis; recorder: Recorder; dropEveryMs: number }): Watches {
  const { apis, recorder } = o;
  const watches: Watch[] = [];
  let stopped = false;

  const run = async (w: Watch) => {
    let last: number | undefined;
    while (!w.done && !stopped) {
      const api = apis.next();
      const ac = new AbortController();
      w.stream = ac;
      recorder.write({
        kind: "watch",
        t: Date.now(),
        watch: w.id,
        name: w.name,
        what: "open",
        target: api.address,
        ...(last !== undefined ? { afterSequence: last } : {}),
      });
      try {
        const request = last === undefined ? { name: w.name } : { name: w.name, afterSequence: BigInt(last) };
        for await (const ev of api.deployments.watchDeployment(request, { signal: ac.signal })) {
          const sequence = Number(ev.sequence);
          recorder.write({ kind: "event", t: Date.now(), watch: w.id, name: w.name, uid: ev.deployment?.uid ?? "", sequence, type: EventType[ev.type] });
          last = sequence;
          // A snapshot of a deployment already deleted has nothing more to come.
          if (ev.type === EventType.DELETED || ev.deployment?.state === DeploymentState.DELETED) {
            w.done = true;
            recorder.write({ kind: "watch", t: Date.now(), watch: w.id, name: w.name, what: "done" });
            break;
          }
        }
        if (!w.done) recorder.write({ kind: "watch", t: Date.now(), watch: w.id, name: w.name, what: "drop", code: "OK", message: "stream ended" });
      } catch (err) {
        const code = ac.signal.aborted ? "CANCELLED_BY_CLIENT" : statusName(err);
        apis.failed(api, code);
        recorder.write({ kind: "watch", t: Date.now(), watch: w.id, name: w.name, what: "drop", code, message: errorMessage(err) });
      }
      if (!w.done) await sleep(200);
    }
  };

  const dropper =
    o.dropEveryMs > 0
      ? setInterval(() => {
          const open = watches.filter((w) => !w.done && w.stream);
          open[Math.floor(Math.random() * open.length)]?.stream?.abort();
        }, o.dropEveryMs)
      : undefined;

  return {
    watch(name) {
      const w: Watch = { id: watches.length + 1, name, done: false, stream: undefined, run: Promise.resolve() };
      w.run = run(w);
      watches.push(w);
    },
    async drain(deadline) {
      clearInterval(dropper);
      while (Date.now() < deadline && watches.some((w) => !w.done)) await sleep(100);
      stopped = true;
      for (const w of watches) w.stream?.abort();
      await Promise.all(watches.map((w) => w.run));
      return watches.filter((w) => !w.done).map((w) => w.name);
    },
  };
}

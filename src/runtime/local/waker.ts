// Scale from zero: the first request to an idle revision starts one replica,
// and it and every request that arrives meanwhile wait for that same wake
// (one replica per wake, however many requests). Driven by the revision's
// change notifications: nothing polls.
import type { Logger } from "../../log.js";
import type { Revision } from "./revision.js";

export interface Waker {
  /**
   * Starts one replica of `revision` (through `scaleUp`, which starts none
   * when one is already starting) unless a wake of it is under way, and
   * resolves true once a replica is ready; false if the
   * wake ends without one: the replica failed to start, the revision was
   * scaled to 0, stopped or released, or the runtime closes. Never rejects.
   * Each caller bounds its own wait (wakeTimeoutMs).
   */
  wake(revision: Revision): Promise<boolean>;
  /** A wake of `revision` is under way. */
  waking(revision: Revision): boolean;
  /** Ends every wake under way (false). */
  close(): void;
}

export function createWaker(scaleUp: (revision: Revision) => Promise<void>, logger: Logger): Waker {
  const wakes = new Map<Revision, { promise: Promise<boolean>; end: (ok: boolean) => void }>();

  const start = (revision: Revision): Promise<boolean> => {
    let resolve: (ok: boolean) => void = () => {};
    let off = () => {};
    const promise = new Promise<boolean>((r) => (resolve = r));
    const end = (ok: boolean) => {
      if (wakes.get(revision)?.promise !== promise) return;
      wakes.delete(revision);
      off();
      resolve(ok);
    };
    wakes.set(revision, { promise, end });
    const check = () => {
      const s = revision.status();
      if (s.ready > 0) end(true);
      else if (s.desired === 0 || (s.exited && s.pending === 0)) end(false);
    };
    off = revision.onChange(check);
    logger.info("waking revision on request", { deploymentUid: revision.uid, revision: revision.number });
    scaleUp(revision).then(check, (err: unknown) => {
      logger.warn("cannot wake revision", { err, deploymentUid: revision.uid, revision: revision.number });
      end(false);
    });
    return promise;
  };

  return {
    wake(revision) {
      const under = wakes.get(revision);
      if (under) return under.promise;
      if (revision.hasReadyReplica()) return Promise.resolve(true);
      return start(revision);
    },
    waking: (revision) => wakes.has(revision),
    close() {
      for (const { end } of [...wakes.values()]) end(false);
    },
  };
}

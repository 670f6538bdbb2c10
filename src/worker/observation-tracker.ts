// Decides which of the runtime's observations the observer reads from the
// database on a pass: those that changed since they were last checked, those
// whose row a task still owned then (it will write them when it ends), those
// touched since (a task of this process wrote them), and a rotating few of
// the rest, so that a change nobody reported is still found within
// `revisitPasses` passes. Everything else agreed with its row last time and
// has not changed: reading it again would only cost.
import type { DeploymentObservation } from "../runtime/driver.js";

export interface ObservationTracker {
  /** All the runtime runs now; returns those to check this pass. */
  pass(observed: readonly DeploymentObservation[]): DeploymentObservation[];
  /** `obs` (returned by pass) was checked against its row; `unsettled`: check it again next pass. */
  checked(obs: DeploymentObservation, unsettled: boolean): void;
  /** These rows changed: check them next pass. */
  touched(deploymentUids: Iterable<string>): void;
}

export function fingerprint(obs: DeploymentObservation): string {
  const i = obs.instances;
  return `${obs.servingRevision}|${obs.endpointUrl}|${i.desired}|${i.ready}|${i.pending}|${i.restarts}`;
}

export function createObservationTracker(o: { revisitPasses: number }): ObservationTracker {
  /** Observations as last checked (and found settled or corrected), by uid. */
  const known = new Map<string, string>();
  /** Uids to check next pass whatever they look like, with the touch that put them here. */
  const dirty = new Map<string, number>();
  /** The touch each due uid was taken with: a later touch keeps it dirty. */
  const taken = new Map<string, number | undefined>();
  let touches = 0;
  let revisit = known.keys();

  const revisits = (count: number, due: Set<string>): string[] => {
    const out: string[] = [];
    let restarted = false;
    while (out.length < count) {
      let next = revisit.next();
      if (next.done === true) {
        if (restarted) break;
        restarted = true;
        revisit = known.keys();
        next = revisit.next();
        if (next.done === true) break;
      }
      if (!due.has(next.value)) out.push(next.value);
    }
    return out;
  };

  return {
    pass(observed) {
      const byUid = new Map(observed.map((obs) => [obs.deploymentUid, obs]));
      // The runtime no longer runs these: nothing to tend.
      for (const uid of known.keys()) if (!byUid.has(uid)) known.delete(uid);
      for (const uid of dirty.keys()) if (!byUid.has(uid)) dirty.delete(uid);
      taken.clear();
      const due: DeploymentObservation[] = [];
      const dueUids = new Set<string>();
      for (const obs of observed) {
        const uid = obs.deploymentUid;
        if (dirty.has(uid) || known.get(uid) !== fingerprint(obs)) {
          due.push(obs);
          dueUids.add(uid);
        }
      }
      if (o.revisitPasses > 0 && known.size > 0) {
        for (const uid of revisits(Math.ceil(known.size / o.revisitPasses), dueUids)) {
          due.push(byUid.get(uid)!);
          dueUids.add(uid);
        }
      }
      for (const uid of dueUids) taken.set(uid, dirty.get(uid));
      return due;
    },
    checked(obs, unsettled) {
      const uid = obs.deploymentUid;
      known.set(uid, fingerprint(obs));
      if (unsettled) dirty.set(uid, dirty.get(uid) ?? ++touches);
      else if (dirty.get(uid) === taken.get(uid)) dirty.delete(uid);
    },
    touched(uids) {
      for (const uid of uids) dirty.set(uid, ++touches);
    },
  };
}

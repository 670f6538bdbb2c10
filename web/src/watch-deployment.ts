// One deployment, live (WatchDeployment), with its revisions and recent
// tasks: the lists are read again whenever an event says something finished
// or changed state; progress events update the task they carry in place.
import { useEffect, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import { EventType, type Deployment, type DeploymentEvent, type DeploymentRevision, type Task } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import type { Api } from "./api.js";
import { keepStreaming } from "./streams.js";

export interface DeploymentView {
  deployment: Deployment | undefined;
  revisions: DeploymentRevision[];
  /** Newest first. */
  tasks: Task[];
  live: boolean;
  deleted: boolean;
  error: unknown;
}

const empty: DeploymentView = { deployment: undefined, revisions: [], tasks: [], live: false, deleted: false, error: undefined };
const recentTasks = 20;

function mergeTask(tasks: Task[], t: Task | undefined): Task[] {
  if (t === undefined || t.id === "") return tasks;
  const i = tasks.findIndex((x) => x.id === t.id);
  if (i === -1) return [t, ...tasks];
  const next = tasks.slice();
  next[i] = t;
  return next;
}

export function useDeployment(api: Api, name: string, onUnauthenticated: (err: unknown) => void): DeploymentView {
  const [view, setView] = useState<DeploymentView>(empty);
  useEffect(() => {
    setView(empty);
    let afterSequence: bigint | undefined;
    let reading = false;
    let again = false;
    let gone = false;
    // One read of the lists at a time; a change during it reads once more after.
    const readLists = async () => {
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      try {
        do {
          again = false;
          const [revs, tasks] = await Promise.all([
            api.deployments.listDeploymentRevisions({ name }),
            api.deployments.listDeploymentTasks({ name, pageSize: recentTasks }),
          ]);
          if (gone) return;
          setView((v) => ({ ...v, revisions: revs.revisions, tasks: tasks.tasks }));
        } while (again && !gone);
      } catch {
        // The watch reports what is wrong; the lists are read again on its next event.
      } finally {
        reading = false;
      }
    };
    const apply = (e: DeploymentEvent) => {
      afterSequence = e.sequence;
      const deleted = e.type === EventType.DELETED;
      setView((v) => ({ ...v, deployment: e.deployment ?? v.deployment, tasks: mergeTask(v.tasks, e.task), deleted: v.deleted || deleted }));
      if (e.type !== EventType.PROGRESS && !deleted) void readLists();
    };
    const stop = keepStreaming({
      async run(signal, onOpen) {
        const req = afterSequence === undefined ? { name } : { name, afterSequence };
        for await (const e of api.deployments.watchDeployment(req, { signal, onHeader: onOpen })) apply(e);
      },
      onStatus(live, error) {
        setView((v) => ({ ...v, live, error: live ? undefined : error }));
        if (error !== undefined) onUnauthenticated(error);
      },
      // Gone (deleted, or never was): nothing to wait for.
      isFinal: (err) => err instanceof ConnectError && err.code === Code.NotFound,
    });
    return () => {
      gone = true;
      stop();
    };
  }, [api, name]);
  return view;
}
